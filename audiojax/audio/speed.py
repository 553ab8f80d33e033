"""Speed perturbation, as Kaldi and icefall train ASR (lhotse's ``perturb_speed``, sox's ``speed`` effect).

A recording played ``factor`` times faster: tempo and pitch both scale by ``factor`` and the length by
``1 / factor``. That is a resampling from ``factor × rate`` to ``rate`` (band-limited, soxr), so a tone at ``f`` Hz
comes out at ``factor × f`` Hz. The usual factors (0.9, 1.0, 1.1) shift every formant by ±10 %, which makes a
speaker sound like a different one: the cheap way to widen a corpus with few voices.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import soxr

from audiojax.errors import UserError


def checked_factors(values: Sequence[float], key: str) -> tuple[float, ...]:
  """``values`` as a tuple of floats; an error naming ``key`` unless all are positive."""
  factors = tuple(float(f) for f in values or ())
  if any(f <= 0 for f in factors):
    raise UserError(f"{key}={factors} must all be positive, e.g. (0.9, 1.0, 1.1)")
  return factors


def perturbed_length(length: int, factor: float) -> int:
  """Samples of a ``length``-sample recording played ``factor`` times faster (soxr rounds to nearest)."""
  return int(round(length / factor))


def perturb_speed(wave: np.ndarray, factor: float) -> np.ndarray:
  """``wave (L,)`` played ``factor`` times faster → ``(round(L / factor),)`` float32."""
  if factor <= 0:
    raise UserError(f"speed factor {factor} must be positive")
  if factor == 1.0:
    return np.asarray(wave, np.float32)
  # soxr depends on the ratio of the two rates alone; 1.0 stands for the recording's own rate
  return soxr.resample(np.asarray(wave, np.float32), factor, 1.0, quality="HQ").astype(np.float32)


def draw_factor(rng: np.random.Generator, factors: Sequence[float], length: int, max_length: int) -> float:
  """A factor drawn uniformly from those of ``factors`` that keep a ``length``-sample recording within
  ``max_length`` samples; 1.0 (unperturbed) when none does. The longest recordings are never cut: they are only
  slowed down less often."""
  fitting = [f for f in factors if perturbed_length(length, f) <= max_length]
  return float(fitting[int(rng.integers(len(fitting)))]) if fitting else 1.0
