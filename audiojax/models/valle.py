"""VALL-E (Wang et al. 2023, "Neural Codec Language Models are Zero-Shot Text to Speech Synthesizers") with VALL-E X's
language IDs (Zhang et al. 2023): two transformers over a codec's tokens, conditioned on phonemes.

Sequences are **packed**: example ``b`` holds its ``text_lengths[b]`` phonemes (the acoustic prompt's transcript then
the text to say) at positions ``0 .. t_b - 1`` and its audio right after them, up to ``lengths[b]``; the rest is
padding. Text and audio have their own sinusoidal positions (each segment counts from 0), scaled by a learned
factor per segment; a language embedding is added to every phoneme (the prompt's language on its transcript, the
target's on the text).

- **AR decoder** (``ar``): codebook 1. Its audio is ``BOS, c_1 .. c_T`` (the prompt's codes continued by the
  target's) and it predicts ``c_1 .. c_T, EOS`` (``EOS = bins``, ``BOS = bins + 1``). Attention is a prefix LM:
  phonemes see each other, audio sees every phoneme and the audio before it. :meth:`Valle.prefill` and
  :meth:`Valle.decode_step` run it with a KV cache (``(k, v)`` per layer, ``(B, S, heads, head_dim)``).
- **NAR decoder** (``nar``): codebook ``j ≥ 2`` (``stage = j - 1``, 0-based) of the target given codebooks ``< j``,
  all at once, bidirectional. An audio position sums one embedding per codebook: all ``n_q`` on the first
  ``prompt_frames[b]`` frames (the acoustic prompt), those below the stage on the target. Both norms of every block
  and the final norm are adaptive LayerNorms of the stage's embedding, and the stage's output layer is the
  transposed embedding table of the codebook it predicts (tied weights).

Variants (each decoder; ``text_vocab``, ``num_languages``, ``n_q`` and ``bins`` come from the data and the codec):

======== ====== ====== ====== ======= =========
variant  depth  width  heads  mlp     dropout
======== ====== ====== ====== ======= =========
tiny     3      192    3      768     0.0
small    6      512    8      2048    0.1
base     12     1024   16     4096    0.1       (the paper's)
======== ====== ====== ====== ======= =========
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax.errors import UserError
from audiojax.models import check_fields, count_params  # noqa: F401 (count_params: part of the model API)
from audiojax.nn.embeddings import sinusoidal_at
from audiojax.nn.layers import dense, param
from audiojax.nn.norms import AdaptiveLayerNorm, layer_norm
from audiojax.nn.transformer import DecoderBlock

FAMILY = "valle"

VARIANTS = {
    "tiny": dict(depth=3, width=192, heads=3, mlp_dim=768, dropout=0.0),
    "small": dict(depth=6, width=512, heads=8, mlp_dim=2048, dropout=0.1),
    "base": dict(depth=12, width=1024, heads=16, mlp_dim=4096, dropout=0.1),
}
EMBED_INIT = nn.initializers.normal(0.02)


def eos_id(bins: int) -> int:
  return bins


def bos_id(bins: int) -> int:
  return bins + 1


class _Decoder(nn.Module):
  """What both decoders share: phoneme and language embeddings, segment positions, the block stack."""

  text_vocab: int
  num_languages: int
  bins: int
  depth: int
  width: int
  heads: int
  mlp_dim: int
  dropout: float
  adaptive: bool
  attention_impl: str
  dtype: Any

  def setup(self):
    self.text_embed = param(self, "text_embed", EMBED_INIT, (self.text_vocab, self.width), ("vocab", "embed"))
    self.language_embed = param(self, "language_embed", EMBED_INIT, (self.num_languages, self.width),
                                (None, "embed"))
    self.position_scale = param(self, "position_scale", nn.initializers.ones, (2,), (None,))  # text, audio
    self.blocks = [DecoderBlock(self.heads, self.width // self.heads, self.mlp_dim, self.dropout, self.adaptive,
                                attention_impl=self.attention_impl, dtype=self.dtype)
                   for _ in range(self.depth)]
    self.final_norm = (AdaptiveLayerNorm(1e-5, self.dtype) if self.adaptive else layer_norm(1e-5, self.dtype, None))

  def text_part(self, text: jax.Array, languages: jax.Array, positions: jax.Array) -> jax.Array:
    """Phoneme ``text``, ``languages`` and positions ``(B, S)`` → ``(B, S, D)`` float32."""
    x = jnp.take(self.text_embed, jnp.clip(text, 0, self.text_vocab - 1), axis=0)
    x = x + jnp.take(self.language_embed, jnp.clip(languages, 0, self.num_languages - 1), axis=0)
    return x + self.position_scale[0] * sinusoidal_at(positions, self.width)

  def audio_position(self, positions: jax.Array) -> jax.Array:
    return self.position_scale[1] * sinusoidal_at(positions, self.width)

  def embed_packed(self, text: jax.Array, languages: jax.Array, audio: jax.Array, text_lengths: jax.Array
                   ) -> jax.Array:
    """The packed input ``(B, S, D)``: the phoneme part where ``position < text_lengths``, ``audio (B, S, D)`` (its
    positions added here) after it."""
    s = text.shape[1]
    pos = jnp.broadcast_to(jnp.arange(s), text.shape)
    is_text = pos < text_lengths[:, None]
    audio = audio + self.audio_position(jnp.maximum(pos - text_lengths[:, None], 0))
    x = jnp.where(is_text[..., None], self.text_part(text, languages, pos), audio)
    return nn.with_logical_constraint(x.astype(self.dtype), ("act_batch", "act_length", "act_embed"))

  def stack(self, x: jax.Array, lengths: jax.Array, cond: jax.Array | None = None, *, causal: bool = False,
            prefix_lengths: jax.Array | None = None, return_kv: bool = False, deterministic: bool = True) -> Any:
    kvs = []
    for block in self.blocks:
      x = block(x, lengths, cond=cond, causal=causal, prefix_lengths=prefix_lengths, return_kv=return_kv,
                deterministic=deterministic)
      if return_kv:
        x, kv = x
        kvs.append(kv)
    x = self.final_norm(x, cond) if self.adaptive else self.final_norm(x)
    return (x, kvs) if return_kv else x


class ArDecoder(_Decoder):
  """Codebook 1, autoregressive (see the module docstring). Logits over ``bins + 1`` tokens (codes and EOS)."""

  def setup(self):
    super().setup()
    self.audio_embed = param(self, "audio_embed", EMBED_INIT, (self.bins + 2, self.width), ("vocab", "embed"))
    self.head = dense(self.bins + 1, ("embed", "vocab"), None, dtype=self.dtype)

  def _audio(self, audio: jax.Array) -> jax.Array:
    return jnp.take(self.audio_embed, jnp.clip(audio, 0, self.bins + 1), axis=0)

  def __call__(self, text: jax.Array, languages: jax.Array, audio: jax.Array, text_lengths: jax.Array,
               lengths: jax.Array, deterministic: bool = True) -> jax.Array:
    """Packed ``text``, ``languages``, ``audio`` (BOS then codebook-1 codes) ``(B, S)`` → logits ``(B, S, bins+1)``:
    row ``p`` predicts the audio token at ``p + 1`` (float32)."""
    x = self.embed_packed(text, languages, self._audio(audio), text_lengths)
    x = self.stack(x, lengths, causal=True, prefix_lengths=text_lengths, deterministic=deterministic)
    return self.head(x).astype(jnp.float32)

  def prefill(self, text: jax.Array, languages: jax.Array, audio: jax.Array, text_lengths: jax.Array,
              lengths: jax.Array, cache_size: int) -> tuple[jax.Array, list[tuple[jax.Array, jax.Array]]]:
    """The prompt's pass: logits ``(B, bins+1)`` at each example's last valid position and the KV caches
    ``(B, cache_size, heads, head_dim)`` of every layer, holding the prompt's ``lengths`` positions."""
    x = self.embed_packed(text, languages, self._audio(audio), text_lengths)
    x, kvs = self.stack(x, lengths, causal=True, prefix_lengths=text_lengths, return_kv=True)
    last = jnp.take_along_axis(x, (lengths - 1)[:, None, None], axis=1)[:, 0]
    pad = ((0, 0), (0, cache_size - text.shape[1]), (0, 0), (0, 0))
    caches = [(jnp.pad(k, pad), jnp.pad(v, pad)) for k, v in kvs]
    return self.head(last).astype(jnp.float32), caches

  def decode_step(self, token: jax.Array, caches: list[tuple[jax.Array, jax.Array]], text_lengths: jax.Array,
                  lengths: jax.Array) -> tuple[jax.Array, list[tuple[jax.Array, jax.Array]]]:
    """One new audio ``token (B,)`` at position ``lengths`` (the valid positions so far) → logits ``(B, bins+1)``
    for the next and the caches with it written."""
    x = self._audio(token[:, None]) + self.audio_position((lengths - text_lengths)[:, None])
    x = x.astype(self.dtype)
    new_caches = []
    for block, (k, v) in zip(self.blocks, caches):
      x, kv = block(x, cache=(k, v, lengths))
      new_caches.append(kv)
    return self.head(self.final_norm(x)[:, 0]).astype(jnp.float32), new_caches


