"""EnCodec ("High Fidelity Neural Audio Compression", Défossez et al. 2022): a SEANet encoder, a residual vector
quantiser and a SEANet decoder over mono waveforms, as facebookresearch/encodec 0.1.1 builds its 24 kHz model.

- **Encoder** ``wave (B, L) → latents (B, ceil(L / hop), dimension)``: conv k7 to ``n_filters``; for each stride s
  of ``reversed(ratios)``: residual unit(s), ELU, conv k=2s stride s doubling the channels; a ``lstm_layers``-layer
  LSTM with a residual skip; ELU; conv k7 to ``dimension``.
- **Residual unit** (SEANet): ``shortcut(x) + conv_k1(ELU(conv_k3(ELU(x))))``, the inner width ``dim / compress``,
  the shortcut a 1×1 conv (``true_skip=False``, EnCodec's) or the identity.
- **Decoder** (the mirror): conv k7 from ``dimension`` to ``n_filters · 2^len(ratios)``, LSTM with skip; for each
  stride s of ``ratios``: ELU, transposed conv k=2s stride s halving the channels, residual unit(s); ELU; conv k7 to
  one channel, no final activation.
- Every convolution is :mod:`audiojax.nn.conv`'s (EnCodec's padding, causal: all on the left in reflect mode, weight
  norm), so ``T = ceil(L / hop)`` frames and decoding gives ``T · hop`` samples; the caller trims.
- **Quantiser**: :class:`audiojax.nn.quantize.ResidualVectorQuantizer`, ``n_q`` codebooks of ``bins × dimension``.
  A bandwidth of b kbps uses ``max(1, floor(b / (log2(bins) · frame_rate / 1000)))`` codebooks (EnCodec's rule); the
  codes of fewer codebooks are a prefix of those of more.

Variants (parameters: encoder + decoder; codebook state apart):

=============== ======== ====== ========== ========= ============= ================================ ===========
variant         rate     hop    n_filters  dimension codebooks     bandwidths (kbps)                parameters
=============== ======== ====== ========== ========= ============= ================================ ===========
encodec_24khz   24 kHz   320    32         128       32 × 1024     1.5, 3, 6, 12, 24                14.85M
tiny            16 kHz   320    8          32        8 × 256       0.4, 0.8, 1.6, 3.2               0.93M
small           16 kHz   320    16         64        8 × 1024      0.5, 1, 2, 4                     3.72M
base            16 kHz   320    32         128       16 × 1024     0.5, 1, 2, 4, 8                  14.85M
=============== ======== ====== ========== ========= ============= ================================ ===========

``encodec_24khz`` is the released model's architecture (``convert encodec`` loads its weights); the 16 kHz variants
(50 Hz frames) are for training here, ``tiny`` sized for CPU tests.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.errors import UserError
from audiojax.models import check_fields, count_params  # noqa: F401 (count_params: part of the model API)
from audiojax.nn.conv import Conv1d, ConvTranspose1d
from audiojax.nn.lstm import LSTM
from audiojax.nn.quantize import ResidualVectorQuantizer

FAMILY = "codec"

VARIANTS = {
    "encodec_24khz": dict(sample_rate=24000, n_filters=32, dimension=128, ratios=(8, 5, 4, 2), n_q=32, bins=1024,
                          bandwidths=(1.5, 3.0, 6.0, 12.0, 24.0)),
    "tiny": dict(sample_rate=16000, n_filters=8, dimension=32, ratios=(8, 5, 4, 2), n_q=8, bins=256,
                 bandwidths=(0.4, 0.8, 1.6, 3.2)),
    "small": dict(sample_rate=16000, n_filters=16, dimension=64, ratios=(8, 5, 4, 2), n_q=8, bins=1024,
                  bandwidths=(0.5, 1.0, 2.0, 4.0)),
    "base": dict(sample_rate=16000, n_filters=32, dimension=128, ratios=(8, 5, 4, 2), n_q=16, bins=1024,
                 bandwidths=(0.5, 1.0, 2.0, 4.0, 8.0)),
}


class ResidualUnit(nn.Module):
  """SEANet's residual block: ``x (B, T, dim)`` → ``shortcut(x) + conv_1(ELU(conv_0(ELU(x))))``, same shape."""

  dim: int
  kernel_size: int
  dilation: int
  compress: int
  true_skip: bool
  causal: bool
  norm: str
  pad_mode: str
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    conv = dict(norm=self.norm, causal=self.causal, pad_mode=self.pad_mode, dtype=self.dtype)
    y = Conv1d(self.dim // self.compress, self.kernel_size, dilation=self.dilation, name="conv_0", **conv)(
        jax.nn.elu(x))
    y = Conv1d(self.dim, 1, name="conv_1", **conv)(jax.nn.elu(y))
    shortcut = x if self.true_skip else Conv1d(self.dim, 1, name="shortcut", **conv)(x)
    return shortcut + y


