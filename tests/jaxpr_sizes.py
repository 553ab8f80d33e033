"""Test helper: how big the values inside a traced computation get (to prove a tensor is never materialised)."""
import math


def max_intermediate_size(jaxpr) -> int:
  """Largest number of elements of any value in a jaxpr, sub-jaxprs (scan/map/cond/remat bodies) included."""
  biggest = 0
  for eqn in jaxpr.eqns:
    for var in eqn.outvars:
      biggest = max(biggest, math.prod(getattr(var.aval, "shape", ())))
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          biggest = max(biggest, max_intermediate_size(sub))
  return biggest
