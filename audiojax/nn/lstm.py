"""A multi-layer unidirectional LSTM over ``(B, T, D)`` with ``torch.nn.LSTM``'s parameters, gate order and
initialisation, so that a PyTorch state dict converts by copying.

Parameters of layer ``l`` (module ``layer_{l}``) and the PyTorch tensors they are::

  weight_ih (4H, D_in)   ← weight_ih_l{l}      rows are the gates i, f, g, o (H rows each)
  weight_hh (4H, H)      ← weight_hh_l{l}
  bias_ih (4H,)          ← bias_ih_l{l}        both biases are kept, as PyTorch keeps them
  bias_hh (4H,)          ← bias_hh_l{l}

Every parameter starts uniform in ±1/√H, as PyTorch's. Logical axes: the 4H gate axis is ``channels``.
The state starts at zero for every sequence (what EnCodec's ``SLSTM`` does).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.nn.layers import param


def lstm_layer(x: jax.Array, weight_ih: jax.Array, weight_hh: jax.Array, bias_ih: jax.Array,
               bias_hh: jax.Array) -> jax.Array:
  """One LSTM layer: ``x (B, T, D_in)`` → hidden states ``(B, T, H)`` from a zero state.

  ``i, f, g, o = split(x_t W_ihᵀ + b_ih + h W_hhᵀ + b_hh)``; ``c ← σ(f)·c + σ(i)·tanh(g)``; ``h ← σ(o)·tanh(c)``.
  The input projection of every step is one matmul; only ``h W_hhᵀ`` runs inside the scan.
  """
  hidden = weight_hh.shape[1]
  inputs = jnp.einsum("btd,gd->tbg", x, weight_ih) + (bias_ih + bias_hh)  # (T, B, 4H)

  def step(carry, projected):
    h, c = carry
    gates = projected + h @ weight_hh.T
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return (h, c), h

  zeros = jnp.zeros((x.shape[0], hidden), inputs.dtype)
  _, hs = jax.lax.scan(step, (zeros, zeros), inputs)
  return jnp.swapaxes(hs, 0, 1)


class LSTMLayer(nn.Module):
  """One layer of :class:`LSTM`: ``x (B, T, D_in)`` → ``(B, T, features)``, with its four parameters."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    bound = 1 / math.sqrt(self.features)
    init = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)
    gates = 4 * self.features
    weights = (param(self, "weight_ih", init, (gates, x.shape[-1]), ("channels", None)),
               param(self, "weight_hh", init, (gates, self.features), ("channels", None)),
               param(self, "bias_ih", init, (gates,), ("channels",)),
               param(self, "bias_hh", init, (gates,), ("channels",)))
    return lstm_layer(x.astype(self.dtype), *(w.astype(self.dtype) for w in weights))


class LSTM(nn.Module):
  """``torch.nn.LSTM(D_in, features, num_layers)`` (unidirectional, batch-first here): ``x (B, T, D_in)`` →
  the last layer's hidden states ``(B, T, features)``."""

  features: int
  num_layers: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for layer in range(self.num_layers):
      x = LSTMLayer(self.features, self.dtype, name=f"layer_{layer}")(x)
    return x
