"""Attention guidance for PromptASR's content path (ours, not the recipe's).

A freshly trained PromptASR spreads its cross-attention over the whole prompt: no head puts more weight on a name
than on any other byte (``name_attention`` of ``experiments/prompt_asr/studies/identical_audio.py``), so the spelling
the prompt gives never reaches the encoder. This loss points chosen heads at target prompt positions, the bytes of the
words the transcript shares with its content prompt (its rare words): per utterance with targets and per guided head,
``-log(mean over valid frames of the weight on the targets)``, averaged over heads and layers, then over the
utterances that have targets. Only the mean over frames is pulled up, so a head may still look elsewhere on frames
where the name is not spoken; utterances whose prompt holds none of their words (a swapped or blank prompt, a
distractor-only list) add nothing. :func:`frame_guide_loss` is the aligned form: each frame pulled toward the bytes
of the letters it emits.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

EPS = 1e-6


def prompt_guide_loss(weights: list[jax.Array], targets: jax.Array, frame_lengths: jax.Array
                      ) -> tuple[jax.Array, jax.Array]:
  """``weights``: per crossing layer ``(B, H, T, M)`` attention of the guided heads; ``targets (B, M)`` bool;
  ``frame_lengths (B,)`` valid frames. Returns ``(loss, mass)``: the guide loss (0 when no utterance has targets)
  and the mean weight on the targets over the utterances that have them."""
  targets = targets.astype(jnp.float32)
  frames = (jnp.arange(weights[0].shape[2])[None, :] < frame_lengths[:, None]).astype(jnp.float32)  # (B, T)
  count = jnp.maximum(jnp.sum(frames, axis=1), 1.0)[:, None]
  on = jnp.stack([jnp.einsum("bhtm,bm,bt->bh", w.astype(jnp.float32), targets, frames) for w in weights])
  mean = on / count  # (layers, B, H): the mean weight on the targets over valid frames
  has = (jnp.sum(targets, axis=1) > 0).astype(jnp.float32)  # (B,)
  rows = jnp.maximum(jnp.sum(has), 1.0)
  loss = jnp.sum(has * jnp.mean(-jnp.log(mean + EPS), axis=(0, 2))) / rows
  mass = jnp.sum(has * jnp.mean(mean, axis=(0, 2))) / rows
  return loss, mass


def frame_guide_loss(weights: list[jax.Array], frame_targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The aligned form: ``frame_targets (B, T, M)`` bool give each frame its own target positions (the prompt bytes
  of the letters that frame emits, from a CTC alignment). ``-log(weight on the frame's targets)`` averaged over the
  guided heads, layers and the frames that have targets. Returns ``(loss, mass)`` as :func:`prompt_guide_loss`."""
  frame_targets = frame_targets.astype(jnp.float32)
  on = jnp.stack([jnp.einsum("bhtm,btm->bht", w.astype(jnp.float32), frame_targets) for w in weights])
  has = (jnp.sum(frame_targets, axis=2) > 0).astype(jnp.float32)[None, :, None, :]  # (1, B, 1, T)
  count = jnp.maximum(jnp.sum(has) * on.shape[0] * on.shape[2], 1.0)
  loss = jnp.sum(has * -jnp.log(on + EPS)) / count
  mass = jnp.sum(has * on) / count
  return loss, mass
