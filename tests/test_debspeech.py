"""debspeech: a tiny fake layout of unpacked packages built through manual_dir and through fake apt tools, the
committed manifest's consistency (sorted, no path twice, no test speaker in train) and one-line errors. The real
corpus is built only when AUDIOJAX_DEBSPEECH_DIR names unpacked packages."""
import collections
import csv
import logging
import os
import sys

import numpy as np
import pytest
import soundfile as sf

from audiojax.data import builders
from audiojax.data.builders import debspeech
from audiojax.errors import UserError

SPLIT = {"pkg-a": "train", "pkg-b": debspeech.BY_LANGUAGE, "pkg-c": "test"}
TEST_LANGUAGES = ("da",)
ROWS = [  # package, path, speaker, language, text
    ("pkg-a", "usr/share/a/cs/hello 1.ogg", "pkg-a/small-fish", "cs", 'Ahoj, "rybko".'),
    ("pkg-a", "usr/share/a/cs/gone.ogg", "pkg-a/small-fish", "cs", "Missing."),
    ("pkg-a", "usr/share/a/cs/long.wav", "pkg-a/big-fish", "cs", "Too long."),
    ("pkg-b", "usr/share/b/da/hus.flac", "pkg-b/da", "da", "Et hus."),
    ("pkg-b", "usr/share/b/en_GB/A.wav", "pkg-b/en_GB", "en_GB", "A"),
    ("pkg-c", "usr/share/c/broken.wav", "pkg-c/reader", "en", "broken"),
    ("pkg-c", "usr/share/c/one.wav", "pkg-c/reader", "en", "one"),
]
TONES = {  # path: (frequency, seconds of tone, seconds of silence before and after, rate, channels)
    "usr/share/a/cs/hello 1.ogg": (300.0, 0.8, 0.5, 44100, 2),
    "usr/share/a/cs/long.wav": (200.0, 10.5, 0.0, 22050, 1),
    "usr/share/b/da/hus.flac": (400.0, 0.6, 0.0, 48000, 1),
    "usr/share/b/en_GB/A.wav": (500.0, 0.4, 1.0, 16000, 1),
    "usr/share/c/one.wav": (250.0, 0.5, 0.3, 16000, 1),
}
EXPECTED = {
    "train": {"pkg-a/usr/share/a/cs/hello 1.ogg", "pkg-b/usr/share/b/en_GB/A.wav"},
    "test": {"pkg-b/usr/share/b/da/hus.flac", "pkg-c/usr/share/c/one.wav"},
}


class Recorder(logging.Handler):
  """Keeps the messages logged while it is attached."""

  def __init__(self):
    super().__init__(logging.INFO)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


def tone(freq, seconds, pad, rate, channels):
  t = np.arange(int(seconds * rate)) / rate
  silence = np.zeros(int(pad * rate))
  wave = np.concatenate([silence, 0.3 * np.sin(2 * np.pi * freq * t), silence])
  return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_manifest(path, rows):
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(debspeech.HEADER)
    writer.writerows(rows)
  return str(path)


def make_layout(root):
  for package, path, *_ in ROWS:
    if path in TONES:
      freq, seconds, pad, rate, channels = TONES[path]
      (root / package / path).parent.mkdir(parents=True, exist_ok=True)
      sf.write(root / package / path, tone(freq, seconds, pad, rate, channels), rate)
  (root / "pkg-c/usr/share/c/broken.wav").write_bytes(b"RIFF this is not audio")
  return root


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
  """(manual_dir with the unpacked fake packages, manifest path)."""
  root = make_layout(tmp_path_factory.mktemp("debs"))
  return root, write_manifest(root / "manifest.csv", ROWS)


def config(manifest, name="fake", packages=()):
  return debspeech.DebspeechConfig(name=name, manifest=manifest, split=SPLIT, test_languages=TEST_LANGUAGES,
                                   packages=packages)


def build(data_dir, manual_dir, manifest, name="fake", packages=()):
  builder = debspeech.Debspeech(config=config(manifest, name, packages), data_dir=os.fspath(data_dir),
                                manual_dir=manual_dir, file_format="array_record")
  builder.download_and_prepare()
  return builder


def text(value):
  return value.decode() if isinstance(value, bytes) else value


