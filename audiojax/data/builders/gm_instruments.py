"""``gm_instruments``: synthetic multi-label instrument mixtures rendered from the GM SoundFont that pretty_midi ships.

Each clip mixes 1–3 notes of different classes. Every note has its own onset, length, velocity and gain, and the
mixture is peak-normalised. The labels are the classes of the notes, so the task is multi-label and mAP is
meaningful. The 22 classes are the 16 General-MIDI instrument families (``program // 8``) and 6 drum classes that
group the GM percussion keys.

The ``test`` split measures generalisation: its notes use only the programs in ``TEST_PROGRAMS`` (2 of the 8 in each
family), the pitches that are multiples of ``TEST_PITCH_EVERY`` and the drum keys in ``TEST_DRUM_KEYS``. ``train``
never uses any of them, so a model must recognise unseen instruments playing unseen pitches.

A build is a pure function of the config, so every build writes the same bytes.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from audiojax.audio.io import pcm16
from audiojax.data.builders import schema
from audiojax.data.sources import soundfont

SAMPLE_RATE = 16000

FAMILIES = ("piano", "chromatic_percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
            "pipe", "synth_lead", "synth_pad", "synth_effects", "ethnic", "percussive", "sound_effects")
# GM percussion map (channel 10). Not used: the whistles (71, 72) and the mute triangle (80, below SILENCE_DB).
DRUM_KEYS = {
    "kick": (35, 36),
    "snare": (37, 38, 40),
    "hi_hat": (42, 44, 46),
    "tom": (41, 43, 45, 47, 48, 50),
    "cymbal": (49, 51, 52, 53, 55, 57, 59),
    "hand_percussion": (39, 54, 56, 58, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 73, 74, 75, 76, 77, 78, 79, 81),
}
CLASS_NAMES = FAMILIES + tuple(DRUM_KEYS)

# Playable range (inclusive MIDI keys) of each family; renders outside a preset's range are silent and are redrawn.
FAMILY_PITCHES = {
    "piano": (36, 96), "chromatic_percussion": (48, 96), "organ": (36, 88), "guitar": (40, 84), "bass": (28, 60),
    "strings": (36, 88), "ensemble": (40, 84), "brass": (40, 82), "reed": (48, 84), "pipe": (60, 96),
    "synth_lead": (40, 84), "synth_pad": (40, 84), "synth_effects": (40, 84), "ethnic": (48, 84),
    "percussive": (40, 84), "sound_effects": (40, 84),
}
# Held out for ``test``: 2 programs per family (sound effects avoid the very quiet breath noise, 121).
TEST_PROGRAMS = frozenset((1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 65, 69, 73, 77, 81, 85, 89,
                           93, 97, 101, 105, 109, 113, 117, 123, 125))
TEST_PITCH_EVERY = 4  # test pitches are the multiples of 4 (C, E, G# in every octave)
# kick 35, snare 40, hi-hat 46, toms 43 and 48, cymbals 55 and 59, hand percussion 54, 61, 65, 69, 75 and 79
TEST_DRUM_KEYS = frozenset((35, 40, 43, 46, 48, 54, 55, 59, 61, 65, 69, 75, 79))

SILENCE_DB = -60.0  # renders quieter than this (RMS, dBFS) are out of the preset's range and are redrawn
_SOURCE_COUNT_PROBS = (0.3, 0.4, 0.3)  # P(1, 2, 3 notes in a clip)
_VELOCITY_RANGE = (60, 127)
_GAIN_DB_RANGE = (-10.0, 0.0)  # per note, after RMS normalisation, so every labelled note stays audible
_PEAK_RANGE = (0.5, 0.9)
_MAX_ONSET_FRACTION = 0.6
_MIN_HOLD_SECONDS = 0.15
_RELEASE_SECONDS = 0.5
_MAX_DRAWS = 100
_SPLIT_INDEX = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class GmInstrumentsConfig(tfds.core.BuilderConfig):
  """Clip length, split sizes and seed of one ``gm_instruments`` variant."""

  clip_seconds: float = 2.0
  num_train: int = 4000
  num_test: int = 800
  seed: int = 0


class Note(NamedTuple):
  """One rendered source of a clip (``program == soundfont.DRUMS`` for drums; ``pitch`` is then the drum key)."""

  label: int
  program: int
  pitch: int
  wave: np.ndarray
  onset: int


def is_test_pitch(pitch: int) -> bool:
  """Whether ``pitch`` is held out for ``test``."""
  return pitch % TEST_PITCH_EVERY == 0


@functools.cache
def candidates(class_name: str, split: str) -> tuple[tuple[int, int], ...]:
  """The ``(program, pitch)`` pairs a ``split`` may use for ``class_name``; the two splits' sets are disjoint."""
  test = split == "test"
  if class_name in DRUM_KEYS:
    return tuple((soundfont.DRUMS, k) for k in DRUM_KEYS[class_name] if (k in TEST_DRUM_KEYS) == test)
  family = FAMILIES.index(class_name)
  low, high = FAMILY_PITCHES[class_name]
  return tuple((program, pitch)
               for program in range(8 * family, 8 * family + 8) if (program in TEST_PROGRAMS) == test
               for pitch in range(low, high + 1) if is_test_pitch(pitch) == test)


