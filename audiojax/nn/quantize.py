"""Residual vector quantisation with Euclidean codebooks, as EnCodec's ``ResidualVectorQuantizer``
(facebookresearch/encodec, ``encodec/quantization/core_vq.py``): ``n_q`` codebooks of ``bins × dim`` vectors, no
projection; codebook k quantises what codebooks 1..k-1 left over, so the codes of every prefix of the codebooks decode
on their own (fewer codebooks, lower bitrate).

The codebook state is not trained by gradients. It lives in the variable collection ``"codebooks"``, stacked over
the codebooks (the released state dict's per-codebook buffers)::

  embed (n_q, bins, dim)          the code vectors                 ← quantizer.vq.layers.{k}._codebook.embed
  embed_avg (n_q, bins, dim)      EMA of the sum of assigned inputs ← ..._codebook.embed_avg
  cluster_size (n_q, bins)        EMA of the number assigned        ← ..._codebook.cluster_size
  inited (n_q,)                   1.0 once k-means has run          ← ..._codebook.inited

All start at zero (EnCodec's ``kmeans_init=True``). Logical axes: the ``bins`` axis is ``codebook``.

Training (``train=True`` with a key ``rng``, the only source of randomness, applied with ``mutable=["codebooks"]``),
per codebook, on the flattened batch of its inputs ``x``:

1. the first batch initialises the codebook by k-means (``kmeans_iters`` Lloyd iterations from ``bins`` distinct
   random inputs; ``cluster_size`` = the final cluster counts);
2. each input takes its nearest code; the output is that code with a straight-through gradient
   (``x + stop_gradient(code - x)``) and the commitment loss is ``mean((code - x)²)`` (gradient to ``x`` only);
3. EMA updates (``decay``): ``cluster_size ← d·cluster_size + (1-d)·counts``, ``embed_avg ← d·embed_avg +
   (1-d)·sums``, ``embed = embed_avg / n_k`` with ``n_k`` the cluster sizes Laplace-smoothed by ``epsilon``
   (``(n_k + ε) / (Σn + bins·ε) · Σn``);
4. dead codes, those whose updated ``cluster_size`` is below ``dead_code_threshold``, are replaced by random inputs
   of the batch, and their statistics restarted (``cluster_size = threshold``, ``embed_avg = vector·threshold``).

Deviation in step 4, on purpose: EnCodec 0.1.1 writes the replacement into ``embed`` *before* the EMA update, which
then overwrites ``embed`` with ``embed_avg / n_k``, so its replacement has no effect (checked by running it: a code
with cluster size 0.5 came out as 9.5× its old vector, not a batch input); it also decides from the cluster sizes of
the step before, expiring codes the current batch just used (facebookresearch/encodec issue 33). Here the replacement
persists, as in vector-quantize-pytorch, which EnCodec's quantiser was taken from.

Under ``jax.jit`` over a sharded batch the counts and sums are global, so every device takes the same decisions
(EnCodec broadcasts its buffers for that).
"""
from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from audiojax.errors import UserError

CODEBOOKS = "codebooks"  # the variable collection holding the codebook state


class CodebookState(NamedTuple):
  """One codebook's state: ``embed (bins, dim)``, ``embed_avg (bins, dim)``, ``cluster_size (bins,)``,
  ``inited ()``."""

  embed: jax.Array
  embed_avg: jax.Array
  cluster_size: jax.Array
  inited: jax.Array


def nearest(x: jax.Array, embed: jax.Array) -> jax.Array:
  """Index of the nearest code of ``embed (bins, dim)`` for each row of ``x (N, dim)`` → ``(N,)`` int32.

  The distance is computed as EnCodec computes it (``-(|x|² - 2·x·eᵀ + |e|²)``, first maximum), so that near-ties
  break the same way."""
  scores = -(jnp.sum(jnp.square(x), axis=1, keepdims=True) - 2 * x @ embed.T + jnp.sum(jnp.square(embed), axis=1))
  return jnp.argmax(scores, axis=1).astype(jnp.int32)


def sample_indices(key: jax.Array, num_samples: int, num: int) -> jax.Array:
  """``num`` random row indices of ``num_samples`` rows: distinct when there are enough rows, else drawn with
  replacement (EnCodec's ``sample_vectors``)."""
  if num_samples >= num:
    return jax.random.permutation(key, num_samples)[:num]
  return jax.random.randint(key, (num,), 0, num_samples)


