"""``bench [ced|prompt-asr|attention]``: speed on this machine, each figure next to a baseline run in the same
process (``make bench`` runs all three)."""
from __future__ import annotations

import argparse


def _bench(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides

  no_overrides(overrides)
  if args.what == "ced":
    from audiojax.bench import ced
    ced.main(variant=args.variant, quick=args.quick)
  elif args.what == "prompt-asr":
    from audiojax.bench import prompt_asr
    prompt_asr.main(repeats=2 if args.quick else 5)
  else:
    from audiojax.bench import attention
    attention.main()


def register(sub: argparse._SubParsersAction) -> None:
  b = sub.add_parser("bench", help="speed: CED (inference clips/s, train steps/s, GFLOP/s vs the matmul peak), the "
                                    "Prompt-ASR encoders, or the attention kernels against XLA")
  b.add_argument("what", nargs="?", choices=("ced", "prompt-asr", "attention"), default="ced")
  b.add_argument("--variant", default="mini", help="CED variant")
  b.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
  b.set_defaults(fn=_bench)
