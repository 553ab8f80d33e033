"""``make bench``: CED speed on this machine, with the machine's own matmul peak measured in the same run.

Prints inference clips/s on 10 s clips, train steps/s (the real jit-ed train step, synthetic batch), and the achieved
GFLOP/s (XLA's cost analysis of each compiled program / wall time) as a fraction of the peak of a large float32
matmul timed alongside.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.bench.timing import best_seconds, flops
from audiojax.config import ced as ced_config
from audiojax.tasks import registry
from audiojax.train.loop import Trainer


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
  a = jnp.asarray(np.random.default_rng(0).standard_normal((n, n)), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  return 2 * n**3 / best_seconds(lambda: f(a), repeats) / 1e9


def main(variant: str = "mini", quick: bool = False, batch_size: int = 8, clip_seconds: float = 10.0,
         depth: int | None = None) -> dict[str, float]:
  """``depth`` shortens the model (smoke tests only; the figures are meant for the full variant)."""
  repeats = 2 if quick else 5
  samples = int(clip_seconds * 16000)
  config = ced_config.tagging()
  config.model.variant = variant
  if depth is not None:
    config.model.overrides = {"depth": depth}
  config.train.batch_size = batch_size
  config.data.clip_seconds = clip_seconds
  trainer = Trainer(registry.build(config, class_names=[f"class_{i}" for i in range(527)]))
  print(f"backend: {jax.default_backend()}, {jax.device_count()} device(s): {jax.devices()[0].device_kind}")
  if jax.default_backend() == "cpu":
    print("(CPU figures: what a laptop-class machine gives, not an accelerator's)")

  peak = matmul_peak_gflops()
  state = trainer.init_state(0)
  rng = np.random.default_rng(0)
  batch = {"wave": rng.standard_normal((batch_size, samples)).astype(np.float32) * 0.1,
           "labels": (rng.random((batch_size, 527)) < 0.02).astype(np.float32), "valid": np.ones(batch_size, bool)}
  global_batch = jax.device_put(batch, trainer.batch_sharding)
  variables = {"params": state.params, **state.model_state}

  with trainer.context():
    infer = jax.jit(trainer.task.predict).lower(variables, global_batch).compile()
    infer_s = best_seconds(lambda: infer(variables, global_batch), repeats)
    train_batch = {k: global_batch[k] for k in ("wave", "labels")}
    compiled_step = trainer.jitted_train_step.lower(state, train_batch, trainer.frozen).compile()
    # the step donates its state: feed each call the previous call's output
    holder = {"state": state}

    def run_step():
      holder["state"], metrics = compiled_step(holder["state"], train_batch, trainer.frozen)
      return metrics

    train_s = best_seconds(run_step, repeats)

  infer_gflops = flops(infer) / infer_s / 1e9
  train_gflops = flops(compiled_step) / train_s / 1e9
  results = {
      "matmul_peak_gflops": peak,
      "inference_clips_per_sec": batch_size / infer_s,
      "inference_gflops": infer_gflops,
      "inference_fraction_of_peak": infer_gflops / peak,
      "train_steps_per_sec": 1 / train_s,
      "train_clips_per_sec": batch_size / train_s,
      "train_gflops": train_gflops,
      "train_fraction_of_peak": train_gflops / peak,
  }
  print(f"CED-{variant}, batch {batch_size} × {clip_seconds:g} s clips, float32")
  print(f"  matmul peak (2048³ f32):  {peak:8.1f} GFLOP/s")
  print(f"  inference:               {results['inference_clips_per_sec']:8.2f} clips/s   "
        f"{infer_gflops:8.1f} GFLOP/s = {results['inference_fraction_of_peak']:.0%} of peak")
  print(f"  train step:              {results['train_steps_per_sec']:8.3f} steps/s  "
        f"({results['train_clips_per_sec']:.2f} clips/s)  {train_gflops:8.1f} GFLOP/s = "
        f"{results['train_fraction_of_peak']:.0%} of peak")
  return results
