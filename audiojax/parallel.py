"""Sharding vocabulary: meshes from config, logical-axis rules, parameter and batch shardings, multi-host input.

Mesh axes are ``data``, ``fsdp`` and ``tensor``. Models name their parameter and activation axes logically
(``embed``, ``mlp``, ``heads``, ``act_batch``...); ``config.sharding.rules`` maps those names to mesh axes.
Meshes use ``AxisType.Auto``: Linen's logical constraints are sharding hints for GSPMD.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from audiojax.errors import UserError

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")

DEFAULT_RULES = (
    ("act_batch", BATCH_AXES),
    ("act_length", None),
    ("act_embed", None),
    ("act_mlp", "tensor"),
    ("act_heads", "tensor"),
    ("act_kv", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("classes", None),
    ("mels", None),
    ("vocab", None),
    ("channels", None),
)


def mesh_shape(mesh_cfg: Any, num_devices: int) -> tuple[int, int, int]:
  """``{data, fsdp, tensor}`` sizes with at most one ``-1`` (fills the remaining devices) → concrete shape."""
  sizes = [int(mesh_cfg[a]) for a in MESH_AXES]
  fills = [i for i, s in enumerate(sizes) if s == -1]
  if len(fills) > 1 or any(s == 0 or s < -1 for s in sizes):
    raise UserError(f"config.mesh {dict(zip(MESH_AXES, sizes))} is invalid; give positive sizes and at most one -1")
  known = math.prod(s for s in sizes if s != -1)
  if fills:
    if num_devices % known:
      raise UserError(f"config.mesh {dict(zip(MESH_AXES, sizes))} cannot fill {num_devices} devices; "
                      f"make the fixed axes divide {num_devices}")
    sizes[fills[0]] = num_devices // known
  if math.prod(sizes) != num_devices:
    raise UserError(f"config.mesh {dict(zip(MESH_AXES, sizes))} needs {math.prod(sizes)} devices but "
                    f"{num_devices} are available; set one axis to -1 or change the sizes")
  return tuple(sizes)


def make_mesh(mesh_cfg: Any, devices: Sequence[jax.Device] | None = None) -> Mesh:
  """Builds an Auto-typed ``(data, fsdp, tensor)`` mesh over ``devices`` (default: all)."""
  devices = list(jax.devices() if devices is None else devices)
  shape = mesh_shape(mesh_cfg, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3, devices=devices)


def rules_from_config(rules: Any) -> tuple[tuple[str, Any], ...]:
  """Config rules (list of ``[name, axis | [axes] | None]``, JSON-friendly) → the tuple form Flax expects."""
  return tuple((str(name), tuple(axes) if isinstance(axes, (list, tuple)) else axes) for name, axes in rules)


def batch_size_per_shard(mesh: Mesh) -> int:
  return mesh.shape["data"] * mesh.shape["fsdp"]


def check_batch_divisible(batch_size: int, mesh: Mesh, key: str = "train.batch_size") -> None:
  shards = batch_size_per_shard(mesh)
  if batch_size % shards:
    raise UserError(f"config.{key}={batch_size} does not divide over the mesh's data×fsdp = {shards} shards "
                    f"(mesh {dict(mesh.shape)}); use a multiple of {shards} or change config.mesh")
  if batch_size % jax.process_count():
    raise UserError(f"config.{key}={batch_size} does not divide over {jax.process_count()} hosts; "
                    f"use a multiple of {jax.process_count()}")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over data×fsdp, the rest replicated."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _fit_spec(shape: tuple[int, ...], spec: P, mesh: Mesh, path: str) -> P:
  """Drops mesh axes from dimensions they do not divide (e.g. 3 heads over tensor=4) so any model fits any mesh."""
  fitted = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    names = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    size = math.prod(mesh.shape[a] for a in names)
    if names and dim % size:
      logging.debug("replicating dim %d of %s (%d does not divide by %s)", dim, path, dim, names)
      fitted.append(None)
    else:
      fitted.append(axes)
  return P(*fitted)


def logical_shardings(abstract_boxed: Any, mesh: Mesh, rules: Any) -> Any:
  """Shardings for a tree whose leaves may be ``nn.LogicallyPartitioned`` boxes (e.g. from ``jax.eval_shape`` of an
  init function). Returns a tree matching the *unboxed* structure, with ``NamedSharding`` leaves."""
  logical_specs = nn.get_partition_spec(abstract_boxed)
  mesh_specs = nn.logical_to_mesh(logical_specs, rules)
  abstract = nn.meta.unbox(abstract_boxed)
  flat, treedef = jax.tree_util.tree_flatten_with_path(abstract)
  specs = treedef.flatten_up_to(mesh_specs)
  return treedef.unflatten([
      NamedSharding(mesh, _fit_spec(leaf.shape, spec, mesh, jax.tree_util.keystr(path)))
      for (path, leaf), spec in zip(flat, specs)])


def host_batch_to_global(batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
  """This host's slice of the global batch (numpy, leading dim = global batch / process_count) → global arrays."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch)


def describe(mesh: Mesh) -> str:
  axes = " × ".join(f"{a}={mesh.shape[a]}" for a in MESH_AXES)
  return f"{axes} on {mesh.devices.size} {jax.default_backend()} devices"
