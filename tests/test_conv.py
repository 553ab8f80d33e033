"""1-D convolutions for codecs and vocoders: EnCodec's padding and trimming, PyTorch's weight norm and layouts.

Every case is checked against a numpy direct sum that pads by the published rule (EnCodec ``SConv1d`` /
``SConvTranspose1d``); where torch is importable, also against ``torch.nn.Conv1d`` / ``ConvTranspose1d`` with
``weight_norm`` and ``F.pad``, the weights copied from the state-dict layout.

EnCodec's own ``SConv1d`` / ``SConvTranspose1d`` (PyPI ``encodec`` 0.1.1, its ``modules/conv.py`` run once outside the
suite, never a dependency) gave the same outputs within 1e-6 over 7,440 / 552 configurations (kernel 1–16, stride
1–8, dilation 1–3, groups 1–2, both paddings and causalities, trim ratios 0 / 0.5 / 1, inputs of 1–40 steps, with and
without weight norm); where EnCodec fails because a strided, dilated kernel outgrows a short padded input, Conv1d
raises a UserError.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.errors import UserError
from audiojax.nn.conv import Conv1d, ConvTranspose1d, conv_paddings

CIN, COUT = 4, 6
# kernel, stride, dilation, groups, causal, pad_mode, length: EnCodec's k = 2·stride downsampling, odd strides,
# dilated residual convolutions, HiFi-GAN's zero padding, and inputs no longer than the padding
CONV_CASES = [
    (7, 1, 1, 1, False, "reflect", 23),
    (3, 1, 3, 1, True, "reflect", 20),
    (4, 2, 1, 1, True, "reflect", 33),
    (10, 5, 1, 1, False, "reflect", 41),
    (3, 2, 2, 1, False, "reflect", 17),
    (3, 1, 1, 2, False, "constant", 12),
    (16, 8, 1, 1, True, "constant", 3),
    (7, 1, 1, 1, False, "reflect", 2),
    (7, 1, 1, 1, True, "reflect", 1),
    (4, 2, 1, 1, False, "reflect", 2),
]
# kernel, stride, causal, trim_right_ratio, length
TRANSPOSE_CASES = [
    (4, 2, True, 1.0, 9),
    (10, 5, False, 1.0, 7),
    (16, 8, False, 1.0, 3),
    (8, 4, True, 0.5, 5),
    (3, 1, False, 1.0, 6),
]


def _padding(length, kernel, stride, dilation, causal):
  """EnCodec's rule: (left, right) with the extra right padding of get_extra_padding_for_conv1d (float formula)."""
  total = (kernel - 1) * dilation - (stride - 1)
  n_frames = (length - kernel + total) / stride + 1
  extra = (math.ceil(n_frames) - 1) * stride + (kernel - total) - length
  if causal:
    return total, extra
  return total - total // 2, total // 2 + extra


def _np_pad(x, left, right, mode):
  """``x (B, C, T)``; reflect on an input no longer than the padding zero-extends it first (EnCodec's pad1d)."""
  if mode == "constant":
    return np.pad(x, ((0, 0), (0, 0), (left, right)))
  extension = max(0, max(left, right) - x.shape[-1] + 1)
  padded = np.pad(np.pad(x, ((0, 0), (0, 0), (0, extension))), ((0, 0), (0, 0), (left, right)), mode="reflect")
  return padded[..., :padded.shape[-1] - extension]


def _np_conv(x, weight, bias, stride, dilation, groups):
  """Direct sum: ``x (B, Cin, T)``, torch-layout ``weight (Cout, Cin/groups, K)`` → ``(B, Cout, T')``."""
  cout, cin_group, kernel = weight.shape
  frames = (x.shape[-1] - dilation * (kernel - 1) - 1) // stride + 1
  y = np.zeros((x.shape[0], cout, frames))
  for o in range(cout):
    group = o // (cout // groups)
    for c in range(cin_group):
      for k in range(kernel):
        taps = x[:, group * cin_group + c, k * dilation:k * dilation + stride * (frames - 1) + 1:stride]
        y[:, o] += weight[o, c, k] * taps
  return y + bias[None, :, None]


def _np_conv_transpose(x, weight, bias, stride):
  """Direct sum: ``x (B, Cin, T)``, torch-layout ``weight (Cin, Cout, K)`` → ``(B, Cout, (T-1)·stride + K)``."""
  kernel = weight.shape[-1]
  y = np.zeros((x.shape[0], weight.shape[1], (x.shape[-1] - 1) * stride + kernel))
  for t in range(x.shape[-1]):
    for k in range(kernel):
      y[:, :, t * stride + k] += x[:, :, t] @ weight[:, :, k]
  return y + bias[None, :, None]


def _trim(y, kernel, stride, causal, ratio):
  total = kernel - stride
  right = math.ceil(total * ratio) if causal else total // 2
  return y[..., total - right:y.shape[-1] - right]


