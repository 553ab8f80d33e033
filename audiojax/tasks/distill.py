"""Consistent ensemble distillation (CED, ICASSP 2024): the student task, learning from the logit store that the
teachers' pass (:mod:`audiojax.inference.teacher`) writes.

The stored seed and the store's augmentation settings re-create the teacher's exact view (consistent), the target is
the sparse top-k vector (zeros elsewhere, no ground-truth labels), the loss BCE-with-logits. The ablation
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

from audiojax.audio import augment
from audiojax.audio.io import from_pcm16
from audiojax.data import logit_store, pipeline
from audiojax.errors import UserError
from audiojax.models import ced
from audiojax.tasks.tagging import TaggingTask


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
           step: jax.Array | None = None, frozen: dict | None = None, group: str | None = None):
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

