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
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax import config as config_lib
from audiojax import model_dir
from audiojax.audio.io import stream_audio
from audiojax.decode.context_graph import ContextGraph
from audiojax.decode.transducer import greedy_search, modified_beam_search
from audiojax.errors import UserError
from audiojax.models import prompt_asr
from audiojax.text import prompts, styles
from audiojax.text.tokenizer import Tokenizer

FAMILY = "prompt_asr"
TOKENIZER_FILE = "tokenizer.model"


def save(path: str, config: Any, variables: Any, tokenizer_file: str) -> None:
  """Writes a model directory: constructor arguments, variables and the tokenizer."""
  meta = {"variant": config.model.variant, "overrides": dict(config.model.get("overrides", {}) or {}),
          "max_seconds": float(config.data.max_seconds), "max_prompt_bytes": int(config.data.max_prompt_bytes)}
  model_dir.save(path, FAMILY, meta, variables, None)
  shutil.copyfile(tokenizer_file, os.path.join(path, TOKENIZER_FILE))


def load(path: str) -> tuple[prompt_asr.PromptASR, dict, Tokenizer, dict[str, Any]]:
  """``(model, variables, tokenizer, settings)`` from a model directory or a training workdir."""
  tokenizer_file = os.path.join(path, TOKENIZER_FILE)
  if not os.path.isfile(tokenizer_file):
    raise UserError(f"'{path}' has no {TOKENIZER_FILE}; point --checkpoint at a PromptASR training workdir or model "
                    f"directory")
  tokenizer = Tokenizer(tokenizer_file)
  if model_dir.is_model_dir(path):
    meta = model_dir.read_meta(path, FAMILY)
    model = prompt_asr.Model(meta["variant"], vocab_size=tokenizer.vocab_size, **meta["overrides"])
    settings = {"max_seconds": meta["max_seconds"], "max_prompt_bytes": meta["max_prompt_bytes"]}
    abstract = nn.meta.unbox(jax.eval_shape(lambda: _init(model, settings)))
    return model, model_dir.restore_variables(path, abstract), tokenizer, settings
  config_file = os.path.join(path, "config.json")
  if not os.path.isfile(config_file):
    raise UserError(f"'{path}' is neither a model directory nor a training workdir (no model.json or config.json)")
  from audiojax.train import loop  # the trainer restores its own checkpoints
  config = config_lib.restore(config_file)
  with config.unlocked():
    config.tokenizer.path = tokenizer_file
  trainer, state, _ = loop.load_for_inference(path, config)
  settings = {"max_seconds": float(config.data.max_seconds), "max_prompt_bytes": int(config.data.max_prompt_bytes)}
  variables = jax.device_get({"params": state.params, **state.model_state})
  return trainer.task.model, variables, tokenizer, settings


def _init(model: prompt_asr.PromptASR, settings: dict[str, Any]) -> dict:
  samples = int(settings["max_seconds"] * prompt_asr.SAMPLE_RATE)
  ids = jnp.zeros((1, settings["max_prompt_bytes"]), jnp.int32)
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
  """Transcribes waves with fixed-size windows (one compilation) and optional prompts, beam and hotwords."""

  def __init__(self, model: prompt_asr.PromptASR, variables: dict, tokenizer: Tokenizer, settings: dict[str, Any]):
    self.model, self.variables, self.tokenizer = model, variables, tokenizer
    self.window = int(settings["max_seconds"] * prompt_asr.SAMPLE_RATE)
    self.max_prompt_bytes = int(settings["max_prompt_bytes"])
    # stable callables, so the decoders' compiled steps are reused across windows
    self.predictor = jax.jit(functools.partial(_predict, model, variables))
    self.joiner = jax.jit(functools.partial(_join, model, variables))

  @classmethod
  def from_checkpoint(cls, path: str) -> "Transcriber":
    model, variables, tokenizer, settings = load(path)
    return cls(model, variables, tokenizer, settings)

  @functools.cached_property
  def _encode(self):
    def encode(variables, wave, wave_lengths, ids, lengths, style_lengths):
      memory = self.model.apply(variables, ids, lengths, style_lengths, method="encode_prompt")
      return self.model.apply(variables, wave, wave_lengths, memory, lengths, method="encode_speech")
    return jax.jit(encode)

  def transcribe_window(self, wave: np.ndarray, style_prompt: str, content_prompt: str, *, beam: int = 1,
                        graph: ContextGraph | None = None) -> str:
    """One window ``wave (L,)`` with ``L ≤ window`` → text."""
    padded = np.zeros((1, self.window), np.float32)
    padded[0, :wave.shape[0]] = wave
    ids, length, style_length = prompts.encode_prompt(style_prompt, content_prompt, self.max_prompt_bytes)
    enc, lengths = self._encode(self.variables, padded, np.asarray([wave.shape[0]], np.int32), ids[None],
                                np.asarray([length], np.int32), np.asarray([style_length], np.int32))
    if beam == 1 and graph is None:
      tokens = greedy_search(enc, lengths, self.predictor, self.joiner, context_size=self.model.context_size)[0]
    else:
      tokens = modified_beam_search(enc, lengths, self.predictor, self.joiner, beam=max(beam, 1),
                                    context_size=self.model.context_size, context_graph=graph)[0]
    return self.tokenizer.decode(tokens)

  def transcribe_file(self, path: str, *, style_prompt: str | None = None, content_prompt: str = "",
                      biasing_words: list[str] | None = None, beam: int = 1, boost: float = 2.0) -> str:
    """Text of a whole file of any length (streamed window by window)."""
    style = style_prompt_for(style_prompt)
    graph = hotword_graph(self.tokenizer, biasing_words, boost) if biasing_words else None
    if biasing_words and not content_prompt:
      content_prompt = " ".join(biasing_words)
    _, windows = stream_audio(path, prompt_asr.SAMPLE_RATE, self.window, min_seconds=0.05,
                              needed_by="the speech recogniser")
    pieces: list[str] = []
    for wave in windows:
      history = " ".join([content_prompt, *pieces]).strip()
      text = self.transcribe_window(wave, style, history, beam=beam, graph=graph)
      if text:
        pieces.append(text)
    return " ".join(pieces)


def _predict(model, variables, tokens):
  return model.apply(variables, tokens, method="predictor")


def _join(model, variables, enc, pred):
  return model.apply(variables, enc, pred, method="joiner")
