"""Word error rate: alignment of word sequences by kaldialign (substitutions, deletions, insertions), icefall's
result files (per-utterance recognitions and alignments, the most frequent errors, a summary), and the text
normalisation that corpus WERs compare in."""
from __future__ import annotations

import collections
import dataclasses
import os
import re
from typing import Sequence

import kaldialign

from audiojax.text import styles

EPS = "*"  # the missing side of a deletion or an insertion in an alignment

_SPOKEN = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five", "6": "six", "7": "seven",
           "8": "eight", "9": "nine", "*": "star", "#": "pound"}
_SPOKEN_TOKEN = re.compile(r"(?<![\w.])([0-9*#])(?!\w|\.\d)")  # a lone digit or keypad symbol, not part of 28.8 or 500


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
  """Minimum number of substitutions, deletions and insertions turning ``ref`` into ``hyp`` (kaldialign)."""
  return int(kaldialign.edit_distance(list(ref), list(hyp))["total"])


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


@dataclasses.dataclass
class ErrorStats:
  """Substitutions, deletions and insertions over a corpus, each utterance's alignment, and the error counts by word
  pair (``(ref, hyp)``; ``EPS`` on the missing side of a deletion or insertion)."""

  words: int = 0
  substitutions: int = 0
  deletions: int = 0
  insertions: int = 0
  alignments: list[tuple[str, list[tuple[str, str]]]] = dataclasses.field(default_factory=list)
  pairs: collections.Counter = dataclasses.field(default_factory=collections.Counter)

  @property
  def errors(self) -> int:
    return self.substitutions + self.deletions + self.insertions

  @property
  def wer(self) -> float:
    return self.errors / self.words if self.words else 0.0


def error_stats(ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str]) -> ErrorStats:
  """The :class:`ErrorStats` of ``hyps`` against ``refs`` (one utterance per id, texts split on whitespace)."""
  stats = ErrorStats()
  for ident, ref, hyp in zip(ids, refs, hyps, strict=True):
    alignment = kaldialign.align(ref.split(), hyp.split(), EPS)
    stats.alignments.append((ident, alignment))
    stats.words += len(ref.split())
    for r, h in alignment:
      if r == EPS:
        stats.insertions += 1
      elif h == EPS:
        stats.deletions += 1
      elif r != h:
        stats.substitutions += 1
      if r != h:
        stats.pairs[(r, h)] += 1
  return stats


def write_results(folder: str, name: str, ids: Sequence[str], refs: Sequence[str], hyps: Sequence[str],
                  top: int = 20) -> ErrorStats:
  """icefall's result files for one test set and decoding setting ``name``: ``recogs-NAME.txt`` (each utterance's
  reference and hypothesis), ``errs-NAME.txt`` (the totals, each utterance's alignment with ``(ref->hyp)`` at its
  errors, and the most frequent substitutions, deletions and insertions) and ``wer-summary-NAME.txt``."""
  stats = error_stats(ids, refs, hyps)
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, f"recogs-{name}.txt"), "w", encoding="utf-8") as f:
    for ident, ref, hyp in zip(ids, refs, hyps):
      f.write(f"{ident}:\tref={ref.split()}\n{ident}:\thyp={hyp.split()}\n")
  with open(os.path.join(folder, f"errs-{name}.txt"), "w", encoding="utf-8") as f:
    f.write(f"%WER = {100 * stats.wer:.2f}\n")
    f.write(f"Errors: {stats.insertions} insertions, {stats.deletions} deletions, {stats.substitutions} "
            f"substitutions, over {stats.words} reference words ({stats.words - stats.substitutions - stats.deletions}"
            f" correct)\n\nPER-UTT DETAILS: corr or (ref->hyp)\n")
    for ident, alignment in stats.alignments:
      f.write(f"{ident}:\t" + " ".join(r if r == h else f"({r}->{h})" for r, h in alignment) + "\n")
    for title, keep in (("SUBSTITUTIONS", lambda r, h: EPS not in (r, h)), ("DELETIONS", lambda r, h: h == EPS),
                        ("INSERTIONS", lambda r, h: r == EPS)):
      f.write(f"\n{title}: count ref -> hyp\n")
      for (r, h), count in [(pair, c) for pair, c in stats.pairs.most_common() if keep(*pair)][:top]:
        f.write(f"{count}   {r} -> {h}\n")
  with open(os.path.join(folder, f"wer-summary-{name}.txt"), "w", encoding="utf-8") as f:
    f.write(f"settings\tWER\n{name}\t{100 * stats.wer:.2f}\n")
  return stats


def spoken_form(text: str) -> str:
  """Single digits and ``*``/``#`` standing alone → their spoken words (``press 1`` → ``press one``, ``*`` →
  ``star``: the Asterisk prompts write key presses that way); everything else unchanged."""
  return _SPOKEN_TOKEN.sub(lambda m: _SPOKEN[m.group(1)], text)


def normalize(text: str) -> str:
  """The recipe's normalised form (upper case, letters and apostrophes only) after :func:`spoken_form`. Longer
  numerals are left as they are, so they drop out of the reference and whatever the model hears for them counts as
  insertions: the WER is then pessimistic, never flattering."""
  return styles.normalize_for_wer(spoken_form(text))
