"""Sampling one token per row from logits ``(B, V)``: temperature, top-k, top-p (nucleus) and VALL-E 2's
repetition-aware sampling (Chen et al. 2024, §3.2).

Repetition-aware sampling draws a token by top-k / top-p sampling; when that token fills more than ``threshold`` of
the last ``window`` generated tokens (VALL-E 2: 10 and 0.1), it is redrawn by plain random sampling from the whole
distribution (temperature-scaled; at temperature 1 after greedy choices). Nucleus sampling with a small ``top_p`` is
nearly greedy and falls into loops on codec tokens; the redraw breaks them while leaving non-repeating steps alone.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Sampling:
  """``temperature`` (0: greedy argmax), ``top_k`` (0: off), ``top_p`` (1: off; 0 keeps the most likely token),
  ``ras_window`` / ``ras_threshold`` (repetition-aware sampling; window 0: off)."""

  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  ras_window: int = 0
  ras_threshold: float = 0.1

  @property
  def greedy(self) -> bool:
    return self.temperature <= 0


GREEDY = Sampling(temperature=0.0)


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """``logits (B, V)`` with the tokens outside the top ``top_k`` and outside the smallest set whose probability
  reaches ``top_p`` set to -inf (the most likely token always stays). As in Hugging Face's warpers, top-p acts on
  the distribution that top-k leaves, renormalised."""
  logits = jnp.asarray(logits, jnp.float32)
  if top_k and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # probability of the more likely tokens
    keep_sorted = (before < top_p) | (jnp.arange(logits.shape[-1]) == 0)
    keep = jnp.zeros_like(keep_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
    logits = jnp.where(keep, logits, -jnp.inf)
  return logits


def sample(key: jax.Array, logits: jax.Array, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
           ) -> jax.Array:
  """One token per row of ``logits (B, V)`` → ``(B,)`` int32 (argmax when ``temperature <= 0``)."""
  if temperature <= 0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  filtered = filter_logits(jnp.asarray(logits, jnp.float32) / temperature, top_k, top_p)
  return jax.random.categorical(key, filtered, axis=-1).astype(jnp.int32)


def repetition_ratio(tokens: jax.Array, history: jax.Array, window: int) -> jax.Array:
  """The share of the last ``window`` entries of ``history (B, W)`` (oldest first; -1 = empty) equal to ``tokens
  (B,)`` → ``(B,)`` float32."""
  recent = history[:, -window:]
  return jnp.sum(recent == tokens[:, None], axis=-1).astype(jnp.float32) / window


def sample_tokens(key: jax.Array, logits: jax.Array, history: jax.Array, sampling: Sampling) -> jax.Array:
  """:func:`sample` with ``sampling``'s settings, then, with repetition-aware sampling on, the redraw of the rows
  whose token repeats too often in ``history (B, W)`` (W ≥ ``ras_window``) → ``(B,)`` int32."""
  nucleus_key, redraw_key = jax.random.split(key)
  tokens = sample(nucleus_key, logits, sampling.temperature, sampling.top_k, sampling.top_p)
  if not sampling.ras_window:
    return tokens
  redraw = sample(redraw_key, logits, 1.0 if sampling.greedy else sampling.temperature)  # the full distribution
  repeats = repetition_ratio(tokens, history, sampling.ras_window) > sampling.ras_threshold
  return jnp.where(repeats, redraw, tokens)


def push_history(history: jax.Array, tokens: jax.Array, active: jax.Array | None = None) -> jax.Array:
  """``history (B, W)`` shifted left with ``tokens (B,)`` appended (rows where ``active`` is False unchanged)."""
  shifted = jnp.concatenate([history[:, 1:], tokens[:, None]], axis=1)
  return shifted if active is None else jnp.where(active[:, None], shifted, history)
