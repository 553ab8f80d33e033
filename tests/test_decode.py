"""Decoding: transducer greedy / modified beam search and CTC greedy / prefix beam search against brute-force
enumeration of alignments, batched vs one-by-one, and the hotword context graph on hand-worked examples."""
from __future__ import annotations

import itertools
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.decoding import (
  CharNgramLM,
  ContextGraph,
  LmFusion,
  ctc_greedy,
  ctc_prefix_beam_search,
  ctc_prefix_beam_search_nbest,
  greedy_search,
  modified_beam_search,
  modified_beam_search_nbest,
)
from audiojax.decoding.char_lm import UNKNOWN
from audiojax.errors import UserError

V, C, DE, DP, DJ = 6, 2, 4, 5, 8

_w = np.random.default_rng(0)
EMB = jnp.asarray(_w.normal(size=(C, V, DP)), jnp.float32)
W_ENC = jnp.asarray(_w.normal(size=(DE, DJ)), jnp.float32)
W_PRED = jnp.asarray(_w.normal(size=(DP, DJ)), jnp.float32)
W_OUT = jnp.asarray(1.5 * _w.normal(size=(DJ, V)), jnp.float32)


def predictor(tokens):
  """tokens (N, C) int32 -> pred (N, DP): a tiny stateless predictor with fixed random weights."""
  return jnp.tanh(sum(EMB[i][tokens[:, i]] for i in range(C)))


def joiner(enc, pred):
  """enc (..., DE), pred (..., DP) -> logits (..., V)."""
  return jnp.tanh(enc @ W_ENC + pred @ W_PRED) @ W_OUT


def logsumexp(values):
  values = np.asarray(values, np.float64)
  top = values.max()
  return float(top + np.log(np.exp(values - top).sum()))


def transducer_table(enc):
  """log p(token | frame t, context) for every context: (T, V**C, V) float64, rows indexed by the context tuple."""
  contexts = np.array(list(itertools.product(range(V), repeat=C)), np.int32)
  pred = np.asarray(predictor(jnp.asarray(contexts)), np.float64)
  logits = np.asarray(joiner(jnp.asarray(enc)[:, None, :], jnp.asarray(pred)[None]), np.float64)
  logits = logits - logits.max(-1, keepdims=True)
  return logits - np.log(np.exp(logits).sum(-1, keepdims=True)), {tuple(c): i for i, c in enumerate(contexts)}


def brute_force_transducer(enc):
  """Every alignment with at most one symbol per frame → {label sequence: log-probability summed over alignments}."""
  table, index = transducer_table(enc)
  per_seq = defaultdict(list)
  for alignment in itertools.product(range(V), repeat=enc.shape[0]):
    context, labels, logp = (0,) * C, [], 0.0
    for t, v in enumerate(alignment):
      logp += table[t, index[context], v]
      if v != 0:
        labels.append(v)
        context = context[1:] + (v,)
    per_seq[tuple(labels)].append(logp)
  return {seq: logsumexp(lps) for seq, lps in per_seq.items()}


def random_enc(seed, batch, frames):
  return jnp.asarray(2.0 * np.random.default_rng(seed).normal(size=(batch, frames, DE)), jnp.float32)


def test_greedy_equals_beam_search_with_beam_one():
  enc = random_enc(1, 4, 9)
  lengths = jnp.array([9, 5, 0, 7])
  greedy = greedy_search(enc, lengths, predictor, joiner, context_size=C)
  assert greedy[2] == [] and sum(map(len, greedy)) > 5  # the weights emit symbols, so the check means something
  for length_norm in (True, False):
    assert modified_beam_search(enc, lengths, predictor, joiner, beam=1, context_size=C,
                                length_norm=length_norm) == greedy


def test_greedy_matches_frame_by_frame_argmax():
  enc = random_enc(2, 2, 8)
  lengths = np.array([8, 6])
  got = greedy_search(enc, lengths, predictor, joiner, context_size=C)
  for b in range(2):
    table, index = transducer_table(np.asarray(enc[b]))
    context, labels = (0,) * C, []
    for t in range(lengths[b]):
      v = int(table[t, index[context]].argmax())
      if v != 0:
        labels.append(v)
        context = context[1:] + (v,)
    assert got[b] == labels