def read_back(builder):
  examples = {}
  for split in ("train", "test"):
    source = builder.as_data_source(split=split)
    examples[split] = {text(ex["id"]): ex for ex in (source[i] for i in range(len(source)))}
  return examples


def recorded(function):
  """(function(), the messages logged to "audiojax" meanwhile)."""
  recorder = Recorder()
  logger = logging.getLogger("audiojax")
  logger.addHandler(recorder)
  level = logger.level
  logger.setLevel(logging.INFO)
  try:
    return function(), recorder.messages
  finally:
    logger.removeHandler(recorder)
    logger.setLevel(level)


@pytest.fixture(scope="module")
def built(layout, tmp_path_factory):
  """(builder, {split: examples by id}, log messages) of the fake corpus."""
  root, manifest = layout
  builder, messages = recorded(lambda: build(tmp_path_factory.mktemp("tfds"), root, manifest))
  return builder, read_back(builder), messages


def test_registered():
  assert builders.BUILDERS["debspeech"] is debspeech.Debspeech
  assert [c.name for c in debspeech.Debspeech.BUILDER_CONFIGS] == ["full", "tiny"]


def test_splits_hold_packages_and_languages(built):
  _, examples, _ = built
  assert {split: set(by_id) for split, by_id in examples.items()} == EXPECTED
  rows = {f"{r[0]}/{r[1]}": r for r in ROWS}
  speakers = collections.defaultdict(set)
  for split, by_id in examples.items():
    for ident, ex in by_id.items():
      package, _, speaker, language, transcript = rows[ident]
      assert (text(ex["package"]), text(ex["speaker"]), text(ex["language"]), text(ex["text"])) == (
          package, speaker, language, transcript)
      assert text(ex["pre_text"]) == "" and text(ex["rare_words"]) == ""
      speakers[split].add(speaker)
  assert not speakers["train"] & speakers["test"]


def test_audio_is_16k_mono_int16_trimmed_and_keeps_its_pitch(built):
  _, examples, _ = built
  for split, by_id in examples.items():
    for ident, ex in by_id.items():
      freq, seconds, pad, _, _ = TONES[ident.split("/", 1)[1]]
      audio = ex["audio"]
      assert ex["sample_rate"] == debspeech.SAMPLE_RATE and audio.dtype == np.int16 and audio.ndim == 1
      kept = seconds + 2 * min(pad, 0.1)  # silent edges cut to 0.1 s
      assert abs(audio.size / debspeech.SAMPLE_RATE - kept) < 0.02, ident
      spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
      assert abs(np.argmax(spectrum) * debspeech.SAMPLE_RATE / audio.size - freq) < 20, ident
      assert 0.25 < np.abs(audio).max() / 32768 < 0.35  # level kept: a 0.3 sine, not re-normalised


def test_missing_unreadable_and_long_clips_are_counted(built):
  _, _, messages = built
  assert ("debspeech train: 2 of 4 clips read; 1 missing, 1 too long (first: pkg-a/usr/share/a/cs/gone.ogg: "
          "missing)") in messages
  test_line = next(m for m in messages if m.startswith("debspeech test:"))
  assert test_line.startswith("debspeech test: 2 of 3 clips read; 1 unreadable (first: pkg-c/usr/share/c/broken.wav")


def test_trim_silence():
  rate = debspeech.SAMPLE_RATE
  silent = np.zeros(rate, np.float32)
  assert debspeech.trim_silence(silent, rate) is silent
  padded = tone(440.0, 1.0, 2.0, rate, 1).astype(np.float32)
  assert abs(debspeech.trim_silence(padded, rate).size - 1.2 * rate) <= rate // 100
  quiet_noise = np.concatenate([np.full(rate, 1e-4), np.sin(np.arange(rate)), np.full(rate, 1e-4)])
  assert abs(debspeech.trim_silence(quiet_noise.astype(np.float32), rate).size - 1.2 * rate) <= rate // 100


def test_split_of_by_language():
  clip = debspeech.Clip("pkg-b", "x.ogg", "pkg-b/da", "da", "")
  assert debspeech.split_of(clip, SPLIT, TEST_LANGUAGES) == "test"
  assert debspeech.split_of(clip._replace(language="en_GB"), SPLIT, TEST_LANGUAGES) == "train"
  assert debspeech.split_of(clip._replace(package="pkg-c", language="en_GB"), SPLIT, TEST_LANGUAGES) == "test"
  assert [debspeech.base_language(code) for code in ("en_GB", "sr@latin", "zh_TW", "el")] == ["en", "sr", "zh", "el"]


