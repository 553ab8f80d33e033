"""Audio file IO: read wav/flac/ogg (anything libsndfile reads), mix to mono, resample to the model's rate.

Every failure is a :class:`audiojax.errors.UserError` naming the file and the fix.
"""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import soundfile as sf
import soxr

from audiojax.errors import UserError


class Audio(NamedTuple):
  """A decoded recording. ``wave (L,)`` float32 in [-1, 1] at ``sample_rate``; ``source_rate`` is the file's rate."""

  wave: np.ndarray
  sample_rate: int
  source_rate: int

  @property
  def resampled(self) -> bool:
    return self.source_rate != self.sample_rate


def resample(wave: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
  """Band-limited resampling (soxr, high quality). ``wave (L,)`` or ``(L, C)`` float → float32."""
  if source_rate == target_rate:
    return np.asarray(wave, np.float32)
  return soxr.resample(np.asarray(wave, np.float32), source_rate, target_rate, quality="HQ").astype(np.float32)


def to_mono(wave: np.ndarray) -> np.ndarray:
  """``(L,)`` or ``(L, C)`` → ``(L,)`` by averaging channels."""
  return wave if wave.ndim == 1 else wave.mean(axis=1)


def load_audio(path: str | os.PathLike, sample_rate: int, *, min_seconds: float = 0.0,
               needed_by: str = "the model") -> Audio:
  """Reads ``path``, mixes to mono and resamples to ``sample_rate``.

  Raises UserError for a missing, unreadable, empty, non-finite or too-short (< ``min_seconds``) file.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise UserError(f"audio file '{path}' does not exist; check the path")
  if os.path.isdir(path):
    raise UserError(f"'{path}' is a directory, not an audio file; pass the audio files inside it")
  try:
    wave, source_rate = sf.read(path, dtype="float32", always_2d=False)
  except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise UserError(f"cannot read audio file '{path}' ({reason}); give a WAV, FLAC or OGG recording") from None
  wave = to_mono(np.asarray(wave, np.float32))
  if wave.size == 0:
    raise UserError(f"audio file '{path}' is empty (0 samples); give a recording that contains sound")
  if not np.all(np.isfinite(wave)):
    raise UserError(f"audio file '{path}' contains NaN or infinite samples; re-export it as 16-bit PCM")
  duration = wave.size / source_rate
  if duration < min_seconds:
    raise UserError(f"audio file '{path}' is {duration * 1000:.0f} ms long but {needed_by} needs at least "
                    f"{min_seconds * 1000:.0f} ms; pad the recording or drop it")
  return Audio(resample(wave, source_rate, sample_rate), sample_rate, int(source_rate))


def pcm16(wave: np.ndarray) -> np.ndarray:
  """float wave in [-1, 1] → int16 PCM (clipped), the storage format of audiojax datasets."""
  return np.clip(np.round(np.asarray(wave, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def from_pcm16(pcm: np.ndarray) -> np.ndarray:
  """int16 PCM → float32 in [-1, 1) (divides by 32768, as the CED data loader does)."""
  return np.asarray(pcm, np.float32) / 32768.0