def test_exhaustive_beam_search_with_a_language_model_adds_its_sentence_scores():
  """Nothing pruned: every token sequence scores its transducer log-probability plus the fusion's weighted LM
  log-probability (end included), token bonuses and out-of-vocabulary penalties, which depend on the sequence only."""
  pieces = [UNKNOWN, "C", "K", "A", "T", " "]
  lm = CharNgramLM(["CAT", "TACK", "A CAT"], 3)
  fusion = LmFusion(lm, pieces, weight=0.6, token_bonus=0.3, oov_penalty=1.1)
  enc = random_enc(5, 1, 4)
  expected = brute_force_transducer(np.asarray(enc[0]))
  nbest = modified_beam_search_nbest(enc, jnp.array([4]), predictor, joiner, beam=1024, context_size=C, lm=fusion,
                                     lm_candidates=8)[0]
  got = {tuple(tokens): score for tokens, score in nbest}
  assert set(got) == set(expected)
  for seq, acoustic in expected.items():
    text = "".join(pieces[i] for i in seq).lstrip(" ")
    oov = sum(w not in {"CAT", "TACK", "A"} for w in text.split())
    assert got[seq] == pytest.approx(acoustic + 0.6 * lm.sentence_log_prob(text) + 0.3 * len(seq) - 1.1 * oov,
                                     abs=1e-4)


@pytest.mark.parametrize("seed", [3, 4])
def test_exhaustive_beam_search_equals_brute_force(seed):
  frames = 4
  enc = random_enc(seed, 1, frames)
  expected = brute_force_transducer(np.asarray(enc[0]))
  # beam >= every (hypothesis x token) pair: nothing is pruned, so the merged scores are exact.
  nbest = modified_beam_search_nbest(enc, jnp.array([frames]), predictor, joiner, beam=1024, context_size=C)[0]
  got = {tuple(tokens): score for tokens, score in nbest}
  assert set(got) == set(expected)
  np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), atol=1e-4)
  for length_norm in (False, True):
    rank = {seq: lp / (len(seq) + C) if length_norm else lp for seq, lp in expected.items()}
    ordered = sorted(rank.values())
    assert ordered[-1] - ordered[-2] > 1e-3  # a clear winner
    best = max(rank, key=rank.get)
    assert modified_beam_search(enc, jnp.array([frames]), predictor, joiner, beam=1024, context_size=C,
                                length_norm=length_norm) == [list(best)]


def test_batched_equals_one_by_one_on_padded_inputs():
  lengths = [8, 3, 6, 1]
  enc = np.asarray(random_enc(5, len(lengths), 8))  # frames past each length hold junk, which must be ignored
  graph = ContextGraph([[1, 2], [3, 3, 4]], bonus=1.0)
  for decode in (lambda e, l: greedy_search(e, l, predictor, joiner, context_size=C),
                 lambda e, l: modified_beam_search(e, l, predictor, joiner, beam=4, context_size=C),
                 lambda e, l: modified_beam_search(e, l, predictor, joiner, beam=4, context_size=C,
                                                   context_graph=graph)):
    batched = decode(enc, np.array(lengths))
    alone = [decode(enc[b:b + 1, :n], np.array([n]))[0] for b, n in enumerate(lengths)]
    assert batched == alone
  # one graph per utterance (None: no boosting) equals decoding each utterance alone with its own graph
  graphs = [graph, None, ContextGraph([[2, 2]], bonus=2.0), graph]
  beam = lambda e, l, g: modified_beam_search(e, l, predictor, joiner, beam=4, context_size=C, context_graph=g)
  alone = [beam(enc[b:b + 1, :n], np.array([n]), graphs[b])[0] for b, n in enumerate(lengths)]
  assert beam(enc, np.array(lengths), graphs) == alone
  assert alone != [beam(enc[b:b + 1, :n], np.array([n]), None)[0] for b, n in enumerate(lengths)]
  with pytest.raises(UserError, match="one per utterance"):
    beam(enc, np.array(lengths), graphs[:2])
  log_probs = np.asarray(jax.nn.log_softmax(random_enc(6, len(lengths), 8)[..., :3] * 2.0, axis=-1))
  for decode in (ctc_greedy, lambda lp, l: ctc_prefix_beam_search(lp, l, beam=3, context_graph=graph)):
    batched = decode(log_probs, np.array(lengths))
    assert batched == [decode(log_probs[b:b + 1, :n], np.array([n]))[0] for b, n in enumerate(lengths)]


def test_ctc_greedy_matches_numpy():
  rng = np.random.default_rng(7)
  log_probs = np.log(rng.dirichlet(np.full(4, 0.3), size=(3, 20)))
  lengths = np.array([20, 11, 0])
  got = ctc_greedy(log_probs, lengths)
  for b in range(3):
    path = log_probs[b, :lengths[b]].argmax(-1)
    assert got[b] == [int(k) for k, _ in itertools.groupby(path) if k != 0]
  one_hot = np.log(np.eye(4)[[1, 1, 0, 1, 2, 2, 0, 3]] + 1e-9)[None]
  assert ctc_greedy(one_hot, [8]) == [[1, 1, 2, 3]]


