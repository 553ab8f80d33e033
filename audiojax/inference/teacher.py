"""The teachers' pass of consistent ensemble distillation (CED, ICASSP 2024): an ensemble of audiojax checkpoints
(mean of sigmoid probabilities) runs data-parallel over the corpus for E augmentation epochs; every chunk's augmented
view is drawn from a stored int32 seed (:mod:`audiojax.audio.augment`), and its top-k probabilities, indices and seed
go to a :mod:`logit store <audiojax.data.logit_store>` that the student task (:mod:`audiojax.tasks.distill`)
replays. One chunk per clip: the first ``clip_seconds``.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from audiojax import parallel
from audiojax.audio import augment
from audiojax.audio.io import from_pcm16
from audiojax.data import logit_store, pipeline
from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.models import ced


def epoch_seeds(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The int32 view seeds of one teacher epoch (a function of the pass seed and the epoch)."""
  return np.random.default_rng([seed, epoch]).integers(0, 2**31 - 1, num_examples, dtype=np.int64).astype(np.int32)


def teacher_pass(teachers: list[str], dataset: str, data_dir: str, out: str, *, split: str = "train",
                 epochs: int = 4, top_k: int = 20, clip_seconds: float = 10.0, batch_size: int = 32, seed: int = 0,
                 aug: augment.AugmentConfig | None = None) -> logit_store.StoreMeta:
  """Runs the ensemble over ``dataset/split`` for ``epochs`` augmented passes and writes the logit store ``out``;
  ``aug`` defaults to the original's augmentation scaled to the chunk (:func:`augment.for_chunk`)."""
  if not teachers:
    raise UserError("give at least one teacher checkpoint")
  members = [load.ced(t) for t in teachers]
  num_classes = {m.num_classes for m, _ in members}
  if len(num_classes) != 1:
    raise UserError(f"the teachers disagree on the number of classes ({sorted(num_classes)}); use one label set")
  num_classes = num_classes.pop()
  aug = augment.for_chunk(clip_seconds) if aug is None else aug
  if top_k > num_classes:
    raise UserError(f"--top-k {top_k} exceeds the teachers' {num_classes} classes")
  mesh = parallel.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  parallel.check_batch_divisible(batch_size, mesh, "teacher batch_size")
  source = tfds.data_source(dataset, split=split, data_dir=data_dir)
  clip_samples = int(round(clip_seconds * ced.SAMPLE_RATE))
  decode = pipeline.HeadCrop(clip_samples)

  def ensemble(variables, wave, seeds):
    mel = augment.augmented_log_mel(wave, seeds, ced.MEL, aug)
    probs = jnp.mean(jnp.stack([m.apply(v, mel=mel)["probs"] for (m, _), v in zip(members, variables)]), axis=0)
    values, indices = jax.lax.top_k(probs, top_k)
    return values, indices

  batch_sharding = parallel.batch_sharding(mesh)
  run = jax.jit(ensemble, in_shardings=(parallel.replicated(mesh), batch_sharding, batch_sharding),
                out_shardings=batch_sharding)
  variables = [v for _, v in members]
  meta = logit_store.StoreMeta(dataset, split, len(source), num_classes, top_k, epochs, clip_seconds,
                               list(teachers), seed, dataclasses.asdict(aug))
  logit_store.write_meta(out, meta)
  waves = np.stack([decode({"wave": from_pcm16(source[i]["audio"])})["wave"] for i in range(len(source))])
  for epoch in range(epochs):
    seeds = epoch_seeds(seed, epoch, len(source))
    probs = np.zeros((len(source), top_k), np.float32)
    indices = np.zeros((len(source), top_k), np.int64)
    for start in tqdm(range(0, len(source), batch_size), desc=f"teacher epoch {epoch}", leave=False):
      rows = np.arange(start, min(start + batch_size, len(source)))
      padded = np.pad(rows, (0, batch_size - len(rows)), mode="edge")
      with jax.set_mesh(mesh):
        values, idx = jax.device_get(run(variables, waves[padded], seeds[padded]))
      probs[rows], indices[rows] = values[:len(rows)], idx[:len(rows)]
    logit_store.write_epoch(out, epoch, probs, indices, seeds)
  return meta


