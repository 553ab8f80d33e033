"""Augmentations in JAX (jit-able, on device), their masks built by one helper, :func:`band_mask`: CED's seeded,
replayable views (the same int32 seed gives the same view) and PromptASR's :class:`SpecAugment` (from a PRNG key).

CED's consistent distillation stores, for every chunk and teacher epoch, the seed of the augmented view the teacher
saw; the student re-creates that exact view from the seed. The augmentations follow the original
(RicherMans/CED ``logitconfig``): a circular time shift of the wave by a uniform fraction in ±``max_shift`` with
probability ``shift_p`` (torch_audiomentations ``Shift``, rollover), then ONE time mask and ONE frequency mask on the
dB mel, set to 0.0, drawn from the same two uniforms ``(v, m)`` (the original passes the same values to both
maskers): width ``⌊v·P⌋``, start ``⌊m·(size − v·P)⌋`` for mask parameter P (192 frames, 24 mel bins).

The original masks up to 192 frames of a 10 s chunk (19 %); :func:`for_chunk` keeps that fraction for other chunk
lengths (38 frames for 2 s), where 192 frames would mask up to the whole chunk.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from audiojax.audio import features


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  max_shift: float = 0.5
  shift_p: float = 0.5
  time_mask_param: int = 192
  freq_mask_param: int = 24


PAPER_CHUNK_SECONDS = 10.0


def for_chunk(chunk_seconds: float) -> AugmentConfig:
  """The original's augmentation with the time mask scaled to a ``chunk_seconds`` chunk (192 frames per 10 s)."""
  default = AugmentConfig()
  return dataclasses.replace(
      default, time_mask_param=max(1, round(default.time_mask_param * chunk_seconds / PAPER_CHUNK_SECONDS)))


def _keys(seed: jax.Array) -> tuple[jax.Array, jax.Array]:
  key = jax.random.key(seed.astype(jnp.uint32))
  return jax.random.split(key)


def time_shift(wave: jax.Array, seed: jax.Array, cfg: AugmentConfig) -> jax.Array:
  """``wave (L,)`` rolled by ``round(u·L)`` samples, u ~ U(−max_shift, max_shift), with probability shift_p."""
  key = jax.random.fold_in(_keys(seed)[0], 0)
  apply_key, amount_key = jax.random.split(key)
  length = wave.shape[0]
  shift = jnp.round(jax.random.uniform(amount_key, (), minval=-cfg.max_shift, maxval=cfg.max_shift) * length)
  return jnp.where(jax.random.uniform(apply_key) < cfg.shift_p, jnp.roll(wave, shift.astype(jnp.int32)), wave)


def mask_draws(seed: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The ``(v, m)`` uniforms both masks use."""
  v, m = jax.random.uniform(_keys(seed)[1], (2,))
  return v, m


def band_mask(size: int, start: jax.Array, width: jax.Array) -> jax.Array:
  """Boolean ``(..., size)`` over an axis of ``size`` positions, True on ``[start, start + width)``, for ``start`` and
  ``width`` of any shape ``(...)`` (integer or float)."""
  idx = jnp.arange(size)
  return (idx >= start[..., None]) & (idx < (start + width)[..., None])


def spec_masks(mel: jax.Array, seed: jax.Array, cfg: AugmentConfig) -> jax.Array:
  """One time and one frequency mask (value 0.0) on a dB mel ``(F, T)``."""
  v, m = mask_draws(seed)

  def mask(size: int, param: int) -> jax.Array:
    return band_mask(size, jnp.floor(m * (size - v * param)), jnp.floor(v * param))

  masked = mask(mel.shape[0], cfg.freq_mask_param)[:, None] | mask(mel.shape[1], cfg.time_mask_param)[None, :]
  return jnp.where(masked, 0.0, mel)


def augmented_log_mel(wave: jax.Array, seeds: jax.Array, mel_cfg: features.MelConfig, cfg: AugmentConfig,
                      shift: bool = True) -> jax.Array:
  """``wave (B, L)``, ``seeds (B,)`` int32 → augmented dB mel ``(B, F, T)``; ``shift=False`` skips the time shift."""
  if shift:
    wave = jax.vmap(time_shift, in_axes=(0, 0, None))(wave, seeds, cfg)
  mel = features.log_mel(wave, mel_cfg)
  return jax.vmap(spec_masks, in_axes=(0, 0, None))(mel, seeds, cfg)


@dataclasses.dataclass(frozen=True)
class SpecAugment:
  """PromptASR's frequency and time masks on normalised features (training only), drawn from a PRNG key:
  ``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks`` bands of up to ``time_width_fraction`` of each
  utterance's valid frames (at least 1), set to 0."""

  freq_masks: int = 2
  freq_width: int = 15
  time_masks: int = 2
  time_width_fraction: float = 0.05

  def __call__(self, feats: jax.Array, lengths: jax.Array, rng: jax.Array) -> jax.Array:
    """``feats (B, T, F)`` with valid ``lengths (B,)`` → same, masked regions set to 0."""
    b, t, f = feats.shape
    k_fw, k_fs, k_tw, k_ts = jax.random.split(rng, 4)
    fw = jax.random.randint(k_fw, (b, self.freq_masks), 0, self.freq_width + 1)
    fs = jax.random.randint(k_fs, (b, self.freq_masks), 0, f) * (f - fw) // f
    max_tw = jnp.maximum((lengths * self.time_width_fraction).astype(jnp.int32), 1)[:, None]
    tw = (jax.random.uniform(k_tw, (b, self.time_masks)) * (max_tw + 1)).astype(jnp.int32)
    ts = (jax.random.uniform(k_ts, (b, self.time_masks)) * jnp.maximum(lengths[:, None] - tw, 1)).astype(jnp.int32)
    fmask = jnp.any(band_mask(f, fs, fw), axis=1)  # (B, F)
    tmask = jnp.any(band_mask(t, ts, tw), axis=1)  # (B, T)
    return jnp.where(fmask[:, None, :] | tmask[:, :, None], 0.0, feats)
