"""1-D convolutions over channels-last sequences ``(B, T, C)`` for neural codecs and vocoders (EnCodec/SEANet,
HiFi-GAN), padded and trimmed as EnCodec's ``SConv1d`` / ``SConvTranspose1d`` (facebookresearch/encodec,
``encodec/modules/conv.py``), with optional weight normalisation as PyTorch's ``torch.nn.utils.weight_norm``.

Parameters and the PyTorch tensors they come from (a converter only transposes and reshapes)::

  Conv1d           kernel or weight_v (K, Cin/groups, Cout)  ← torch (Cout, Cin/groups, K).transpose(2, 1, 0)
                   weight_g (Cout,)                          ← torch weight_g (Cout, 1, 1).reshape(Cout)
  ConvTranspose1d  kernel or weight_v (K, Cin, Cout)         ← torch (Cin, Cout, K).transpose(2, 0, 1)
                   weight_g (Cin,)                           ← torch weight_g (Cin, 1, 1).reshape(Cin)
  both             bias (Cout,)                              ← torch bias

Weight norm is PyTorch's ``dim=0``: ``weight = weight_v · weight_g / ‖weight_v‖``, the norm taken per slice of the
torch weight's first axis, which is the output channel of a convolution but the *input* channel of a transposed
convolution (torch stores those as ``(Cin, Cout, K)``). ``weight_g`` starts at ``‖weight_v‖``, so the initial weight
is ``weight_v``. Kernels start as PyTorch's (uniform in ±1/√fan_in, fan_in as torch counts it); biases at zero.
Logical axes: the output channel axis is ``channels``, every other axis None.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.errors import UserError
from audiojax.nn.layers import param

NORMS = ("none", "weight_norm")
PAD_MODES = ("reflect", "constant")
# PyTorch's default kaiming_uniform(a=√5) is uniform in ±1/√fan_in; torch counts a transposed kernel's fan-in over
# its output channels (its weight's second axis)
TORCH_CONV_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
TORCH_CONV_TRANSPOSE_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform", in_axis=-1, out_axis=-2)


def conv_paddings(length: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                  causal: bool = False) -> tuple[int, int]:
  """``(left, right)`` padding of a ``length``-step input by EnCodec's ``SConv1d`` rule.

  ``total = (K - 1)·dilation - (stride - 1)``: all on the left when causal, else ``total // 2`` on the right and the
  rest on the left; the right also gets the extra padding that completes the last frame
  (``get_extra_padding_for_conv1d``, which, like the original, uses the undilated kernel size). The output then has
  ``ceil(length / stride)`` frames when ``dilation = 1``.
  """
  total = (kernel_size - 1) * dilation - (stride - 1)
  if total < 0:
    raise UserError(f"a convolution of kernel_size {kernel_size}, dilation {dilation} skips input at stride {stride}; "
                    "choose stride ≤ (kernel_size - 1)·dilation + 1")
  frames_after_first = -(-(length - kernel_size + total) // stride)  # ceil division
  extra = frames_after_first * stride + kernel_size - total - length
  right = 0 if causal else total // 2
  return total - right, right + extra


def pad1d(x: jax.Array, left: int, right: int, mode: str) -> jax.Array:
  """``x (B, T, C)`` padded along time with ``mode`` ``"constant"`` (zeros) or ``"reflect"`` (mirrored without
  repeating the edge); as EnCodec's ``pad1d``, an input no longer than the padding is zero-extended on the right
  before reflecting (and the extension cut off after), so short inputs work."""
  if mode == "constant":
    return jnp.pad(x, ((0, 0), (left, right), (0, 0)))
  extension = max(max(left, right) - x.shape[1] + 1, 0)
  padded = jnp.pad(jnp.pad(x, ((0, 0), (0, extension), (0, 0))), ((0, 0), (left, right), (0, 0)), mode="reflect")
  return padded[:, :padded.shape[1] - extension]


def _check_option(value: str, allowed: tuple[str, ...], field: str) -> None:
  if value not in allowed:
    raise UserError(f"convolution {field} '{value}' is unknown; choose one of {', '.join(allowed)}")


def _weight(module: nn.Module, init: Any, shape: tuple[int, ...], g_axis: int) -> jax.Array:
  """The kernel of ``shape`` (output channels last): the parameter ``kernel``, or with weight norm
  ``weight_v · weight_g / ‖weight_v‖``, ``weight_g`` and the norm (over the other axes) along ``g_axis``."""
  axes = (None,) * (len(shape) - 1) + ("channels",)
  if module.norm == "none":
    return param(module, "kernel", init, shape, axes)
  v = param(module, "weight_v", init, shape, axes)
  norm_axes = tuple(a for a in range(len(shape)) if a != g_axis)
  v_norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=norm_axes))
  g = param(module, "weight_g", lambda *_: v_norm, (shape[g_axis],), (axes[g_axis],))
  return v * jnp.expand_dims(g / v_norm, norm_axes)


class Conv1d(nn.Module):
  """EnCodec's ``SConv1d``: ``x (B, T, Cin) → (B, ceil(T / stride), features)`` (for ``dilation = 1``), the input
  padded by :func:`conv_paddings` (causal: all on the left) in ``pad_mode`` ``"reflect"`` (EnCodec's default) or
  ``"constant"`` (zeros, HiFi-GAN's), then a convolution with ``stride``, ``dilation`` and ``groups``.
  ``norm``: ``"none"`` or ``"weight_norm"`` (see the module docstring for the parameters)."""

  features: int
  kernel_size: int
  stride: int = 1
  dilation: int = 1
  groups: int = 1
  use_bias: bool = True
  norm: str = "none"
  causal: bool = False
  pad_mode: str = "reflect"
  dtype: Any = jnp.float32
  kernel_init: Any = TORCH_CONV_INIT

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_option(self.norm, NORMS, "norm")
    _check_option(self.pad_mode, PAD_MODES, "pad_mode")
    channels = x.shape[-1]
    if channels % self.groups or self.features % self.groups:
      raise UserError(f"convolution groups {self.groups} must divide its {channels} input and {self.features} "
                      "output channels; change groups")
    left, right = conv_paddings(x.shape[1], self.kernel_size, self.stride, self.dilation, self.causal)
    # possible only with stride > 1 and dilation > 1, for an input shorter than the stride
    if x.shape[1] + left + right < (self.kernel_size - 1) * self.dilation + 1:
      raise UserError(f"a {x.shape[1]}-step input padded as EnCodec pads is shorter than a kernel_size "
                      f"{self.kernel_size} convolution dilated by {self.dilation}; give a longer input or use "
                      "dilation 1 with stride > 1")
    x = pad1d(x.astype(self.dtype), left, right, self.pad_mode)
    kernel = _weight(self, self.kernel_init, (self.kernel_size, channels // self.groups, self.features), 2)
    y = jax.lax.conv_general_dilated(x, kernel.astype(self.dtype), (self.stride,), "VALID",
                                     rhs_dilation=(self.dilation,), dimension_numbers=("NWC", "WIO", "NWC"),
                                     feature_group_count=self.groups)
    if self.use_bias:
      y = y + param(self, "bias", nn.initializers.zeros, (self.features,), ("channels",)).astype(self.dtype)
    return y


class ConvTranspose1d(nn.Module):
  """EnCodec's ``SConvTranspose1d``: ``x (B, T, Cin) → (B, T·stride, features)``, PyTorch's ``ConvTranspose1d``
  (output ``(T - 1)·stride + K`` steps) with ``K - stride`` steps trimmed: causal, ``ceil((K - stride) ·
  trim_right_ratio)`` on the right and the rest on the left; otherwise ``(K - stride) // 2`` on the right and the
  rest on the left. ``norm``: ``"none"`` or ``"weight_norm"`` (see the module docstring for the parameters)."""

  features: int
  kernel_size: int
  stride: int = 1
  use_bias: bool = True
  norm: str = "none"
  causal: bool = False
  trim_right_ratio: float = 1.0
  dtype: Any = jnp.float32
  kernel_init: Any = TORCH_CONV_TRANSPOSE_INIT

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_option(self.norm, NORMS, "norm")
    k, s = self.kernel_size, self.stride
    if k < s:
      raise UserError(f"a transposed convolution of kernel_size {k} leaves gaps at stride {s}; "
                      "choose kernel_size ≥ stride")
    if not 0.0 <= self.trim_right_ratio <= 1.0 or (self.trim_right_ratio != 1.0 and not self.causal):
      raise UserError(f"trim_right_ratio {self.trim_right_ratio} needs to be in [0, 1], and only a causal "
                      "transposed convolution may set it below 1; set causal=True or trim_right_ratio=1")
    kernel = _weight(self, self.kernel_init, (k, x.shape[-1], self.features), 1)
    # a transposed convolution is the convolution of the stride-dilated input with the flipped kernel
    y = jax.lax.conv_general_dilated(x.astype(self.dtype), jnp.flip(kernel, 0).astype(self.dtype), (1,),
                                     ((k - 1, k - 1),), lhs_dilation=(s,), dimension_numbers=("NWC", "WIO", "NWC"))
    if self.use_bias:
      y = y + param(self, "bias", nn.initializers.zeros, (self.features,), ("channels",)).astype(self.dtype)
    total = k - s
    right = math.ceil(total * self.trim_right_ratio) if self.causal else total // 2
    return y[:, total - right:y.shape[1] - right]


class Conv2d(nn.Module):
  """PyTorch's ``Conv2d`` on channels-last images: ``x (B, H, W, Cin) → (B, H', W', features)`` with zero
  ``padding`` ``(ph, pw)`` on both sides of each axis, ``stride`` and ``dilation`` per axis; ``norm`` ``"none"`` or
  ``"weight_norm"``: ``kernel`` / ``weight_v (kh, kw, Cin, Cout)`` ← torch ``(Cout, Cin, kh, kw).transpose(2, 3, 1,
  0)``, ``weight_g (Cout,)`` ← torch ``(Cout, 1, 1, 1)``. (The discriminators of codecs and vocoders.)"""

  features: int
  kernel_size: tuple[int, int]
  stride: tuple[int, int] = (1, 1)
  dilation: tuple[int, int] = (1, 1)
  padding: tuple[int, int] = (0, 0)
  use_bias: bool = True
  norm: str = "none"
  dtype: Any = jnp.float32
  kernel_init: Any = TORCH_CONV_INIT

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    _check_option(self.norm, NORMS, "norm")
    kernel = _weight(self, self.kernel_init, (*self.kernel_size, x.shape[-1], self.features), 3)
    y = jax.lax.conv_general_dilated(x.astype(self.dtype), kernel.astype(self.dtype), tuple(self.stride),
                                     tuple((p, p) for p in self.padding), rhs_dilation=tuple(self.dilation),
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + param(self, "bias", nn.initializers.zeros, (self.features,), ("channels",)).astype(self.dtype)
    return y
