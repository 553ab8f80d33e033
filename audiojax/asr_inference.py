"""Transcribing files with a trained PromptASR model: loading, prompts, windows for long files, hotword boosting.

A model is loaded from a training workdir (``config.json`` + checkpoints + ``tokenizer.model``) or a model directory
(:mod:`audiojax.model_dir` layout plus ``tokenizer.model``). Long files are cut into windows of the training length;
each window's content prompt is the user's content prompt followed by the text decoded so far (the prompt keeps its
most recent end), as the recipe's long-form transcription does.
"""
from __future__ import annotations

import functools
import os
import shutil
from typing import Any, Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax import config as config_lib
from audiojax import model_dir
from audiojax.asr_options import DECODERS
from audiojax.audio.io import stream_audio
from audiojax.data.pipeline import fixed_size_batches
from audiojax.decode.char_lm import CharNgramLM, LmFusion
from audiojax.decode.ctc import ctc_greedy, ctc_prefix_beam_search
from audiojax.decode.context_graph import ContextGraph
from audiojax.decode.transducer import greedy_search, modified_beam_search
from audiojax.errors import UserError
from audiojax.models import bert as bert_lib
from audiojax.models import prompt_asr
from audiojax.text import prompts, styles, wordpiece
from audiojax.text.tokenizer import Tokenizer

FAMILY = "prompt_asr"
TOKENIZER_FILE = "tokenizer.model"
BERT_VOCAB_DIR = "bert_vocab"  # a BERT prompt encoder's vocab.txt + tokenizer_config.json (its weights: "frozen")


def prompt_encoding(settings: dict[str, Any]) -> prompts.PromptEncoding:
  """The prompt encoding the model was trained with: UTF-8 bytes, or WordPiece of its BERT (``vocab_dir``)."""
  if settings.get("vocab_dir"):
    return prompts.PromptEncoding(int(settings["max_prompt_tokens"]), settings["vocab_dir"])
  return prompts.PromptEncoding(int(settings["max_prompt_bytes"]))


def save(path: str, config: Any, variables: Any, tokenizer_file: str) -> None:
  """Writes a model directory: constructor arguments, variables and the tokenizer."""
  meta = {"variant": config.model.variant, "overrides": dict(config.model.get("overrides", {}) or {}),
          "max_seconds": float(config.data.max_seconds), "max_prompt_bytes": int(config.data.max_prompt_bytes)}
  bert_dir = config.model.bert_dir if config.model.get("text_encoder", "bytes") == "bert" else ""
  if bert_dir:
    meta.update(text_encoder="bert", bert=bert_lib.load_config(bert_dir).to_dict(),
                max_prompt_tokens=int(config.data.get("max_prompt_tokens", 128)))
  model_dir.save(path, FAMILY, meta, variables, None)
  shutil.copyfile(tokenizer_file, os.path.join(path, TOKENIZER_FILE))
  if bert_dir:
    wordpiece.WordPiece.from_dir(bert_dir).save(os.path.join(path, BERT_VOCAB_DIR))


