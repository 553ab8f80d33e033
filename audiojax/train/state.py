"""Train state and optimizer built from config."""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax


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


def make_optimizer(optim: Any, total_steps: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """AdamW with warmup + cosine and optional global-norm clipping (``optim.clip_norm`` > 0)."""
  schedule = learning_rate_schedule(optim, total_steps)
  adamw = optax.adamw(schedule, b1=float(optim.b1), b2=float(optim.b2), eps=float(optim.eps),
                      weight_decay=float(optim.weight_decay), mask=_decay_mask)
  clip = [optax.clip_by_global_norm(float(optim.clip_norm))] if float(optim.clip_norm) > 0 else []
  return optax.chain(*clip, adamw), schedule


def create(params: Any, model_state: Any, tx: optax.GradientTransformation) -> TrainState:
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                    opt_state=tx.init(params))
