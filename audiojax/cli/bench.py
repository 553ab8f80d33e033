"""``bench [ced|prompt-asr|attention|codec|valle]``: speed on this machine, each figure next to a baseline run in the
same process (``make bench`` runs all five)."""
from __future__ import annotations

import argparse
import math

from audiojax.errors import UserError


def _bench(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides

  no_overrides(overrides)
  if args.what == "ced":
    from audiojax.bench import ced
    ced.main(variant=args.variant, quick=args.quick)
  elif args.what == "prompt-asr":
    from audiojax.bench import prompt_asr
    prompt_asr.main(repeats=2 if args.quick else 5)
  elif args.what == "codec":
    from audiojax.bench import codec
    if not (args.seconds > 0 and math.isfinite(args.seconds)):
      raise UserError(f"--seconds {args.seconds:g}: give a positive number of seconds of audio (e.g. 10)")
    codec.main(seconds=args.seconds, repeats=2 if args.quick else 5)
  elif args.what == "valle":
    from audiojax.bench import valle
    if args.tokens < 1:
      raise UserError(f"--tokens {args.tokens}: give a positive number of tokens to generate (e.g. 500)")
    valle.main(tokens=args.tokens, repeats=1 if args.quick else 3)
  else:
    from audiojax.bench import attention
    attention.main()


def register(sub: argparse._SubParsersAction) -> None:
  b = sub.add_parser("bench", help="speed: CED (inference clips/s, train steps/s, GFLOP/s vs the matmul peak), the "
                                    "Prompt-ASR encoders, the attention kernels against XLA, the EnCodec codec's "
                                    "real-time factors against the PyTorch original, or VALL-E's KV-cached decoding")
  b.add_argument("what", nargs="?", choices=("ced", "prompt-asr", "attention", "codec", "valle"), default="ced")
  b.add_argument("--variant", default="mini", help="CED variant")
  b.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
  b.add_argument("--seconds", type=float, default=10.0,
                 help="codec: seconds of audio to encode and decode (batch 1; default 10)")
  b.add_argument("--tokens", type=int, default=500, help="valle: codebook-1 tokens to generate (default 500)")
  b.set_defaults(fn=_bench)
