"""Mean average precision for multi-label tagging (AudioSet's metric), in numpy."""
from __future__ import annotations

import numpy as np


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
  """AP of one class: ``scores (N,)``, binary ``targets (N,)``; NaN when there is no positive.

  Step-wise precision-recall area with tied scores treated as one threshold (sklearn's
  ``average_precision_score`` definition).
  """
  scores = np.asarray(scores, np.float64)
  targets = np.asarray(targets) > 0
  positives = targets.sum()
  if positives == 0:
    return float("nan")
  order = np.argsort(-scores, kind="mergesort")
  scores, targets = scores[order], targets[order]
  last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
  true_pos = np.cumsum(targets)[last_of_tie]
  precision = true_pos / (last_of_tie + 1)
  recall = true_pos / positives
  return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
  """``scores, targets (N, C)`` → (mAP over classes with at least one positive, per-class AP ``(C,)``)."""
  per_class = np.array([average_precision(scores[:, c], targets[:, c]) for c in range(scores.shape[1])])
  return float(np.nanmean(per_class)), per_class


def prior_baseline_map(train_prevalence: np.ndarray, targets: np.ndarray) -> float:
  """mAP of the label-prior baseline: every clip scored with the training-set class frequencies.

  A constant score per class gives AP = the class's prevalence in the evaluated set.
  """
  scores = np.broadcast_to(np.asarray(train_prevalence, np.float64), targets.shape)
  return mean_average_precision(scores, targets)[0]
