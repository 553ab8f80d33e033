"""Pre-LayerNorm transformer blocks shared by audiojax models."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.nn.attention import SelfAttention
from audiojax.nn.layers import dense
from audiojax.nn.norms import layer_norm


class Mlp(nn.Module):
  """``fc1 -> GELU (exact erf) -> fc2``: ``x (B, N, D) -> (B, N, D)`` with hidden width ``hidden_dim``."""

  hidden_dim: int
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.truncated_normal(0.02)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    h = dense(self.hidden_dim, ("embed", "mlp"), "fc1", dtype=self.dtype, init=self.kernel_init)(x)
    h = nn.with_logical_constraint(h, ("act_batch", "act_length", "act_mlp"))
    h = nn.gelu(h, approximate=False)
    return dense(x.shape[-1], ("mlp", "embed"), "fc2", dtype=self.dtype, init=self.kernel_init)(h)


class EncoderBlock(nn.Module):
  """Pre-LN ViT block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``. ``x (B, N, D) -> (B, N, D)``."""

  num_heads: int
  head_dim: int
  mlp_dim: int
  norm_eps: float = 1e-6
  qkv_bias: bool = True
  attention_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    h = layer_norm(self.norm_eps, self.dtype, "norm1")(x)
    x = x + SelfAttention(self.num_heads, self.head_dim, self.qkv_bias, self.attention_impl, self.dtype,
                          name="attn")(h, lengths)
    h = layer_norm(self.norm_eps, self.dtype, "norm2")(x)
    x = x + Mlp(self.mlp_dim, self.dtype, name="mlp")(h)
    return nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