def kmeans(key: jax.Array, samples: jax.Array, num_clusters: int, num_iters: int) -> tuple[jax.Array, jax.Array]:
  """EnCodec's k-means: ``num_iters`` Lloyd iterations over ``samples (N, dim)`` from ``num_clusters`` random
  samples; an empty cluster keeps its mean. → ``means (C, dim)`` and the counts of the last assignment ``(C,)``."""
  means = samples[sample_indices(key, samples.shape[0], num_clusters)]

  def step(_, carry):
    means, _ = carry
    assignment = nearest(samples, means)
    counts = jnp.zeros(num_clusters, samples.dtype).at[assignment].add(1.0)
    sums = jnp.zeros_like(means).at[assignment].add(samples)
    means = jnp.where(counts[:, None] == 0, means, sums / jnp.maximum(counts, 1.0)[:, None])
    return means, counts

  return jax.lax.fori_loop(0, num_iters, step, (means, jnp.zeros(num_clusters, samples.dtype)))


def ema_update(state: CodebookState, x: jax.Array, codes: jax.Array, key: jax.Array, *, decay: float,
               epsilon: float, dead_code_threshold: float) -> CodebookState:
  """Steps 3 and 4 of the module docstring for inputs ``x (N, dim)`` assigned ``codes (N,)``; ``key`` draws the
  replacements of dead codes."""
  bins = state.embed.shape[0]
  counts = jnp.zeros(bins, x.dtype).at[codes].add(1.0)
  sums = jnp.zeros_like(state.embed).at[codes].add(x)
  cluster_size = decay * state.cluster_size + (1 - decay) * counts
  embed_avg = decay * state.embed_avg + (1 - decay) * sums
  total = jnp.sum(cluster_size)
  smoothed = (cluster_size + epsilon) / (total + bins * epsilon) * total
  embed = embed_avg / smoothed[:, None]
  if dead_code_threshold > 0:
    dead = cluster_size < dead_code_threshold
    replacement = x[sample_indices(key, x.shape[0], bins)]
    embed = jnp.where(dead[:, None], replacement, embed)
    embed_avg = jnp.where(dead[:, None], replacement * dead_code_threshold, embed_avg)
    cluster_size = jnp.where(dead, dead_code_threshold, cluster_size)
  return CodebookState(embed, embed_avg, cluster_size, state.inited)


def perplexity(codes: jax.Array, bins: int) -> jax.Array:
  """``exp(entropy)`` of the code histogram of ``codes (N,)``: the number of equally used codes it is worth."""
  p = jnp.zeros(bins).at[codes].add(1.0) / codes.shape[0]
  return jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))


