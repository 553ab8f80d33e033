"""Orbax checkpoints holding the train state and the grain iterator, written atomically (async by default)."""
from __future__ import annotations

import logging
import os
from typing import Any

import grain
import jax
import orbax.checkpoint as ocp

from audiojax.errors import UserError

for _name in ("absl", "orbax", "orbax.checkpoint"):  # orbax logs every save, and read-only opens, through absl
  logging.getLogger(_name).setLevel(logging.ERROR)


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), "checkpoints")


def manager(workdir: str, *, keep: int = 3, async_save: bool = True, read_only: bool = False) -> ocp.CheckpointManager:
  """CheckpointManager over ``WORKDIR/checkpoints/<step>/{state,data}`` keeping the newest ``keep``."""
  options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save, create=not read_only,
                                         read_only=read_only)
  return ocp.CheckpointManager(checkpoint_dir(workdir), item_names=("state", "data"), options=options)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, iterator: Any | None) -> None:
  items = {"state": ocp.args.StandardSave(state)}
  if iterator is not None:
    items["data"] = grain.checkpoint.CheckpointSave(iterator)
  mngr.save(step, args=ocp.args.Composite(**items), force=True)


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state: Any, iterator: Any | None = None) -> Any:
  """Restores ``state`` into the shardings carried by ``abstract_state`` (``jax.ShapeDtypeStruct`` leaves with
  ``sharding``), and the iterator position in place when ``iterator`` is given."""
  items = {"state": ocp.args.StandardRestore(abstract_state)}
  if iterator is not None:
    items["data"] = grain.checkpoint.CheckpointRestore(iterator)
  return mngr.restore(step, args=ocp.args.Composite(**items))["state"]


def latest_step(workdir: str) -> int | None:
  """Newest complete checkpoint step in ``workdir``, or None."""
  path = checkpoint_dir(workdir)
  if not os.path.isdir(path):
    return None
  with manager(workdir, read_only=True) as mngr:
    return mngr.latest_step()


def require_latest_step(workdir: str) -> int:
  step = latest_step(workdir)
  if step is None:
    raise UserError(f"no checkpoint in '{checkpoint_dir(workdir)}'; train first with "
                    f"'python -m audiojax train --config ... --workdir {workdir}' or point at a trained workdir")
  return step


def abstract_with_shardings(abstract: Any, shardings: Any) -> Any:
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings)
