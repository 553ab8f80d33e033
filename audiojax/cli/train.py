"""``train``, ``eval`` and ``average``: runs of the one trainer on any task (``config.task``)."""
from __future__ import annotations

import argparse
import json
import os


def _train(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.config import loader
  from audiojax.tasks import registry
  from audiojax.train import loop

  config = loader.override(loader.load(args.config), overrides)
  task = registry.build(config)
  result = loop.train(task, args.workdir)
  line = task.summary(result["eval"]) if result["eval"] else ""
  if line:
    print(f"step {result['step']}: {line}")
  print(f"checkpoints in {os.path.join(args.workdir, 'checkpoints')}; metrics in "
        f"{os.path.join(args.workdir, 'metrics.jsonl')}")


def _eval(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.tasks import registry
  from audiojax.train import loop

  result = loop.evaluate(registry.task_for_workdir(args.workdir, overrides), args.workdir)
  print(json.dumps(result, indent=2))


def _average(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides
  from audiojax.tasks import registry
  from audiojax.train import loop

  no_overrides(overrides)
  out = args.out or os.path.join(args.workdir, f"averaged_last{args.last}")
  task = registry.task_for_workdir(args.workdir, local_mesh=True)
  steps = loop.export_average_of_last(task, args.workdir, args.last, out, force=args.force)
  print(f"averaged steps {', '.join(map(str, steps))} of {args.workdir} into {out}")


def _export(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides
  from audiojax.tasks import registry
  from audiojax.train import loop

  no_overrides(overrides)
  task = registry.task_for_workdir(args.workdir, local_mesh=True)
  step = loop.export_workdir(task, args.workdir, args.out, force=args.force)
  print(f"exported step {step} of {args.workdir} to {args.out} (model.safetensors, model.json, README.md model card)")


def register(sub: argparse._SubParsersAction) -> None:
  t = sub.add_parser("train", help="train (or resume) an experiment; extra --config.a.b=v arguments override fields")
  t.add_argument("--config", required=True, help="experiments/<family>/<name>.py[:arg]")
  t.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here; re-running resumes")
  t.set_defaults(fn=_train)

  e = sub.add_parser("eval", help="evaluate the newest checkpoint of a workdir on its eval split (--config.KEY=VALUE "
                                   "changes its config, e.g. --config.eval.decoder=ctc)")
  e.add_argument("--workdir", required=True)
  e.set_defaults(fn=_eval)

  a = sub.add_parser("average", help="export the mean of a workdir's newest checkpoints as a model directory")
  a.add_argument("--workdir", required=True)
  a.add_argument("--last", type=int, required=True, help="how many of the newest kept checkpoints to average")
  a.add_argument("--out", default="", help="the model directory to write (default WORKDIR/averaged_lastN)")
  a.add_argument("--force", action="store_true", help="replace the model directory already at --out")
  a.set_defaults(fn=_average)

  x = sub.add_parser("export", help="a workdir's newest checkpoint as a shareable model directory: safetensors "
                                     "weights, config, class names / tokenizer and a README.md model card")
  x.add_argument("workdir")
  x.add_argument("--out", required=True, help="the model directory to write (use it as --checkpoint)")
  x.add_argument("--force", action="store_true", help="replace the model directory already at --out")
  x.set_defaults(fn=_export)
