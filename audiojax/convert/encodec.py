"""facebookresearch/encodec checkpoints (``encodec_24khz-d7cc33bc.th``: the state dict of
``EncodecModel.encodec_model_24khz``) → audiojax codec model directories.

The architecture is read from the tensors (widths, strides, kernel sizes, LSTM depth, codebooks), so reduced-width
models built from EnCodec's classes convert too; the model is mono, causal, reflect-padded at 24 kHz, as EnCodec's
24 kHz model (the 48 kHz model's time-group norm is refused). Every tensor must be used, with the shape the
architecture needs and finite values. The state dict names (``i`` the index in EnCodec's ``nn.Sequential``)::

  encoder.model.{i}.conv.conv.{weight_g,weight_v,bias}            Conv1d: weight norm (or .weight without it)
  encoder.model.{i}.block.{1,3}.conv.conv.*, .shortcut.conv.conv.*  residual unit: conv_0, conv_1, shortcut
  encoder.model.{i}.lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l{n}  LSTM layer n (copied as they are)
  decoder.model.{i}.convtr.convtr.*                               ConvTranspose1d
  quantizer.vq.layers.{k}._codebook.{inited,cluster_size,embed,embed_avg}   codebook k (stacked over k)
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, NamedTuple

import numpy as np

from audiojax.errors import UserError
from audiojax.models import codec
from audiojax.train import export

SAMPLE_RATE = 24000
CODEBOOK_BUFFERS = ("inited", "cluster_size", "embed", "embed_avg")


class Tensor(NamedTuple):
  """One state-dict tensor: its name and shape in EnCodec, where it goes (a path into the variables; codebook
  buffers also name their codebook ``index``) and how its values become that variable's."""

  name: str
  shape: tuple[int, ...]
  path: tuple[str, ...]
  to_jax: Callable[[np.ndarray], np.ndarray]
  index: int | None = None


def _conv(prefix: str, path: tuple[str, ...], cin: int, cout: int, kernel: int, norm: str, transposed: bool = False
          ) -> list[Tensor]:
  """A Conv1d (or ConvTranspose1d) of EnCodec's ``NormConv1d``: torch weights ``(Cout, Cin, K)`` (``(Cin, Cout,
  K)`` transposed), see :mod:`audiojax.nn.conv` for the layouts."""
  inner = f"{prefix}.convtr.convtr" if transposed else f"{prefix}.conv.conv"
  shape, order = ((cin, cout, kernel), (2, 0, 1)) if transposed else ((cout, cin, kernel), (2, 1, 0))
  tensors = [Tensor(f"{inner}.bias", (cout,), path + ("bias",), lambda x: x)]
  if norm == "none":
    return tensors + [Tensor(f"{inner}.weight", shape, path + ("kernel",), lambda x: x.transpose(order))]
  return tensors + [Tensor(f"{inner}.weight_g", (shape[0], 1, 1), path + ("weight_g",), lambda x: x.reshape(-1)),
                    Tensor(f"{inner}.weight_v", shape, path + ("weight_v",), lambda x: x.transpose(order))]


def _residual_unit(prefix: str, path: tuple[str, ...], dim: int, model: codec.Codec) -> list[Tensor]:
  hidden = dim // model.compress
  tensors = (_conv(f"{prefix}.block.1", path + ("conv_0",), dim, hidden, model.residual_kernel_size, model.norm) +
             _conv(f"{prefix}.block.3", path + ("conv_1",), hidden, dim, 1, model.norm))
  return tensors if model.true_skip else tensors + _conv(f"{prefix}.shortcut", path + ("shortcut",), dim, dim, 1,
                                                          model.norm)


def _lstm(prefix: str, path: tuple[str, ...], dim: int, layers: int) -> list[Tensor]:
  return [Tensor(f"{prefix}.lstm.{name}_l{n}", shape, path + ("lstm", f"layer_{n}", name), lambda x: x)
          for n in range(layers)
          for name, shape in (("weight_ih", (4 * dim, dim)), ("weight_hh", (4 * dim, dim)), ("bias_ih", (4 * dim,)),
                              ("bias_hh", (4 * dim,)))]


