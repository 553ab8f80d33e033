"""Position and timestep embeddings without parameters.

``sinusoidal_positions``: the Transformer's additive sine/cosine table (Vaswani et al.), sines and cosines
interleaved. ``apply_rotary``: rotary position embedding (Su et al., RoFormer) in the GPT-NeoX / LLaMA (Hugging Face)
"rotate half" layout: feature ``i`` pairs with feature ``i + D/2``, not with its neighbour ``i + 1`` as in the
original RoFormer / GPT-J / Meta LLaMA "interleaved" layout; weights ported from an interleaved checkpoint need their
q/k projection columns permuted. ``timestep_embedding``: the diffusion-step embedding of DDPM as Hugging Face
diffusers' ``get_timestep_embedding`` computes it.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.errors import UserError


def sinusoidal_positions(length: int, dim: int) -> jax.Array:
  """``(length, dim)`` sine/cosine position table (Vaswani et al.)."""
  pos = np.arange(length)[:, None]
  freqs = np.exp(-math.log(10000.0) * np.arange(0, dim, 2) / dim)
  table = np.zeros((length, dim), np.float32)
  table[:, 0::2], table[:, 1::2] = np.sin(pos * freqs), np.cos(pos * freqs)
  return jnp.asarray(table)


def sinusoidal_at(positions: jax.Array, dim: int) -> jax.Array:
  """:func:`sinusoidal_positions`'s rows at integer ``positions (...)`` (traced: decode steps) → ``(..., dim)``
  float32."""
  freqs = jnp.exp(-math.log(10000.0) * jnp.arange(0, dim, 2, dtype=jnp.float32) / dim)
  angles = jnp.asarray(positions, jnp.float32)[..., None] * freqs
  return jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1).reshape(*angles.shape[:-1], dim)


def apply_rotary(x: jax.Array, positions: jax.Array, base: float = 10000.0) -> jax.Array:
  """Rotary position embedding of queries or keys ``x (B, L, H, D)`` at ``positions (B, L)`` or ``(L,)`` → same
  shape and dtype.

  With ``θ_j = base^(-2j/D)`` for ``j < D/2``, the pair ``(x_j, x_{j+D/2})`` at position ``p`` is rotated by the
  angle ``p·θ_j`` ("rotate half": ``x·cos + rotate_half(x)·sin`` with ``rotate_half([x₁, x₂]) = [-x₂, x₁]``), so
  the dot product of a rotated query and key depends on their positions only through ``p_q − p_k``. Computed in
  float32.
  """
  d = x.shape[-1]
  if d % 2:
    raise UserError(f"rotary position embedding needs an even head dimension, got {d}; choose an even head_dim")
  inv_freq = 1.0 / base ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d)  # (D/2,)
  angles = jnp.asarray(positions, jnp.float32)[..., None] * inv_freq  # (B, L, D/2) or (L, D/2)
  angles = jnp.broadcast_to(angles, (x.shape[0], x.shape[1], d // 2))[:, :, None, :]  # (B, L, 1, D/2)
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0, flip_sin_to_cos: bool = False,
                       downscale_freq_shift: float = 1.0, scale: float = 1.0) -> jax.Array:
  """Sinusoidal embedding of diffusion timesteps ``t (B,)`` (may be fractional) → ``(B, dim)`` float32, as
  diffusers' ``get_timestep_embedding`` (same defaults).

  With ``h = dim // 2`` frequencies ``f_j = exp(-ln(max_period) · j / (h - downscale_freq_shift))``, ``j < h``:
  ``[sin(scale·t·f), cos(scale·t·f)]``, or ``[cos, sin]`` with ``flip_sin_to_cos``; an odd ``dim`` gets a zero last
  column. The defaults are the original DDPM code's (sine first, ``h - 1``); Stable Diffusion's UNet uses
  ``flip_sin_to_cos=True, downscale_freq_shift=0``.
  """
  half = dim // 2
  exponent = -math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - downscale_freq_shift)
  angles = scale * (jnp.asarray(t, jnp.float32)[:, None] * jnp.exp(exponent)[None, :])
  sin, cos = jnp.sin(angles), jnp.cos(angles)
  emb = jnp.concatenate([cos, sin] if flip_sin_to_cos else [sin, cos], axis=-1)
  return jnp.pad(emb, ((0, 0), (0, dim % 2)))
