"""The codec model (EnCodec/SEANet + RVQ): sizes, frame counts, bandwidths, causality, training mode, configs."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.errors import UserError
from audiojax.models import codec
from audiojax.nn.quantize import CODEBOOKS


def _abstract(model):
  return nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), *codec.example_inputs(model))))


@pytest.mark.parametrize("variant,encoder,decoder,codebooks", [
    ("encodec_24khz", 7_425_792, 7_426_018, 32 * (2 * 1024 * 128 + 1024 + 1)),  # the reference note: 14.85M
    ("tiny", 466_560, 466_618, 8 * (2 * 256 * 32 + 256 + 1)),
    ("small", 1_859_712, 1_859_826, 8 * (2 * 1024 * 64 + 1024 + 1)),
    ("base", 7_425_792, 7_426_018, 16 * (2 * 1024 * 128 + 1024 + 1)),
])
def test_variant_sizes(variant, encoder, decoder, codebooks):
  variables = _abstract(codec.Model(variant))
  assert codec.count_params(variables["params"]["encoder"]) == encoder
  assert codec.count_params(variables["params"]["decoder"]) == decoder
  assert codec.count_params(variables[CODEBOOKS]) == codebooks
  assert set(variables) == {"params", CODEBOOKS}


def test_bandwidths_choose_codebooks_as_encodec_does():
  full = codec.Model("encodec_24khz")
  assert (full.hop_length, full.frame_rate, full.bandwidth_per_codebook) == (320, 75, 0.75)
  assert [full.bandwidth_to_n_q(b) for b in (1.5, 3, 6, 12, 24)] == [2, 4, 8, 16, 32]
  tiny = codec.Model("tiny")
  assert (tiny.hop_length, tiny.frame_rate) == (320, 50)
  assert [tiny.bandwidth_to_n_q(b) for b in tiny.bandwidths] == [1, 2, 4, 8]
  with pytest.raises(UserError, match="bandwidth 5 kbps is not one of this codec's \\(1.5, 3, 6, 12, 24 kbps\\)"):
    full.bandwidth_to_n_q(5)
  with pytest.raises(UserError, match="needs 16 codebooks but the codec has 8"):
    codec.Model("tiny", bandwidths=(6.4,)).bandwidth_to_n_q(6.4)


@pytest.fixture(scope="module")
def tiny():
  """The tiny variant with random codebooks near its latents' scale (inited)."""
  model = codec.Model("tiny")
  variables = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), *codec.example_inputs(model)))
  rng = np.random.default_rng(0)
  shape = variables[CODEBOOKS]["quantizer"]["embed"].shape
  variables[CODEBOOKS]["quantizer"]["embed"] = (rng.standard_normal(shape) * 0.02).astype(np.float32)
  variables[CODEBOOKS]["quantizer"]["inited"] = np.ones(shape[0], np.float32)
  return model, variables


@pytest.mark.parametrize("length", [1, 319, 320, 321, 1000])
def test_frames_and_decoded_length(tiny, length):
  model, variables = tiny
  wave = jax.ShapeDtypeStruct((2, length), jnp.float32)
  codes = jax.eval_shape(lambda w: model.apply(variables, w, 3, method="encode"), wave)
  frames = math.ceil(length / 320)
  assert codes.shape == (2, 3, frames) and codes.dtype == jnp.int32
  assert jax.eval_shape(lambda c: model.apply(variables, c, method="decode"), codes).shape == (2, frames * 320)
  assert jax.eval_shape(lambda w: model.apply(variables, w, 3), wave)["wave"].shape == (2, length)


def test_forward_pass_is_encode_then_decode(tiny):
  model, variables = tiny
  wave = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 1000)).astype(np.float32)
  out = model.apply(variables, wave, 3)
  codes = model.apply(variables, wave, 3, method="encode")
  np.testing.assert_array_equal(out["codes"], codes)
  assert len(np.unique(np.asarray(codes[:, 0]))) > 1  # the codebooks' scale spreads the frames over codes
  np.testing.assert_allclose(out["wave"], model.apply(variables, codes, method="decode")[:, :1000], atol=1e-6)


