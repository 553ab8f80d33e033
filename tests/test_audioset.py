"""audioset: a tiny AudioSet download layout (official CSV format, mixed clip names and formats) built and read back."""
import logging
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from audiojax.data import builders
from audiojax.data.builders import audioset
from audiojax.errors import UserError
from audiojax.tasks import registry

NAME = "audioset/balanced"
CLASSES = """index,mid,display_name
0,/m/09x0r,"Speech"
1,/m/05zppz,"Male speech, man speaking"
2,/m/04rlf,"Music"
3,/m/0jbk,"Animal"
4,/m/068hy,"Domestic animals, pets"
"""
HEADER = """# Segments csv created Sun Mar  5 10:54:31 2017
# num_ytids=4, num_segs=4, num_unique_labels=5, num_positive_labels=7
# YTID, start_seconds, end_seconds, positive_labels
"""
BALANCED = {  # ytid: (start, end, mids)
    "abcdefghijk": (30.0, 32.0, "/m/09x0r,/m/05zppz"),
    "pq-rs_tuvwx": (0.0, 2.0, "/m/04rlf"),
    "Yabc_def-gh": (10.0, 12.0, "/m/0jbk,/m/068hy"),
    "YbcDEF12345": (5.0, 7.0, "/m/068hy"),
}
EVAL = {
    "seg_cut-001": (30.0, 32.0, "/m/04rlf,/m/09x0r"),
    "fullvideo01": (30.0, 32.0, "/m/05zppz"),
    "missingclip": (0.0, 2.0, "/m/09x0r"),
    "corruptfile": (0.0, 2.0, "/m/0jbk"),
}


def segments_csv(rows):
  return HEADER + "".join(f'{ytid}, {start:.3f}, {end:.3f}, "{mids}"\n' for ytid, (start, end, mids) in rows.items())


def tone(seconds, rate, channels=1, freq=440.0):
  t = np.arange(int(seconds * rate)) / rate
  wave = 0.3 * np.sin(2 * np.pi * freq * t)
  return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("audioset")
  (root / "clips" / "eval").mkdir(parents=True)
  (root / audioset.CLASS_CSV).write_text(CLASSES)
  (root / "balanced_train_segments.csv").write_text(segments_csv(BALANCED))
  (root / "unbalanced_train_segments.csv").write_text(HEADER)
  (root / "eval_segments.csv").write_text(segments_csv(EVAL))
  sf.write(root / "abcdefghijk.wav", tone(2.0, 16000), 16000)  # <ytid>, 16 kHz mono
  sf.write(root / "clips" / "Ypq-rs_tuvwx.flac", tone(2.0, 44100, 2), 44100)  # Y<ytid> (PANNs), 44.1 kHz stereo
  sf.write(root / "clips" / "YYabc_def-gh.wav", tone(2.0, 44100, 2), 44100)  # Y<ytid> where the ytid starts with Y
  sf.write(root / "clips" / "YbcDEF12345.flac", tone(2.0, 16000), 16000)  # exact ytid that starts with Y
  sf.write(root / "clips" / "eval" / "seg_cut-001_30.000_32.000.wav", tone(2.0, 44100, 2), 44100)
  full = np.zeros(40 * 16000)  # the whole video: only [30 s, 32 s] is kept
  full[30 * 16000:32 * 16000] = tone(2.0, 16000, freq=1000.0)
  sf.write(root / "clips" / "eval" / "fullvideo01.wav", full, 16000)
  (root / "clips" / "eval" / "corruptfile.wav").write_bytes(b"RIFF this is not audio")
  sf.write(root / "clips" / "notinanycsv.wav", tone(0.5, 16000), 16000)
  (root / "clips" / "README.txt").write_text("not audio")
  return root


class Recorder(logging.Handler):
  """Keeps the messages logged while it is attached."""

  def __init__(self):
    super().__init__(logging.INFO)
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def built(manual_dir, tmp_path_factory):
  """(builder, data_dir, messages logged by the build)."""
  data_dir = tmp_path_factory.mktemp("tfds")
  logger, recorder = logging.getLogger("audiojax"), Recorder()
  level = logger.level
  logger.addHandler(recorder)
  logger.setLevel(logging.INFO)
  try:
    builder = builders.build(NAME, data_dir, manual_dir=manual_dir)
  finally:
    logger.removeHandler(recorder)
    logger.setLevel(level)
  return builder, data_dir, recorder.messages


