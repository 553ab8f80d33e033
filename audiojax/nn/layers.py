"""The pieces every audiojax layer repeats: parameters carrying logical axis names (for sharding), a variable that
lives in any collection (a frozen pretrained encoder's), a named ``nn.Dense``, and the mask of valid positions."""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def param(module: nn.Module, name: str, init: Any, shape: tuple[int, ...],
          axes: tuple[str | None, ...]) -> jax.Array:
  """``module.param`` whose value carries the logical axis names ``axes``."""
  return module.param(name, nn.with_logical_partitioning(init, axes), shape)


def variable(module: nn.Module, collection: str, name: str, init: Any, shape: tuple[int, ...],
             axes: tuple[str | None, ...]) -> jax.Array:
  """A variable of ``collection`` carrying logical axis names: a parameter initialised by ``init`` when the
  collection is ``params``, otherwise a zero placeholder that pretrained weights replace (no random draws to
  compile for a frozen BERT-base)."""
  if collection == "params":
    return param(module, name, init, shape, axes)
  zeros = nn.with_logical_partitioning(nn.initializers.zeros, axes)
  return module.variable(collection, name, lambda: zeros(None, shape)).value


def dense(features: int, axes: tuple[str | None, str | None], name: str, *, use_bias: bool = True,
          dtype: Any = jnp.float32, init: Any = nn.initializers.lecun_normal()) -> nn.Dense:
  """``nn.Dense`` whose kernel ``(D_in, features)`` and bias ``(features,)`` carry the logical axis names ``axes``
  (the bias those of ``axes[1:]``); the bias starts at zero."""
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, name=name,
                  kernel_init=nn.with_logical_partitioning(init, axes),
                  bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]))


def length_mask(lengths: jax.Array, max_length: int) -> jax.Array:
  """``(B,)`` valid lengths → ``(B, max_length)`` bool, True on valid positions."""
  return jnp.arange(max_length)[None, :] < lengths[:, None]
