"""Transducer (RNN-T) loss in pure JAX: the alpha recursion on anti-diagonals, a dense and a chunked entry point.

The forward variable ``alpha[t, u]`` (log-probability of having emitted ``u`` labels by frame ``t``) satisfies

  alpha[t, u] = logaddexp(alpha[t-1, u] + blank[t-1, u], alpha[t, u-1] + emit[t, u-1])

and ``nll = -(alpha[T-1, U] + blank[T-1, U])``. Every cell of an anti-diagonal ``t + u = n`` depends only on diagonal
``n - 1``, so the recursion is one ``lax.scan`` of ``T + U`` steps, each vectorised over the batch and ``U + 1``
(Bagby et al. 2018). ``rnnt_loss`` evaluates the joiner on chunks of frames under ``jax.checkpoint`` and keeps only the
gathered blank/label log-probabilities, so the ``(B, T, U+1, V)`` logits never exist at once, forward or backward.
``rnnt_loss_pruned`` (k2's pruned RNN-T) goes further: the additive-joiner "simple" loss locates, per frame, a window of
``prune_range`` label positions holding most of the alignment mass, and the full joiner runs on those cells only.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from audiojax.errors import UserError

# Finite stand-in for log(0): padded / unreachable cells must not turn exp() or gradients into NaN.
_NEG = -1e30


def _check_blank_id(blank_id: int, vocab: int):
  if not 0 <= blank_id < vocab:
    raise UserError(f"rnnt: blank_id={blank_id} is outside the vocabulary of {vocab} units; pass 0 <= blank_id < "
                    f"{vocab}")


def _check_lengths(name: str, lengths: jax.Array, batch: int):
  if lengths.shape != (batch,):
    raise UserError(f"rnnt: {name} has shape {tuple(lengths.shape)}; pass one valid length per example, shape "
                    f"({batch},)")


def _blank_and_label(logits: jax.Array, labels: jax.Array, blank_id: int) -> tuple[jax.Array, jax.Array]:
  """Log-softmax at blank and at the next label without materialising the log-softmax itself.

  ``logits (B, T, U+1, V)``, ``labels (B, U)`` -> ``blank, emit (B, T, U+1)`` float32; ``emit[..., U] = 0``.
  """
  logits = logits.astype(jnp.float32)
  vocab = logits.shape[-1]
  num_labels = labels.shape[1]
  lse = jax.nn.logsumexp(logits, axis=-1)
  blank = logits[..., blank_id] - lse
  # Padding entries of `labels` may hold anything (-1, blank...): clip so the gather stays in range.
  index = jnp.pad(jnp.clip(labels, 0, vocab - 1), ((0, 0), (0, 1)), constant_values=blank_id)
  label_logit = jnp.take_along_axis(logits, index[:, None, :, None].astype(jnp.int32), axis=-1)[..., 0]
  emit = jnp.where(jnp.arange(num_labels + 1) < num_labels, label_logit - lse, 0.0)
  return blank, emit


def log_probs_blank_and_label(logits: jax.Array, labels: jax.Array, blank_id: int = 0) -> tuple[jax.Array, jax.Array]:
  """Log-softmax values of blank and of the next label.

  Args:
    logits: joiner output ``(B, T, U+1, V)``.
    labels: ``(B, U)`` int, right-padded with anything.
    blank_id: the blank unit.
  Returns:
    ``blank (B, T, U+1)`` = ``log p(blank | t, u)`` and ``emit (B, T, U+1)`` = ``log p(labels[u] | t, u)``, float32;
    ``emit[:, :, U]`` is unused and set to 0.
  """
  if logits.ndim != 4 or labels.ndim != 2 or logits.shape[0] != labels.shape[0] \
      or logits.shape[2] != labels.shape[1] + 1:
    raise UserError(f"rnnt: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not fit; "
                    "pass logits (B, T, U+1, V) and labels (B, U)")
  _check_blank_id(blank_id, logits.shape[-1])
  return _blank_and_label(logits, labels, blank_id)


def rnnt_loss_from_log_probs(blank: jax.Array, emit: jax.Array, enc_lengths: jax.Array,
                             label_lengths: jax.Array) -> jax.Array:
  """Negative log-likelihood of each transducer target from its blank/label log-probabilities.

  Args:
    blank: ``(B, T, U+1)`` log-probability of blank at frame ``t`` after ``u`` labels.
    emit: ``(B, T, U+1)`` log-probability of label ``u`` at frame ``t`` (``emit[:, :, U]`` unused).
    enc_lengths: ``(B,)`` valid frames ``1 <= T_b <= T``.
    label_lengths: ``(B,)`` valid labels ``0 <= U_b <= U``.
  Returns:
    ``nll (B,)`` float32 = ``-(alpha[T_b-1, U_b] + blank[T_b-1, U_b])``. Cells outside each example's
    ``T_b x (U_b+1)`` lattice are ignored, whatever they hold (even -inf).
  """
  if blank.ndim != 3 or blank.shape != emit.shape:
    raise UserError(f"rnnt: blank {tuple(blank.shape)} and emit {tuple(emit.shape)} must both be (B, T, U+1)")
  batch, frames, states = blank.shape
  _check_lengths("enc_lengths", enc_lengths, batch)
  _check_lengths("label_lengths", label_lengths, batch)
  num_labels = states - 1
  t_len = jnp.clip(enc_lengths.astype(jnp.int32), 1, frames)
  u_len = jnp.clip(label_lengths.astype(jnp.int32), 0, num_labels)

  t = jnp.arange(frames)[None, :, None]
  u = jnp.arange(states)[None, None, :]
  in_lattice = (t < t_len[:, None, None]) & (u <= u_len[:, None, None])
  blank = jnp.where(in_lattice, blank.astype(jnp.float32), _NEG)
  emit = jnp.where(in_lattice & (u < u_len[:, None, None]), emit.astype(jnp.float32), _NEG)

  # Skew onto anti-diagonals: skew[b, n, u] = x[b, n - u, u].
  diagonals = frames + num_labels
  n_t = jnp.arange(diagonals)[:, None] - jnp.arange(states)[None, :]
  on_grid = (n_t >= 0) & (n_t < frames)
  n_t = jnp.clip(n_t, 0, frames - 1)
  u_idx = jnp.broadcast_to(jnp.arange(states)[None, :], n_t.shape)
  skew_blank = jnp.where(on_grid, blank[:, n_t, u_idx], _NEG).swapaxes(0, 1)  # (N, B, U+1)
  skew_emit = jnp.where(on_grid, emit[:, n_t, u_idx], _NEG).swapaxes(0, 1)

  def step(prev, xs):
    b, e = xs
    stay = prev + b  # one more blank: (t-1, u) -> (t, u)
    move = jnp.pad(prev + e, ((0, 0), (1, 0)), constant_values=_NEG)[:, :-1]  # one more label: (t, u-1) -> (t, u)
    cur = jnp.maximum(jnp.logaddexp(stay, move), _NEG)  # clamp keeps unreachable cells from drifting to -inf
    return cur, cur

  alpha0 = jnp.full((batch, states), _NEG, jnp.float32).at[:, 0].set(0.0)
  _, rest = lax.scan(step, alpha0, (skew_blank[:-1], skew_emit[:-1]))
  alphas = jnp.concatenate([alpha0[None], rest], axis=0)  # (N, B, U+1): alphas[n, b, u] = alpha[b, n-u, u]
  rows = jnp.arange(batch)
  final = alphas[t_len - 1 + u_len, rows, u_len] + blank[rows, t_len - 1, u_len]
  return -final


def rnnt_loss_dense(logits: jax.Array, labels: jax.Array, enc_lengths: jax.Array, label_lengths: jax.Array,
                    blank_id: int = 0) -> jax.Array:
  """RNN-T loss from the full joiner output ``logits (B, T, U+1, V)``, ``labels (B, U)`` -> ``nll (B,)``."""
  blank, emit = log_probs_blank_and_label(logits, labels, blank_id)
  return rnnt_loss_from_log_probs(blank, emit, enc_lengths, label_lengths)


def rnnt_loss(encoder_out: jax.Array, predictor_out: jax.Array, labels: jax.Array, enc_lengths: jax.Array,
              label_lengths: jax.Array, joiner: Callable[[jax.Array, jax.Array], jax.Array], *, blank_id: int = 0,
              frames_per_chunk: int = 16) -> jax.Array:
  """Memory-efficient RNN-T loss: the joiner runs on chunks of frames and its logits are recomputed in the backward.

  Args:
    encoder_out: ``(B, T, De)``.
    predictor_out: ``(B, U+1, Dp)``; position ``u`` has seen the blank/start symbol and ``labels[:, :u]``.
    labels: ``(B, U)`` int, right-padded with anything.
    enc_lengths, label_lengths: ``(B,)`` valid frames (>= 1) and labels.
    joiner: ``joiner(enc (..., De), pred (..., Dp)) -> logits (..., V)``, broadcasting; called with
      ``enc (B, C, 1, De)`` and ``pred (B, 1, U+1, Dp)``. Its parameters may be closed over (gradients reach them).
    blank_id: the blank unit.
    frames_per_chunk: ``C``; peak memory is ``O(B * C * (U+1) * V)`` instead of ``O(B * T * (U+1) * V)``.
  Returns:
    ``nll (B,)`` float32, equal to ``rnnt_loss_dense(joiner(enc[:, :, None], pred[:, None]), ...)``.
  """
  if encoder_out.ndim != 3 or predictor_out.ndim != 3 or labels.ndim != 2:
    raise UserError(f"rnnt: encoder_out {tuple(encoder_out.shape)}, predictor_out {tuple(predictor_out.shape)}, "
                    f"labels {tuple(labels.shape)}; pass (B, T, De), (B, U+1, Dp) and (B, U)")
  batch, frames, _ = encoder_out.shape
  num_labels = labels.shape[1]
  if predictor_out.shape[:2] != (batch, num_labels + 1) or labels.shape[0] != batch:
    raise UserError(f"rnnt: predictor_out {tuple(predictor_out.shape)} does not fit labels {tuple(labels.shape)} and "
                    f"encoder_out {tuple(encoder_out.shape)}; the predictor needs U+1 = labels.shape[1] + 1 positions")
  if not isinstance(frames_per_chunk, int) or frames_per_chunk < 1:
    raise UserError(f"rnnt: frames_per_chunk={frames_per_chunk!r}; pass a positive int")
  chunk = min(frames_per_chunk, frames)
  num_chunks = -(-frames // chunk)
  enc = jnp.pad(encoder_out, ((0, 0), (0, num_chunks * chunk - frames), (0, 0)))
  enc = enc.reshape(batch, num_chunks, chunk, -1).swapaxes(0, 1)  # (n, B, C, De)
  pred = predictor_out[:, None]  # (B, 1, U+1, Dp)
  vocab = jax.eval_shape(joiner, enc[0, :, :1, None], pred[:, :, :1]).shape[-1]
  _check_blank_id(blank_id, vocab)

  @jax.checkpoint
  def chunk_log_probs(enc_chunk, pred):
    return _blank_and_label(joiner(enc_chunk[:, :, None], pred), labels, blank_id)

  blank, emit = lax.map(lambda e: chunk_log_probs(e, pred), enc)  # each (n, B, C, U+1)
  unchunk = lambda x: x.swapaxes(0, 1).reshape(batch, num_chunks * chunk, num_labels + 1)[:, :frames]
  return rnnt_loss_from_log_probs(unchunk(blank), unchunk(emit), enc_lengths, label_lengths)


def rnnt_loss_simple(lm: jax.Array, am: jax.Array, labels: jax.Array, enc_lengths: jax.Array,
                     label_lengths: jax.Array, *, blank_id: int = 0, lm_only_scale: float = 0.0,
                     am_only_scale: float = 0.0) -> jax.Array:
  """k2's "simple" (additive-joiner) RNN-T loss, optionally smoothed, without any ``(B, T, U+1, V)`` tensor.

  The joiner is ``logits[t, u] = am[t] + lm[u]``; its normaliser comes from one ``(U+1, V) x (V, T)`` matmul of
  exponentials. The smoothed log-probability of unit ``k`` is
  ``(1 - l - a) * log p(k | am+lm) + l * log p(k | lm) + a * log(p_am(k) * unigram(k) / norm)``, with ``unigram`` the
  softmax of ``lm`` averaged over the valid predictor positions of the batch (k2 also averages padded positions).

  Args:
    lm: ``(B, U+1, V)`` predictor-side scores (the recipe's ``simple_lm_proj``).
    am: ``(B, T, V)`` encoder-side scores (``simple_am_proj``).
    labels, enc_lengths, label_lengths, blank_id: as in ``rnnt_loss``.
    lm_only_scale, am_only_scale: ``l`` and ``a`` above (the PromptASR recipe: 0.25 and 0).
  Returns:
    ``nll (B,)`` float32.
  """
  _check_simple_args(lm, am, labels, lm_only_scale, am_only_scale)
  blank, emit = _simple_log_probs(lm, am, labels, label_lengths, blank_id, lm_only_scale, am_only_scale)
  return rnnt_loss_from_log_probs(blank, emit, enc_lengths, label_lengths)


def _check_simple_args(lm: jax.Array, am: jax.Array, labels: jax.Array, lm_only_scale: float, am_only_scale: float):
  if lm.ndim != 3 or am.ndim != 3 or lm.shape[0] != am.shape[0] or lm.shape[2] != am.shape[2] \
      or labels.shape != (lm.shape[0], lm.shape[1] - 1):
    raise UserError(f"rnnt: lm {tuple(lm.shape)}, am {tuple(am.shape)} and labels {tuple(labels.shape)} do not fit; "
                    "pass lm (B, U+1, V), am (B, T, V) and labels (B, U)")
  if min(lm_only_scale, am_only_scale) < 0 or lm_only_scale + am_only_scale > 1:
    raise UserError(f"rnnt: lm_only_scale={lm_only_scale}, am_only_scale={am_only_scale}; pass scales >= 0 that "
                    "sum to at most 1")


def _simple_log_probs(lm: jax.Array, am: jax.Array, labels: jax.Array, label_lengths: jax.Array, blank_id: int,
                      lm_only_scale: float, am_only_scale: float) -> tuple[jax.Array, jax.Array]:
  """The smoothed ``blank, emit (B, T, U+1)`` tables of ``rnnt_loss_simple`` (arguments checked by the caller)."""
  batch, states, vocab = lm.shape
  _check_blank_id(blank_id, vocab)
  _check_lengths("label_lengths", label_lengths, batch)
  lm = lm.astype(jnp.float32)
  am = am.astype(jnp.float32)
  highest = lax.Precision.HIGHEST  # the normaliser is a sum of products of probabilities: keep float32 matmuls
  am_max = jnp.max(am, axis=-1, keepdims=True)  # (B, T, 1)
  lm_max = jnp.max(lm, axis=-1, keepdims=True)  # (B, U+1, 1)
  am_exp = jnp.exp(am - am_max)
  lm_exp = jnp.exp(lm - lm_max)
  tiny = jnp.finfo(jnp.float32).tiny
  norm = jnp.log(jnp.einsum("btv,buv->btu", am_exp, lm_exp, precision=highest) + tiny)
  norm = norm + am_max + lm_max.swapaxes(1, 2)  # (B, T, U+1): logsumexp_k(am[t, k] + lm[u, k])

  index = jnp.pad(jnp.clip(labels, 0, vocab - 1), ((0, 0), (0, 1)), constant_values=blank_id)  # (B, U+1)
  am_blank = am[..., blank_id][:, :, None]  # (B, T, 1)
  lm_blank = lm[..., blank_id][:, None, :]  # (B, 1, U+1)
  am_label = jnp.take_along_axis(am[:, :, None, :], index[:, None, :, None], axis=-1)[..., 0]  # (B, T, U+1)
  lm_label = jnp.take_along_axis(lm, index[..., None], axis=-1)[..., 0][:, None, :]  # (B, 1, U+1)
  blank = (1.0 - lm_only_scale - am_only_scale) * (am_blank + lm_blank - norm)
  emit = (1.0 - lm_only_scale - am_only_scale) * (am_label + lm_label - norm)

  if lm_only_scale:
    lm_norm = (jnp.log(jnp.sum(lm_exp, axis=-1)) + lm_max[..., 0])[:, None, :]  # (B, 1, U+1)
    blank = blank + lm_only_scale * (lm_blank - lm_norm)
    emit = emit + lm_only_scale * (lm_label - lm_norm)
  if am_only_scale:
    valid = (jnp.arange(states)[None] <= label_lengths[:, None])[..., None]  # (B, U+1, 1)
    lm_prob = lm_exp / jnp.sum(lm_exp, axis=-1, keepdims=True)
    unigram = jnp.sum(jnp.where(valid, lm_prob, 0.0), axis=(0, 1)) / jnp.sum(valid) + tiny  # (V,)
    am_norm = jnp.log(jnp.einsum("btv,v->bt", am_exp, unigram, precision=highest))[..., None] + am_max  # (B, T, 1)
    log_unigram = jnp.log(unigram)
    blank = blank + am_only_scale * (am_blank + log_unigram[blank_id] - am_norm)
    emit = emit + am_only_scale * (am_label + log_unigram[index][:, None, :] - am_norm)
  return blank, emit


# ---------------------------------------------------------------------------------------------------------------------
# Pruned RNN-T (k2's rnnt_loss_smoothed + get_rnnt_prune_ranges + do_rnnt_pruning + rnnt_loss_pruned; Kuang et al.
# 2022, arXiv 2206.13236): the simple loss's lattice occupation picks, per frame, a window of `prune_range` label
# positions; the full joiner runs on those (B, T, R) cells only.


def lattice_occupation(blank: jax.Array, emit: jax.Array, enc_lengths: jax.Array,
                       label_lengths: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The loss of a transducer lattice and the posterior probability of each of its transitions.

  Args:
    blank, emit, enc_lengths, label_lengths: as in ``rnnt_loss_from_log_probs``.
  Returns:
    ``nll (B,)`` (differentiable), ``blank_occ (B, T, U+1)``: probability that the alignment takes the blank out of
    cell ``(t, u)``, and ``emit_occ (B, T, U+1)``: probability that it emits label ``u`` at frame ``t``. Both are
    ``-d nll / d log_prob``: every valid frame holds one blank and every label one emission, so they sum to 1 over
    ``u`` and over ``t`` respectively. The occupations are constants to autodiff; the gradient of ``nll`` reuses them
    instead of running the backward recursion a second time.
  """
  return _nll_and_occupation(blank.astype(jnp.float32), emit.astype(jnp.float32), enc_lengths, label_lengths)


def _nll_and_occupation_fwd(blank, emit, enc_lengths, label_lengths):
  nll, vjp = jax.vjp(lambda b, e: rnnt_loss_from_log_probs(b, e, enc_lengths, label_lengths), blank, emit)
  blank_grad, emit_grad = vjp(jnp.ones_like(nll))
  return (nll, -blank_grad, -emit_grad), (blank_grad, emit_grad)


def _nll_and_occupation_bwd(residuals, cotangents):
  blank_grad, emit_grad = residuals
  nll_ct = cotangents[0][:, None, None]  # d nll_b / d x only involves example b: scale each example's gradient
  return nll_ct * blank_grad, nll_ct * emit_grad, None, None


_nll_and_occupation = jax.custom_vjp(lambda *args: _nll_and_occupation_fwd(*args)[0])
_nll_and_occupation.defvjp(_nll_and_occupation_fwd, _nll_and_occupation_bwd)


def _effective_range(prune_range: int, num_labels: int) -> int:
  if not isinstance(prune_range, int) or prune_range < 2:
    raise UserError(f"rnnt: prune_range={prune_range!r}; pass an int >= 2 (a frame must be able to hold a blank "
                    "after an emission)")
  return min(prune_range, num_labels + 1)  # a window wider than the lattice prunes nothing


def prune_ranges(blank_occ: jax.Array, emit_occ: jax.Array, enc_lengths: jax.Array, label_lengths: jax.Array,
                 prune_range: int) -> jax.Array:
  """Per-frame start of the window of label positions the pruned loss keeps (k2's ``get_rnnt_prune_ranges``).

  For frame ``t`` the window ``[s, s + R)`` maximises the blank occupation inside it minus the occupation of the
  emission that enters it from ``s - 1`` at that frame. The starts are then made a valid pruning: ``s[0] = 0``,
  non-decreasing, ``s[t+1] - s[t] <= R - 1`` (a blank can always carry the path into the next window) and
  ``s[T_b-1] = max(U_b - R + 1, 0)`` so the last frame holds ``U_b``, except when ``U_b > T_b (R - 1)``, where no
  pruned path exists (see ``pruned_feasible``).

  Args:
    blank_occ, emit_occ: ``(B, T, U+1)`` from ``lattice_occupation`` (any non-negative scores work).
    enc_lengths, label_lengths: ``(B,)``.
    prune_range: ``R >= 2``; clipped to ``U + 1``.
  Returns:
    ``s_begin (B, T)`` int32 in ``[0, U + 1 - R]``; frames past ``T_b`` repeat the last frame's start.
  """
  if blank_occ.ndim != 3 or blank_occ.shape != emit_occ.shape:
    raise UserError(f"rnnt: blank_occ {tuple(blank_occ.shape)} and emit_occ {tuple(emit_occ.shape)} must both be "
                    "(B, T, U+1)")
  batch, frames, states = blank_occ.shape
  _check_lengths("enc_lengths", enc_lengths, batch)
  _check_lengths("label_lengths", label_lengths, batch)
  width = _effective_range(prune_range, states - 1)
  t_len = jnp.clip(enc_lengths.astype(jnp.int32), 1, frames)
  u_len = jnp.clip(label_lengths.astype(jnp.int32), 0, states - 1)
  blank_occ = blank_occ.astype(jnp.float32)
  starts = states - width + 1
  inside = lax.reduce_window(blank_occ, 0.0, lax.add, (1, 1, width), (1, 1, 1), "VALID")  # (B, T, starts)
  entering = jnp.pad(emit_occ.astype(jnp.float32), ((0, 0), (0, 0), (1, 0)))[:, :, :starts]
  s_begin = jnp.argmax(inside - entering, axis=-1).astype(jnp.int32)

  t = jnp.arange(frames, dtype=jnp.int32)[None, :]
  last = jnp.maximum(u_len - width + 1, 0)[:, None]
  s_begin = jnp.where(t < t_len[:, None] - 1, s_begin, last)
  s_begin = lax.cummin(s_begin, axis=1, reverse=True)  # non-decreasing and ending at `last`
  # s[t+1] - s[t] <= R-1  <=>  t (R-1) - s[t] is non-decreasing; clamping it at >= 0 also gives s[t] <= t.
  slack = lax.cummin(t * (width - 1) - s_begin, axis=1, reverse=True)
  return t * (width - 1) - jnp.maximum(slack, 0)


def pruned_feasible(enc_lengths: jax.Array, label_lengths: jax.Array, prune_range: int, num_labels: int) -> jax.Array:
  """``(B,)`` bool: whether a path survives pruning, i.e. ``U_b <= T_b (R - 1)`` with ``R = min(prune_range, U+1)``.

  ``num_labels`` is the padded ``U`` (``labels.shape[1]``); lengths are clipped as the loss clips them (``T_b >= 1``).
  """
  width = _effective_range(prune_range, num_labels)
  t_len = jnp.maximum(enc_lengths.astype(jnp.int32), 1)
  return jnp.clip(label_lengths.astype(jnp.int32), 0, num_labels) <= t_len * (width - 1)


def prune_inputs(encoder_out: jax.Array, predictor_out: jax.Array, s_begin: jax.Array,
                 prune_range: int) -> tuple[jax.Array, jax.Array]:
  """k2's ``do_rnnt_pruning``: ``encoder_out (B, T, De)`` -> ``(B, T, 1, De)`` and ``predictor_out (B, U+1, Dp)``
  gathered at ``s_begin[t] + k`` -> ``(B, T, R, Dp)``, ready for the broadcasting joiner."""
  batch, frames = s_begin.shape
  width = _effective_range(prune_range, predictor_out.shape[1] - 1)
  index = (s_begin[:, :, None] + jnp.arange(width, dtype=jnp.int32)).reshape(batch, frames * width, 1)
  pred = jnp.take_along_axis(predictor_out, index, axis=1).reshape(batch, frames, width, -1)
  return encoder_out[:, :, None], pred


def _unprune(values: jax.Array, s_begin: jax.Array, states: int) -> jax.Array:
  """``values (B, T, R)`` at columns ``s_begin[t] + k`` -> ``(B, T, states)`` grid, ``_NEG`` outside the window."""
  width = values.shape[-1]
  k = jnp.arange(states, dtype=jnp.int32)[None, None, :] - s_begin[:, :, None]
  inside = (k >= 0) & (k < width)
  return jnp.where(inside, jnp.take_along_axis(values, jnp.clip(k, 0, width - 1), axis=-1), _NEG)


def rnnt_loss_pruned(encoder_out: jax.Array, predictor_out: jax.Array, am: jax.Array, lm: jax.Array,
                     labels: jax.Array, enc_lengths: jax.Array, label_lengths: jax.Array,
                     joiner: Callable[[jax.Array, jax.Array], jax.Array], *, prune_range: int = 5, blank_id: int = 0,
                     lm_only_scale: float = 0.25, am_only_scale: float = 0.0) -> tuple[jax.Array, jax.Array]:
  """k2's pruned RNN-T: the smoothed simple loss, and the full-joiner loss on the cells the simple loss points at.

  The joiner runs on ``(B, T, R)`` cells instead of ``(B, T, U+1)``; cells outside each frame's window count as
  probability 0, so the pruned loss sums over fewer paths (``pruned_nll >= rnnt_loss``, equal when
  ``prune_range > U``). The windows come from the simple loss's occupation and carry no gradient.

  Args:
    encoder_out: ``(B, T, De)`` joiner input from the encoder.
    predictor_out: ``(B, U+1, Dp)`` joiner input from the predictor.
    am: ``(B, T, V)`` encoder projected to the vocabulary (``simple_am_proj``).
    lm: ``(B, U+1, V)`` predictor projected to the vocabulary (``simple_lm_proj``).
    labels: ``(B, U)`` int, right-padded with anything.
    enc_lengths, label_lengths: ``(B,)`` valid frames (>= 1) and labels.
    joiner: ``joiner(enc (..., De), pred (..., Dp)) -> logits (..., V)``, broadcasting; called with
      ``enc (B, T, 1, De)`` and ``pred (B, T, R, Dp)``.
    prune_range: ``R >= 2`` label positions kept per frame (clipped to ``U + 1``).
    blank_id: the blank unit.
    lm_only_scale, am_only_scale: smoothing of the simple loss (``rnnt_loss_simple``).
  Returns:
    ``simple_nll (B,)`` and ``pruned_nll (B,)`` float32. ``pruned_nll`` is 0 (with zero gradient) for examples with
    ``U_b > T_b (R - 1)`` (``pruned_feasible``), where every path needs more than ``R - 1`` labels in some frame.
  """
  if encoder_out.ndim != 3 or predictor_out.ndim != 3 or encoder_out.shape[:2] != am.shape[:2] \
      or predictor_out.shape[:2] != lm.shape[:2] or am.shape[0] != lm.shape[0]:
    raise UserError(f"rnnt: encoder_out {tuple(encoder_out.shape)}, predictor_out {tuple(predictor_out.shape)}, "
                    f"am {tuple(am.shape)} and lm {tuple(lm.shape)} do not fit; pass (B, T, De), (B, U+1, Dp), "
                    "(B, T, V) and (B, U+1, V)")
  _check_simple_args(lm, am, labels, lm_only_scale, am_only_scale)
  _check_lengths("enc_lengths", enc_lengths, am.shape[0])
  states, vocab = lm.shape[1], lm.shape[2]
  width = _effective_range(prune_range, states - 1)
  joined = jax.eval_shape(joiner, encoder_out[:, :1, None], predictor_out[:, None, :1]).shape
  if joined[-1] != vocab:
    raise UserError(f"rnnt: the joiner gives {joined[-1]} units but am/lm have {vocab}; make both use one vocabulary")

  blank, emit = _simple_log_probs(lm, am, labels, label_lengths, blank_id, lm_only_scale, am_only_scale)
  simple_nll, blank_occ, emit_occ = lattice_occupation(blank, emit, enc_lengths, label_lengths)
  s_begin = prune_ranges(lax.stop_gradient(blank_occ), lax.stop_gradient(emit_occ), enc_lengths, label_lengths,
                         width)

  enc, pred = prune_inputs(encoder_out, predictor_out, s_begin, width)
  logits = joiner(enc, pred).astype(jnp.float32)  # (B, T, R, V)
  lse = jax.nn.logsumexp(logits, axis=-1)
  index = jnp.pad(jnp.clip(labels, 0, vocab - 1), ((0, 0), (0, 1)), constant_values=blank_id)  # (B, U+1)
  batch, frames = s_begin.shape
  window = (s_begin[:, :, None] + jnp.arange(width, dtype=jnp.int32)).reshape(batch, frames * width)
  label = jnp.take_along_axis(index, window, axis=1).reshape(batch, frames, width)
  pruned_blank = logits[..., blank_id] - lse
  pruned_emit = jnp.take_along_axis(logits, label[..., None], axis=-1)[..., 0] - lse
  nll = rnnt_loss_from_log_probs(_unprune(pruned_blank, s_begin, states), _unprune(pruned_emit, s_begin, states),
                                 enc_lengths, label_lengths)
  feasible = pruned_feasible(jnp.minimum(enc_lengths, frames), label_lengths, width, states - 1)
  return simple_nll, jnp.where(feasible, nll, 0.0)
