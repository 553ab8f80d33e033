"""RicherMans/CED checkpoints → audiojax CED model directories.

Accepts the released files (``audiotransformer_*_mAP_*.pt``: ``{"model": state_dict}`` or a bare state dict) and the
Hugging Face layout (``pytorch_model.bin`` / ``model.safetensors`` with ``encoder.*`` keys). The front-end buffers
stored in original checkpoints (window, mel filterbank) are checked against audiojax's front-end, not loaded.
"""
from __future__ import annotations

import os

import flax.linen as nn
import jax
import numpy as np

from audiojax.audio import features
from audiojax.errors import UserError
from audiojax.models import ced
from audiojax.train import export

IGNORED_SUFFIXES = ("num_batches_tracked",)


def canonical_names(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Hugging Face names (``encoder.init_bn.weight``...) → the original's (``init_bn.1.weight``...)."""
  out = {}
  for name, value in state_dict.items():
    if name.startswith("encoder."):
      name = name[len("encoder."):]
      if name.startswith("init_bn.") and not name.startswith("init_bn.1."):
        name = "init_bn.1." + name[len("init_bn."):]
    out[name] = value
  return out


def check_front_end(state_dict: dict[str, np.ndarray], source: str) -> None:
  """The checkpoint's stored STFT window and mel filterbank must be the ones audiojax computes."""
  mel = ced.MEL
  expected = {
      "front_end.0.spectrogram.window": np.asarray(features.hann_window(mel.win_length)),
      "front_end.0.mel_scale.fb": features.mel_filterbank(n_freqs=mel.n_fft // 2 + 1, f_min=mel.f_min,
                                                          f_max=mel.f_max, n_mels=mel.n_mels,
                                                          sample_rate=mel.sample_rate, mel_scale=mel.mel_scale,
                                                          norm=mel.norm),
  }
  for name, want in expected.items():
    if name in state_dict and (state_dict[name].shape != want.shape or
                               not np.allclose(state_dict[name], want, atol=1e-5)):
      raise UserError(f"'{source}' was trained with a different front-end ({name} differs from CED's 16 kHz, "
                      f"512-point, 64-mel HTK settings); it cannot be converted to audiojax's CED")


def infer_variant(state_dict: dict[str, np.ndarray]) -> str:
  width = state_dict["patch_embed.proj.weight"].shape[0]
  for name, spec in ced.VARIANTS.items():
    if spec["embed_dim"] == width:
      return name
  raise UserError(f"no CED variant has width {width}; known widths: "
                  f"{ {n: s['embed_dim'] for n, s in ced.VARIANTS.items()} }")


def to_variables(state_dict: dict[str, np.ndarray], variant: str | None = None,
                 source: str = "checkpoint") -> tuple[ced.CED, dict]:
  """Original-layout state dict → ``(model, {"params", "batch_stats"})``. Every learned tensor must be used."""
  sd = canonical_names(state_dict)
  check_front_end(sd, source)
  sd = {k: v for k, v in sd.items() if not k.startswith("front_end.") and not k.endswith(IGNORED_SUFFIXES)}
  if "patch_embed.proj.weight" not in sd:
    raise UserError(f"'{source}' is not a CED checkpoint (no patch_embed.proj.weight); give an "
                    f"audiotransformer_*.pt or a mispeech/ced-* model file")
  found = infer_variant(sd)
  if variant is not None and variant != found:
    raise UserError(f"'{source}' holds a CED-{found} (width {sd['patch_embed.proj.weight'].shape[0]}), not "
                    f"CED-{variant}; pass --variant {found}")
  d = ced.VARIANTS[found]["embed_dim"]
  heads = ced.VARIANTS[found]["num_heads"]
  depth = 1 + max((int(k.split(".")[1]) for k in sd if k.startswith("blocks.")), default=-1)
  if "outputlayer.1.weight" not in sd or depth < 1:
    raise UserError(f"'{source}' lacks the {'output layer (outputlayer.1.weight)' if depth >= 1 else 'blocks'}; the "
                    f"checkpoint is incomplete or not a CED tagging model")
  num_classes = sd["outputlayer.1.weight"].shape[0]
  used: set[str] = set()

  def take(name: str) -> np.ndarray:
    if name not in sd:
      raise UserError(f"'{source}' lacks '{name}'; the checkpoint is incomplete or not a CED model")
    used.add(name)
    return np.asarray(sd[name], np.float32)

  def norm(prefix: str) -> dict:
    return {"scale": take(prefix + ".weight"), "bias": take(prefix + ".bias")}

  try:
    params = _params(take, norm, d, heads, depth)
  except (ValueError, IndexError) as e:  # a reshape or index that a tensor of the wrong shape cannot take
    raise UserError(f"'{source}' has a tensor of the wrong shape for a CED-{found} ({e}); the checkpoint is damaged "
                    f"or not a CED model") from None
  batch_stats = {"init_bn": {"mean": take("init_bn.1.running_mean"), "var": take("init_bn.1.running_var")}}
  unused = sorted(set(sd) - used)
  if unused:
    raise UserError(f"'{source}' has tensors a CED-{found} does not use ({', '.join(unused[:5])}"
                    f"{'...' if len(unused) > 5 else ''}); it is not a plain CED tagging checkpoint")
  overrides = {} if depth == 12 else {"depth": depth}
  model = ced.Model(found, num_classes=num_classes, **overrides)
  variables = {"params": params, "batch_stats": batch_stats}
  check_variables(model, variables, source)
  return model, variables


def check_variables(model: ced.CED, variables: dict, source: str) -> None:
  """Every converted tensor has the shape ``model`` needs and only finite values."""
  abstract = nn.meta.unbox(jax.eval_shape(lambda: model.init(jax.random.key(0), *ced.example_inputs(model))))
  want = {jax.tree_util.keystr(k, simple=True, separator="/"): v.shape
          for k, v in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  for key, value in jax.tree_util.tree_flatten_with_path(variables)[0]:
    name = jax.tree_util.keystr(key, simple=True, separator="/")
    if name not in want or tuple(value.shape) != tuple(want[name]):
      raise UserError(f"'{source}' gives {name} the shape {tuple(value.shape)} but the model needs "
                      f"{tuple(want.get(name, ()))}; the checkpoint is damaged or not a CED model")
    if not np.all(np.isfinite(value)):
      raise UserError(f"'{source}' holds NaN or infinite values in {name}; the checkpoint is damaged")


def _params(take, norm, d: int, heads: int, depth: int) -> dict:
  """The CED parameter tree from the original's tensors (``take(name)``, ``norm(prefix)``)."""
  params = {
      "time_pos_embed": take("time_pos_embed")[0, :, 0, :].T,  # (1, D, 1, 63) → (63, D)
      "freq_pos_embed": take("freq_pos_embed")[0, :, :, 0].T,  # (1, D, 4, 1) → (4, D)
      "init_bn": norm("init_bn.1"),
      "patch_embed": {"kernel": take("patch_embed.proj.weight").transpose(2, 3, 1, 0),  # (D,1,F,T) → (F,T,1,D)
                      "bias": take("patch_embed.proj.bias")},
      "norm": norm("norm"),
      "head_norm": norm("outputlayer.0"),
      "head": {"kernel": take("outputlayer.1.weight").T, "bias": take("outputlayer.1.bias")},
  }
  for i in range(depth):
    b = f"blocks.{i}."
    qkv_w = take(b + "attn.qkv.weight")  # (3D, D), rows [q; k; v], each head-contiguous
    params[f"blocks_{i}"] = {
        "norm1": norm(b + "norm1"),
        "norm2": norm(b + "norm2"),
        "attn": {
            "qkv_kernel": qkv_w.reshape(3, heads, d // heads, d).transpose(3, 0, 1, 2),
            "qkv_bias": take(b + "attn.qkv.bias").reshape(3, heads, d // heads),
            "proj_kernel": take(b + "attn.proj.weight").T.reshape(heads, d // heads, d),
            "proj_bias": take(b + "attn.proj.bias"),
        },
        "mlp": {"fc1": {"kernel": take(b + "mlp.fc1.weight").T, "bias": take(b + "mlp.fc1.bias")},
                "fc2": {"kernel": take(b + "mlp.fc2.weight").T, "bias": take(b + "mlp.fc2.bias")}},
    }
  return params


def read_label_file(path: str, num_classes: int) -> list[str]:
  """Class names from AudioSet's ``class_labels_indices.csv`` (its ``display_name`` column) or a text file with one
  name per line; there must be one per model output."""
  import csv
  if not os.path.isfile(path):
    raise UserError(f"label file '{path}' does not exist; give AudioSet's class_labels_indices.csv or a text file "
                    f"with one class name per line")
  with open(path, newline="", encoding="utf-8") as f:
    if path.endswith(".csv"):
      reader = csv.DictReader(f)
      if "display_name" not in (reader.fieldnames or ()):
        raise UserError(f"'{path}' has no display_name column; give AudioSet's class_labels_indices.csv")
      names = [row["display_name"] for row in reader]
    else:
      names = [line.strip() for line in f if line.strip()]
  if len(names) != num_classes:
    raise UserError(f"'{path}' names {len(names)} classes but the checkpoint has {num_classes} outputs")
  return names


def convert(checkpoint: str, out: str, variant: str | None = None, labels: str | None = None, force: bool = False
            ) -> tuple[ced.CED, int]:
  """Converts ``checkpoint`` into the model directory ``out`` (``force``: replacing the model directory there);
  returns the model and its parameter count."""
  from audiojax.convert.torch_io import read_state_dict
  model, variables = to_variables(read_state_dict(checkpoint), variant, source=checkpoint)
  names = read_label_file(labels, model.num_classes) if labels else [f"class_{i}" for i in range(model.num_classes)]
  export.check_writable(os.path.abspath(out), force)
  export.save(out, ced.FAMILY, ced.to_config(model), variables, names, force=force)
  return model, ced.count_params(variables["params"])
