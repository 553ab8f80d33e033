"""EnCodec's multi-scale STFT discriminator against a PyTorch build of the same layers (torch ``stft``, ``Conv2d``
with weight norm, LeakyReLU), with the JAX parameters copied in, on random weights."""
import flax.linen as nn
import jax
import numpy as np
import pytest

from audiojax.models.discriminators import MultiScaleSTFTDiscriminator
from audiojax.nn.conv import Conv2d

N_FFTS = (64, 128, 32)
FILTERS = 4


def torch_scale(torch, params, wave, n_fft):
  """One scale in PyTorch: the STFT over (time, freq) and the conv stack of encodec's DiscriminatorSTFT."""
  window = torch.hann_window(n_fft)
  spec = torch.stft(wave, n_fft, n_fft // 4, n_fft, window=window, center=False, return_complex=True)
  z = torch.stack([spec.real, spec.imag], dim=1) / window.norm()  # (B, 2, F, T)
  z = z.permute(0, 1, 3, 2)  # (B, 2, T, F)
  names = [f"conv{i}" for i in range(5)] + ["conv_post"]
  strides = [(1, 1), (1, 2), (1, 2), (1, 2), (1, 1), (1, 1)]
  dilations = [(1, 1), (1, 1), (2, 1), (4, 1), (1, 1), (1, 1)]
  fmaps = []
  for name, stride, dilation in zip(names, strides, dilations):
    p = params[name]
    weight = p["kernel"] if "kernel" in p else p["weight_v"]
    kh, kw, cin, cout = weight.shape
    conv = torch.nn.Conv2d(cin, cout, (kh, kw), stride=stride, dilation=dilation,
                           padding=(((kh - 1) * dilation[0]) // 2, ((kw - 1) * dilation[1]) // 2))
    if "weight_v" in p:
      conv = torch.nn.utils.weight_norm(conv)
      conv.weight_v.data = torch.from_numpy(np.asarray(weight).transpose(3, 2, 0, 1).copy())
      conv.weight_g.data = torch.from_numpy(np.asarray(p["weight_g"]).reshape(cout, 1, 1, 1).copy())
    else:
      conv.weight.data = torch.from_numpy(np.asarray(weight).transpose(3, 2, 0, 1).copy())
    conv.bias.data = torch.from_numpy(np.asarray(p["bias"]).copy())
    z = conv(z)
    if name != "conv_post":
      z = torch.nn.functional.leaky_relu(z, 0.2)
      fmaps.append(z)
  return z, fmaps


def test_multi_scale_stft_discriminator_equals_pytorch():
  torch = pytest.importorskip("torch")
  model = MultiScaleSTFTDiscriminator(filters=FILTERS, n_ffts=N_FFTS)
  wave = np.random.default_rng(0).standard_normal((2, 700)).astype(np.float32) * 0.3
  variables = nn.meta.unbox(model.init(jax.random.key(0), wave))
  # non-trivial biases and gains, so a dropped bias or a wrong weight-norm axis shows
  variables = jax.tree.map(lambda x: x + 0.05 * np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype),
                           variables)
  logits, fmaps = model.apply(variables, wave)
  assert len(logits) == len(fmaps) == 3 and all(len(f) == 5 for f in fmaps)
  for i, n_fft in enumerate(N_FFTS):
    want, want_maps = torch_scale(torch, variables["params"][f"scale{i}"], torch.from_numpy(wave), n_fft)
    np.testing.assert_allclose(np.asarray(logits[i]), want.detach().numpy().transpose(0, 2, 3, 1), atol=2e-5)
    for got, ref in zip(fmaps[i], want_maps):
      np.testing.assert_allclose(np.asarray(got), ref.detach().numpy().transpose(0, 2, 3, 1), atol=2e-5)
    frames = 1 + (700 - n_fft) // (n_fft // 4)
    assert logits[i].shape == (2, frames, -(-(n_fft // 2 + 1) // 8), 1)


def test_conv2d_weight_norm_starts_at_its_direction_and_trains_both_parts():
  conv = Conv2d(3, (3, 5), stride=(1, 2), dilation=(2, 1), padding=(2, 2), norm="weight_norm")
  x = np.random.default_rng(2).standard_normal((1, 6, 9, 2)).astype(np.float32)
  params = nn.meta.unbox(conv.init(jax.random.key(1), x))["params"]
  v = np.asarray(params["weight_v"])
  np.testing.assert_allclose(params["weight_g"], np.sqrt((v ** 2).sum(axis=(0, 1, 2))), rtol=1e-6)
  grads = jax.grad(lambda p: (conv.apply({"params": p}, x) ** 2).sum())(params)
  assert float(np.abs(grads["weight_g"]).sum()) > 0 and float(np.abs(grads["weight_v"]).sum()) > 0
