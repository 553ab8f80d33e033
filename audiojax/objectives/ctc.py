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
    raise UserError(f"ctc: blank_id={blank_id} is outside the vocabulary of {vocab} units; pass 0 <= blank_id < {vocab}")
  num_labels = labels.shape[1]
  logit_paddings = (jnp.arange(frames)[None] >= logit_lengths[:, None]).astype(jnp.float32)
  valid = jnp.arange(num_labels)[None] < label_lengths[:, None]
  labels = jnp.where(valid, labels, 0).astype(jnp.int32)
  nll = optax.ctc_loss(logits.astype(jnp.float32), logit_paddings, labels, 1.0 - valid.astype(jnp.float32),
                       blank_id=blank_id)
  repeats = jnp.sum(valid[:, 1:] & (labels[:, 1:] == labels[:, :-1]), axis=1)
  feasible = logit_lengths >= label_lengths + repeats
  return jnp.where(feasible, nll, 0.0), feasible
