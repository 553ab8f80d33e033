"""Pallas attention kernels on CPU (interpret mode) against the jnp references, forward and gradients; their lowering
to Triton/Mosaic IR; and the attention dispatch (``impl="pallas"`` matches ``"xla"`` down to a CED model)."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.bench import attention as bench_attention
from audiojax.kernels import decode_attention as da
from audiojax.kernels import flash_attention as fa
from audiojax.models import ced
from audiojax.nn import attention as attn_lib

# Max abs error (forward, gradients). bfloat16: the kernel on bf16 inputs against the float32 reference on the same
# bf16-rounded inputs; the error is the bf16 rounding of p, ds and the outputs.
TOLERANCES = {jnp.float32: (1e-5, 1e-4), jnp.bfloat16: (2e-2, 6e-2)}


def _normal(key, shape, dtype):
  return jax.random.normal(key, shape, jnp.float32).astype(dtype)


def _inputs(seed, b, lq, lk, h, hkv, d, dtype):
  kq, kk, kv, kdo = jax.random.split(jax.random.key(seed), 4)
  return (_normal(kq, (b, lq, h, d), dtype), _normal(kk, (b, lk, hkv, d), dtype), _normal(kv, (b, lk, hkv, d), dtype),
          _normal(kdo, (b, lq, h, d), jnp.float32))


def _outputs_and_grads(fn, ref, q, k, v, do):
  """``fn``'s output and q/k/v vjps (checked finite), and ``ref``'s run in float32 on the same inputs."""
  def out_and_grads(f, *args):
    out, vjp = jax.vjp(f, *args)
    return out, vjp(do.astype(out.dtype))

  out, grads = jax.jit(lambda *a: out_and_grads(fn, *a))(q, k, v)
  ref_out, ref_grads = jax.jit(lambda *a: out_and_grads(ref, *a))(*(x.astype(jnp.float32) for x in (q, k, v)))
  assert all(bool(jnp.isfinite(x).all()) for x in (out, *grads)), "NaN/inf in kernel output or gradients"
  return out, grads, ref_out, ref_grads


def _max_errors(fn, ref, q, k, v, do):
  """Max abs errors of ``fn``'s output and q/k/v vjps against ``ref`` run in float32 on the same inputs."""
  out, grads, ref_out, ref_grads = _outputs_and_grads(fn, ref, q, k, v, do)
  assert bool(jnp.all((out == 0) | (ref_out != 0))), "rows without a visible key must be exactly 0"
  err = lambda a, b: float(jnp.max(jnp.abs(a.astype(jnp.float32) - b)))
  return err(out, ref_out), [err(g, r) for g, r in zip(grads, ref_grads)]


# (id, (B, Lq, Lk, H, Hkv, D), attention kwargs, (block_q, block_kv), dtype), GPU lowering
GPU_CASES = [
    ("odd_cross_lengths_3_groups", (2, 7, 130, 6, 2, 64), dict(q_lengths=[7, 3]), (16, 32), jnp.float32),
    ("masks_all_masked_rows_causal_lq_gt_lk", (3, 64, 33, 2, 2, 16),
     dict(causal=True, q_lengths=[64, 17, 30], kv_lengths=[33, 20, 0]), (16, 16), jnp.float32),
    ("causal_and_prefix_lm", (2, 130, 130, 2, 2, 32),  # example 0 plain causal (prefix 0)
     dict(causal=True, prefix_lengths=[0, 40], q_lengths=[130, 100], kv_lengths=[130, 100]), (32, 32), jnp.float32),
    ("gqa_causal_cross", (2, 33, 130, 4, 1, 32), dict(causal=True, kv_lengths=[130, 77]), (16, 32), jnp.float32),
    ("bf16_gqa_prefix", (2, 130, 64, 4, 2, 64),
     dict(causal=True, prefix_lengths=[5, 0], q_lengths=[130, 90], kv_lengths=[64, 40]), (32, 16), jnp.bfloat16),
]

