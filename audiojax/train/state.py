"""Train state and optimizers built from config.

A task trains one parameter tree with ``config.optim``, or several named groups (``task.param_groups``, e.g.
``("discriminator", "generator")``), each a top-level key of the params with its own optimiser
``config.optim.<group>`` and its own optimiser state, so that updating one group never moves another's moments.
"""
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
  params: Any  # one tree, or {group: tree} for a task with parameter groups
  model_state: Any  # non-trained collections, e.g. {"batch_stats": ...}; {} when the model has none
  opt_state: Any  # the optimiser's state, or {group: state}
  ema: Any = None  # with config.train.ema_decay: the moving average of params (or of task.ema_groups), else None


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


def make_optimizers(optim: Any, groups: tuple[str, ...] | None, total_steps: int
                    ) -> dict[str | None, tuple[optax.GradientTransformation, optax.Schedule]]:
  """``{None: (tx, schedule)}`` from ``config.optim`` for a single-group task; ``{group: (tx, schedule)}`` from each
  ``config.optim.<group>`` for a task with parameter groups (a missing group is a UserError)."""
  if not groups:
    return {None: make_optimizer(optim, total_steps)}
  missing = [g for g in groups if g not in optim]
  if missing:
    raise UserError(f"the task trains parameter groups {', '.join(groups)}; config.optim lacks "
                    f"{', '.join(missing)}: give each group its optimiser fields (audiojax.config.common.optimizer())")
  return {g: make_optimizer(optim[g], total_steps) for g in groups}


def ema_subtree(params: Any, groups: tuple[str, ...] | None) -> Any:
  """The part of ``params`` an EMA follows: all of it, or the listed groups."""
  return params if groups is None else {g: params[g] for g in groups}


def update_ema(ema: Any, params: Any, decay: float) -> Any:
  """``ema ← decay · ema + (1 − decay) · params`` leaf by leaf, in each leaf's dtype."""
  return jax.tree.map(lambda e, p: (decay * e + (1.0 - decay) * p).astype(e.dtype), ema, params)


def with_ema(params: Any, ema: Any, groups: tuple[str, ...] | None) -> Any:
  """``params`` with the EMA'd part replaced by ``ema`` (what evaluation and export read); ``params`` when there is
  no EMA."""
  if ema is None:
    return params
  return ema if groups is None else {**params, **ema}


def create(params: Any, model_state: Any, optimizers: dict | optax.GradientTransformation,
           ema_groups: tuple[str, ...] | None = None, ema: bool = False) -> TrainState:
  """A step-0 state: optimiser states from one ``tx`` or :func:`make_optimizers`' dict, and with ``ema`` an EMA
  equal to the params (of ``ema_groups``, or all)."""
  if isinstance(optimizers, optax.GradientTransformation):
    opt_state = optimizers.init(params)
  elif None in optimizers:
    opt_state = optimizers[None][0].init(params)
  else:
    opt_state = {g: tx.init(params[g]) for g, (tx, _) in optimizers.items()}
  average = jax.tree.map(jnp.copy, ema_subtree(params, ema_groups)) if ema else None
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state, opt_state=opt_state,
                    ema=average)
