"""The timing every benchmark shares: the best of several runs after compilation, and XLA's FLOP count."""
from __future__ import annotations

import time
from typing import Callable

import jax


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
  """The fastest of ``repeats`` calls of ``fn`` (each waited for), after one call that compiles and warms up."""
  jax.block_until_ready(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)


def flops(compiled) -> float:
  """FLOPs of a compiled program by XLA's cost analysis (NaN when the backend reports none)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan")))