def read(data_dir, split):
  """``{ytid: example}`` read back without manual_dir, as the training pipeline does."""
  source = tfds.data_source(NAME, split=split, data_dir=os.fspath(data_dir))
  return {source[i]["id"].decode(): source[i] for i in range(len(source))}


def test_class_names_come_from_the_csv(built):
  builder, data_dir, _ = built
  names = ["Speech", "Male speech, man speaking", "Music", "Animal", "Domestic animals, pets"]
  assert builders.class_names(builder) == names
  assert builders.class_names(builders.build(NAME, data_dir)) == names  # prepared: manual_dir no longer needed


def test_every_naming_scheme_is_found_with_its_labels(built):
  _, data_dir, _ = built
  train, evaluation = read(data_dir, "balanced_train"), read(data_dir, "eval")
  assert sorted(train) == sorted(BALANCED)
  assert sorted(evaluation) == ["fullvideo01", "seg_cut-001"]
  expected = {"abcdefghijk": [0, 1], "pq-rs_tuvwx": [2], "Yabc_def-gh": [3, 4], "YbcDEF12345": [4],
              "seg_cut-001": [0, 2], "fullvideo01": [1]}
  for ytid, ex in {**train, **evaluation}.items():
    assert sorted(int(label) for label in ex["labels"]) == expected[ytid]
    start, end, _ = {**BALANCED, **EVAL}[ytid]
    assert float(ex["start"]) == start and float(ex["end"]) == end


def test_audio_is_16k_mono_int16_of_the_segment_length(built):
  _, data_dir, _ = built
  for ex in [*read(data_dir, "balanced_train").values(), *read(data_dir, "eval").values()]:
    assert int(ex["sample_rate"]) == 16000
    assert ex["audio"].dtype == np.int16 and ex["audio"].ndim == 1
    assert abs(ex["audio"].shape[0] - 32000) <= 1
    assert 0.25 < np.max(np.abs(ex["audio"])) / 32768 < 0.35


def test_full_video_is_cut_to_the_segment(built):
  _, data_dir, _ = built
  audio = read(data_dir, "eval")["fullvideo01"]["audio"]
  expected = np.round(tone(2.0, 16000, freq=1000.0) * 32768).astype(np.int16)
  np.testing.assert_allclose(audio, expected, atol=2)


def test_missing_and_unreadable_clips_are_counted_and_listed(built):
  builder, _, messages = built
  with open(os.path.join(builder.data_dir, "missing_eval.txt")) as f:
    rows = dict(line.rstrip("\n").split("\t", 1) for line in f)
  assert set(rows) == {"missingclip", "corruptfile"}
  assert rows["missingclip"] == "missing"
  assert rows["corruptfile"].startswith("unreadable:") and "corruptfile.wav" in rows["corruptfile"]
  with open(os.path.join(builder.data_dir, "missing_balanced_train.txt")) as f:
    assert f.read() == ""
  listing = os.path.join(builder.data_dir, "missing_eval.txt")
  assert f"audioset eval: 2 of 4 clips found; 1 missing, 1 unreadable (listed in {listing})" in messages
  assert "audioset balanced_train: all 4 clips found" in messages


@pytest.mark.parametrize("stem, ytid", [
    ("abcdefghijk", "abcdefghijk"),
    ("Yabcdefghijk", "abcdefghijk"),
    ("abcdefghijk_30", "abcdefghijk"),
    ("abcdefghijk_30.000_40.000", "abcdefghijk"),
    ("Yabcdefghijk_30000-40000", "abcdefghijk"),
    ("YbcDEF12345", "YbcDEF12345"),
    ("YYbcDEF12345", "YbcDEF12345"),
    ("abcdefghijk_take2", None),
    ("zzzzzzzzzzz", None),
])
def test_resolve_ytid(stem, ytid):
  assert audioset.resolve_ytid(stem, {"abcdefghijk", "YbcDEF12345"}) == ytid


