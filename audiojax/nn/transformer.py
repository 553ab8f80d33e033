"""Pre-LayerNorm transformer blocks shared by audiojax models."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.nn.attention import SelfAttention
from audiojax.nn.layers import dense
from audiojax.nn.norms import AdaptiveLayerNorm, layer_norm


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


class DecoderBlock(nn.Module):
  """Pre-LN transformer block for (prefix-)LM decoders: ``x + drop(attn(norm1(x)))`` then
  ``x + drop(mlp(norm2(x)))``, ``x (B, N, D) -> (B, N, D)``.

  With ``adaptive`` both norms are :class:`AdaptiveLayerNorm` of ``cond (B, C)``. ``causal``, ``prefix_lengths``,
  ``cache`` and ``return_kv`` go to :class:`SelfAttention` (with a cache or ``return_kv`` the block returns
  ``(x, kv)``). Dropout (rate ``dropout``) needs a ``"dropout"`` rng unless ``deterministic``.
  """

  num_heads: int
  head_dim: int
  mlp_dim: int
  dropout: float = 0.0
  adaptive: bool = False
  norm_eps: float = 1e-5
  attention_impl: str = "auto"
  dtype: Any = jnp.float32

  def _norm(self, name: str, x: jax.Array, cond: jax.Array | None) -> jax.Array:
    if self.adaptive:
      return AdaptiveLayerNorm(self.norm_eps, self.dtype, name=name)(x, cond)
    return layer_norm(self.norm_eps, self.dtype, name)(x)

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array | None = None, *, cond: jax.Array | None = None,
               causal: bool = False, prefix_lengths: jax.Array | None = None, cache: Any = None,
               return_kv: bool = False, deterministic: bool = True) -> Any:
    attn = SelfAttention(self.num_heads, self.head_dim, True, self.attention_impl, self.dtype, name="attn")
    out = attn(self._norm("norm1", x, cond), lengths, causal=causal, prefix_lengths=prefix_lengths, cache=cache,
               return_kv=return_kv)
    out, kv = out if cache is not None or return_kv else (out, None)
    x = x + nn.Dropout(self.dropout)(out, deterministic=deterministic)
    out = Mlp(self.mlp_dim, self.dtype, name="mlp")(self._norm("norm2", x, cond))
    x = x + nn.Dropout(self.dropout)(out, deterministic=deterministic)
    x = nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
    return (x, kv) if kv is not None else x
