"""Hugging Face BERT directories → audiojax BERT directories (:mod:`audiojax.models.bert`), and reading them back.

An audiojax BERT directory is a model directory (:mod:`audiojax.train.export`: ``model.json`` with the
:class:`~audiojax.models.bert.BertConfig`, ``variables/`` holding ``{"params": tree}``) plus ``vocab.txt`` and
``tokenizer_config.json``.

Input: a local directory holding ``config.json``, ``vocab.txt``, the weights (``model.safetensors`` or
``pytorch_model.bin``, sharded ``*.index.json`` variants too) and optionally ``tokenizer_config.json`` — what
``save_pretrained`` writes, or a ``bert-base-cased`` snapshot. Keys with or without the ``bert.`` prefix
(``BertModel``, ``BertForMaskedLM``, ``BertForPreTraining``) are accepted, as are the old ``LayerNorm.gamma/beta``
names. Ignored, by design: the task heads (``cls.*``), the pooler (``pooler.*``: PromptASR reads the hidden states,
never the pooled [CLS] vector) and the ``position_ids``/``token_type_ids`` buffers. Every other tensor must be one
the encoder uses, with the shape the config implies.
"""
from __future__ import annotations

import json
import os
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from audiojax.errors import UserError
from audiojax.models import bert
from audiojax.text import wordpiece
from audiojax.train import checkpoint, export

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
IGNORED_PREFIXES = ("cls.", "pooler.")
IGNORED_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")


