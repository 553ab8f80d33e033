"""Conformer blocks (Gulati et al. 2020) with an optional cross-attention sub-layer to a text memory (PromptASR).

Block: ``x + ½·FFN`` → ``x + self-attention`` → ``x + cross-attention(memory)`` → ``x + convolution`` →
``x + ½·FFN`` → LayerNorm, every sub-layer pre-normed. Padded frames (beyond ``lengths``) are zeroed before the
depthwise convolution, so a padded batch gives the same valid outputs as each utterance alone.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.nn.attention import CrossAttention, SelfAttention
from audiojax.nn.layers import dense, length_mask, param
from audiojax.nn.norms import layer_norm


class FeedForward(nn.Module):
  """``Dense(hidden) → swish → dropout → Dense(D)``: ``(B, T, D) → (B, T, D)``."""

  hidden_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = nn.swish(dense(self.hidden_dim, ("embed", "mlp"), "fc1", dtype=self.dtype)(x))
    h = nn.with_logical_constraint(h, ("act_batch", "act_length", "act_mlp"))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return dense(x.shape[-1], ("mlp", "embed"), "fc2", dtype=self.dtype)(h)


class DepthwiseConv1D(nn.Module):
  """Per-channel 1-D convolution over time with "SAME" zero padding: ``(B, T, D) → (B, T, D)``, ``y[t] = bias +
  Σ_i kernel[i, 0] · x[t + i - (K-1)//2]``. Parameters are those of ``nn.Conv(D, (K,), feature_group_count=D)``
  (``kernel (K, 1, D)``, ``bias (D,)``), so checkpoints are interchangeable; computed as K shifted multiply-adds,
  which XLA fuses into one loop: on the 2-core CPU 2–3× faster than its grouped convolution, forward and
  backward (``python -m audiojax bench prompt-asr``)."""

  kernel_size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    d, k, t = x.shape[-1], self.kernel_size, x.shape[-2]
    kernel = param(self, "kernel", nn.initializers.lecun_normal(), (k, 1, d), (None, None, "embed")).astype(self.dtype)
    bias = param(self, "bias", nn.initializers.zeros, (d,), ("embed",))
    left = (k - 1) // 2
    padded = jnp.pad(x.astype(self.dtype), ((0, 0), (left, k - 1 - left), (0, 0)))
    out = sum(padded[:, i:i + t] * kernel[i, 0] for i in range(k))
    return out + bias.astype(self.dtype)


class ConvModule(nn.Module):
  """Pointwise ``Dense(2D)`` → GLU → depthwise conv (``kernel_size``, same padding) → LayerNorm → swish →
  pointwise ``Dense(D)``: ``(B, T, D) → (B, T, D)``. LayerNorm instead of the paper's BatchNorm keeps padded
  frames from leaking into statistics."""

  kernel_size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    d = x.shape[-1]
    h = nn.glu(dense(2 * d, ("embed", "mlp"), "pointwise1", dtype=self.dtype)(x), axis=-1)
    h = jnp.where(mask[..., None], h, 0.0)
    h = DepthwiseConv1D(self.kernel_size, self.dtype, name="depthwise")(h)
    h = nn.swish(layer_norm(1e-5, self.dtype, "norm")(h))
    return dense(d, (None, "embed"), "pointwise2", dtype=self.dtype)(h)


class ConformerBlock(nn.Module):
  """One Conformer layer over ``x (B, T, D)`` with valid ``lengths (B,)``; with ``cross_attention`` it also attends to
  ``memory (B, M, Dm)`` (valid ``memory_lengths (B,)``). ``memory=None`` skips that sub-layer; an all-zero or
  zero-length memory gives exactly the same output (the cross-attention projections are bias-free)."""

  num_heads: int
  ff_dim: int
  conv_kernel: int
  cross_attention: bool = False
  dropout: float = 0.0
  attention_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array, memory: jax.Array | None = None,
               memory_lengths: jax.Array | None = None, train: bool = False) -> jax.Array:
    d = x.shape[-1]
    head_dim = d // self.num_heads

    def drop(h: jax.Array) -> jax.Array:
      return nn.Dropout(self.dropout, deterministic=not train)(h)

    def norm(name: str) -> nn.LayerNorm:
      return layer_norm(1e-5, self.dtype, name)

    x = x + 0.5 * drop(FeedForward(self.ff_dim, self.dropout, self.dtype, name="ff1")(norm("norm_ff1")(x), train))
    x = x + drop(SelfAttention(self.num_heads, head_dim, True, self.attention_impl, self.dtype,
                               name="self_attn")(norm("norm_self_attn")(x), lengths))
    if self.cross_attention and memory is not None:
      x = x + drop(CrossAttention(self.num_heads, head_dim, self.attention_impl, self.dtype, name="cross_attn")(
          norm("norm_cross_attn")(x), memory, memory_lengths))
    x = x + drop(ConvModule(self.conv_kernel, self.dtype, name="conv")(norm("norm_conv")(x),
                                                                       length_mask(lengths, x.shape[1])))
    x = x + 0.5 * drop(FeedForward(self.ff_dim, self.dropout, self.dtype, name="ff2")(norm("norm_ff2")(x), train))
    x = norm("norm_out")(x)
    return nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