def load(path: str) -> tuple[prompt_asr.PromptASR, dict, Tokenizer, dict[str, Any]]:
  """``(model, variables, tokenizer, settings)`` from a model directory or a training workdir."""
  tokenizer_file = os.path.join(path, TOKENIZER_FILE)
  if not os.path.isfile(tokenizer_file):
    raise UserError(f"'{path}' has no {TOKENIZER_FILE}; point --checkpoint at a PromptASR training workdir or model "
                    f"directory")
  tokenizer = Tokenizer(tokenizer_file)
  if model_dir.is_model_dir(path):
    meta = model_dir.read_meta(path, FAMILY)
    overrides = dict(meta["overrides"])
    settings = {"max_seconds": meta["max_seconds"], "max_prompt_bytes": meta["max_prompt_bytes"]}
    if meta.get("text_encoder") == "bert":
      overrides.update(text_encoder="bert", bert=bert_lib.BertConfig(**meta["bert"]))
      settings.update(vocab_dir=os.path.join(path, BERT_VOCAB_DIR), max_prompt_tokens=meta["max_prompt_tokens"])
    model = prompt_asr.Model(meta["variant"], vocab_size=tokenizer.vocab_size, **overrides)
    abstract = nn.meta.unbox(jax.eval_shape(lambda: _init(model, settings)))
    return model, model_dir.restore_variables(path, abstract), tokenizer, settings
  config_file = os.path.join(path, "config.json")
  if not os.path.isfile(config_file):
    raise UserError(f"'{path}' is neither a model directory nor a training workdir (no model.json or config.json)")
  from audiojax.train import loop  # the trainer restores its own checkpoints
  config = config_lib.restore(config_file)
  from audiojax.tasks.asr import BERT_DIR
  bert = config.model.get("text_encoder", "bytes") == "bert"
  with config.unlocked():
    config.tokenizer.path = tokenizer_file
    if bert and os.path.isdir(os.path.join(path, BERT_DIR)):  # the copy training made: the workdir is self-contained
      config.model.bert_dir = os.path.join(path, BERT_DIR)
  trainer, state, _ = loop.load_for_inference(path, config)
  settings = {"max_seconds": float(config.data.max_seconds), "max_prompt_bytes": int(config.data.max_prompt_bytes)}
  if bert:
    settings.update(vocab_dir=config.model.bert_dir, max_prompt_tokens=int(config.data.get("max_prompt_tokens", 128)))
  variables = jax.device_get({"params": state.params, **state.model_state})
  return trainer.task.model, variables, tokenizer, settings


def _init(model: prompt_asr.PromptASR, settings: dict[str, Any]) -> dict:
  samples = int(settings["max_seconds"] * prompt_asr.SAMPLE_RATE)
  ids = jnp.zeros((1, prompt_encoding(settings).max_length), jnp.int32)
  one = jnp.ones((1,), jnp.int32)
  return model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, jnp.zeros((1, samples)),
                    one * samples, ids, one, one)


def style_prompt_for(text: str | None) -> str:
  """``None`` → the canonical mixed-punc sentence; a style name (``upper-no-punc``...) → that style's canonical
  sentence; anything else is used as given (an example in the wanted style)."""
  if text is None:
    return styles.canonical_style_prompt("mixed-punc")
  return styles.canonical_style_prompt(text) if text in styles.STYLES else text


def hotword_graph(tokenizer: Tokenizer, words: list[str], bonus: float) -> ContextGraph:
  """A context graph over each word as given, upper-cased and capitalised (the spellings the styles produce)."""
  spellings = sorted({v for w in words for v in (w, w.upper(), w[:1].upper() + w[1:])})
  return ContextGraph([tokenizer.encode(s) for s in spellings if tokenizer.encode(s)], bonus)


