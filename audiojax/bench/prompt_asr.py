"""``make bench``, Prompt-ASR part: the encoders' training time, and the depthwise convolution against XLA's
grouped convolution (the baseline), timed side by side in one run.

Shapes are those of ``experiments/prompt_asr/espeak.py``: the ``tiny`` model, batch 16, 4.5 s waves (113 encoder
frames) and 256-byte prompts. Every figure is forward + backward (gradients of all parameters and inputs), the best of
``repeats`` runs after compilation.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax.bench.timing import best_seconds
from audiojax.models import prompt_asr
from audiojax.nn.conformer import DepthwiseConv1D


def _grad_time(fn, args: tuple, repeats: int) -> float:
  """Seconds of one ``grad(sum(fn(*args)**2))`` over every argument."""
  step = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.square(fn(*a))), argnums=tuple(range(len(args)))))
  return best_seconds(lambda: step(*args), repeats)


def depthwise_times(batch: int, frames: int, dim: int, kernel_size: int, repeats: int) -> tuple[float, float]:
  """``(shifted-sum DepthwiseConv1D, XLA grouped convolution)`` seconds on ``(batch, frames, dim)``."""
  x = jax.random.normal(jax.random.key(0), (batch, frames, dim))
  ours = DepthwiseConv1D(kernel_size)
  grouped = nn.Conv(dim, (kernel_size,), feature_group_count=dim, padding="SAME")
  params = nn.meta.unbox(ours.init(jax.random.key(1), x))
  return (_grad_time(lambda p, x: ours.apply(p, x), (params, x), repeats),
          _grad_time(lambda p, x: grouped.apply(p, x), (params, x), repeats))


def encoder_time(model: prompt_asr.PromptASR, batch: int, seconds: float, prompt_bytes: int, repeats: int) -> float:
  """Seconds of ``model``'s prompt + speech encoders forward and backward, as in a training step."""
  rng = np.random.default_rng(0)
  samples = int(seconds * prompt_asr.SAMPLE_RATE)
  wave = jnp.asarray(rng.standard_normal((batch, samples)).astype(np.float32) * 0.1)
  wave_lengths = jnp.full((batch,), samples, jnp.int32)
  ids = jnp.asarray(rng.integers(2, 258, (batch, prompt_bytes)), jnp.int32)
  lengths, style_lengths = jnp.full((batch,), prompt_bytes, jnp.int32), jnp.full((batch,), 80, jnp.int32)
  params = nn.meta.unbox(jax.jit(model.init)({"params": jax.random.key(0), "dropout": jax.random.key(1)}, wave,
                                             wave_lengths, ids, lengths, style_lengths))["params"]

  def encoder_out(params):
    out = model.apply({"params": params}, wave, wave_lengths, ids, lengths, style_lengths, train=True,
                      rngs={"dropout": jax.random.key(2)})
    return out["encoder_out"]
  return _grad_time(encoder_out, (params,), repeats)


def main(batch: int = 16, seconds: float = 4.5, prompt_bytes: int = 256, repeats: int = 5,
         **overrides) -> dict[str, float]:
  model = prompt_asr.Model("tiny", vocab_size=320, **overrides)
  frames = int(np.asarray(prompt_asr.subsampled_lengths(prompt_asr.feature_lengths(
      jnp.asarray([int(seconds * prompt_asr.SAMPLE_RATE)]))))[0])
  ours, grouped = depthwise_times(batch, frames, model.embed_dim, model.conv_kernel, repeats)
  encoder = encoder_time(model, batch, seconds, prompt_bytes, repeats)
  saved = model.num_layers * (grouped - ours)
  print(f"Prompt-ASR tiny encoder, batch {batch}, {seconds:g} s ({frames} frames), {prompt_bytes}-byte prompts, "
        f"forward+backward on {jax.devices()[0].device_kind}:")
  print(f"  prompt + speech encoders: {encoder * 1e3:8.1f} ms")
  print(f"  depthwise conv (K={model.conv_kernel}), per layer: shifted sums {ours * 1e3:.1f} ms, XLA grouped "
        f"convolution {grouped * 1e3:.1f} ms: {grouped / ours:.2f}x faster; the grouped one would add "
        f"{saved * 1e3:.0f} ms ({saved / encoder:.0%}) to the encoders")
  return {"encoder_s": encoder, "depthwise_s": ours, "grouped_conv_s": grouped, "depthwise_speedup": grouped / ours}

