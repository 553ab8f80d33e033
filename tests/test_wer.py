"""WER by kaldialign against an independent dynamic programme, and icefall's result files."""
import os

import numpy as np

from audiojax.eval import wer


def reference_distance(ref, hyp):
  """Levenshtein distance over words, one row at a time (the textbook recurrence)."""
  prev = list(range(len(hyp) + 1))
  for i, r in enumerate(ref, 1):
    cur = [i]
    for j, h in enumerate(hyp, 1):
      cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
    prev = cur
  return prev[-1]


def test_errors_match_the_textbook_distance_and_split_into_s_d_i():
  rng = np.random.default_rng(0)
  vocab = "a b c d e f".split()
  refs = [" ".join(rng.choice(vocab, rng.integers(0, 12))) for _ in range(200)]
  hyps = [" ".join(rng.choice(vocab, rng.integers(0, 12))) for _ in range(200)]
  stats = wer.error_stats([str(i) for i in range(200)], refs, hyps)
  want = sum(reference_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
  assert stats.errors == want == wer.word_errors(refs, hyps)[0]
  assert stats.words == sum(len(r.split()) for r in refs)
  for (ident, alignment), ref, hyp in zip(stats.alignments, refs, hyps):
    assert [r for r, _ in alignment if r != wer.EPS] == ref.split()
    assert [h for _, h in alignment if h != wer.EPS] == hyp.split()


def test_result_files_are_icefalls(tmp_path):
  stats = wer.write_results(str(tmp_path), "greedy", ["u1", "u2"], ["a b c d", "the cat sat"],
                            ["a x c d e", "the sat"])
  assert (stats.substitutions, stats.deletions, stats.insertions, stats.words) == (1, 1, 1, 7)
  errs = (tmp_path / "errs-greedy.txt").read_text()
  assert errs.startswith("%WER = 42.86\n") and "u1:\ta (b->x) c d (*->e)" in errs and "u2:\tthe (cat->*) sat" in errs
  assert "1   b -> x" in errs.split("SUBSTITUTIONS")[1] and "1   cat -> *" in errs.split("DELETIONS")[1]
  assert (tmp_path / "recogs-greedy.txt").read_text().splitlines()[0] == "u1:\tref=['a', 'b', 'c', 'd']"
  assert (tmp_path / "wer-summary-greedy.txt").read_text() == "settings\tWER\ngreedy\t42.86\n"
  assert sorted(os.listdir(tmp_path)) == ["errs-greedy.txt", "recogs-greedy.txt", "wer-summary-greedy.txt"]