# TPU lowering under Mosaic's TPU interpreter (slow, so few cases; 128-blocks are the TPU minimum).
TPU_CASES = [
    ("multi_block_causal_gqa_prefix", (1, 260, 260, 2, 1, 16), dict(causal=True, prefix_lengths=[100], q_lengths=[250]),
     (128, 128), jnp.float32),
    ("bf16_odd_cross_masks_all_masked_rows", (2, 7, 33, 2, 1, 64), dict(q_lengths=[5, 7], kv_lengths=[33, 0]),
     (128, 128), jnp.bfloat16),
]


def _check_flash(backend, shape, kwargs, blocks, dtype, seed):
  b, lq, lk, h, hkv, d = shape
  q, k, v, do = _inputs(seed, b, lq, lk, h, hkv, d, dtype)
  kwargs = {key: (jnp.array(val) if isinstance(val, list) else val) for key, val in kwargs.items()}
  fn = lambda q, k, v: fa.flash_attention(q, k, v, **kwargs, block_q=blocks[0], block_kv=blocks[1], backend=backend,
                                          interpret=True)
  ref = lambda q, k, v: fa.reference_attention(q, k, v, **kwargs)
  fwd_err, grad_errs = _max_errors(fn, ref, q, k, v, do)
  fwd_tol, grad_tol = TOLERANCES[dtype]
  assert fwd_err <= fwd_tol, f"forward max abs error {fwd_err:.2e}"
  assert max(grad_errs) <= grad_tol, f"dq/dk/dv max abs errors {grad_errs}"


