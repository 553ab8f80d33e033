"""mAP against scikit-learn's average_precision_score (the metric AudioSet papers report)."""
import numpy as np
from sklearn.metrics import average_precision_score

from audiojax.eval.map import (
  average_precision,
  mean_average_precision,
  prior_baseline_map,
)


def test_average_precision_matches_sklearn_including_ties():
  rng = np.random.default_rng(0)
  for trial in range(20):
    n = int(rng.integers(5, 200))
    targets = (rng.random(n) < rng.uniform(0.05, 0.6)).astype(int)
    targets[0] = 1
    scores = rng.random(n)
    if trial % 2:
      scores = np.round(scores, 1)  # many ties
    np.testing.assert_allclose(average_precision(scores, targets), average_precision_score(targets, scores),
                               rtol=1e-12)


def test_map_skips_classes_without_positives_and_prior_baseline_is_prevalence():
  rng = np.random.default_rng(1)
  targets = (rng.random((50, 4)) < 0.3).astype(int)
  targets[:, 3] = 0
  scores = rng.random((50, 4))
  value, per_class = mean_average_precision(scores, targets)
  assert np.isnan(per_class[3])
  np.testing.assert_allclose(value, np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in range(3)]))
  np.testing.assert_allclose(prior_baseline_map(np.array([.1, .5, .2, 0.]), targets), targets[:, :3].mean())
  assert mean_average_precision(targets + 0.0, targets)[0] == 1.0
