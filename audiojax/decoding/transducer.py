"""Transducer decoding with a stateless predictor: greedy search and modified beam search (at most one symbol/frame).

Both take the model as two pure callables, as the shared Prompt-ASR design fixes them:
``predictor(tokens (N, context_size) int32) -> pred (N, Dp)`` (the last ``context_size`` tokens, blank-padded) and
``joiner(enc (N, De), pred (N, Dp)) -> logits (N, V)``. They are traced under ``jax.jit``; pass the same callable
objects again to reuse the compiled step (a fresh lambda per call recompiles).

* :func:`greedy_search` — icefall's ``greedy_search_batch``: one ``lax.scan`` over frames, argmax per frame.
* :func:`modified_beam_search` — icefall's ``modified_beam_search``: per frame the top ``beam`` of (hypothesis ×
  token) by total log-probability, hypotheses with the same token sequence merged with ``logaddexp``. The hypothesis
  set is padded to ``beam`` per utterance, so each frame is one jitted predictor + joiner + top-k call for the whole
  batch; the merging (and the optional :class:`~audiojax.decoding.context_graph.ContextGraph` bonus) runs on the host.
  With a language model (:class:`~audiojax.decoding.char_lm.LmFusion`) the device returns the top ``lm_candidates ×
  beam`` by the model's score, the host adds the LM's score of each new token and keeps the best ``beam``.

Batch size and frame count are zero-padded to powers of two (padding rows have length 0), so a test set of many
utterance lengths compiles a few shapes only.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.decoding.char_lm import LmFusion
from audiojax.decoding.context_graph import ContextGraph
from audiojax.errors import UserError

Predictor = Callable[[jax.Array], jax.Array]
Joiner = Callable[[jax.Array, jax.Array], jax.Array]


def _check_inputs(encoder_out, enc_lengths, context_size: int) -> np.ndarray:
  """The valid lengths ``(B,)`` as int32, after checking shapes; UserError otherwise."""
  if getattr(encoder_out, "ndim", None) != 3:
    raise UserError(f"encoder_out must be (B, T, D), got shape {getattr(encoder_out, 'shape', None)}")
  lengths = np.asarray(enc_lengths)
  batch, frames = encoder_out.shape[:2]
  if lengths.shape != (batch,):
    raise UserError(f"enc_lengths must be ({batch},) to match encoder_out {tuple(encoder_out.shape)}, "
                    f"got {lengths.shape}")
  if lengths.size and (lengths.min() < 0 or lengths.max() > frames):
    raise UserError(f"enc_lengths must lie in [0, {frames}] (the frame count of encoder_out), got {lengths.tolist()}")
  if context_size < 1:
    raise UserError(f"context_size must be >= 1 (the predictor's token history), got {context_size}")
  return lengths.astype(np.int32)


@functools.partial(jax.jit, static_argnames=("predictor", "joiner", "context_size", "blank_id"))
def greedy_scan(encoder_out, enc_lengths, *, predictor, joiner, context_size, blank_id):
  """``encoder_out (B, T, De)`` → ``tokens (B, T)`` int32 and ``emitted (B, T)`` bool; traceable, so a jitted
  evaluation step can decode on device."""
  batch = encoder_out.shape[0]
  context = jnp.full((batch, context_size), blank_id, jnp.int32)

  def step(carry, inputs):
    context, pred = carry
    enc_t, t = inputs
    token = jnp.argmax(joiner(enc_t, pred), axis=-1).astype(jnp.int32)
    emit = (token != blank_id) & (t < enc_lengths)
    new_context = jnp.where(emit[:, None], jnp.concatenate([context[:, 1:], token[:, None]], axis=1), context)
    # The predictor runs for every row each frame (it is cheap); rows that emitted nothing keep their output.
    new_pred = jnp.where(emit[:, None], predictor(new_context), pred)
    return (new_context, new_pred), (token, emit)

  frames = jnp.arange(encoder_out.shape[1])
  _, (tokens, emitted) = jax.lax.scan(step, (context, predictor(context)),
                                      (jnp.swapaxes(encoder_out, 0, 1), frames))
  return tokens.T, emitted.T


def _bucket(n: int) -> int:
  """Padded size for a batch or frame count: the next power of two, so decoding utterances of many lengths and
  batch sizes compiles a handful of shapes rather than one per length."""
  return 1 << max(0, int(n) - 1).bit_length()


def _pad_batch(encoder_out: jax.Array, lengths: np.ndarray, frames: int) -> tuple[jax.Array, np.ndarray]:
  """Zero-pad ``encoder_out (B, T, De)`` to ``(bucket(B), frames, De)``; padding rows get length 0."""
  batch, t = encoder_out.shape[:2]
  rows = _bucket(batch)
  widths = ((0, rows - batch), (0, frames - t), (0, 0))
  # Host arrays are padded on the host: an eager jnp.pad would compile once per input shape.
  encoder_out = jnp.asarray(np.pad(encoder_out, widths) if isinstance(encoder_out, np.ndarray)
                            else jnp.pad(encoder_out, widths))
  return encoder_out, np.concatenate([lengths, np.zeros(rows - batch, np.int32)])


def greedy_search(encoder_out: jax.Array, enc_lengths: jax.Array, predictor: Predictor, joiner: Joiner, *,
                  context_size: int = 2, blank_id: int = 0) -> list[list[int]]:
  """Batched greedy search, at most one symbol per frame.

  ``encoder_out (B, T, De)``, ``enc_lengths (B,)`` → one token list per utterance (blanks removed).
  """
  lengths = _check_inputs(encoder_out, enc_lengths, context_size)
  batch = encoder_out.shape[0]
  padded, lengths = _pad_batch(encoder_out, lengths, max(8, _bucket(encoder_out.shape[1])))
  tokens, emitted = greedy_scan(padded, jnp.asarray(lengths), predictor=predictor, joiner=joiner,
                                 context_size=context_size, blank_id=blank_id)
  tokens, emitted = np.asarray(tokens), np.asarray(emitted)
  return [tokens[b][emitted[b]].tolist() for b in range(batch)]


@functools.partial(jax.jit, static_argnames=("predictor", "joiner", "beam"))
def _beam_step(encoder_out, t, contexts, scores, *, predictor, joiner, beam):
  """Frame ``t`` for the whole batch.

  ``encoder_out (B, T, De)``, ``contexts (B, K, C)`` int32 and ``scores (B, K)`` (−inf on padding slots) → the
  top ``beam`` candidates of (hypothesis × token) per utterance: ``values``, ``hyp`` and ``token``, each
  ``(B, beam)`` (values −inf past the ``K × V`` that exist).
  """
  batch, slots, context_size = contexts.shape
  pred = predictor(contexts.reshape(batch * slots, context_size))
  enc = jnp.repeat(jax.lax.dynamic_index_in_dim(encoder_out, t, axis=1, keepdims=False), slots, axis=0)
  log_probs = jax.nn.log_softmax(joiner(enc, pred).astype(jnp.float32), axis=-1)
  vocab = log_probs.shape[-1]
  total = log_probs.reshape(batch, slots, vocab) + scores[:, :, None]
  values, flat = jax.lax.top_k(total.reshape(batch, slots * vocab), min(beam, slots * vocab))
  missing = beam - values.shape[1]  # more candidates asked for than exist: −inf fill, which the host skips
  values = jnp.pad(values, ((0, 0), (0, missing)), constant_values=-jnp.inf)
  flat = jnp.pad(flat, ((0, 0), (0, missing)))
  return values, flat // vocab, flat % vocab


def _graphs_per_utterance(context_graph, batch: int) -> list[ContextGraph | None]:
  if context_graph is None or isinstance(context_graph, ContextGraph):
    return [context_graph] * batch
  graphs = list(context_graph)
  if len(graphs) != batch:
    raise UserError(f"got {len(graphs)} context graphs for a batch of {batch}; give one per utterance or one for all")
  return graphs


def modified_beam_search_nbest(encoder_out: jax.Array, enc_lengths: jax.Array, predictor: Predictor,
                               joiner: Joiner, *, beam: int = 4, context_size: int = 2, blank_id: int = 0,
                               context_graph: ContextGraph | Sequence[ContextGraph | None] | None = None,
                               lm: LmFusion | None = None, lm_candidates: int = 4
                               ) -> list[list[tuple[list[int], float]]]:
  """Modified beam search returning every surviving hypothesis: per utterance ``[(tokens, score), ...]``, best first
  by raw score. ``score`` is the total log-probability of the token sequence (summed over the alignments the beam
  kept) plus the context-graph bonus, finalized (open partial matches refunded), plus the LM fusion score (``lm``,
  end of sentence included). ``context_graph``: one graph for the whole batch, or one (or ``None``) per
  utterance."""
  lengths = _check_inputs(encoder_out, enc_lengths, context_size)
  if beam < 1:
    raise UserError(f"beam must be >= 1, got {beam}")
  batch, frames = encoder_out.shape[:2]
  graphs = _graphs_per_utterance(context_graph, batch)
  encoder_out, _ = _pad_batch(encoder_out, lengths, max(8, _bucket(frames)))
  rows = encoder_out.shape[0]
  # Per utterance: {tokens: [score, graph_state, lm_state]}; the states are functions of the tokens, so they merge
  # too. The score holds the log-probability, the context bonus and the LM score.
  lm_root = lm.initial_state() if lm is not None else None
  hyps: list[dict[tuple[int, ...], list]] = [{(): [0.0, ContextGraph.root, lm_root]} for _ in range(batch)]
  candidates = beam * lm_candidates if lm is not None else beam
  pad_context = [blank_id] * context_size
  for t in range(frames):
    active = [b for b in range(batch) if t < lengths[b]]
    if not active:
      break
    contexts = np.full((rows, beam, context_size), blank_id, np.int32)
    scores = np.full((rows, beam), -np.inf, np.float32)
    order: list[list[tuple[int, ...]]] = []
    for b in range(batch):
      keys = list(hyps[b])
      order.append(keys)
      for k, key in enumerate(keys):
        contexts[b, k] = (pad_context + list(key))[-context_size:]
        scores[b, k] = hyps[b][key][0]
    values, hyp_idx, tok_idx = (np.asarray(x) for x in _beam_step(
        encoder_out, t, jnp.asarray(contexts), jnp.asarray(scores), predictor=predictor, joiner=joiner,
        beam=candidates))
    for b in active:
      new: dict[tuple[int, ...], list] = {}
      for value, k, token in zip(values[b].tolist(), hyp_idx[b].tolist(), tok_idx[b].tolist()):
        if value == -math.inf:  # fewer real candidates than `beam` (tiny vocabularies)
          continue
        key = order[b][k]
        _, state, lm_state = hyps[b][key]
        if token != blank_id:
          key = key + (token,)
          if graphs[b] is not None:
            bonus, state = graphs[b].forward_one_step(state, token)
            value += bonus
          if lm is not None:
            bonus, lm_state = lm.extend(lm_state, token)
            value += bonus
        if key in new:
          new[key][0] = float(np.logaddexp(new[key][0], value))
        else:
          new[key] = [value, state, lm_state]
      hyps[b] = dict(sorted(new.items(), key=lambda item: -item[1][0])[:beam]) if lm is not None else new
  results = []
  for b in range(batch):
    final = []
    for key, (score, state, lm_state) in hyps[b].items():
      if graphs[b] is not None:
        score += graphs[b].finalize(state)
      if lm is not None:
        score += lm.finish(lm_state)
      final.append((list(key), float(score)))
    final.sort(key=lambda item: -item[1])
    results.append(final)
  return results


def modified_beam_search(encoder_out: jax.Array, enc_lengths: jax.Array, predictor: Predictor, joiner: Joiner, *,
                         beam: int = 4, context_size: int = 2, blank_id: int = 0,
                         context_graph: ContextGraph | Sequence[ContextGraph | None] | None = None,
                         length_norm: bool = True, lm: LmFusion | None = None, lm_candidates: int = 4
                         ) -> list[list[int]]:
  """Batched modified beam search (at most one symbol per frame), optionally with hotword boosting.

  ``encoder_out (B, T, De)``, ``enc_lengths (B,)`` → the best token list per utterance. ``context_graph``: each
  emitted token adds its bonus (shallow fusion), the graph state travelling with the hypothesis; ``lm`` likewise adds
  a language model's score, over the best ``lm_candidates × beam`` extensions per frame. The final pick is by
  score divided by ``len(tokens) + context_size`` when ``length_norm`` (icefall's ``get_most_probable(length_norm=
  True)``, what its recipes decode with), else by raw score.
  """
  nbest = modified_beam_search_nbest(encoder_out, enc_lengths, predictor, joiner, beam=beam,
                                     context_size=context_size, blank_id=blank_id, context_graph=context_graph,
                                     lm=lm, lm_candidates=lm_candidates)

  def rank(item):
    tokens, score = item
    return score / (len(tokens) + context_size) if length_norm else score

  return [max(hyps, key=rank)[0] for hyps in nbest]
