"""The config groups every experiment has, the parser of a config file's argument, and the one CPU shrink.

Groups: ``seed``, ``task`` (a name in :mod:`audiojax.tasks.registry`), ``model``, ``init`` (fine-tuning),
``data``, ``train``, ``optim``, ``eval``, ``checkpoint``, ``mesh`` and ``sharding``. A family's base config
(``audiojax/config/<family>.py``) adds its own fields to these.
"""
from __future__ import annotations

from typing import Any

import ml_collections

from audiojax import parallel, paths

# what `:local` sets in every experiment before the experiment's own CPU-sized fields
LOCAL = {"model.dtype": "float32", "data.num_threads": 0, "train.progress_bar": False, "eval.every_steps": 0,
         "mesh": {"data": -1, "fsdp": 1, "tensor": 1}}


def parse_arg(arg: str, **defaults) -> ml_collections.ConfigDict:
  """``"variant=mini,subset=as2m,local"`` → ConfigDict of ``defaults`` updated from the arg (types from defaults;
  a bare word sets a bool default to True). Every experiment takes ``local`` (default False). Unknown names raise
  ValueError."""
  defaults = {"local": False, **defaults}
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (x.strip() for x in (arg or "").split(","))):
    key, eq, value = item.partition("=")
    if key not in out:
      raise ValueError(f"unknown config argument '{key}'; valid: {', '.join(sorted(defaults))}")
    current = defaults[key]
    if not eq:
      value = True
    elif isinstance(current, bool):
      value = value.lower() in ("1", "true", "yes")
    elif current is not None:
      value = type(current)(value)
    out[key] = value
  return out


def base() -> ml_collections.ConfigDict:
  """The groups and fields every experiment has, at their defaults."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = ""

  c.model = ml_collections.ConfigDict()
  c.model.name = ""
  c.model.variant = "tiny"
  c.model.dtype = "float32"  # compute dtype; "bfloat16" for mixed precision (params stay float32)
  # "auto" runs the Pallas kernels on a single GPU/TPU; they are proven only in CPU interpret mode so far, so the
  # default stays on XLA until a device run verifies them (see README "Kernels")
  c.model.attention_impl = "xla"
  c.model.overrides = ml_collections.ConfigDict()  # any model field, e.g. depth=2 for smoke tests

  c.init = ml_collections.ConfigDict()
  c.init.checkpoint = ""  # fine-tuning: a model directory or a training workdir to start from
  c.init.reinit = []  # variable paths to re-initialise anyway, e.g. ["params/head/"]

  c.data = ml_collections.ConfigDict()
  c.data.name = ""
  c.data.data_dir = paths.default_data_dir()
  c.data.manual_dir = ""  # for corpora users download (AudioSet, LibriSpeech): the directory holding them
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.num_threads = 0  # grain read threads (0 = read in the training thread)

  c.train = ml_collections.ConfigDict()
  c.train.steps = 1000
  c.train.batch_size = 32
  c.train.grad_accum_steps = 1
  c.train.log_every = 50
  c.train.progress_bar = True
  c.train.ema_decay = 0.0  # > 0: keep an exponential moving average of the weights, evaluated and exported

  c.optim = optimizer()

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 0  # 0: only at the end
  c.eval.batch_size = 64
  c.eval.at_start = False  # also evaluate the initial (or pretrained) state, as step 0

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 3
  c.checkpoint.async_save = True
  c.checkpoint.average_best = 0  # >0: at the end, average the N best evaluated checkpoints (keep them: keep ≥ evals)

  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.sharding = ml_collections.ConfigDict()
  c.sharding.rules = [list(r) for r in parallel.DEFAULT_RULES]
  return c


def optimizer(lr: float = 1e-3) -> ml_collections.ConfigDict:
  """One optimiser's fields (AdamW, warmup + cosine): ``config.optim``, or ``config.optim.<group>`` for each
  parameter group of a task that trains several (a generator and a discriminator)."""
  o = ml_collections.ConfigDict()
  o.lr = lr
  o.warmup_steps = 100
  o.end_lr_factor = 0.1
  o.b1 = 0.9
  o.b2 = 0.999
  o.eps = 1e-8
  o.weight_decay = 0.0
  o.clip_norm = 1.0
  o.trainable = ""  # regex over param paths ("layer0/cross_attn/query/kernel"): only matches train; "": all
  o.scaled_lr_params = ""  # regex over param paths: these follow the lr schedule times scaled_lr_factor
  o.scaled_lr_factor = 1.0
  return o


def set_fields(c: ml_collections.ConfigDict, fields: dict[str, Any]) -> ml_collections.ConfigDict:
  """Sets dotted ``fields`` (``{"train.steps": 6}``) on ``c``; a field the config lacks is a KeyError (a typo in an
  experiment file)."""
  for key, value in fields.items():
    *parents, leaf = key.split(".")
    node = c
    for part in parents:
      node = node[part]
    if leaf not in node:
      raise KeyError(f"config has no field '{key}'")
    node[leaf] = value
  return c


def local(c: ml_collections.ConfigDict, fields: dict[str, Any]) -> ml_collections.ConfigDict:
  """The one CPU shrink (an experiment's ``:local``): float32, no read threads, no progress bar, evaluation only
  at the end, a data-parallel mesh over whatever devices there are, then the experiment's own CPU-sized
  ``fields`` (dotted keys: a small corpus, a shallow model, a few steps)."""
  return set_fields(c, {**LOCAL, **fields})
