"""debsfx: a tiny fake layout of unpacked packages built and read back, the fetch step with fake apt tools, and the
committed manifest's consistency. The real corpus is built only when AUDIOJAX_DEBSFX_DIR names unpacked packages."""
import collections
import csv
import io
import logging
import os
import sys
import zipfile

import numpy as np
import pytest
import soundfile as sf

from audiojax.data import builders
from audiojax.data.builders import debsfx
from audiojax.data.sources import apt
from audiojax.errors import UserError

SPLIT = {"pkg-a": "train", "pkg-b": "train", "pkg-c": "test"}
ROWS = [  # package, path, label; two broken rows, one per split
    ("pkg-a", "usr/share/a/kick 1.wav", "kick"),
    ("pkg-a", "usr/share/a/bird.flac", "bird"),
    ("pkg-b", "usr/share/b/bird.ogg", "bird"),
    ("pkg-b", "usr/share/b/gone.wav", "kick"),  # missing
    ("pkg-c", "usr/share/c/kick.wav", "kick"),
    ("pkg-c", "usr/share/c/data.pk3/sound/bird.wav", "bird"),  # member of an archive
    ("pkg-c", "usr/share/c/broken.wav", "bird"),  # not audio
]
TONES = {  # (package, path): (frequency, seconds, rate, channels)
    ("pkg-a", "usr/share/a/kick 1.wav"): (1000.0, 0.5, 44100, 2),
    ("pkg-a", "usr/share/a/bird.flac"): (3000.0, 0.3, 48000, 1),
    ("pkg-b", "usr/share/b/bird.ogg"): (2000.0, 0.4, 22050, 1),
    ("pkg-c", "usr/share/c/kick.wav"): (500.0, 0.25, 16000, 1),
    ("pkg-c", "usr/share/c/data.pk3/sound/bird.wav"): (4000.0, 0.2, 11025, 1),
}


