"""FlashAttention-2 in Pallas: forward and backward kernels for GPU (Triton) and TPU (Mosaic), with a jnp reference.

Layout and semantics are those of :func:`audiojax.nn.attention.attention`: ``q (B, Lq, H, D)``, ``k/v (B, Lk, Hkv, D)``
with Hkv dividing H (query head h reads kv head ``h // (H // Hkv)``). Causal masking is aligned to the end of the keys
(query i sees keys ``<= i + Lk - Lq``); with ``causal``, keys before ``prefix_lengths`` are visible to every query
(prefix-LM); keys at or after ``kv_lengths`` are ignored; query rows at or after ``q_lengths``, and rows with no
visible key, return 0. Softmax and all accumulation are float32.

The forward kernel keeps a running max ``m``, denominator ``l`` and unnormalised output per query block and saves the
logsumexp. The backward recomputes the probabilities from it in two kernels: dq (one query block against its kv
blocks) and dk/dv (one kv block against the query blocks of every query head of its GQA group, so dk/dv arrive summed
over the group). Blocks that hold no visible key (causal future, padding, query rows past ``q_lengths``) are skipped.

Lowerings:
  ``"gpu"``: grid ``(B·H, q blocks)``; each program holds one q block and loops over kv blocks (``fori_loop``), native
    ``(B, L, H, D)`` layout. Blocks are powers of two >= 16 as Triton requires.
  ``"tpu"``: head-major ``(B, H, L, D)`` layout, kv blocks on the innermost ``"arbitrary"`` grid axis, running
    statistics in VMEM scratch, per-example lengths as scalar prefetch (SMEM). The kv (or q) block index map is clamped
    to the last useful block so skipped steps issue no new DMA. Blocks are multiples of 128 or the whole (padded)
    sequence.
Head dims are powers of two from 16 to 256 (:data:`HEAD_DIMS`). On CPU both run in interpret mode (``interpret=True``;
the TPU lowering then runs under Mosaic's TPU interpreter).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jax.experimental.pallas import triton as plgpu

MASK_VALUE = -1e30  # finite, so a row with no visible key never computes inf - inf
HEAD_DIMS = (16, 32, 64, 128, 256)
DEFAULT_BLOCKS = {"gpu": 64, "tpu": 128}
_NT = ((1,), (1,))  # a @ b.T
_NN = ((1,), (0,))  # a @ b


# --- pure-jnp reference -----------------------------------------------------------------------------------------------
def reference_masked_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None,
                               softmax_scale: float) -> jax.Array:
  """Softmax attention in float32. ``q (B, Lq, H, D)``, ``k/v (B, Lk, Hkv, D)``, ``mask`` broadcastable to
  ``(B, H, Lq, Lk)`` (True = attend). Rows with no visible key return 0. Returns ``(B, Lq, H, D)`` in q's dtype."""
  groups = q.shape[2] // k.shape[2]
  qf = q.astype(jnp.float32)
  kf = jnp.repeat(k.astype(jnp.float32), groups, axis=2)
  vf = jnp.repeat(v.astype(jnp.float32), groups, axis=2)
  logits = jnp.einsum("bqhd,bkhd->bhqk", qf, kf, precision=lax.Precision.HIGHEST) * softmax_scale
  if mask is None:
    mask = jnp.ones((1, 1, 1, 1), bool)
  logits = jnp.where(mask, logits, -jnp.inf)
  row_max = lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
  weights = jnp.where(mask, jnp.exp(logits - jnp.where(jnp.isfinite(row_max), row_max, 0.0)), 0.0)
  denom = jnp.sum(weights, axis=-1, keepdims=True)
  weights = weights / jnp.where(denom > 0, denom, 1.0)
  out = jnp.einsum("bhqk,bkhd->bqhd", weights, vf, precision=lax.Precision.HIGHEST)
  return out.astype(q.dtype)


def attention_mask(batch: int, q_len: int, kv_len: int, *, causal: bool = False, q_lengths: jax.Array | None = None,
                   kv_lengths: jax.Array | None = None, prefix_lengths: jax.Array | None = None) -> jax.Array:
  """Boolean ``(B, 1, Lq, Lk)`` mask (True = attend) with the semantics described in the module docstring."""
  q_pos = jnp.arange(q_len)[None, None, :, None]
  k_pos = jnp.arange(kv_len)[None, None, None, :]
  mask = jnp.ones((batch, 1, q_len, kv_len), bool)
  if q_lengths is not None:
    mask = mask & (q_pos < jnp.reshape(q_lengths, (-1, 1, 1, 1)))
  if kv_lengths is not None:
    mask = mask & (k_pos < jnp.reshape(kv_lengths, (-1, 1, 1, 1)))
  if causal:
    visible = k_pos <= q_pos + (kv_len - q_len)
    if prefix_lengths is not None:
      visible = visible | (k_pos < jnp.reshape(prefix_lengths, (-1, 1, 1, 1)))
    mask = mask & visible
  return mask


