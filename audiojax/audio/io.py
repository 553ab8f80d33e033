"""Audio file IO: read wav/flac/ogg (anything libsndfile reads), mix to mono, resample to the model's rate.

Every failure is a :class:`audiojax.errors.UserError` naming the file and the fix.
"""
from __future__ import annotations

import os
import struct
from typing import Iterator, NamedTuple

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


def _open(path: str) -> sf.SoundFile:
  if not os.path.exists(path):
    raise UserError(f"audio file '{path}' does not exist; check the path")
  if os.path.isdir(path):
    raise UserError(f"'{path}' is a directory, not an audio file; pass the audio files inside it")
  try:
    f = sf.SoundFile(path)
  except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise UserError(f"cannot read audio file '{path}' ({reason}); give a WAV, FLAC or OGG recording") from None
  shortfall = _wav_shortfall(path) if f.format == "WAV" else None
  if shortfall:
    f.close()
    announced, present = shortfall
    raise UserError(f"audio file '{path}' is truncated: its header announces {announced} bytes of audio but only "
                    f"{present} are there; copy or download it again")
  return f


FULL_SCALE_LIMIT = 2.0  # float samples beyond this are not audio in [-1, 1] with some headroom, but mis-scaled


def _check(path: str, wave: np.ndarray, num_samples: int, source_rate: int, min_seconds: float,
           needed_by: str) -> None:
  """Validates a decoded block; ``num_samples`` is the file's length (for the empty / too-short checks)."""
  if num_samples == 0:
    raise UserError(f"audio file '{path}' is empty (0 samples); give a recording that contains sound")
  if not np.all(np.isfinite(wave)):
    raise UserError(f"audio file '{path}' contains NaN or infinite samples; re-export it as 16-bit PCM")
  peak = float(np.max(np.abs(wave))) if wave.size else 0.0
  if peak > FULL_SCALE_LIMIT:
    raise UserError(f"audio file '{path}' has samples of magnitude {peak:.1f}, far beyond full scale (1.0); its "
                    f"float samples are mis-scaled: rescale it to [-1, 1] or re-export it as 16-bit PCM")
  duration = num_samples / source_rate
  if duration < min_seconds:
    raise UserError(f"audio file '{path}' is {duration * 1000:.0f} ms long but {needed_by} needs at least "
                    f"{min_seconds * 1000:.0f} ms; pad the recording or drop it")


def _read(f: sf.SoundFile, path: str, frames: int = -1) -> np.ndarray:
  """``frames`` samples (all: -1) of ``f`` as float32 ``(n, channels)``; a decoding failure (a damaged or cut-off
  FLAC/OGG) is a UserError naming the file."""
  try:
    return f.read(frames, dtype="float32", always_2d=True)
  except (sf.LibsndfileError, RuntimeError) as e:
    raise UserError(f"cannot decode audio file '{path}' ({str(e).strip()}); it is damaged or cut off: copy or "
                    f"download it again") from None


def _wav_shortfall(path: str) -> tuple[int, int] | None:
  """``(announced, present)`` bytes of a RIFF/WAVE file's ``data`` chunk when fewer are present than its header
  says (libsndfile silently reads what is there), else None."""
  with open(path, "rb") as f:
    if f.read(12)[8:12] != b"WAVE":
      return None
    while True:
      header = f.read(8)
      if len(header) < 8:
        return None
      size = struct.unpack("<I", header[4:])[0]
      if header[:4] == b"data":
        present = os.path.getsize(path) - f.tell()
        return (size, present) if size != 0xFFFFFFFF and present < size else None
      f.seek(size + (size & 1), os.SEEK_CUR)


def load_audio(path: str | os.PathLike, sample_rate: int, *, min_seconds: float = 0.0,
               needed_by: str = "the model", start_seconds: float = 0.0, seconds: float | None = None) -> Audio:
  """Reads ``path`` (or only ``seconds`` of it from ``start_seconds``: the rest is never read), mixes to mono and
  resamples to ``sample_rate``.

  Raises UserError for a missing, unreadable, empty, non-finite or too-short (< ``min_seconds``) file.
  """
  path = os.fspath(path)
  with _open(path) as f:
    source_rate = f.samplerate
    if start_seconds:
      f.seek(min(int(round(start_seconds * source_rate)), f.frames))
    wave = to_mono(_read(f, path, -1 if seconds is None else int(round(seconds * source_rate))))
  _check(path, wave, wave.shape[0], source_rate, min_seconds, needed_by)
  return Audio(resample(wave, source_rate, sample_rate), sample_rate, int(source_rate))


def duration_seconds(path: str | os.PathLike) -> tuple[float, int]:
  """``(seconds, sample rate)`` of an audio file, from its header."""
  path = os.fspath(path)
  with _open(path) as f:
    return f.frames / f.samplerate, int(f.samplerate)


def stream_audio(path: str | os.PathLike, sample_rate: int, block_samples: int, *, min_seconds: float = 0.0,
                 needed_by: str = "the model") -> tuple[int, Iterator[np.ndarray]]:
  """Reads ``path`` incrementally (memory bounded by the block size, whatever the file's length): returns the file's
  sample rate and an iterator over mono float32 blocks at ``sample_rate`` of exactly ``block_samples`` samples, the
  last one shorter. Resampling is continuous across blocks (soxr stream). Same errors as :func:`load_audio`."""
  path = os.fspath(path)
  f = _open(path)
  source_rate = f.samplerate
  _check(path, np.zeros(0, np.float32), f.frames, source_rate, min_seconds, needed_by)

  def blocks() -> Iterator[np.ndarray]:
    stream = soxr.ResampleStream(source_rate, sample_rate, 1, dtype="float32", quality="HQ") \
        if source_rate != sample_rate else None
    pending = np.zeros(0, np.float32)
    read_size = max(1, int(block_samples * source_rate / sample_rate))
    with f:
      while True:
        raw = _read(f, path, read_size)
        last = raw.shape[0] < read_size
        mono = to_mono(raw)
        _check(path, mono, f.frames, source_rate, 0.0, needed_by)
        if stream is not None:
          mono = stream.resample_chunk(mono, last=last)
        pending = np.concatenate([pending, mono])
        while pending.shape[0] >= block_samples:
          yield pending[:block_samples]
          pending = pending[block_samples:]
        if last:
          break
    if pending.shape[0]:
      yield pending

  return int(source_rate), blocks()


def pcm16(wave: np.ndarray) -> np.ndarray:
  """float wave in [-1, 1] → int16 PCM (clipped), the storage format of audiojax datasets."""
  return np.clip(np.round(np.asarray(wave, np.float64) * 32768.0), -32768, 32767).astype(np.int16)


def from_pcm16(pcm: np.ndarray) -> np.ndarray:
  """int16 PCM → float32 in [-1, 1) (divides by 32768, as the CED data loader does)."""
  return np.asarray(pcm, np.float32) / 32768.0
