"""Where PromptASR's speech frames look in the prompt: the cross-attention weights of every crossing layer, and the
share of them that falls on chosen prompt positions (a name's bytes). A content path that reads a name puts more
than the name's share of the prompt on it, at least at some frames; one that does not spreads evenly.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax.models import prompt_asr
from audiojax.nn.attention import cross_attention_probs


def crossing_weights(model: prompt_asr.PromptASR, variables: dict, wave: jax.Array, wave_lengths: jax.Array,
                     ids: jax.Array, lengths: jax.Array, style_lengths: jax.Array
                     ) -> tuple[dict[str, jax.Array], jax.Array, dict[str, jax.Array]]:
  """``({layer: weights (B, H, T, M)}, enc_lengths (B,), {layer: cross-attention output (B, T, D)})`` for a batch
  of ``wave (B, L)`` and prompt ``ids (B, M)``, traceable under ``jit``; weights on padded prompt positions are 0.
  The weights are recomputed from the layer's parameters and its captured query input, so a test can rebuild the
  captured output from them."""
  variables = nn.meta.unbox(variables)
  memory = model.apply(variables, ids, lengths, style_lengths, method="encode_prompt")
  capture = lambda module, _: module.name in ("norm_cross_attn", "cross_attn")
  (_, enc_lengths), captured = model.apply(variables, wave, wave_lengths, memory, lengths, method="encode_speech",
                                           capture_intermediates=capture, mutable=["intermediates"])
  weights, outputs = {}, {}
  for layer, sub in captured["intermediates"].items():
    if "cross_attn" not in sub:
      continue
    queries = sub["norm_cross_attn"]["__call__"][0]
    weights[layer] = cross_attention_probs(variables["params"][layer]["cross_attn"], queries, memory, lengths)
    outputs[layer] = sub["cross_attn"]["__call__"][0]
  return weights, enc_lengths, outputs


def cross_attention_weights(model: prompt_asr.PromptASR, variables: dict, wave: jax.Array, wave_lengths: jax.Array,
                            ids: jax.Array, lengths: jax.Array, style_lengths: jax.Array
                            ) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
  """:func:`crossing_weights` as numpy arrays."""
  return jax.tree.map(np.asarray, crossing_weights(model, variables, wave, wave_lengths, ids, lengths, style_lengths))


def mass_per_item(weights: jax.Array, positions: jax.Array, enc_lengths: jax.Array) -> dict[str, jax.Array]:
  """The weight ``(B, H, T, M)`` that falls on ``positions (B, M)`` (bool) over each item's valid frames:
  ``{"mean": (B, H), "max": (B, H)}``, the per-frame share averaged (or maximised) over frames."""
  on = jnp.sum(weights * positions[:, None, None, :], axis=-1)  # (B, H, T)
  frames = (jnp.arange(weights.shape[2])[None, :] < enc_lengths[:, None])[:, None, :]
  mean = jnp.sum(on * frames, axis=-1) / jnp.maximum(jnp.sum(frames, axis=-1), 1)
  return {"mean": mean, "max": jnp.max(jnp.where(frames, on, 0.0), axis=-1)}


def mass_on(weights: np.ndarray, positions: np.ndarray, enc_lengths: np.ndarray) -> dict[str, np.ndarray]:
  """:func:`mass_per_item` averaged over items: ``{"mean": (H,), "max": (H,)}``."""
  return {k: np.asarray(v).mean(0) for k, v in mass_per_item(jnp.asarray(weights), jnp.asarray(positions),
                                                             jnp.asarray(enc_lengths)).items()}
