"""Deterministic random CED weights in the ORIGINAL (PyTorch) state-dict layout, and the parity-fixture inputs.

numpy only: the parity test regenerates exactly what was loaded into RicherMans/CED when
``tests/fixtures/ced_tiny_parity.npz`` was recorded (the fixture stores per-tensor checksums to prove it).
"""
import numpy as np


def torch_state_dict_shapes(embed_dim=192, depth=12, num_classes=527):
  """(name, shape) of every learned tensor and BatchNorm statistic of the original AudioTransformer, in order."""
  d = embed_dim
  shapes = [("time_pos_embed", (1, d, 1, 63)), ("freq_pos_embed", (1, d, 4, 1))]
  shapes += [(f"init_bn.1.{n}", (64,)) for n in ("weight", "bias", "running_mean", "running_var")]
  shapes += [("patch_embed.proj.weight", (d, 1, 16, 16)), ("patch_embed.proj.bias", (d,))]
  for i in range(depth):
    b = f"blocks.{i}."
    shapes += [(b + "norm1.weight", (d,)), (b + "norm1.bias", (d,)),
               (b + "attn.qkv.weight", (3 * d, d)), (b + "attn.qkv.bias", (3 * d,)),
               (b + "attn.proj.weight", (d, d)), (b + "attn.proj.bias", (d,)),
               (b + "norm2.weight", (d,)), (b + "norm2.bias", (d,)),
               (b + "mlp.fc1.weight", (4 * d, d)), (b + "mlp.fc1.bias", (4 * d,)),
               (b + "mlp.fc2.weight", (d, 4 * d)), (b + "mlp.fc2.bias", (d,))]
  shapes += [("norm.weight", (d,)), ("norm.bias", (d,)), ("outputlayer.0.weight", (d,)),
             ("outputlayer.0.bias", (d,)), ("outputlayer.1.weight", (num_classes, d)),
             ("outputlayer.1.bias", (num_classes,))]
  return shapes


def random_state_dict(shapes, seed=0):
  """Weights with realistic scales: 1/sqrt(fan_in) matrices, norm gains near 1, BatchNorm statistics of dB mels."""
  out = {}
  for i, (name, shape) in enumerate(shapes):
    rng = np.random.default_rng([seed, i])
    owner = name.split(".")[-2] if "." in name else ""
    if name.endswith("running_mean"):
      x = rng.normal(-45.0, 8.0, shape)
    elif name.endswith("running_var"):
      x = rng.uniform(60.0, 300.0, shape)
    elif "norm" in owner or name.startswith(("outputlayer.0.", "init_bn")):
      x = (1.0 + rng.normal(0, 0.1, shape)) if name.endswith("weight") else rng.normal(0, 0.05, shape)
    elif "pos_embed" in name or name.endswith("bias"):
      x = rng.normal(0, 0.02, shape)
    else:  # linear / conv weights
      fan_in = int(np.prod(shape[1:]))
      x = rng.normal(0, fan_in ** -0.5, shape)
    out[name] = x.astype(np.float32)
  return out


def checksums(state_dict):
  return np.array([float(np.asarray(v, np.float64).sum()) for v in state_dict.values()])


PARITY_CASES = {  # name: (batch, samples)
    "short_2s": (2, 32000),
    "ten_s": (1, 160000),
    "max_1012_frames": (1, 1011 * 160),
    "long_25s": (2, 400000),
    "exact_2024_frames": (1, 2023 * 160),
}


def parity_wave(name):
  batch, samples = PARITY_CASES[name]
  rng = np.random.default_rng(list(map(ord, name)))
  t = np.arange(samples) / 16000.0
  freqs = rng.uniform(100, 4000, (batch, 3))
  tones = sum(0.2 * np.sin(2 * np.pi * freqs[:, k:k + 1] * t) for k in range(3))
  return (0.05 * rng.standard_normal((batch, samples)) + tones).astype(np.float32)
