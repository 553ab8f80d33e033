"""Word error rate of a Prompt-ASR model on a whole ASR corpus split, utterances of any length.

Utterances that fit the model's window are decoded in batches; longer ones in consecutive windows, each prompted
with the text decoded so far (as ``transcribe`` does). The style prompt is the canonical sentence of ``--style`` and
there is no content prompt. References and hypotheses are compared in the recipe's normalised form (upper case,
letters and apostrophes only) after spelling out what a speaker says for single digits and the keypad symbols
(``press 1`` → ``press one``, ``*`` → ``star``, ``#`` → ``pound``: the Asterisk prompts write key presses that way).
Longer numerals are left as they are, so they drop out of the reference and whatever the model hears for them
counts as insertions: the WER is then pessimistic, never flattering.

Run: ``python -m audiojax.eval.corpus_wer --checkpoint WORKDIR --dataset asterisk_en [--split test] [--out hyps.tsv]``;
``--beam 8 --lm lm.txt`` fuses a character n-gram LM into beam search (:mod:`audiojax.decode.char_lm`).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from typing import Sequence

import numpy as np

from audiojax.asr_options import add_eval_args, add_lm_args
from audiojax.errors import UserError
from audiojax.eval.wer import word_errors
from audiojax.text import styles

_SPOKEN = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
           "8": "eight", "9": "nine", "*": "star", "#": "pound"}
_SPOKEN_TOKEN = re.compile(r"(?<![\w.])([0-9*#])(?!\w|\.\d)")  # a lone digit or keypad symbol, not part of 28.8 or 500


def spoken_form(text: str) -> str:
  """Single digits and ``*``/``#`` standing alone → their spoken words; everything else unchanged."""
  return _SPOKEN_TOKEN.sub(lambda m: _SPOKEN[m.group(1)], text)


def normalize(text: str) -> str:
  return styles.normalize_for_wer(spoken_form(text))


def transcribe_corpus(transcriber, waves: Sequence[np.ndarray], *, style_prompt: str, batch_size: int = 16,
                      beam: int = 1) -> list[str]:
  """One text per wave ``(L,)`` (any length) with :class:`audiojax.asr_inference.Transcriber`."""
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


def main(argv: Sequence[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_eval_args(p)
  p.add_argument("--dataset", required=True, help="e.g. asterisk_en or espeak_prompt/small")
  p.add_argument("--batch-size", type=int, default=16)
  p.add_argument("--beam", type=int, default=1, help="1: greedy; >1: beam search")
  add_lm_args(p)
  p.add_argument("--out", default=None, help="write id, reference and hypothesis per line (TSV) here")
  args = p.parse_args(argv)
  import tensorflow_datasets as tfds

  from audiojax.asr_inference import style_prompt_for, transcriber_from_args
  from audiojax.audio.io import from_pcm16
  from audiojax.configs import default_data_dir

  try:
    transcriber = transcriber_from_args(args, args.beam)
    source = tfds.data_source(args.dataset, split=args.split, data_dir=args.data_dir or default_data_dir())
    count = min(args.limit or len(source), len(source))
    examples = [source[i] for i in range(count)]
    start = time.perf_counter()
    hyps = transcribe_corpus(transcriber, [from_pcm16(e["audio"]) for e in examples],
                             style_prompt=style_prompt_for(args.style), batch_size=args.batch_size, beam=args.beam)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
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


if __name__ == "__main__":
  main()
