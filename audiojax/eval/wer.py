"""Word error rate: Levenshtein alignment of word sequences (substitutions, deletions, insertions), and the text
normalisation that corpus WERs compare in."""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from audiojax.text import styles

_SPOKEN = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
           "8": "eight", "9": "nine", "*": "star", "#": "pound"}
_SPOKEN_TOKEN = re.compile(r"(?<![\w.])([0-9*#])(?!\w|\.\d)")  # a lone digit or keypad symbol, not part of 28.8 or 500


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


def spoken_form(text: str) -> str:
  """Single digits and ``*``/``#`` standing alone → their spoken words (``press 1`` → ``press one``, ``*`` →
  ``star``: the Asterisk prompts write key presses that way); everything else unchanged."""
  return _SPOKEN_TOKEN.sub(lambda m: _SPOKEN[m.group(1)], text)


def normalize(text: str) -> str:
  """The recipe's normalised form (upper case, letters and apostrophes only) after :func:`spoken_form`. Longer
  numerals are left as they are, so they drop out of the reference and whatever the model hears for them counts as
  insertions: the WER is then pessimistic, never flattering."""
  return styles.normalize_for_wer(spoken_form(text))
