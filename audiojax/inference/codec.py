"""Compressing audio files to codec codes and back, for files of any length in bounded memory.

Audio is read (and resampled to the model's rate) in fixed chunks of ``chunk_seconds`` (10 s, a whole number of
frames), each encoded on its own with the model's own padding, and decoded chunk by chunk in the same split: the
model's causal state (convolution context, LSTM) restarts at every chunk boundary, exactly as if each 10 s piece were
a separate file. A file no longer than one chunk is coded exactly as ``model.encode`` / ``model.decode`` code it.

A codes file (``.npz``) holds ``codes (K, T)`` and what decoding needs to check it has the right model:
``model_id`` (a hash of the model's config and every variable: codes mean nothing to another codec, even one of the
same architecture), ``bandwidth`` (kbps), ``sample_rate``, ``frame_rate``, ``num_samples`` (the length of the
audio at the model's rate, which decoding restores) and ``chunk_frames`` (the split).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from typing import Iterator

import jax
import numpy as np
import soundfile as sf

from audiojax.audio.io import stream_audio
from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.models import codec

CHUNK_SECONDS = 10.0
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
CODES_FIELDS = ("codes", "model_id", "bandwidth", "sample_rate", "frame_rate", "num_samples", "chunk_frames")


@dataclasses.dataclass
class Codes:
  """``codes (K, T)`` of one recording and the facts decoding checks (see the module docstring)."""

  codes: np.ndarray
  model_id: str
  bandwidth: float
  sample_rate: int
  frame_rate: int
  num_samples: int
  chunk_frames: int

  def save(self, path: str) -> None:
    """Writes the codes file ``path`` whole or not at all."""
    fields = {f: getattr(self, f) for f in CODES_FIELDS}
    dtype = np.int16 if self.codes.max(initial=0) < 2 ** 15 else np.int32
    fields["codes"] = self.codes.astype(dtype)
    tmp = f"{path}.partial-{os.getpid()}"
    try:
      with open(tmp, "wb") as f:
        np.savez_compressed(f, **fields)
      os.replace(tmp, path)
    except OSError as e:
      raise UserError(f"cannot write codes file '{path}' ({e.strerror}); choose a writable --out") from None
    finally:
      if os.path.exists(tmp):
        os.remove(tmp)

  @classmethod
  def load(cls, path: str) -> "Codes":
    if not os.path.isfile(path):
      raise UserError(f"codes file '{path}' does not exist; check the path (write one with 'codec encode')")
    if not zipfile.is_zipfile(path):
      raise UserError(f"'{path}' is not a codes file (not an .npz archive); give a .npz written by 'codec encode'")
    try:
      with np.load(path, allow_pickle=False) as data:
        fields = {f: data[f] for f in CODES_FIELDS if f in data}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
      raise UserError(f"cannot read codes file '{path}' ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
                      "give a .npz written by 'codec encode'") from None
    missing = [f for f in CODES_FIELDS if f not in fields]
    if missing:
      raise UserError(f"'{path}' is not a codes file (it lacks {', '.join(missing)}); give a .npz written by "
                      "'codec encode'")
    codes = fields["codes"]
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer) or codes.shape[0] == 0:
      raise UserError(f"'{path}' holds codes of shape {codes.shape} ({codes.dtype}), not (codebooks, frames) "
                      "integers; encode the audio again")
    return cls(codes.astype(np.int32), str(fields["model_id"]), float(fields["bandwidth"]),
               int(fields["sample_rate"]), int(fields["frame_rate"]), int(fields["num_samples"]),
               int(fields["chunk_frames"]))


# compiled once per model and shape, whichever Coder calls them
_encode = jax.jit(lambda model, variables, wave, n_q: model.apply(variables, wave, n_q, method="encode"),
                  static_argnums=(0, 3))
_decode = jax.jit(lambda model, variables, codes: model.apply(variables, codes, method="decode"), static_argnums=0)


def model_id(model: codec.Codec, variables: dict) -> str:
  """A short hash of ``model``'s config and every variable's values."""
  digest = hashlib.sha256(json.dumps(codec.to_config(model), sort_keys=True).encode())
  for path, value in jax.tree_util.tree_flatten_with_path(variables)[0]:
    digest.update(jax.tree_util.keystr(path).encode())
    digest.update(np.ascontiguousarray(np.asarray(value, np.float32)).tobytes())
  return digest.hexdigest()[:16]


class Coder:
  """A codec and its variables, coding files chunk by chunk (see the module docstring)."""

  def __init__(self, model: codec.Codec, variables: dict, chunk_seconds: float = CHUNK_SECONDS,
               chunks_per_batch: int = 4):
    self.model = model
    self.variables = variables
    self.model_id = model_id(model, variables)
    self.chunk_frames = max(1, round(chunk_seconds * model.sample_rate / model.hop_length))
    self.chunks_per_batch = chunks_per_batch

  @classmethod
  def from_checkpoint(cls, path: str) -> "Coder":
    """From a codec model directory (``convert encodec``, ``export``) or a codec training workdir."""
    return cls(*load.codec(path))

  @property
  def chunk_samples(self) -> int:
    return self.chunk_frames * self.model.hop_length

  def _batches(self, chunks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Equal-length chunks stacked ``chunks_per_batch`` at a time (the last, shorter chunk alone)."""
    batch: list[np.ndarray] = []
    for chunk in chunks:
      if batch and (chunk.shape != batch[0].shape or len(batch) == self.chunks_per_batch):
        yield np.stack(batch)
        batch = []
      batch.append(chunk)
    if batch:
      yield np.stack(batch)

  def encode_batch(self, waves: np.ndarray, n_q: int) -> np.ndarray:
    """``waves (B, L)`` at the model's rate → ``codes (B, n_q, ceil(L / hop))``."""
    return np.asarray(_encode(self.model, self.variables, np.asarray(waves, np.float32), n_q))

  def decode_batch(self, codes: np.ndarray) -> np.ndarray:
    """``codes (B, K, T)`` → ``waves (B, T · hop)``."""
    return np.asarray(_decode(self.model, self.variables, np.asarray(codes, np.int32)))

  def bandwidth_of(self, n_q: int) -> float:
    """The model's bandwidth (kbps) that uses ``n_q`` codebooks."""
    for bandwidth in self.model.bandwidths:
      if self.model.bandwidth_to_n_q(bandwidth) == n_q:
        return float(bandwidth)
    raise UserError(f"no bandwidth of this codec uses {n_q} codebooks ({list(self.model.bandwidths)} kbps); the "
                    "model and its codec do not belong together")

  def encode_file(self, path: str, bandwidth: float) -> tuple[Codes, int]:
    """The codes of the audio file ``path`` at ``bandwidth`` kbps, and the file's own sample rate."""
    n_q = self.model.bandwidth_to_n_q(bandwidth)
    source_rate, chunks = stream_audio(path, self.model.sample_rate, self.chunk_samples, needed_by="the codec")
    parts, num_samples = [], 0
    for batch in self._batches(chunks):
      codes = self.encode_batch(batch, n_q)  # (N, K, T)
      parts.extend(codes)
      num_samples += batch.shape[0] * batch.shape[1]
    codes = np.concatenate(parts, axis=1)
    return Codes(codes, self.model_id, float(bandwidth), self.model.sample_rate, self.model.frame_rate, num_samples,
                 self.chunk_frames), source_rate

  def check(self, codes: Codes, source: str) -> None:
    """``codes`` (read from ``source``) were made by this model at one of its bandwidths."""
    if codes.model_id != self.model_id:
      raise UserError(f"'{source}' was encoded by another codec (model {codes.model_id}, this one is "
                      f"{self.model_id}); decode it with the --checkpoint that encoded it")
    n_q = self.model.bandwidth_to_n_q(codes.bandwidth)
    if codes.codes.shape[0] != n_q or codes.sample_rate != self.model.sample_rate:
      raise UserError(f"'{source}' holds {codes.codes.shape[0]} codebooks at {codes.sample_rate} Hz but "
                      f"{codes.bandwidth:g} kbps of this codec is {n_q} at {self.model.sample_rate} Hz; the file is "
                      "damaged: encode the audio again")
    frames = -(-codes.num_samples // self.model.hop_length)
    if codes.codes.shape[1] != frames or codes.chunk_frames < 1:
      raise UserError(f"'{source}' holds {codes.codes.shape[1]} frames for {codes.num_samples} samples (expected "
                      f"{frames}); the file is damaged: encode the audio again")
    if codes.codes.min() < 0 or codes.codes.max() >= self.model.bins:
      raise UserError(f"'{source}' holds codes outside 0..{self.model.bins - 1}; the file is damaged: encode the "
                      "audio again")

  def decode(self, codes: Codes) -> Iterator[np.ndarray]:
    """The waveform of ``codes`` (checked with :meth:`check` first) in consecutive blocks, ``num_samples`` in all."""
    frames = codes.codes.shape[1]
    chunks = (codes.codes[:, start:start + codes.chunk_frames] for start in range(0, frames, codes.chunk_frames))
    remaining = codes.num_samples
    for batch in self._batches(chunks):
      for wave in np.asarray(_decode(self.model, self.variables, batch)):
        yield wave[:remaining]
        remaining -= min(remaining, wave.shape[0])

  def decode_to_file(self, codes: Codes, out: str) -> float:
    """Writes the waveform of ``codes`` to the audio file ``out`` (whole or not at all); returns its seconds."""
    write_audio(out, self.decode(codes), self.model.sample_rate)
    return codes.num_samples / self.model.sample_rate


def write_audio(path: str, blocks: Iterator[np.ndarray], sample_rate: int) -> None:
  """Writes mono ``blocks`` (clipped to [-1, 1]) to ``path`` (.wav/.flac/.ogg, 16-bit where the format has
  samples), whole or not at all."""
  extension = os.path.splitext(path)[1].lower()
  if extension not in OUTPUT_FORMATS:
    raise UserError(f"cannot write audio to '{path}': give an --out ending in {', '.join(OUTPUT_FORMATS)}")
  tmp = f"{path}.partial-{os.getpid()}"
  try:
    with sf.SoundFile(tmp, "w", sample_rate, 1, format=OUTPUT_FORMATS[extension]) as f:
      for block in blocks:
        f.write(np.clip(block, -1.0, 1.0))
    os.replace(tmp, path)
  except (OSError, sf.LibsndfileError) as e:
    raise UserError(f"cannot write audio file '{path}' ({str(e).splitlines()[0]}); choose a writable --out") from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
