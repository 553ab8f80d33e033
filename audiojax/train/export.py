"""Model directories: what a trained or converted model is handed on as — its constructor, its variables and the
files inference needs (class names, a tokenizer), without any training state.

Layout: ``model.json`` (``{"family": <models module>, "config": {...}}``), ``model.safetensors`` (the variables, one
tensor per path; directories written before hold an Orbax ``variables/`` folder instead, still read), and
``class_names.txt`` where the model has classes. Training workdirs hold full train states instead; both are read by
:func:`audiojax.train.checkpoint.restore_variables`.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable

from audiojax.errors import UserError
from audiojax.train import checkpoint

META = "model.json"
CLASS_NAMES = "class_names.txt"


def is_model_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, META))


def save(path: str, family: str, config: dict[str, Any], variables: Any, class_names: list[str] | None, *,
         assets: Callable[[str], None] | None = None, force: bool = False) -> None:
  """Writes ``variables`` and the constructor ``config`` of a ``family`` model (a module of
  :mod:`audiojax.models`) as the model directory ``path``; ``assets(folder)`` adds the files inference needs (a
  tokenizer...). The directory appears whole or not at all (written beside it, then renamed). A training workdir is
  never overwritten; another non-empty folder only when it is a model directory and ``force`` is set."""
  path = os.path.abspath(path)
  check_writable(path, force)
  tmp = f"{path}.partial-{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    checkpoint.write_weights(tmp, variables)
    with open(os.path.join(tmp, META), "w") as f:
      json.dump({"family": family, "config": config}, f, indent=2)
    if class_names is not None:
      write_class_names(tmp, class_names)
    if assets is not None:
      assets(tmp)
    old = f"{path}.replaced-{os.getpid()}"
    if os.path.exists(path):
      os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: str, force: bool) -> None:
  """A model directory may be written at ``path``: a missing or empty folder, or (``force``) a model directory."""
  if not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path)):
    return
  if not os.path.isdir(path):
    raise UserError(f"'{path}' is a file; give a folder for the model directory")
  if os.path.exists(os.path.join(path, "config.json")) or os.path.isdir(os.path.join(path, "checkpoints")):
    raise UserError(f"'{path}' is a training workdir; write the model directory somewhere else (--out)")
  if not is_model_dir(path):
    raise UserError(f"'{path}' is a non-empty folder that is not a model directory; choose a new --out")
  if not force:
    raise UserError(f"'{path}' already holds a model directory; choose a new --out or pass --force to replace it")


def read_meta(path: str, family: str) -> dict[str, Any]:
  """The constructor config of the ``family`` model in ``path``; another family, or a ``model.json`` that is not
  one, is a UserError."""
  file = os.path.join(path, META)
  try:
    with open(file) as f:
      meta = json.load(f)
  except ValueError as e:
    raise UserError(f"'{file}' is not valid JSON ({e}); convert or export the model again") from None
  if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
    raise UserError(f"'{file}' has no 'config' object; it was not written by audiojax: convert or export the model "
                    f"again")
  if meta.get("family") != family:
    raise UserError(f"'{path}' holds a {meta.get('family')} model, not {family}")
  if not (os.path.isfile(os.path.join(path, checkpoint.WEIGHTS)) or os.path.isdir(checkpoint.variables_dir(path))):
    raise UserError(f"model directory '{path}' has no {checkpoint.WEIGHTS}; convert or export the model again")
  return meta["config"]


def write_model_card(path: str, workdir: str, step: int, family: str) -> None:
  """``PATH/README.md``: what a model exported from ``workdir`` at ``step`` is — its data, its evaluation at that
  step, the command and environment that trained it, its config — plus copies of ``config.json`` (as
  ``training_config.json``) and ``environment.json``."""
  config = json.load(open(os.path.join(workdir, "config.json")))
  rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))] \
      if os.path.isfile(os.path.join(workdir, "metrics.jsonl")) else []
  evals = {k: v for r in rows if r.get("step") == step for k, v in r.items() if k.startswith("eval/")}
  env_file = os.path.join(workdir, "environment.json")
  runs = json.load(open(env_file))["runs"] if os.path.isfile(env_file) else []
  data = config.get("data", {})
  lines = [f"# {family} model: {os.path.basename(os.path.abspath(workdir))} at step {step}", "",
           f"Exported by audiojax from the training workdir `{workdir}` (task `{config.get('task')}`, "
           f"{config.get('train', {}).get('steps')} steps planned, step {step} exported). Load it with any "
           f"`--checkpoint` of its family's commands, or `audiojax.inference.load`.", "",
           "## Data", "", f"- dataset `{data.get('name')}`: trained on `{data.get('train_split')}`, evaluated on "
           f"`{data.get('eval_split')}`", "", f"## Evaluation at step {step}", ""]
  if evals:
    lines += ["| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(evals.items())]
  else:
    lines.append("No evaluation was recorded at this step.")
  lines += ["", "## How it was trained", ""]
  for run in runs:
    packages = ", ".join(f"{k} {v}" for k, v in run["packages"].items() if v)
    lines += [f"- from step {run['start_step']}: `{' '.join(run['command'])}` on {run['devices']['count']} × "
              f"{run['devices']['kind']} ({run['backend']}), git {run['git']['commit'] or 'unknown'}"
              f"{' (dirty)' if run['git']['dirty'] else ''}; {packages}"]
  lines += ["", "## Config", "", "```json", json.dumps(config, indent=2, sort_keys=True), "```", ""]
  with open(os.path.join(path, "README.md"), "w") as f:
    f.write("\n".join(lines))
  shutil.copyfile(os.path.join(workdir, "config.json"), os.path.join(path, "training_config.json"))
  if runs:
    shutil.copyfile(env_file, os.path.join(path, "environment.json"))


def write_class_names(path: str, names: list[str]) -> None:
  with open(os.path.join(path, CLASS_NAMES), "w") as f:
    f.write("\n".join(names) + "\n")


def read_class_names(path: str) -> list[str]:
  file = os.path.join(path, CLASS_NAMES)
  if not os.path.isfile(file):
    raise UserError(f"'{file}' does not exist; point --checkpoint at a training workdir or a converted model "
                    f"directory")
  with open(file) as f:
    return [line.rstrip("\n") for line in f if line.strip()]