class Recorder(logging.Handler):
  """Keeps the messages logged while it is attached."""

  def __init__(self):
    super().__init__(logging.INFO)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def tone(freq, seconds, rate, channels):
  t = np.arange(int(seconds * rate)) / rate
  wave = 0.3 * np.sin(2 * np.pi * freq * t)
  return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_manifest(path, rows):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["package", "path", "label"])
    writer.writerows(rows)
  return str(path)


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
  """(manual_dir with the unpacked fake packages, manifest path)."""
  root = tmp_path_factory.mktemp("debs")
  for (package, path), (freq, seconds, rate, channels) in TONES.items():
    if ".pk3/" in path:
      continue
    (root / package / path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(root / package / path, tone(freq, seconds, rate, channels), rate)
  member = io.BytesIO()
  sf.write(member, tone(*TONES[("pkg-c", "usr/share/c/data.pk3/sound/bird.wav")]), 11025, format="WAV")
  with zipfile.ZipFile(root / "pkg-c/usr/share/c/data.pk3", "w", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr("sound/bird.wav", member.getvalue())
  (root / "pkg-c/usr/share/c/broken.wav").write_bytes(b"RIFF this is not audio")
  return root, write_manifest(root / "manifest.csv", ROWS)


def build(data_dir, manual_dir, manifest, name="fake"):
  config = debsfx.DebsfxConfig(name=name, manifest=manifest, split=SPLIT)
  builder = debsfx.Debsfx(config=config, data_dir=os.fspath(data_dir), manual_dir=manual_dir,
                          file_format="array_record")
  builder.download_and_prepare()
  return builder


@pytest.fixture(scope="module")
def built(layout, tmp_path_factory):
  """(builder, {split: examples by id}, log messages) of the fake corpus."""
  root, manifest = layout
  recorder = Recorder()
  logger = logging.getLogger("audiojax")
  logger.addHandler(recorder)
  level = logger.level
  logger.setLevel(logging.INFO)
  try:
    builder = build(tmp_path_factory.mktemp("tfds"), root, manifest)
  finally:
    logger.removeHandler(recorder)
    logger.setLevel(level)
  examples = {}
  for split in ("train", "test"):
    source = builder.as_data_source(split=split)
    examples[split] = {text(ex["id"]): ex for ex in (source[i] for i in range(len(source)))}
  return builder, examples, recorder.messages


def text(value):
  return value.decode() if isinstance(value, bytes) else value


def test_registered():
  assert builders.BUILDERS["debsfx"] is debsfx.Debsfx


def test_split_by_package_and_labels(built):
  builder, examples, _ = built
  names = builders.class_names(builder)
  assert tuple(names) == debsfx.CLASSES
  assert set(examples["train"]) == {"pkg-a/usr/share/a/kick 1.wav", "pkg-a/usr/share/a/bird.flac",
                                    "pkg-b/usr/share/b/bird.ogg"}
  assert set(examples["test"]) == {"pkg-c/usr/share/c/kick.wav", "pkg-c/usr/share/c/data.pk3/sound/bird.wav"}
  labels = {package + "/" + path: label for package, path, label in ROWS}
  for split, by_id in examples.items():
    for ident, ex in by_id.items():
      assert SPLIT[text(ex["package"])] == split and ident.startswith(text(ex["package"]) + "/")
      assert [names[i] for i in ex["labels"]] == [labels[ident]]


def test_audio_is_16k_mono_int16_and_keeps_its_pitch(built):
  _, examples, _ = built
  for (package, path), (freq, seconds, _, _) in TONES.items():
    ex = examples[SPLIT[package]][f"{package}/{path}"]
    audio = ex["audio"]
    assert ex["sample_rate"] == debsfx.SAMPLE_RATE and audio.dtype == np.int16 and audio.ndim == 1
    assert abs(audio.size - seconds * debsfx.SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    peak = np.argmax(spectrum) * debsfx.SAMPLE_RATE / audio.size
    assert abs(peak - freq) < 20, (path, peak)
    assert 0.25 < np.abs(audio).max() / 32768 < 0.35  # level kept: a 0.3 sine, not re-normalised


def test_missing_and_unreadable_clips_are_counted(built):
  _, _, messages = built
  assert "debsfx train: 3 of 4 clips read; 1 missing (first: pkg-b/usr/share/b/gone.wav: missing)" in messages
  test_line = next(m for m in messages if m.startswith("debsfx test:"))
  assert test_line.startswith("debsfx test: 2 of 3 clips read; 1 unreadable (first: pkg-c/usr/share/c/broken.wav")


def test_class_without_clips_in_a_split_fails(layout, tmp_path):
  root, _ = layout
  rows = [r for r in ROWS if r[1] != "usr/share/c/data.pk3/sound/bird.wav"]  # test keeps only the broken bird
  manifest = write_manifest(tmp_path / "manifest.csv", rows)
  with pytest.raises(UserError, match="debsfx test: no readable clip of class bird under"):
    build(tmp_path / "tfds", root, manifest, name="nobird")


@pytest.mark.parametrize("rows, header, match", [
    ([("pkg-a", "x.wav", "cowbell")], "package,path,label", "line 2: unknown label 'cowbell'"),
    ([("pkg-z", "x.wav", "kick")], "package,path,label", "line 2: package 'pkg-z' has no train/test entry"),
    ([("pkg-a", "x.wav", "kick"), ("pkg-a", "x.wav", "bird")], "package,path,label", "line 3: pkg-a/x.wav is listed"),
    ([("pkg-a", "x.wav", "kick")], "path,package,label", "must start with the header 'package,path,label'"),
])
def test_bad_manifest(tmp_path, rows, header, match):
  path = tmp_path / "manifest.csv"
  path.write_text(header + "\n" + "".join(",".join(row) + "\n" for row in rows))
  with pytest.raises(UserError, match=match):
    debsfx.read_manifest(str(path), SPLIT)


def test_missing_manual_dir(layout, tmp_path):
  _, manifest = layout
  with pytest.raises(UserError, match="manual_dir .* does not exist"):
    build(tmp_path / "tfds", tmp_path / "nowhere", manifest, name="nodir")


def fake_tool(folder, name, body):
  path = folder / name
  path.write_text(f"#!{sys.executable}\nimport os, sys\n{body}\n")
  path.chmod(0o755)


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
  """A bin folder on PATH with an apt-get that writes <pkg>_1.0_all.deb files and a dpkg-deb that unpacks them."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  calls = tmp_path / "apt-calls.txt"
  fake_tool(bin_dir, "apt-get", f"""
open({str(calls)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
for package in sys.argv[2:]:
  if package == "no-such-package":
    sys.exit("E: Unable to locate package no-such-package")
  open(package + "_1.0_all.deb", "w").write(package)""")
  fake_tool(bin_dir, "dpkg-deb", """
deb, target = sys.argv[2:4]
os.makedirs(os.path.join(target, "usr/share"), exist_ok=True)
open(os.path.join(target, "usr/share/from-deb.txt"), "w").write(open(deb).read())""")
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  return calls


def test_fetch_downloads_and_unpacks_once(fake_apt, tmp_path):
  root = apt.fetch_packages(["pkg-a", "pkg-b"], str(tmp_path / "cache"))
  assert root == str(tmp_path / "cache" / "debsfx")
  for package in ("pkg-a", "pkg-b"):
    assert (tmp_path / "cache/debsfx" / package / "usr/share/from-deb.txt").read_text() == package
    assert (tmp_path / "cache/debs" / f"{package}_1.0_all.deb").exists()
  assert apt.fetch_packages(["pkg-a", "pkg-b"], str(tmp_path / "cache")) == root
  assert fake_apt.read_text().splitlines() == ["download pkg-a pkg-b"]  # the second call found both unpacked


def test_fetch_reports_apt_failure(fake_apt, tmp_path):
  with pytest.raises(UserError, match=r"failed \(E: Unable to locate package no-such-package\); .*apt-get update.*"
                                      r"apt-get download pkg-a no-such-package"):
    apt.fetch_packages(["pkg-a", "no-such-package"], str(tmp_path / "cache"))


def test_fetch_without_apt(monkeypatch, tmp_path):
  monkeypatch.setattr(apt.shutil, "which", lambda tool: None)
  with pytest.raises(UserError, match="'apt-get', which is not installed here; .* run: apt-get download pkg-a && "
                                      "for f in \\*.deb; do dpkg-deb -x"):
    apt.fetch_packages(["pkg-a"], str(tmp_path / "cache"))


def test_committed_manifest_is_consistent():
  clips = debsfx.read_manifest(debsfx.MANIFEST, debsfx.SPLIT)  # known labels, split entries, no path twice
  assert clips == sorted(clips), "keep the manifest sorted by package and path"
  assert {c.package for c in clips} == set(debsfx.SPLIT)  # the split table lists exactly the manifest's packages
  packages = collections.defaultdict(set)
  per_split = collections.Counter()
  for clip in clips:
    packages[clip.label].add(clip.package)
    per_split[clip.label, debsfx.SPLIT[clip.package]] += 1
  for label in debsfx.CLASSES:
    assert len(packages[label]) >= 2, label
    assert per_split[label, "train"] and per_split[label, "test"], label
    assert per_split[label, "train"] + per_split[label, "test"] >= 15, label
  assert not any(c.path.endswith((".deb", ".txt", ".xml", ".mid")) for c in clips)


@pytest.mark.skipif(not os.environ.get("AUDIOJAX_DEBSFX_DIR"),
                    reason="set AUDIOJAX_DEBSFX_DIR to a folder of unpacked debsfx packages to build the real corpus")
def test_real_corpus(tmp_path):
  builder = builders.build("debsfx", tmp_path, manual_dir=os.environ["AUDIOJAX_DEBSFX_DIR"])
  clips = debsfx.read_manifest(debsfx.MANIFEST, debsfx.SPLIT)
  expected = collections.Counter(debsfx.SPLIT[c.package] for c in clips)
  for split in ("train", "test"):
    assert builder.info.splits[split].num_examples == expected[split]
