"""Consistent ensemble distillation (CED, ICASSP 2024): teacher pass into a logit store, and the student task.

Teacher pass: an ensemble of audiojax checkpoints (mean of sigmoid probabilities) runs data-parallel over the corpus
for E augmentation epochs; every chunk's augmented view is drawn from a stored int32 seed
(:mod:`audiojax.audio.augment`), and its top-k probabilities, indices and seed go to a :mod:`logit store
<audiojax.data.logit_store>`. Student: the same seed and the store's augmentation settings re-create the
teacher's exact view (consistent), the target is the sparse top-k vector (zeros elsewhere, no ground-truth labels),
the loss BCE-with-logits. The ablation
``distill.consistent = False`` drops the time shift and draws fresh masks, as the original's ``disable_consistency``.
One chunk per clip: the first ``clip_seconds`` (AudioSet clips are ≤ 10 s, so this is the paper's 10 s chunking).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow_datasets as tfds
from tqdm import tqdm

from audiojax import parallel
from audiojax.audio import augment
from audiojax.audio.io import from_pcm16
from audiojax.data import logit_store, pipeline
from audiojax.errors import UserError
from audiojax.models import ced
from audiojax.tasks.tagging import TaggingTask


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
  members = [ced.load(t) for t in teachers]
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


@dataclasses.dataclass(frozen=True)
class StudentExamples:
  """Stream index ``j`` of the shuffled, repeated example order → audio of example ``i`` with teacher epoch
  ``(j // N) mod E``'s soft target and view seed."""

  store: logit_store.LogitStore
  clip_samples: int

  def __call__(self, j: int, example: tuple[int, dict]) -> dict:
    i, record = example
    epoch = (j // self.store.meta.num_examples) % self.store.meta.epochs
    target, seed = self.store.target(i, epoch)
    wave = pipeline.fit_length(from_pcm16(record["audio"]), self.clip_samples)
    return {"wave": wave, "labels": target, "seeds": np.int32(seed)}


class DistillTask(TaggingTask):
  """A CED student learning from a teacher logit store (``config.distill.store``)."""

  def __init__(self, config: Any, class_names: list[str] | None = None):
    super().__init__(config, class_names)
    self.consistent = bool(config.distill.consistent)
    self._store = None

  @property
  def store(self) -> logit_store.LogitStore:
    if self._store is None:
      self._store = logit_store.LogitStore(self.config.distill.store)
      meta = self._store.meta
      if meta.num_classes != self.num_classes:
        raise UserError(f"teacher store '{self.config.distill.store}' has {meta.num_classes} classes but "
                        f"{self.config.data.name} has {self.num_classes}")
      if (meta.dataset, meta.split) != (self.config.data.name, self.config.data.train_split):
        raise UserError(f"teacher store '{self.config.distill.store}' was written for {meta.dataset}/{meta.split}, "
                        f"not {self.config.data.name}/{self.config.data.train_split}")
    return self._store

  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return {**super().example_batch(batch_size), "seeds": np.zeros(batch_size, np.int32)}

  def loss(self, params: Any, model_state: Any, batch: dict[str, jax.Array], rng: jax.Array,
           step: jax.Array | None = None):
    seeds = batch["seeds"]
    if not self.consistent:  # ablation: fresh masks, no time shift
      seeds = jax.random.randint(rng, seeds.shape, 0, 2**31 - 1, dtype=jnp.int32)
    mel = augment.augmented_log_mel(batch["wave"], seeds, ced.MEL, self.store.meta.augment_config,
                                    shift=self.consistent)
    out, new_state = self.model.apply({"params": params, **model_state}, mel=mel, train=True,
                                      mutable=list(model_state))
    loss = optax.sigmoid_binary_cross_entropy(out["logits"], batch["labels"]).mean()
    return loss, ({"loss": loss}, dict(new_state))

  def train_dataset(self, seed: int):
    store = self.store
    source = self._source(self.config.data.train_split)
    if len(source) != store.meta.num_examples:
      raise UserError(f"teacher store has {store.meta.num_examples} examples but the split has {len(source)}; "
                      f"rerun the teacher pass")
    local_batch = self.config.train.batch_size // jax.process_count()
    indexed = grain.MapDataset.range(len(source)).map(lambda i: (i, source[i]))
    ds = (indexed.seed(seed).shuffle().repeat(None)
          .map_with_index(StudentExamples(store, self.clip_samples)))
    if jax.process_count() > 1:
      ds = ds[jax.process_index()::jax.process_count()]
    return ds.batch(local_batch, drop_remainder=True).to_iter_dataset()