def brute_force_ctc(log_probs):
  per_seq = defaultdict(list)
  frames, vocab = log_probs.shape
  for path in itertools.product(range(vocab), repeat=frames):
    labels = tuple(k for k, _ in itertools.groupby(path) if k != 0)
    per_seq[labels].append(sum(log_probs[t, v] for t, v in enumerate(path)))
  return {seq: logsumexp(lps) for seq, lps in per_seq.items()}


@pytest.mark.parametrize("seed", [8, 9, 10])
def test_exhaustive_ctc_prefix_beam_search_equals_brute_force(seed):
  rng = np.random.default_rng(seed)
  log_probs = np.log(rng.dirichlet(np.full(4, 0.7), size=(1, 5)))
  expected = brute_force_ctc(log_probs[0])
  got = {tuple(s): score for s, score in ctc_prefix_beam_search_nbest(log_probs, [5], beam=1000)[0]}
  assert set(got) == set(expected)
  np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), atol=1e-9)
  ordered = sorted(expected.values())
  assert ordered[-1] - ordered[-2] > 1e-3
  assert ctc_prefix_beam_search(log_probs, [5], beam=1000) == [list(max(expected, key=expected.get))]


# ---- context graph --------------------------------------------------------------------------------------------------
def chars(text):
  return [ord(c) for c in text]


def brute_force_bonus(hotwords, sequence, bonus):
  """bonus * sum of len(w) over every (overlapping) occurrence of every distinct hotword."""
  total = 0
  for word in set(map(tuple, hotwords)):
    n = len(word)
    total += n * sum(tuple(sequence[i:i + n]) == word for i in range(len(sequence) - n + 1))
  return bonus * total


def test_context_graph_totals_on_overlapping_hotwords():
  words = ["S", "HE", "SHE", "SHELL", "HIS", "HERS", "HELLO", "THIS", "THEM"]
  graph = ContextGraph([chars(w) for w in words], bonus=1.0)
  worked = {  # occurrences by hand
      "HEHERSHE": 14,  # HE, HE, HERS, S, SHE, HE
      "HERSHE": 12,  # HE, HERS, S, SHE, HE
      "HISHE": 9,  # HIS, S, SHE, HE
      "SHED": 6,  # S, SHE, HE
      "HELL": 2,  # HE; the open HELL... match is refunded
      "HELLO": 7,  # HE, HELLO
      "DHRHISQ": 4,  # HIS, S
      "THEN": 2,  # HE (THE... refunded)
      "SHELL": 11,  # S, SHE, HE, SHELL
      "XYZ": 0,
  }
  for text, expected in worked.items():
    assert graph.score(chars(text)) == pytest.approx(expected), text
  rng = np.random.default_rng(11)
  hotwords = [list(rng.integers(1, 4, size=rng.integers(1, 5))) for _ in range(6)]
  graph = ContextGraph([[int(t) for t in w] for w in hotwords], bonus=0.5)
  for _ in range(200):
    sequence = [int(t) for t in rng.integers(1, 4, size=rng.integers(0, 12))]
    assert graph.score(sequence) == pytest.approx(brute_force_bonus(hotwords, sequence, 0.5))


def steps(graph, text):
  state, deltas = graph.root, []
  for token in chars(text):
    delta, state = graph.forward_one_step(state, token)
    deltas.append(delta)
  return deltas, graph.finalize(state)


def test_context_graph_step_scores_failure_arcs_and_refunds():
  graph = ContextGraph([chars("ABCD"), chars("BCE")], bonus=2.0)
  # A, B, C extend ABCD (+2 each); E fails over to BC (running bonus 4) and completes BCE (6): +0.
  assert steps(graph, "ABCE") == ([2, 2, 2, 0], 0)
  # X breaks the ABC match and nothing else is open: the 6 given so far is taken back.
  assert steps(graph, "ABCX") == ([2, 2, 2, -6], 0)
  # Decoding ends inside a match: finalize refunds it.
  assert steps(graph, "AB") == ([2, 2], -4)
  graph = ContextGraph([chars("ABCD"), chars("BC")], bonus=1.0)
  # C completes BC (2) while ABC stays open (3): running 5 after 2 → +3; D completes ABCD: 2 + 4 = 6 → +1.
  assert steps(graph, "ABCD") == ([1, 1, 3, 1], 0)
  assert steps(graph, "ABCX") == ([1, 1, 3, -3], 0)  # BC is kept, the open ABC refunded
  graph = ContextGraph([chars("HE"), chars("HERS")], bonus=1.0)
  # HE is complete (2, nothing pending); R opens HER (pending 3) on top of it: +3; S completes HERS: 2 + 4 → +1.
  assert steps(graph, "HERS") == ([1, 1, 3, 1], 0)
  assert steps(graph, "HER") == ([1, 1, 3], -3)


