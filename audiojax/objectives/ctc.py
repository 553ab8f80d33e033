"""CTC loss over padded batches: ``optax.ctc_loss`` from valid lengths, with unalignable rows masked out."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from audiojax.errors import UserError


def ctc_loss(logits: jax.Array, logit_lengths: jax.Array, labels: jax.Array, label_lengths: jax.Array, *,
             blank_id: int = 0) -> tuple[jax.Array, jax.Array]:
  """Per-example CTC negative log-likelihood.

  Args:
    logits: ``(B, T, V)`` unnormalised scores.
    logit_lengths: ``(B,)`` valid frames.
    labels: ``(B, U)`` int, right-padded with anything.
    label_lengths: ``(B,)`` valid labels.
    blank_id: the blank unit.
  Returns:
    ``nll (B,)`` float32 and ``feasible (B,)`` bool. A row is infeasible when ``T_b < U_b + (adjacent repeats in its
    labels)``: no alignment exists; its ``nll`` is 0 (optax would give ~1e5) and carries no gradient, so
    ``sum(nll) / sum(feasible)`` is a safe mean.
  """
  if logits.ndim != 3 or labels.ndim != 2 or labels.shape[0] != logits.shape[0]:
    raise UserError(f"ctc: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not fit; "
                    "pass logits (B, T, V) and labels (B, U)")
  batch, frames, vocab = logits.shape
  for name, lengths in (("logit_lengths", logit_lengths), ("label_lengths", label_lengths)):
    if lengths.shape != (batch,):
      raise UserError(f"ctc: {name} has shape {tuple(lengths.shape)}; pass one valid length per example, ({batch},)")
  if not 0 <= blank_id < vocab:
    raise UserError(f"ctc: blank_id={blank_id} is outside the vocabulary of {vocab} units; pass 0 <= blank_id < "
                    f"{vocab}")
  num_labels = labels.shape[1]
  logit_paddings = (jnp.arange(frames)[None] >= logit_lengths[:, None]).astype(jnp.float32)
  valid = jnp.arange(num_labels)[None] < label_lengths[:, None]
  labels = jnp.where(valid, labels, 0).astype(jnp.int32)
  nll = optax.ctc_loss(logits.astype(jnp.float32), logit_paddings, labels, 1.0 - valid.astype(jnp.float32),
                       blank_id=blank_id)
  repeats = jnp.sum(valid[:, 1:] & (labels[:, 1:] == labels[:, :-1]), axis=1)
  feasible = logit_lengths >= label_lengths + repeats
  return jnp.where(feasible, nll, 0.0), feasible


def ctc_alignment(log_probs: jax.Array, logit_lengths: jax.Array, labels: jax.Array, label_lengths: jax.Array, *,
                  blank_id: int = 0) -> jax.Array:
  """Viterbi (forced) alignment: per row, the most likely frame path that collapses to its labels.

  Args:
    log_probs: ``(B, T, V)`` log-probabilities (no gradient flows through the alignment).
    logit_lengths: ``(B,)`` valid frames.
    labels: ``(B, U)`` int, right-padded with anything.
    label_lengths: ``(B,)`` valid labels.
    blank_id: the blank unit.
  Returns:
    ``(B, T)`` int32: the index ``u`` of the label frame ``t`` emits, or -1 where it emits blank, lies past the
    row's frames, or the row is infeasible (its labels, with a blank between repeats, need more frames than it has).
    Ties go to staying in a state, then to the previous state, then to the skip.
  """
  log_probs = jax.lax.stop_gradient(log_probs.astype(jnp.float32))
  batch, frames, _ = log_probs.shape
  states = 2 * labels.shape[1] + 1  # blank, l0, blank, l1, ..., blank
  valid = jnp.arange(labels.shape[1])[None] < label_lengths[:, None]
  labels = jnp.where(valid, labels, blank_id).astype(jnp.int32)
  symbol = jnp.full((batch, states), blank_id, jnp.int32).at[:, 1::2].set(labels)
  skip = jnp.zeros((batch, states), bool).at[:, 3::2].set(labels[:, 1:] != labels[:, :-1])  # enter s from s - 2
  emit = jnp.take_along_axis(log_probs, jnp.broadcast_to(symbol[:, None], (batch, frames, states)), axis=2)
  shift = lambda x, k: jnp.pad(x[:, :-k], ((0, 0), (k, 0)), constant_values=-jnp.inf)
  first = jnp.full((batch, states), -jnp.inf).at[:, :2].set(emit[:, 0, :2])

  def forward(score, t):
    moves = jnp.stack([score, shift(score, 1), jnp.where(skip, shift(score, 2), -jnp.inf)])  # (3, B, S)
    live = (t < logit_lengths)[:, None]  # past a row's frames its scores freeze and its path stays put
    return (jnp.where(live, jnp.max(moves, 0) + emit[:, t], score),
            jnp.where(live, jnp.argmax(moves, 0), 0).astype(jnp.int8))

  score, back = jax.lax.scan(forward, first, jnp.arange(1, frames))  # back (T - 1, B, S): moves into frames 1..T-1
  last = 2 * label_lengths  # the final blank; 2L - 1 is the last label
  end_blank = jnp.take_along_axis(score, last[:, None], 1)[:, 0]
  end_label = jnp.take_along_axis(score, jnp.maximum(last - 1, 0)[:, None], 1)[:, 0]
  end = jnp.where((label_lengths == 0) | (end_blank >= end_label), last, last - 1)
  feasible = jnp.isfinite(jnp.where(end == last, end_blank, end_label))

  def backward(state, back_t):
    return state - jnp.take_along_axis(back_t, state[:, None], 1)[:, 0].astype(jnp.int32), state

  start, later = jax.lax.scan(backward, end, back, reverse=True)
  path = jnp.concatenate([start[None], later]).T  # (B, T) state per frame
  keep = (path % 2 == 1) & (jnp.arange(frames)[None] < logit_lengths[:, None]) & feasible[:, None]
  return jnp.where(keep, path // 2, -1).astype(jnp.int32)
