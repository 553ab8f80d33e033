"""Speech tokens from a VALL-E model (:mod:`audiojax.models.valle`): the AR decoder continues codebook 1 after the
acoustic prompt until EOS (or a per-row cap tied to the text length), then the NAR decoder fills codebooks
2..n_q, greedily, one pass per codebook.

:func:`generate_first_codebook` runs the AR decoder with a KV cache (one prompt pass, then one position per step) or,
as the reference it is tested against, by recomputing the whole sequence every step; both are one ``lax.while_loop``
under ``jax.jit`` that stops when every row has finished. Inputs are packed as the model takes them
(:func:`audiojax.models.valle.pack`).
"""
from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from audiojax.decoding.sampling import Sampling, push_history, sample_tokens
from audiojax.models import valle


def _append(buffer: jax.Array, values: jax.Array, positions: jax.Array, active: jax.Array) -> jax.Array:
  """``buffer (B, N)`` with ``values (B,)`` written at ``positions (B,)`` on the ``active`` rows."""
  rows = jnp.arange(buffer.shape[0])
  return buffer.at[rows, positions].set(jnp.where(active, values, buffer[rows, positions]))


@functools.partial(jax.jit, static_argnames=("model", "max_steps", "sampling", "use_cache"))
def generate_first_codebook(model: valle.Valle, variables: Any, prompt: dict[str, jax.Array], max_new: jax.Array,
                            key: jax.Array, *, max_steps: int, sampling: Sampling, use_cache: bool = True
                            ) -> dict[str, jax.Array]:
  """Codebook-1 tokens after the prompt.

  Args:
    prompt: packed ``text``, ``languages``, ``audio`` (BOS then the acoustic prompt's codebook 1) ``(B, S0)``,
      ``text_lengths`` and ``lengths`` ``(B,)`` (AR positions: phonemes + 1 + prompt frames).
    max_new: ``(B,)`` the most tokens each row may generate (≤ ``max_steps``) before it is stopped without EOS.
    use_cache: the KV-cached decoder, or full recomputation of the sequence at every step (the reference).

  Returns ``tokens (B, max_steps)`` (-1 after each row's end), ``counts (B,)`` generated tokens, ``ended (B,)``
  whether the row emitted EOS.
  """
  b, s0 = prompt["text"].shape
  eos = valle.eos_id(model.bins)
  window = max(sampling.ras_window, 1)
  text_lengths = prompt["text_lengths"]
  size = s0 + max_steps
  pad = lambda x: jnp.pad(x, ((0, 0), (0, max_steps)))  # noqa: E731
  text, languages, audio = pad(prompt["text"]), pad(prompt["languages"]), pad(prompt["audio"])

  def full_logits(audio, lengths):
    logits = model.apply(variables, text, languages, audio, text_lengths, lengths, method="ar_logits")
    return jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)[:, 0]

  if use_cache:
    logits, caches = model.apply(variables, prompt["text"], prompt["languages"], prompt["audio"], text_lengths,
                                 prompt["lengths"], size, method="prefill")
  else:
    logits, caches = full_logits(audio, prompt["lengths"]), None

  def body(carry):
    i, logits, caches, audio, lengths, out, counts, ended, done, history, key = carry
    key, sub = jax.random.split(key)
    token = sample_tokens(sub, logits, history, sampling)
    active = ~done
    is_eos = token == eos
    append = active & ~is_eos
    out = out.at[:, i].set(jnp.where(append, token, -1))
    counts = counts + append
    ended = ended | (active & is_eos)
    done = done | (active & is_eos) | (counts >= max_new)
    history = push_history(history, token, append)
    fed = jnp.where(append, token, 0)
    if use_cache:
      logits, caches = model.apply(variables, fed, caches, text_lengths, lengths, method="decode_step")
    else:
      audio = _append(audio, fed, lengths, append)
      logits = full_logits(audio, lengths + append)
    return i + 1, logits, caches, audio, lengths + append, out, counts, ended, done, history, key

  def cond(carry):
    return (carry[0] < max_steps) & ~jnp.all(carry[8])

  init = (jnp.int32(0), logits, caches, audio, prompt["lengths"], jnp.full((b, max_steps), -1, jnp.int32),
          jnp.zeros((b,), jnp.int32), jnp.zeros((b,), bool), max_new <= 0, jnp.full((b, window), -1, jnp.int32), key)
  _, _, _, _, _, out, counts, ended, _, _, _ = jax.lax.while_loop(cond, body, init)
  return {"tokens": out, "counts": counts, "ended": ended}


@functools.partial(jax.jit, static_argnames=("model",))
def fill_codebooks(model: valle.Valle, variables: Any, packed: dict[str, jax.Array]) -> jax.Array:
  """The NAR decoder's greedy codebooks 2..n_q: ``packed`` as :func:`audiojax.models.valle.pack` gives it for the
  NAR (``codes (B, S, n_q)`` holding the prompt's codes and the target's codebook 1) → ``codes`` with every
  codebook of the target filled in."""
  codes = packed["codes"]
  frame = jnp.arange(codes.shape[1])[None, :] - packed["text_lengths"][:, None]
  target = (frame >= packed["prompt_frames"][:, None]) & (jnp.arange(codes.shape[1])[None, :] < packed["lengths"][
      :, None])
  for stage in range(1, model.n_q):
    logits = model.apply(variables, packed["text"], packed["languages"], codes, packed["text_lengths"],
                         packed["prompt_frames"], packed["lengths"], jnp.full(codes.shape[:1], stage, jnp.int32),
                         method="nar_logits")
    codes = codes.at[..., stage].set(jnp.where(target, jnp.argmax(logits, axis=-1), codes[..., stage]))
  return codes
