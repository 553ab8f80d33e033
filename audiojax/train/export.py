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
from typing import Any, Callable

from audiojax import paths
from audiojax.errors import UserError
from audiojax.train import checkpoint

META = "model.json"
CLASS_NAMES = "class_names.txt"


def is_model_dir(path: str) -> bool:
  return (paths.resolve(path) / META).is_file()


def save(path: str, family: str, config: dict[str, Any], variables: Any, class_names: list[str] | None, *,
         assets: Callable[[str], None] | None = None, force: bool = False) -> None:
  """Writes ``variables`` and the constructor ``config`` of a ``family`` model (a module of
  :mod:`audiojax.models`) as the model directory ``path``; ``assets(folder)`` adds the files inference needs (a
  tokenizer...). A local directory appears whole or not at all (written beside it, then renamed); in a bucket the
  files are written in place, ``model.json`` last, so a reader never takes a half-written directory for a model. A
  training workdir is never overwritten; another non-empty folder only when it is a model directory and ``force``
  is set."""
  target = paths.resolve(path)
  check_writable(str(target), force)
  if paths.is_uri(target):
    if target.exists():
      target.rmtree()
    _write_model_files(target, family, config, variables, class_names, assets)
    return
  tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
  old = target.with_name(f"{target.name}.replaced-{os.getpid()}")
  if tmp.exists():
    tmp.rmtree()
  try:
    _write_model_files(tmp, family, config, variables, class_names, assets)
    if target.exists():
      target.replace(old)
    tmp.replace(target)
    if old.exists():
      old.rmtree()
  finally:
    if tmp.exists():
      tmp.rmtree()


def _write_model_files(folder: Any, family: str, config: dict[str, Any], variables: Any,
                       class_names: list[str] | None, assets: Callable[[str], None] | None) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  checkpoint.write_weights(str(folder), variables)
  if class_names is not None:
    write_class_names(str(folder), class_names)
  if assets is not None:
    assets(str(folder))
  (folder / META).write_text(json.dumps({"family": family, "config": config}, indent=2))


def check_writable(path: str, force: bool) -> None:
  """A model directory may be written at ``path``: a missing or empty folder, or (``force``) a model directory."""
  folder = paths.resolve(path)
  if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
    return
  if not folder.is_dir():
    raise UserError(f"'{path}' is a file; give a folder for the model directory")
  if (folder / "config.json").exists() or (folder / "checkpoints").is_dir():
    raise UserError(f"'{path}' is a training workdir; write the model directory somewhere else (--out)")
  if not is_model_dir(path):
    raise UserError(f"'{path}' is a non-empty folder that is not a model directory; choose a new --out")
  if not force:
    raise UserError(f"'{path}' already holds a model directory; choose a new --out or pass --force to replace it")


def read_meta(path: str, family: str) -> dict[str, Any]:
  """The constructor config of the ``family`` model in ``path``; another family, or a ``model.json`` that is not
  one, is a UserError."""
  file = paths.resolve(path) / META
  try:
    meta = json.loads(file.read_text())
  except ValueError as e:
    raise UserError(f"'{file}' is not valid JSON ({e}); convert or export the model again") from None
  if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
    raise UserError(f"'{file}' has no 'config' object; it was not written by audiojax: convert or export the model "
                    f"again")
  if meta.get("family") != family:
    raise UserError(f"'{path}' holds a {meta.get('family')} model, not {family}")
  if not ((paths.resolve(path) / checkpoint.WEIGHTS).is_file() or checkpoint.variables_dir(path).is_dir()):
    raise UserError(f"model directory '{path}' has no {checkpoint.WEIGHTS}; convert or export the model again")
  return meta["config"]


def write_model_card(path: str, workdir: str, step: int, family: str) -> None:
  """``PATH/README.md``: what a model exported from ``workdir`` at ``step`` is — its data, its evaluation at that
  step, the command and environment that trained it, its config — plus copies of ``config.json`` (as
  ``training_config.json``) and ``environment.json``."""
  run_dir, folder = paths.resolve(workdir), paths.resolve(path)
  config = json.loads((run_dir / "config.json").read_text())
  metrics = run_dir / "metrics.jsonl"
  rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
  evals = {k: v for r in rows if r.get("step") == step for k, v in r.items() if k.startswith("eval/")}
  env_file = run_dir / "environment.json"
  runs = json.loads(env_file.read_text())["runs"] if env_file.is_file() else []
  data = config.get("data", {})
  lines = [f"# {family} model: {run_dir.name} at step {step}", "",
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
  (folder / "README.md").write_text("\n".join(lines))
  (run_dir / "config.json").copy(folder / "training_config.json", overwrite=True)
  if runs:
    env_file.copy(folder / "environment.json", overwrite=True)


def write_class_names(path: str, names: list[str]) -> None:
  (paths.resolve(path) / CLASS_NAMES).write_text("\n".join(names) + "\n")


def read_class_names(path: str) -> list[str]:
  file = paths.resolve(path) / CLASS_NAMES
  if not file.is_file():
    raise UserError(f"'{file}' does not exist; point --checkpoint at a training workdir or a converted model "
                    f"directory")
  return [line for line in file.read_text().splitlines() if line.strip()]
