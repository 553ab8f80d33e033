"""Prompt-ASR commands: ``transcribe`` (files, with prompts, hotwords and a character LM), ``wer`` (word error
rate over a corpus split, utterances of any length) and ``lm-corpus`` (a character LM's training text), plus the
options every ASR tool shares."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from audiojax.cli import add_skip_errors_arg
from audiojax.decoding import DECODERS
from audiojax.errors import UserError
from audiojax.paths import default_data_dir


def add_decoder_arg(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--decoder", choices=DECODERS, default=DECODERS[0],
                      help="the RNN-T (default) or the auxiliary CTC head")


def add_eval_args(parser: argparse.ArgumentParser) -> None:
  """The checkpoint, split, data directory, utterance limit, style and decoder of an evaluation over a dataset."""
  parser.add_argument("--checkpoint", required=True, help="a PromptASR training workdir or model directory")
  parser.add_argument("--split", default="test")
  parser.add_argument("--data-dir", default=None)
  parser.add_argument("--limit", type=int, default=0, help="first N utterances (0: all)")
  parser.add_argument("--style", default="mixed-punc", help="style of the canonical style prompt")
  add_decoder_arg(parser)


def add_lm_args(parser: argparse.ArgumentParser) -> None:
  """A character n-gram LM fused into beam search (:mod:`audiojax.decoding.char_lm`)."""
  parser.add_argument("--lm", default=None, help="text file (one sentence per line) to train a character n-gram LM "
                                                 "on, fused into beam search (needs --beam > 1)")
  parser.add_argument("--lm-order", type=int, default=6, help="n of the character n-gram LM")
  parser.add_argument("--lm-weight", type=float, default=0.5, help="LM log-probability weight")
  parser.add_argument("--lm-token-bonus", type=float, default=0.0, help="score added per emitted token with --lm")
  parser.add_argument("--lm-oov-penalty", type=float, default=0.0,
                      help="score taken per word that is not a word of the --lm text")


def _transcribe(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.audio.io import duration_seconds
  from audiojax.cli import each_file, no_overrides
  from audiojax.inference.transcriber import transcriber_from_args

  no_overrides(overrides)
  words = None
  if args.biasing_list:
    if not os.path.isfile(args.biasing_list):
      raise UserError(f"--biasing-list '{args.biasing_list}' does not exist; give a text file with one word per line")
    with open(args.biasing_list, encoding="utf-8") as f:
      words = [w.strip() for w in f if w.strip()]
  transcriber = transcriber_from_args(args, args.beam)

  def transcribe(path: str) -> None:
    rate = duration_seconds(path)[1]
    if rate != 16000:
      print(f"note: '{path}' is {rate} Hz; resampled to 16000 Hz", file=sys.stderr)
    text = transcriber.transcribe_file(path, style_prompt=args.style_prompt, content_prompt=args.content_prompt,
                                      biasing_words=words, beam=args.beam, boost=args.boost)
    print(f"{path}\t{text}", flush=True)

  each_file(args.files, transcribe, args.skip_errors, "transcribe")


def _wer(args: argparse.Namespace, overrides: list[str]) -> None:
  """WER of a model on a corpus split: references and hypotheses compared in :func:`audiojax.eval.wer.normalize`
  form, the style prompt the canonical sentence of ``--style``, no content prompt."""
  import tensorflow_datasets as tfds

  from audiojax.audio.io import from_pcm16
  from audiojax.cli import no_overrides
  from audiojax.eval.wer import normalize, word_errors, write_results
  from audiojax.inference.transcriber import style_prompt_for, transcribe_corpus, transcriber_from_args

  no_overrides(overrides)
  transcriber = transcriber_from_args(args, args.beam)
  source = tfds.data_source(args.dataset, split=args.split, data_dir=args.data_dir or default_data_dir())
  count = min(args.limit or len(source), len(source))
  examples = [source[i] for i in range(count)]
  start = time.perf_counter()
  hyps = transcribe_corpus(transcriber, [from_pcm16(e["audio"]) for e in examples],
                           style_prompt=style_prompt_for(args.style), batch_size=args.batch_size, beam=args.beam)
  refs = [e["text"].decode("utf-8") for e in examples]
  errors, words = word_errors([normalize(r) for r in refs], [normalize(h) for h in hyps])
  result = {"dataset": args.dataset, "split": args.split, "utterances": count, "words": words, "beam": args.beam,
            "lm": args.lm and {"file": args.lm, "order": args.lm_order, "weight": args.lm_weight,
                               "token_bonus": args.lm_token_bonus, "oov_penalty": args.lm_oov_penalty},
            "wer": errors / max(words, 1), "seconds": round(time.perf_counter() - start, 1)}
  print(json.dumps(result))
  if args.out:
    with open(args.out, "w", encoding="utf-8") as f:
      for e, ref, hyp in zip(examples, refs, hyps):
        f.write(f"{e['id'].decode('utf-8')}\t{ref}\t{hyp}\n")
  if args.results_dir:
    name = f"{args.split}-{args.decoder}-beam{args.beam}{'-lm' if args.lm else ''}"
    write_results(args.results_dir, name, [e["id"].decode("utf-8") for e in examples],
                  [normalize(r) for r in refs], [normalize(h) for h in hyps])


def styled_transcripts(dataset: str, split: str, styles_: list[str], data_dir: str | None = None) -> list[str]:
  """The ``text`` of every example of ``dataset/split`` rendered in each of ``styles_``."""
  import tensorflow_datasets as tfds

  from audiojax.text import styles

  source = tfds.data_source(dataset, split=split, data_dir=data_dir or default_data_dir())
  texts = [source[i]["text"].decode("utf-8") for i in range(len(source))]
  return [styles.apply_style(t, s) for s in styles_ for t in texts]


def _lm_corpus(args: argparse.Namespace, overrides: list[str]) -> None:
  """Writes a split's transcripts in the output styles, one per line (a character LM's training text,
  :mod:`audiojax.decoding.char_lm`), and reports the LM's per-character perplexity on another split."""
  from audiojax.cli import no_overrides
  from audiojax.decoding.char_lm import CharNgramLM

  no_overrides(overrides)
  lines = styled_transcripts(args.dataset, args.split, args.styles, args.data_dir)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out, "w", encoding="utf-8") as f:
    f.writelines(line + "\n" for line in lines)
  print(f"wrote {len(lines)} lines to {args.out}")
  if args.eval_split:
    lm = CharNgramLM(lines, args.order)
    held_out = styled_transcripts(args.dataset, args.eval_split, args.styles, args.data_dir)
    print(f"order {args.order}: per-character perplexity {lm.perplexity(held_out):.3f} on {args.eval_split} "
          f"({len(held_out)} lines), {lm.perplexity(lines):.3f} on {args.split}")


