"""Neural codec training losses (EnCodec, Défossez et al. 2022, §3.4): reconstruction in time and over multi-scale mel
spectrograms, hinge adversarial and feature-matching losses against a multi-scale discriminator, and the loss
balancer that sets each loss's share of the gradient reaching the decoded wave.

Shapes: waves ``(B, L)``; discriminator outputs are per-scale lists (``logits (B, ...)``, feature maps
``[(B, ...)]``), as :class:`audiojax.models.discriminators.MultiScaleSTFTDiscriminator` returns them.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from audiojax.audio import features


def time_l1(x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean absolute difference of the waves ``x`` and ``y``."""
  return jnp.mean(jnp.abs(x - y))


def multiscale_mel_loss(x: jax.Array, y: jax.Array, sample_rate: int, log2_windows: Sequence[int] = range(6, 11),
                        n_mels: int = 64, f_min: float = 64.0, floor: float = 1e-5) -> jax.Array:
  """The multi-scale mel loss of EnCodec's training recipe (audiocraft's ``msspec`` loss as its EnCodec config sets
  it): for each window ``2^i`` (hop a quarter of it) the ``n_mels``-band power mels ``M`` of the normalised STFT
  (the window's energy divided out) of ``x`` and ``y`` give ``mean|M_x − M_y| + mean((log10(M_x + floor) −
  log10(M_y + floor))²)``; the result is their sum over the scales divided by twice the number of scales. The
  linear term follows the loud parts, the log term the quiet ones. Frames are centred (reflect padding)."""
  total = 0.0
  for i in log2_windows:
    window = 2 ** int(i)
    energy = jnp.sum(jnp.square(features.hann_window(window)))
    mel = lambda w: features.mel_spectrogram(w, sample_rate=sample_rate, n_fft=window, hop_length=window // 4,
                                             n_mels=n_mels, f_min=f_min) / energy
    mx, my = mel(x), mel(y)
    total = total + jnp.mean(jnp.abs(mx - my)) + jnp.mean(jnp.square(jnp.log10(mx + floor) - jnp.log10(my + floor)))
  return total / (2 * len(log2_windows))


def hinge_discriminator_loss(real_logits: Sequence[jax.Array], fake_logits: Sequence[jax.Array]) -> jax.Array:
  """``mean over scales of mean(relu(1 − D(x))) + mean(relu(1 + D(x̂)))``."""
  terms = [jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f)) for r, f in zip(real_logits, fake_logits)]
  return sum(terms) / len(terms)


def hinge_generator_loss(fake_logits: Sequence[jax.Array]) -> jax.Array:
  """``mean over scales of mean(relu(1 − D(x̂)))``."""
  return sum(jnp.mean(jax.nn.relu(1.0 - f)) for f in fake_logits) / len(fake_logits)


def feature_matching_loss(real_maps: Sequence[Sequence[jax.Array]], fake_maps: Sequence[Sequence[jax.Array]],
                          eps: float = 1e-8) -> jax.Array:
  """Mean over scales and layers of ``mean|D_l(x) − D_l(x̂)| / mean|D_l(x)|`` (the real maps carry no gradient)."""
  terms = []
  for reals, fakes in zip(real_maps, fake_maps):
    for r, f in zip(reals, fakes):
      r = jax.lax.stop_gradient(r)
      terms.append(jnp.mean(jnp.abs(r - f)) / (jnp.mean(jnp.abs(r)) + eps))
  return sum(terms) / len(terms)


@dataclasses.dataclass(frozen=True)
class Balancer:
  """EnCodec's loss balancer: the gradient that reaches the decoded wave is ``Σ_k total_norm · (w_k / Σw) · g_k /
  ‖g_k‖_ema``, where ``g_k`` is the gradient of loss ``k`` with respect to the wave and ``‖g_k‖_ema`` the
  bias-corrected exponential moving average (``decay``) of its norm (per example, averaged over the batch). Each
  loss thus takes its weight's share of the gradient, whatever its scale.

  :meth:`combine` may be given a subset of the losses (e.g. before the adversarial losses start): the shares are
  then those of the subset's weights, and only the subset's averages move (each loss keeps its own count, as
  audiocraft's averager does).

  ``state``: ``{"sums": {name: ()}, "counts": {name: ()}}`` float32, carried by the train state."""

  weights: dict[str, float]
  decay: float = 0.999
  total_norm: float = 1.0
  eps: float = 1e-12

  def init(self) -> dict:
    zeros = lambda: {k: jnp.zeros((), jnp.float32) for k in self.weights}
    return {"sums": zeros(), "counts": zeros()}

  def combine(self, grads: dict[str, jax.Array], state: dict) -> tuple[jax.Array, dict]:
    """``grads {name: (B, ...)}`` for some or all of the losses → ``(the combined gradient (B, ...), the new
    state)``."""
    sums, counts = dict(state["sums"]), dict(state["counts"])
    total_weight = sum(self.weights[name] for name in grads)
    out = 0.0
    for name, g in grads.items():
      norm = jnp.mean(jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1)))
      sums[name] = self.decay * sums[name] + norm
      counts[name] = self.decay * counts[name] + 1.0
      average = sums[name] / counts[name]
      out = out + self.total_norm * (self.weights[name] / total_weight) * g / (self.eps + average)
    return out, {"sums": sums, "counts": counts}