def state_dict_layout(model: codec.Codec) -> list[Tensor]:
  """Every tensor of the EnCodec state dict of ``model``'s architecture, in EnCodec's order."""
  r, nf, norm = model.n_residual_layers, model.n_filters, model.norm
  enc, p = ("params", "encoder"), "encoder.model"
  tensors = _conv(f"{p}.0", enc + ("conv_in",), 1, nf, model.kernel_size, norm)
  index, width = 1, nf
  for stage, ratio in enumerate(reversed(model.ratios)):
    for j in range(r):
      tensors += _residual_unit(f"{p}.{index + j}", enc + (f"stage_{stage}_res_{j}",), width, model)
    tensors += _conv(f"{p}.{index + r + 1}", enc + (f"stage_{stage}_down",), width, 2 * width, 2 * ratio, norm)
    index, width = index + r + 2, 2 * width
  if model.lstm_layers:
    tensors += _lstm(f"{p}.{index}", enc, width, model.lstm_layers)
    index += 1
  tensors += _conv(f"{p}.{index + 1}", enc + ("conv_out",), width, model.dimension, model.last_kernel_size, norm)

  for k in range(model.n_q):
    for buffer, shape in zip(CODEBOOK_BUFFERS, ((1,), (model.bins,), (model.bins, model.dimension),
                                                (model.bins, model.dimension))):
      to_jax = (lambda x: x.reshape(())) if buffer == "inited" else (lambda x: x)
      tensors.append(Tensor(f"quantizer.vq.layers.{k}._codebook.{buffer}", shape, ("codebooks", "quantizer", buffer),
                            to_jax, k))

  dec, p = ("params", "decoder"), "decoder.model"
  tensors += _conv(f"{p}.0", dec + ("conv_in",), model.dimension, width, model.kernel_size, norm)
  index = 1
  if model.lstm_layers:
    tensors += _lstm(f"{p}.1", dec, width, model.lstm_layers)
    index += 1
  for stage, ratio in enumerate(model.ratios):
    tensors += _conv(f"{p}.{index + 1}", dec + (f"stage_{stage}_up",), width, width // 2, 2 * ratio, norm,
                     transposed=True)
    width //= 2
    for j in range(r):
      tensors += _residual_unit(f"{p}.{index + 2 + j}", dec + (f"stage_{stage}_res_{j}",), width, model)
    index += r + 2
  return tensors + _conv(f"{p}.{index + 1}", dec + ("conv_out",), width, 1, model.last_kernel_size, norm)


def _encoder_modules(sd: dict[str, np.ndarray]) -> list[tuple[int, str]]:
  """``(index, kind)`` of the encoder's ``nn.Sequential`` entries that hold tensors, kind ``conv | block | lstm``."""
  kinds: dict[int, str] = {}
  for name in sd:
    match = re.match(r"encoder\.model\.(\d+)\.(conv|block|shortcut|lstm)\.", name)
    if match:
      kinds[int(match[1])] = "block" if match[2] == "shortcut" else match[2]
  return sorted(kinds.items())


