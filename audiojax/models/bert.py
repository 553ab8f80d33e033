"""BERT encoder (Devlin et al., 2019) numerically equal to Hugging Face ``transformers.BertModel``'s
``last_hidden_state``, for use as a frozen pretrained text encoder (PromptASR's prompt encoder).

``ids (B, M) int32, lengths (B,) → hidden (B, M, H)``, zero on padded positions:
word + absolute position + token-type-0 embeddings → LayerNorm → N post-LN layers, each
``x = LN(x + attn(x))`` (multi-head self-attention with biases, padded keys masked) then
``x = LN(x + W2 act(W1 x))``, ``act`` = GELU (exact erf for ``"gelu"``, tanh for ``"gelu_new"``).
The pooler is not part of it (PromptASR reads the hidden states only).

Variables live in the collection named by ``Bert.collection``: ``"params"`` (randomly initialised, to train), or a
non-trainable one (PromptASR uses ``"frozen"``) that optimizers never see, initialised to zero placeholders for the
converted weights to replace. Tree (``H`` hidden, ``h`` heads, ``d = H / h``), with logical axes ``vocab``, ``embed``,
``heads``, ``kv``, ``mlp``::

  embeddings/{word (V, H), position (P, H), token_type (T, H), norm/{scale, bias} (H,)}
  layer_i/{query, key, value}/{kernel (H, h, d), bias (h, d)}, layer_i/attention_out/{kernel (h, d, H), bias (H,)},
  layer_i/attention_norm, layer_i/intermediate/{kernel (H, I), bias (I,)}, layer_i/output/{kernel (I, H), bias (H,)},
  layer_i/output_norm

Converted weights (:mod:`audiojax.convert.bert`) are model directories: ``model.json`` (the :class:`BertConfig`),
``variables/`` (Orbax, ``{"params": tree}``), ``vocab.txt`` and ``tokenizer_config.json``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.errors import UserError
from audiojax.nn.attention import attention
from audiojax.nn.layers import variable
from audiojax.nn.norms import TwoPassLayerNorm

FAMILY = "bert"
ACTIVATIONS = {"gelu": False, "gelu_new": True, "gelu_pytorch_tanh": True}  # name → tanh approximation


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The architecture fields of a Hugging Face BERT ``config.json``."""

  vocab_size: int
  hidden_size: int
  num_hidden_layers: int
  num_attention_heads: int
  intermediate_size: int
  max_position_embeddings: int
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_act: str = "gelu"

  def __post_init__(self):
    if self.hidden_act not in ACTIVATIONS:
      raise UserError(f"BERT hidden_act '{self.hidden_act}' is not supported; audiojax's BERT implements "
                      f"{', '.join(ACTIVATIONS)}")
    if self.hidden_size % self.num_attention_heads:
      raise UserError(f"BERT hidden_size {self.hidden_size} does not divide into {self.num_attention_heads} heads; "
                      "the config.json is corrupt")

  @property
  def head_dim(self) -> int:
    return self.hidden_size // self.num_attention_heads

  @classmethod
  def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "BertConfig":
    """From a Hugging Face config dict; other model types and non-absolute positions are UserErrors."""
    if raw.get("model_type", "bert") != "bert":
      raise UserError(f"'{source}' describes a {raw['model_type']} model, not BERT; give a BertModel directory "
                      "(e.g. bert-base-cased)")
    if raw.get("position_embedding_type", "absolute") != "absolute":
      raise UserError(f"'{source}' uses position_embedding_type={raw['position_embedding_type']}; only 'absolute' "
                      "(every released BERT) is supported")
    if raw.get("is_decoder") or raw.get("add_cross_attention"):
      raise UserError(f"'{source}' is a BERT decoder (is_decoder/add_cross_attention); give an encoder")
    fields = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    missing = sorted(required - set(raw))
    if missing:
      raise UserError(f"'{source}' lacks {', '.join(missing)}; it is not a BERT config.json")
    return cls(**{k: v for k, v in raw.items() if k in fields})

  @classmethod
  def from_json(cls, path: str) -> "BertConfig":
    """From a Hugging Face ``config.json`` (or the directory holding it)."""
    if os.path.isdir(path):
      path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
      raise UserError(f"'{path}' does not exist; give the config.json of a Hugging Face BERT directory")
    try:
      with open(path) as f:
        raw = json.load(f)
    except ValueError as e:
      raise UserError(f"cannot parse '{path}' as JSON ({e})") from None
    return cls.from_dict(raw, path)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


