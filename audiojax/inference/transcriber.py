"""Transcribing files with a trained PromptASR model: loading, prompts, windows for long files, hotword boosting.

A model is loaded from a training workdir (``config.json`` + checkpoints + ``tokenizer.model``) or a model directory
(:func:`audiojax.inference.load.prompt_asr`). Long files are cut into windows of the training length;
each window's content prompt is the user's content prompt followed by the text decoded so far (the prompt keeps its
most recent end), as the recipe's long-form transcription does.
"""
from __future__ import annotations

import functools
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.audio.io import stream_audio
from audiojax.data.pipeline import fixed_size_batches
from audiojax.decoding import DECODERS
from audiojax.decoding.char_lm import CharNgramLM, LmFusion
from audiojax.decoding.context_graph import ContextGraph
from audiojax.decoding.ctc import ctc_greedy, ctc_prefix_beam_search
from audiojax.decoding.transducer import greedy_search, modified_beam_search
from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.inference.load import prompt_encoding
from audiojax.models import prompt_asr
from audiojax.text import styles
from audiojax.text.tokenizer import Tokenizer


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
  (``lm``, :class:`~audiojax.decoding.char_lm.LmFusion`) are fused into either beam search."""

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
    (:class:`~audiojax.decoding.char_lm.LmFusion`)."""
    model, variables, tokenizer, settings = load.prompt_asr(path)
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


def transcribe_corpus(transcriber: Transcriber, waves: Sequence[np.ndarray], *, style_prompt: str,
                      batch_size: int = 16, beam: int = 1) -> list[str]:
  """One text per wave ``(L,)`` of any length: those that fit the model's window in batches, longer ones in
  consecutive windows, each prompted with the text decoded so far (as ``transcribe`` does)."""
  window = transcriber.window
  hyps: list[str | None] = [None] * len(waves)
  short = [i for i, w in enumerate(waves) if w.shape[0] <= window]
  texts = transcriber.transcribe_many([waves[i] for i in short], [(style_prompt, "")] * len(short),
                                     batch_size=batch_size, beam=beam)
  for i, text in zip(short, texts):
    hyps[i] = text
  for i, wave in enumerate(waves):
    if hyps[i] is None:
      hyps[i] = transcriber.transcribe_windows([wave[s:s + window] for s in range(0, wave.shape[0], window)],
                                               style_prompt, beam=beam)
  return hyps


def transcriber_from_args(args: Any, beam: int) -> Transcriber:
  """The :class:`Transcriber` of command-line ``args`` (``checkpoint``, ``decoder`` and the options of
  :func:`audiojax.cli.asr.add_lm_args`), checked against the ``beam`` it will decode with."""
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