@pytest.mark.parametrize("case", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_gpu_lowering_matches_reference(case):
  _check_flash("gpu", *case[1:], seed=len(case[0]))


@pytest.mark.parametrize("case", TPU_CASES, ids=[c[0] for c in TPU_CASES])
def test_tpu_lowering_matches_reference(case):
  _check_flash("tpu", *case[1:], seed=len(case[0]))


@pytest.mark.parametrize("backend,platform,target", [("gpu", "cuda", "triton"), ("tpu", "tpu", "tpu_custom_call")])
def test_lowers_to_accelerator_ir(backend, platform, target):
  """Forward + backward lower through Pallas' Triton/Mosaic lowering: every primitive in the kernels has a lowering
  rule, and Mosaic's (8, 128) block-tiling check passes. Compiling that IR needs the real device toolchain."""
  q = jax.ShapeDtypeStruct((2, 300, 8, 128), jnp.bfloat16)
  kv = jax.ShapeDtypeStruct((2, 520, 2, 128), jnp.bfloat16)
  lengths = jax.ShapeDtypeStruct((2,), jnp.int32)

  def loss(q, k, v, q_len, kv_len, prefix):
    out = fa.flash_attention(q, k, v, causal=True, q_lengths=q_len, kv_lengths=kv_len, prefix_lengths=prefix,
                             backend=backend)
    return out.astype(jnp.float32).sum()

  hlo = jax.jit(jax.grad(loss, (0, 1, 2))).trace(q, kv, kv, lengths, lengths, lengths).lower(
      lowering_platforms=(platform,)).as_text()
  assert hlo.count(target) >= 3  # forward, dq, dk/dv kernels


def test_decode_lowers_to_triton_ir():
  q = jax.ShapeDtypeStruct((2, 3, 8, 128), jnp.bfloat16)
  cache = jax.ShapeDtypeStruct((2, 1000, 2, 128), jnp.bfloat16)
  hlo = jax.jit(da.decode_attention).trace(q, cache, cache, jax.ShapeDtypeStruct((2,), jnp.int32)).lower(
      lowering_platforms=("cuda",)).as_text()
  assert "triton" in hlo


DECODE_CASES = [  # (B, n, H, Hkv, S, D), lengths, block_kv, num_splits
    ((4, 3, 4, 2, 100, 32), [100, 37, 2, 0], 16, 4),  # GQA, 4 splits, S % block != 0, rows without keys
    ((2, 1, 2, 2, 7, 16), [7, 3], 64, 4),  # single query, cache shorter than one block
]


@pytest.mark.parametrize("shape,lengths,block_kv,num_splits", DECODE_CASES)
def test_decode_attention_matches_reference(shape, lengths, block_kv, num_splits):
  b, n, h, hkv, s, d = shape
  q, k, v, _ = _inputs(s, b, n, s, h, hkv, d, jnp.float32)
  lengths = jnp.array(lengths)
  out = jax.jit(lambda *a: da.decode_attention(*a, block_kv=block_kv, num_splits=num_splits, interpret=True))(
      q, k, v, lengths)
  np.testing.assert_allclose(out, da.reference_decode_attention(q, k, v, lengths), atol=1e-5)


def test_decode_reference_is_causal_attention_on_the_valid_prefix():
  q, k, v, _ = _inputs(1, 1, 3, 10, 2, 1, 16, jnp.float32)
  expected = jax.jit(lambda q, k, v: fa.reference_attention(q, k[:, :8], v[:, :8], causal=True))(q, k, v)
  actual = jax.jit(da.reference_decode_attention)(q, k, v, jnp.array([8]))
  np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_dispatch_pallas_matches_xla():
  q, k, v, _ = _inputs(2, 2, 20, 40, 4, 2, 32, jnp.float32)
  lengths = dict(causal=True, q_lengths=jnp.array([20, 11]), kv_lengths=jnp.array([40, 25]),
                 prefix_lengths=jnp.array([3, 30]))
  both = jax.jit(lambda *a: [attn_lib.attention(*a, **lengths, impl=impl) for impl in ("pallas", "xla")])
  np.testing.assert_allclose(*both(q, k, v), atol=1e-5)
  cache_lengths = jnp.array([40, 6])
  cached = jax.jit(lambda *a: [attn_lib.cached_attention(*a, impl=impl) for impl in ("pallas", "xla")])
  np.testing.assert_allclose(*cached(q[:, :2], k, v, cache_lengths), atol=1e-5)


def test_auto_resolves_to_xla_on_cpu_and_rejects_unknown_impls():
  assert attn_lib.resolve_impl("auto", 64, jnp.float32) == "xla"
  assert attn_lib.resolve_impl("pallas", 64, jnp.float32) == "pallas"
  with pytest.raises(ValueError, match="unknown"):
    attn_lib.resolve_impl("flash", 64, jnp.float32)


def test_ced_with_pallas_attention_matches_xla():
  # Weights from numpy: compiling model.init's random initialisers would cost more than the rest of the test.
  rng = np.random.default_rng(0)
  wave = jnp.asarray(0.1 * rng.standard_normal((2, 16000)), jnp.float32)
  models = [ced.Model("tiny", num_classes=5, depth=2, attention_impl=impl) for impl in ("xla", "pallas")]
  shapes = nn.meta.unbox(jax.eval_shape(models[0].init, jax.random.key(0), wave))
  variables = {"params": jax.tree.map(lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype),
                                      shapes["params"]),
               "batch_stats": jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["batch_stats"])}
  xla_out, pallas_out = (jax.jit(model.apply)(variables, wave) for model in models)
  for name in ("logits", "tokens"):
    np.testing.assert_allclose(pallas_out[name], xla_out[name], atol=1e-6, rtol=1e-6)


def test_bench_counts_useful_flops():
  assert bench_attention.attention_flops(1, 1, 4, 4, 8, causal=False) == 4 * 8 * 16
  assert bench_attention.attention_flops(1, 1, 4, 4, 8, causal=True) == 4 * 8 * 10  # 1 + 2 + 3 + 4 visible keys
  assert bench_attention.attention_flops(2, 3, 2, 4, 8, causal=True) == 6 * 4 * 8 * 7  # end-aligned: 3 + 4 keys



# --- compiled on a GPU (skipped elsewhere): the same kernels through Triton, not the interpreter ----------------------
needs_gpu = pytest.mark.skipif(jax.default_backend() != "gpu", reason="compiles the Triton kernels: needs a GPU "
                               "(run with JAX_PLATFORMS=cuda, which conftest.py then leaves alone)")


