"""gm_instruments: the tiny config built into a temp dir and read back through tfds.data_source, without TF."""
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from audiojax.data import builders
from audiojax.data.builders import gm_instruments as gm
from audiojax.data.sources import soundfont
from audiojax.errors import UserError

NAME = "gm_instruments/tiny"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("tfds")
  builders.build(NAME, path)
  return path


def read(data_dir, split):
  source = tfds.data_source(NAME, split=split, data_dir=os.fspath(data_dir))
  return [source[i] for i in range(len(source))]


def notes(examples):
  """(programs, melodic pitches, drum keys) used by ``examples``."""
  programs, pitches, keys = set(), set(), set()
  for ex in examples:
    for program, pitch in zip(ex["programs"], ex["pitches"]):
      if program == soundfont.DRUMS:
        keys.add(int(pitch))
      else:
        programs.add(int(program))
        pitches.add(int(pitch))
  return programs, pitches, keys


def test_format(data_dir):
  builder = builders.build(NAME, data_dir)
  assert builders.class_names(builder) == list(gm.CLASS_NAMES)
  for split, count in (("train", 64), ("test", 32)):
    examples = read(data_dir, split)
    assert len(examples) == count
    for ex in examples:
      assert ex["audio"].dtype == np.int16 and ex["audio"].shape == (16000,)
      assert int(ex["sample_rate"]) == 16000
      assert isinstance(ex["id"], bytes) and ex["id"].startswith(split.encode())
      labels = [int(label) for label in ex["labels"]]
      assert 1 <= len(labels) <= 3 and len(set(labels)) == len(labels)
      assert len(ex["programs"]) == len(ex["pitches"]) == len(labels)


def test_labels_match_notes(data_dir):
  drum_class = {key: name for name, keys in gm.DRUM_KEYS.items() for key in keys}
  for ex in read(data_dir, "train") + read(data_dir, "test"):
    for label, program, pitch in zip(ex["labels"], ex["programs"], ex["pitches"]):
      expected = drum_class[int(pitch)] if program == soundfont.DRUMS else gm.FAMILIES[program // 8]
      assert gm.CLASS_NAMES[label] == expected


def test_test_split_is_held_out(data_dir):
  train_programs, train_pitches, train_keys = notes(read(data_dir, "train"))
  test_programs, test_pitches, test_keys = notes(read(data_dir, "test"))
  assert test_programs and test_pitches and test_keys
  assert not train_programs & test_programs
  assert not train_pitches & test_pitches
  assert not train_keys & test_keys
  assert test_programs <= gm.TEST_PROGRAMS and test_keys <= gm.TEST_DRUM_KEYS
  assert all(gm.is_test_pitch(p) for p in test_pitches)
  for name in gm.CLASS_NAMES:  # the full candidate sets, not just what the tiny build happened to draw
    train, test = gm.candidates(name, "train"), gm.candidates(name, "test")
    assert train and test
    assert not {pitch for _, pitch in train} & {pitch for _, pitch in test}
    if name not in gm.DRUM_KEYS:
      assert not {program for program, _ in train} & {program for program, _ in test}


def test_audio_is_audible_and_unclipped(data_dir):
  for ex in read(data_dir, "train") + read(data_dir, "test"):
    wave = ex["audio"].astype(np.float64) / 32768.0
    assert 0.49 <= np.max(np.abs(wave)) <= 0.91  # peak-normalised into [0.5, 0.9]
    assert gm.rms_db(wave) > -45.0


def contents(examples):
  return {ex["id"]: (ex["audio"].tobytes(), *(tuple(int(v) for v in ex[k]) for k in ("labels", "programs", "pitches")))
          for ex in examples}


def test_build_is_deterministic(data_dir, tmp_path):
  # Compares decoded examples: the files themselves differ in protobuf map-entry order from process to process.
  builders.build(NAME, tmp_path)
  for split in ("train", "test"):
    assert contents(read(data_dir, split)) == contents(read(tmp_path, split))


def test_render_does_not_leak_between_notes():
  first = soundfont.render_note(0, 60, 100, 0.3, 0.5)
  soundfont.render_note(48, 60, 127, 5.0, 0.2)  # cut while a sustained note still sounds
  soundfont.render_note(soundfont.DRUMS, 49, 127, 0.1, 0.2)
  assert np.array_equal(soundfont.render_note(0, 60, 100, 0.3, 0.5), first)
  assert first.dtype == np.float32 and first.shape == (8000,)


def test_build_rejects_bad_requests(tmp_path):
  with pytest.raises(UserError, match="gm_instruments/demo"):
    builders.build("gm_instruments/huge", tmp_path)
  with pytest.raises(UserError, match="manual_dir"):
    builders.build(NAME, tmp_path, manual_dir=tmp_path)
