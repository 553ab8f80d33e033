"""Models: one file per family (Flax Linen modules, named variants, and what a model directory records of them).
Models import only ``nn``, ``audio``, ``text`` and ``kernels``: nothing of training, data or configs."""
from __future__ import annotations

import dataclasses
from typing import Any

from audiojax.errors import UserError


def count_params(tree: Any) -> int:
  """Number of entries in a tree of arrays (a model's ``params``, or any collection of it)."""
  import jax
  import numpy as np

  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def check_fields(module: type, overrides: dict[str, Any]) -> None:
  """Every key of ``overrides`` (``config.model.overrides``) must be a field of the Linen ``module`` class."""
  fields = {f.name for f in dataclasses.fields(module)} - {"parent", "name"}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise UserError(f"config.model.overrides has {', '.join(map(repr, unknown))}, which {module.__name__} has no "
                    f"field of; valid: {', '.join(sorted(fields))}")
