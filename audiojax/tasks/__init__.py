"""Tasks: the per-family part of training (model, data, loss, evaluation) driven by the one trainer.

A task object provides::

  model: nn.Module
  class_names: list[str] | None
  example_batch(batch_size) -> dict[str, np.ndarray]               # shapes for init/compilation
  init_variables(rng, batch) -> dict                                # {"params": ..., <model state>: ...}
  loss(params, model_state, batch, rng, step) -> (loss, (metrics, new_model_state))   # step: for loss schedules
  predict(variables, batch) -> dict[str, jax.Array]                 # per-example outputs for evaluation
  train_dataset(seed) -> grain.IterDataset                          # host-local batches, checkpointable iterator
  evaluate(predict_fn) -> dict[str, float]                          # predict_fn: host batch -> gathered numpy
"""
from __future__ import annotations

from typing import Any

from audiojax.errors import UserError


def get(config: Any, class_names: list[str] | None = None):
  """Builds the task named by ``config.task``; ``class_names`` skips reading them from the dataset."""
  name = config.task
  if name == "tagging":
    from audiojax.tasks.tagging import TaggingTask
    return TaggingTask(config, class_names)
  if name == "distill":
    from audiojax.tasks.distill import DistillTask
    return DistillTask(config, class_names)
  if name == "asr":
    from audiojax.tasks.asr import AsrTask
    return AsrTask(config, class_names)
  raise UserError(f"unknown config.task '{name}'; available: tagging, distill, asr")