class NarDecoder(_Decoder):
  """Codebooks 2..n_q, non-autoregressive (see the module docstring). Logits over ``bins`` codes."""

  n_q: int = 8

  def setup(self):
    super().setup()
    self.code_embed = param(self, "code_embed", EMBED_INIT, (self.n_q, self.bins, self.width),
                            (None, "vocab", "embed"))
    self.stage_embed = param(self, "stage_embed", EMBED_INIT, (self.n_q, self.width), (None, "embed"))

  def __call__(self, text: jax.Array, languages: jax.Array, codes: jax.Array, text_lengths: jax.Array,
               prompt_frames: jax.Array, lengths: jax.Array, stage: jax.Array, deterministic: bool = True
               ) -> jax.Array:
    """Packed ``text``, ``languages`` ``(B, S)``, ``codes (B, S, n_q)`` (audio frame ``a`` at position ``t_b + a``),
    ``stage (B,)`` in ``1 .. n_q - 1`` → logits ``(B, S, bins)`` of codebook ``stage`` (float32)."""
    s = text.shape[1]
    frame = jnp.arange(s)[None, :] - text_lengths[:, None]  # (B, S): audio frame index (negative on text)
    in_prompt = frame < prompt_frames[:, None]
    used = jnp.where(in_prompt[..., None], True, jnp.arange(self.n_q)[None, None, :] < stage[:, None, None])
    codes = jnp.clip(codes, 0, self.bins - 1)
    tables = jnp.stack([jnp.take(self.code_embed[q], codes[..., q], axis=0) for q in range(self.n_q)], axis=2)
    audio = jnp.einsum("bsqd,bsq->bsd", tables, used.astype(tables.dtype))  # the used codebooks' embeddings summed
    cond = jnp.take(self.stage_embed, stage, axis=0)
    x = self.stack(self.embed_packed(text, languages, audio, text_lengths), lengths, cond, deterministic=deterministic)
    table = jnp.take(self.code_embed, stage, axis=0)  # (B, bins, D): the predicted codebook's embeddings
    return jnp.einsum("bsd,bkd->bsk", x, table.astype(x.dtype)).astype(jnp.float32)


