"""Word error rate: Levenshtein alignment of word sequences (substitutions, deletions, insertions)."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
  """Minimum number of substitutions, deletions and insertions turning ``ref`` into ``hyp``."""
  prev = np.arange(len(hyp) + 1)
  for i, r in enumerate(ref, 1):
    cur = np.empty_like(prev)
    cur[0] = i
    for j, h in enumerate(hyp, 1):
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
    prev = cur
  return int(prev[-1])


def word_errors(refs: Sequence[str], hyps: Sequence[str]) -> tuple[int, int]:
  """``(errors, reference words)`` summed over utterance pairs (texts split on whitespace)."""
  if len(refs) != len(hyps):
    raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
  errors = sum(edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
  return errors, sum(len(r.split()) for r in refs)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
  """Corpus WER: total word errors / total reference words (0 for an empty reference set)."""
  errors, words = word_errors(refs, hyps)
  return errors / words if words else 0.0
