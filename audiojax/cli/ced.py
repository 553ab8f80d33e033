"""CED commands: ``tag`` (labels and timestamped events of audio files), ``probe`` (a linear probe on frozen
embeddings) and ``teacher`` (the consistent-distillation teachers' pass into a logit store)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from audiojax.cli import add_skip_errors_arg
from audiojax.errors import UserError
from audiojax.paths import default_data_dir


def _tag(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import each_file, no_overrides
  from audiojax.inference.tagger import Tagger

  no_overrides(overrides)
  if args.top_k < 1:
    raise UserError(f"--top-k {args.top_k}: give a positive number of labels")
  if not 0.0 < args.threshold < 1.0:
    raise UserError(f"--threshold {args.threshold}: give a probability between 0 and 1")
  tagger = Tagger.from_checkpoint(args.checkpoint)

  def tag(path: str) -> None:
    result = tagger.tag_file(path, threshold=args.threshold if args.timestamps else None)
    if result.source_rate != 16000:
      print(f"note: '{path}' is {result.source_rate} Hz; resampled to 16000 Hz", file=sys.stderr)
    top = tagger.top_k(result.probs, args.top_k)
    if args.format == "json":
      record = {"file": path, "duration": round(result.duration, 3),
                "top": [{"label": name, "probability": round(p, 4)} for name, p in top]}
      if args.timestamps:
        record["events"] = [{"start": round(e.start, 2), "end": round(e.end, 2), "label": e.label,
                             "probability": round(e.probability, 4)} for e in result.events]
      print(json.dumps(record), flush=True)
      return
    print(path)
    for name, prob in top:
      print(f"  {prob:.3f}  {name}")
    if args.timestamps:
      print(f"  events (probability ≥ {args.threshold:g}, 160 ms resolution):")
      for e in result.events:
        print(f"  {e.start:8.2f}–{e.end:<8.2f} {e.label}  {e.probability:.3f}")
    sys.stdout.flush()

  each_file(args.files, tag, args.skip_errors, "tag")


def _probe(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides
  from audiojax.inference import probe

  no_overrides(overrides)
  r = probe.run(args.checkpoint, args.task, args.data_dir, args.dataset)
  print(f"{args.task}: test {r['metric']} {r['test']:.4f} (baseline {r['baseline']:.4f}); linear probe on "
        f"{r['embedding_size']}-d scene embeddings, {r['train']} train / {r['test_examples']} test clips, "
        f"L2 {r['weight_decay']:g}")


def _teacher(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.audio import augment
  from audiojax.cli import no_overrides
  from audiojax.inference import teacher

  no_overrides(overrides)
  aug = None  # teacher_pass's default: the original's, scaled to the chunk
  if args.time_mask_frames is not None:
    aug = dataclasses.replace(augment.for_chunk(args.clip_seconds), time_mask_param=args.time_mask_frames)
  meta = teacher.teacher_pass(args.teachers, args.dataset, args.data_dir, args.out, split=args.split,
                              epochs=args.epochs, top_k=args.top_k, clip_seconds=args.clip_seconds,
                              batch_size=args.batch_size, seed=args.seed, aug=aug)
  per_chunk = 4 * meta.top_k + 4
  print(f"teacher store {args.out}: {meta.epochs} epochs × {meta.num_examples} chunks × top-{meta.top_k} "
        f"({per_chunk} bytes per chunk per epoch) from {len(meta.teachers)} teacher(s)")


def register(sub: argparse._SubParsersAction) -> None:
  g = sub.add_parser("tag", help="print the top-k labels of audio files")
  g.add_argument("files", nargs="+", metavar="FILE")
  g.add_argument("--checkpoint", required=True, help="a training workdir or a converted model directory")
  g.add_argument("--top-k", type=int, default=5)
  g.add_argument("--timestamps", action="store_true", help="also print events as start–end label probability")
  g.add_argument("--threshold", type=float, default=0.5, help="event threshold on the 160 ms patch probability")
  g.add_argument("--format", choices=("text", "json"), default="text", help="json: one JSON object per file")
  add_skip_errors_arg(g)
  g.set_defaults(fn=_tag)

  pr = sub.add_parser("probe", help="HEAR-style linear probe on frozen CED embeddings")
  pr.add_argument("--checkpoint", required=True, help="a training workdir or a converted model directory")
  pr.add_argument("--task", required=True, help="gm_family, gm_pitch or debsfx")
  pr.add_argument("--dataset", default=None, help="override the task's dataset, e.g. gm_instruments/small")
  pr.add_argument("--data-dir", default=default_data_dir())
  pr.set_defaults(fn=_probe)

  te = sub.add_parser("teacher", help="consistent-distillation teacher pass: ensemble top-k into a logit store")
  te.add_argument("--teachers", nargs="+", required=True, help="training workdirs or converted model directories")
  te.add_argument("--dataset", required=True, help="e.g. gm_instruments/demo or audioset/balanced")
  te.add_argument("--out", required=True, help="logit store directory (config.distill.store of the student)")
  te.add_argument("--split", default="train")
  te.add_argument("--epochs", type=int, default=4, help="augmented passes (the paper: 40)")
  te.add_argument("--top-k", type=int, default=20)
  te.add_argument("--clip-seconds", type=float, default=10.0, help="chunk length (the student's data.clip_seconds)")
  te.add_argument("--time-mask-frames", type=int, default=None,
                  help="time-mask parameter in mel frames (default: the paper's 192 per 10 s of chunk)")
  te.add_argument("--batch-size", type=int, default=32)
  te.add_argument("--seed", type=int, default=0)
  te.add_argument("--data-dir", default=default_data_dir())
  te.set_defaults(fn=_teacher)