def reference_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                        q_lengths: jax.Array | None = None, kv_lengths: jax.Array | None = None,
                        prefix_lengths: jax.Array | None = None, softmax_scale: float | None = None) -> jax.Array:
  """Pure-jnp attention with :func:`flash_attention`'s signature and semantics (float32 throughout)."""
  scale = q.shape[-1] ** -0.5 if softmax_scale is None else softmax_scale
  mask = attention_mask(q.shape[0], q.shape[1], k.shape[1], causal=causal, q_lengths=q_lengths,
                        kv_lengths=kv_lengths, prefix_lengths=prefix_lengths)
  return reference_masked_attention(q, k, v, mask, scale)


# --- block math shared by both lowerings ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Config:
  """Static kernel parameters (hashable: a ``custom_vjp`` non-differentiable argument)."""
  backend: str
  causal: bool
  scale: float
  offset: int  # Lk - Lq of the unpadded inputs: the causal diagonal is aligned to the end of the keys
  block_q: int
  block_kv: int
  num_heads: int
  num_kv_heads: int
  precision: Any
  interpret: Any

  @property
  def groups(self) -> int:
    return self.num_heads // self.num_kv_heads


def _dot(a: jax.Array, b: jax.Array, contract: tuple, precision: Any) -> jax.Array:
  return lax.dot_general(a, b, (contract, ((), ())), precision=precision, preferred_element_type=jnp.float32)


def _cdiv(a: jax.Array, b: int) -> jax.Array:
  """Ceil division of a non-negative int32 scalar (``lax.div`` lowers on Triton and Mosaic alike)."""
  return lax.div(a + (b - 1), b)


def _visible(q_pos: jax.Array, k_pos: jax.Array, q_len: jax.Array, kv_len: jax.Array, prefix: jax.Array,
             cfg: _Config) -> jax.Array:
  """True where query position ``q_pos`` may attend key position ``k_pos`` (int arrays that broadcast)."""
  mask = (q_pos < q_len) & (k_pos < kv_len)
  if cfg.causal:
    mask = mask & ((k_pos <= q_pos + cfg.offset) | (k_pos < prefix))
  return mask


def _kv_blocks_end(q_start: jax.Array, q_len: jax.Array, kv_len: jax.Array, prefix: jax.Array,
                   cfg: _Config) -> jax.Array:
  """Exclusive end of the kv blocks that hold a key visible to some query of the block starting at ``q_start``."""
  end = kv_len
  if cfg.causal:
    q_last = jnp.minimum(q_start + cfg.block_q, q_len) - 1
    end = jnp.minimum(end, jnp.maximum(q_last + cfg.offset + 1, prefix))
  end = jnp.where(q_start < q_len, jnp.maximum(end, 0), 0)
  return _cdiv(end, cfg.block_kv)


def _q_blocks_range(k_start: jax.Array, q_len: jax.Array, kv_len: jax.Array, prefix: jax.Array,
                    cfg: _Config) -> tuple[jax.Array, jax.Array]:
  """``[lo, hi)`` of the q blocks with a query that sees some key of the kv block starting at ``k_start``."""
  hi = jnp.where(k_start < kv_len, _cdiv(q_len, cfg.block_q), 0)
  lo = jnp.int32(0)
  if cfg.causal:
    first_query = jnp.maximum(k_start - cfg.offset, 0)
    lo = jnp.where(k_start < prefix, 0, lax.div(first_query, cfg.block_q))
  return lo, hi