class Valle(nn.Module):
  """The AR and NAR decoders of one VALL-E (X) model (see the module docstring)."""

  text_vocab: int = 128
  num_languages: int = 4
  n_q: int = 8
  bins: int = 1024
  depth: int = 3
  width: int = 192
  heads: int = 3
  mlp_dim: int = 768
  dropout: float = 0.0
  attention_impl: str = "xla"
  dtype: Any = jnp.float32

  def setup(self):
    if self.width % self.heads:
      raise UserError(f"VALL-E width {self.width} must be a multiple of heads {self.heads}; fix config.model")
    common = dict(text_vocab=self.text_vocab, num_languages=self.num_languages, bins=self.bins, depth=self.depth,
                  width=self.width, heads=self.heads, mlp_dim=self.mlp_dim, dropout=self.dropout,
                  attention_impl=self.attention_impl, dtype=self.dtype)
    self.ar = ArDecoder(**common, adaptive=False)
    self.nar = NarDecoder(**common, adaptive=True, n_q=self.n_q)

  def __call__(self, text, languages, audio, codes, text_lengths, prompt_frames, lengths, stage,
               deterministic: bool = True) -> tuple[jax.Array, jax.Array]:
    """Both decoders on one packed batch (see :meth:`ArDecoder.__call__`, :meth:`NarDecoder.__call__`; the AR's
    ``lengths`` are one more than the NAR's, for BOS) → ``(ar_logits, nar_logits)``."""
    return (self.ar(text, languages, audio, text_lengths, lengths + 1, deterministic),
            self.nar(text, languages, codes, text_lengths, prompt_frames, lengths, stage, deterministic))

  def ar_logits(self, *args, **kwargs) -> jax.Array:
    return self.ar(*args, **kwargs)

  def nar_logits(self, *args, **kwargs) -> jax.Array:
    return self.nar(*args, **kwargs)

  def prefill(self, *args, **kwargs):
    return self.ar.prefill(*args, **kwargs)

  def decode_step(self, *args, **kwargs):
    return self.ar.decode_step(*args, **kwargs)


