"""The character n-gram LM against a brute-force Kneser–Ney written from the textbook formula, and its shallow fusion
into CTC prefix beam search against exhaustive enumeration."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from audiojax.decoding import (
  CharNgramLM,
  LmFusion,
  ctc_prefix_beam_search,
  ctc_prefix_beam_search_nbest,
)
from audiojax.decoding.char_lm import BOS, EOS, UNKNOWN
from audiojax.errors import UserError

CORPUS = ["THE CAT SAT", "THE CAT RAN", "A CAT", "THE HAT", "THAT CAT SAT ON THE MAT"]


def reference_kn(lines, order):
  """Interpolated Kneser–Ney by brute force: every count is recomputed by scanning the padded n-gram list per query.
  Returns ``prob(history, char)`` with ``len(history) == order - 1``."""
  grams = []
  for line in lines:
    padded = BOS * (order - 1) + line + EOS
    grams += [padded[i - order + 1:i + 1] for i in range(order - 1, len(padded))]
  distinct = set(grams)

  def count(k, history, char):
    """Raw count at the top order, else the number of distinct left neighbours of ``history + char``."""
    if k == order:
      return sum(g == history + char for g in grams)
    return len({g[-k - 1] for g in distinct if g[-k:] == history + char})

  chars = sorted({g[-1] for g in grams})
  alphabet = len(chars) + 1  # plus the unknown character

  def discount(k):
    level = [count(k, h, c) for h in {g[-k:-1] for g in grams} for c in chars]
    n1, n2 = level.count(1), level.count(2)
    return n1 / (n1 + 2 * n2)

  discounts = {k: discount(k) for k in range(1, order + 1)}

  def prob(history, char):
    k = len(history) + 1
    lower = prob(history[1:], char) if k > 1 else 1.0 / alphabet
    row = [count(k, history, c) for c in chars]
    total = sum(row)
    if total == 0:
      return lower
    d = discounts[k]
    mine = count(k, history, char) if char in chars else 0
    return max(mine - d, 0) / total + d * sum(n > 0 for n in row) / total * lower

  return prob


@pytest.mark.parametrize("order", [1, 2, 3])
def test_probabilities_match_the_brute_force_reference(order):
  lm, ref = CharNgramLM(CORPUS, order), reference_kn(CORPUS, order)
  histories = {BOS * (order - 1), "CA"[-order + 1:] if order > 1 else "", "TH"[-order + 1:] if order > 1 else "",
               "ZQ"[-order + 1:] if order > 1 else "", (BOS + "T")[-order + 1:] if order > 1 else ""}
  for history in histories:
    for char in sorted(set("".join(CORPUS))) + [EOS, UNKNOWN]:
      assert math.isclose(math.exp(lm.char_log_prob(history, char)), ref(history, char), rel_tol=1e-12), (history,
                                                                                                           char)


@pytest.mark.parametrize("order", [1, 2, 4, 6])
def test_every_history_gives_a_distribution(order):
  lm = CharNgramLM(CORPUS, order)
  for history in ["", "THE C", "XYZW!", BOS * 5, BOS * 3 + "TH", "AT SA"]:
    history = (BOS * order + history)[len(BOS * order + history) - order + 1:] if order > 1 else ""
    total = sum(math.exp(lm.char_log_prob(history, c)) for c in lm.alphabet)
    assert math.isclose(total, 1.0, rel_tol=1e-12), history
  assert set(lm.alphabet) == set("".join(CORPUS)) | {EOS, UNKNOWN}


def test_hand_worked_bigram():
  """Corpus "ab", "ab", "b" at order 2. Bigrams: ^a ×2, ab ×2, b$ ×3, ^b ×1. Counts of counts at order 2: n1 = 1
  (^b), n2 = 2 (^a, ab), so D2 = 1/5. Unigram continuation counts: a 1 (^), b 2 (^, a), $ 1 (b): n1 = 2, n2 = 1,
  D1 = 1/2, total 4, three types, alphabet {a, b, $, unknown} = 4. P1(b) = (2 − ½)/4 + ½·3/4·¼ = 0.46875.
  P(b | a) = (2 − ⅕)/2 + ⅕·1/2·P1(b) = 0.946875."""
  lm = CharNgramLM(["ab", "ab", "b"], 2)
  assert math.isclose(math.exp(lm.char_log_prob("a", "b")), 0.946875, rel_tol=1e-12)
  assert math.isclose(math.exp(lm.char_log_prob("q", "b")), 0.46875, rel_tol=1e-12)  # unseen history: backs off
  assert math.isclose(math.exp(lm.char_log_prob("a", "z")), math.exp(lm.char_log_prob("a", UNKNOWN)))


def test_spellings_it_has_read_beat_near_misses():
  lm = CharNgramLM(CORPUS * 3, 4)
  assert lm.sentence_log_prob("THE CAT") > lm.sentence_log_prob("THE KAT") + 2
  assert lm.perplexity(["THE CAT SAT"]) < lm.perplexity(["TEH KAT STA"])
  logp, state = lm.score(lm.initial_state(), "THE")
  assert state == "THE" and math.isclose(logp + lm.score(state, " CAT")[0], lm.score(lm.initial_state(),
                                                                                     "THE CAT")[0])


def brute_force_ctc(log_probs):
  """{label sequence: log-probability summed over every path}."""
  out = {}
  frames, vocab = log_probs.shape
  for path in itertools.product(range(vocab), repeat=frames):
    labels = tuple(k for k, _ in itertools.groupby(path) if k != 0)
    logp = sum(log_probs[t, v] for t, v in enumerate(path))
    out[labels] = np.logaddexp(out.get(labels, -np.inf), logp)
  return out


PIECES = [UNKNOWN, "C", "K", "A", "T", " "]  # id 0 is the blank


@pytest.mark.parametrize("seed,oov_penalty,cache_size",
                         [(0, 0.0, 1 << 20), (1, 0.0, 3), (2, 1.3, 1 << 20), (3, 2.1, 3)])
def test_fused_beam_search_scores_equal_acoustic_plus_weighted_lm(seed, oov_penalty, cache_size):
  """Exact at any cache size: a full cache is emptied and its scores recomputed."""
  lm = CharNgramLM(["CAT", "TACK", "A CAT"], 3)
  fusion = LmFusion(lm, PIECES, weight=0.7, token_bonus=0.4, oov_penalty=oov_penalty, cache_size=cache_size)
  log_probs = np.log(np.random.default_rng(seed).dirichlet(np.full(len(PIECES), 0.6), size=(1, 4)))
  acoustic = brute_force_ctc(log_probs[0])
  got = dict((tuple(s), score) for s, score in ctc_prefix_beam_search_nbest(log_probs, [4], beam=10_000, lm=fusion)[0])
  assert set(got) == set(acoustic)
  for labels, score in acoustic.items():
    text = "".join(PIECES[i] for i in labels).lstrip(" ")  # a hypothesis's leading space is dropped, not scored
    oov = sum(w not in {"CAT", "TACK", "A"} for w in text.split())
    expected = score + 0.7 * lm.sentence_log_prob(text) + 0.4 * len(labels) - oov_penalty * oov
    assert math.isclose(got[labels], expected, rel_tol=1e-9, abs_tol=1e-9), labels
  assert len(fusion._cache) <= cache_size


def test_the_lm_corrects_an_acoustic_near_miss_and_weight_zero_changes_nothing():
  # frames: K slightly above C, then A, then T, blanks between: acoustically "KAT"
  probs = [{2: 0.5, 1: 0.4}, {0: 0.9}, {3: 0.9}, {0: 0.9}, {4: 0.9}]
  log_probs = np.full((1, len(probs), len(PIECES)), np.log(1e-3))
  for t, frame in enumerate(probs):
    for k, p in frame.items():
      log_probs[0, t, k] = np.log(p)
  lm = CharNgramLM(["CAT", "A CAT", "THE CAT"], 3)
  assert ctc_prefix_beam_search(log_probs, [5], beam=4) == [[2, 3, 4]]
  assert ctc_prefix_beam_search(log_probs, [5], beam=4, lm=LmFusion(lm, PIECES, weight=0.5)) == [[1, 3, 4]]
  plain = ctc_prefix_beam_search_nbest(log_probs, [5], beam=4)
  assert ctc_prefix_beam_search_nbest(log_probs, [5], beam=4, lm=LmFusion(lm, PIECES, weight=0.0)) == plain


def test_out_of_vocabulary_words_are_penalised_once_each():
  lm = CharNgramLM(["The cat, the hat.", "A well-read cat"], 3)
  assert lm.words == {"THE", "CAT", "HAT", "A", "WELL", "READ"}
  fusion = LmFusion(lm, ["", "THE ", "CA", "T", "KAT", " ", "HA", "-", "READ", "\"", "CAR"], weight=0.0,
                    oov_penalty=2.0)

  def total(tokens):
    state, score = fusion.initial_state(), 0.0
    for token in tokens:
      delta, state = fusion.extend(state, token)
      score += delta
    return score + fusion.finish(state)

  assert total([9, 1, 2, 3]) == 0.0  # "THE CAT: punctuation is not part of a word
  assert total([1, 4]) == -2.0  # KAT starts no training word
  assert total([1, 2]) == -2.0  # CA starts CAT but ends the sentence unfinished
  assert total([1, 2, 5, 6, 3]) == -2.0  # the same ended by a space: once; then HAT
  assert total([6, 3, 7, 8, 5, 10]) == -2.0  # HAT-READ are two words; CAR is not one
  assert total([4, 4, 5]) == -2.0  # KATKAT: penalised once, when it left the vocabulary


def test_bad_lm_input_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match="no non-empty training line"):
    CharNgramLM(["", "  "], 3)
  with pytest.raises(UserError, match="order"):
    CharNgramLM(CORPUS, 0)
  with pytest.raises(UserError, match="does not exist"):
    CharNgramLM.from_file(str(tmp_path / "missing.txt"))