class _SEANet(nn.Module):
  """The fields SEANet's encoder and decoder share (EnCodec's ``SEANetEncoder`` / ``SEANetDecoder`` arguments)."""

  n_filters: int
  dimension: int
  ratios: tuple[int, ...]
  n_residual_layers: int = 1
  kernel_size: int = 7
  last_kernel_size: int = 7
  residual_kernel_size: int = 3
  dilation_base: int = 2
  compress: int = 2
  lstm_layers: int = 2
  true_skip: bool = False
  causal: bool = True
  norm: str = "weight_norm"
  pad_mode: str = "reflect"
  dtype: Any = jnp.float32

  def conv(self, features: int, kernel_size: int, name: str, stride: int = 1) -> Conv1d:
    return Conv1d(features, kernel_size, stride, norm=self.norm, causal=self.causal, pad_mode=self.pad_mode,
                  dtype=self.dtype, name=name)

  def residual_units(self, x: jax.Array, stage: int) -> jax.Array:
    for j in range(self.n_residual_layers):
      x = ResidualUnit(x.shape[-1], self.residual_kernel_size, self.dilation_base ** j, self.compress,
                       self.true_skip, self.causal, self.norm, self.pad_mode, self.dtype,
                       name=f"stage_{stage}_res_{j}")(x)
    return x

  def lstm(self, x: jax.Array) -> jax.Array:
    """EnCodec's ``SLSTM``: the LSTM's output plus its input."""
    if not self.lstm_layers:
      return x
    return x + LSTM(x.shape[-1], self.lstm_layers, self.dtype, name="lstm")(x)


class SEANetEncoder(_SEANet):
  """``wave (B, L)`` → ``latents (B, ceil(L / hop), dimension)``."""

  @nn.compact
  def __call__(self, wave: jax.Array) -> jax.Array:
    x = self.conv(self.n_filters, self.kernel_size, "conv_in")(wave[..., None])
    for stage, ratio in enumerate(reversed(self.ratios)):
      x = self.residual_units(x, stage)
      x = self.conv(2 * x.shape[-1], 2 * ratio, f"stage_{stage}_down", stride=ratio)(jax.nn.elu(x))
    x = self.lstm(x)
    return self.conv(self.dimension, self.last_kernel_size, "conv_out")(jax.nn.elu(x))


class SEANetDecoder(_SEANet):
  """``latents (B, T, dimension)`` → ``wave (B, T · hop)``."""

  trim_right_ratio: float = 1.0

  @nn.compact
  def __call__(self, latents: jax.Array) -> jax.Array:
    x = self.conv(self.n_filters * 2 ** len(self.ratios), self.kernel_size, "conv_in")(latents)
    x = self.lstm(x)
    for stage, ratio in enumerate(self.ratios):
      x = ConvTranspose1d(x.shape[-1] // 2, 2 * ratio, ratio, norm=self.norm, causal=self.causal,
                          trim_right_ratio=self.trim_right_ratio, dtype=self.dtype, name=f"stage_{stage}_up")(
          jax.nn.elu(x))
      x = self.residual_units(x, stage)
    return self.conv(1, self.last_kernel_size, "conv_out")(jax.nn.elu(x))[..., 0]


