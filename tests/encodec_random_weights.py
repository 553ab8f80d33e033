"""Deterministic random weights in EnCodec's state-dict layout (numpy only), and the parity-fixture inputs.

The parity test regenerates exactly what was loaded into the original EnCodec classes when
``tests/fixtures/encodec_small_parity.npz`` was recorded (the fixture stores the tensor names and per-tensor
checksums to prove it).
"""
import numpy as np

from audiojax.models import codec

# The fixture's reduced-width model (EnCodec's classes with these arguments; the rest as the 24 kHz model's)
SMALL = dict(n_filters=4, dimension=16, ratios=(8, 5, 4, 2), n_q=8, bins=64, sample_rate=24000,
             bandwidths=(0.45, 0.9, 1.8, 3.6))
CODEBOOK_STD = 0.5  # about the random encoder's output scale, so that inputs spread over the codes


def small_model() -> codec.Codec:
  return codec.Codec(**SMALL)


def random_state_dict(layout, seed=0):
  """``layout``: ``(name, shape)`` pairs in order. Convolutions: ``weight_v`` normal with unit row norm, ``weight_g``
  in [0.5, 1.5] (so the effective rows have those norms), biases N(0, 0.1²); LSTM parameters uniform in ±1/√H as
  PyTorch's; codebooks normal (codebook k with std ``CODEBOOK_STD / (k + 1)``, residuals shrink), cluster sizes in
  [1, 20], ``inited`` 1."""
  out = {}
  for i, (name, shape) in enumerate(layout):
    rng = np.random.default_rng([seed, i])
    if ".lstm." in name:
      hidden = shape[0] // 4
      x = rng.uniform(-hidden ** -0.5, hidden ** -0.5, shape)
    elif name.endswith("_codebook.inited"):
      x = np.ones(shape)
    elif name.endswith("_codebook.cluster_size"):
      x = rng.uniform(1.0, 20.0, shape)
    elif name.endswith(("_codebook.embed", "_codebook.embed_avg")):
      k = int(name.split(".")[3])
      x = rng.normal(0, CODEBOOK_STD / (k + 1), shape)
    elif name.endswith("weight_g"):
      x = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("bias"):
      x = rng.normal(0, 0.1, shape)
    else:  # weight_v, or the weight of a convolution without norm
      x = rng.normal(0, int(np.prod(shape[1:])) ** -0.5, shape)
    out[name] = x.astype(np.float32)
  return out


def checksums(state_dict):
  return np.array([float(np.asarray(v, np.float64).sum()) for v in state_dict.values()])


PARITY_CASES = {  # name: (batch, samples); neither a multiple of the 320-sample hop
    "batch": (2, 5000),
    "short": (1, 100),
}


def parity_wave(name):
  batch, samples = PARITY_CASES[name]
  rng = np.random.default_rng(list(map(ord, name)))
  t = np.arange(samples) / 24000.0
  freqs = rng.uniform(100, 4000, (batch, 3))
  tones = sum(0.2 * np.sin(2 * np.pi * freqs[:, k:k + 1] * t) for k in range(3))
  return (0.05 * rng.standard_normal((batch, samples)) + tones).astype(np.float32)
