"""The training text of a character LM (:mod:`audiojax.decode.char_lm`): a corpus split's transcripts rendered in the
output styles, one sentence per line, and the LM's per-character perplexity on another split.

Run: ``python -m audiojax.text.lm_corpus --dataset espeak_prompt/small --split train --out lm.txt``.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from audiojax.decode.char_lm import CharNgramLM
from audiojax.errors import UserError
from audiojax.text import styles


def styled_transcripts(dataset: str, split: str, styles_: Sequence[str], data_dir: str | None = None) -> list[str]:
  """The ``text`` of every example of ``dataset/split`` rendered in each of ``styles_``."""
  import tensorflow_datasets as tfds

  from audiojax.configs import default_data_dir

  source = tfds.data_source(dataset, split=split, data_dir=data_dir or default_data_dir())
  texts = [source[i]["text"].decode("utf-8") for i in range(len(source))]
  return [styles.apply_style(t, s) for s in styles_ for t in texts]


def main(argv: Sequence[str] | None = None) -> None:
  p = argparse.ArgumentParser(description="Write a corpus split's transcripts in the given styles (one per line), "
                                          "the training text of a character LM, and report its perplexity")
  p.add_argument("--dataset", required=True, help="e.g. espeak_prompt/small")
  p.add_argument("--split", default="train")
  p.add_argument("--styles", nargs="+", default=["mixed-punc", "upper-no-punc"])
  p.add_argument("--data-dir", default=None)
  p.add_argument("--out", required=True, help="the text file to write")
  p.add_argument("--order", type=int, default=6, help="order of the LM whose perplexity is reported")
  p.add_argument("--eval-split", default="test", help="split whose perplexity is reported ('' for none)")
  args = p.parse_args(argv)
  try:
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
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  main()