def _clamp_block(i: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
  """Block index ``i`` clamped into ``[lo, hi)`` (0 when empty), so a skipped grid step re-uses the last DMA."""
  return jnp.minimum(jnp.maximum(i, lo), jnp.maximum(hi - 1, 0))


def online_softmax_update(q: jax.Array, k: jax.Array, v: jax.Array, visible: jax.Array, m: jax.Array, l: jax.Array,
                          acc: jax.Array, scale: float, precision: Any = None) -> tuple[jax.Array, ...]:
  """One FlashAttention-2 step. ``q (bq, D)``, ``k/v (bk, D)``, ``visible (bq, bk)``; running max ``m (bq, 1)``,
  denominator ``l (bq, 1)`` and unnormalised output ``acc (bq, D)``, all float32. Returns the updated ``m, l, acc``."""
  s = jnp.where(visible, _dot(q, k, _NT, precision) * scale, MASK_VALUE)
  m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
  p = jnp.where(visible, jnp.exp(s - m_new), 0.0)
  alpha = jnp.exp(m - m_new)
  l_new = alpha * l + jnp.sum(p, axis=1, keepdims=True)
  acc_new = alpha * acc + _dot(p.astype(v.dtype), v, _NN, precision)
  return m_new, l_new, acc_new


def finalize_softmax(m: jax.Array, l: jax.Array, acc: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(out (bq, D), lse (bq, 1))`` from the running statistics; rows with no visible key give 0 and lse 0."""
  has_key = l > 0
  safe_l = jnp.where(has_key, l, 1.0)
  return acc / safe_l, jnp.where(has_key, m + jnp.log(safe_l), 0.0)


def _dq_update(q: jax.Array, k: jax.Array, v: jax.Array, do: jax.Array, lse: jax.Array, delta: jax.Array,
               visible: jax.Array, cfg: _Config) -> jax.Array:
  """dq contribution ``(bq, D)`` of one kv block. ``lse/delta (bq, 1)``, ``visible (bq, bk)``."""
  p = jnp.where(visible, jnp.exp(_dot(q, k, _NT, cfg.precision) * cfg.scale - lse), 0.0)
  ds = p * (_dot(do, v, _NT, cfg.precision) - delta)
  return _dot(ds.astype(k.dtype), k, _NN, cfg.precision) * cfg.scale


def _dkdv_update(q: jax.Array, k: jax.Array, v: jax.Array, do: jax.Array, lse_row: jax.Array, delta_row: jax.Array,
                 visible_t: jax.Array, cfg: _Config) -> tuple[jax.Array, jax.Array]:
  """dk, dv contributions ``(bk, D)`` of one q block, computed transposed (keys on rows) so every matmul is NN or NT.
  ``lse_row/delta_row (1, bq)``, ``visible_t (bk, bq)``."""
  p_t = jnp.where(visible_t, jnp.exp(_dot(k, q, _NT, cfg.precision) * cfg.scale - lse_row), 0.0)
  dv = _dot(p_t.astype(do.dtype), do, _NN, cfg.precision)
  ds_t = p_t * (_dot(v, do, _NT, cfg.precision) - delta_row)
  dk = _dot(ds_t.astype(q.dtype), q, _NN, cfg.precision) * cfg.scale
  return dk, dv


def _positions(start: jax.Array, shape: tuple[int, int], axis: int) -> jax.Array:
  """Sequence positions ``start + index along axis`` as an int32 array of ``shape``."""
  return start + lax.broadcasted_iota(jnp.int32, shape, axis)


# --- GPU (Triton) lowering: native (B, L, H, D) layout ----------------------------------------------------------------
def _gpu_call(kernel, cfg: _Config, grid: tuple[int, ...], in_specs: list, out_specs: Any, out_shape: Any,
              head_dim: int):
  # Measured on an H100 (bf16, L 4096, 16k tokens, 64x64 blocks): 4 warps beat 8 for head dim 128 too, forward
  # 1.77-1.93 -> 1.28-1.39 ms and forward+backward 6.1-7.2 -> 3.7-4.0 ms (non-causal); other block shapes and 3
  # pipeline stages were no faster for training. Head dim 256 keeps 8 warps (unmeasured; its accumulators are larger).
  return pl.pallas_call(
      functools.partial(kernel, cfg=cfg), grid=grid, in_specs=[pl.no_block_spec] * 3 + in_specs,
      out_specs=out_specs, out_shape=out_shape, interpret=cfg.interpret,
      compiler_params=plgpu.CompilerParams(num_warps=4 if head_dim <= 128 else 8, num_stages=2))


def _gpu_fwd_kernel(q_len_ref, kv_len_ref, prefix_ref, q_ref, k_ref, v_ref, o_ref, lse_ref, *, cfg: _Config):
  """q block ``(bq, D)``, whole-sequence ``k/v (Lk, D)`` of its kv head; writes ``o (bq, D)`` and ``lse (bq, 1)``."""
  b = lax.div(pl.program_id(0), cfg.num_heads)
  q_len, kv_len, prefix = q_len_ref[b], kv_len_ref[b], prefix_ref[b]
  q_start = pl.program_id(1) * cfg.block_q
  q = q_ref[...]
  q_pos = _positions(q_start, (cfg.block_q, 1), 0)

  def body(j, carry):
    k_start = j * cfg.block_kv
    k_pos = _positions(k_start, (1, cfg.block_kv), 1)
    visible = _visible(q_pos, k_pos, q_len, kv_len, prefix, cfg)
    kv_block = pl.ds(k_start, cfg.block_kv)
    return online_softmax_update(q, k_ref[kv_block, :], v_ref[kv_block, :], visible, *carry, cfg.scale,
                                 cfg.precision)

  init = (jnp.full((cfg.block_q, 1), MASK_VALUE, jnp.float32), jnp.zeros((cfg.block_q, 1), jnp.float32),
          jnp.zeros(q.shape, jnp.float32))
  m, l, acc = lax.fori_loop(0, _kv_blocks_end(q_start, q_len, kv_len, prefix, cfg), body, init)
  out, lse = finalize_softmax(m, l, acc)
  o_ref[...] = out.astype(o_ref.dtype)
  lse_ref[...] = lse


def _gpu_dq_kernel(q_len_ref, kv_len_ref, prefix_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, *,
                   cfg: _Config):
  """q/do blocks ``(bq, D)``, lse/delta ``(bq, 1)``, whole-sequence ``k/v (Lk, D)``; writes ``dq (bq, D)``."""
  b = lax.div(pl.program_id(0), cfg.num_heads)
  q_len, kv_len, prefix = q_len_ref[b], kv_len_ref[b], prefix_ref[b]
  q_start = pl.program_id(1) * cfg.block_q
  q, do, lse, delta = q_ref[...], do_ref[...], lse_ref[...], delta_ref[...]
  q_pos = _positions(q_start, (cfg.block_q, 1), 0)

  def body(j, dq):
    k_start = j * cfg.block_kv
    visible = _visible(q_pos, _positions(k_start, (1, cfg.block_kv), 1), q_len, kv_len, prefix, cfg)
    kv_block = pl.ds(k_start, cfg.block_kv)
    return dq + _dq_update(q, k_ref[kv_block, :], v_ref[kv_block, :], do, lse, delta, visible, cfg)

  end = _kv_blocks_end(q_start, q_len, kv_len, prefix, cfg)
  dq = lax.fori_loop(0, end, body, jnp.zeros(q.shape, jnp.float32))
  dq_ref[...] = dq.astype(dq_ref.dtype)


def _gpu_dkdv_kernel(q_len_ref, kv_len_ref, prefix_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref,
                     *, cfg: _Config):
  """k/v blocks ``(bk, D)``; whole-sequence ``q/do (Lq, G, D)`` and ``lse/delta (G, 1, Lq)`` of the G query heads
  sharing this kv head; writes ``dk/dv (bk, D)`` summed over the group."""
  b = lax.div(pl.program_id(0), cfg.num_kv_heads)
  q_len, kv_len, prefix = q_len_ref[b], kv_len_ref[b], prefix_ref[b]
  k_start = pl.program_id(1) * cfg.block_kv
  k, v = k_ref[...], v_ref[...]
  k_pos = _positions(k_start, (cfg.block_kv, 1), 0)
  lo, hi = _q_blocks_range(k_start, q_len, kv_len, prefix, cfg)

  def q_block(i, carry, g):
    q_start = i * cfg.block_q
    visible_t = _visible(_positions(q_start, (1, cfg.block_q), 1), k_pos, q_len, kv_len, prefix, cfg)
    rows = pl.ds(q_start, cfg.block_q)
    dk, dv = _dkdv_update(q_ref[rows, g, :], k, v, do_ref[rows, g, :], lse_ref[g, :, rows], delta_ref[g, :, rows],
                          visible_t, cfg)
    return carry[0] + dk, carry[1] + dv

  def head(g, carry):
    return lax.fori_loop(lo, hi, functools.partial(q_block, g=g), carry)

  zeros = jnp.zeros(k.shape, jnp.float32)
  dk, dv = lax.fori_loop(0, cfg.groups, head, (zeros, zeros))
  dk_ref[...] = dk.astype(dk_ref.dtype)
  dv_ref[...] = dv.astype(dv_ref.dtype)


def _gpu_q_major_specs(cfg: _Config, heads: int, kv_len: int, d: int):
  """Specs for grid ``(B·H, q blocks)``: q-like ``(bq, D)``, column ``(bq, 1)`` and the whole ``(Lk, D)`` of the kv
  head."""
  b_h = lambda bh: (lax.div(bh, heads), lax.rem(bh, heads))
  q_spec = pl.BlockSpec((None, cfg.block_q, None, d), lambda bh, i: (b_h(bh)[0], i, b_h(bh)[1], 0))
  col_spec = pl.BlockSpec((None, None, cfg.block_q, 1), lambda bh, i: (*b_h(bh), i, 0))
  kv_spec = pl.BlockSpec((None, kv_len, None, d), lambda bh, i: (b_h(bh)[0], 0, lax.div(b_h(bh)[1], cfg.groups), 0))
  return q_spec, col_spec, kv_spec


def _gpu_forward(q, k, v, lengths, cfg: _Config):
  b, lq, h, d = q.shape
  q_spec, col_spec, kv_spec = _gpu_q_major_specs(cfg, h, k.shape[1], d)
  out_shape = (jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, h, lq, 1), jnp.float32))
  return _gpu_call(_gpu_fwd_kernel, cfg, (b * h, lq // cfg.block_q), [q_spec, kv_spec, kv_spec],
                   (q_spec, col_spec), out_shape, d)(*lengths, q, k, v)


def _gpu_backward(q, k, v, do, lse, delta, lengths, cfg: _Config):
  b, lq, h, d = q.shape
  lk, hkv, g = k.shape[1], k.shape[2], cfg.groups
  q_spec, col_spec, kv_spec = _gpu_q_major_specs(cfg, h, lk, d)
  dq = _gpu_call(_gpu_dq_kernel, cfg, (b * h, lq // cfg.block_q),
                 [q_spec, kv_spec, kv_spec, q_spec, col_spec, col_spec], q_spec,
                 jax.ShapeDtypeStruct(q.shape, q.dtype), d)(*lengths, q, k, v, do, lse, delta)
  # dk/dv: grid (B·Hkv, kv blocks); the G query heads of kv head j are block j along H.
  b_j = lambda bj: (lax.div(bj, hkv), lax.rem(bj, hkv))
  kv_block_spec = pl.BlockSpec((None, cfg.block_kv, None, d), lambda bj, i: (b_j(bj)[0], i, b_j(bj)[1], 0))
  group_spec = pl.BlockSpec((None, lq, g, d), lambda bj, i: (b_j(bj)[0], 0, b_j(bj)[1], 0))
  row_spec = pl.BlockSpec((None, g, 1, lq), lambda bj, i: (*b_j(bj), 0, 0))
  rows = lambda x: x.reshape(b, h, 1, lq)  # (B, H, Lq, 1) -> (B, H, 1, Lq): free, the unit dim moves
  dk, dv = _gpu_call(_gpu_dkdv_kernel, cfg, (b * hkv, lk // cfg.block_kv),
                     [group_spec, kv_block_spec, kv_block_spec, group_spec, row_spec, row_spec],
                     (kv_block_spec, kv_block_spec),
                     (jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)),
                     d)(*lengths, q, k, v, do, rows(lse), rows(delta))
  return dq, dk, dv


# --- TPU (Mosaic) lowering: head-major (B, H, L, D) layout ------------------------------------------------------------
def _tpu_call(kernel, cfg: _Config, grid: tuple[int, ...], in_specs: list, out_specs: Any, out_shape: Any,
              scratch_shapes: list, semantics: tuple[str, ...]):
  grid_spec = pltpu.PrefetchScalarGridSpec(num_scalar_prefetch=3, grid=grid, in_specs=in_specs, out_specs=out_specs,
                                           scratch_shapes=scratch_shapes)
  return pl.pallas_call(functools.partial(kernel, cfg=cfg), grid_spec=grid_spec, out_shape=out_shape,
                        compiler_params=pltpu.CompilerParams(dimension_semantics=semantics),
                        interpret=cfg.interpret)


def _tpu_fwd_kernel(q_len_ref, kv_len_ref, prefix_ref, q_ref, k_ref, v_ref, o_ref, lse_ref, m_sc, l_sc, acc_sc, *,
                    cfg: _Config):
  """Grid ``(B, H, q blocks, kv blocks)``. ``q/o (bq, D)``, ``k/v (bk, D)``, ``lse (bq, 1)``; scratch m/l ``(bq, 1)``,
  acc ``(bq, D)`` float32."""
  b, i, j = pl.program_id(0), pl.program_id(2), pl.program_id(3)
  q_len, kv_len, prefix = q_len_ref[b], kv_len_ref[b], prefix_ref[b]
  q_start, k_start = i * cfg.block_q, j * cfg.block_kv

  @pl.when(j == 0)
  def _init():
    m_sc[...] = jnp.full(m_sc.shape, MASK_VALUE, jnp.float32)
    l_sc[...] = jnp.zeros(l_sc.shape, jnp.float32)
    acc_sc[...] = jnp.zeros(acc_sc.shape, jnp.float32)

  @pl.when(j < _kv_blocks_end(q_start, q_len, kv_len, prefix, cfg))
  def _step():
    shape = (cfg.block_q, cfg.block_kv)
    visible = _visible(_positions(q_start, shape, 0), _positions(k_start, shape, 1), q_len, kv_len, prefix, cfg)
    m, l, acc = online_softmax_update(q_ref[...], k_ref[...], v_ref[...], visible, m_sc[...], l_sc[...], acc_sc[...],
                                      cfg.scale, cfg.precision)
    m_sc[...], l_sc[...], acc_sc[...] = m, l, acc

  @pl.when(j == pl.num_programs(3) - 1)
  def _finish():
    out, lse = finalize_softmax(m_sc[...], l_sc[...], acc_sc[...])
    o_ref[...] = out.astype(o_ref.dtype)
    lse_ref[...] = lse


def _tpu_dq_kernel(q_len_ref, kv_len_ref, prefix_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dq_ref, dq_sc, *,
                   cfg: _Config):
  """Grid ``(B, H, q blocks, kv blocks)``. ``q/do/dq (bq, D)``, ``k/v (bk, D)``, ``lse/delta (bq, 1)``."""
  b, i, j = pl.program_id(0), pl.program_id(2), pl.program_id(3)
  q_len, kv_len, prefix = q_len_ref[b], kv_len_ref[b], prefix_ref[b]
  q_start, k_start = i * cfg.block_q, j * cfg.block_kv

  @pl.when(j == 0)
  def _init():
    dq_sc[...] = jnp.zeros(dq_sc.shape, jnp.float32)

  @pl.when(j < _kv_blocks_end(q_start, q_len, kv_len, prefix, cfg))
  def _step():
    shape = (cfg.block_q, cfg.block_kv)
    visible = _visible(_positions(q_start, shape, 0), _positions(k_start, shape, 1), q_len, kv_len, prefix, cfg)
    dq_sc[...] += _dq_update(q_ref[...], k_ref[...], v_ref[...], do_ref[...], lse_ref[...], delta_ref[...], visible,
                             cfg)

  @pl.when(j == pl.num_programs(3) - 1)
  def _finish():
    dq_ref[...] = dq_sc[...].astype(dq_ref.dtype)


def _tpu_dkdv_kernel(q_len_ref, kv_len_ref, prefix_ref, q_ref, k_ref, v_ref, do_ref, lse_ref, delta_ref, dk_ref, dv_ref,
                     dk_sc, dv_sc, *, cfg: _Config):
  """Grid ``(B, Hkv, kv blocks, G, q blocks)``. ``k/v/dk/dv (bk, D)``, ``q/do (bq, D)`` of query head ``j·G + g``,
  ``lse/delta (1, bq)``; the two innermost axes sum over the group's query heads and the q blocks."""
  b, j, g, i = pl.program_id(0), pl.program_id(2), pl.program_id(3), pl.program_id(4)
  q_len, kv_len, prefix = q_len_ref[b], kv_len_ref[b], prefix_ref[b]
  q_start, k_start = i * cfg.block_q, j * cfg.block_kv
  lo, hi = _q_blocks_range(k_start, q_len, kv_len, prefix, cfg)

  @pl.when((g == 0) & (i == 0))
  def _init():
    dk_sc[...] = jnp.zeros(dk_sc.shape, jnp.float32)
    dv_sc[...] = jnp.zeros(dv_sc.shape, jnp.float32)

  @pl.when((i >= lo) & (i < hi))
  def _step():
    shape = (cfg.block_kv, cfg.block_q)
    visible_t = _visible(_positions(q_start, shape, 1), _positions(k_start, shape, 0), q_len, kv_len, prefix, cfg)
    dk, dv = _dkdv_update(q_ref[...], k_ref[...], v_ref[...], do_ref[...], lse_ref[...], delta_ref[...], visible_t,
                          cfg)
    dk_sc[...] += dk
    dv_sc[...] += dv

  @pl.when((g == pl.num_programs(3) - 1) & (i == pl.num_programs(4) - 1))
  def _finish():
    dk_ref[...] = dk_sc[...].astype(dk_ref.dtype)
    dv_ref[...] = dv_sc[...].astype(dv_ref.dtype)


def _tpu_q_major_specs(cfg: _Config, d: int):
  """Specs for grid ``(B, H, q blocks, kv blocks)``: q-like ``(bq, D)``, column ``(bq, 1)`` and clamped kv blocks."""
  def kv_index(b, h, i, j, q_len, kv_len, prefix):
    end = _kv_blocks_end(i * cfg.block_q, q_len[b], kv_len[b], prefix[b], cfg)
    return b, lax.div(h, cfg.groups), _clamp_block(j, 0, end), 0

  q_spec = pl.BlockSpec((None, None, cfg.block_q, d), lambda b, h, i, j, *_: (b, h, i, 0))
  col_spec = pl.BlockSpec((None, None, cfg.block_q, 1), lambda b, h, i, j, *_: (b, h, i, 0))
  return q_spec, col_spec, pl.BlockSpec((None, None, cfg.block_kv, d), kv_index)


def _tpu_forward(q, k, v, lengths, cfg: _Config):
  b, h, lq, d = q.shape
  q_spec, col_spec, kv_spec = _tpu_q_major_specs(cfg, d)
  out_shape = (jax.ShapeDtypeStruct(q.shape, q.dtype), jax.ShapeDtypeStruct((b, h, lq, 1), jnp.float32))
  scratch = [pltpu.VMEM((cfg.block_q, 1), jnp.float32), pltpu.VMEM((cfg.block_q, 1), jnp.float32),
             pltpu.VMEM((cfg.block_q, d), jnp.float32)]
  return _tpu_call(_tpu_fwd_kernel, cfg, (b, h, lq // cfg.block_q, k.shape[2] // cfg.block_kv),
                   [q_spec, kv_spec, kv_spec], (q_spec, col_spec), out_shape, scratch,
                   ("parallel", "parallel", "parallel", "arbitrary"))(*lengths, q, k, v)


def _tpu_backward(q, k, v, do, lse, delta, lengths, cfg: _Config):
  b, h, lq, d = q.shape
  hkv, lk, g = k.shape[1], k.shape[2], cfg.groups
  q_spec, col_spec, kv_spec = _tpu_q_major_specs(cfg, d)
  dq = _tpu_call(_tpu_dq_kernel, cfg, (b, h, lq // cfg.block_q, lk // cfg.block_kv),
                 [q_spec, kv_spec, kv_spec, q_spec, col_spec, col_spec], q_spec, jax.ShapeDtypeStruct(q.shape, q.dtype),
                 [pltpu.VMEM((cfg.block_q, d), jnp.float32)],
                 ("parallel", "parallel", "parallel", "arbitrary"))(*lengths, q, k, v, do, lse, delta)

  def q_block(b_, j, i, q_len, kv_len, prefix):
    lo, hi = _q_blocks_range(j * cfg.block_kv, q_len[b_], kv_len[b_], prefix[b_], cfg)
    return _clamp_block(i, lo, hi)

  group_q_spec = pl.BlockSpec((None, None, cfg.block_q, d),
                              lambda b_, hj, j, gi, i, *lens: (b_, hj * g + gi, q_block(b_, j, i, *lens), 0))
  row_spec = pl.BlockSpec((None, None, 1, cfg.block_q),
                          lambda b_, hj, j, gi, i, *lens: (b_, hj * g + gi, 0, q_block(b_, j, i, *lens)))
  kv_block_spec = pl.BlockSpec((None, None, cfg.block_kv, d), lambda b_, hj, j, gi, i, *_: (b_, hj, j, 0))
  rows = lambda x: x.reshape(b, h, 1, lq)  # (B, H, Lq, 1) -> (B, H, 1, Lq): free, the unit dim moves
  dk, dv = _tpu_call(_tpu_dkdv_kernel, cfg, (b, hkv, lk // cfg.block_kv, g, lq // cfg.block_q),
                     [group_q_spec, kv_block_spec, kv_block_spec, group_q_spec, row_spec, row_spec],
                     (kv_block_spec, kv_block_spec),
                     (jax.ShapeDtypeStruct(k.shape, k.dtype), jax.ShapeDtypeStruct(v.shape, v.dtype)),
                     [pltpu.VMEM((cfg.block_kv, d), jnp.float32), pltpu.VMEM((cfg.block_kv, d), jnp.float32)],
                     ("parallel", "parallel", "parallel", "arbitrary", "arbitrary"))(
                         *lengths, q, k, v, do, rows(lse), rows(delta))
  return dq, dk, dv


# --- custom_vjp over the padded, backend-layout tensors ---------------------------------------------------------------
def _forward(q, k, v, lengths, cfg: _Config):
  return (_tpu_forward if cfg.backend == "tpu" else _gpu_forward)(q, k, v, lengths, cfg)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _flash(q, k, v, lengths, cfg: _Config):
  return _forward(q, k, v, lengths, cfg)[0]


def _flash_fwd(q, k, v, lengths, cfg: _Config):
  out, lse = _forward(q, k, v, lengths, cfg)
  return out, (q, k, v, lengths, out, lse)


def _flash_bwd(cfg: _Config, residuals, do):
  q, k, v, lengths, out, lse = residuals
  delta = jnp.sum(out.astype(jnp.float32) * do.astype(jnp.float32), axis=-1)  # rowsum(dO ∘ O)
  if cfg.backend == "tpu":
    delta = delta[..., None]  # (B, H, Lq, 1)
    dq, dk, dv = _tpu_backward(q, k, v, do, lse, delta, lengths, cfg)
  else:
    delta = jnp.swapaxes(delta, 1, 2)[..., None]  # (B, Lq, H) -> (B, H, Lq, 1)
    dq, dk, dv = _gpu_backward(q, k, v, do, lse, delta, lengths, cfg)
  return dq, dk, dv, None


_flash.defvjp(_flash_fwd, _flash_bwd)


# --- public entry point -----------------------------------------------------------------------------------------------
def default_backend() -> str:
  """The lowering for the current JAX backend: ``"tpu"`` on TPU, else ``"gpu"`` (also on CPU, where it interprets)."""
  return "tpu" if jax.default_backend() == "tpu" else "gpu"


def supports(head_dim: int) -> bool:
  """Whether the kernels take this head dim (both lowerings; Triton needs powers of two >= 16)."""
  return head_dim in HEAD_DIMS


def _block_size(requested: int | None, length: int, backend: str) -> int:
  """The block along a sequence of ``length``: the requested (or default) size, shrunk for short sequences."""
  block = requested or DEFAULT_BLOCKS[backend]
  if backend == "gpu":
    if block < 16 or block & (block - 1):
      raise ValueError(f"GPU (Triton) block sizes must be powers of two >= 16; got {block}")
    return min(block, max(16, pl.next_power_of_2(length)))
  if block % 128:
    raise ValueError(f"TPU block sizes must be multiples of 128; got {block}")
  return min(block, -(-length // 16) * 16)  # a short sequence is one block covering it whole


def _lengths(lengths: jax.Array | None, batch: int, default: int) -> jax.Array:
  if lengths is None:
    return jnp.full((batch,), default, jnp.int32)
  return jnp.broadcast_to(jnp.asarray(lengths, jnp.int32), (batch,))


def _pad_length(x: jax.Array, block: int) -> jax.Array:
  pad = -x.shape[1] % block
  return jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) if pad else x


def flash_attention(q: jax.Array, k: jax.Array, v: jax.Array, *, causal: bool = False,
                    q_lengths: jax.Array | None = None, kv_lengths: jax.Array | None = None,
                    prefix_lengths: jax.Array | None = None, softmax_scale: float | None = None,
                    block_q: int | None = None, block_kv: int | None = None, backend: str | None = None,
                    precision: Any = None, interpret: bool = False) -> jax.Array:
  """FlashAttention-2 ``(B, Lq, H, D) x (B, Lk, Hkv, D) -> (B, Lq, H, D)``, differentiable in q, k, v.

  Args:
    q: ``(B, Lq, H, D)`` float32 or bfloat16.
    k, v: ``(B, Lk, Hkv, D)``, Hkv dividing H.
    causal, q_lengths, kv_lengths, prefix_lengths, softmax_scale: as :func:`audiojax.nn.attention.attention`.
    block_q, block_kv: sequence tiles (default 64 on GPU, 128 on TPU; shrunk for shorter sequences). Sequences are
      padded to a multiple of the block inside and the padding is masked.
    backend: ``"gpu"`` (Triton) or ``"tpu"`` (Mosaic) lowering; None picks from ``jax.default_backend()``.
    precision: matmul precision inside the kernels (None: the backend default, TF32 for float32 on recent GPUs).
    interpret: run the kernels in Pallas' interpreter (needed on CPU); the TPU lowering then uses Mosaic's TPU
      interpreter (``pltpu.InterpretParams``), which simulates VMEM/SMEM and poisons uninitialised memory.
  """
  if q.ndim != 4 or k.shape != v.shape or k.shape[0] != q.shape[0] or k.shape[3] != q.shape[3]:
    raise ValueError(f"flash_attention expects q (B, Lq, H, D) and k/v (B, Lk, Hkv, D); got {q.shape}, {k.shape}, "
                     f"{v.shape}")
  batch, lq, heads, head_dim = q.shape
  lk, kv_heads = k.shape[1], k.shape[2]
  if heads % kv_heads:
    raise ValueError(f"kv heads ({kv_heads}) must divide query heads ({heads})")
  backend = backend or default_backend()
  if backend not in DEFAULT_BLOCKS:
    raise ValueError(f"unknown backend '{backend}'; choose 'gpu' or 'tpu'")
  if not supports(head_dim):
    raise ValueError(f"head dim {head_dim} is not supported; use one of {HEAD_DIMS}")
  if interpret and backend == "tpu":
    interpret = pltpu.InterpretParams()
  cfg = _Config(backend=backend, causal=causal, scale=head_dim ** -0.5 if softmax_scale is None else softmax_scale,
                offset=lk - lq, block_q=_block_size(block_q, lq, backend), block_kv=_block_size(block_kv, lk, backend),
                num_heads=heads, num_kv_heads=kv_heads, precision=precision, interpret=interpret)
  # Lengths are clipped to the true lengths so that the zero padding added below is always masked.
  lengths = (jnp.minimum(_lengths(q_lengths, batch, lq), lq), jnp.minimum(_lengths(kv_lengths, batch, lk), lk),
             _lengths(prefix_lengths, batch, 0))
  q_p, k_p, v_p = _pad_length(q, cfg.block_q), _pad_length(k, cfg.block_kv), _pad_length(v, cfg.block_kv)
  if backend == "tpu":
    head_major = lambda x: jnp.swapaxes(x, 1, 2)
    out = head_major(_flash(head_major(q_p), head_major(k_p), head_major(v_p), lengths, cfg))
  else:
    out = _flash(q_p, k_p, v_p, lengths, cfg)
  return out[:, :lq]