def test_missing_manual_dir_or_csv_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    builders.build(NAME, tmp_path / "data", manual_dir=tmp_path / "nowhere")
  (tmp_path / "empty").mkdir()
  with pytest.raises(UserError, match=r"class_labels_indices\.csv.*research\.google\.com/audioset/download\.html"):
    builders.build(NAME, tmp_path / "data", manual_dir=tmp_path / "empty")
  (tmp_path / "empty" / audioset.CLASS_CSV).write_text(CLASSES)
  with pytest.raises(UserError, match=r"balanced_train_segments\.csv"):
    builders.build(NAME, tmp_path / "data", manual_dir=tmp_path / "empty")
  with pytest.raises(UserError, match="manual_dir"):
    builders.build(NAME, tmp_path / "data")


def test_split_without_any_clip_is_a_user_error(manual_dir, tmp_path):
  with pytest.raises(UserError, match=r"unbalanced_train_segments\.csv lists 0 clips"):
    builders.build("audioset/full", tmp_path, manual_dir=manual_dir)


def test_supervised_audioset_config_trains_and_evaluates(manual_dir, tmp_path):
  """The AudioSet experiment (`:local`) runs end to end on the downloaded-layout reader."""
  from audiojax.config import loader as config_lib
  from audiojax.train import loop

  config = config_lib.load("experiments/ced/audioset.py:local,variant=tiny,subset=as20k")
  config_lib.override(config, [f"--config.data.manual_dir={manual_dir}", f"--config.data.data_dir={tmp_path / 'tfds'}",
                               "--config.data.clip_seconds=2.0", "--config.train.steps=2",
                               "--config.train.progress_bar=false"])
  result = loop.train(registry.build(config), str(tmp_path / "workdir"))
  assert result["eval"]["eval/examples"] == 2  # the eval clips that exist and decode
  names = open(tmp_path / "workdir" / "class_names.txt").read().splitlines()
  assert names == ["Speech", "Male speech, man speaking", "Music", "Animal", "Domestic animals, pets"]

  # the paper's student setup, distilled from that model as a one-member teacher ensemble
  from audiojax.inference import teacher
  teacher.teacher_pass([str(tmp_path / "workdir")], "audioset/balanced", str(tmp_path / "tfds"),
                       str(tmp_path / "store"), split="balanced_train", epochs=2, top_k=3, clip_seconds=2.0,
                       batch_size=8)
  student = config_lib.load("experiments/ced/distill_audioset.py:local,variant=tiny,subset=as20k")
  config_lib.override(student, [f"--config.distill.store={tmp_path / 'store'}",
                                f"--config.data.data_dir={tmp_path / 'tfds'}", "--config.data.clip_seconds=2.0",
                                "--config.train.steps=4", "--config.eval.every_steps=2",
                                "--config.checkpoint.every_steps=2", "--config.train.progress_bar=false"])
  result = loop.train(registry.build(student), str(tmp_path / "student"))
  assert "eval/averaged_mAP" in result["eval"] and (tmp_path / "student" / "averaged" / "model.json").exists()


def test_a_long_full_video_file_is_read_only_at_its_segment(tmp_path):
  """An hour of audio costs the memory of its labelled 10 s (issue: the builder read full-video files whole)."""
  import tracemalloc
  path = tmp_path / "hour.wav"
  rate, minutes = 16000, 20
  with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
    for minute in range(minutes):
      block = np.zeros(60 * rate, np.float32)
      if minute == 12:
        block[:10 * rate] = tone(10.0, rate, freq=1000.0)
      f.write(block)
  segment = audioset.Segment("hour", 720.0, 730.0, (0,))
  tracemalloc.start()
  audio = audioset.load_segment(str(path), segment)
  peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB for a {minutes}-min file"  # whole: 77 MiB as float32
  np.testing.assert_allclose(audio, np.round(tone(10.0, rate, freq=1000.0) * 32768).astype(np.int16), atol=2)
