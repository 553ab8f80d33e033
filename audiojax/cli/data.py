"""``data build`` and ``data export``: datasets built from the layouts users download, or offline."""
from __future__ import annotations

import argparse

from audiojax.paths import default_data_dir


def _data(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides
  from audiojax.data import builders

  no_overrides(overrides)
  builder = builders.build(args.name, args.data_dir, manual_dir=args.manual_dir)
  if args.action == "build":
    for split, info in builder.info.splits.items():
      print(f"{args.name} {split}: {info.num_examples} examples")
    print(f"in {builder.data_dir}")
    return
  builders.export_example(builder, args.split, args.index, args.out)


def register(sub: argparse._SubParsersAction) -> None:
  d = sub.add_parser("data", help="build a dataset, or export one example as a wav file")
  d.add_argument("action", choices=("build", "export"))
  d.add_argument("name", help="e.g. gm_instruments/demo or audioset/balanced")
  d.add_argument("--data-dir", default=default_data_dir())
  d.add_argument("--manual-dir", default=None, help="directory of a corpus you downloaded (AudioSet)")
  d.add_argument("--split", default="test")
  d.add_argument("--index", type=int, default=0)
  d.add_argument("--out", default="example.wav")
  d.set_defaults(fn=_data)