def Model(variant: str = "tiny", **overrides: Any) -> Valle:  # noqa: N802 (factory)
  """A named variant (``tiny | small | base``); ``overrides`` replace any field (``text_vocab``, ``n_q``...)."""
  if variant not in VARIANTS:
    raise UserError(f"unknown VALL-E variant '{variant}' (config.model.variant); choose one of {sorted(VARIANTS)}")
  check_fields(Valle, overrides)
  return Valle(**{**VARIANTS[variant], **overrides})


CONFIG_KINDS = {f: int for f in ("text_vocab", "num_languages", "n_q", "bins", "depth", "width", "heads",
                                 "mlp_dim")} | {"dropout": float}


def to_config(model: Valle) -> dict[str, Any]:
  """The constructor fields a model directory records (``dtype`` and ``attention_impl`` are chosen at load)."""
  return {f: getattr(model, f) for f in CONFIG_KINDS}


def from_config(config: dict[str, Any], **runtime: Any) -> Valle:
  """The model of a model directory's config; ``runtime`` sets ``dtype`` / ``attention_impl``. A missing, unknown or
  wrongly typed key is a UserError."""
  problems = [f"unknown key '{k}'" for k in sorted(set(config) - set(CONFIG_KINDS))]
  problems += [f"no '{k}'" for k in CONFIG_KINDS if k not in config]
  problems += [f"a wrongly typed '{k}'" for k, kind in CONFIG_KINDS.items()
               if k in config and (isinstance(config[k], bool) or not isinstance(config[k], (int, kind)))]
  if problems:
    raise UserError(f"a VALL-E model.json config has {', '.join(problems)}; export the model again")
  return Valle(**config, **runtime)


def example_inputs(model: Valle, batch: int = 1, length: int = 8) -> tuple[jax.Array, ...]:
  """Inputs for ``init``: ``batch`` packed rows of ``length`` (3 phonemes, the rest audio; 2 prompt frames)."""
  zeros = jnp.zeros((batch, length), jnp.int32)
  full = jnp.full((batch,), length - 1, jnp.int32)
  return (zeros, zeros, zeros, jnp.zeros((batch, length, model.n_q), jnp.int32), jnp.full((batch,), 3, jnp.int32),
          jnp.full((batch,), 2, jnp.int32), full, jnp.ones((batch,), jnp.int32))


def pack(rows: list[dict[str, np.ndarray]], size: int, bins: int) -> dict[str, np.ndarray]:
  """Host-side packing of examples into the models' inputs (see the module docstring).

  Each row: ``phonemes (Lt,)`` and ``languages (Lt,)`` (the prompt's transcript then the text), ``codes (T, n_q)``
  (the acoustic prompt's frames, then the target's when training) and ``prompt_frames`` (how many of the ``T`` are
  the prompt). ``size`` must hold ``Lt + T + 1`` of every row.

  Returns ``text``, ``languages``, ``audio`` (AR input: BOS then codebook 1), ``targets`` (AR targets: codebook 1
  then EOS, -1 elsewhere) ``(B, size)`` int32, ``codes (B, size, n_q)`` (NAR input: frame ``a`` at ``Lt + a``),
  ``text_lengths``, ``prompt_frames``, ``lengths`` (NAR: ``Lt + T``) and ``ar_lengths`` (``Lt + T + 1``) ``(B,)``.
  """
  n_q = rows[0]["codes"].shape[1]
  out = {"text": np.zeros((len(rows), size), np.int32), "languages": np.zeros((len(rows), size), np.int32),
         "audio": np.zeros((len(rows), size), np.int32), "targets": np.full((len(rows), size), -1, np.int32),
         "codes": np.zeros((len(rows), size, n_q), np.int32)}
  lengths = {k: np.zeros(len(rows), np.int32) for k in ("text_lengths", "prompt_frames", "lengths", "ar_lengths")}
  for i, row in enumerate(rows):
    t, frames = len(row["phonemes"]), row["codes"].shape[0]
    if t + frames + 1 > size:
      raise UserError(f"a VALL-E example of {t} phonemes and {frames} frames does not fit {size} positions; raise "
                      f"the length bucket (config.data.max_positions)")
    out["text"][i, :t], out["languages"][i, :t] = row["phonemes"], row["languages"]
    first = row["codes"][:, 0]
    out["audio"][i, t] = bos_id(bins)
    out["audio"][i, t + 1:t + 1 + frames] = first
    out["targets"][i, t:t + frames] = first
    out["targets"][i, t + frames] = eos_id(bins)
    out["codes"][i, t:t + frames] = row["codes"]
    lengths["text_lengths"][i], lengths["prompt_frames"][i] = t, row["prompt_frames"]
    lengths["lengths"][i], lengths["ar_lengths"][i] = t + frames, t + frames + 1
  return out | lengths
