"""The task contract: the per-family part of training that the one trainer (:mod:`audiojax.train.loop`) drives.

A task owns its model, data, loss and evaluation; the trainer owns the mesh, shardings, optimisers, EMA, frozen
stages, checkpoints (state *and* data iterator), resume, metrics and the progress bar. Every member the trainer reads
is listed below; the ones with defaults here need not be written.

Required::

  config                      the experiment ConfigDict
  model: nn.Module            the trained model
  class_names: list[str] | None
  primary_metric: str         eval key that ranks checkpoints (``checkpoint.average_best``) and is plotted
  primary_metric_mode         "max" or "min": which direction is better
  example_batch(batch_size) -> {name: np.ndarray (batch_size, ...)}        shapes for init and compilation
  init_variables(rng, batch) -> {"params": ..., <collections>: ...}        batch: example_batch's, on device
  loss(params, model_state, batch, rng, step, frozen=None, group=None)     (not needed with train_step)
      -> (loss scalar, (metrics {name: scalar}, new model_state))
      metrics must hold "loss". step: the int32 step (loss schedules). frozen: {stage: variables} of
      frozen_stages(). group: the parameter group being updated (tasks with param_groups), else None.
  predict(variables, batch, frozen=None) -> {name: (B, ...)}               per-example eval outputs (on device)
  train_dataset(seed) -> grain IterDataset of host-local batches          its iterator is checkpointed
  evaluate(predict_fn) -> {"eval/...": float}                            predict_fn: host batch -> numpy outputs

Optional (defaults below)::

  param_groups: tuple[str, ...] | None   top-level keys of the params, each trained by config.optim.<group> with its
                                         own optimiser state, updated in this order from loss(..., group=g), each
                                         seeing the groups updated before it (alternating GAN updates)
  ema_groups: tuple[str, ...] | None     what config.train.ema_decay averages: all params (None) or these groups
  head_prefixes: tuple[str, ...]         variable paths re-initialised when a pretrained shape differs (new labels)
  frozen_stages() -> {name: FrozenStage} models loaded once from model directories, never trained or checkpointed
  pretrained_variables(path) -> variables of a model directory or workdir (config.init.checkpoint)
  export(path, variables, force=False)   writes a model directory (checkpoint averaging, ``average``); force:
                                         replacing a model directory already there
  save_assets(workdir)                   files inference needs besides the checkpoints (a tokenizer...)
  summary(eval_metrics) -> str           the one line ``train`` prints at the end
  eval_summaries() -> {name: str | (H, W, 3) uint8}   after evaluate: text and images for TensorBoard
  train_step(trainer, state, batch, rng, frozen) -> (state, metrics)      replaces the default step (and loss);
                                         build it from trainer.grads and trainer.apply_gradients; metrics must
                                         hold "loss"
  workdir_config(config, workdir) -> config   (classmethod) a workdir's config made to read its own assets
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from audiojax.train import checkpoint


@dataclasses.dataclass(frozen=True)
class FrozenStage:
  """A model a task uses but never trains: its module, example inputs for its shapes, and the model directory (or
  training workdir) its variables are read from (``config.<stage>.model_dir``)."""

  path: str
  model: nn.Module
  inputs: tuple[Any, ...]


class Task(abc.ABC):
  """Base class of the per-family tasks; see the module docstring for the contract."""

  config: Any
  model: nn.Module
  class_names: list[str] | None = None
  primary_metric: str = ""
  primary_metric_mode: str = "max"
  param_groups: tuple[str, ...] | None = None
  ema_groups: tuple[str, ...] | None = None
  head_prefixes: tuple[str, ...] = ()

  @abc.abstractmethod
  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]: ...

  @abc.abstractmethod
  def init_variables(self, rng: jax.Array, batch: dict[str, jax.Array]) -> dict[str, Any]: ...

  def loss(self, params: Any, model_state: Any, batch: dict[str, jax.Array], rng: jax.Array,
           step: jax.Array | None = None, frozen: dict | None = None, group: str | None = None):
    raise NotImplementedError(f"{type(self).__name__} must define loss, or a train_step that replaces it")

  @abc.abstractmethod
  def predict(self, variables: Any, batch: dict[str, jax.Array], frozen: dict | None = None
              ) -> dict[str, jax.Array]: ...

  @abc.abstractmethod
  def train_dataset(self, seed: int): ...

  @abc.abstractmethod
  def evaluate(self, predict_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict[str, float]: ...

  def frozen_stages(self) -> dict[str, FrozenStage]:
    return {}

  def pretrained_variables(self, path: str) -> dict[str, Any]:
    """The variables of a model directory or a training workdir (its newest checkpoint), as host arrays."""
    return checkpoint.restore_variables(path)

  def export(self, path: str, variables: dict[str, Any], force: bool = False) -> None:
    raise NotImplementedError(f"{type(self).__name__} cannot write model directories")

  def save_assets(self, workdir: str) -> None:
    """Nothing besides the checkpoints by default."""

  def eval_summaries(self) -> dict[str, Any]:
    """What the last :meth:`evaluate` saw, to look at rather than read: ``{name: text or (H, W, 3) uint8 image}``."""
    return {}

  def summary(self, eval_metrics: dict[str, Any]) -> str:
    """``primary_metric value`` for the end of ``train``."""
    value = eval_metrics.get(self.primary_metric)
    return f"held-out {self.primary_metric} {value:.4f}" if isinstance(value, float) else ""

  @classmethod
  def workdir_config(cls, config: Any, workdir: str) -> Any:
    """A workdir's restored config, unchanged by default."""
    return config