def rms_db(wave: np.ndarray) -> float:
  """RMS level of ``wave`` in dBFS (about -200 for digital silence)."""
  return float(10.0 * np.log10(np.mean(np.square(wave, dtype=np.float64)) + 1e-20))


def _draw_note(rng: np.random.Generator, label: int, pool: tuple[tuple[int, int], ...], clip_seconds: float) -> Note:
  """Draws and renders one audible note of class ``label``; silent renders (out-of-range pitches) are redrawn."""
  for _ in range(_MAX_DRAWS):
    program, pitch = pool[rng.integers(len(pool))]
    velocity = int(rng.integers(_VELOCITY_RANGE[0], _VELOCITY_RANGE[1] + 1))
    onset = rng.uniform(0.0, _MAX_ONSET_FRACTION * clip_seconds)
    hold = rng.uniform(_MIN_HOLD_SECONDS, clip_seconds - onset)
    total = min(hold + _RELEASE_SECONDS, clip_seconds - onset)
    wave = soundfont.render_note(program, pitch, velocity, hold, total, sample_rate=SAMPLE_RATE)
    if rms_db(wave) >= SILENCE_DB:
      return Note(label, program, pitch, wave, int(onset * SAMPLE_RATE))
  raise RuntimeError(f"no audible note for class {CLASS_NAMES[label]} in {_MAX_DRAWS} draws")


def _mix(rng: np.random.Generator, notes: list[Note], num_samples: int) -> np.ndarray:
  """RMS-normalises each note, applies a random gain, sums, and peak-normalises to a random level."""
  mix = np.zeros(num_samples, np.float64)
  for note in notes:
    gain = 10.0 ** (rng.uniform(*_GAIN_DB_RANGE) / 20.0) / np.sqrt(np.mean(np.square(note.wave, dtype=np.float64)))
    segment = note.wave[:num_samples - note.onset]
    mix[note.onset:note.onset + segment.shape[0]] += gain * segment
  return mix * (rng.uniform(*_PEAK_RANGE) / np.max(np.abs(mix)))


def make_clip(config: GmInstrumentsConfig, split: str, index: int) -> dict:
  """Example ``index`` of ``split``: a deterministic function of ``(config.seed, split, index)``."""
  rng = np.random.default_rng((config.seed, _SPLIT_INDEX[split], index))
  count = rng.choice(len(_SOURCE_COUNT_PROBS), p=_SOURCE_COUNT_PROBS) + 1
  labels = sorted(rng.choice(len(CLASS_NAMES), size=count, replace=False).tolist())
  notes = [_draw_note(rng, label, candidates(CLASS_NAMES[label], split), config.clip_seconds) for label in labels]
  audio = pcm16(_mix(rng, notes, int(round(config.clip_seconds * SAMPLE_RATE))))
  return {
      "audio": audio,
      "sample_rate": SAMPLE_RATE,
      "labels": labels,
      "id": f"{split}_{index:06d}",
      "programs": [n.program for n in notes],
      "pitches": [n.pitch for n in notes],
  }


class GmInstruments(tfds.core.GeneratorBasedBuilder):
  """General-MIDI instrument-family and drum mixtures (see the module docstring for the split)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      GmInstrumentsConfig(name="demo", description="2-s clips; 4,000 train, 800 test.", clip_seconds=2.0,
                          num_train=4000, num_test=800),
      GmInstrumentsConfig(name="small", description="1-s clips; 1,600 train, 400 test (learning tests).",
                          clip_seconds=1.0, num_train=1600, num_test=400),
      GmInstrumentsConfig(name="tiny", description="1-s clips; 64 train, 32 test (for tests).", clip_seconds=1.0,
                          num_train=64, num_test=32),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=schema.tagging_features(CLASS_NAMES, extra={
            # programs[i] and pitches[i] belong to the note of labels[i]; drums have program -1 and their key as pitch
            "programs": tfds.features.Sequence(tfds.features.Scalar(dtype=np.int32)),
            "pitches": tfds.features.Sequence(tfds.features.Scalar(dtype=np.int32)),
        }),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is rendered locally
    config = self.builder_config
    return {"train": self._generate_examples("train", config.num_train),
            "test": self._generate_examples("test", config.num_test)}

  def _generate_examples(self, split: str, count: int):
    for index in range(count):
      yield index, make_clip(self.builder_config, split, index)
