"""Residual vector quantisation: nearest codes, k-means initialisation, EMA updates with Laplace smoothing and dead-code
replacement, straight-through gradients, commitment loss and the prefix property, each checked against a float64
numpy reference on small inputs. The reference draws its random rows with ``quantize.sample_indices`` from the keys
the module derives from its ``rng`` (``split(rng, K)`` per codebook, then ``split`` into the k-means and the
replacement key), so the two make the same random choices."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.errors import UserError
from audiojax.nn import quantize
from audiojax.nn.quantize import CodebookState, ResidualVectorQuantizer

DECAY, EPS, THRESHOLD = 0.99, 1e-5, 2.0


def np_nearest(x, embed):
  return np.argmin(np.sum((x[:, None, :] - embed[None]) ** 2, axis=-1), axis=1)


def np_kmeans(samples, initial_indices, iters):
  means = samples[initial_indices].copy()
  counts = np.zeros(len(means))
  for _ in range(iters):
    assignment = np_nearest(samples, means)
    counts = np.bincount(assignment, minlength=len(means)).astype(np.float64)
    sums = np.zeros_like(means)
    np.add.at(sums, assignment, samples)
    means = np.where(counts[:, None] == 0, means, sums / np.maximum(counts, 1)[:, None])
  return means, counts


def np_ema(state, x, codes, replacement_indices, threshold=THRESHOLD):
  """The documented update: EMA, Laplace-smoothed normalisation, then dead codes restarted from batch rows."""
  embed, embed_avg, cluster_size = (np.asarray(a, np.float64) for a in state[:3])
  bins = len(embed)
  counts = np.bincount(codes, minlength=bins)
  sums = np.zeros_like(embed)
  np.add.at(sums, codes, x)
  cluster_size = DECAY * cluster_size + (1 - DECAY) * counts
  embed_avg = DECAY * embed_avg + (1 - DECAY) * sums
  total = cluster_size.sum()
  embed = embed_avg / ((cluster_size + EPS) / (total + bins * EPS) * total)[:, None]
  if threshold:
    dead = cluster_size < threshold
    embed[dead] = x[replacement_indices][dead]
    embed_avg[dead] = x[replacement_indices][dead] * threshold
    cluster_size[dead] = threshold
  return embed, embed_avg, cluster_size


def np_rvq_train_step(x, states, keys, bins, kmeans_iters):
  """One training call of the quantiser on ``x (N, D)``: per codebook, k-means if not inited, nearest codes from
  the (initialised) codebook, EMA; residuals of the straight-through output. → codes, quantized, commitment, states."""
  residual, total = x.astype(np.float64), np.zeros(x.shape)
  codes_out, commitment, new_states = [], [], []
  for (embed, embed_avg, cluster_size, inited), key in zip(states, keys):
    kmeans_key, replace_key = jax.random.split(key)
    if not inited:
      embed, counts = np_kmeans(residual, np.asarray(quantize.sample_indices(kmeans_key, len(x), bins)),
                                kmeans_iters)
      embed_avg, cluster_size = embed, counts
    codes = np_nearest(residual, embed)
    vectors = embed[codes]
    replacement = np.asarray(quantize.sample_indices(replace_key, len(x), bins))
    new_states.append(np_ema((embed, embed_avg, cluster_size), residual, codes, replacement) + (1.0,))
    codes_out.append(codes)
    commitment.append(np.mean((vectors - residual) ** 2))
    residual, total = residual - vectors, total + vectors
  return np.stack(codes_out), total, np.array(commitment), new_states


def _random_state(rng, bins, dim, dead=()):
  cluster_size = rng.uniform(2.5, 8.0, bins)
  cluster_size[list(dead)] = 0.5
  embed = rng.standard_normal((bins, dim))
  return CodebookState(*(jnp.asarray(a, jnp.float32) for a in (embed, embed * cluster_size[:, None], cluster_size,
                                                                 np.float32(1.0))))


def test_nearest_is_the_closest_code():
  rng = np.random.default_rng(0)
  x, embed = rng.standard_normal((200, 5)), rng.standard_normal((32, 5))
  np.testing.assert_array_equal(quantize.nearest(jnp.asarray(x, jnp.float32), jnp.asarray(embed, jnp.float32)),
                                np_nearest(x, embed))


@pytest.mark.parametrize("samples,clusters", [(60, 8), (5, 8)])  # distinct starting rows / drawn with replacement
def test_kmeans_matches_the_reference(samples, clusters):
  x = np.random.default_rng(samples).standard_normal((samples, 3)).astype(np.float32)
  key = jax.random.key(3)
  means, counts = quantize.kmeans(key, jnp.asarray(x), clusters, 10)
  initial = np.asarray(quantize.sample_indices(key, samples, clusters))
  assert len(set(initial.tolist())) == min(samples, clusters)
  want_means, want_counts = np_kmeans(x.astype(np.float64), initial, 10)
  np.testing.assert_allclose(means, want_means, atol=1e-5)
  np.testing.assert_array_equal(counts, want_counts)
  assert counts.sum() == samples


@pytest.mark.parametrize("threshold", [THRESHOLD, 0.0])
def test_ema_update_matches_the_reference(threshold):
  rng = np.random.default_rng(1)
  state = _random_state(rng, 16, 4, dead=(3, 11))
  x = rng.standard_normal((40, 4)).astype(np.float32)
  codes = quantize.nearest(jnp.asarray(x), state.embed)
  key = jax.random.key(7)
  new = quantize.ema_update(state, jnp.asarray(x), codes, key, decay=DECAY, epsilon=EPS,
                            dead_code_threshold=threshold)
  replacement = np.asarray(quantize.sample_indices(key, 40, 16))
  for got, want in zip(new[:3], np_ema(state, x, np.asarray(codes), replacement, threshold)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dead_codes_become_batch_vectors_and_stay_there():
  rng = np.random.default_rng(2)
  state = _random_state(rng, 16, 4, dead=(5,))
  x = rng.standard_normal((40, 4)).astype(np.float32)
  codes = quantize.nearest(jnp.asarray(x), state.embed)  # code 5 stays below the threshold, used or not
  new = quantize.ema_update(state, jnp.asarray(x), codes, jax.random.key(1), decay=DECAY, epsilon=EPS,
                            dead_code_threshold=THRESHOLD)
  assert any(np.array_equal(new.embed[5], row) for row in x)
  assert float(new.cluster_size[5]) == THRESHOLD
  # the next EMA step starts from the replacement (EnCodec 0.1.1 overwrites it in the very step it is made)
  unused = jnp.where(codes == 5, 0, codes)
  later = quantize.ema_update(new, jnp.asarray(x), unused, jax.random.key(2), decay=DECAY, epsilon=EPS,
                              dead_code_threshold=0.0)
  np.testing.assert_allclose(later.embed[5], new.embed[5], rtol=1e-3)


def _apply_train(module, variables, x, rng, n_q=None):
  out, updated = module.apply(variables, x, n_q, train=True, rng=rng, mutable=[quantize.CODEBOOKS])
  return out, {**variables, **nn.meta.unbox(updated)}


def _states(variables, k):
  cb = variables[quantize.CODEBOOKS]
  return [tuple(np.asarray(cb[n][i], np.float64) for n in ("embed", "embed_avg", "cluster_size", "inited"))
          for i in range(k)]


def test_training_calls_match_the_reference_from_kmeans_init_on():
  module = ResidualVectorQuantizer(n_q=4, bins=8, dim=3, kmeans_iters=6)
  batches = np.random.default_rng(4).standard_normal((2, 2, 20, 3)).astype(np.float32)
  variables = nn.meta.unbox(module.init(jax.random.key(0), batches[0]))
  assert not np.any(variables[quantize.CODEBOOKS]["inited"])
  for step, x in enumerate(batches):  # the first call initialises by k-means, the second only updates
    rng = jax.random.key(10 + step)
    states = _states(variables, 3)
    out, variables = _apply_train(module, variables, x, rng, n_q=3)
    codes, quantized, commitment, want_states = np_rvq_train_step(x.reshape(-1, 3), states,
                                                                  jax.random.split(rng, 3), 8, 6)
    np.testing.assert_array_equal(np.asarray(out["codes"]).transpose(1, 0, 2).reshape(3, -1), codes)
    np.testing.assert_allclose(np.asarray(out["quantized"]).reshape(-1, 3), quantized, atol=1e-5)
    np.testing.assert_allclose(out["commitment_loss"], commitment, rtol=1e-4, atol=1e-7)
    for got, want in zip(_states(variables, 3), want_states):
      for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  cb = variables[quantize.CODEBOOKS]
  np.testing.assert_array_equal(cb["inited"], [1, 1, 1, 0])  # the unused codebook is left alone
  assert not np.any(cb["embed"][3])


def test_codes_of_fewer_codebooks_are_a_prefix_and_decode_alone():
  module = ResidualVectorQuantizer(n_q=6, bins=16, dim=4)
  x = np.random.default_rng(5).standard_normal((2, 11, 4)).astype(np.float32)
  variables = nn.meta.unbox(module.init(jax.random.key(0), x))
  embed = np.random.default_rng(6).standard_normal((6, 16, 4)).astype(np.float32) / np.arange(1, 7)[:, None, None]
  variables[quantize.CODEBOOKS]["embed"] = embed
  every = np.asarray(module.apply(variables, x, method="encode"))
  assert every.shape == (2, 6, 11)
  errors = []
  for k in range(1, 7):
    codes = np.asarray(module.apply(variables, x, k, method="encode"))
    np.testing.assert_array_equal(codes, every[:, :k])
    decoded = np.asarray(module.apply(variables, codes, method="decode"))
    np.testing.assert_allclose(decoded, sum(embed[j][codes[:, j]] for j in range(k)), atol=1e-6)
    out = module.apply(variables, x, k)
    np.testing.assert_array_equal(out["codes"], codes)
    np.testing.assert_allclose(out["quantized"], decoded, atol=1e-6)
    errors.append(float(np.mean((decoded - x) ** 2)))
  assert errors == sorted(errors, reverse=True)  # each codebook quantises what the ones before left


def test_dropout_to_a_traced_count_trains_as_the_first_codebooks_alone():
  module = ResidualVectorQuantizer(n_q=4, bins=8, dim=3, kmeans_iters=3, dead_code_threshold=0.5)
  x = np.random.default_rng(9).standard_normal((2, 12, 3)).astype(np.float32)
  variables = nn.meta.unbox(module.init(jax.random.key(0), x))
  train = lambda v, k, active: module.apply(v, x, k, train=True, rng=jax.random.key(3), active=active,
                                            mutable=[quantize.CODEBOOKS])
  dropped = jax.jit(lambda v, a: train(v, None, a))
  for step in range(2):  # k-means start, then an EMA step
    (out, state), (ref, ref_state) = dropped(variables, jnp.int32(2)), train(variables, 2, None)
    np.testing.assert_allclose(out["quantized"], ref["quantized"], atol=1e-5)
    np.testing.assert_array_equal(out["codes"][:, :2], ref["codes"])
    np.testing.assert_allclose(out["commitment_loss"][:2], ref["commitment_loss"], rtol=1e-5)
    np.testing.assert_array_equal(out["commitment_loss"][2:], 0.0)
    for name, value in state[quantize.CODEBOOKS].items():
      np.testing.assert_allclose(value[:2], ref_state[quantize.CODEBOOKS][name][:2], rtol=1e-5, atol=1e-6)
      np.testing.assert_array_equal(value[2:], variables[quantize.CODEBOOKS][name][2:])  # untouched
    variables = {**variables, **state}


def test_straight_through_gradient_and_commitment_loss():
  module = ResidualVectorQuantizer(n_q=2, bins=8, dim=3, kmeans_iters=3)
  x = np.random.default_rng(7).standard_normal((1, 16, 3)).astype(np.float32)
  variables = nn.meta.unbox(module.init(jax.random.key(0), x))
  weights = np.random.default_rng(8).standard_normal(x.shape).astype(np.float32)

  def losses(x):
    out, _ = module.apply(variables, x, train=True, rng=jax.random.key(1), mutable=[quantize.CODEBOOKS])
    return jnp.sum(out["quantized"] * weights), out

  (_, out), grad = jax.value_and_grad(losses, has_aux=True)(x)
  np.testing.assert_allclose(grad, weights, atol=1e-6)  # the quantiser passes gradients straight through
  first = lambda x: losses(x)[1]["commitment_loss"][0]
  # commitment = mean((code - x)²), gradient to x only: 2 (x - code) / (N·D) with the first codebook's codes
  codes = np.asarray(out["codes"])[0, 0]
  grad_commit = np.asarray(jax.grad(first)(x))[0]
  vectors = x[0] - grad_commit * x.size / 2
  for code in set(codes.tolist()):  # inputs with the same code moved to the same vector
    rows = vectors[codes == code]
    np.testing.assert_allclose(rows, np.broadcast_to(rows[0], rows.shape), atol=1e-5)
  np.testing.assert_allclose(out["commitment_loss"][0], np.mean(np.square(grad_commit * x.size / 2)), rtol=1e-4)


def test_init_never_trains_and_training_needs_the_mutable_codebooks():
  module = ResidualVectorQuantizer(n_q=2, bins=4, dim=2)
  x = np.ones((1, 5, 2), np.float32)
  variables = nn.meta.unbox(module.init(jax.random.key(0), x, train=True))
  assert not np.any(variables[quantize.CODEBOOKS]["inited"]) and not np.any(variables[quantize.CODEBOOKS]["embed"])
  with pytest.raises(ValueError, match="pass rng=key and apply with mutable=\\['codebooks'\\]"):
    module.apply(variables, x, train=True, rng=jax.random.key(0))
  with pytest.raises(ValueError, match="pass rng=key"):
    module.apply(variables, x, train=True, mutable=[quantize.CODEBOOKS])
  with pytest.raises(UserError, match="3 codebooks asked of a quantiser with 2"):
    module.apply(variables, x, 3)


def test_perplexity_counts_equally_used_codes():
  assert float(quantize.perplexity(jnp.arange(8) % 4, 16)) == pytest.approx(4.0)
  assert float(quantize.perplexity(jnp.zeros(10, jnp.int32), 16)) == pytest.approx(1.0)
