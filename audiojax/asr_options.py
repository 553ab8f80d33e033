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
