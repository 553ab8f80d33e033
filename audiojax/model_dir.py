"""Model directories: a model's constructor arguments, its variables and its class names, without training state.

Layout: ``model.json`` ({"family": ..., "config": {...}}), ``variables/`` (Orbax), ``class_names.txt``.
Converted published checkpoints are written in this form; training workdirs hold full train states instead.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from audiojax.errors import UserError

META = "model.json"
CLASS_NAMES = "class_names.txt"


def is_model_dir(path: str) -> bool:
  return os.path.isfile(os.path.join(path, META))


def save(path: str, family: str, config: dict[str, Any], variables: Any, class_names: list[str] | None) -> None:
  path = os.path.abspath(path)
  os.makedirs(path, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(path, "variables"), variables, force=True)
  with open(os.path.join(path, META), "w") as f:
    json.dump({"family": family, "config": config}, f, indent=2)
  if class_names is not None:
    write_class_names(path, class_names)


def read_meta(path: str, family: str) -> dict[str, Any]:
  with open(os.path.join(path, META)) as f:
    meta = json.load(f)
  if meta.get("family") != family:
    raise UserError(f"'{path}' holds a {meta.get('family')} model, not {family}")
  return meta["config"]


def restore_variables(path: str, abstract: Any) -> Any:
  """Restores ``variables/`` into the structure, shapes and dtypes of ``abstract`` (on the default device)."""
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), abstract)
  with ocp.StandardCheckpointer() as checkpointer:
    return checkpointer.restore(os.path.join(os.path.abspath(path), "variables"), target)


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
