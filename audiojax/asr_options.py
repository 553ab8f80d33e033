"""Names the PromptASR command lines share with inference: the decoders, and the options every ASR evaluation tool
takes. Imports nothing heavy, so ``--help`` stays fast."""
from __future__ import annotations

import argparse

DECODERS = ("transducer", "ctc")  # the RNN-T, or the auxiliary CTC head


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
  """A character n-gram LM fused into beam search (:mod:`audiojax.decode.char_lm`)."""
  parser.add_argument("--lm", default=None, help="text file (one sentence per line) to train a character n-gram LM "
                                                 "on, fused into beam search (needs --beam > 1)")
  parser.add_argument("--lm-order", type=int, default=6, help="n of the character n-gram LM")
  parser.add_argument("--lm-weight", type=float, default=0.5, help="LM log-probability weight")
  parser.add_argument("--lm-token-bonus", type=float, default=0.0, help="score added per emitted token with --lm")
  parser.add_argument("--lm-oov-penalty", type=float, default=0.0,
                      help="score taken per word that is not a word of the --lm text")
