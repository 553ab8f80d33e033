"""How close a codec's resynthesis is to its input, per example and over the valid samples only (clips are
zero-padded to one batch shape): log-mel distance, scale-invariant SNR, and the usage of each codebook.

Waves are ``(B, L)`` float32 with ``lengths (B,)`` valid samples; everything runs under ``jax.jit``.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.audio import features

MEL_N_FFT, MEL_BINS = 1024, 80  # the mel of the distance: 64 ms windows, a quarter hop, 80 bands (16 kHz)


def log_mel_distance(x: jax.Array, y: jax.Array, lengths: jax.Array, sample_rate: int) -> jax.Array:
  """Mean absolute difference of the natural-log mels (floor 1e-5) of ``x`` and ``y`` over the frames whose
  centre lies in the valid samples → ``(B,)``."""
  hop = MEL_N_FFT // 4
  mel = lambda w: features.log_clamp(features.mel_spectrogram(
      w, sample_rate=sample_rate, n_fft=MEL_N_FFT, hop_length=hop, n_mels=MEL_BINS, pad_mode="constant"))
  diff = jnp.abs(mel(x) - mel(y))  # (B, n_mels, T)
  centres = jnp.arange(diff.shape[-1]) * hop
  valid = (centres[None, :] < lengths[:, None]).astype(diff.dtype)  # (B, T)
  return jnp.sum(diff * valid[:, None, :], axis=(1, 2)) / (MEL_BINS * jnp.maximum(jnp.sum(valid, axis=1), 1.0))


def si_snr(reference: jax.Array, estimate: jax.Array, lengths: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Scale-invariant SNR in dB of ``estimate`` against ``reference`` over each example's valid samples, both made
  zero-mean there → ``(B,)``."""
  valid = (jnp.arange(reference.shape[1])[None, :] < lengths[:, None]).astype(reference.dtype)
  count = jnp.maximum(jnp.sum(valid, axis=1, keepdims=True), 1.0)
  centre = lambda w: (w - jnp.sum(w * valid, axis=1, keepdims=True) / count) * valid
  s, e = centre(reference), centre(estimate)
  target = jnp.sum(e * s, axis=1, keepdims=True) / (jnp.sum(s * s, axis=1, keepdims=True) + eps) * s
  noise = e - target
  return 10 * jnp.log10((jnp.sum(target * target, axis=1) + eps) / (jnp.sum(noise * noise, axis=1) + eps))


def code_counts(codes: jax.Array, frames: jax.Array, bins: int) -> jax.Array:
  """How often each code is used in the valid frames: ``codes (B, K, T)``, ``frames (B,)`` → ``(B, K, bins)``."""
  valid = (jnp.arange(codes.shape[-1])[None, None, :] < frames[:, None, None]).astype(jnp.float32)
  return jnp.sum(jax.nn.one_hot(codes, bins, dtype=jnp.float32) * valid[..., None], axis=2)


def perplexity(counts: np.ndarray) -> np.ndarray:
  """``exp(entropy)`` of each codebook's usage, ``counts (K, bins)`` → ``(K,)``: the number of equally used codes it
  is worth."""
  p = counts / np.maximum(counts.sum(axis=-1, keepdims=True), 1.0)
  logs = np.log(np.where(p > 0, p, 1.0))
  return np.exp(-np.sum(p * logs, axis=-1))


def frames_of(lengths: np.ndarray | jax.Array, hop: int):
  """Codec frames covering ``lengths`` samples: ``ceil(L / hop)``."""
  return (lengths + hop - 1) // hop


def bandwidth_name(kbps: float) -> str:
  """``1.5`` → ``"1.5kbps"``, the suffix of the per-bandwidth eval keys."""
  return f"{kbps:g}kbps" if not math.isclose(kbps, round(kbps)) else f"{int(round(kbps))}kbps"
