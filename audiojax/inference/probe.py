"""HEAR-style linear probes: a linear classifier trained on frozen CED scene embeddings.

Tasks (from the embedded corpora; no download):
  gm_family  instrument families + drum classes of gm_instruments mixtures (multi-label, mAP); split as built
             (test = unseen programs, pitches and drum keys).
  gm_pitch   pitch class of single pitched notes from gm_instruments' train split (accuracy); probe train/test
             split by program (programs ≡ 0,2,3,4 mod 8 vs ≡ 6,7 mod 8), so the test instruments are unseen.
  debsfx     recorded sound events from Debian packages (accuracy); split by source package.
The probe standardises the embeddings, picks the L2 weight on a held-out tenth of the training set, refits on all of
it and reports the test metric next to the majority-class / label-prior baseline.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow_datasets as tfds

from audiojax.audio.io import from_pcm16
from audiojax.data import builders
from audiojax.errors import UserError
from audiojax.eval.map import mean_average_precision, prior_baseline_map
from audiojax.inference.hear import HearModel, load_model
from audiojax.models import ced

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)
BUCKET_SAMPLES = ced.SAMPLE_RATE  # sounds are zero-padded to whole seconds so few shapes are compiled


@dataclasses.dataclass
class ProbeData:
  """Waves and targets: ``y`` is (N,) class ids (single-label) or (N, C) multi-hot (multi-label)."""

  waves: list[np.ndarray]
  y: np.ndarray
  class_names: list[str]


@dataclasses.dataclass
class ProbeTask:
  name: str
  dataset: str
  multilabel: bool
  load: Callable[[str, str], tuple[ProbeData, ProbeData]]  # (dataset, data_dir) → (train, test)


def _source(dataset: str, split: str, data_dir: str):
  return tfds.data_source(dataset, split=split, data_dir=data_dir)


def _labelled(dataset: str, data_dir: str) -> list[str]:
  """The class names of a tagging dataset; a dataset without labels (a speech corpus) is a UserError."""
  builder = builders.build(dataset, data_dir)
  if "labels" not in builder.info.features:
    raise UserError(f"dataset '{dataset}' has no class labels (it is not a tagging corpus); probe gm_instruments or "
                    f"debsfx")
  return builders.class_names(builder)


def _gm_family(dataset: str, data_dir: str) -> tuple[ProbeData, ProbeData]:
  names = _labelled(dataset, data_dir)

  def read(split):
    src = _source(dataset, split, data_dir)
    waves, y = [], np.zeros((len(src), len(names)), np.float32)
    for i in range(len(src)):
      example = src[i]
      waves.append(from_pcm16(example["audio"]))
      y[i, np.asarray(example["labels"], np.int64)] = 1
    return ProbeData(waves, y, names)

  return read("train"), read("test")


def _gm_pitch(dataset: str, data_dir: str) -> tuple[ProbeData, ProbeData]:
  builders.build(dataset, data_dir)
  src = _source(dataset, "train", data_dir)
  names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
  parts = {True: ([], []), False: ([], [])}
  for i in range(len(src)):
    example = src[i]
    programs = np.asarray(example["programs"])
    if len(programs) != 1 or programs[0] < 0:  # single pitched notes only (drums have program -1)
      continue
    waves, labels = parts[int(programs[0]) % 8 in (6, 7)]
    waves.append(from_pcm16(example["audio"]))
    labels.append(int(np.asarray(example["pitches"])[0]) % 12)
  (train_w, train_y), (test_w, test_y) = parts[False], parts[True]
  return ProbeData(train_w, np.array(train_y), names), ProbeData(test_w, np.array(test_y), names)


def _single_label(dataset: str, data_dir: str) -> tuple[ProbeData, ProbeData]:
  names = _labelled(dataset, data_dir)

  def read(split):
    src = _source(dataset, split, data_dir)
    examples = [src[i] for i in range(len(src))]
    return ProbeData([from_pcm16(e["audio"]) for e in examples],
                     np.array([int(np.asarray(e["labels"])[0]) for e in examples]), names)

  return read("train"), read("test")


TASKS = {
    "gm_family": ProbeTask("gm_family", "gm_instruments/demo", True, _gm_family),
    "gm_pitch": ProbeTask("gm_pitch", "gm_instruments/demo", False, _gm_pitch),
    "debsfx": ProbeTask("debsfx", "debsfx", False, _single_label),
}


def embed(model: HearModel, waves: list[np.ndarray], batch_size: int = 32) -> np.ndarray:
  """Scene embeddings ``(N, D)``; sounds are zero-padded to whole seconds and batched by padded length."""
  padded = [np.pad(w, (0, -len(w) % BUCKET_SAMPLES)) for w in waves]
  out = np.zeros((len(waves), model.scene_embedding_size), np.float32)
  by_length: dict[int, list[int]] = {}
  for i, w in enumerate(padded):
    by_length.setdefault(len(w), []).append(i)
  for indices in by_length.values():
    for start in range(0, len(indices), batch_size):
      chunk = indices[start:start + batch_size]
      batch = np.stack([padded[i] for i in chunk])
      if len(chunk) < batch_size:  # one compiled shape per length
        batch = np.pad(batch, ((0, batch_size - len(chunk)), (0, 0)))
      out[chunk] = model.embed(batch)["embedding"][:len(chunk)]
  return out


def _fit(x: np.ndarray, y: np.ndarray, num_classes: int, multilabel: bool, weight_decay: float,
         steps: int = 300) -> tuple[np.ndarray, np.ndarray]:
  """Full-batch Adam on a linear layer with L2 penalty; returns (W (D, C), b (C,))."""
  xj, yj = jnp.asarray(x), jnp.asarray(y)

  def loss(params):
    logits = xj @ params[0] + params[1]
    if multilabel:
      data = optax.sigmoid_binary_cross_entropy(logits, yj).mean()
    else:
      data = optax.softmax_cross_entropy_with_integer_labels(logits, yj).mean()
    return data + weight_decay * jnp.sum(params[0] ** 2)

  tx = optax.adam(1e-2)
  params = (jnp.zeros((x.shape[1], num_classes)), jnp.zeros(num_classes))

  @jax.jit
  def run(params):
    def step(carry, _):
      params, opt = carry
      grads = jax.grad(loss)(params)
      updates, opt = tx.update(grads, opt, params)
      return (optax.apply_updates(params, updates), opt), None
    return jax.lax.scan(step, (params, tx.init(params)), None, length=steps)[0][0]

  w, b = run(params)
  return np.asarray(w), np.asarray(b)


def _metric(scores: np.ndarray, y: np.ndarray, multilabel: bool) -> float:
  return mean_average_precision(scores, y)[0] if multilabel else float(np.mean(scores.argmax(1) == y))


def linear_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                 num_classes: int, multilabel: bool, seed: int = 0) -> dict[str, float]:
  """Standardise, choose the L2 weight on 10 % of train, refit on all of train; test metric and baseline."""
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6
  x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
  order = np.random.default_rng(seed).permutation(len(x_train))
  val, fit = order[:max(1, len(order) // 10)], order[max(1, len(order) // 10):]
  scores = {}
  for wd in WEIGHT_DECAYS:
    w, b = _fit(x_train[fit], y_train[fit], num_classes, multilabel, wd)
    scores[wd] = _metric(x_train[val] @ w + b, y_train[val], multilabel)
  best = max(scores, key=scores.get)
  w, b = _fit(x_train, y_train, num_classes, multilabel, best)
  test = _metric(x_test @ w + b, y_test, multilabel)
  if multilabel:
    baseline = prior_baseline_map(y_train.mean(0), y_test)
  else:
    baseline = float(np.mean(y_test == np.bincount(y_train, minlength=num_classes).argmax()))
  return {"test": test, "baseline": baseline, "weight_decay": best}


def run(checkpoint: str, task_name: str, data_dir: str, dataset: str | None = None) -> dict[str, float]:
  if task_name not in TASKS:
    raise UserError(f"unknown probe task '{task_name}'; choose one of {', '.join(TASKS)}")
  task = TASKS[task_name]
  train, test = task.load(dataset or task.dataset, data_dir)
  if not train.waves or not test.waves:
    raise UserError(f"probe task '{task_name}' found no examples in {dataset or task.dataset}; rebuild the dataset")
  model = load_model(checkpoint)
  result = linear_probe(embed(model, train.waves), train.y, embed(model, test.waves), test.y,
                        len(train.class_names), task.multilabel)
  return {**result, "metric": "mAP" if task.multilabel else "accuracy", "train": len(train.waves),
          "test_examples": len(test.waves), "embedding_size": model.scene_embedding_size}
