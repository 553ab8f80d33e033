"""Orbax checkpoints holding the train state and the grain iterator, written atomically (async by default), and
the parameters-only restore that inference, fine-tuning and frozen stages use: it reads the variables of a training
workdir's newest checkpoint (or a model directory's ``variables/``) and nothing else — no optimiser state, no data
iterator, no task."""
from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from audiojax import paths
from audiojax.errors import UserError

log = logging.getLogger("audiojax")

# orbax logs every save and read-only open through absl, and a failed save as tracebacks (its own, asyncio's
# "Task exception was never retrieved", and tensorstore callbacks reaching the closed event loop of the failed write);
# the trainer reports a failed save itself, in one line
for _name in ("absl", "orbax", "orbax.checkpoint", "asyncio"):
  logging.getLogger(_name).setLevel(logging.CRITICAL)


def _quiet_closed_loop(hook):
  def unraisable(info):
    if isinstance(info.exc_value, RuntimeError) and str(info.exc_value) == "Event loop is closed":
      return
    hook(info)
  return unraisable


sys.unraisablehook = _quiet_closed_loop(sys.unraisablehook)


def checkpoint_dir(workdir: str) -> epath.Path:
  return paths.resolve(workdir) / "checkpoints"


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
  ``sharding``), and the iterator position in place when ``iterator`` is given. A checkpoint written before the
  train state had an ``ema`` field restores into a state without EMA."""
  target = abstract_state
  saved = _tree_metadata(epath.Path(mngr.directory) / str(step) / "state")
  if not isinstance(saved, dict):
    raise ValueError(f"step {step} has no readable metadata")
  legacy = getattr(abstract_state, "ema", False) is None and "ema" not in saved
  if legacy:
    target = {k: getattr(abstract_state, k) for k in ("step", "params", "model_state", "opt_state")}
  items = {"state": ocp.args.StandardRestore(target)}
  if iterator is not None:
    items["data"] = grain.checkpoint.CheckpointRestore(iterator)
  state = mngr.restore(step, args=ocp.args.Composite(**items))["state"]
  return abstract_state.replace(**state) if legacy else state


def steps(workdir: str) -> list[int]:
  """The complete checkpoint steps of ``workdir``, newest first."""
  if not checkpoint_dir(workdir).is_dir():
    return []
  with manager(workdir, read_only=True) as mngr:
    return sorted(mngr.all_steps(), reverse=True)


def first_line(error: BaseException) -> str:
  """The error's first line, its middle elided when long (the end often holds the OS reason)."""
  text = (str(error).strip() or type(error).__name__).splitlines()[0]
  return text if len(text) <= 200 else f"{text[:120]} … {text[-70:]}"


def restore_newest(workdir: str, restore: Callable[[int], Any], *, quarantine: bool = False) -> tuple[Any, int]:
  """``(restore(step), step)`` for the newest step of ``workdir`` that restores. An unreadable step is skipped with
  a one-line warning naming it (and with ``quarantine`` moved to ``WORKDIR/corrupt_checkpoints/``, so that training
  can write that step again); when no step restores, a UserError gives the newest one's error."""
  available = steps(workdir)
  if not available:
    require_latest_step(workdir)
  failures: list[tuple[int, BaseException]] = []
  for step in available:
    try:
      result = restore(step)
    except Exception as e:  # noqa: BLE001 (tensorstore, orbax and shape errors alike mean: this step is unusable)
      failures.append((step, e))
      continue
    for bad, error in failures:
      where = checkpoint_dir(workdir) / str(bad)
      moved = f"; moved to {_quarantine(workdir, bad)}" if quarantine else ""
      log.warning("checkpoint step %d (%s) is unreadable (%s); using step %d%s", bad, where, first_line(error),
                  step, moved)
    return result, step
  step, error = failures[0]
  raise UserError(f"no checkpoint of '{workdir}' can be restored (newest, step {step}: {first_line(error)}); the "
                  f"config differs from the one it was trained with ({paths.resolve(workdir) / 'config.json'}) or the "
                  f"checkpoints are damaged: use that config or a new --workdir")


def _quarantine(workdir: str, step: int) -> str:
  target = paths.resolve(workdir) / "corrupt_checkpoints" / f"{step}-{int(time.time())}"
  target.parent.mkdir(parents=True, exist_ok=True)
  (checkpoint_dir(workdir) / str(step)).rename(target)
  return str(target)


def latest_step(workdir: str) -> int | None:
  """Newest complete checkpoint step in ``workdir``, or None."""
  if not checkpoint_dir(workdir).is_dir():
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


def _tree_metadata(item_dir: epath.Path) -> dict:
  """Shapes and dtypes of the pytree saved in ``item_dir`` (nothing is read but the metadata)."""
  meta = ocp.PyTreeCheckpointer().metadata(item_dir)
  tree = getattr(meta, "item_metadata", meta)
  return getattr(tree, "tree", tree)


def _restore_args(abstract: Any) -> Any:
  """Orbax restore arguments: into each leaf's sharding and dtype when it has one, else as host numpy arrays."""
  def one(a):
    sharding = getattr(a, "sharding", None)
    if sharding is None:
      return ocp.RestoreArgs(restore_type=np.ndarray, dtype=a.dtype)
    return ocp.ArrayRestoreArgs(sharding=sharding, dtype=a.dtype, global_shape=a.shape)
  return jax.tree.map(one, abstract)


def _partial_restore(item_dir: epath.Path, abstract: dict) -> dict:
  return ocp.PyTreeCheckpointer().restore(item_dir, args=ocp.args.PyTreeRestore(
      item=abstract, restore_args=_restore_args(abstract), partial_restore=True))