def _relative_errors(fn, ref, q, k, v, do):
  """Max abs errors of the output and q/k/v gradients, each divided by the reference's max abs value (at least 1)."""
  out, grads, ref_out, ref_grads = _outputs_and_grads(fn, ref, q, k, v, do)
  rel = lambda a, b: float(jnp.max(jnp.abs(a.astype(jnp.float32) - b)) / jnp.maximum(jnp.max(jnp.abs(b)), 1.0))
  return rel(out, ref_out), [rel(g, r) for g, r in zip(grads, ref_grads)]


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("case", GPU_CASES, ids=[c[0] for c in GPU_CASES])
def test_compiled_gpu_kernels_match_reference(case):
  """The interpreter cases, compiled. float32 runs at HIGHEST precision (no TF32) so the float32 tolerances hold."""
  _, (b, lq, lk, h, hkv, d), kwargs, blocks, dtype = case
  q, k, v, do = _inputs(len(case[0]), b, lq, lk, h, hkv, d, dtype)
  kwargs = {key: (jnp.array(val) if isinstance(val, list) else val) for key, val in kwargs.items()}
  precision = jax.lax.Precision.HIGHEST if dtype == jnp.float32 else None
  fn = lambda q, k, v: fa.flash_attention(q, k, v, **kwargs, block_q=blocks[0], block_kv=blocks[1], backend="gpu",
                                          precision=precision)
  fwd_err, grad_errs = _max_errors(fn, lambda q, k, v: fa.reference_attention(q, k, v, **kwargs), q, k, v, do)
  fwd_tol, grad_tol = TOLERANCES[dtype]
  assert fwd_err <= fwd_tol, f"forward max abs error {fwd_err:.2e}"
  assert max(grad_errs) <= grad_tol, f"dq/dk/dv max abs errors {grad_errs}"


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("causal", [False, True])
def test_compiled_gpu_kernels_at_training_shapes(causal):
  """Default blocks, bfloat16, head dim 128, 2k tokens with ragged lengths: errors relative to the reference's scale."""
  q, k, v, do = _inputs(3, 2, 2048, 2048, 8, 2, 128, jnp.bfloat16)
  lengths = dict(causal=causal, q_lengths=jnp.array([2048, 1500]), kv_lengths=jnp.array([2048, 1500]))
  fn = lambda q, k, v: fa.flash_attention(q, k, v, **lengths, backend="gpu")
  fwd_err, grad_errs = _relative_errors(fn, lambda q, k, v: fa.reference_attention(q, k, v, **lengths), q, k, v, do)
  assert fwd_err <= 2e-2, f"forward relative error {fwd_err:.2e}"
  assert max(grad_errs) <= 3e-2, f"dq/dk/dv relative errors {grad_errs}"


@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("shape,lengths,block_kv,num_splits", DECODE_CASES + [
    ((8, 1, 16, 4, 4096, 128), [4096, 4000, 1, 2049, 64, 65, 3000, 17], 64, 8)])
def test_compiled_decode_kernel_matches_reference(shape, lengths, block_kv, num_splits):
  b, n, h, hkv, s, d = shape
  q, k, v, _ = _inputs(s, b, n, s, h, hkv, d, jnp.float32)
  lengths = jnp.array(lengths)
  out = jax.jit(lambda *a: da.decode_attention(*a, block_kv=block_kv, num_splits=num_splits,
                                               precision=jax.lax.Precision.HIGHEST))(q, k, v, lengths)
  np.testing.assert_allclose(out, da.reference_decode_attention(q, k, v, lengths), atol=1e-5)


@needs_gpu
@pytest.mark.gpu
def test_auto_takes_the_kernels_on_one_gpu():
  assert attn_lib.resolve_impl("auto", 64, jnp.bfloat16) == "pallas"
  q, k, v, _ = _inputs(4, 2, 300, 300, 4, 2, 64, jnp.bfloat16)
  lengths = dict(causal=True, q_lengths=jnp.array([300, 123]), kv_lengths=jnp.array([300, 123]))
  auto, xla = jax.jit(lambda *a: [attn_lib.attention(*a, **lengths, impl=impl) for impl in ("auto", "xla")])(q, k, v)
  np.testing.assert_allclose(np.asarray(auto, np.float32), np.asarray(xla, np.float32), atol=2e-2)
