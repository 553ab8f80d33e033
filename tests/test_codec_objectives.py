"""The codec losses and EnCodec's loss balancer against numpy / PyTorch written from the definitions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.audio import features
from audiojax.objectives import codec


def test_hinge_and_feature_matching_losses_are_their_formulas():
  rng = np.random.default_rng(0)
  real = [rng.standard_normal((2, 5, 3, 1)) for _ in range(3)]
  fake = [rng.standard_normal((2, 4, 6, 1)) for _ in range(3)]
  want_d = np.mean([np.maximum(0, 1 - r).mean() + np.maximum(0, 1 + f).mean() for r, f in zip(real, fake)])
  want_g = np.mean([np.maximum(0, 1 - f).mean() for f in fake])
  np.testing.assert_allclose(codec.hinge_discriminator_loss(real, fake), want_d, rtol=1e-6)
  np.testing.assert_allclose(codec.hinge_generator_loss(fake), want_g, rtol=1e-6)
  real_maps = [[rng.standard_normal((2, 7, 4)) for _ in range(2)] for _ in range(3)]
  fake_maps = [[m + 0.1 * rng.standard_normal(m.shape) for m in maps] for maps in real_maps]
  want_fm = np.mean([np.abs(r - f).mean() / np.abs(r).mean() for rs, fs in zip(real_maps, fake_maps)
                     for r, f in zip(rs, fs)])
  np.testing.assert_allclose(codec.feature_matching_loss(real_maps, fake_maps), want_fm, rtol=1e-5)
  grad = jax.grad(lambda r: codec.feature_matching_loss([[r]], [[jnp.zeros_like(r)]]))(jnp.ones((2, 3)))
  assert float(jnp.abs(grad).sum()) == 0.0  # no gradient through the real features


def test_multiscale_mel_loss_matches_torch_stft_and_the_filterbank():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(1)
  x, y = (rng.standard_normal((2, 3000)).astype(np.float32) * 0.3 for _ in range(2))
  y[:, 1000:] *= 1e-3  # a quiet part, where the log term speaks
  got = codec.multiscale_mel_loss(jnp.asarray(x), jnp.asarray(y), 16000, log2_windows=(6, 8), n_mels=16)
  terms = []
  for i in (6, 8):
    n = 2 ** i
    fb = np.asarray(features.mel_filterbank(n_freqs=n // 2 + 1, f_min=64.0, f_max=8000.0, n_mels=16,
                                            sample_rate=16000, mel_scale="htk", norm=None))

    def mel(w):
      window = torch.hann_window(n)
      spec = torch.stft(torch.from_numpy(w), n, n // 4, n, window=window, center=True, pad_mode="reflect",
                        return_complex=True).abs().numpy() ** 2
      return np.einsum("bft,fm->bmt", spec, fb) / float(window.pow(2).sum())  # torchaudio's normalized=True
    mx, my = mel(x), mel(y)
    terms.append(np.abs(mx - my).mean() + ((np.log10(mx + 1e-5) - np.log10(my + 1e-5)) ** 2).mean())
  np.testing.assert_allclose(got, np.sum(terms) / 4, rtol=2e-4)
  assert float(codec.multiscale_mel_loss(jnp.asarray(x), jnp.asarray(x), 16000)) == 0.0


def test_balancer_follows_encodecs_recurrence():
  weights = {"l1": 0.1, "mel": 1.0, "adv": 3.0}
  balancer = codec.Balancer(weights, decay=0.9)
  state = balancer.init()
  rng = np.random.default_rng(2)
  sums, count = {k: 0.0 for k in weights}, 0.0
  for step in range(4):
    grads = {k: rng.standard_normal((3, 50)).astype(np.float32) * (10.0 ** i) for i, k in enumerate(weights)}
    out, state = balancer.combine({k: jnp.asarray(v) for k, v in grads.items()}, state)
    count = 0.9 * count + 1
    want = 0.0
    for k, w in weights.items():
      sums[k] = 0.9 * sums[k] + np.linalg.norm(grads[k], axis=1).mean()
      want = want + (w / sum(weights.values())) * grads[k] / (sums[k] / count)
    np.testing.assert_allclose(out, want, rtol=1e-5)
  # one step, one loss at a time: each loss's share of the output norm is its weight's share, whatever its scale
  fresh = codec.Balancer(weights, decay=0.0)
  for i, k in enumerate(weights):
    g = {n: jnp.zeros((3, 50)) if n != k else jnp.asarray(grads[k]) * 1e3 for n in weights}
    g = {n: v if n == k else v + 1e-30 for n, v in g.items()}
    out, _ = fresh.combine(g, fresh.init())
    assert abs(float(jnp.linalg.norm(out, axis=1).mean()) - weights[k] / sum(weights.values())) < 1e-3


def test_balancer_given_a_subset_shares_among_it_and_keeps_the_others_averages():
  weights = {"l1": 0.1, "mel": 1.0, "adv": 3.0}
  balancer = codec.Balancer(weights, decay=0.9)
  rng = np.random.default_rng(3)
  grads = {k: rng.standard_normal((2, 40)).astype(np.float32) for k in weights}
  _, state = balancer.combine({k: jnp.asarray(v) for k, v in grads.items()}, balancer.init())
  adv_before = (float(state["sums"]["adv"]), float(state["counts"]["adv"]))
  subset = {k: jnp.asarray(grads[k]) * 5.0 for k in ("l1", "mel")}
  out, state = balancer.combine(subset, state)
  assert (float(state["sums"]["adv"]), float(state["counts"]["adv"])) == adv_before
  want = 0.0
  for k in subset:
    norm = np.linalg.norm(grads[k], axis=1).mean()
    average = (0.9 * norm + 5.0 * norm) / (0.9 + 1.0)
    want = want + (weights[k] / 1.1) * 5.0 * grads[k] / average
  np.testing.assert_allclose(out, want, rtol=1e-5)
