"""Discriminators for adversarial codec and vocoder training.

The multi-scale STFT discriminator of EnCodec (Défossez et al. 2022; ``encodec/msstftd.py`` of facebookresearch/
encodec): per scale, the complex STFT of the wave (Hann window, no centring, normalised by the window's L2 norm as
torchaudio's ``Spectrogram(normalized=True)``), real and imaginary parts as 2 channels over (time, frequency), then
a 2-D conv stack with LeakyReLU(0.2): a (3, 9) conv to ``filters`` channels, three (3, 9) convs with stride (1, 2)
over frequency and dilation 1/2/4 over time, a (3, 3) conv, and a (3, 3) conv to one logit channel. Every conv but
the first is weight-normalised. Each scale returns its logits and the feature maps after each activation (for the
feature-matching loss).
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.audio import features
from audiojax.nn.conv import Conv2d


def _same(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
  return tuple(((k - 1) * d) // 2 for k, d in zip(kernel, dilation))


class STFTDiscriminator(nn.Module):
  """One scale: ``wave (B, L) → (logits (B, T', F', 1), [feature maps (B, T', F', C)] × 5)``."""

  filters: int = 32
  n_fft: int = 1024
  hop_length: int = 256
  win_length: int = 1024
  kernel_size: tuple[int, int] = (3, 9)
  stride: tuple[int, int] = (1, 2)
  dilations: Sequence[int] = (1, 2, 4)
  negative_slope: float = 0.2
  dtype: Any = jnp.float32

  def spectrum(self, wave: jax.Array) -> jax.Array:
    """``wave (B, L)`` → ``(B, frames, n_fft // 2 + 1, 2)``: the STFT's real and imaginary parts."""
    window = features.hann_window(self.win_length)
    spec = features.stft(wave, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                         center=False) / jnp.sqrt(jnp.sum(jnp.square(window)))
    return jnp.stack([spec.real, spec.imag], axis=-1).swapaxes(1, 2)

  @nn.compact
  def __call__(self, wave: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
    x = self.spectrum(wave.astype(jnp.float32)).astype(self.dtype)
    k, square = tuple(self.kernel_size), (self.kernel_size[0], self.kernel_size[0])
    convs = [Conv2d(self.filters, k, padding=_same(k), dtype=self.dtype, name="conv0")]
    for i, d in enumerate(self.dilations):
      convs.append(Conv2d(self.filters, k, stride=tuple(self.stride), dilation=(d, 1), padding=_same(k, (d, 1)),
                          norm="weight_norm", dtype=self.dtype, name=f"conv{i + 1}"))
    convs.append(Conv2d(self.filters, square, padding=_same(square), norm="weight_norm", dtype=self.dtype,
                        name=f"conv{len(self.dilations) + 1}"))
    feature_maps = []
    for conv in convs:
      x = nn.leaky_relu(conv(x), self.negative_slope)
      feature_maps.append(x)
    logits = Conv2d(1, square, padding=_same(square), norm="weight_norm", dtype=self.dtype, name="conv_post")(x)
    return logits, feature_maps


class MultiScaleSTFTDiscriminator(nn.Module):
  """``wave (B, L) → ([logits] per scale, [[feature maps] per scale])``; EnCodec's scales by default (n_fft
  1024 / 2048 / 512, hop a quarter of it)."""

  filters: int = 32
  n_ffts: Sequence[int] = (1024, 2048, 512)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, wave: jax.Array) -> tuple[list[jax.Array], list[list[jax.Array]]]:
    outputs = [STFTDiscriminator(self.filters, n, n // 4, n, dtype=self.dtype, name=f"scale{i}")(wave)
               for i, n in enumerate(self.n_ffts)]
    return [logits for logits, _ in outputs], [maps for _, maps in outputs]
