"""Prompt-conditioned speech recognition (PromptASR): RNN-T + auxiliary CTC training, greedy-decoding evaluation.

Training batches::

  wave (B, S) float32, wave_lengths (B,), labels (B, U) int32 (BPE ids, 0-padded), label_lengths (B,),
  prompt_ids (B, M) int32 (bytes of ``style [SEP] content``), prompt_lengths (B,), style_lengths (B,)

With ``config.model.text_encoder = "bert"`` the prompt encoder is a frozen pretrained BERT converted into
``config.model.bert_dir`` (``python -m audiojax convert bert``), and ``prompt_ids`` are its WordPiece ids of
``[CLS] style [SEP] content [SEP]``, ``M = config.data.max_prompt_tokens``.

``S`` is ``config.data.max_seconds`` (one compilation), or, with ``config.data.bucket_seconds``, the smallest bucket
that holds the batch's longest utterance: batches are then drawn from runs of similar-length utterances
(:class:`~audiojax.data.pipeline.LengthBucketedBatches`) and the step compiles once per bucket. Padding is inert
(the encoder masks it), so buckets change only the speed and which utterances share a batch.

Each utterance's target style, style prompt and content prompt are drawn as the recipe does
(:func:`audiojax.text.prompts.sample_training_text`, then :func:`~audiojax.text.prompts.perturb_batch` over the
batch), from a seed-derived generator, so the stream is a pure function of the seed and resumes exactly. Two
additions of ours give the content path prompt-decidable targets: ``config.prompts.respell_prob`` respells rare words
alike in transcript and prompts, and ``config.prompts.twin_share`` turns a share of each batch into twin pairs, one
recording twice with its rare word spelled two ways and a prompt naming each twin's spelling
(:meth:`TrainingBatch._twins`). With ``config.loss.prompt_guide_scale`` batches also carry ``prompt_targets (B, M)``
bool, the prompt bytes of each row's rare words, and the loss pulls the first ``loss.prompt_guide_heads`` heads of
every cross-attention toward them (:mod:`audiojax.objectives.prompt_guide`). With ``loss.prompt_guide_frames`` they
carry ``(B, U, M)``, per label token the prompt bytes of the rare-word letters it spells, and each step's CTC
alignment of the labels turns them into per-frame targets.
``config.data.speed_factors`` plays each training utterance at a factor drawn from them (Kaldi's speed perturbation,
:mod:`audiojax.audio.speed`), among those that keep it within ``max_seconds``.

Evaluation decodes the eval split under each prompt condition of ``config.eval.conditions``
(``"STYLE/STYLE_SOURCE/CONTENT"``: a style of :data:`audiojax.text.styles.STYLES`; ``canonical`` (the fixed style
sentence) or ``example`` (a snippet of the preceding text rendered in the style); ``pre_text``, ``none`` or
``context`` (a biasing list: the utterance's rare words among distractors)) and reports, per condition: normalised
WER, in-style WER, style compliance and rare-word recall.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from typing import Any, Callable

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from audiojax import paths
from audiojax.audio import speed
from audiojax.audio.io import from_pcm16
from audiojax.convert import bert as bert_dirs
from audiojax.data import builders, pipeline
from audiojax.decoding import DECODERS
from audiojax.decoding.transducer import greedy_scan
from audiojax.errors import UserError
from audiojax.eval.wer import wer
from audiojax.models import prompt_asr
from audiojax.nn.attention import cross_attention_probs
from audiojax.objectives.ctc import ctc_alignment, ctc_loss
from audiojax.objectives.prompt_guide import frame_guide_loss, prompt_guide_loss
from audiojax.objectives.rnnt import rnnt_loss, rnnt_loss_pruned
from audiojax.tasks.base import Task
from audiojax.text import prompts, styles, wordpiece
from audiojax.text.respell import respellings
from audiojax.text.tokenizer import Tokenizer, train_bpe
from audiojax.train import export

log = logging.getLogger("audiojax")
TOKENIZER_FILE = "tokenizer.model"
BERT_DIR = "bert"  # the converted BERT copied into a workdir
BERT_VOCAB_DIR = "bert_vocab"  # in a model directory: the BERT's vocab.txt + tokenizer_config.json (weights: "frozen")


def _text(value: Any) -> str:
  return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


def bert_dir(model_cfg: Any) -> str:
  """``config.model.bert_dir`` (checked to be a converted BERT) when ``config.model.text_encoder`` is ``"bert"``;
  ``""`` for the byte encoder."""
  encoder = model_cfg.get("text_encoder", "bytes")
  if encoder not in prompt_asr.TEXT_ENCODERS:
    raise UserError(f"config.model.text_encoder '{encoder}' is unknown; use one of {prompt_asr.TEXT_ENCODERS}")
  if encoder == "bytes":
    return ""
  path = model_cfg.get("bert_dir", "")
  if not path:
    raise UserError("config.model.text_encoder='bert' needs config.model.bert_dir: a directory made by "
                    "'python -m audiojax convert bert --hf-dir HF_BERT_DIR --out DIR'")
  bert_dirs.load_config(path)  # a UserError unless converted
  return path


def model_from_config(model_cfg: Any, vocab_size: int) -> prompt_asr.PromptASR:
  overrides = dict(model_cfg.get("overrides", {}) or {})
  if bert_dir(model_cfg):
    overrides.update(text_encoder="bert", bert=bert_dirs.load_config(model_cfg.bert_dir))
  return prompt_asr.Model(model_cfg.variant, vocab_size=vocab_size, dtype=jnp.dtype(model_cfg.dtype),
                          attention_impl=model_cfg.attention_impl, **overrides)


def _load_into(boxed: Any, weights: Any, source: str) -> Any:
  """``weights`` (plain arrays) into the structure of ``boxed`` (an init's variables, leaves possibly logical-axis
  boxes), checking names and shapes."""
  is_box = lambda x: isinstance(x, nn.meta.AxisMetadata)
  want = {jax.tree_util.keystr(k): v.unbox().shape if is_box(v) else v.shape
          for k, v in jax.tree_util.tree_flatten_with_path(boxed, is_leaf=is_box)[0]}
  have = {jax.tree_util.keystr(k): np.shape(v) for k, v in jax.tree_util.tree_flatten_with_path(weights)[0]}
  if want != have:
    diff = sorted(set(want.items()) ^ set(have.items()))[:3]
    raise UserError(f"the BERT weights in '{source}' do not fit the model ({diff}); convert the checkpoint again")
  return jax.tree.map(lambda b, w: b.replace_boxed(jnp.asarray(w)) if is_box(b) else jnp.asarray(w), boxed, weights,
                      is_leaf=is_box)


def _capture_for_guide(module: nn.Module, method: str) -> bool:
  """The intermediates :meth:`AsrTask._guide` reads: the prompt memory and each cross-attention's query input."""
  return module.name in ("prompt_encoder", "norm_cross_attn")