SEANET_FIELDS = tuple(f.name for f in dataclasses.fields(_SEANet) if f.name not in ("parent", "name", "dtype"))


class Codec(_SEANet):
  """EnCodec: SEANet encoder → residual VQ → SEANet decoder (see the module docstring). Parameters live under
  ``encoder`` and ``decoder``; the codebooks in the ``codebooks`` collection under ``quantizer``."""

  sample_rate: int = 24000
  n_q: int = 32
  bins: int = 1024
  bandwidths: tuple[float, ...] = (1.5, 3.0, 6.0, 12.0, 24.0)
  trim_right_ratio: float = 1.0
  decay: float = 0.99
  epsilon: float = 1e-5
  kmeans_iters: int = 50
  dead_code_threshold: float = 2.0
  commitment_weight: float = 1.0

  def setup(self):
    seanet = {f: getattr(self, f) for f in SEANET_FIELDS} | {"dtype": self.dtype}
    self.encoder = SEANetEncoder(**seanet)
    self.decoder = SEANetDecoder(**seanet, trim_right_ratio=self.trim_right_ratio)
    self.quantizer = ResidualVectorQuantizer(self.n_q, self.bins, self.dimension, self.decay, self.epsilon,
                                             self.kmeans_iters, self.dead_code_threshold, self.commitment_weight)

  @property
  def hop_length(self) -> int:
    return math.prod(self.ratios)

  @property
  def frame_rate(self) -> int:
    """Frames per second (EnCodec rounds up: 75 at 24 kHz, 50 at 16 kHz)."""
    return math.ceil(self.sample_rate / self.hop_length)

  @property
  def bandwidth_per_codebook(self) -> float:
    """kbps one codebook adds: ``log2(bins)`` bits per frame."""
    return math.log2(self.bins) * self.frame_rate / 1000

  def bandwidth_to_n_q(self, bandwidth: float) -> int:
    """The number of codebooks behind ``bandwidth`` kbps, one of :attr:`bandwidths`."""
    if not any(math.isclose(bandwidth, b) for b in self.bandwidths):
      raise UserError(f"bandwidth {bandwidth:g} kbps is not one of this codec's "
                      f"({', '.join(f'{b:g}' for b in self.bandwidths)} kbps); choose one of those")
    n_q = max(1, math.floor(bandwidth / self.bandwidth_per_codebook + 1e-9))
    if n_q > self.n_q:
      raise UserError(f"bandwidth {bandwidth:g} kbps needs {n_q} codebooks but the codec has {self.n_q}; the "
                      f"model's bandwidths are wrong: convert or export it again")
    return n_q

  def latents(self, wave: jax.Array) -> jax.Array:
    """``wave (B, L)`` → the encoder's output ``(B, ceil(L / hop), dimension)`` in float32."""
    if wave.ndim != 2 or wave.shape[1] == 0:
      raise ValueError(f"the codec encodes a waveform batch (B, L) with L ≥ 1; got shape {wave.shape}")
    latents = self.encoder(wave.astype(self.dtype)).astype(jnp.float32)
    return nn.with_logical_constraint(latents, ("act_batch", "act_length", None))

  def encode(self, wave: jax.Array, n_q: int | None = None) -> jax.Array:
    """``wave (B, L)`` → ``codes (B, K, ceil(L / hop))`` int32 of the first K = ``n_q`` codebooks (None: all)."""
    return self.quantizer.encode(self.latents(wave), n_q)

  def decode(self, codes: jax.Array) -> jax.Array:
    """``codes (B, K, T)`` → ``wave (B, T · hop)`` in float32."""
    return self.decoder(self.quantizer.decode(codes).astype(self.dtype)).astype(jnp.float32)

  def __call__(self, wave: jax.Array, n_q: int | None = None, train: bool = False, rng: jax.Array | None = None,
               active: jax.Array | None = None) -> dict[str, jax.Array]:
    """``wave (B, L)`` through encoder, quantiser (K = ``n_q`` codebooks) and decoder → dict of ``wave (B, L)``
    (the reconstruction, trimmed to L), ``codes (B, K, T)``, ``commitment_loss ()`` (mean over the codebooks, as
    EnCodec's penalty) and ``perplexity (K,)`` (codebook usage).

    ``train``: the quantiser is straight-through and updates its codebooks, drawing from the key ``rng``: apply
    with ``mutable=["codebooks"]`` (see :mod:`audiojax.nn.quantize`). ``active`` (an int32 scalar, may be traced)
    decodes from the first ``active`` codebooks only: quantiser dropout, one random bandwidth per batch."""
    quantized = self.quantizer(self.latents(wave), n_q, train, rng, active)
    decoded = self.decoder(quantized["quantized"].astype(self.dtype)).astype(jnp.float32)
    k = quantized["commitment_loss"].shape[0] if active is None else active
    return dict(wave=decoded[:, :wave.shape[1]], codes=quantized["codes"],
                commitment_loss=jnp.sum(quantized["commitment_loss"]) / k, perplexity=quantized["perplexity"])