def register(sub: argparse._SubParsersAction) -> None:
  tr = sub.add_parser("transcribe", help="speech to text with a PromptASR model, one line per file")
  tr.add_argument("files", nargs="+", metavar="FILE")
  tr.add_argument("--checkpoint", required=True, help="a PromptASR training workdir or model directory")
  tr.add_argument("--content-prompt", default="", help="preceding text or rare words that may occur")
  tr.add_argument("--style-prompt", default=None,
                  help="an example of the wanted style, or a style name (mixed-punc, upper-no-punc, lower-punc, "
                       "lower-no-punc); default mixed-punc")
  tr.add_argument("--biasing-list", default=None,
                  help="file of words (one per line): the content prompt (unless given) and hotword boosting")
  tr.add_argument("--beam", type=int, default=1, help="1: greedy; >1: beam search")
  add_decoder_arg(tr)
  tr.add_argument("--boost", type=float, default=2.0, help="hotword bonus per token (with --biasing-list)")
  add_lm_args(tr)
  add_skip_errors_arg(tr)
  tr.set_defaults(fn=_transcribe)

  w = sub.add_parser("wer", help="word error rate of a PromptASR model on a corpus split, utterances of any length")
  add_eval_args(w)
  w.add_argument("--dataset", required=True, help="e.g. asterisk_en or espeak_prompt/small")
  w.add_argument("--batch-size", type=int, default=16)
  w.add_argument("--beam", type=int, default=1, help="1: greedy; >1: beam search")
  add_lm_args(w)
  w.add_argument("--out", default=None, help="write id, reference and hypothesis per line (TSV) here")
  w.add_argument("--results-dir", default=None,
                 help="write icefall's recogs-*, errs-* (alignments, frequent errors) and wer-summary-* files here")
  w.set_defaults(fn=_wer)

  c = sub.add_parser("lm-corpus", help="a split's transcripts in the output styles: a character LM's training text")
  c.add_argument("--dataset", required=True, help="e.g. espeak_prompt/small")
  c.add_argument("--split", default="train")
  c.add_argument("--styles", nargs="+", default=["mixed-punc", "upper-no-punc"])
  c.add_argument("--data-dir", default=None)
  c.add_argument("--out", required=True, help="the text file to write")
  c.add_argument("--order", type=int, default=6, help="order of the LM whose perplexity is reported")
  c.add_argument("--eval-split", default="test", help="split whose perplexity is reported ('' for none)")
  c.set_defaults(fn=_lm_corpus)