def test_missing_package_folder_is_one_line(layout, tmp_path):
  root, _ = layout
  manifest = write_manifest(tmp_path / "manifest.csv", [*ROWS, ("pkg-d", "x.ogg", "pkg-d/x", "en", "")])
  split = {**SPLIT, "pkg-d": "test"}
  builder = debspeech.Debspeech(config=debspeech.DebspeechConfig(name="nopkg", manifest=manifest, split=split),
                                data_dir=str(tmp_path / "tfds"), manual_dir=root)
  with pytest.raises(UserError, match=r"^debspeech: no unpacked package folder pkg-d under '.*'; unpack it there "
                                      r"\(apt-get download pkg-d && .*--manual-dir .*\)$") as error:
    builder.download_and_prepare()
  assert "\n" not in str(error.value)


def test_split_without_readable_clip_fails(layout, tmp_path):
  root, _ = layout
  rows = [r for r in ROWS if r[1] != "usr/share/c/one.wav" and r[3] != "da"]  # test keeps only the broken clip
  with pytest.raises(UserError, match=r"debspeech test: none of its 1 clips could be read under .*; unpack its "
                                      r"packages there again \(apt-get download pkg-c"):
    build(tmp_path / "tfds", root, write_manifest(tmp_path / "manifest.csv", rows), name="nothing")


def test_empty_split_and_unknown_config_package(layout, tmp_path):
  root, manifest = layout
  with pytest.raises(UserError, match="gives no clip to the test split"):
    build(tmp_path / "tfds", root, manifest, name="trainonly", packages=("pkg-a",))
  with pytest.raises(UserError, match=r"config 'ghost' names package\(s\) pkg-z that .* does not list"):
    build(tmp_path / "tfds", root, manifest, name="ghost", packages=("pkg-a", "pkg-z"))


def test_packages_config_builds_a_subset(layout, tmp_path):
  root, manifest = layout
  builder = build(tmp_path / "tfds", root, manifest, name="subset", packages=("pkg-b",))
  assert {split: set(by_id) for split, by_id in read_back(builder).items()} == {
      "train": {"pkg-b/usr/share/b/en_GB/A.wav"}, "test": {"pkg-b/usr/share/b/da/hus.flac"}}


@pytest.mark.parametrize("header, rows, match", [
    ("path,package,speaker,language,text", [("pkg-a", "x.ogg", "s", "cs", "")], "must start with the header"),
    (None, [("pkg-z", "x.ogg", "s", "cs", "")], "line 2: package 'pkg-z' has no entry in the split table"),
    (None, [("pkg-a", "x.ogg", "", "cs", "")], "line 2: pkg-a/x.ogg has no speaker"),
    (None, [("pkg-a", "x.ogg", "s", "Czech", "")], "line 2: language 'Czech' of pkg-a/x.ogg is not a code"),
    (None, [("pkg-a", "x.ogg", "s", "cs", ""), ("pkg-a", "x.ogg", "t", "cs", "")], "line 3: pkg-a/x.ogg is listed"),
    (None, [("pkg-a", "x.ogg", "s", "cs", "Ahoj", "rybko")], "line 2 does not have the 5 fields"),
    (None, [("pkg-a", "x.ogg", "s", "cs")], "line 2 does not have the 5 fields"),
])
def test_bad_manifest(tmp_path, header, rows, match):
  path = tmp_path / "manifest.csv"
  with open(path, "w", newline="", encoding="utf-8") as f:
    f.write((header or ",".join(debspeech.HEADER)) + "\n")
    csv.writer(f).writerows(rows)
  with pytest.raises(UserError, match=match):
    debspeech.read_manifest(str(path), SPLIT)


def test_missing_manual_dir(layout, tmp_path):
  _, manifest = layout
  with pytest.raises(UserError, match="manual_dir .* does not exist"):
    build(tmp_path / "tfds", tmp_path / "nowhere", manifest, name="nodir")


def fake_tool(folder, name, body):
  path = folder / name
  path.write_text(f"#!{sys.executable}\nimport os, shutil, sys\n{body}\n")
  path.chmod(0o755)


