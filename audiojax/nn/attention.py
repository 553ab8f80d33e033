"""Attention: the one dispatch point every audiojax model calls, plus the self-attention layer.

``attention(q, k, v, ...)`` takes ``(batch, length, heads, head_dim)`` tensors and routes to an implementation:
``"xla"`` (plain jnp, float32 softmax), ``"pallas"`` (the FlashAttention-2 kernels of
:mod:`audiojax.kernels.flash_attention`, interpreted on CPU) or ``"auto"`` (Pallas on a single GPU/TPU when the kernels
take the shapes, XLA otherwise). ``cached_attention`` is the decode-step entry point (new positions against a KV
cache).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.kernels import decode_attention as decode_lib
from audiojax.kernels import flash_attention as flash_lib
from audiojax.nn.layers import param

IMPLS = ("auto", "xla", "pallas")
PALLAS_DTYPES = (jnp.float32, jnp.bfloat16)


def padding_mask(q_lengths: jax.Array | None, kv_lengths: jax.Array | None, q_len: int,
                 kv_len: int) -> jax.Array | None:
  """Boolean ``(B, 1, Lq, Lk)`` mask (True = attend) from per-example valid lengths ``(B,)``, or None."""
  if q_lengths is None and kv_lengths is None:
    return None
  mask = jnp.ones((1, 1, q_len, kv_len), bool)
  if q_lengths is not None:
    mask = mask & (jnp.arange(q_len)[None, None, :, None] < q_lengths[:, None, None, None])
  if kv_lengths is not None:
    mask = mask & (jnp.arange(kv_len)[None, None, None, :] < kv_lengths[:, None, None, None])
  return mask


def causal_mask(q_len: int, kv_len: int, prefix_lengths: jax.Array | None = None) -> jax.Array:
  """``(1 or B, 1, Lq, Lk)`` causal mask aligned to the end of the keys; a prefix of ``prefix_lengths`` keys is
  visible to every query (prefix-LM)."""
  q_pos = jnp.arange(q_len)[:, None] + (kv_len - q_len)
  k_pos = jnp.arange(kv_len)[None, :]
  mask = (k_pos <= q_pos)[None, None]
  if prefix_lengths is not None:
    mask = mask | (k_pos[None, None] < prefix_lengths[:, None, None, None])
  return mask


def xla_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None, softmax_scale: float,
                  precision: Any = None) -> jax.Array:
  """Reference attention. ``q (B, Lq, H, D)``, ``k/v (B, Lk, Hkv, D)`` with Hkv dividing H; ``mask`` broadcastable to
  ``(B, H, Lq, Lk)``. Softmax in float32; query rows with no visible key return 0."""
  groups = q.shape[2] // k.shape[2]
  if groups > 1:  # grouped-query attention: each kv head serves `groups` query heads
    k = jnp.repeat(k, groups, axis=2)
    v = jnp.repeat(v, groups, axis=2)
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=precision, preferred_element_type=jnp.float32)
  logits = logits * softmax_scale
  if mask is not None:
    logits = jnp.where(mask, logits, -jnp.inf)
    row_max = jnp.max(logits, axis=-1, keepdims=True)
    weights = jnp.exp(logits - jnp.where(jnp.isfinite(row_max), row_max, 0.0))
    denom = jnp.sum(weights, axis=-1, keepdims=True)
    weights = weights / jnp.where(denom > 0, denom, 1.0)
  else:
    weights = jax.nn.softmax(logits, axis=-1)
  out = jnp.einsum("bhqk,bkhd->bqhd", weights.astype(v.dtype), v, precision=precision,
                   preferred_element_type=jnp.float32)
  return out.astype(q.dtype)


def resolve_impl(impl: str, head_dim: int, dtype: Any) -> str:
  """The implementation (``"xla"`` or ``"pallas"``) that ``impl`` selects for this backend, head dim and dtype.

  ``"auto"`` takes Pallas only on a single GPU/TPU: XLA cannot partition a ``pallas_call``, so on a sharded mesh it
  would gather the operands onto every device (the kernels are not wrapped in ``shard_map`` yet).
  """
  if impl not in IMPLS:
    raise ValueError(f"attention impl '{impl}' is unknown; choose one of {IMPLS}")
  if impl != "auto":
    return impl
  one_accelerator = jax.default_backend() in ("gpu", "tpu") and jax.device_count() == 1
  fits = flash_lib.supports(head_dim) and jnp.dtype(dtype) in PALLAS_DTYPES
  return "pallas" if one_accelerator and fits else "xla"


def attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False, q_lengths: jax.Array | None = None,
              kv_lengths: jax.Array | None = None, prefix_lengths: jax.Array | None = None,
              softmax_scale: float | None = None, impl: str = "auto", precision: Any = None) -> jax.Array:
  """Multi-head attention ``(B, Lq, H, D) x (B, Lk, Hkv, D) -> (B, Lq, H, D)``.

  Args:
    causal: query i sees keys up to i (aligned to the end of the keys, so a decode step sees the whole cache).
    q_lengths / kv_lengths: ``(B,)`` valid lengths; padded keys are ignored and padded query rows return 0.
    prefix_lengths: ``(B,)`` with ``causal``, keys before this position are visible to every query (prefix-LM).
    softmax_scale: defaults to ``D ** -0.5``.
    impl: ``"auto"``, ``"xla"`` or ``"pallas"`` (see :func:`resolve_impl`; on CPU ``"pallas"`` interprets the
      kernels, for testing).
  """
  scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
  if resolve_impl(impl, q.shape[-1], q.dtype) == "pallas":
    return flash_lib.flash_attention(q, k, v, causal=causal, q_lengths=q_lengths, kv_lengths=kv_lengths,
                                     prefix_lengths=prefix_lengths, softmax_scale=scale, precision=precision,
                                     interpret=jax.default_backend() == "cpu")
  mask = padding_mask(q_lengths, kv_lengths, q.shape[1], k.shape[1])
  if causal:
    cmask = causal_mask(q.shape[1], k.shape[1], prefix_lengths)
    mask = cmask if mask is None else mask & cmask
  return xla_attention(q, k, v, mask, scale, precision)


def cached_attention(q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, lengths: jax.Array, *,
                     softmax_scale: float | None = None, impl: str = "auto", precision: Any = None) -> jax.Array:
  """Decode step: the ``n`` newest positions ``q (B, n, H, D)`` against a cache ``(B, S, Hkv, D)`` of which the first
  ``lengths (B,)`` entries (the new ones included) are valid; query t sits at ``lengths - n + t`` (causal).

  ``impl``: ``"pallas"`` runs the split-K decode kernel (Triton lowering; interpreted on CPU), ``"auto"`` picks it on
  GPU only and XLA elsewhere. Forward only.
  """
  scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
  resolved = resolve_impl(impl, q.shape[-1], q.dtype)
  if resolved == "pallas" and (impl == "pallas" or jax.default_backend() == "gpu"):
    return decode_lib.decode_attention(q, k_cache, v_cache, lengths, softmax_scale=scale, precision=precision,
                                       interpret=jax.default_backend() == "cpu")
  return xla_attention(q, k_cache, v_cache, decode_lib.decode_mask(lengths, q.shape[1], k_cache.shape[1]), scale,
                       precision)


def write_cache(cache: jax.Array, new: jax.Array, starts: jax.Array) -> jax.Array:
  """``cache (B, S, H, D)`` with ``new (B, n, H, D)`` written at positions ``starts[b] .. starts[b] + n - 1`` of each
  example (the caller keeps ``starts + n <= S``)."""
  return jax.vmap(lambda c, x, s: jax.lax.dynamic_update_slice(c, x.astype(c.dtype), (s, 0, 0)))(cache, new, starts)


class SelfAttention(nn.Module):
  """Multi-head self-attention with a fused qkv projection (timm/CED layout).

  ``x (B, N, D) -> (B, N, D)``. Parameters: ``qkv_kernel (D, 3, H, Dh)``, ``qkv_bias (3, H, Dh)``,
  ``proj_kernel (H, Dh, D)``, ``proj_bias (D,)`` with logical axes for sharding heads over ``tensor``.

  Decoders: ``causal`` (with ``prefix_lengths``, a prefix-LM) masks; ``return_kv=True`` also returns this call's
  ``(k, v)`` (each ``(B, N, H, Dh)``: a prompt's, to fill a KV cache); ``cache=(k_cache, v_cache, starts)`` is a
  decode step: ``x`` holds the ``N`` newest positions of each example, written into the caches ``(B, S, H, Dh)`` at
  ``starts (B,)`` and attending causally to everything before; it returns ``(out, (k_cache, v_cache))``.
  """

  num_heads: int
  head_dim: int
  qkv_bias: bool = True
  impl: str = "auto"
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.truncated_normal(0.02)

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array | None = None, *, causal: bool = False,
               prefix_lengths: jax.Array | None = None, cache: tuple[jax.Array, jax.Array, jax.Array] | None = None,
               return_kv: bool = False) -> Any:
    d, h, dh = x.shape[-1], self.num_heads, self.head_dim
    qkv_kernel = param(self, "qkv_kernel", self.kernel_init, (d, 3, h, dh), ("embed", None, "heads", "kv"))
    qkv = jnp.einsum("bnd,dkhe->bnkhe", x.astype(self.dtype), qkv_kernel.astype(self.dtype))
    if self.qkv_bias:
      bias = param(self, "qkv_bias", nn.initializers.zeros, (3, h, dh), (None, "heads", "kv"))
      qkv = qkv + bias.astype(self.dtype)
    qkv = nn.with_logical_constraint(qkv, ("act_batch", "act_length", None, "act_heads", "act_kv"))
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    if cache is not None:
      k_cache, v_cache, starts = cache
      k, v = write_cache(k_cache, k, starts), write_cache(v_cache, v, starts)
      out = cached_attention(q, k, v, starts + x.shape[1], impl=self.impl)
    else:
      out = attention(q, k, v, causal=causal, q_lengths=lengths, kv_lengths=lengths, prefix_lengths=prefix_lengths,
                      impl=self.impl)
    proj_kernel = param(self, "proj_kernel", self.kernel_init, (h, dh, d), ("heads", "kv", "embed"))
    out = jnp.einsum("bnhe,hed->bnd", out, proj_kernel.astype(self.dtype))
    out = out + param(self, "proj_bias", nn.initializers.zeros, (d,), ("embed",)).astype(self.dtype)
    out = nn.with_logical_constraint(out, ("act_batch", "act_length", "act_embed"))
    return (out, (k, v)) if cache is not None or return_kv else out


class CrossAttention(nn.Module):
  """Multi-head attention from queries ``x (B, Lq, D)`` to a memory ``(B, Lm, Dm)`` with valid ``memory_lengths
  (B,)`` → ``(B, Lq, D)``.

  The key, value and output projections have no bias (PromptASR's memory attention), so an all-zero memory gives
  uniform weights over zero values and the output is exactly zero; so is the output for a memory of length 0.
  Parameters: ``q_kernel (D, H, Dh)``, ``q_bias (H, Dh)``, ``k_kernel``/``v_kernel (Dm, H, Dh)``,
  ``out_kernel (H, Dh, D)``.
  """

  num_heads: int
  head_dim: int
  impl: str = "auto"
  dtype: Any = jnp.float32
  kernel_init: Any = nn.initializers.truncated_normal(0.02)

  @nn.compact
  def __call__(self, x: jax.Array, memory: jax.Array, memory_lengths: jax.Array | None = None) -> jax.Array:
    d, dm, h, dh = x.shape[-1], memory.shape[-1], self.num_heads, self.head_dim

    def project(t: jax.Array, name: str, dim: int) -> jax.Array:
      kernel = param(self, name, self.kernel_init, (dim, h, dh), ("embed", "heads", "kv"))
      return jnp.einsum("bnd,dhe->bnhe", t.astype(self.dtype), kernel.astype(self.dtype))

    q = project(x, "q_kernel", d) + param(self, "q_bias", nn.initializers.zeros, (h, dh), ("heads", "kv"))
    k, v = project(memory, "k_kernel", dm), project(memory, "v_kernel", dm)
    out = attention(q.astype(self.dtype), k, v, kv_lengths=memory_lengths, impl=self.impl)
    out_kernel = param(self, "out_kernel", self.kernel_init, (h, dh, d), ("heads", "kv", "embed"))
    out = jnp.einsum("bnhe,hed->bnd", out, out_kernel.astype(self.dtype))
    return nn.with_logical_constraint(out, ("act_batch", "act_length", "act_embed"))


def cross_attention_probs(params: dict, x: jax.Array, memory: jax.Array, memory_lengths: jax.Array,
                          heads: int | None = None) -> jax.Array:
  """The attention weights :class:`CrossAttention` with ``params`` uses (float32 softmax, whatever its impl):
  queries ``x (B, T, D)`` (its input), ``memory (B, M, Dm)`` with valid ``memory_lengths (B,)`` → ``(B, H', T, M)``
  over the first ``heads`` heads (all by default), zero on padded memory positions and for a zero-length memory."""
  params = nn.meta.unbox(params)

  def f32(a: jax.Array) -> jax.Array:
    return jnp.asarray(a, jnp.float32)

  q = jnp.einsum("btd,dhe->bthe", f32(x), f32(params["q_kernel"][:, :heads])) + f32(params["q_bias"][:heads])
  k = jnp.einsum("bmd,dhe->bmhe", f32(memory), f32(params["k_kernel"][:, :heads]))
  logits = jnp.einsum("bthe,bmhe->bhtm", q, k) * q.shape[-1] ** -0.5
  valid = (jnp.arange(memory.shape[1])[None, :] < memory_lengths[:, None])[:, None, None, :]
  # the outer where also zeroes the NaN rows an all-padded memory's softmax gives
  return jnp.where(valid, jax.nn.softmax(jnp.where(valid, logits, -jnp.inf), axis=-1), 0.0)