def Model(variant: str = "tiny", **overrides: Any) -> Codec:  # noqa: N802 (factory)
  """Builds a named codec variant (``encodec_24khz | tiny | small | base``); ``overrides`` replace any field."""
  if variant not in VARIANTS:
    raise UserError(f"unknown codec variant '{variant}' (config.model.variant); choose one of {sorted(VARIANTS)}")
  check_fields(Codec, overrides)
  overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}  # a JSON config's lists
  return Codec(**{**VARIANTS[variant], **overrides})


CONFIG_KINDS = {  # the constructor fields a model directory records, and their JSON kinds
    **{f: int for f in ("n_filters", "dimension", "n_residual_layers", "kernel_size", "last_kernel_size",
                        "residual_kernel_size", "dilation_base", "compress", "lstm_layers", "sample_rate", "n_q",
                        "bins", "kmeans_iters")},
    **{f: float for f in ("trim_right_ratio", "decay", "epsilon", "dead_code_threshold", "commitment_weight")},
    "true_skip": bool, "causal": bool, "norm": str, "pad_mode": str, "ratios": (int,), "bandwidths": (float,),
}


def to_config(model: Codec) -> dict[str, Any]:
  """The constructor fields a model directory records (``dtype`` is chosen at load)."""
  return {f: list(getattr(model, f)) if isinstance(CONFIG_KINDS[f], tuple) else getattr(model, f)
          for f in CONFIG_KINDS}


def _fits(value: Any, kind: Any) -> bool:
  if isinstance(kind, tuple):
    return isinstance(value, list) and bool(value) and all(_fits(v, kind[0]) for v in value)
  if kind is bool:
    return isinstance(value, bool)
  if isinstance(value, bool):
    return False
  return isinstance(value, (int, float)) if kind is float else isinstance(value, kind)


def from_config(config: dict[str, Any], **runtime: Any) -> Codec:
  """The codec of a model directory's config; ``runtime`` sets ``dtype``. A missing, unknown or wrongly typed key
  is a UserError."""
  problems = [f"unknown key '{k}'" for k in sorted(set(config) - set(CONFIG_KINDS))]
  problems += [f"no '{k}'" for k in CONFIG_KINDS if k not in config]
  problems += [f"a wrongly typed '{k}'" for k in CONFIG_KINDS if k in config and not _fits(config[k], CONFIG_KINDS[k])]
  if problems:
    raise UserError(f"a codec model.json config has {', '.join(problems)}; convert or export the model again")
  fields = {k: tuple(v) if isinstance(CONFIG_KINDS[k], tuple) else v for k, v in config.items()}
  return Codec(**fields, **runtime)


def example_inputs(model: Codec) -> tuple[jax.Array, ...]:
  """The input ``init`` is given: one frame of silence, ``wave (1, hop)``."""
  return (jnp.zeros((1, model.hop_length)),)

