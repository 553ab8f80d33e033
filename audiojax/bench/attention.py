"""Attention speed: the Pallas FlashAttention kernels against XLA attention, side by side in one run.

``python -m audiojax bench attention`` times forward and forward+backward for each sequence length, head dim
and causal flag, and prints a table with the achieved TFLOP/s and the speed-up over ``xla_attention``. FLOPs are the
useful ones, counted as FlashAttention-2 does: 4·D per visible (query, key) pair forward (two matmuls), 2.5× that
backward (five matmuls, the recomputation of the logits included); a causal mask halves them. Both implementations are
credited with the same count. On accelerators the sweep is L 256…8192 × D 64/128 in bfloat16 with 16k tokens per
batch and 1024 model width; on CPU the kernels run in Pallas' interpreter and the figures say nothing about
accelerator speed, so a small sweep only checks that the benchmark runs.

A second table times one KV-cache decode step (one new query per example against a full cache, 16 query heads over 4
kv heads of dim 128, bfloat16): the split-K Pallas decode kernel against XLA's masked attention, with the achieved
bandwidth counted as the bytes of valid cache read (keys and values once each), since decoding is memory-bound.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.bench.timing import best_seconds
from audiojax.kernels import flash_attention as fa
from audiojax.nn import attention as attn_lib

ACCELERATOR_SEQ_LENS = (256, 512, 1024, 2048, 4096, 8192)
CPU_SEQ_LENS = (128, 256)
DECODE_CACHE_LENS = (1024, 4096, 16384)
DECODE_BATCH, DECODE_HEADS, DECODE_KV_HEADS, DECODE_HEAD_DIM = 32, 16, 4, 128
TOKENS_PER_BATCH = 16384
MODEL_WIDTH = 1024


def attention_flops(batch: int, heads: int, q_len: int, kv_len: int, head_dim: int, causal: bool) -> float:
  """Useful forward FLOPs: two matmuls (2 FLOPs per multiply-add) over the visible (query, key) pairs, with causal
  masking aligned to the end of the keys."""
  if causal:
    pairs = int(np.clip(np.arange(q_len) + kv_len - q_len + 1, 0, kv_len).sum())
  else:
    pairs = q_len * kv_len
  return 4.0 * batch * heads * head_dim * pairs


def _timings(attend: Callable, q: jax.Array, k: jax.Array, v: jax.Array, repeats: int) -> tuple[float, float]:
  """Best seconds of the jitted forward and of forward+backward (a vjp with a fixed cotangent); nan if it fails
  (e.g. XLA's L×L logits running out of memory)."""
  forward = jax.jit(attend)
  train = jax.jit(lambda q, k, v: jax.vjp(attend, q, k, v)[1](jnp.ones_like(q)))
  results = []
  for fn in (forward, train):
    try:
      results.append(best_seconds(lambda: fn(q, k, v), repeats))
    except Exception as e:  # noqa: BLE001 (a failed configuration is reported in the table, not fatal)
      print(f"  ({type(e).__name__}: {str(e).splitlines()[0][:100]})")
      results.append(float("nan"))
  return results[0], results[1]


def _row(seq_len: int, head_dim: int, causal: bool, dtype, interpret: bool, repeats: int) -> dict[str, float]:
  batch = max(1, TOKENS_PER_BATCH // seq_len) if not interpret else 1
  heads = MODEL_WIDTH // head_dim if not interpret else 2
  keys = jax.random.split(jax.random.key(0), 3)
  q, k, v = (jax.random.normal(key, (batch, seq_len, heads, head_dim), dtype) for key in keys)
  xla = lambda q, k, v: attn_lib.attention(q, k, v, causal=causal, impl="xla")
  pallas = lambda q, k, v: fa.flash_attention(q, k, v, causal=causal, interpret=interpret)
  flops = attention_flops(batch, heads, seq_len, seq_len, head_dim, causal)
  row = dict(seq_len=seq_len, head_dim=head_dim, causal=causal, batch=batch, heads=heads)
  for name, attend in (("xla", xla), ("pallas", pallas)):
    fwd, train = _timings(attend, q, k, v, repeats)
    row.update({f"{name}_fwd_ms": fwd * 1e3, f"{name}_fwd_tflops": flops / fwd / 1e12,
                f"{name}_train_ms": train * 1e3, f"{name}_train_tflops": 3.5 * flops / train / 1e12})
  row["fwd_speedup"] = row["xla_fwd_ms"] / row["pallas_fwd_ms"]
  row["train_speedup"] = row["xla_train_ms"] / row["pallas_train_ms"]
  return row


def _print_table(rows: Sequence[dict[str, float]]) -> None:
  print(f"{'L':>5} {'D':>4} {'causal':>6} {'B×H':>6} | {'forward ms xla/pallas':>22} {'TFLOP/s xla/pallas':>19} "
        f"{'speed-up':>8} | {'fwd+bwd ms xla/pallas':>22} {'TFLOP/s xla/pallas':>19} {'speed-up':>8}")
  for r in rows:
    print(f"{r['seq_len']:>5} {r['head_dim']:>4} {str(r['causal']):>6} {r['batch'] * r['heads']:>6} | "
          f"{r['xla_fwd_ms']:>10.2f} {r['pallas_fwd_ms']:>11.2f} {r['xla_fwd_tflops']:>9.3f} "
          f"{r['pallas_fwd_tflops']:>9.3f} {r['fwd_speedup']:>7.2f}× | "
          f"{r['xla_train_ms']:>10.2f} {r['pallas_train_ms']:>11.2f} {r['xla_train_tflops']:>9.3f} "
          f"{r['pallas_train_tflops']:>9.3f} {r['train_speedup']:>7.2f}×")


def _decode_row(cache_len: int, batch: int, interpret: bool, repeats: int) -> dict[str, float]:
  """One decode step with every cache full: Pallas split-K kernel vs XLA, milliseconds and GB/s of cache read."""
  dtype = jnp.float32 if interpret else jnp.bfloat16
  keys = jax.random.split(jax.random.key(1), 3)
  q = jax.random.normal(keys[0], (batch, 1, DECODE_HEADS, DECODE_HEAD_DIM), dtype)
  k, v = (jax.random.normal(key, (batch, cache_len, DECODE_KV_HEADS, DECODE_HEAD_DIM), dtype) for key in keys[1:])
  lengths = jnp.full((batch,), cache_len, jnp.int32)
  cache_bytes = 2 * k.size * k.dtype.itemsize
  row = dict(cache_len=cache_len, batch=batch)
  for name, impl in (("xla", "xla"), ("pallas", "pallas")):
    step = jax.jit(lambda q, k, v, lengths, impl=impl: attn_lib.cached_attention(q, k, v, lengths, impl=impl))
    seconds = best_seconds(lambda: step(q, k, v, lengths), repeats)
    row.update({f"{name}_ms": seconds * 1e3, f"{name}_gbps": cache_bytes / seconds / 1e9})
  row["speedup"] = row["xla_ms"] / row["pallas_ms"]
  return row


def _print_decode_table(rows: Sequence[dict[str, float]]) -> None:
  print(f"\ndecode step: B queries x 1 position, {DECODE_HEADS} heads / {DECODE_KV_HEADS} kv heads, D "
        f"{DECODE_HEAD_DIM}, full caches")
  print(f"{'S':>6} {'B':>4} | {'ms xla/pallas':>16} {'GB/s xla/pallas':>18} {'speed-up':>8}")
  for r in rows:
    print(f"{r['cache_len']:>6} {r['batch']:>4} | {r['xla_ms']:>7.3f} {r['pallas_ms']:>8.3f} {r['xla_gbps']:>8.1f} "
          f"{r['pallas_gbps']:>9.1f} {r['speedup']:>7.2f}×")


def main(seq_lens: Sequence[int] | None = None, head_dims: Sequence[int] | None = None, repeats: int = 5
         ) -> list[dict[str, float]]:
  """Runs the sweep for this backend and prints both tables; returns the attention rows, then the decode rows."""
  interpret = jax.default_backend() == "cpu"
  dtype = jnp.float32 if interpret else jnp.bfloat16
  seq_lens = seq_lens or (CPU_SEQ_LENS if interpret else ACCELERATOR_SEQ_LENS)
  head_dims = head_dims or ((64,) if interpret else (64, 128))
  print(f"attention benchmark on {jax.default_backend()}: {jax.devices()[0].device_kind}, {jnp.dtype(dtype).name}, "
        f"Pallas lowering '{fa.default_backend()}'")
  if interpret:
    print("CPU: the Pallas kernels run in INTERPRET mode. These figures measure the interpreter, NOTHING about GPU/TPU "
          "kernel speed; the sweep is shrunk to check that the benchmark runs.")
  rows = [_row(seq_len, head_dim, causal, dtype, interpret, repeats)
          for head_dim in head_dims for seq_len in seq_lens for causal in (False, True)]
  _print_table(rows)
  decode_rows = [_decode_row(cache_len, 2 if interpret else DECODE_BATCH, interpret, repeats)
                 for cache_len in ((256,) if interpret else DECODE_CACHE_LENS)]
  _print_decode_table(decode_rows)
  return rows + decode_rows