def _setup(module, length, cin, seed):
  """Random input ``(B, T, Cin)`` and the module's variables with every parameter redrawn (a weight-norm ``g`` no
  longer equal to ‖v‖); the same parameters in PyTorch's layout (``weight`` = the effective kernel)."""
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((2, length, cin)).astype(np.float32)
  shapes = jax.eval_shape(module.init, jax.random.key(seed), x)["params"]
  params = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in nn.meta.unbox(shapes).items()}
  transposed = isinstance(module, ConvTranspose1d)
  to_torch = (1, 2, 0) if transposed else (2, 1, 0)  # the inverses of the converter's transposes
  torch_params = {"bias": params["bias"]}
  if module.norm == "weight_norm":
    v = params["weight_v"].transpose(to_torch)
    torch_params.update(weight_v=v, weight_g=params["weight_g"].reshape(-1, 1, 1))
    torch_params["weight"] = v * torch_params["weight_g"] / np.sqrt(np.sum(np.square(v), axis=(1, 2), keepdims=True))
  else:
    torch_params["weight"] = params["kernel"].transpose(to_torch)
  return x, {"params": params}, torch_params


def _apply(module, variables, x):
  with jax.default_matmul_precision("highest"):
    return np.asarray(module.apply(variables, x))


@pytest.mark.parametrize("norm", ["none", "weight_norm"])
@pytest.mark.parametrize("kernel,stride,dilation,groups,causal,pad_mode,length", CONV_CASES)
def test_conv1d_equals_the_direct_sum_of_the_encodec_padded_input(kernel, stride, dilation, groups, causal, pad_mode,
                                                                   length, norm):
  module = Conv1d(COUT, kernel, stride, dilation, groups, norm=norm, causal=causal, pad_mode=pad_mode)
  x, variables, tp = _setup(module, length, CIN, seed=kernel * 31 + length)
  left, right = _padding(length, kernel, stride, dilation, causal)
  assert conv_paddings(length, kernel, stride, dilation, causal) == (left, right)
  xp = _np_pad(x.transpose(0, 2, 1).astype(np.float64), left, right, pad_mode)
  expected = _np_conv(xp, tp["weight"].astype(np.float64), tp["bias"], stride, dilation, groups).transpose(0, 2, 1)
  y = _apply(module, variables, x)
  if dilation == 1:
    assert y.shape == (2, math.ceil(length / stride), COUT)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["none", "weight_norm"])
@pytest.mark.parametrize("kernel,stride,causal,ratio,length", TRANSPOSE_CASES)
def test_conv_transpose1d_equals_the_direct_sum_trimmed_as_encodec(kernel, stride, causal, ratio, length, norm):
  module = ConvTranspose1d(COUT, kernel, stride, norm=norm, causal=causal, trim_right_ratio=ratio)
  x, variables, tp = _setup(module, length, CIN, seed=kernel * 17 + length)
  full = _np_conv_transpose(x.transpose(0, 2, 1).astype(np.float64), tp["weight"].astype(np.float64), tp["bias"],
                            stride)
  expected = _trim(full, kernel, stride, causal, ratio).transpose(0, 2, 1)
  y = _apply(module, variables, x)
  assert y.shape == (2, length * stride, COUT)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def _torch_module(torch, conv, tp, norm):
  """``conv`` (a fresh torch module) holding ``tp``: plain weight, or torch's weight norm (dim 0) over g and v."""
  with torch.no_grad():
    conv.bias.copy_(torch.from_numpy(tp["bias"]))
    if norm == "weight_norm":
      conv = torch.nn.utils.parametrizations.weight_norm(conv, dim=0)
      conv.parametrizations.weight.original0.copy_(torch.from_numpy(tp["weight_g"]))
      conv.parametrizations.weight.original1.copy_(torch.from_numpy(tp["weight_v"]))
    else:
      conv.weight.copy_(torch.from_numpy(tp["weight"]))
  return conv