def predictor_contexts(labels: jax.Array, context_size: int, blank_id: int = 0) -> jax.Array:
  """``labels (B, U)`` → the predictor inputs before each output position ``(B, U+1, context_size)``: position u
  sees labels ``u-context_size .. u-1``, blank-padded on the left."""
  padded = jnp.pad(labels, ((0, 0), (context_size, 0)), constant_values=blank_id)
  idx = jnp.arange(labels.shape[1] + 1)[:, None] + jnp.arange(context_size)[None, :]
  return padded[:, idx]


def tokenizer_path(config: Any) -> str:
  """``config.tokenizer.path``, or the cached BPE model trained on the training split's texts."""
  if config.tokenizer.path:
    return config.tokenizer.path
  name = config.data.name.replace("/", "_")
  return os.path.join(config.data.data_dir, "tokenizers", f"{name}_bpe{int(config.tokenizer.vocab_size)}.model")


def ensure_tokenizer(config: Any) -> Tokenizer:
  """Loads the tokenizer, training it first (deterministically) on the train split's transcripts rendered in every
  style the config trains (so upper-case output is not spelled letter by letter) and their preceding texts."""
  path = tokenizer_path(config)
  if not os.path.isfile(path):
    if config.tokenizer.path:
      raise UserError(f"config.tokenizer.path '{path}' does not exist; give a SentencePiece .model file or leave it "
                      f"empty to train one on the training split")
    data = config.data
    builders.build(data.name, data.data_dir, manual_dir=data.manual_dir or None)
    source = tfds.data_source(data.name, split=data.train_split, data_dir=data.data_dir)
    texts = []
    for i in range(len(source)):
      example = source[i]
      text = _text(example["text"])
      texts += [styles.apply_style(text, style) for style in dict(config.prompts.style_weights)]
      texts.append(_text(example["pre_text"]))
    log.info("training a %d-piece BPE tokenizer on %d texts → %s", config.tokenizer.vocab_size, len(texts), path)
    train_bpe([t for t in texts if t], path, int(config.tokenizer.vocab_size))
  return Tokenizer(path)


@dataclasses.dataclass(frozen=True)
class DecodeSpeech:
  """Example → ``wave (L,)`` (unpadded; an error past ``max_samples``), its length and the text fields. Batches pad
  the waves to their own length (:func:`_stack_waves`)."""

  max_samples: int
  sample_rate: int
  dataset: str

  def __call__(self, example: dict) -> dict:
    pipeline.check_sample_rate(example, self.sample_rate, self.dataset)
    wave = from_pcm16(example["audio"])
    if wave.shape[0] > self.max_samples:
      raise UserError(f"utterance '{_text(example['id'])}' of dataset '{self.dataset}' is "
                      f"{wave.shape[0] / self.sample_rate:.2f} s, longer than config.data.max_seconds="
                      f"{self.max_samples / self.sample_rate:g}; raise it")
    return {"wave": wave, "wave_length": np.int32(wave.shape[0]),
            "text": _text(example["text"]), "pre_text": _text(example["pre_text"]),
            "rare_words": _text(example["rare_words"]), "id": _text(example["id"])}


@dataclasses.dataclass(frozen=True)
class _ReadRows:
  """Example indices → the decoded examples."""

  source: Any
  decode: Callable[[dict], dict]

  def __call__(self, indices: np.ndarray) -> list[dict]:
    return [self.decode(self.source[int(i)]) for i in indices]


def _stack_waves(rows: list[dict], length: int) -> dict[str, np.ndarray]:
  """Decoded rows → ``wave (B, length)`` zero-padded and ``wave_lengths (B,)``."""
  return {"wave": np.stack([pipeline.fit_length(r["wave"], length) for r in rows]),
          "wave_lengths": np.asarray([r["wave_length"] for r in rows], np.int32)}


