"""Normalisation layers over the last axis, their scale and bias ``(D,)`` on the logical axis ``embed``.

``layer_norm``: Flax's LayerNorm (the ViT and Conformer blocks). ``TwoPassLayerNorm``: PyTorch's LayerNorm
numerics in float32 for ported checkpoints (BERT), its variables in any collection. ``RMSNorm``: the LLaMA-style
root-mean-square norm. ``AdaptiveLayerNorm``: a LayerNorm whose scale and shift come from a conditioning vector
(VALL-E's stage-conditioned norm).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.nn.layers import param, variable


def layer_norm(epsilon: float, dtype: Any, name: str) -> nn.LayerNorm:
  """LayerNorm with logically-partitioned scale/bias ``(D,)`` on the ``embed`` axis."""
  return nn.LayerNorm(epsilon=epsilon, dtype=dtype, name=name,
                      scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                      bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))


class TwoPassLayerNorm(nn.Module):
  """LayerNorm over the last axis with the two-pass variance (as PyTorch), in float32: ``x (..., D) → (..., D)``
  in ``dtype``. ``scale``/``bias (D,)`` live in ``collection`` (:func:`audiojax.nn.layers.variable`: zero
  placeholders outside ``params``)."""

  epsilon: float
  collection: str = "params"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    d = x.shape[-1]
    scale = variable(self, self.collection, "scale", nn.initializers.ones, (d,), ("embed",))
    bias = variable(self, self.collection, "bias", nn.initializers.zeros, (d,), ("embed",))
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return ((x - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias).astype(self.dtype)


class RMSNorm(nn.Module):
  """``x / sqrt(mean(x², last axis) + epsilon) · scale``, computed in float32: ``x (..., D) → (..., D)`` in
  ``dtype``. No mean subtraction, no bias; ``scale (D,)`` starts at one."""

  epsilon: float = 1e-6
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    scale = param(self, "scale", nn.initializers.ones, (x.shape[-1],), ("embed",))
    x = x.astype(jnp.float32)
    return (x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + self.epsilon) * scale).astype(
        self.dtype)


class AdaptiveLayerNorm(nn.Module):
  """``x (B, N, D)``, ``cond (B, C)`` → ``a(cond) · LN(x) + b(cond)`` with ``[a, b] = cond @ W + [1, 0]``: a
  LayerNorm without its own affine, whose scale and shift are a linear function of the condition (VALL-E's AdaLN,
  whose condition is the embedding of the NAR stage). ``W (C, 2, D)`` starts at zero, so the layer starts as a plain
  LayerNorm. Statistics in float32."""

  epsilon: float = 1e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, cond: jax.Array) -> jax.Array:
    d = x.shape[-1]
    kernel = param(self, "kernel", nn.initializers.zeros, (cond.shape[-1], 2, d), (None, None, "embed"))
    bias = param(self, "bias", lambda key, shape: jnp.stack([jnp.ones(shape[1:]), jnp.zeros(shape[1:])]), (2, d),
                 (None, "embed"))
    affine = jnp.einsum("bc,ckd->bkd", cond.astype(jnp.float32), kernel) + bias  # (B, 2, D)
    x = x.astype(jnp.float32)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    normed = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
    return (affine[:, None, 0] * normed + affine[:, None, 1]).astype(self.dtype)
