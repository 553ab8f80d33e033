"""Input pipelines: TFDS ArrayRecord data sources → grain → host-local numpy batches.

Every example of an audiojax dataset has ``audio`` (int16 PCM), ``sample_rate`` and ``labels`` (class indices).
Training batches are ``{"wave": (B, L) float32, "labels": (B, C) float32 multi-hot}``; evaluation batches add
``"valid": (B,) bool`` (False on padding rows so every batch has the full size). Each host reads its own
``1/process_count`` of the data. Random crops are drawn per example from (seed, global example index), so the stream
is a pure function of the seed and resumes exactly from a checkpointed iterator state.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Iterator, Sequence

import grain
import jax
import numpy as np

from audiojax.audio.io import from_pcm16
from audiojax.errors import UserError


def check_sample_rate(example: dict, sample_rate: int, dataset: str) -> None:
  """UserError unless ``example`` holds audio at the model's ``sample_rate``."""
  rate = int(example["sample_rate"])
  if rate != sample_rate:
    raise UserError(f"dataset '{dataset}' holds {rate} Hz audio but the model expects {sample_rate} Hz; "
                    f"rebuild the dataset at {sample_rate} Hz")


@dataclasses.dataclass(frozen=True)
class Decode:
  """Example dict → ``{"wave" (L,), "labels" (C,)}``: int16 → float32, label indices → multi-hot; only ``wave``
  when ``num_classes`` is None (audio without labels: speech for a codec)."""

  num_classes: int | None
  sample_rate: int
  dataset: str

  def __call__(self, example: dict) -> dict:
    check_sample_rate(example, self.sample_rate, self.dataset)
    if self.num_classes is None:
      return {"wave": from_pcm16(example["audio"])}
    labels = np.zeros(self.num_classes, np.float32)
    labels[np.asarray(example["labels"], np.int64)] = 1.0
    return {"wave": from_pcm16(example["audio"]), "labels": labels}


def fit_length(wave: np.ndarray, length: int, start: int = 0) -> np.ndarray:
  """Crops ``wave (L,)`` to ``length`` samples from ``start``, zero-padding at the end if it is shorter."""
  out = wave[start:start + length]
  return np.pad(out, (0, length - out.shape[0])) if out.shape[0] < length else out


@dataclasses.dataclass(frozen=True)
class RandomCrop:
  """Random ``length``-sample window of each wave (zero-padded when the clip is shorter)."""

  length: int

  def __call__(self, example: dict, rng: np.random.Generator) -> dict:
    slack = example["wave"].shape[0] - self.length
    start = int(rng.integers(0, slack + 1)) if slack > 0 else 0
    return {**example, "wave": fit_length(example["wave"], self.length, start)}


@dataclasses.dataclass(frozen=True)
class HeadCrop:
  """The first ``length`` samples of each wave (zero-padded), marked valid."""

  length: int

  def __call__(self, example: dict) -> dict:
    return {**example, "wave": fit_length(example["wave"], self.length), "valid": np.bool_(True)}


def host_shard(source, dataset_name: str) -> grain.MapDataset:
  ds = grain.MapDataset.source(source)
  if jax.process_count() > 1:
    ds = ds[jax.process_index()::jax.process_count()]
  if len(ds) == 0:
    raise UserError(f"dataset '{dataset_name}' has no examples for host {jax.process_index()}; rebuild it")
  return ds


def bucket_length(longest: int, edges: Sequence[int]) -> int:
  """The smallest of the ascending ``edges`` that holds ``longest``; a UserError past the last."""
  for edge in edges:
    if longest <= edge:
      return int(edge)
  raise UserError(f"an example of {longest} samples is longer than the last length bucket ({edges[-1]}); raise "
                  f"config.data.max_seconds")


def fixed_size_batches(count: int, batch_size: int) -> Iterator[tuple[list[int], int]]:
  """``(indices, real)`` over ``range(count)``, ``batch_size`` at a time: the last batch is filled up by repeating
  its last index, so every batch has one shape (one compilation); only its first ``real`` rows are results."""
  for start in range(0, count, batch_size):
    indices = list(range(start, min(start + batch_size, count)))
    yield indices + [indices[-1]] * (batch_size - len(indices)), len(indices)


