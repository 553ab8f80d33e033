"""The shared layer pieces: collection-aware variables, the norms and the position / timestep embeddings, each against
a numpy implementation of its published formula."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.errors import UserError
from audiojax.nn.embeddings import apply_rotary, sinusoidal_positions, timestep_embedding
from audiojax.nn.norms import RMSNorm, TwoPassLayerNorm


def test_rms_norm_matches_numpy_and_names_its_scale_embed():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 5, 8)).astype(np.float32) * 3
  boxed = RMSNorm(epsilon=1e-5).init(jax.random.key(0), x)["params"]
  assert boxed["scale"].names == ("embed",)
  np.testing.assert_array_equal(boxed["scale"].value, np.ones(8))
  scale = rng.standard_normal(8).astype(np.float32)
  expected = x / np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True) + 1e-5) * scale
  np.testing.assert_allclose(RMSNorm(epsilon=1e-5).apply({"params": {"scale": scale}}, x), expected, rtol=1e-5)
  half = RMSNorm(epsilon=1e-5, dtype=jnp.bfloat16).apply({"params": {"scale": scale}}, x.astype(jnp.bfloat16))
  assert half.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(half, np.float32), expected, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("collection", ["params", "frozen"])
def test_two_pass_layer_norm_lives_in_its_collection(collection):
  x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32) * 5 + 100  # a large mean
  norm = TwoPassLayerNorm(1e-12, collection)
  variables = norm.init(jax.random.key(0), x)
  assert set(variables) == {collection}
  assert {k: v.names for k, v in variables[collection].items()} == {"scale": ("embed",), "bias": ("embed",)}
  # a frozen collection starts as zero placeholders for converted weights; params start as the identity norm
  np.testing.assert_array_equal(nn.meta.unbox(variables)[collection]["scale"], float(collection == "params"))
  scale, bias = np.linspace(0.5, 2, 16, dtype=np.float32), np.linspace(-1, 1, 16, dtype=np.float32)
  out = norm.apply({collection: {"scale": scale, "bias": bias}}, x)
  centred = x - x.mean(-1, keepdims=True)
  np.testing.assert_allclose(out, centred / np.sqrt(np.mean(centred ** 2, -1, keepdims=True) + 1e-12) * scale + bias,
                             rtol=1e-5, atol=1e-5)


def test_sinusoidal_positions_are_vaswani_interleaved():
  pos, i = np.arange(30)[:, None], np.arange(8)[None, :]
  angle = pos / 10000.0 ** (2 * i / 16)
  expected = np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(30, 16)  # sin at 2i, cos at 2i + 1
  np.testing.assert_allclose(sinusoidal_positions(30, 16), expected, atol=1e-6)


def _rotary_reference(x, positions, base):
  """Pairs ``(x_j, x_{j+D/2})`` as complex numbers multiplied by ``exp(i·p·base^(-2j/D))``."""
  d = x.shape[-1]
  z = x[..., :d // 2] + 1j * x[..., d // 2:]
  theta = base ** (-np.arange(d // 2) * 2.0 / d)
  z = z * np.exp(1j * np.asarray(positions, np.float64)[..., None, None] * theta)
  return np.concatenate([z.real, z.imag], axis=-1)


@pytest.mark.parametrize("per_example", [False, True])
def test_rotary_matches_the_complex_rotation_of_half_pairs(per_example):
  rng = np.random.default_rng(2)
  x = rng.standard_normal((2, 7, 3, 16)).astype(np.float32)
  positions = rng.integers(0, 500, (2, 7)) if per_example else np.arange(7) + 40
  out = apply_rotary(jnp.asarray(x), jnp.asarray(positions), base=500.0)
  expected = _rotary_reference(x, np.broadcast_to(positions, (2, 7)), 500.0)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
  assert out.dtype == jnp.float32 and apply_rotary(jnp.asarray(x, jnp.bfloat16), positions).dtype == jnp.bfloat16


def test_rotary_scores_depend_on_relative_position_only():
  rng = np.random.default_rng(3)
  q, k = (jnp.asarray(rng.standard_normal((1, 6, 2, 8)), jnp.float32) for _ in range(2))
  positions = jnp.arange(6)

  def scores(shift):
    return jnp.einsum("bqhd,bkhd->bhqk", apply_rotary(q, positions + shift), apply_rotary(k, positions + shift))

  np.testing.assert_allclose(scores(0), scores(37), rtol=1e-4, atol=1e-4)
  with pytest.raises(UserError, match="even head dimension"):
    apply_rotary(jnp.zeros((1, 2, 1, 7)), jnp.arange(2))


@pytest.mark.parametrize("dim,flip,shift,scale,max_period", [
    (16, False, 1.0, 1.0, 10000.0),  # diffusers' defaults (the original DDPM code)
    (16, True, 0.0, 1.0, 10000.0),  # Stable Diffusion's UNet
    (9, True, 0.0, 2.0, 10000.0),  # odd width: a zero last column
    (32, False, 0.5, 1.0, 100.0),
])
def test_timestep_embedding_is_diffusers_formula(dim, flip, shift, scale, max_period):
  t = np.array([0.0, 1.0, 17.5, 999.0, 0.25])
  half = dim // 2
  freqs = np.exp(-math.log(max_period) * np.arange(half) / (half - shift))
  angles = scale * t[:, None] * freqs[None, :]
  parts = [np.cos(angles), np.sin(angles)] if flip else [np.sin(angles), np.cos(angles)]
  expected = np.concatenate(parts + [np.zeros((5, dim % 2))], axis=-1)
  out = timestep_embedding(jnp.asarray(t, jnp.float32), dim, max_period=max_period, flip_sin_to_cos=flip,
                           downscale_freq_shift=shift, scale=scale)
  assert out.shape == (5, dim) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, expected, atol=1e-4)  # float32 angles up to 2000 rad