def canonical_names(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """Strips the ``bert.`` prefix, renames ``LayerNorm.gamma/beta`` to ``weight/bias`` and drops the heads, the
  pooler and the index buffers."""
  out = {}
  for name, value in state_dict.items():
    name = name[len("bert."):] if name.startswith("bert.") else name
    if name.startswith(IGNORED_PREFIXES) or name in IGNORED_BUFFERS:
      continue
    if name.endswith("LayerNorm.gamma"):
      name = name[:-len("gamma")] + "weight"
    elif name.endswith("LayerNorm.beta"):
      name = name[:-len("beta")] + "bias"
    out[name] = value
  return out


def to_variables(state_dict: dict[str, np.ndarray], config: bert.BertConfig,
                 source: str = "checkpoint") -> dict:
  """Hugging Face BERT state dict → ``{"params": tree}`` of :class:`audiojax.models.bert.Bert`."""
  sd = canonical_names(state_dict)
  c = config
  d, h, dh, i_dim = c.hidden_size, c.num_attention_heads, c.head_dim, c.intermediate_size
  used: set[str] = set()

  def take(name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in sd:
      raise UserError(f"'{source}' lacks '{name}'; the checkpoint is incomplete or not a BERT with this "
                      f"config.json")
    value = np.asarray(sd[name], np.float32)
    if value.shape != shape:
      raise UserError(f"'{source}' has '{name}' of shape {value.shape} but config.json implies {shape}; give the "
                      f"config.json of this checkpoint")
    used.add(name)
    return value

  def norm(prefix: str) -> dict:
    return {"scale": take(prefix + ".weight", (d,)), "bias": take(prefix + ".bias", (d,))}

  def linear(prefix: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch ``Linear`` (weight ``(out, in)``) → ``(kernel (in, out), bias (out,))``."""
    return take(prefix + ".weight", (n_out, n_in)).T, take(prefix + ".bias", (n_out,))

  params = {"embeddings": {
      "word": take("embeddings.word_embeddings.weight", (c.vocab_size, d)),
      "position": take("embeddings.position_embeddings.weight", (c.max_position_embeddings, d)),
      "token_type": take("embeddings.token_type_embeddings.weight", (c.type_vocab_size, d)),
      "norm": norm("embeddings.LayerNorm")}}
  for i in range(c.num_hidden_layers):
    p = f"encoder.layer.{i}."
    layer = {}
    for name in ("query", "key", "value"):  # output unit j of the Linear is head j // dh, channel j % dh
      kernel, bias = linear(p + f"attention.self.{name}", d, d)
      layer[name] = {"kernel": kernel.reshape(d, h, dh), "bias": bias.reshape(h, dh)}
    kernel, bias = linear(p + "attention.output.dense", d, d)
    layer["attention_out"] = {"kernel": kernel.reshape(h, dh, d), "bias": bias}
    layer["attention_norm"] = norm(p + "attention.output.LayerNorm")
    kernel, bias = linear(p + "intermediate.dense", d, i_dim)
    layer["intermediate"] = {"kernel": kernel, "bias": bias}
    kernel, bias = linear(p + "output.dense", i_dim, d)
    layer["output"] = {"kernel": kernel, "bias": bias}
    layer["output_norm"] = norm(p + "output.LayerNorm")
    params[f"layer_{i}"] = layer
  unused = sorted(set(sd) - used)
  if unused:
    raise UserError(f"'{source}' has tensors a {c.num_hidden_layers}-layer BERT encoder does not use "
                    f"({', '.join(unused[:5])}{'...' if len(unused) > 5 else ''}); give the config.json of this "
                    f"checkpoint")
  return {"params": params}


def read_weights(hf_dir: str) -> tuple[dict[str, np.ndarray], str]:
  """The state dict of a Hugging Face directory (single or sharded safetensors / PyTorch files) and its file name."""
  from audiojax.convert.torch_io import read_state_dict
  for name in WEIGHT_FILES:
    path = os.path.join(hf_dir, name)
    if os.path.isfile(path):
      return read_state_dict(path), path
    index = path + ".index.json"
    if os.path.isfile(index):
      with open(index) as f:
        shards = sorted(set(json.load(f).get("weight_map", {}).values()))
      root = os.path.realpath(hf_dir)
      sd: dict[str, np.ndarray] = {}
      for shard in shards:
        path = os.path.realpath(os.path.join(hf_dir, shard))
        if os.path.dirname(path) != root:  # '../x.bin', '/abs/x.bin', 'sub/../../x.bin'
          raise UserError(f"'{index}' names the shard '{shard}' outside '{hf_dir}'; a converter reads only the files "
                          f"of the directory it is given: put the shards beside the index")
        sd.update(read_state_dict(path))
      return sd, index
  raise UserError(f"'{hf_dir}' holds no {' or '.join(WEIGHT_FILES)}; give a Hugging Face BERT directory (what "
                  f"save_pretrained writes)")


def convert(hf_dir: str, out: str, force: bool = False) -> tuple[bert.BertConfig, int]:
  """Converts the Hugging Face BERT directory ``hf_dir`` into the audiojax BERT directory ``out`` (``force``:
  replacing the model directory there); returns the config and the number of converted parameters."""
  if not os.path.isdir(hf_dir):
    raise UserError(f"--hf-dir '{hf_dir}' is not a directory; give the local Hugging Face BERT directory "
                    f"(config.json, vocab.txt, model.safetensors or pytorch_model.bin)")
  config = bert.BertConfig.from_json(os.path.join(hf_dir, "config.json"))
  vocab_file = os.path.join(hf_dir, "vocab.txt")
  if not os.path.isfile(vocab_file):
    raise UserError(f"'{hf_dir}' has no vocab.txt; the WordPiece vocabulary must travel with the weights")
  state_dict, source = read_weights(hf_dir)
  variables = to_variables(state_dict, config, source)
  save(out, config, variables, vocab_file, force=force)
  return config, sum(int(np.prod(x.shape)) for x in _leaves(variables["params"]))


def _leaves(tree: dict) -> list[np.ndarray]:
  return [x for v in tree.values() for x in (_leaves(v) if isinstance(v, dict) else [v])]


def save(path: str, config: bert.BertConfig, variables: Any, vocab_file: str,
         tokenizer_settings: dict[str, Any] | None = None, force: bool = False) -> None:
  """Writes a BERT directory. ``tokenizer_settings`` (``do_lower_case``...) default to the
  ``tokenizer_config.json`` next to ``vocab_file``, else are inferred from the vocabulary
  (:mod:`audiojax.text.wordpiece`)."""
  if tokenizer_settings is None:
    tokenizer_settings = wordpiece.read_settings(os.path.dirname(os.path.abspath(vocab_file)))
  tokenizer = wordpiece.WordPiece(wordpiece.read_vocab(vocab_file), **tokenizer_settings)
  if tokenizer.vocab_size != config.vocab_size:
    raise UserError(f"'{vocab_file}' has {tokenizer.vocab_size} lines but the BERT config has vocab_size "
                    f"{config.vocab_size}; give the vocab.txt of this model")
  export.save(path, bert.FAMILY, bert.to_config(config), {"params": variables["params"]}, None,
              assets=tokenizer.save, force=force)


def is_bert_dir(path: str) -> bool:
  return export.is_model_dir(path) and os.path.isfile(os.path.join(path, "vocab.txt"))


def load_config(path: str) -> bert.BertConfig:
  """The :class:`~audiojax.models.bert.BertConfig` of a converted BERT directory."""
  if not is_bert_dir(path):
    raise UserError(f"'{path}' is not a converted BERT directory (no model.json and vocab.txt); convert the Hugging "
                    f"Face directory with: python -m audiojax convert bert --hf-dir HF_DIR --out {path}")
  return bert.BertConfig(**export.read_meta(path, bert.FAMILY))


def load(path: str) -> tuple[bert.BertConfig, dict[str, Any]]:
  """``(config, {"params": tree})`` of a BERT directory; ``Bert(config).apply(variables, ids, lengths)`` gives the
  hidden states."""
  config = load_config(path)
  model = bert.from_config(config.to_dict())
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *bert.example_inputs(model)))
  return config, checkpoint.restore_variables(path, nn.meta.unbox(abstract))
