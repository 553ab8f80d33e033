"""Model directories: what a trained or converted model is handed on as — its constructor, its variables and the
files inference needs (class names, a tokenizer), without any training state.

Layout: ``model.json`` (``{"family": <models module>, "config": {...}}``), ``variables/`` (Orbax), and
``class_names.txt`` where the model has classes. Training workdirs hold full train states instead; both are read by
:func:`audiojax.train.checkpoint.restore_variables`.
"""
from __future__ import annotations

import json
import os
from typing import Any

import orbax.checkpoint as ocp

from audiojax.errors import UserError
from audiojax.train import checkpoint

META = "model.json"
CLASS_NAMES = "class_names.txt"


def is_model_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, META))


def save(path: str, family: str, config: dict[str, Any], variables: Any, class_names: list[str] | None) -> None:
  """Writes ``variables`` and the constructor ``config`` of a ``family`` model (a module of
  :mod:`audiojax.models`) as the model directory ``path``."""
  path = os.path.abspath(path)
  os.makedirs(path, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(checkpoint.variables_dir(path), variables, force=True)
  with open(os.path.join(path, META), "w") as f:
    json.dump({"family": family, "config": config}, f, indent=2)
  if class_names is not None:
    write_class_names(path, class_names)


def read_family(path: str) -> str:
  """The family (models module) recorded in ``path``'s ``model.json``."""
  with open(os.path.join(path, META)) as f:
    return json.load(f).get("family", "")


def read_meta(path: str, family: str) -> dict[str, Any]:
  """The constructor config of the ``family`` model in ``path``; another family is a UserError."""
  with open(os.path.join(path, META)) as f:
    meta = json.load(f)
  if meta.get("family") != family:
    raise UserError(f"'{path}' holds a {meta.get('family')} model, not {family}")
  return meta["config"]


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
