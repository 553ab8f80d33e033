"""Experiment configs: ``experiments/<family>/<name>.py`` files with ``get_config(arg)``, plus command-line overrides.

``load("experiments/ced/demo.py:local")`` imports the file and calls ``get_config("local")``.
``override(config, ["--config.optim.lr=3e-4", "--config.train.steps", "100"])`` sets fields, parsing each value
as the type the field already has; an unknown key is a :class:`UserError`.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import sys
from typing import Any, Sequence

import ml_collections

from audiojax import paths
from audiojax.errors import UserError

PREFIX = "--config."


def importable_from_cwd() -> None:
  """Lets configs and studies import from the working directory (``experiments.<family>.studies...``), as
  ``python -m`` does and an installed ``audiojax`` script does not."""
  if os.getcwd() not in sys.path and "" not in sys.path:
    sys.path.append(os.getcwd())


def load(spec: str) -> ml_collections.ConfigDict:
  """``path.py[:arg]`` → the ConfigDict that the file's ``get_config(arg)`` returns."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise UserError(f"config file '{path}' does not exist; pass e.g. --config experiments/ced/demo.py")
  importable_from_cwd()
  module_spec = importlib.util.spec_from_file_location(f"audiojax_config_{abs(hash(path))}", path)
  module = importlib.util.module_from_spec(module_spec)
  sys.modules[module_spec.name] = module  # dataclasses in a config file look their module up there
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise UserError(f"config file '{path}' has a syntax error at line {e.lineno}: {e.msg}; fix the file") from None
  if not hasattr(module, "get_config"):
    raise UserError(f"config file '{path}' has no get_config(arg) function; define one that returns a ConfigDict")
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except (ValueError, KeyError, TypeError) as e:  # an argument the file rejects, e.g. ':bogus' or 'variant=huge'
    message = str(e.args[0]) if e.args else type(e).__name__
    raise UserError(f"config '{spec}': {message}; see the docstring of {path} for its arguments") from None
  return ml_collections.ConfigDict(config)


def _parse(text: str, current: Any, key: str) -> Any:
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
      return True
    if lowered in ("false", "0", "no"):
      return False
    raise UserError(f"--config.{key}={text}: expected true or false")
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    if current is None:
      return text
    raise UserError(f"--config.{key}={text}: cannot parse as {type(current).__name__}") from None
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    return float(value)
  if current is not None and not isinstance(value, type(current)) and not (
      isinstance(current, (list, tuple)) and isinstance(value, (list, tuple))):
    raise UserError(f"--config.{key}={text}: expected {type(current).__name__}, got {type(value).__name__}")
  return value


# groups whose keys are open (a model's fields, style names): a dict replaces them whole and their keys are checked
# where they are used; a dict given for any other group updates fields it already has
OPEN_GROUPS = ("model.overrides", "prompts.style_weights")


def set_field(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets ``config.<key>`` (dotted) from its command-line text."""
  *parents, leaf = key.split(".")
  node = config
  for i, part in enumerate(parents):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = ".".join(parents[:i]) or "the top level"
      valid = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"
      raise UserError(f"unknown config key '{key}' ('{part}' is not in {where}; valid keys: {valid})")
    node = node[part]
  if not isinstance(node, ml_collections.ConfigDict) or leaf not in node:
    where = ".".join(parents) or "the top level"
    valid = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "none"
    raise UserError(f"unknown config key '{key}' ('{leaf}' is not in {where}; valid keys: {valid})")
  current = node[leaf]
  if isinstance(current, ml_collections.ConfigDict):  # a whole group takes a dict literal
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = None
    if not isinstance(value, dict):
      raise UserError(f"config key '{key}' is a group; set one of its fields ({', '.join(sorted(current.keys()))}) "
                      f"or give a dict, e.g. --config.{key}=\"{{'depth': 2}}\"")
    if key in OPEN_GROUPS or not current.keys():
      with node.unlocked():
        node[leaf] = ml_collections.ConfigDict(value)
      return
    for field, item in value.items():  # a fixed group: each entry is one of its fields
      set_field(config, f"{key}.{field}", repr(item) if not isinstance(item, str) else item)
    return
  with node.unlocked():
    node[leaf] = _parse(text, current, key)


def override(config: ml_collections.ConfigDict, args: Sequence[str]) -> ml_collections.ConfigDict:
  """Applies ``--config.a.b=v`` / ``--config.a.b v`` arguments in order; anything else is a UserError."""
  args = list(args)
  i = 0
  while i < len(args):
    arg = args[i]
    if not arg.startswith(PREFIX):
      raise UserError(f"unexpected argument '{arg}'; config overrides look like --config.train.steps=100")
    key, eq, text = arg[len(PREFIX):].partition("=")
    if not eq:
      if i + 1 >= len(args):
        raise UserError(f"{arg} needs a value, e.g. {arg}=VALUE")
      i += 1
      text = args[i]
    set_field(config, key, text)
    i += 1
  return config


def save(config: ml_collections.ConfigDict, path: str) -> None:
  """Writes ``config`` as JSON at ``path``, atomically (a reader sees the old file or the new one)."""
  paths.write_atomic(path, config.to_json_best_effort(indent=2, sort_keys=True))


def restore(path: str) -> ml_collections.ConfigDict:
  """Reads a config saved by :func:`save` (a workdir's ``config.json``)."""
  if not paths.resolve(path).is_file():
    raise UserError(f"'{path}' does not exist; point --workdir/--checkpoint at a directory written by "
                    f"'python -m audiojax train'")
  try:
    return ml_collections.ConfigDict(json.loads(paths.resolve(path).read_text()))
  except (ValueError, TypeError) as e:
    raise UserError(f"'{path}' is not a config written by 'python -m audiojax train' ({e}); restore it from the "
                    f"run's copy or train again") from None