class Transcriber:
  """Transcribes waves with fixed-size windows (one compilation) and optional prompts, beam and hotwords.

  ``decoder="transducer"`` searches the RNN-T (greedy or modified beam search); ``"ctc"`` reads the auxiliary CTC
  head (best path, or prefix beam search). Hotwords (a context graph per window) and a character n-gram LM
  (``lm``, :class:`~audiojax.decode.char_lm.LmFusion`) are fused into either beam search."""

  def __init__(self, model: prompt_asr.PromptASR, variables: dict, tokenizer: Tokenizer, settings: dict[str, Any],
               decoder: str = "transducer", lm: LmFusion | None = None):
    if decoder not in DECODERS:
      raise UserError(f"decoder '{decoder}' is unknown; use one of {DECODERS}")
    self.model, self.variables, self.tokenizer, self.decoder, self.lm = model, variables, tokenizer, decoder, lm
    self.window = int(settings["max_seconds"] * prompt_asr.SAMPLE_RATE)
    self.encode_prompts = prompt_encoding(settings)
    # stable callables, so the decoders' compiled steps are reused across windows
    self.predictor = jax.jit(functools.partial(_predict, model, variables))
    self.joiner = jax.jit(functools.partial(_join, model, variables))

  @classmethod
  def from_checkpoint(cls, path: str, decoder: str = "transducer", lm: CharNgramLM | None = None,
                      lm_weight: float = 0.5, lm_token_bonus: float = 0.0, lm_oov_penalty: float = 0.0
                      ) -> "Transcriber":
    """The model of a workdir or model directory; ``lm`` is fused with the other ``lm_*`` settings
    (:class:`~audiojax.decode.char_lm.LmFusion`)."""
    model, variables, tokenizer, settings = load(path)
    fusion = (LmFusion.for_tokenizer(lm, tokenizer, lm_weight, lm_token_bonus, lm_oov_penalty) if lm is not None
              else None)
    return cls(model, variables, tokenizer, settings, decoder, fusion)

  @functools.cached_property
  def _encode(self):
    def encode(variables, wave, wave_lengths, ids, lengths, style_lengths):
      memory = self.model.apply(variables, ids, lengths, style_lengths, method="encode_prompt")
      return self.model.apply(variables, wave, wave_lengths, memory, lengths, method="encode_speech")
    return jax.jit(encode)

  @functools.cached_property
  def _ctc_log_probs(self):
    return jax.jit(lambda variables, enc: jax.nn.log_softmax(
        self.model.apply(variables, enc, method="ctc_logits").astype(jnp.float32), axis=-1))

  def _ctc_search(self, enc: jax.Array, enc_lengths: jax.Array, beam: int,
                  graphs: list[ContextGraph | None] | None) -> list[list[int]]:
    log_probs, lengths = np.asarray(self._ctc_log_probs(self.variables, enc)), np.asarray(enc_lengths)
    if beam == 1 and self.lm is None and not any(g is not None for g in graphs or []):
      return ctc_greedy(log_probs, lengths)
    graphs = graphs or [None] * len(lengths)
    return [ctc_prefix_beam_search(log_probs[i:i + 1], lengths[i:i + 1], beam=max(beam, 1), context_graph=g,
                                   lm=self.lm)[0]
            for i, g in enumerate(graphs)]

  def transcribe_window(self, wave: np.ndarray, style_prompt: str, content_prompt: str, *, beam: int = 1,
                        graph: ContextGraph | None = None) -> str:
    """One window ``wave (L,)`` with ``L ≤ window`` → text."""
    return self.transcribe_batch([wave], [(style_prompt, content_prompt)], beam=beam, graphs=[graph])[0]

  def transcribe_batch(self, waves: list[np.ndarray], prompt_pairs: list[tuple[str, str]], *, beam: int = 1,
                       graphs: list[ContextGraph | None] | None = None) -> list[str]:
    """Windows ``waves[i] (L_i,)``, each ``L_i ≤ window``, with one ``(style prompt, content prompt)`` and optionally
    one hotword graph each → their texts. Greedy search when ``beam == 1`` and no graph, else beam search (modified
    beam search for the transducer, prefix beam search for CTC)."""
    if len(prompt_pairs) != len(waves) or (graphs is not None and len(graphs) != len(waves)):
      raise UserError(f"transcribe_batch: {len(waves)} waves need as many prompt pairs (got {len(prompt_pairs)}) "
                      f"and graphs")
    padded = np.zeros((len(waves), self.window), np.float32)
    for i, wave in enumerate(waves):
      if wave.shape[0] > self.window:
        raise UserError(f"window {i} has {wave.shape[0]} samples, more than the model's {self.window}; cut it")
      padded[i, :wave.shape[0]] = wave
    ids, lengths, style_lengths = self.encode_prompts(prompt_pairs)
    enc, enc_lengths = self._encode(self.variables, padded, np.asarray([w.shape[0] for w in waves], np.int32), ids,
                                    lengths, style_lengths)
    if self.decoder == "ctc":
      tokens = self._ctc_search(enc, enc_lengths, beam, graphs)
    elif beam == 1 and self.lm is None and not any(g is not None for g in graphs or []):
      tokens = greedy_search(enc, enc_lengths, self.predictor, self.joiner, context_size=self.model.context_size)
    else:
      tokens = modified_beam_search(enc, enc_lengths, self.predictor, self.joiner, beam=max(beam, 1),
                                    context_size=self.model.context_size, context_graph=graphs, lm=self.lm)
    return [self.tokenizer.decode(t) for t in tokens]

  def transcribe_many(self, waves: Sequence[np.ndarray], prompt_pairs: Sequence[tuple[str, str]], *,
                      batch_size: int = 16, beam: int = 1, graphs: Sequence[ContextGraph | None] | None = None
                      ) -> list[str]:
    """:meth:`transcribe_batch` over any number of windows, ``batch_size`` at a time. The last batch is filled up
    by repeating its last row, so every batch has one shape and the encoder compiles once."""
    graphs = list(graphs) if graphs is not None else [None] * len(waves)
    texts: list[str] = []
    for rows, real in fixed_size_batches(len(waves), batch_size):
      out = self.transcribe_batch([waves[i] for i in rows], [prompt_pairs[i] for i in rows], beam=beam,
                                  graphs=[graphs[i] for i in rows])
      texts += out[:real]
    return texts

  def transcribe_file(self, path: str, *, style_prompt: str | None = None, content_prompt: str = "",
                      biasing_words: list[str] | None = None, beam: int = 1, boost: float = 2.0) -> str:
    """Text of a whole file of any length (streamed window by window)."""
    style = style_prompt_for(style_prompt)
    graph = hotword_graph(self.tokenizer, biasing_words, boost) if biasing_words else None
    if biasing_words and not content_prompt:
      content_prompt = " ".join(biasing_words)
    _, windows = stream_audio(path, prompt_asr.SAMPLE_RATE, self.window, min_seconds=0.05,
                              needed_by="the speech recogniser")
    return self.transcribe_windows(windows, style, content_prompt, beam=beam, graph=graph)

  def transcribe_windows(self, windows: Iterable[np.ndarray], style_prompt: str, content_prompt: str = "", *,
                         beam: int = 1, graph: ContextGraph | None = None) -> str:
    """Consecutive windows of one recording, each ``(L,)`` with ``L ≤ window``, → one text; each window's content
    prompt is ``content_prompt`` followed by the text decoded so far."""
    pieces: list[str] = []
    for wave in windows:
      history = " ".join([content_prompt, *pieces]).strip()
      text = self.transcribe_window(wave, style_prompt, history, beam=beam, graph=graph)
      if text:
        pieces.append(text)
    return " ".join(pieces)


def transcriber_from_args(args: Any, beam: int) -> Transcriber:
  """The :class:`Transcriber` of command-line ``args`` (``checkpoint``, ``decoder`` and the options of
  :func:`audiojax.asr_options.add_lm_args`), checked against the ``beam`` it will decode with."""
  if beam < 1:
    raise UserError(f"--beam {beam}: give a beam width of at least 1")
  lm = None
  if args.lm:
    if beam < 2:
      raise UserError(f"--lm {args.lm} is fused into beam search; give --beam 2 or more (8 is a good start)")
    lm = CharNgramLM.from_file(args.lm, args.lm_order)
  return Transcriber.from_checkpoint(args.checkpoint, decoder=args.decoder, lm=lm, lm_weight=args.lm_weight,
                                     lm_token_bonus=args.lm_token_bonus, lm_oov_penalty=args.lm_oov_penalty)


def _predict(model, variables, tokens):
  return model.apply(variables, tokens, method="predictor")


def _join(model, variables, enc, pred):
  return model.apply(variables, enc, pred, method="joiner")