def _with_ema(params: Any, ema: Any) -> Any:
  """``params`` with the groups (top-level keys) the EMA holds replaced by it."""
  return {**params, **ema} if ema else params


WEIGHTS = "model.safetensors"  # a model directory's variables, one tensor per "params/block/kernel" path


def variables_dir(path: str) -> epath.Path:
  """Where the variables of a model directory written before safetensors (Orbax) live."""
  return paths.resolve(path) / "variables"


def write_weights(folder: str, variables: Any) -> None:
  """``variables`` as ``FOLDER/model.safetensors``, keyed by path (``params/blocks_0/attn/qkv_kernel``)."""
  import safetensors.flax
  flat = {jax.tree_util.keystr(k, simple=True, separator="/"): jnp.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(variables)[0]}
  (paths.resolve(folder) / WEIGHTS).write_bytes(safetensors.flax.save(flat, metadata={"format": "audiojax"}))


def _read_weights(path: str, abstract: Any | None) -> dict[str, Any]:
  """The variables in ``PATH/model.safetensors``, in the structure (and shardings) of ``abstract`` when given."""
  import safetensors.flax
  file = paths.resolve(path) / WEIGHTS
  with jax.ensure_compile_time_eval():  # concrete arrays even when a model loads its frozen part under jit
    flat = {k: np.asarray(v) for k, v in safetensors.flax.load(file.read_bytes()).items()}
  if abstract is None:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
      *parents, leaf = key.split("/")
      node = tree
      for part in parents:
        node = node.setdefault(part, {})
      node[leaf] = value
    return tree
  leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
  want = {jax.tree_util.keystr(k, simple=True, separator="/"): a for k, a in leaves}
  missing, extra = sorted(set(want) - set(flat)), sorted(set(flat) - set(want))
  if missing or extra:
    raise ValueError(f"{file} lacks {missing[:3]} and has {extra[:3]} beyond the model's variables")
  out = []
  for key, a in want.items():
    value = flat[key]
    if value.shape != a.shape:
      raise ValueError(f"{file} has {key} of shape {value.shape}, the model needs {a.shape}")
    sharding = getattr(a, "sharding", None)
    value = value.astype(a.dtype)
    out.append(jax.device_put(value, sharding) if sharding is not None else value)
  return jax.tree_util.tree_unflatten(jax.tree.structure(abstract), out)


def restore_variables(path: str, abstract: Any | None = None, *, use_ema: bool = True) -> dict[str, Any]:
  """The variables ``{"params": ..., <collections>...}`` of a model directory (``variables/``) or of a training
  workdir's newest checkpoint (its params, with the EMA weights in their place when the run kept them and
  ``use_ema``, and its model state), reading nothing else.

  ``abstract`` (``jax.ShapeDtypeStruct`` leaves, optionally with ``sharding``) gives the structure, dtypes and
  placement to restore into; a checkpoint of another shape is an Orbax error. Without it the variables come back as
  they were saved, as host numpy arrays."""
  weights = paths.resolve(path) / WEIGHTS
  if weights.is_file() or variables_dir(path).is_dir():
    item = variables_dir(path)
    try:
      if weights.is_file():
        return _read_weights(path, None if abstract is None else dict(abstract))
      if abstract is None:
        abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), _tree_metadata(item))
      return dict(_partial_restore(item, dict(abstract)))
    except Exception as e:  # noqa: BLE001 (a damaged or foreign variables/ folder)
      raise UserError(f"the variables of model directory '{path}' cannot be read ({first_line(e)}); they belong to "
                      f"another model or are damaged: convert or export the model again") from None
  return restore_newest(path, lambda step: restore_step_variables(path, step, abstract, use_ema))[0]


def restore_step_variables(path: str, step: int, abstract: Any | None, use_ema: bool) -> dict[str, Any]:
  item = checkpoint_dir(path) / str(step) / "state"
  saved = _tree_metadata(item)
  shape_of = lambda tree: jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), tree)
  if abstract is None:
    wanted = {"params": shape_of(saved["params"]), "model_state": shape_of(saved.get("model_state") or {})}
  else:
    abstract = dict(abstract)
    wanted = {"params": abstract.pop("params"), "model_state": abstract}
  ema = saved.get("ema") if use_ema else None
  if ema:  # the EMA stands in for the params it follows: read it instead of them
    part = _ema_part(wanted["params"], ema)
    wanted["ema"] = wanted.pop("params") if part is wanted["params"] else part
  restored = _partial_restore(item, wanted)
  params = restored.get("params")
  params = restored["ema"] if params is None else _with_ema(params, restored.get("ema"))
  return {"params": params, **(restored.get("model_state") or {})}


def saved_shapes(path: str) -> dict[str, Any]:
  """Shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of the train state in a workdir's newest readable
  checkpoint: ``{"params": ..., "model_state": ..., ...}``; nothing but metadata is read."""
  def read(step: int) -> dict[str, Any]:
    tree = _tree_metadata(checkpoint_dir(path) / str(step) / "state")
    if not isinstance(tree, dict):
      raise ValueError(f"step {step} has no readable metadata")
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), tree)
  return restore_newest(path, read)[0]


def _ema_part(params: Any, ema: Any) -> Any:
  """The subtree of ``params`` that the saved ``ema`` (all params, or some top-level groups) follows."""
  if isinstance(ema, dict) and isinstance(params, dict) and set(ema) < set(params):
    return {k: params[k] for k in ema}
  return params