def test_context_graph_rejects_bad_hotwords():
  with pytest.raises(UserError, match="hotword #1"):
    ContextGraph([[1, 2], []], bonus=1.0)
  with pytest.raises(UserError, match="non-negative"):
    ContextGraph([[1, -2]], bonus=1.0)


# ---- hotword boosting in beam search --------------------------------------------------------------------------------
def frames_to_logits(probs):
  """Rows of per-frame token probabilities over V=6 (blank 0) → log-probabilities (1, T, 6)."""
  out = np.full((len(probs), V), 1e-6)
  for t, row in enumerate(probs):
    for token, p in row.items():
      out[t, token] = p
  out /= out.sum(-1, keepdims=True)
  return np.log(out)[None]


def acoustic_joiner(enc, pred):
  """A joiner whose logits are the encoder frame itself: the test sets the acoustic scores directly."""
  return enc + 0.0 * pred.sum(-1, keepdims=True)


def zero_predictor(tokens):
  return jnp.zeros((tokens.shape[0], 1), jnp.float32)


RUNNER_UP = [{2: 0.55, 3: 0.40, 0: 0.05}, {4: 0.9, 0: 0.1}, {0: 1.0}]  # "2 4" best, "3 4" second
HOPELESS = [{2: 0.95, 0: 0.05, 3: 1e-9}, {4: 0.9, 0: 0.1}, {0: 1.0}]  # "3 4" has p ~ 1e-9


@pytest.mark.parametrize("decoder", ["transducer", "ctc"])
def test_hotword_boosting(decoder):
  def decode(probs, hotwords=None, bonus=1.5):
    lp = frames_to_logits(probs)
    graph = ContextGraph(hotwords, bonus=bonus) if hotwords else None
    if decoder == "ctc":
      return ctc_prefix_beam_search(lp, [lp.shape[1]], beam=4, context_graph=graph)[0]
    return modified_beam_search(jnp.asarray(lp, jnp.float32), jnp.array([lp.shape[1]]), zero_predictor,
                                acoustic_joiner, beam=4, context_size=C, context_graph=graph)[0]

  assert decode(RUNNER_UP) == [2, 4]
  assert decode(RUNNER_UP, [[3, 4]]) == [3, 4]  # boosted from runner-up to best
  assert decode(RUNNER_UP, [[3, 5]]) == [2, 4]  # 3 is boosted on the way, but [3, 5] never completes: refunded
  assert decode(RUNNER_UP[:1] + RUNNER_UP[2:], [[3, 5]]) == [2]  # the match is still open at the end: refunded
  assert decode(HOPELESS) == [2, 4]
  assert decode(HOPELESS, [[3, 4]]) == [2, 4]  # a 3-point bonus cannot beat a 1e-9 acoustic score


def test_length_normalized_final_pick():
  """One frame: [] scores a = log p(blank), [1] scores b = log p(1). icefall ranks by score / len(ys) with ys holding
  the C=2 start blanks: a / 2 against b / 3."""
  def decode(log_p1, length_norm):
    rest = (1 - np.exp(-1.0) - np.exp(log_p1)) / 4
    lp = frames_to_logits([{0: np.exp(-1.0), 1: np.exp(log_p1), 2: rest, 3: rest, 4: rest, 5: rest}])
    return modified_beam_search(jnp.asarray(lp, jnp.float32), jnp.array([1]), zero_predictor, acoustic_joiner,
                                beam=4, context_size=C, length_norm=length_norm)[0]

  assert decode(-1.4, length_norm=False) == []  # -1 > -1.4
  assert decode(-1.4, length_norm=True) == [1]  # -1/2 < -1.4/3
  assert decode(-1.6, length_norm=True) == []  # -1/2 > -1.6/3 (with a denominator of len + 1 it would flip)


def test_bad_inputs_raise_user_errors():
  enc = random_enc(12, 2, 4)
  with pytest.raises(UserError, match="enc_lengths"):
    greedy_search(enc, jnp.array([4]), predictor, joiner)
  with pytest.raises(UserError, match="enc_lengths"):
    modified_beam_search(enc, jnp.array([4, 5]), predictor, joiner)
  with pytest.raises(UserError, match="beam"):
    modified_beam_search(enc, jnp.array([4, 4]), predictor, joiner, beam=0)
  with pytest.raises(UserError, match="log_probs"):
    ctc_greedy(np.zeros((3, 4)), [3])
  with pytest.raises(UserError, match="lengths"):
    ctc_prefix_beam_search(np.zeros((1, 3, 4)), [4])