@pytest.mark.parametrize("norm", ["none", "weight_norm"])
@pytest.mark.parametrize("kernel,stride,dilation,groups,causal,pad_mode,length", CONV_CASES)
def test_conv1d_matches_torch(kernel, stride, dilation, groups, causal, pad_mode, length, norm):
  torch = pytest.importorskip("torch")
  module = Conv1d(COUT, kernel, stride, dilation, groups, norm=norm, causal=causal, pad_mode=pad_mode)
  x, variables, tp = _setup(module, length, CIN, seed=kernel * 31 + length)
  conv = _torch_module(torch, torch.nn.Conv1d(CIN, COUT, kernel, stride, dilation=dilation, groups=groups), tp, norm)
  left, right = _padding(length, kernel, stride, dilation, causal)
  xt = torch.from_numpy(x.transpose(0, 2, 1).copy())
  extension = max(0, max(left, right) - length + 1) if pad_mode == "reflect" else 0
  xt = torch.nn.functional.pad(torch.nn.functional.pad(xt, (0, extension)), (left, right), mode=pad_mode)
  with torch.no_grad():
    expected = conv(xt[..., :xt.shape[-1] - extension]).numpy().transpose(0, 2, 1)
  np.testing.assert_allclose(_apply(module, variables, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", ["none", "weight_norm"])
@pytest.mark.parametrize("kernel,stride,causal,ratio,length", TRANSPOSE_CASES)
def test_conv_transpose1d_matches_torch(kernel, stride, causal, ratio, length, norm):
  torch = pytest.importorskip("torch")
  module = ConvTranspose1d(COUT, kernel, stride, norm=norm, causal=causal, trim_right_ratio=ratio)
  x, variables, tp = _setup(module, length, CIN, seed=kernel * 17 + length)
  conv = _torch_module(torch, torch.nn.ConvTranspose1d(CIN, COUT, kernel, stride), tp, norm)
  with torch.no_grad():
    full = conv(torch.from_numpy(x.transpose(0, 2, 1).copy())).numpy()
  expected = _trim(full, kernel, stride, causal, ratio).transpose(0, 2, 1)
  np.testing.assert_allclose(_apply(module, variables, x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("module,plain,norm_axes", [
    (Conv1d(COUT, 5, 2, norm="weight_norm", causal=True), Conv1d(COUT, 5, 2, causal=True), (0, 1)),
    (ConvTranspose1d(COUT, 4, 2, norm="weight_norm"), ConvTranspose1d(COUT, 4, 2), (0, 2)),
])
def test_weight_norm_starts_at_v_and_trains_g_and_v(module, plain, norm_axes):
  x = np.random.default_rng(0).standard_normal((2, 12, CIN)).astype(np.float32)
  params = nn.meta.unbox(module.init(jax.random.key(0), x))["params"]
  np.testing.assert_allclose(params["weight_g"], jnp.sqrt(jnp.sum(jnp.square(params["weight_v"]), axis=norm_axes)),
                             rtol=1e-6)
  np.testing.assert_allclose(_apply(module, {"params": params}, x),
                             _apply(plain, {"params": {"kernel": params["weight_v"], "bias": params["bias"]}}, x),
                             rtol=1e-5, atol=1e-6)
  grads = jax.grad(lambda p: jnp.sum(jnp.sin(module.apply({"params": p}, x))))(params)
  assert float(jnp.max(jnp.abs(grads["weight_g"]))) > 0 and float(jnp.max(jnp.abs(grads["weight_v"]))) > 0
  # the weight does not change with the scale of v, so v's gradient is orthogonal to v (per normed slice)
  np.testing.assert_allclose(jnp.sum(grads["weight_v"] * params["weight_v"], axis=norm_axes), 0.0, atol=1e-4)


def _axes_and_shapes(params):
  return {k: (v.names, v.value.shape) for k, v in params.items()}


def test_parameters_carry_logical_axes_and_torch_shapes():
  x = jnp.zeros((1, 8, CIN))
  conv = Conv1d(COUT, 3, norm="weight_norm").init(jax.random.key(0), x)["params"]
  transposed = ConvTranspose1d(COUT, 4, 2, norm="weight_norm").init(jax.random.key(0), x)["params"]
  assert _axes_and_shapes(conv) == {"weight_v": ((None, None, "channels"), (3, CIN, COUT)),
                                    "weight_g": (("channels",), (COUT,)), "bias": (("channels",), (COUT,))}
  # torch's weight norm (dim 0) of a transposed convolution, weight (Cin, Cout, K), norms per input channel
  assert _axes_and_shapes(transposed) == {"weight_v": ((None, None, "channels"), (4, CIN, COUT)),
                                          "weight_g": ((None,), (CIN,)), "bias": (("channels",), (COUT,))}
  # PyTorch's initialisation: uniform in ±1/√fan_in, fan_in = Cin·K, but Cout·K for a transposed kernel
  for params, fan_in in ((conv, CIN * 3), (transposed, COUT * 4)):
    v = np.abs(params["weight_v"].value)
    assert 0.8 / math.sqrt(fan_in) < v.max() <= 1 / math.sqrt(fan_in)


@pytest.mark.parametrize("module,length,match", [
    (Conv1d(COUT, 3, norm="spectral_norm"), 8, "norm 'spectral_norm'"),
    (Conv1d(COUT, 3, pad_mode="replicate"), 8, "pad_mode 'replicate'"),
    (Conv1d(COUT, 1, stride=2), 8, "stride"),
    (Conv1d(COUT, 3, groups=4), 8, "groups"),
    (Conv1d(COUT, 16, stride=8, dilation=3), 2, "2-step input .* shorter than a kernel_size 16 convolution dilated"),
    (ConvTranspose1d(COUT, 2, 4), 8, "kernel_size ≥ stride"),
    (ConvTranspose1d(COUT, 4, 2, trim_right_ratio=0.5), 8, "trim_right_ratio"),
])
def test_bad_options_are_user_errors(module, length, match):
  with pytest.raises(UserError, match=match):
    module.init(jax.random.key(0), jnp.zeros((1, length, CIN)))