class LengthBucketedBatches(Sequence):
  """An endless sequence of batches (arrays of ``batch_size`` example indices) of similar-length examples.

  Epoch ``e`` draws a permutation from ``(seed, e)``, sorts each run of ``window_batches × batch_size`` examples by
  length, cuts the runs into batches and shuffles the batches, so batches need little padding while their order
  (and which examples meet) stays random. Each epoch holds ``len(lengths) // batch_size`` batches and every example
  at most once; batch ``i`` is a pure function of ``(seed, i)``, so a checkpointed index resumes the stream exactly.
  """

  def __init__(self, lengths: Sequence[int], batch_size: int, seed: int, window_batches: int = 16):
    self.lengths = np.asarray(lengths, np.int64)
    self.batch_size, self.seed, self.window_batches = int(batch_size), int(seed), int(window_batches)
    self.per_epoch = len(self.lengths) // self.batch_size
    if self.per_epoch == 0:
      raise UserError(f"{len(self.lengths)} examples cannot fill one batch of {self.batch_size}; lower "
                      f"config.train.batch_size")

  def __len__(self) -> int:
    return sys.maxsize

  def __getitem__(self, index: int) -> np.ndarray:
    epoch, i = divmod(int(index), self.per_epoch)
    return self._epoch(epoch)[i]

  @functools.lru_cache(maxsize=2)
  def _epoch(self, epoch: int) -> np.ndarray:
    """``(per_epoch, batch_size)`` example indices of one epoch."""
    rng = np.random.default_rng([self.seed, epoch])
    order = rng.permutation(len(self.lengths))[:self.per_epoch * self.batch_size]
    window = self.window_batches * self.batch_size
    runs = [order[s:s + window] for s in range(0, len(order), window)]
    order = np.concatenate([run[np.argsort(self.lengths[run], kind="stable")] for run in runs])
    return order.reshape(self.per_epoch, self.batch_size)[rng.permutation(self.per_epoch)]


def train_dataset(source, *, dataset_name: str, num_classes: int | None, sample_rate: int, clip_samples: int,
                  global_batch_size: int, seed: int, num_threads: int = 0) -> grain.IterDataset:
  """Infinite, shuffled (reshuffled every epoch), randomly cropped host-local batches (no ``labels`` when
  ``num_classes`` is None)."""
  local_batch = global_batch_size // jax.process_count()
  ds = (host_shard(source, dataset_name).seed(seed).shuffle().repeat(None)
        .map(Decode(num_classes, sample_rate, dataset_name))
        .random_map(RandomCrop(clip_samples))
        .batch(local_batch, drop_remainder=True))
  options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=2 * num_threads) if num_threads else None
  return ds.to_iter_dataset(options) if options else ds.to_iter_dataset()


def eval_batches(source, *, dataset_name: str, num_classes: int, sample_rate: int, clip_samples: int,
                 global_batch_size: int):
  """Yields host-local eval batches covering this host's shard once; the last is padded with ``valid=False`` rows.

  Every host yields the same number of batches (collectives need it).
  """
  local_batch = global_batch_size // jax.process_count()
  ds = host_shard(source, dataset_name).map(Decode(num_classes, sample_rate, dataset_name)).map(
      HeadCrop(clip_samples))
  num_batches = math.ceil(len(source) / jax.process_count() / local_batch)
  pad = {"wave": np.zeros(clip_samples, np.float32), "labels": np.zeros(num_classes, np.float32),
         "valid": np.bool_(False)}
  for b in range(num_batches):
    rows = [ds[i] if i < len(ds) else pad for i in range(b * local_batch, (b + 1) * local_batch)]
    yield {k: np.stack([r[k] for r in rows]) for k in pad}


def label_prevalence(source, num_classes: int, max_examples: int = 20000) -> np.ndarray:
  """Fraction of examples carrying each class ``(C,)``, over every example or an evenly strided
  ``max_examples`` of them (large corpora)."""
  indices = np.linspace(0, len(source) - 1, min(len(source), max_examples)).round().astype(int)
  counts = np.zeros(num_classes, np.float64)
  for i in np.unique(indices):
    counts[np.asarray(source[int(i)]["labels"], np.int64)] += 1
  return counts / len(np.unique(indices))