def _labels(tokenizer: Tokenizer, texts: list[str], max_tokens: int, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
  encoded = [tokenizer.encode(t) for t in texts]
  for tokens, uid in zip(encoded, ids):
    if len(tokens) > max_tokens:
      raise UserError(f"utterance '{uid}' has {len(tokens)} BPE tokens, more than config.data.max_tokens="
                      f"{max_tokens}; raise it")
  labels = np.zeros((len(texts), max_tokens), np.int32)
  for i, tokens in enumerate(encoded):
    labels[i, :len(tokens)] = tokens
  return labels, np.asarray([len(t) for t in encoded], np.int32)


def guide_targets(kind: str, tokenizer: Tokenizer, max_tokens: int, ids: np.ndarray, lengths: np.ndarray,
                  style_lengths: np.ndarray, words: list[list[str]], texts: list[str], strict: bool = False
                  ) -> np.ndarray:
  """The attention guide's ``prompt_targets`` for byte prompts ``ids (B, M)`` whose rows say ``words[b]`` in
  transcripts ``texts``: ``kind="words"``, ``(B, M)`` the bytes of the words (:func:`prompts.word_positions`);
  ``"letters"``, ``(B, max_tokens, M)`` per label token the bytes of the letters it spells
  (:func:`prompts.letter_positions`). A row whose pieces do not spell its text back gets no letter targets, or with
  ``strict`` an error."""
  if kind == "words":
    return prompts.word_positions(ids, lengths, style_lengths, words)
  spans = [tokenizer.char_spans(t) for t in texts]
  if strict and None in spans:
    text = texts[spans.index(None)]
    raise UserError(f"the tokenizer's pieces do not spell '{text}' back; the aligned guide needs them to")
  return prompts.letter_positions(ids, lengths, style_lengths, words, texts, spans, max_tokens)


def _word_pattern(word: str) -> re.Pattern:
  """``word`` as a whole word."""
  return re.compile(rf"\b{re.escape(word)}\b")


def respell_rare_words(rng: np.random.Generator, text: str, pre_text: str, rare_words: str,
                       prob: float) -> tuple[str, str, str]:
  """Prompt-decidable spellings: with probability ``prob`` each rare word that has respellings
  (:func:`~audiojax.text.respell.respellings`: ``Kaludor`` → ``Caludor``) is replaced by a random one
  in the transcript, the preceding text and the rare-word list alike. The audio still says the same sound, so only the
  content prompt can tell the model which spelling to write: the identical-audio situation, at training time."""
  for name in rare_words.split():
    others = respellings(name)
    if others and rng.random() < prob:
      other = others[int(rng.integers(len(others)))]
      pattern = _word_pattern(name)
      text, pre_text, rare_words = (pattern.sub(other, s) for s in (text, pre_text, rare_words))
  return text, pre_text, rare_words


@dataclasses.dataclass(frozen=True)
class TrainingBatch:
  """A list of decoded examples → the training batch, prompts drawn as the recipe does (see module docstring)."""

  tokenizer_file: str
  max_tokens: int
  max_prompt_length: int  # prompt positions: UTF-8 bytes, or WordPiece tokens with a BERT
  style_weights: tuple[tuple[str, float], ...]
  canonical_prob: float
  content_mode: str  # "pre_text" or "mix" (pre_text or a biasing list, as the recipe's context-list variant)
  distractors: tuple[str, ...]
  max_samples: int  # waves are padded to this, or with ``bucket_samples`` to the smallest bucket holding the longest
  bert_dir: str = ""  # set: WordPiece prompts of this BERT
  bucket_samples: tuple[int, ...] = ()
  respell_prob: float = 0.0  # per rare word: respell it in text, pre_text and list (``respell_rare_words``)
  twin_share: float = 0.0  # share of each batch's rows that are twin pairs (``_twins``)
  speed_factors: tuple[float, ...] = ()  # each row played at one drawn uniformly (``audio.speed``); () for none
  # add ``prompt_targets``: "words", ``(B, M)`` the prompt bytes of each row's rare words; "letters", ``(B, U, M)``
  # per label token, the prompt bytes of the rare-word letters it spells (``prompts.letter_positions``)
  guide_targets: str = ""

  @functools.cached_property
  def tokenizer(self) -> Tokenizer:
    return Tokenizer(self.tokenizer_file)

  @functools.cached_property
  def encode_prompts(self) -> prompts.PromptEncoding:
    return prompts.PromptEncoding(self.max_prompt_length, self.bert_dir)

  def __call__(self, rows: list[dict], rng: np.random.Generator) -> dict[str, np.ndarray]:
    if self.speed_factors:  # before twinning, so that twins stay one recording
      rows = [self._perturb_speed(rng, r) for r in rows]
    rows, twins = self._pair_twins(rows, rng)
    singles = [self._draw(rng, r) for r in rows[len(twins):]]
    drawn = [d for d, _ in singles]
    content, style = prompts.perturb_batch(rng, [d.content_prompt for d in drawn], [d.style_prompt for d in drawn],
                                           target_styles=[d.target_style for d in drawn])
    rare_words = [words for _, words in twins + singles]
    twins = [d for d, _ in twins]
    drawn = twins + drawn  # twins keep their prompts whole: a swapped or blanked one could not decide the spelling
    content = [d.content_prompt for d in twins] + content
    style = [d.style_prompt for d in twins] + style
    labels, label_lengths = _labels(self.tokenizer, [d.target_text for d in drawn], self.max_tokens,
                                    [r["id"] for r in rows])
    ids, lengths, style_lengths = self.encode_prompts(list(zip(style, content)))
    longest = max(int(r["wave_length"]) for r in rows)
    waves = _stack_waves(rows, pipeline.bucket_length(longest, self.bucket_samples) if self.bucket_samples
                         else self.max_samples)
    batch = {**waves, "labels": labels, "label_lengths": label_lengths, "prompt_ids": ids,
             "prompt_lengths": lengths, "style_lengths": style_lengths}
    if self.guide_targets:
      batch["prompt_targets"] = guide_targets(self.guide_targets, self.tokenizer, self.max_tokens, ids, lengths,
                                              style_lengths, rare_words, [d.target_text for d in drawn])
    return batch

  def _perturb_speed(self, rng: np.random.Generator, row: dict) -> dict:
    """``row`` with its wave played at a factor of ``speed_factors`` that keeps it within the longest bucket."""
    factor = speed.draw_factor(rng, self.speed_factors, int(row["wave_length"]), self.max_samples)
    if factor == 1.0:
      return row
    wave = speed.perturb_speed(row["wave"], factor)
    return {**row, "wave": wave, "wave_length": np.int32(wave.shape[0])}

  def _draw(self, rng: np.random.Generator, row: dict) -> tuple[prompts.TrainingText, list[str]]:
    """The row's sampled texts and its rare words as spelled in them."""
    text, pre_text, rare_words = row["text"], row["pre_text"], row["rare_words"]
    if self.respell_prob:
      text, pre_text, rare_words = respell_rare_words(rng, text, pre_text, rare_words, self.respell_prob)
    content = None
    if self.content_mode == "mix":
      content = prompts.sample_context_list(rng, rare_words, self.distractors, pre_text=pre_text,
                                            reference=text, num_distractors=(3, 10), num_distractors_only=(1, 10))
    drawn = prompts.sample_training_text(rng, text, pre_text, style_weights=dict(self.style_weights),
                                         canonical_prob=self.canonical_prob, content=content, style_from_text=False)
    return drawn, rare_words.split()

  def _pair_twins(self, rows: list[dict], rng: np.random.Generator
                  ) -> tuple[list[dict], list[tuple[prompts.TrainingText, list[str]]]]:
    """Up to ``twin_share × B / 2`` rows with a respellable rare word become twin pairs at the front of the batch
    (:meth:`_twins`); the rest follow, and the last rows are dropped to keep ``B``. Returns the batch's rows and the
    twins' drawn texts with their spelled word (``2 × pairs``, in row order)."""
    pairs = int(round(self.twin_share * len(rows) / 2))
    twin_rows, twins, singles = [], [], []
    for row in rows:
      drawn = self._twins(rng, row) if len(twins) < 2 * pairs else None
      if drawn:
        twin_rows += [row, row]
        twins += drawn
      else:
        singles.append(row)
    return twin_rows + singles[:len(rows) - len(twin_rows)], twins

  def _twins(self, rng: np.random.Generator, row: dict) -> list[tuple[prompts.TrainingText, list[str]]] | None:
    """The identical-audio situation at training time: ``row`` drawn twice, its first respellable rare word spelled
    as recorded and respelled (``Kaludor`` / ``Caludor``), with the same random draws of target style, style prompt
    and content, whose content always names the word (the preceding text when it holds the word, half of the time;
    otherwise a list of the word and 3–10 distractors). One recording, two targets: only the prompt tells them
    apart, so every pair is a clean signal for reading spellings off the prompt. None when ``row`` has no such
    word."""
    text = row["text"]
    for name in row["rare_words"].split():
      others, pattern = respellings(name), _word_pattern(name)
      if others and pattern.search(text):
        break
    else:
      return None
    family = {w.lower() for w in [name, *others]}
    pool = [w.lower() for w in self.distractors if w.lower() not in family]
    seed = int(rng.integers(2**31))
    drawn = []
    for spelling in (name, others[int(rng.integers(len(others)))]):
      pre_text, twin_rng = pattern.sub(spelling, row["pre_text"]), np.random.default_rng(seed)
      if spelling in pre_text and twin_rng.random() < 0.5:
        content = pre_text
      else:
        count = min(int(twin_rng.integers(3, 11)), len(pool))
        words = [spelling.lower()] + [pool[int(i)] for i in twin_rng.choice(len(pool), count, replace=False)]
        content = " ".join(words[int(i)] for i in twin_rng.permutation(len(words)))
      drawn.append((prompts.sample_training_text(twin_rng, pattern.sub(spelling, text), pre_text,
                                                 style_weights=dict(self.style_weights),
                                                 canonical_prob=self.canonical_prob, content=content,
                                                 style_from_text=False), [spelling]))
    return drawn


def eval_prompt(condition: str, example: dict, rng: np.random.Generator,
                distractors: tuple[str, ...]) -> tuple[str, str, str]:
  """``(target style, style prompt, content prompt)`` of one eval utterance under ``condition``."""
  try:
    style, style_source, content_mode = condition.split("/")
  except ValueError:
    raise UserError(f"eval condition '{condition}' must be STYLE/STYLE_SOURCE/CONTENT, e.g. "
                    f"'upper-no-punc/canonical/pre_text'") from None
  if style_source == "canonical":
    style_prompt = styles.canonical_style_prompt(style)
  elif style_source == "example":
    source = example["pre_text"] or example["text"]
    style_prompt = styles.apply_style(prompts.random_substring(rng, source, 80, 150), style)
  else:
    raise UserError(f"eval condition '{condition}': style source must be 'canonical' or 'example'")
  if content_mode == "pre_text":
    content = styles.apply_style(example["pre_text"], style)
  elif content_mode == "none":
    content = ""
  elif content_mode == "context":
    words = example["rare_words"].split()
    pool = [d for d in distractors if d not in words]
    picked = [pool[i] for i in rng.choice(len(pool), size=min(10, len(pool)), replace=False)]
    listed = words + picked
    rng.shuffle(listed)
    content = " ".join(listed)
  else:
    raise UserError(f"eval condition '{condition}': content must be 'pre_text', 'none' or 'context'")
  return style, style_prompt, content


def rare_word_hits(hyp: str, rare_words: str) -> tuple[int, int]:
  """``(found, total)``: rare words of the reference spelled exactly (case and possessives ignored) in the
  hypothesis."""
  words = styles.name_words(hyp)
  wanted = styles.normalize_for_wer(rare_words).split()
  return sum(w in words for w in wanted), len(wanted)


class AsrTask(Task):
  """Trains a :class:`~audiojax.models.prompt_asr.PromptASR` on ``config.data`` (an ASR dataset of the shared
  schema: ``audio, sample_rate, text, pre_text, rare_words, speaker, id``)."""

  primary_metric = "eval/wer"
  primary_metric_mode = "min"
  head_prefixes = ("params/joiner_out/", "params/ctc_head/", "params/pred_embed/")

  def __init__(self, config: Any, class_names: list[str] | None = None):
    del class_names  # ASR has an output vocabulary, not classes
    self.config = config
    self.class_names = None
    self.tokenizer = ensure_tokenizer(config)
    self.model = model_from_config(config.model, self.tokenizer.vocab_size)
    self.sample_rate = prompt_asr.SAMPLE_RATE
    self.max_samples = int(round(config.data.max_seconds * self.sample_rate))
    self.max_tokens = int(config.data.max_tokens)
    self.bert_dir = bert_dir(config.model)
    # prompt positions: UTF-8 bytes, or WordPiece tokens for BERT
    self.max_prompt_length = int(config.data.get("max_prompt_tokens", 128) if self.bert_dir
                                else config.data.max_prompt_bytes)
    if self.bert_dir and self.max_prompt_length > self.model.bert.max_position_embeddings:
      raise UserError(f"config.data.max_prompt_tokens={self.max_prompt_length} exceeds the BERT's "
                      f"{self.model.bert.max_position_embeddings} positions; lower it")
    self.encode_prompts = prompts.PromptEncoding(self.max_prompt_length, self.bert_dir)
    self.guide_scale = float(config.loss.get("prompt_guide_scale", 0.0))
    self.guide_heads = int(config.loss.get("prompt_guide_heads", 1))
    self.guide_frames = bool(config.loss.get("prompt_guide_frames", False))
    if self.guide_scale and self.bert_dir:
      raise UserError("config.loss.prompt_guide_scale needs the byte prompt encoder (its targets are bytes of "
                      "names); set it to 0 with config.model.text_encoder='bert'")
    self.guide_targets = ("letters" if self.guide_frames else "words") if self.guide_scale else ""
    if self.guide_scale and not 1 <= self.guide_heads <= self.model.num_heads:
      raise UserError(f"config.loss.prompt_guide_heads={self.guide_heads} must lie in 1..{self.model.num_heads} "
                      f"(the model's heads)")

  # --- model -------------------------------------------------------------------------------------------------------
  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    i32 = lambda *shape: np.zeros(shape, np.int32)
    return {"wave": np.zeros((batch_size, self.max_samples), np.float32),
            "wave_lengths": np.full((batch_size,), self.max_samples, np.int32),
            "labels": i32(batch_size, self.max_tokens), "label_lengths": i32(batch_size),
            "prompt_ids": i32(batch_size, self.max_prompt_length), "prompt_lengths": i32(batch_size),
            "style_lengths": i32(batch_size),
            **({"prompt_targets": np.zeros(self._targets_shape(batch_size), bool)} if self.guide_scale else {})}

  def _targets_shape(self, batch_size: int) -> tuple[int, ...]:
    """``prompt_targets``: ``(B, M)`` per utterance, or ``(B, U, M)`` per label token with ``prompt_guide_frames``."""
    if self.guide_frames:
      return (batch_size, self.max_tokens, self.max_prompt_length)
    return (batch_size, self.max_prompt_length)

  def _inputs(self, batch: dict[str, jax.Array]) -> tuple[jax.Array, ...]:
    return (batch["wave"], batch["wave_lengths"], batch["prompt_ids"], batch["prompt_lengths"],
            batch["style_lengths"])

  def init_variables(self, rng: jax.Array, batch: dict[str, jax.Array]) -> dict[str, Any]:
    variables = dict(self.model.init({"params": rng, "dropout": rng}, *self._inputs(batch), train=False))
    if self.bert_dir:  # the converted weights replace the zero placeholders, keeping their logical-axis boxes
      frozen = variables[prompt_asr.FROZEN]
      frozen["prompt_encoder"]["bert"] = _load_into(frozen["prompt_encoder"]["bert"], self._bert_weights,
                                                    self.bert_dir)
    return variables

  @functools.cached_property
  def _bert_weights(self) -> dict[str, Any]:
    return bert_dirs.load(self.bert_dir)[1]["params"]

  def loss(self, params: Any, model_state: Any, batch: dict[str, jax.Array], rng: jax.Array,
           step: jax.Array | None = None, frozen: dict | None = None, group: str | None = None):
    """Per-token transducer loss + ``ctc_weight`` × per-token CTC. With ``loss.prune_range > 0`` the transducer
    loss is k2's pruned RNN-T: ``simple_scale × simple + pruned_scale × pruned`` with the recipe's warm-up (simple
    1 → ``simple_scale``, pruned 0.1 → 1 over ``loss.warmup_steps``); otherwise the full loss (joiner on every
    lattice cell, chunked over frames). With ``loss.prompt_guide_scale``, plus that times the attention guide."""
    variables = {"params": params, **model_state}
    if self.guide_scale:
      out, captured = self.model.apply(variables, *self._inputs(batch), train=True, rngs={"dropout": rng},
                                       capture_intermediates=_capture_for_guide, mutable=["intermediates"])
    else:
      out = self.model.apply(variables, *self._inputs(batch), train=True, rngs={"dropout": rng})
    enc, enc_lengths = out["encoder_out"], out["enc_lengths"]
    labels, label_lengths = batch["labels"], batch["label_lengths"]
    pred = self.model.apply(variables, predictor_contexts(labels, self.model.context_size), method="predictor")
    joiner = lambda e, p: self.model.apply(variables, e, p, method="joiner")
    cfg = self.config.loss
    tokens = jnp.maximum(jnp.sum(label_lengths + 1), 1)  # +1: every utterance ends with a final blank
    metrics = {}
    if int(cfg.prune_range) > 0:
      am, lm = self.model.apply(variables, enc, pred, method="simple_logits")
      simple, pruned = rnnt_loss_pruned(enc, pred, am, lm, labels, enc_lengths, label_lengths, joiner,
                                        prune_range=int(cfg.prune_range), lm_only_scale=float(cfg.lm_only_scale),
                                        am_only_scale=float(cfg.am_only_scale))
      warm = jnp.clip((0 if step is None else step) / max(int(cfg.warmup_steps), 1), 0.0, 1.0)
      simple_scale = 1.0 - warm * (1.0 - float(cfg.simple_scale))
      pruned_scale = 0.1 + 0.9 * warm
      transducer = (simple_scale * jnp.sum(simple) + pruned_scale * jnp.sum(pruned)) / tokens
      metrics.update(simple_loss=jnp.sum(simple) / tokens, pruned_loss=jnp.sum(pruned) / tokens)
    else:
      transducer = jnp.sum(rnnt_loss(enc, pred, labels, enc_lengths, label_lengths, joiner,
                                     frames_per_chunk=int(cfg.frames_per_chunk))) / tokens
    ctc, feasible = ctc_loss(out["ctc_logits"].astype(jnp.float32), enc_lengths, labels, label_lengths)
    ctc_per_token = jnp.sum(ctc) / jnp.maximum(jnp.sum(jnp.where(feasible, label_lengths, 0)), 1)
    loss = float(cfg.rnnt_weight) * transducer + float(cfg.ctc_weight) * ctc_per_token
    if self.guide_scale:
      guide, mass = self._guide(params, captured["intermediates"], batch, out)
      loss = loss + self.guide_scale * guide
      metrics.update(prompt_guide_loss=guide, prompt_guide_mass=mass)
    metrics.update(loss=loss, rnnt_loss=transducer, ctc_loss=ctc_per_token,
                   ctc_feasible=jnp.mean(feasible.astype(jnp.float32)))
    return loss, (metrics, dict(model_state))

  def _guide(self, params: Any, captured: dict, batch: dict[str, jax.Array], out: dict[str, jax.Array]
             ) -> tuple[jax.Array, jax.Array]:
    """:func:`~audiojax.objectives.prompt_guide.prompt_guide_loss` of the first ``loss.prompt_guide_heads`` heads of
    every crossing layer, from the captured prompt memory (before memory dropout) and cross-attention queries. With
    ``prompt_guide_frames``, :func:`~audiojax.objectives.prompt_guide.frame_guide_loss`: each frame that the Viterbi
    alignment of the labels by this step's CTC head gives to a token targets that token's letter bytes."""
    memory = captured["prompt_encoder"]["__call__"][0]
    weights = [cross_attention_probs(params[layer]["cross_attn"], sub["norm_cross_attn"]["__call__"][0], memory,
                                     batch["prompt_lengths"], heads=self.guide_heads)
               for layer, sub in sorted(captured.items()) if "norm_cross_attn" in sub]
    if not self.guide_frames:
      return prompt_guide_loss(weights, batch["prompt_targets"], out["enc_lengths"])
    align = ctc_alignment(jax.nn.log_softmax(out["ctc_logits"].astype(jnp.float32)), out["enc_lengths"],
                          batch["labels"], batch["label_lengths"], blank_id=self.tokenizer.blank_id)  # (B, T)
    frame_targets = jnp.take_along_axis(batch["prompt_targets"], jnp.maximum(align, 0)[:, :, None], axis=1)
    return frame_guide_loss(weights, frame_targets & (align >= 0)[:, :, None])

  def predict(self, variables: Any, batch: dict[str, jax.Array], frozen: dict | None = None
              ) -> dict[str, jax.Array]:
    """Greedy decoding on device (the transducer, or the CTC head's best path with ``config.eval.decoder="ctc"``):
    ``tokens (B, T)`` and ``emitted (B, T)`` (True where a token was emitted), with ``valid`` passed through."""
    memory = self.model.apply(variables, batch["prompt_ids"], batch["prompt_lengths"], batch["style_lengths"],
                              method="encode_prompt")
    enc, lengths = self.model.apply(variables, batch["wave"], batch["wave_lengths"], memory, batch["prompt_lengths"],
                                    method="encode_speech")
    decoder = self.config.eval.decoder
    if decoder == "ctc":
      tokens = jnp.argmax(self.model.apply(variables, enc, method="ctc_logits"), axis=-1).astype(jnp.int32)
      previous = jnp.pad(tokens[:, :-1], ((0, 0), (1, 0)), constant_values=self.tokenizer.blank_id)
      frames = jnp.arange(tokens.shape[1])[None, :] < lengths[:, None]
      emitted = (tokens != self.tokenizer.blank_id) & (tokens != previous) & frames
    elif decoder == "transducer":
      tokens, emitted = greedy_scan(
          enc, lengths, predictor=lambda t: self.model.apply(variables, t, method="predictor"),
          joiner=lambda e, p: self.model.apply(variables, e, p, method="joiner"),
          context_size=self.model.context_size, blank_id=self.tokenizer.blank_id)
    else:
      raise UserError(f"config.eval.decoder '{decoder}' is unknown; use one of {DECODERS}")
    return {"tokens": tokens, "emitted": emitted, "valid": batch["valid"]}

  def save_assets(self, workdir: str) -> None:
    """Copies the tokenizer (and the converted BERT) next to the checkpoints, so the workdir alone can transcribe."""
    source, target = paths.resolve(tokenizer_path(self.config)), paths.resolve(workdir) / TOKENIZER_FILE
    if source != target:
      source.copy(target, overwrite=True)
    bert_copy = paths.resolve(workdir) / BERT_DIR
    if self.bert_dir and paths.resolve(self.bert_dir) != bert_copy:
      paths.copy_tree(self.bert_dir, bert_copy)

  def export(self, path: str, variables: dict[str, Any], force: bool = False) -> None:
    """Writes a model directory: the model's variant and overrides, the input settings inference needs
    (``max_seconds``, ``max_prompt_bytes``; a BERT's config and ``max_prompt_tokens``), the variables and the
    tokenizer (and a BERT's vocabulary)."""
    config = self.config
    meta = {"variant": config.model.variant, "overrides": dict(config.model.get("overrides", {}) or {}),
            "max_seconds": float(config.data.max_seconds), "max_prompt_bytes": int(config.data.max_prompt_bytes)}
    if self.bert_dir:
      meta.update(text_encoder="bert", bert=bert_dirs.load_config(self.bert_dir).to_dict(),
                  max_prompt_tokens=int(config.data.get("max_prompt_tokens", 128)))

    def assets(folder: str) -> None:
      paths.resolve(tokenizer_path(config)).copy(paths.resolve(folder) / TOKENIZER_FILE, overwrite=True)
      if self.bert_dir:
        vocabulary = wordpiece.WordPiece.from_dir(paths.local_copy(self.bert_dir))
        vocabulary.save(paths.resolve(folder) / BERT_VOCAB_DIR)

    export.save(path, prompt_asr.FAMILY, meta, variables, None, assets=assets, force=force)

  def eval_summaries(self) -> dict[str, Any]:
    """The first eval utterances' references and hypotheses (the first condition)."""
    pairs = getattr(self, "last_hypotheses", [])[:8]
    return {"eval/transcripts": "  \n".join(f"ref: {r}  \nhyp: {h}  \n" for r, h in pairs)} if pairs else {}

  def summary(self, eval_metrics: dict[str, Any]) -> str:
    return (f"held-out WER {eval_metrics['eval/wer']:.4f} on {eval_metrics['eval/examples']} utterances "
            f"({self.config.eval.conditions[0]})")

  @classmethod
  def workdir_config(cls, config: Any, workdir: str) -> Any:
    """The workdir's own tokenizer (and BERT copy, :meth:`save_assets`) instead of the paths it was trained from,
    so a workdir alone evaluates, averages and transcribes."""
    folder = paths.resolve(workdir)
    with config.unlocked():
      if (folder / TOKENIZER_FILE).is_file():
        config.tokenizer.path = paths.local_copy(folder / TOKENIZER_FILE)
      if config.model.get("text_encoder", "bytes") == "bert" and (folder / BERT_DIR).is_dir():
        config.model.bert_dir = paths.local_copy(folder / BERT_DIR)
    return config

  # --- data --------------------------------------------------------------------------------------------------------
  def _source(self, split: str):
    return tfds.data_source(self.config.data.name, split=split, data_dir=self.config.data.data_dir)

  @functools.cached_property
  def distractors(self) -> tuple[str, ...]:
    """Rare words of the training split: the distractor pool of biasing lists."""
    source = self._source(self.config.data.train_split)
    words = {w for i in range(len(source)) for w in _text(source[i]["rare_words"]).split()}
    return tuple(sorted(words))

  def bucket_samples(self) -> tuple[int, ...]:
    """Ascending wave lengths of ``config.data.bucket_seconds`` (ending at ``max_seconds``); ``()`` for none."""
    seconds = sorted(float(s) for s in self.config.data.get("bucket_seconds", ()) or ())
    if not seconds:
      return ()
    if seconds[0] <= 0 or seconds[-1] > float(self.config.data.max_seconds):
      raise UserError(f"config.data.bucket_seconds={seconds} must lie in (0, config.data.max_seconds="
                      f"{self.config.data.max_seconds}]")
    return tuple(sorted({int(round(s * self.sample_rate)) for s in seconds} | {self.max_samples}))

  def train_dataset(self, seed: int):
    data, p = self.config.data, self.config.prompts
    local_batch = int(self.config.train.batch_size) // jax.process_count()
    buckets = self.bucket_samples()
    batcher = TrainingBatch(tokenizer_path(self.config), self.max_tokens, self.max_prompt_length,
                            tuple(sorted(dict(p.style_weights).items())), float(p.canonical_prob), p.content,
                            self.distractors if p.content == "mix" else (), self.max_samples, bert_dir=self.bert_dir,
                            bucket_samples=buckets, respell_prob=float(p.respell_prob),
                            twin_share=float(p.twin_share),
                            speed_factors=speed.checked_factors(data.speed_factors, "config.data.speed_factors"),
                            guide_targets=self.guide_targets)
    source = pipeline.host_shard(self._source(data.train_split), data.name)
    decode = DecodeSpeech(self.max_samples, self.sample_rate, data.name)
    if buckets:
      lengths = [len(source[i]["audio"]) for i in range(len(source))]
      batches = pipeline.LengthBucketedBatches(lengths, local_batch, seed)
      ds = grain.MapDataset.source(batches).seed(seed).map(_ReadRows(source, decode))
    else:
      ds = source.seed(seed).shuffle().repeat(None).map(decode).batch(local_batch, drop_remainder=True,
                                                                       batch_fn=list)
    return ds.random_map(batcher).to_iter_dataset()

  # --- evaluation --------------------------------------------------------------------------------------------------
  def eval_examples(self) -> list[dict]:
    data = self.config.data
    source = pipeline.host_shard(self._source(data.eval_split), data.name)
    limit = int(self.config.eval.max_examples) or len(source)
    decode = DecodeSpeech(self.max_samples, self.sample_rate, data.name)
    return [decode(source[i]) for i in range(min(limit, len(source)))]

  def transcribe_batches(self, predict_fn: Callable, examples: list[dict], prompt_pairs: list[tuple[str, str]]
                         ) -> list[str]:
    """Greedy transcripts of ``examples`` with one ``(style prompt, content prompt)`` each."""
    local_batch = int(self.config.eval.batch_size) // jax.process_count()
    hyps: list[str] = []
    for rows, real in pipeline.fixed_size_batches(len(examples), local_batch):
      ids, lengths, style_lengths = self.encode_prompts([prompt_pairs[i] for i in rows])
      out = predict_fn({**_stack_waves([examples[i] for i in rows], self.max_samples), "prompt_ids": ids,
                        "prompt_lengths": lengths, "style_lengths": style_lengths,
                        "valid": np.arange(local_batch) < real})
      for b in range(real):
        hyps.append(self.tokenizer.decode(out["tokens"][b][out["emitted"][b]].tolist()))
    return hyps

  def evaluate(self, predict_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict[str, float]:
    examples = self.eval_examples()
    results: dict[str, float] = {"eval/examples": len(examples)}
    for n, condition in enumerate(self.config.eval.conditions):
      rng = np.random.default_rng(n)
      drawn = [eval_prompt(condition, e, rng, self.distractors) for e in examples]
      hyps = self.transcribe_batches(predict_fn, examples, [(s, c) for _, s, c in drawn])
      style = drawn[0][0] if drawn else "mixed-punc"
      refs = [e["text"] for e in examples]
      found, total = map(sum, zip(*[rare_word_hits(h, e["rare_words"]) for h, e in zip(hyps, examples)]))
      results.update({
          f"eval/{condition}/wer": wer([styles.normalize_for_wer(r) for r in refs],
                                       [styles.normalize_for_wer(h) for h in hyps]),
          f"eval/{condition}/styled_wer": wer([styles.apply_style(r, style) for r in refs], hyps),
          f"eval/{condition}/style_ok": float(np.mean([styles.detect_style(h) == style for h in hyps])),
          f"eval/{condition}/rare_word_recall": found / max(total, 1)})
      if n == 0:
        results["eval/wer"] = results[f"eval/{condition}/wer"]
        self.last_hypotheses = list(zip(refs, hyps))
    return results
