"""PromptASR: a transducer whose speech encoder cross-attends to a text prompt (Yang et al., ICASSP 2024).

16 kHz wave → 80-bin log-mel at 100 Hz (utterance mean/variance normalised over valid frames) → convolutional
subsampling ×4 (25 Hz) → sinusoidal positions → Conformer layers, each (``cross_attention_layers``) with a
cross-attention sub-layer to the text memory → ``encoder_out (B, T, D)``.

The text memory encodes ``style_prompt [SEP] content_prompt`` (UTF-8 bytes, :mod:`audiojax.text.prompts`) with a
trainable transformer; a learned *style indicator* vector is added on the style span. Memory dropout zeroes a whole
utterance's memory with probability ``memory_dropout`` during training; because the cross-attention key/value/output
projections are bias-free, a zero memory is exactly "no prompt".

``text_encoder="bert"`` replaces the byte encoder with the recipe's: a frozen pretrained BERT
(:mod:`audiojax.models.bert`; ``bert`` gives its config) reading WordPiece ids of ``[CLS] style [SEP] content [SEP]``
(:mod:`audiojax.text.wordpiece`), its weights in the non-trainable ``"frozen"`` variable collection (optimizers see
only ``"params"``; its output is under ``stop_gradient``), plus the trainable style indicator on its output.

Heads: a stateless predictor (embedding of the last ``context_size`` tokens → Dense → ReLU), a joiner
(``tanh(enc_proj(enc) + pred_proj(pred)) → Dense(V)``) for the RNN-T loss, the two vocabulary projections of the
pruned loss's "simple" additive joiner, and a CTC head, all over one BPE vocabulary whose id 0 is the blank.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.audio import augment, features
from audiojax.errors import UserError
from audiojax.models import bert as bert_lib
from audiojax.models import check_fields
from audiojax.nn.conformer import ConformerBlock
from audiojax.nn.embeddings import sinusoidal_positions
from audiojax.nn.layers import dense, length_mask
from audiojax.nn.norms import layer_norm
from audiojax.nn.transformer import EncoderBlock

SAMPLE_RATE = 16000
HOP = 160  # 10 ms frames
N_MELS = 80
SUBSAMPLING = 4
FROZEN = "frozen"  # variable collection of the pretrained text encoder: never trained, but checkpointed and sharded
TEXT_ENCODERS = ("bytes", "bert")

VARIANTS = {
    # a CPU-sized model (3.87 M parameters with a 500-piece vocabulary) for the offline corpus and the tests
    "tiny": dict(embed_dim=144, num_heads=4, num_layers=4, ff_dim=576, conv_kernel=15, text_dim=144,
                 text_layers=2, text_heads=4, pred_dim=256, joiner_dim=256),
    "small": dict(embed_dim=256, num_heads=4, num_layers=12, ff_dim=1024, conv_kernel=31, text_dim=256,
                  text_layers=4, text_heads=4, pred_dim=512, joiner_dim=512),
    # the recipe's scale (its Zipformer2 is ≈ 66 M parameters plus a frozen BERT-base)
    "base": dict(embed_dim=512, num_heads=8, num_layers=16, ff_dim=2048, conv_kernel=31, text_dim=512,
                 text_layers=6, text_heads=8, pred_dim=512, joiner_dim=512),
}


def log_mel(wave: jax.Array) -> jax.Array:
  """``wave (B, L)`` → natural-log 80-bin mel ``(B, T, 80)``, ``T = 1 + L // 160`` (25 ms Hann window, 10 ms hop).

  Centred frames are zero-padded (not reflected), so a zero-padded batch member gives the frames it gives alone."""
  mel = features.mel_spectrogram(wave, sample_rate=SAMPLE_RATE, n_fft=512, win_length=400, hop_length=HOP,
                                 n_mels=N_MELS, f_min=20.0, f_max=7600.0, power=2.0, mel_scale="htk",
                                 pad_mode="constant")
  return jnp.swapaxes(features.log_clamp(mel, 1e-10), 1, 2)


def feature_lengths(wave_lengths: jax.Array) -> jax.Array:
  """Valid mel frames for ``wave_lengths (B,)`` samples."""
  return 1 + wave_lengths // HOP


def subsampled_lengths(frame_lengths: jax.Array) -> jax.Array:
  """Valid encoder frames after two stride-2 convolutions (padding 1, kernel 3): ``ceil(ceil(T / 2) / 2)``."""
  return (((frame_lengths + 1) // 2) + 1) // 2


def normalize(feats: jax.Array, lengths: jax.Array) -> jax.Array:
  """Per-utterance, per-bin mean/variance normalisation over the valid frames; padded frames become 0."""
  mask = length_mask(lengths, feats.shape[1])[..., None]
  count = jnp.maximum(lengths, 1)[:, None, None].astype(feats.dtype)
  mean = jnp.sum(jnp.where(mask, feats, 0.0), axis=1, keepdims=True) / count
  var = jnp.sum(jnp.where(mask, jnp.square(feats - mean), 0.0), axis=1, keepdims=True) / count
  return jnp.where(mask, (feats - mean) * jax.lax.rsqrt(var + 1e-5), 0.0)


class Subsampling(nn.Module):
  """Two 3×3 stride-2 convolutions (ReLU) over (time, mel) then a Dense: ``feats (B, T, 80)`` with valid
  ``lengths (B,)`` → ``(B, ceil(T/4), D)``; frames past each length are zeroed between the convolutions, as the
  zero padding of an utterance on its own would be."""

  embed_dim: int
  channels: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, feats: jax.Array, lengths: jax.Array) -> jax.Array:
    h = feats[..., None]
    for i in range(2):
      if i:
        lengths = (lengths + 1) // 2
        h = jnp.where(length_mask(lengths, h.shape[1])[:, :, None, None], h, 0.0)
      h = nn.relu(nn.Conv(self.channels, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), dtype=self.dtype,
                          name=f"conv{i}",
                          kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                                   (None, None, None, "channels")),
                          bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("channels",)))(h))
    h = h.reshape(h.shape[0], h.shape[1], -1)
    return dense(self.embed_dim, (None, "embed"), "out", dtype=self.dtype)(h)


class PromptEncoder(nn.Module):
  """Trainable byte-level text encoder: ``ids (B, M)`` with valid ``lengths (B,)`` and ``style_lengths (B,)`` →
  memory ``(B, M, Dt)``, zero on padded positions."""

  vocab_size: int
  max_length: int
  dim: int
  num_layers: int
  num_heads: int
  attention_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids: jax.Array, lengths: jax.Array, style_lengths: jax.Array) -> jax.Array:
    m = ids.shape[1]
    if m > self.max_length:
      raise ValueError(f"prompt of {m} positions exceeds the encoder's max_length {self.max_length}")
    init = nn.initializers.normal(0.02)
    embed = nn.Embed(self.vocab_size, self.dim, dtype=self.dtype, name="embed",
                     embedding_init=nn.with_logical_partitioning(init, ("vocab", "embed")))
    pos = self.param("pos_embed", nn.with_logical_partitioning(init, (None, "embed")), (self.max_length, self.dim))
    # the recipe initialises its style indicator at 0.5
    indicator = self.param("style_indicator", nn.with_logical_partitioning(nn.initializers.constant(0.5), ("embed",)),
                           (self.dim,))
    in_style = (jnp.arange(m)[None, :] < style_lengths[:, None])[..., None]
    x = embed(ids) + pos[:m] + jnp.where(in_style, indicator, 0.0)
    for i in range(self.num_layers):
      x = EncoderBlock(self.num_heads, self.dim // self.num_heads, 4 * self.dim, norm_eps=1e-5,
                       attention_impl=self.attention_impl, dtype=self.dtype, name=f"block{i}")(x, lengths)
    x = layer_norm(1e-5, self.dtype, "norm")(x)
    return jnp.where(length_mask(lengths, m)[..., None], x, 0.0)


class BertPromptEncoder(nn.Module):
  """Frozen pretrained BERT + trainable style indicator (the recipe's): WordPiece ``ids (B, M)`` with valid
  ``lengths (B,)`` and ``style_lengths (B,)`` → memory ``(B, M, H)`` = BERT's last hidden state (no gradient) plus
  the indicator (init 0.5) on the first ``style_lengths`` positions, zero on padded positions."""

  config: bert_lib.BertConfig
  attention_impl: str = "auto"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids: jax.Array, lengths: jax.Array, style_lengths: jax.Array) -> jax.Array:
    hidden = bert_lib.Bert(self.config, collection=FROZEN, attention_impl=self.attention_impl, dtype=self.dtype,
                           name="bert")(ids, lengths)
    hidden = jax.lax.stop_gradient(hidden)
    indicator = self.param("style_indicator", nn.with_logical_partitioning(nn.initializers.constant(0.5), ("embed",)),
                           (self.config.hidden_size,))
    m = ids.shape[1]
    in_style = (jnp.arange(m)[None, :] < style_lengths[:, None])[..., None]
    x = hidden + jnp.where(in_style, indicator, 0.0).astype(hidden.dtype)
    return jnp.where(length_mask(lengths, m)[..., None], x, 0.0)


class PromptASR(nn.Module):
  """The whole model; call sub-parts through ``model.apply(variables, ..., method=...)``:

  ``encode_prompt(ids, lengths, style_lengths) → memory (B, M, Dt)``;
  ``encode_speech(wave (B, L), wave_lengths (B,), memory, memory_lengths, train) → (encoder_out (B, T, D),
  enc_lengths (B,))``; ``predictor(tokens (..., context_size)) → (..., Dp)``;
  ``joiner(enc (..., D), pred (..., Dp)) → logits (..., V)``; ``ctc_logits(encoder_out) → (B, T, V)``;
  ``simple_logits(encoder_out, pred) → (am, lm)``. ``__call__`` runs prompt + speech encoders (with memory dropout
  when training) and returns ``{"encoder_out", "enc_lengths", "ctc_logits"}``.
  """

  vocab_size: int
  embed_dim: int
  num_heads: int
  num_layers: int
  ff_dim: int
  conv_kernel: int
  text_dim: int
  text_layers: int
  text_heads: int
  pred_dim: int
  joiner_dim: int
  prompt_vocab_size: int = 258
  max_prompt_length: int = 512
  cross_attention_layers: tuple[int, ...] | None = None  # None: every layer (the recipe's --memory-layer 0)
  context_size: int = 2
  dropout: float = 0.1
  memory_dropout: float = 0.05
  spec_augment: bool = True
  attention_impl: str = "auto"
  dtype: Any = jnp.float32
  text_encoder: str = "bytes"  # "bytes": the trainable byte encoder; "bert": frozen pretrained BERT (needs `bert`)
  bert: bert_lib.BertConfig | None = None

  def setup(self):
    crossing = set(range(self.num_layers) if self.cross_attention_layers is None else self.cross_attention_layers)
    self.subsampling = Subsampling(self.embed_dim, dtype=self.dtype)
    self.layers = [ConformerBlock(self.num_heads, self.ff_dim, self.conv_kernel, cross_attention=i in crossing,
                                  dropout=self.dropout, attention_impl=self.attention_impl, dtype=self.dtype,
                                  name=f"layer{i}") for i in range(self.num_layers)]
    if self.text_encoder == "bytes":
      self.prompt_encoder = PromptEncoder(self.prompt_vocab_size, self.max_prompt_length, self.text_dim,
                                          self.text_layers, self.text_heads, self.attention_impl, self.dtype)
    elif self.text_encoder == "bert" and self.bert is not None:
      self.prompt_encoder = BertPromptEncoder(self.bert, self.attention_impl, self.dtype)
    else:
      raise UserError(f"PromptASR text_encoder '{self.text_encoder}' needs to be one of {TEXT_ENCODERS}; 'bert' also "
                      f"needs the converted BERT's config (config.model.bert_dir)")
    self.pred_embed = nn.Embed(self.vocab_size, self.pred_dim, dtype=self.dtype,
                               embedding_init=nn.with_logical_partitioning(nn.initializers.normal(0.02),
                                                                           ("vocab", "embed")))
    self.pred_proj = dense(self.pred_dim, (None, "embed"), "pred_proj", dtype=self.dtype)
    self.joiner_enc = dense(self.joiner_dim, ("embed", "mlp"), "joiner_enc", dtype=self.dtype)
    self.joiner_pred = dense(self.joiner_dim, ("embed", "mlp"), "joiner_pred", use_bias=False, dtype=self.dtype)
    self.joiner_out = dense(self.vocab_size, ("mlp", "vocab"), "joiner_out", dtype=self.dtype)
    self.ctc_head = dense(self.vocab_size, ("embed", "vocab"), "ctc_head", dtype=self.dtype)
    # pruned RNN-T: the "simple" additive joiner's projections that choose which lattice cells the joiner sees
    self.simple_am_proj = dense(self.vocab_size, ("embed", "vocab"), "simple_am_proj", dtype=self.dtype)
    self.simple_lm_proj = dense(self.vocab_size, ("embed", "vocab"), "simple_lm_proj", dtype=self.dtype)
    self.input_dropout = nn.Dropout(self.dropout)

  def encode_prompt(self, ids: jax.Array, lengths: jax.Array, style_lengths: jax.Array) -> jax.Array:
    return self.prompt_encoder(ids, lengths, style_lengths)

  def encode_speech(self, wave: jax.Array, wave_lengths: jax.Array, memory: jax.Array | None = None,
                    memory_lengths: jax.Array | None = None, train: bool = False) -> tuple[jax.Array, jax.Array]:
    frame_lengths = feature_lengths(wave_lengths)
    wave = jnp.where(length_mask(wave_lengths, wave.shape[1]), wave.astype(jnp.float32), 0.0)
    feats = normalize(log_mel(wave), frame_lengths)
    if train and self.spec_augment:
      feats = augment.SpecAugment()(feats, frame_lengths, self.make_rng("dropout"))
    x = self.subsampling(feats.astype(self.dtype), frame_lengths)
    lengths = subsampled_lengths(frame_lengths)
    x = x + sinusoidal_positions(x.shape[1], self.embed_dim).astype(x.dtype)
    x = self.input_dropout(x, deterministic=not train)
    for layer in self.layers:
      x = layer(x, lengths, memory, memory_lengths, train)
    return jnp.where(length_mask(lengths, x.shape[1])[..., None], x, 0.0), lengths

  def predictor(self, tokens: jax.Array) -> jax.Array:
    e = self.pred_embed(tokens)
    return nn.relu(self.pred_proj(e.reshape(*e.shape[:-2], -1)))

  def joiner(self, enc: jax.Array, pred: jax.Array) -> jax.Array:
    return self.joiner_out(jnp.tanh(self.joiner_enc(enc) + self.joiner_pred(pred)))

  def ctc_logits(self, encoder_out: jax.Array) -> jax.Array:
    return self.ctc_head(encoder_out)

  def simple_logits(self, encoder_out: jax.Array, pred: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(am (B, T, V), lm (B, U+1, V))`` for the pruned RNN-T loss's simple (additive) joiner."""
    return self.simple_am_proj(encoder_out), self.simple_lm_proj(pred)

  def __call__(self, wave: jax.Array, wave_lengths: jax.Array, prompt_ids: jax.Array, prompt_lengths: jax.Array,
               style_lengths: jax.Array, train: bool = False) -> dict[str, jax.Array]:
    memory = self.encode_prompt(prompt_ids, prompt_lengths, style_lengths)
    if train and self.memory_dropout > 0:
      keep = jax.random.bernoulli(self.make_rng("dropout"), 1.0 - self.memory_dropout, (memory.shape[0], 1, 1))
      memory = jnp.where(keep, memory, 0.0)
    encoder_out, enc_lengths = self.encode_speech(wave, wave_lengths, memory, prompt_lengths, train)
    # touch every head once so `init` creates all parameters
    pred = self.predictor(jnp.zeros((wave.shape[0], 1, self.context_size), jnp.int32))
    _ = self.joiner(encoder_out[:, :1], pred), self.simple_logits(encoder_out[:, :1], pred)
    return {"encoder_out": encoder_out, "enc_lengths": enc_lengths, "ctc_logits": self.ctc_logits(encoder_out)}


def Model(variant: str = "tiny", *, vocab_size: int, **overrides: Any) -> PromptASR:
  """A named variant (``tiny``, ``small``, ``base``) with optional field overrides."""
  if variant not in VARIANTS:
    raise UserError(f"unknown PromptASR variant '{variant}' (config.model.variant); choose one of "
                    f"{sorted(VARIANTS)}")
  check_fields(PromptASR, overrides)
  fields = {**VARIANTS[variant], **overrides}
  if "cross_attention_layers" in fields and fields["cross_attention_layers"] is not None:
    fields["cross_attention_layers"] = tuple(int(i) for i in fields["cross_attention_layers"])
  return PromptASR(vocab_size=vocab_size, **fields)


FAMILY = "prompt_asr"


def from_config(config: dict[str, Any], vocab_size: int, **runtime: Any) -> PromptASR:
  """The model of a model directory's config (``variant``, ``overrides``, and ``text_encoder="bert"`` with the
  BERT's config) over the tokenizer's ``vocab_size``; ``runtime`` sets ``attention_impl`` or ``dtype``."""
  overrides = dict(config.get("overrides", {}))
  if config.get("text_encoder") == "bert":
    overrides.update(text_encoder="bert", bert=bert_lib.BertConfig(**config["bert"]))
  return Model(config["variant"], vocab_size=vocab_size, **overrides, **runtime)


def example_inputs(model: PromptASR, max_samples: int, prompt_length: int) -> tuple[jax.Array, ...]:
  """``init`` inputs for waves of ``max_samples`` and prompts of ``prompt_length`` positions (batch 1)."""
  one = jnp.ones((1,), jnp.int32)
  return (jnp.zeros((1, max_samples)), one * max_samples, jnp.zeros((1, prompt_length), jnp.int32), one, one)
