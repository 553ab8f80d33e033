"""Base configs of the CED family: supervised tagging, consistent ensemble distillation, and the paper's AudioSet
schedule that both AudioSet experiments use."""
from __future__ import annotations

import ml_collections

from audiojax.config import common

AUDIOSET_LR = {"tiny": 1e-3, "mini": 1e-3, "small": 3e-4, "base": 3e-4}  # RicherMans/CED trainconfig/*.yaml


def tagging() -> ml_collections.ConfigDict:
  """Supervised multi-label tagging with a CED encoder."""
  c = common.base()
  c.task = "tagging"
  c.model.name = "ced"
  c.data.name = "gm_instruments/demo"
  c.data.clip_seconds = 10.0
  return c


def distill() -> ml_collections.ConfigDict:
  """A CED student learning from a teacher logit store (``distill.store``, written by ``python -m audiojax
  teacher``); ``distill.consistent = False`` is the paper's ablation (fresh masks, no time shift)."""
  c = tagging()
  c.task = "distill"
  c.distill = ml_collections.ConfigDict({"store": "", "consistent": True})
  return c


def audioset(c: ml_collections.ConfigDict, variant: str, full: bool) -> ml_collections.ConfigDict:
  """The paper's AudioSet setup on ``c``: AS-2M (``full``) or the balanced AS-20K subset, 10 s chunks, bfloat16
  compute, AdamW without weight decay at the variant's lr, linear warmup then cosine to 0.1·lr, 300 epochs."""
  if variant not in AUDIOSET_LR:
    raise ValueError(f"variant must be one of {sorted(AUDIOSET_LR)}; got {variant!r}")
  steps_per_epoch = 6250 if full else 690
  c.data.name = "audioset/full" if full else "audioset/balanced"
  c.data.train_split = "unbalanced_train+balanced_train" if full else "balanced_train"
  c.data.eval_split = "eval"
  c.data.clip_seconds = 10.0
  c.model.variant = variant
  c.model.dtype = "bfloat16"
  c.train.batch_size = 128 if full else 32
  c.train.steps = 300 * steps_per_epoch
  c.train.log_every = 100
  c.optim.lr = AUDIOSET_LR[variant]
  c.optim.warmup_steps = 62_500 if full else 5_000
  c.optim.end_lr_factor = 0.1
  c.optim.weight_decay = 0.0
  c.optim.clip_norm = 0.0
  c.eval.every_steps = (3 if full else 5) * steps_per_epoch
  c.eval.batch_size = 128
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  return c
