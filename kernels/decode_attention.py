"""Split-K decode attention in Pallas (GPU/Triton-style lowering), with a jnp reference. Forward only: an inference
kernel with no ``custom_vjp`` (differentiating through it fails; train with :func:`flash_attention`).

``q (B, n, H, D)`` holds the newest ``n`` positions (a few) of each example, i.e. the last ``n`` of its ``lengths[b]``
valid cache entries, so they attend causally among themselves and to everything before. ``k_cache/v_cache
(B, S, Hkv, D)`` are read in their native layout (no transpose or padding of the cache). Each program handles one
(example, kv head, split): the ``n·G`` query rows of the kv head's GQA group against one contiguous chunk of the cache,
skipping blocks past the valid length; a jnp step then merges the per-split partial max/sum/output.
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from audiojax.kernels import flash_attention as fa


def decode_mask(lengths: jax.Array, num_queries: int, cache_len: int) -> jax.Array:
  """Boolean ``(B, 1, n, S)`` mask: query t of example b sits at position ``lengths[b] - n + t`` and sees keys up to
  it. ``lengths`` are clipped to the cache length."""
  lengths = jnp.minimum(jnp.asarray(lengths, jnp.int32), cache_len)
  q_pos = lengths[:, None] - num_queries + jnp.arange(num_queries)  # (B, n)
  return (jnp.arange(cache_len)[None, None, :] <= q_pos[:, :, None])[:, None]


def reference_decode_attention(q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, lengths: jax.Array, *,
                               softmax_scale: float | None = None) -> jax.Array:
  """Pure-jnp :func:`decode_attention` (float32 softmax). Returns ``(B, n, H, D)`` in q's dtype."""
  scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
  return fa.reference_masked_attention(q, k_cache, v_cache, decode_mask(lengths, q.shape[1], k_cache.shape[1]), scale)


def _decode_kernel(len_ref, q_ref, k_ref, v_ref, acc_ref, m_ref, l_ref, *, num_kv_heads: int, num_queries: int,
                   groups: int, chunk: int, block_kv: int, scale: float, precision: Any):
  """Grid ``(B·Hkv, splits)``. ``q (R, D)`` with row ``r = t·G + g`` (query t, head g of the group; rows past ``n·G``
  are padding), whole ``k/v (S, D)``; writes the split's unnormalised ``acc (R, D)`` and ``m/l (R, 1)``."""
  length = len_ref[lax.div(pl.program_id(0), num_kv_heads)]
  start = pl.program_id(1) * chunk
  end = jnp.maximum(jnp.minimum(start + chunk, length), start)
  cache_len = k_ref.shape[0]
  q = q_ref[...]
  rows = lax.broadcasted_iota(jnp.int32, (q.shape[0], 1), 0)
  q_pos = jnp.where(rows < num_queries * groups, length - num_queries + lax.div(rows, groups), -1)

  def body(j, carry):
    # The last block of an S that is not a multiple of block_kv is read shifted back to end at S; the keys it
    # shares with the previous block are masked out by k_pos >= nominal.
    nominal = j * block_kv
    first = jnp.minimum(nominal, cache_len - block_kv)
    k_pos = first + lax.broadcasted_iota(jnp.int32, (1, block_kv), 1)
    visible = (k_pos >= nominal) & (k_pos <= q_pos)
    block = pl.ds(first, block_kv)
    return fa.online_softmax_update(q, k_ref[block, :], v_ref[block, :], visible, *carry, scale, precision)

  init = (jnp.full((q.shape[0], 1), fa.MASK_VALUE, jnp.float32), jnp.zeros((q.shape[0], 1), jnp.float32),
          jnp.zeros(q.shape, jnp.float32))
  m, l, acc = lax.fori_loop(lax.div(start, block_kv), lax.div(end + block_kv - 1, block_kv), body, init)
  acc_ref[...], m_ref[...], l_ref[...] = acc, m, l


def _combine_splits(acc: jax.Array, m: jax.Array, l: jax.Array) -> jax.Array:
  """Merges per-split partials ``acc (..., splits, R, D)``, ``m/l (..., splits, R, 1)`` → ``(..., R, D)`` float32."""
  m_max = jnp.max(m, axis=-3, keepdims=True)
  weight = jnp.exp(m - m_max)
  l_total = jnp.sum(weight * l, axis=-3)
  return jnp.sum(weight * acc, axis=-3) / jnp.where(l_total > 0, l_total, 1.0)


