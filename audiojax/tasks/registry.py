"""The registry: one entry per task name (``config.task``) — its task class (which carries its primary metric and
direction), its base config and its model module. A new family adds its own files and one line to ``ENTRIES``.

A study's task may live outside the package, beside its config: ``config.task = "package.module:Class"`` (imported
from the working directory, e.g. ``experiments.prompt_asr.studies.identical_audio:IdenticalAudioTask``); it takes the
base config and model module of the registered task it derives from.

Model directories name a model module (``model.json``'s ``family``); :func:`model_module` finds it among the
registered ones (plus the frozen encoders no task trains, such as BERT).
"""
from __future__ import annotations

import dataclasses
import importlib
import types
from typing import Callable, Sequence

import ml_collections

from audiojax import paths
from audiojax.config import ced as ced_config
from audiojax.config import codec as codec_config
from audiojax.config import codec_lm as codec_lm_config
from audiojax.config import loader
from audiojax.config import prompt_asr as prompt_asr_config
from audiojax.errors import UserError
from audiojax.models import bert, ced, codec, prompt_asr, valle
from audiojax.tasks.asr import AsrTask
from audiojax.tasks.base import Task
from audiojax.tasks.codec import CodecTask
from audiojax.tasks.codec_lm import CodecLmTask
from audiojax.tasks.distill import DistillTask
from audiojax.tasks.tagging import TaggingTask
from audiojax.train import export


@dataclasses.dataclass(frozen=True)
class Entry:
  task: type[Task]
  base_config: Callable[[], ml_collections.ConfigDict]
  model: types.ModuleType  # FAMILY, from_config(config), to_config(model), example_inputs(model)

  @property
  def primary_metric(self) -> tuple[str, str]:
    """``(eval key, "max" | "min")``."""
    return self.task.primary_metric, self.task.primary_metric_mode


ENTRIES = {
    "tagging": Entry(TaggingTask, ced_config.tagging, ced),
    "distill": Entry(DistillTask, ced_config.distill, ced),
    "asr": Entry(AsrTask, prompt_asr_config.asr, prompt_asr),
    "codec": Entry(CodecTask, codec_config.codec, codec),
    "codec_lm": Entry(CodecLmTask, codec_lm_config.codec_lm, valle),
}
FROZEN_MODELS = (bert,)  # model families that are only ever loaded, never trained by a task here


def get(name: str) -> Entry:
  """The entry of a registered task name, or of a ``"module:Class"`` task (see the module docstring)."""
  if name in ENTRIES:
    return ENTRIES[name]
  module, colon, attr = name.partition(":")
  if not colon:
    raise UserError(f"unknown config.task '{name}'; available: {', '.join(ENTRIES)} (or 'package.module:Class')")
  loader.importable_from_cwd()
  try:
    cls = getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError) as e:
    raise UserError(f"config.task '{name}' cannot be imported ({e}); run from the directory that holds "
                    f"{module.split('.')[0]}/") from None
  parent = next((e for e in ENTRIES.values() if isinstance(cls, type) and issubclass(cls, e.task)), None)
  if parent is None:
    raise UserError(f"config.task '{name}' is not a subclass of a registered task ({', '.join(ENTRIES)})")
  return dataclasses.replace(parent, task=cls)


def build(config: ml_collections.ConfigDict, class_names: Sequence[str] | None = None) -> Task:
  """The task of ``config.task``; ``class_names`` skips reading them from the dataset (a trained workdir's)."""
  return get(config.task).task(config, None if class_names is None else list(class_names))


def model_module(family: str) -> types.ModuleType:
  """The :mod:`audiojax.models` module of a model directory's ``family``."""
  modules = {m.FAMILY: m for m in [e.model for e in ENTRIES.values()] + list(FROZEN_MODELS)}
  if family not in modules:
    raise UserError(f"model family '{family}' is unknown; audiojax reads {', '.join(sorted(modules))}")
  return modules[family]


def with_current_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A restored ``config`` (a workdir's ``config.json``) laid over its task's current base config.

  Groups (``data``, ``eval``, ``loss``...) gain the fields added to the code since the workdir was written, with
  their defaults, so an old workdir still evaluates and takes ``--config`` overrides of new fields. Values inside a
  group are kept whole: a dict such as ``prompts.style_weights`` is not merged with the default's keys."""
  if not config.get("task"):
    return config
  entry = get(config.task)
  merged = entry.base_config().to_dict()
  for key, value in config.to_dict().items():
    if isinstance(value, dict) and isinstance(merged.get(key), dict):
      merged[key] = {**merged[key], **value}
    else:
      merged[key] = value
  return ml_collections.ConfigDict(merged)


def workdir_config(workdir: str, overrides: Sequence[str] = (), local_mesh: bool = False
                   ) -> ml_collections.ConfigDict:
  """The config ``workdir`` was trained with, completed with fields added since (:func:`with_current_defaults`),
  pointed at the workdir's own assets, then changed by ``overrides`` (``--config.eval.decoder=ctc`` ...); with
  ``local_mesh`` its mesh is data-parallel over the local devices."""
  config = with_current_defaults(loader.restore(paths.resolve(workdir) / "config.json"))
  config = get(config.task).task.workdir_config(config, workdir)
  config = loader.override(config, overrides)
  if local_mesh:
    with config.unlocked():
      config.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  return config


def task_for_workdir(workdir: str, overrides: Sequence[str] = (), local_mesh: bool = False) -> Task:
  """The task of a trained ``workdir`` (its config, see :func:`workdir_config`; its class names from the workdir,
  not the dataset)."""
  config = workdir_config(workdir, overrides, local_mesh)
  names = export.read_class_names(workdir) if (paths.resolve(workdir) / export.CLASS_NAMES).is_file() else []
  return build(config, names or None)