def infer_model(sd: dict[str, np.ndarray], source: str) -> codec.Codec:
  """The codec whose architecture the EnCodec state dict ``sd`` holds (checked tensor by tensor afterwards)."""
  first = "encoder.model.0.conv.conv"
  if f"{first}.weight_v" in sd:
    norm = "weight_norm"
  elif f"{first}.weight" in sd:
    norm = "none"
  elif "encoder.model.0.conv.norm.weight" in sd:
    raise UserError(f"'{source}' uses time-group norm (EnCodec's 48 kHz stereo model); only the 24 kHz model's "
                    "layout (weight norm) converts")
  else:
    raise UserError(f"'{source}' is not an EnCodec checkpoint (no {first}.weight_v); give encodec_24khz-*.th")
  modules = _encoder_modules(sd)
  convs = [i for i, kind in modules if kind == "conv"]
  blocks = [i for i, kind in modules if kind == "block"]
  downsampling = convs[1:-1]
  if len(convs) < 3 or len(blocks) % len(downsampling):
    raise UserError(f"'{source}' does not hold a SEANet encoder (convolutions at encoder.model.{convs}, residual "
                    f"units at {blocks}); it is not an EnCodec checkpoint")

  weight_name = "weight_v" if norm == "weight_norm" else "weight"

  def shape(name: str) -> tuple[int, ...]:
    if name not in sd:
      raise UserError(f"'{source}' lacks '{name}'; the checkpoint is incomplete or not an EnCodec model")
    return tuple(sd[name].shape)

  def kernel(index: int) -> int:
    return int(shape(f"encoder.model.{index}.conv.conv.{weight_name}")[-1])

  lstm = next((i for i, kind in modules if kind == "lstm"), None)
  lstm_layers = sum(1 for name in sd if re.fullmatch(rf"encoder\.model\.{lstm}\.lstm\.weight_ih_l\d+", name))
  codebooks = sum(1 for name in sd if re.fullmatch(r"quantizer\.vq\.layers\.\d+\._codebook\.embed", name))
  bins, dimension = shape("quantizer.vq.layers.0._codebook.embed")
  n_filters, _, kernel_size = shape(f"{first}.{weight_name}")
  hidden, _, residual_kernel_size = (shape(f"encoder.model.{blocks[0]}.block.1.conv.conv.{weight_name}") if blocks
                                     else (n_filters // 2, 0, 3))
  ratios = tuple(reversed([kernel(i) // 2 for i in downsampling]))
  hop = math.prod(ratios)
  frame_rate = math.ceil(SAMPLE_RATE / hop)
  per_codebook = math.log2(bins) * frame_rate / 1000
  if (codebooks, bins, hop) == (32, 1024, 320):
    bandwidths = codec.VARIANTS["encodec_24khz"]["bandwidths"]
  else:
    bandwidths = tuple(per_codebook * 2 ** i for i in range(int(math.log2(codebooks)) + 1))
  return codec.Codec(
      n_filters=n_filters, dimension=dimension, ratios=ratios, n_residual_layers=len(blocks) // len(downsampling),
      kernel_size=kernel_size, last_kernel_size=kernel(convs[-1]), residual_kernel_size=residual_kernel_size,
      compress=max(1, n_filters // max(1, hidden)),
      lstm_layers=lstm_layers, true_skip=not any(name.endswith(".shortcut.conv.conv.bias") for name in sd),
      norm=norm, sample_rate=SAMPLE_RATE, n_q=codebooks, bins=bins, bandwidths=bandwidths)


def to_variables(state_dict: dict[str, np.ndarray], source: str = "checkpoint") -> tuple[codec.Codec, dict]:
  """EnCodec state dict → ``(model, {"params", "codebooks"})``; every tensor is used, with the shape the model
  needs and finite values."""
  model = infer_model(state_dict, source)
  layout = state_dict_layout(model)
  missing = [t.name for t in layout if t.name not in state_dict]
  if missing:
    raise UserError(f"'{source}' lacks '{missing[0]}'{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}; "
                    "the checkpoint is incomplete or not an EnCodec model")
  unused = sorted(set(state_dict) - {t.name for t in layout})
  if unused:
    raise UserError(f"'{source}' has tensors an EnCodec model does not use ({', '.join(unused[:5])}"
                    f"{'...' if len(unused) > 5 else ''}); it is not a plain EnCodec checkpoint")
  variables: dict[str, Any] = {}
  codebooks: dict[str, list[np.ndarray]] = {buffer: [None] * model.n_q for buffer in CODEBOOK_BUFFERS}
  for tensor in layout:
    value = np.asarray(state_dict[tensor.name])
    if tuple(value.shape) != tensor.shape:
      raise UserError(f"'{source}' gives {tensor.name} the shape {tuple(value.shape)} but the architecture read from "
                      f"it needs {tensor.shape}; the checkpoint is damaged or not an EnCodec model")
    if not np.all(np.isfinite(value)):
      raise UserError(f"'{source}' holds NaN or infinite values in {tensor.name}; the checkpoint is damaged")
    value = np.array(tensor.to_jax(value.astype(np.float32)), order="C")  # (ascontiguousarray makes 0-d 1-d)
    if tensor.index is not None:
      codebooks[tensor.path[-1]][tensor.index] = value
      continue
    node = variables
    for key in tensor.path[:-1]:
      node = node.setdefault(key, {})
    node[tensor.path[-1]] = value
  variables["codebooks"] = {"quantizer": {k: np.stack(v) for k, v in codebooks.items()}}
  return model, variables


def convert(checkpoint: str, out: str, force: bool = False) -> tuple[codec.Codec, int]:
  """Converts ``checkpoint`` into the model directory ``out`` (``force``: replacing the model directory there);
  returns the model and its parameter count."""
  from audiojax.convert.torch_io import read_state_dict
  model, variables = to_variables(read_state_dict(checkpoint), source=checkpoint)
  export.check_writable(os.path.abspath(out), force)
  export.save(out, codec.FAMILY, codec.to_config(model), variables, None, force=force)
  return model, codec.count_params(variables["params"])
