"""CED model: exact parameter counts and numerics against an independent float64 numpy implementation."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import erf

from audiojax.audio import features
from audiojax.models import ced


@pytest.mark.parametrize("variant,expected", [("tiny", 5_503_183), ("mini", 9_696_655), ("small", 21_622_543),
                                              ("base", 85_711_759)])
def test_parameter_counts_match_the_original(variant, expected):
  model = ced.Model(variant)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32000)), train=False))
  assert ced.count_params(nn.meta.unbox(shapes["params"])) == expected
  assert set(shapes) == {"params", "batch_stats"}  # running statistics are not trainable parameters


# --- independent numpy reference --------------------------------------------------------------------------------------
def _ln(x, p, eps):
  mu = x.mean(-1, keepdims=True)
  var = ((x - mu) ** 2).mean(-1, keepdims=True)
  return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _block(x, p, heads):
  b, n, d = x.shape
  dh = d // heads
  h = _ln(x, p["norm1"], 1e-6)
  qkv = np.einsum("bnd,dkhe->bnkhe", h, p["attn"]["qkv_kernel"]) + p["attn"]["qkv_bias"]
  q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
  logits = np.einsum("bqhe,bkhe->bhqk", q, k) / np.sqrt(dh)
  w = np.exp(logits - logits.max(-1, keepdims=True))
  w /= w.sum(-1, keepdims=True)
  attn = np.einsum("bhqk,bkhe->bqhe", w, v)
  x = x + np.einsum("bqhe,hed->bqd", attn, p["attn"]["proj_kernel"]) + p["attn"]["proj_bias"]
  h = _ln(x, p["norm2"], 1e-6)
  h = h @ p["mlp"]["fc1"]["kernel"] + p["mlp"]["fc1"]["bias"]
  h = 0.5 * h * (1 + erf(h / np.sqrt(2)))  # exact GELU
  return x + h @ p["mlp"]["fc2"]["kernel"] + p["mlp"]["fc2"]["bias"]


def _encode_chunk(x, params, depth, heads):
  """x (B, 64, T) normalised mel → tokens (B, 4, t, D)."""
  b, _, frames = x.shape
  t = (frames - 16) // 16 + 1
  patches = x[:, :, :t * 16].reshape(b, 4, 16, t, 16).transpose(0, 1, 3, 2, 4)  # (B, f, t, 16 freq, 16 time)
  tok = np.einsum("bftij,ijd->bftd", patches, params["patch_embed"]["kernel"][:, :, 0]) + params["patch_embed"]["bias"]
  tok = tok + params["time_pos_embed"][None, None, :t] + params["freq_pos_embed"][None, :, None]
  d = tok.shape[-1]
  tok = tok.reshape(b, 4 * t, d)  # frequency-major
  for i in range(depth):
    tok = _block(tok, params[f"blocks_{i}"], heads)
  return _ln(tok, params["norm"], 1e-6).reshape(b, 4, t, d)


def _head(pooled, params):
  return _ln(pooled, params["head_norm"], 1e-5) @ params["head"]["kernel"] + params["head"]["bias"]


def numpy_ced(params, stats, wave, depth, heads):
  """Returns (clip probs (B, C), clip logits of the first chunk (B, C), frame logits of the first chunk)."""
  params = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  mel = np.asarray(features.log_mel(jnp.asarray(wave), features.CED_MEL), np.float64)  # tested in test_features
  bn, s = params["init_bn"], jax.tree.map(np.asarray, stats["init_bn"])
  x = (mel - s["mean"][:, None]) / np.sqrt(s["var"][:, None] + 1e-5) * bn["scale"][:, None] + bn["bias"][:, None]
  frames = x.shape[-1]
  chunks = [x[..., i:i + 1012] for i in range(0, frames, 1012)] if frames > 1012 else [x]
  chunks = [np.pad(c, ((0, 0), (0, 0), (0, 1012 - c.shape[-1]))) if frames > 1012 else c for c in chunks]
  probs, first = [], None
  for c in chunks:
    tok = _encode_chunk(c, params, depth, heads)
    logits = _head(tok.mean(axis=(1, 2)), params)
    if first is None:
      first = (logits, _head(tok.mean(axis=1), params))
    probs.append(1 / (1 + np.exp(-logits)))
  return np.mean(probs, axis=0), first[0], first[1]


def _random_variables(model, wave, seed=0):
  variables = jax.tree.map(np.asarray, nn.meta.unbox(model.init(jax.random.key(seed), wave, train=False)))
  rng = np.random.default_rng(seed)
  variables["batch_stats"]["init_bn"] = {"mean": rng.normal(-40, 10, 64).astype(np.float32),
                                         "var": rng.uniform(50, 400, 64).astype(np.float32)}
  p = variables["params"]
  p["init_bn"] = {"scale": rng.uniform(0.5, 1.5, 64).astype(np.float32),
                  "bias": rng.normal(0, .2, 64).astype(np.float32)}
  for name in ("norm", "head_norm"):  # non-trivial affine so eps/ordering mistakes show
    p[name] = {"scale": rng.uniform(0.5, 1.5, p[name]["scale"].shape).astype(np.float32),
               "bias": rng.normal(0, .1, p[name]["bias"].shape).astype(np.float32)}
  return variables


@pytest.fixture(scope="module")
def small_model():
  return ced.Model("tiny", num_classes=7, depth=2)


def test_forward_matches_numpy_reference(small_model):
  rng = np.random.default_rng(1)
  wave = (rng.standard_normal((2, 16000 * 2 + 123)) * 0.1).astype(np.float32)
  variables = _random_variables(small_model, wave)
  with jax.default_matmul_precision("highest"):
    out = jax.jit(lambda v, w: small_model.apply(v, w))(variables, wave)
  probs, logits, frame_logits = numpy_ced(variables["params"], variables["batch_stats"], wave, 2, 3)
  np.testing.assert_allclose(out["logits"], logits, atol=2e-4, rtol=1e-4)
  np.testing.assert_allclose(out["probs"], probs, atol=2e-5)
  np.testing.assert_allclose(out["frame_logits"], frame_logits, atol=2e-4, rtol=1e-4)
  t = (ced.num_frames(wave.shape[1]) - 16) // 16 + 1
  assert out["tokens"].shape == (2, 4 * t, 192) and out["frame_logits"].shape == (2, t, 7)


def test_long_input_is_chunked_and_probabilities_averaged(small_model):
  rng = np.random.default_rng(2)
  wave = (rng.standard_normal((1, 16000 * 23)) * 0.1).astype(np.float32)  # 2301 frames → 3 chunks, last padded
  variables = _random_variables(small_model, wave[:, :32000])
  with jax.default_matmul_precision("highest"):
    out = jax.jit(lambda v, w: small_model.apply(v, w))(variables, wave)
  probs, _, _ = numpy_ced(variables["params"], variables["batch_stats"], wave, 2, 3)
  np.testing.assert_allclose(out["probs"], probs, atol=2e-5)
  # every 160 ms patch with 16 real frames gets a frame logit: 2 full chunks × 63 + 17 in the last (277 frames)
  assert out["frame_logits"].shape == (1, 63 + 63 + (277 - 16) // 16 + 1, 7)


def test_exact_multiple_of_chunk_uses_every_frame(small_model):
  """The original drops the last full chunk when T is a multiple of 1012; audiojax does not."""
  wave = np.random.default_rng(3).standard_normal((1, 2023 * 160)).astype(np.float32) * 0.1  # T = 2024
  variables = _random_variables(small_model, wave[:, :32000])
  out = small_model.apply(variables, wave)
  first_chunk_only = small_model.apply(variables, wave[:, :1011 * 160])  # T = 1012
  assert ced.num_frames(wave.shape[1]) == 2024
  assert not np.allclose(out["probs"], first_chunk_only["probs"], atol=1e-4)


def test_too_short_input_is_a_clear_error(small_model):
  with pytest.raises(ValueError, match="at least 2400 samples"):
    small_model.init(jax.random.key(0), jnp.zeros((1, 2399)))
