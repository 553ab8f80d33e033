"""The LSTM: PyTorch's parameter layout, gate order (i, f, g, o) and two biases, checked against a numpy loop and,
where torch is importable, ``torch.nn.LSTM`` with the parameters copied name for name."""
import flax.linen as nn
import jax
import numpy as np
import pytest

from audiojax.nn.lstm import LSTM

NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _setup(features, layers, x, seed):
  """The module's variables with every parameter redrawn from a wide distribution (saturating some gates)."""
  module = LSTM(features, layers)
  shapes = nn.meta.unbox(jax.eval_shape(module.init, jax.random.key(0), x))["params"]
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda s: rng.normal(0, 0.6, s.shape).astype(np.float32), shapes)
  return module, {"params": params}


def _numpy_lstm(x, params, layers):
  """Textbook LSTM in float64: gates = W_ih x + b_ih + W_hh h + b_hh, rows (i, f, g, o)."""
  sigmoid = lambda z: 1 / (1 + np.exp(-z))
  h_seq = x.astype(np.float64)
  for layer in range(layers):
    p = {n: params[f"layer_{layer}"][n].astype(np.float64) for n in NAMES}
    hidden = p["weight_hh"].shape[1]
    h = np.zeros((x.shape[0], hidden))
    c = np.zeros((x.shape[0], hidden))
    outputs = []
    for t in range(h_seq.shape[1]):
      gates = h_seq[:, t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
      i, f, g, o = np.split(gates, 4, axis=1)
      c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
      h = sigmoid(o) * np.tanh(c)
      outputs.append(h)
    h_seq = np.stack(outputs, axis=1)
  return h_seq


@pytest.mark.parametrize("features,layers,length", [(7, 1, 9), (6, 2, 13), (5, 3, 1)])
def test_lstm_equals_the_numpy_recurrence(features, layers, length):
  x = np.random.default_rng(length).standard_normal((3, length, 4)).astype(np.float32)
  module, variables = _setup(features, layers, x, seed=features)
  y = np.asarray(module.apply(variables, x))
  assert y.shape == (3, length, features)
  np.testing.assert_allclose(y, _numpy_lstm(x, variables["params"], layers), atol=2e-6, rtol=0)


def test_lstm_matches_torch_with_the_state_dict_copied():
  torch = pytest.importorskip("torch")
  x = np.random.default_rng(0).standard_normal((2, 17, 8)).astype(np.float32)
  module, variables = _setup(8, 2, x, seed=1)
  reference = torch.nn.LSTM(8, 8, 2)  # EnCodec's SLSTM: time-major, same width in and out
  with torch.no_grad():
    for layer in range(2):
      for name in NAMES:
        getattr(reference, f"{name}_l{layer}").copy_(torch.from_numpy(variables["params"][f"layer_{layer}"][name]))
    expected = reference(torch.from_numpy(x.transpose(1, 0, 2).copy()))[0].numpy().transpose(1, 0, 2)
  np.testing.assert_allclose(np.asarray(module.apply(variables, x)), expected, atol=2e-6, rtol=0)


def test_parameters_have_torch_shapes_axes_and_initialisation():
  params = LSTM(16, 2).init(jax.random.key(0), np.zeros((1, 3, 5), np.float32))["params"]
  assert {n: (p.names, p.value.shape) for n, p in params["layer_0"].items()} == {
      "weight_ih": (("channels", None), (64, 5)), "weight_hh": (("channels", None), (64, 16)),
      "bias_ih": (("channels",), (64,)), "bias_hh": (("channels",), (64,))}
  assert params["layer_1"]["weight_ih"].value.shape == (64, 16)
  for p in jax.tree.leaves(nn.meta.unbox(params)):  # torch: uniform in ±1/√H
    assert 0.2 < np.abs(p).max() <= 0.25


def test_gradients_flow_through_time():
  x = np.random.default_rng(0).standard_normal((1, 12, 3)).astype(np.float32)
  module, variables = _setup(4, 1, x, seed=0)
  grad = jax.grad(lambda x: module.apply(variables, x)[0, -1].sum())(x)
  assert np.all(np.abs(np.asarray(grad[0, 0])) > 0)  # the last output depends on the first step