def test_build_through_apt(tmp_path, monkeypatch):
  """Without manual_dir the builder runs apt-get download and dpkg-deb -x into the cache: here fake tools whose
  .deb names its package and whose dpkg-deb copies that package's folder of the fake layout."""
  layout = make_layout(tmp_path / "layout")
  manifest = write_manifest(tmp_path / "manifest.csv", ROWS)
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  calls = tmp_path / "apt-calls.txt"
  fake_tool(bin_dir, "apt-get", f"""
open({str(calls)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
for package in sys.argv[2:]:
  open(package + "_1.0_all.deb", "w").write(package)""")
  fake_tool(bin_dir, "dpkg-deb", f"""
deb, target = sys.argv[2:4]
shutil.copytree(os.path.join({str(layout)!r}, open(deb).read()), target, dirs_exist_ok=True)""")
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  builder = build(tmp_path / "tfds", None, manifest, name="apt")
  assert calls.read_text().splitlines() == ["download pkg-a pkg-b pkg-c"]
  assert (tmp_path / "cache/audiojax/debsfx/pkg-b/usr/share/b/da/hus.flac").is_file()
  assert {split: set(by_id) for split, by_id in read_back(builder).items()} == EXPECTED


def test_build_through_apt_reports_a_missing_package(tmp_path, monkeypatch):
  manifest = write_manifest(tmp_path / "manifest.csv", ROWS)
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake_tool(bin_dir, "apt-get", 'sys.exit("E: Unable to locate package pkg-a")')
  fake_tool(bin_dir, "dpkg-deb", "sys.exit(1)")
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  with pytest.raises(UserError, match=r"failed \(E: Unable to locate package pkg-a\); .*apt-get download pkg-a "
                                      r"pkg-b pkg-c"):
    build(tmp_path / "tfds", None, manifest, name="noapt")


def test_committed_manifest_is_consistent():
  clips = debspeech.read_manifest(debspeech.MANIFEST, debspeech.SPLIT)  # split entries, speakers, codes, no path twice
  assert clips == sorted(clips, key=lambda c: (c.package, c.path)), "keep the manifest sorted by package and path"
  assert {c.package for c in clips} == set(debspeech.SPLIT)  # the split table lists exactly the manifest's packages
  split = {c.id: debspeech.split_of(c, debspeech.SPLIT, debspeech.TEST_LANGUAGES) for c in clips}
  speakers, languages = collections.defaultdict(set), collections.defaultdict(set)
  for clip in clips:
    speakers[split[clip.id]].add(clip.speaker)
    if debspeech.SPLIT[clip.package] == debspeech.BY_LANGUAGE:
      languages[split[clip.id]].add(debspeech.base_language(clip.language))
  assert len(speakers["train"]) >= 20 and len(speakers["test"]) >= 5
  assert not speakers["train"] & speakers["test"], "a test speaker is heard in train"
  assert not languages["train"] & languages["test"], "a language of the volunteer packages is in both splits"
  assert all(c.speaker.startswith(c.package + "/") for c in clips)
  assert not any("\n" in c.text or c.text != c.text.strip() for c in clips)
  assert not any(c.path.endswith((".deb", ".txt", ".xml", ".lua")) for c in clips)
  for config in debspeech.Debspeech.BUILDER_CONFIGS:
    chosen = [c for c in clips if not config.packages or c.package in config.packages]
    assert {split[c.id] for c in chosen} == {"train", "test"}, config.name


@pytest.mark.skipif(not os.environ.get("AUDIOJAX_DEBSPEECH_DIR"),
                    reason="set AUDIOJAX_DEBSPEECH_DIR to a folder of unpacked debspeech packages to build the corpus")
def test_real_corpus(tmp_path):
  builder = builders.build("debspeech", tmp_path, manual_dir=os.environ["AUDIOJAX_DEBSPEECH_DIR"])
  clips = debspeech.read_manifest(debspeech.MANIFEST, debspeech.SPLIT)
  expected = collections.Counter(debspeech.split_of(c, debspeech.SPLIT, debspeech.TEST_LANGUAGES) for c in clips)
  for split in ("train", "test"):
    assert builder.info.splits[split].num_examples == expected[split]