class ResidualVectorQuantizer(nn.Module):
  """EnCodec's residual vector quantiser (see the module docstring). Inputs are frames ``x (B, T, dim)``; ``n_q``
  arguments pick the first K codebooks (None: all)."""

  n_q: int
  bins: int
  dim: int
  decay: float = 0.99
  epsilon: float = 1e-5
  kmeans_iters: int = 50
  dead_code_threshold: float = 2.0
  commitment_weight: float = 1.0

  def setup(self):
    def state(name, shape, axes):
      init = nn.with_logical_partitioning(nn.initializers.zeros, axes)
      return self.variable(CODEBOOKS, name, lambda: init(None, shape))

    self.embed = state("embed", (self.n_q, self.bins, self.dim), (None, "codebook", None))
    self.embed_avg = state("embed_avg", (self.n_q, self.bins, self.dim), (None, "codebook", None))
    self.cluster_size = state("cluster_size", (self.n_q, self.bins), (None, "codebook"))
    self.inited = state("inited", (self.n_q,), (None,))

  def num_codebooks(self, n_q: int | None) -> int:
    """``n_q`` checked against the codebooks there are (None: all)."""
    if n_q is None:
      return self.n_q
    if not 1 <= n_q <= self.n_q:
      raise UserError(f"{n_q} codebooks asked of a quantiser with {self.n_q}; choose 1 to {self.n_q}")
    return n_q

  def encode(self, x: jax.Array, n_q: int | None = None) -> jax.Array:
    """``x (B, T, dim)`` → ``codes (B, K, T)`` int32 from the first K = ``n_q`` codebooks."""
    k = self.num_codebooks(n_q)
    batch, frames, _ = x.shape

    def layer(residual, embed):
      codes = nearest(residual, embed)
      return residual - embed[codes], codes

    _, codes = jax.lax.scan(layer, x.reshape(-1, self.dim).astype(jnp.float32), self.embed.value[:k])
    return jnp.transpose(codes.reshape(k, batch, frames), (1, 0, 2))

  def decode(self, codes: jax.Array) -> jax.Array:
    """``codes (B, K, T)`` of the first K codebooks → the sum of their vectors ``(B, T, dim)``."""
    k = self.num_codebooks(codes.shape[1])
    vectors = jnp.asarray(self.embed.value)[:k][jnp.arange(k)[None, :, None], codes]  # (B, K, T, dim)
    return jnp.sum(vectors, axis=1)

  def __call__(self, x: jax.Array, n_q: int | None = None, train: bool = False, rng: jax.Array | None = None,
               active: jax.Array | None = None) -> dict[str, jax.Array]:
    """``x (B, T, dim)`` → dict of ``quantized (B, T, dim)`` (straight-through when training), ``codes (B, K, T)``,
    ``commitment_loss (K,)`` per codebook (times ``commitment_weight``) and ``perplexity (K,)`` of the codes used.

    ``train`` updates the codebook state (apply with ``mutable=["codebooks"]``), drawing the k-means starts and the
    replacements of dead codes with ``rng`` (codebook k with ``split(rng, K)[k]``); ``init`` never updates it,
    whatever ``train`` says.

    ``active`` (an int32 scalar, may be traced: quantiser dropout) uses only the first ``active`` of the K codebooks:
    the others add nothing to ``quantized``, have zero commitment loss and keep their state, as if ``n_q`` were
    ``active``; their ``codes`` are still computed."""
    k = self.num_codebooks(n_q)
    train = train and not self.is_initializing()
    if train and (rng is None or not self.is_mutable_collection(CODEBOOKS)):
      raise ValueError("training the quantiser updates its codebooks: pass rng=key and apply with "
                       "mutable=['codebooks']")
    batch, frames, _ = x.shape
    flat = x.reshape(-1, self.dim).astype(jnp.float32)
    states = CodebookState(*(v.value[:k] for v in (self.embed, self.embed_avg, self.cluster_size, self.inited)))
    keys = jax.random.split(rng, k) if train else jnp.zeros((k,))
    used = jnp.ones((k,), bool) if active is None else jnp.arange(k) < active

    def layer(carry, per_codebook):
      residual, total = carry
      state, key, on = per_codebook
      if train:
        new_state, codes, code_vectors = self._train_step(state, jax.lax.stop_gradient(residual), key)
        state = jax.tree.map(lambda new, old: jnp.where(on, new, old), new_state, state)
        quantized = residual + jax.lax.stop_gradient(code_vectors - residual)
      else:
        codes = nearest(residual, state.embed)
        quantized = state.embed[codes]
      quantized = jnp.where(on, quantized, 0.0)
      commitment = jnp.mean(jnp.square(jax.lax.stop_gradient(quantized) - residual)) * self.commitment_weight
      out = (codes, jnp.where(on, commitment, 0.0), perplexity(codes, self.bins), state if train else ())
      return (residual - quantized, total + quantized), out

    (_, quantized), (codes, commitment, usage, new_states) = jax.lax.scan(
        layer, (flat, jnp.zeros_like(flat)), (states, keys, used))
    if train:
      for variable, value in zip((self.embed, self.embed_avg, self.cluster_size, self.inited), new_states):
        variable.value = jnp.asarray(variable.value).at[:k].set(value)
    return dict(quantized=quantized.reshape(batch, frames, self.dim),
                codes=jnp.transpose(codes.reshape(k, batch, frames), (1, 0, 2)),
                commitment_loss=commitment, perplexity=usage)

  def _train_step(self, state: CodebookState, x: jax.Array, key: jax.Array
                  ) -> tuple[CodebookState, jax.Array, jax.Array]:
    """Steps 1–4 for one codebook → (its new state, ``codes (N,)``, the code vectors ``(N, dim)`` before the
    update)."""
    kmeans_key, replace_key = jax.random.split(key)

    def from_kmeans():
      means, counts = kmeans(kmeans_key, x, self.bins, self.kmeans_iters)
      return CodebookState(means, means, counts, jnp.ones_like(state.inited))

    state = jax.lax.cond(state.inited > 0, lambda: state, from_kmeans)
    codes = nearest(x, state.embed)
    new_state = ema_update(state, x, codes, replace_key, decay=self.decay, epsilon=self.epsilon,
                           dead_code_threshold=self.dead_code_threshold)
    return new_state, codes, state.embed[codes]
