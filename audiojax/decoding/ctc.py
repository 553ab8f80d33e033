"""CTC decoding on the host: greedy (best path) and prefix beam search, with optional hotword boosting and LM fusion.

Prefix beam search keeps, per label prefix, the log-probability of the alignments that end in blank (``pb``) and in
its last label (``pnb``), so repeated labels separated by a blank and collapsed repeats are told apart; a prefix's
score is ``logaddexp(pb, pnb)``. With a :class:`~audiojax.decoding.context_graph.ContextGraph`, a prefix also carries
its graph state and accumulated bonus (added when a label extends the prefix, as in WeNet's context biasing); ranking
and the final pick use the score plus that bonus, finalized at the end. With an
:class:`~audiojax.decoding.char_lm.LmFusion` a prefix likewise carries its LM state and the weighted LM score of its
labels (plus the per-token bonus), and the end-of-sentence score is added at the end.
"""
from __future__ import annotations

import math

import numpy as np

from audiojax.decoding.char_lm import LmFusion
from audiojax.decoding.context_graph import ContextGraph
from audiojax.errors import UserError


def _check_inputs(log_probs, lengths) -> tuple[np.ndarray, np.ndarray]:
  """``log_probs (B, T, V)`` as float64 and ``lengths (B,)`` as ints, after checking shapes."""
  log_probs = np.asarray(log_probs, np.float64)
  if log_probs.ndim != 3:
    raise UserError(f"CTC log_probs must be (B, T, V), got shape {log_probs.shape}")
  lengths = np.asarray(lengths)
  batch, frames, _ = log_probs.shape
  if lengths.shape != (batch,):
    raise UserError(f"CTC lengths must be ({batch},) to match log_probs {log_probs.shape}, got {lengths.shape}")
  if lengths.size and (lengths.min() < 0 or lengths.max() > frames):
    raise UserError(f"CTC lengths must lie in [0, {frames}] (the frame count of log_probs), got {lengths.tolist()}")
  return log_probs, lengths.astype(np.int64)


def _logaddexp(a: float, b: float) -> float:
  """Scalar log(exp(a) + exp(b)), −inf safe (math is several times faster than numpy on Python floats)."""
  if a < b:
    a, b = b, a
  return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def ctc_greedy(log_probs, lengths, *, blank_id: int = 0) -> list[list[int]]:
  """Best path: argmax per frame, repeats collapsed, blanks dropped. ``log_probs (B, T, V)`` (or logits),
  ``lengths (B,)`` → one label list per utterance."""
  log_probs, lengths = _check_inputs(log_probs, lengths)
  best = log_probs.argmax(-1)
  out = []
  for b in range(best.shape[0]):
    path = best[b, :lengths[b]]
    keep = np.ones(path.shape, bool)
    keep[1:] = path[1:] != path[:-1]
    keep &= path != blank_id
    out.append(path[keep].tolist())
  return out


def ctc_prefix_beam_search_nbest(log_probs, lengths, *, beam: int = 4, blank_id: int = 0,
                                 context_graph: ContextGraph | None = None, lm: LmFusion | None = None
                                 ) -> list[list[tuple[list[int], float]]]:
  """Prefix beam search returning every surviving prefix: per utterance ``[(labels, score), ...]``, best first.

  ``log_probs (B, T, V)`` are per-frame log-softmax outputs. Per frame only the ``beam`` most probable labels are
  expanded and the ``beam`` best prefixes kept. ``score`` = log-probability of the label sequence (summed over the
  alignments kept) + the finalized context bonus + the LM fusion score (``lm``).
  """
  log_probs, lengths = _check_inputs(log_probs, lengths)
  if beam < 1:
    raise UserError(f"beam must be >= 1, got {beam}")
  vocab = log_probs.shape[-1]
  root = context_graph.root if context_graph is not None else 0
  lm_root = lm.initial_state() if lm is not None else ""
  results = []
  for b in range(log_probs.shape[0]):
    # prefix -> [pb, pnb, graph_state, bonus, lm_state]; the bonus holds the context and LM scores
    beams: dict[tuple[int, ...], list] = {(): [0.0, -math.inf, root, 0.0, lm_root]}
    for t in range(lengths[b]):
      frame = log_probs[b, t]
      labels = np.argsort(-frame, kind="stable")[:beam] if beam < vocab else range(vocab)
      nxt: dict[tuple[int, ...], list] = {}

      def entry(prefix, parent, label):
        """The next-frame entry of ``prefix`` (created from ``parent`` extended by ``label`` when new)."""
        if prefix not in nxt:
          state, bonus, lm_state = parent[2], parent[3], parent[4]
          if label is not None and context_graph is not None:
            delta, state = context_graph.forward_one_step(state, label)
            bonus += delta
          if label is not None and lm is not None:
            delta, lm_state = lm.extend(lm_state, label)
            bonus += delta
          nxt[prefix] = [-math.inf, -math.inf, state, bonus, lm_state]
        return nxt[prefix]

      for prefix, cur in beams.items():
        pb, pnb = cur[0], cur[1]
        for label in labels:
          label = int(label)
          p = float(frame[label])
          if label == blank_id:
            e = entry(prefix, cur, None)
            e[0] = _logaddexp(e[0], _logaddexp(pb, pnb) + p)
          elif prefix and label == prefix[-1]:
            e = entry(prefix, cur, None)  # repeat without a blank between: collapses into the same prefix
            e[1] = _logaddexp(e[1], pnb + p)
            e = entry(prefix + (label,), cur, label)  # repeat after a blank: a new label
            e[1] = _logaddexp(e[1], pb + p)
          else:
            e = entry(prefix + (label,), cur, label)
            e[1] = _logaddexp(e[1], _logaddexp(pb, pnb) + p)
      # Drop entries every alignment of which is impossible (a repeated label with no blank frame before it).
      ranked = sorted(((_logaddexp(e[0], e[1]) + e[3], prefix) for prefix, e in nxt.items()
                       if _logaddexp(e[0], e[1]) > -math.inf), key=lambda item: -item[0])
      beams = {prefix: nxt[prefix] for _, prefix in ranked[:beam]}
    final = []
    for prefix, (pb, pnb, state, bonus, lm_state) in beams.items():
      score = _logaddexp(pb, pnb) + bonus
      if context_graph is not None:
        score += context_graph.finalize(state)
      if lm is not None:
        score += lm.finish(lm_state)
      final.append((list(prefix), float(score)))
    final.sort(key=lambda item: -item[1])
    results.append(final)
  return results


def ctc_prefix_beam_search(log_probs, lengths, *, beam: int = 4, blank_id: int = 0,
                           context_graph: ContextGraph | None = None, lm: LmFusion | None = None) -> list[list[int]]:
  """Prefix beam search: the best label sequence per utterance. ``log_probs (B, T, V)`` log-softmax outputs,
  ``lengths (B,)``; ``context_graph`` adds hotword bonuses and ``lm`` a language model's (shallow fusion)."""
  nbest = ctc_prefix_beam_search_nbest(log_probs, lengths, beam=beam, blank_id=blank_id, context_graph=context_graph,
                                       lm=lm)
  return [hyps[0][0] if hyps else [] for hyps in nbest]