def _ceil_div(a: int, b: int) -> int:
  return -(-a // b)


def decode_attention(q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, lengths: jax.Array, *,
                     softmax_scale: float | None = None, block_kv: int = 64, num_splits: int = 4,
                     precision: Any = None, interpret: bool = False) -> jax.Array:
  """Attention of the ``n`` newest positions against a KV cache, split-K over the cache. Forward only.

  Args:
    q: ``(B, n, H, D)``, the last ``n`` positions of each example's valid prefix; n small (1 for plain decoding).
    k_cache, v_cache: ``(B, S, Hkv, D)``, Hkv dividing H; entries at or past ``lengths`` are ignored.
    lengths: ``(B,)`` valid cache entries per example, the new positions included (clipped to S).
    block_kv: keys per inner step (a power of two >= 16; shrunk to fit S).
    num_splits: chunks of the cache processed in parallel and merged afterwards (fewer if S is short).
    interpret: run in Pallas' interpreter (needed on CPU).

  Returns:
    ``(B, n, H, D)`` in q's dtype; rows with no visible key (``lengths[b] < n``) are 0.
  """
  batch, n, heads, head_dim = q.shape
  cache_len, kv_heads = k_cache.shape[1], k_cache.shape[2]
  if heads % kv_heads or k_cache.shape != v_cache.shape or head_dim not in fa.HEAD_DIMS:
    raise ValueError(f"decode_attention expects q (B, n, H, D) with D in {fa.HEAD_DIMS} and caches "
                     f"(B, S, Hkv, D) with Hkv dividing H; got {q.shape}, {k_cache.shape}, {v_cache.shape}")
  if block_kv < 16 or block_kv & (block_kv - 1):
    raise ValueError(f"block_kv must be a power of two >= 16; got {block_kv}")
  groups = heads // kv_heads
  if cache_len < 16:  # shorter than the smallest Triton block: padding a tiny cache is cheap
    pad = ((0, 0), (0, 16 - cache_len), (0, 0), (0, 0))
    k_cache, v_cache = jnp.pad(k_cache, pad), jnp.pad(v_cache, pad)
  block_kv = min(block_kv, 1 << (max(cache_len, 16).bit_length() - 1))
  chunk = _ceil_div(_ceil_div(cache_len, num_splits), block_kv) * block_kv  # a whole number of blocks per split
  splits = _ceil_div(cache_len, chunk)
  rows, padded_rows = n * groups, max(16, pl.next_power_of_2(n * groups))
  q_rows = q.reshape(batch, n, kv_heads, groups, head_dim).transpose(0, 2, 1, 3, 4).reshape(batch, kv_heads, rows,
                                                                                            head_dim)
  q_rows = jnp.pad(q_rows, ((0, 0), (0, 0), (0, padded_rows - rows), (0, 0)))

  bj = lambda i: (lax.div(i, kv_heads), lax.rem(i, kv_heads))
  part = lambda width: pl.BlockSpec((None, None, None, padded_rows, width), lambda i, s: (*bj(i), s, 0, 0))
  part_shape = lambda width: jax.ShapeDtypeStruct((batch, kv_heads, splits, padded_rows, width), jnp.float32)
  kernel = functools.partial(_decode_kernel, num_kv_heads=kv_heads, num_queries=n, groups=groups, chunk=chunk,
                             block_kv=block_kv, scale=head_dim ** -0.5 if softmax_scale is None else softmax_scale,
                             precision=precision)
  cache_spec = pl.BlockSpec((None, k_cache.shape[1], None, head_dim), lambda i, s: (bj(i)[0], 0, bj(i)[1], 0))
  acc, m, l = pl.pallas_call(
      kernel, grid=(batch * kv_heads, splits),
      in_specs=[pl.no_block_spec, pl.BlockSpec((None, None, padded_rows, head_dim), lambda i, s: (*bj(i), 0, 0)),
                cache_spec, cache_spec],
      out_specs=(part(head_dim), part(1), part(1)), out_shape=(part_shape(head_dim), part_shape(1), part_shape(1)),
      compiler_params=plgpu.CompilerParams(num_warps=4, num_stages=2), interpret=interpret,
  )(jnp.minimum(jnp.asarray(lengths, jnp.int32), cache_len), q_rows, k_cache, v_cache)
  out = _combine_splits(acc, m, l)[:, :, :rows].astype(q.dtype)
  return out.reshape(batch, kv_heads, n, groups, head_dim).transpose(0, 2, 1, 3, 4).reshape(batch, n, heads, head_dim)
