"""Train state and optimizer built from config."""
from __future__ import annotations

import re
from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from audiojax.errors import UserError


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes. ``step`` counts completed optimizer updates."""

  step: jax.Array
  params: Any
  model_state: Any  # non-trained collections, e.g. {"batch_stats": ...}; {} when the model has none
  opt_state: Any


def learning_rate_schedule(optim: Any, total_steps: int) -> optax.Schedule:
  """Linear warmup from 0 to ``optim.lr`` over ``optim.warmup_steps``, then cosine to ``lr · optim.end_lr_factor``."""
  warmup = min(int(optim.warmup_steps), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=float(optim.lr), warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1),
      end_value=float(optim.lr) * float(optim.end_lr_factor))


def _decay_mask(params: Any) -> Any:
  """Weight decay on matrices/kernels only, never on biases, norms or position embeddings' vectors."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def param_path(path: tuple) -> str:
  """``"layer0/cross_attn/query/kernel"`` for a pytree key path into the params."""
  return jax.tree_util.keystr(path, simple=True, separator="/")


def regex_labels(pattern: str, key: str, hit: str, miss: str, empty_means: str):
  """A labelling function for :func:`optax.multi_transform`: ``hit`` for the params whose path (:func:`param_path`)
  matches the regex ``pattern`` anywhere, ``miss`` for the rest; one matching nothing is an error naming the config
  ``key`` and what setting it to '' does (``empty_means``)."""
  regex = re.compile(pattern)

  def labels(params: Any) -> Any:
    # a logically partitioned param (a box around the array) gets one label, so masking replaces the whole box
    boxed = lambda x: isinstance(x, flax.core.meta.AxisMetadata)
    tree = jax.tree_util.tree_map_with_path(lambda path, _: hit if regex.search(param_path(path)) else miss,
                                            params, is_leaf=boxed)
    if hit not in jax.tree.leaves(tree):
      some = ", ".join(param_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(params, is_leaf=boxed)[0][:3])
      raise UserError(f"{key}={pattern!r} matches no parameter (paths look like {some}); fix the regex or set it "
                      f"to '' to {empty_means}")
    return tree

  return labels


def trainable_labels(pattern: str):
  """``"train"`` for the params matching ``config.optim.trainable``, ``"frozen"`` for the rest."""
  return regex_labels(pattern, "config.optim.trainable", "train", "frozen", "train everything")


def make_optimizer(optim: Any, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with warmup + cosine and optional global-norm clipping (``optim.clip_norm`` > 0).

  ``optim.trainable`` (a regex over param paths, big_vision's frozen-params pattern): only the matching params are
  updated, clipped and decayed; the others never move and hold no optimizer moments. ``optim.scaled_lr_params`` (a
  regex): the matching params follow the schedule times ``optim.scaled_lr_factor`` (e.g. a new sub-network learning
  faster than the pretrained rest); the clipping still sees one global norm over every trained param."""
  schedule = learning_rate_schedule(optim, total_steps)
  adamw = lambda lr: optax.adamw(lr, b1=float(optim.b1), b2=float(optim.b2), eps=float(optim.eps),
                                 weight_decay=float(optim.weight_decay), mask=_decay_mask)
  scaled = str(optim.get("scaled_lr_params", "") or "")
  factor = float(optim.get("scaled_lr_factor", 1.0))
  update = adamw(schedule)
  if scaled:
    update = optax.multi_transform({"base": update, "scaled": adamw(lambda count: factor * schedule(count))},
                                   regex_labels(scaled, "config.optim.scaled_lr_params", "scaled", "base",
                                                "scale no learning rate"))
  clip = [optax.clip_by_global_norm(float(optim.clip_norm))] if float(optim.clip_norm) > 0 else []
  tx = optax.chain(*clip, update)
  pattern = str(optim.get("trainable", "") or "")
  if pattern:
    tx = optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, trainable_labels(pattern))
  return tx, schedule


def create(params: Any, model_state: Any, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                    opt_state=tx.init(params))