def test_the_codec_is_causal(tiny):
  """Causal, reflect-padded on the left: the frames of a prefix (a whole number of hops, and at least the 7 frames
  of the last convolution's padding: EnCodec zero-extends shorter inputs before reflecting) do not change when more
  audio follows; neither do the samples decoded from a prefix of the codes."""
  model, variables = tiny
  wave = np.random.default_rng(1).uniform(-0.5, 0.5, (1, 6400)).astype(np.float32)
  latents = lambda w: np.asarray(model.apply(variables, w, method="latents"))
  np.testing.assert_allclose(latents(wave[:, :3200]), latents(wave)[:, :10], atol=1e-6)
  codes = np.random.default_rng(2).integers(0, model.bins, (1, 8, 20)).astype(np.int32)
  decoded = lambda c: np.asarray(model.apply(variables, c, method="decode"))
  np.testing.assert_allclose(decoded(codes[:, :, :10]), decoded(codes)[:, :3200], atol=1e-6)


def test_training_updates_codebooks_and_passes_gradients_to_the_encoder():
  model = codec.Model("tiny", ratios=(4, 2), lstm_layers=1, n_q=8, bins=16, kmeans_iters=5)  # quick to compile
  variables = nn.meta.unbox(jax.jit(model.init)(jax.random.key(0), *codec.example_inputs(model)))
  wave = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 160)).astype(np.float32)

  def loss(params, codebooks):
    out, updated = model.apply({"params": params, CODEBOOKS: codebooks}, wave, 4, train=True, rng=jax.random.key(3),
                               mutable=[CODEBOOKS])
    return jnp.mean(jnp.abs(out["wave"] - wave)) + out["commitment_loss"], (out, updated)

  (value, (out, updated)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(variables["params"],
                                                                                 variables[CODEBOOKS])
  assert np.isfinite(value) and out["codes"].shape == (2, 4, 20) and out["perplexity"].shape == (4,)
  state = updated[CODEBOOKS]["quantizer"]
  np.testing.assert_array_equal(state["inited"], [1, 1, 1, 1, 0, 0, 0, 0])  # k-means ran for the 4 used
  assert np.all(np.asarray(state["cluster_size"])[:4].sum(1) > 0) and np.all(np.asarray(out["perplexity"]) > 1)
  for part in ("encoder", "decoder"):  # the straight-through estimator reaches the encoder
    norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads[part])]
    assert all(np.isfinite(norms)) and min(norms) > 0, part


def test_parameters_carry_logical_axes():
  boxed = jax.eval_shape(lambda: codec.Model("tiny").init(jax.random.key(0), jnp.zeros((1, 320))))
  encoder = boxed["params"]["encoder"]
  assert encoder["stage_0_down"]["weight_v"].names == (None, None, "channels")
  assert encoder["lstm"]["layer_0"]["weight_hh"].names == ("channels", None)
  assert boxed[CODEBOOKS]["quantizer"]["embed"].names == (None, "codebook", None)


def test_config_round_trip_and_bad_configs():
  model = codec.Model("encodec_24khz")
  config = codec.to_config(model)
  assert codec.from_config(config) == model
  assert codec.from_config(config, dtype=jnp.bfloat16).dtype == jnp.bfloat16
  with pytest.raises(UserError, match="unknown key 'channels'"):
    codec.from_config({**config, "channels": 2})
  with pytest.raises(UserError, match="no 'ratios'"):
    codec.from_config({k: v for k, v in config.items() if k != "ratios"})
  with pytest.raises(UserError, match="wrongly typed 'n_q', a wrongly typed 'bandwidths'"):
    codec.from_config({**config, "n_q": "32", "bandwidths": []})
  with pytest.raises(UserError, match="unknown codec variant 'huge'"):
    codec.Model("huge")