class _Affine(nn.Module):
  """``einsum(equation, x, kernel) + bias`` with logically named ``kernel`` and ``bias`` variables."""

  equation: str
  kernel_shape: tuple[int, ...]
  kernel_axes: tuple[str | None, ...]
  bias_shape: tuple[int, ...]
  bias_axes: tuple[str | None, ...]
  collection: str
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = variable(self, self.collection, "kernel", nn.initializers.normal(0.02), self.kernel_shape,
                      self.kernel_axes)
    bias = variable(self, self.collection, "bias", nn.initializers.zeros, self.bias_shape, self.bias_axes)
    return jnp.einsum(self.equation, x.astype(self.dtype), kernel.astype(self.dtype)) + bias.astype(self.dtype)


class _Layer(nn.Module):
  """One post-LN BERT layer: ``x (B, M, H)`` with valid ``lengths (B,)`` → ``(B, M, H)``."""

  config: BertConfig
  collection: str
  attention_impl: str
  dtype: Any

  @nn.compact
  def __call__(self, x: jax.Array, lengths: jax.Array) -> jax.Array:
    c, col, dt = self.config, self.collection, self.dtype
    h, dh, d, i = c.num_attention_heads, c.head_dim, c.hidden_size, c.intermediate_size
    q, k, v = (_Affine("bmd,dhe->bmhe", (d, h, dh), ("embed", "heads", "kv"), (h, dh), ("heads", "kv"), col, dt,
                       name=name)(x) for name in ("query", "key", "value"))
    a = attention(q, k, v, q_lengths=lengths, kv_lengths=lengths, impl=self.attention_impl)
    a = _Affine("bmhe,hed->bmd", (h, dh, d), ("heads", "kv", "embed"), (d,), ("embed",), col, dt,
                name="attention_out")(a)
    x = TwoPassLayerNorm(c.layer_norm_eps, col, dt, name="attention_norm")(x + a)
    f = _Affine("bmd,di->bmi", (d, i), ("embed", "mlp"), (i,), ("mlp",), col, dt, name="intermediate")(x)
    f = nn.with_logical_constraint(f, ("act_batch", "act_length", "act_mlp"))
    f = jax.nn.gelu(f, approximate=ACTIVATIONS[c.hidden_act])
    f = _Affine("bmi,id->bmd", (i, d), ("mlp", "embed"), (d,), ("embed",), col, dt, name="output")(f)
    x = TwoPassLayerNorm(c.layer_norm_eps, col, dt, name="output_norm")(x + f)
    return nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))


class _Embeddings(nn.Module):
  """``ids (B, M)`` → ``LN(word[ids] + position[:M] + token_type[0]) (B, M, H)``."""

  config: BertConfig
  collection: str
  dtype: Any

  @nn.compact
  def __call__(self, ids: jax.Array) -> jax.Array:
    c, col = self.config, self.collection
    init = nn.initializers.normal(0.02)
    word = variable(self, col, "word", init, (c.vocab_size, c.hidden_size), ("vocab", "embed"))
    position = variable(self, col, "position", init, (c.max_position_embeddings, c.hidden_size), (None, "embed"))
    token_type = variable(self, col, "token_type", init, (c.type_vocab_size, c.hidden_size), (None, "embed"))
    x = jnp.take(word, ids, axis=0) + position[:ids.shape[1]] + token_type[0]
    return TwoPassLayerNorm(c.layer_norm_eps, col, self.dtype, name="norm")(x)


class Bert(nn.Module):
  """The BERT encoder: ``ids (B, M) int32`` with valid ``lengths (B,)`` → ``hidden (B, M, H)``, zero on padded
  positions (``M ≤ max_position_embeddings``). Token type 0 everywhere (what a single tokenized string gets)."""

  config: BertConfig
  collection: str = "params"
  attention_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids: jax.Array, lengths: jax.Array) -> jax.Array:
    c, col = self.config, self.collection
    m = ids.shape[1]
    if m > c.max_position_embeddings:
      raise UserError(f"a BERT prompt of {m} tokens exceeds the model's max_position_embeddings "
                      f"{c.max_position_embeddings}; lower config.data.max_prompt_tokens")
    x = _Embeddings(c, col, self.dtype, name="embeddings")(ids)
    for i in range(c.num_hidden_layers):
      x = _Layer(c, col, self.attention_impl, self.dtype, name=f"layer_{i}")(x, lengths)
    return jnp.where((jnp.arange(m)[None, :] < lengths[:, None])[..., None], x, 0.0).astype(self.dtype)


FAMILY = "bert"


def to_config(config: BertConfig) -> dict[str, Any]:
  return config.to_dict()


def from_config(config: dict[str, Any], **runtime: Any) -> Bert:
  """The encoder of a converted BERT directory's config (``model.json``); ``runtime`` sets ``attention_impl`` or
  ``dtype``."""
  return Bert(BertConfig(**config), **runtime)


def example_inputs(model: Bert) -> tuple[jax.Array, ...]:
  return jnp.zeros((1, 1), jnp.int32), jnp.ones((1,), jnp.int32)
