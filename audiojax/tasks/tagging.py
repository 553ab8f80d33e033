"""Multi-label audio tagging (AudioSet-style) with a CED encoder: BCE training, mAP evaluation."""
from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tensorflow_datasets as tfds

from audiojax.audio import features
from audiojax.data import builders, pipeline
from audiojax.eval.map import mean_average_precision, prior_baseline_map
from audiojax.models import ced
from audiojax.tasks.base import Task
from audiojax.train import export


def model_from_config(model_cfg: Any, num_classes: int) -> ced.CED:
  overrides = dict(model_cfg.get("overrides", {}) or {})
  return ced.Model(model_cfg.variant, num_classes=num_classes, dtype=jnp.dtype(model_cfg.dtype),
                   attention_impl=model_cfg.attention_impl, **overrides)


class TaggingTask(Task):
  """Trains ``config.model`` on ``config.data`` with binary cross-entropy on multi-hot labels."""

  primary_metric = "eval/mAP"  # what checkpoint averaging ranks by
  primary_metric_mode = "max"
  head_prefixes = ("params/head/",)  # re-initialised when fine-tuning onto a label set of another size

  def __init__(self, config: Any, class_names: list[str] | None = None):
    """``class_names`` given (inference from a trained workdir): the dataset is not opened until it is read."""
    self.config = config
    data = config.data
    if class_names is None:
      builder = builders.build(data.name, data.data_dir, manual_dir=data.manual_dir or None)
      class_names = builders.class_names(builder)
    self.class_names = list(class_names)
    self.num_classes = len(self.class_names)
    self.sample_rate = ced.SAMPLE_RATE
    self.clip_samples = int(round(data.clip_seconds * self.sample_rate))
    self.model = model_from_config(config.model, self.num_classes)

  # --- model -------------------------------------------------------------------------------------------------------
  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return {"wave": np.zeros((batch_size, self.clip_samples), np.float32),
            "labels": np.zeros((batch_size, self.num_classes), np.float32)}

  def init_variables(self, rng: jax.Array, batch: dict[str, jax.Array]) -> dict[str, Any]:
    return dict(self.model.init(rng, batch["wave"], train=False))

  def loss(self, params: Any, model_state: Any, batch: dict[str, jax.Array], rng: jax.Array,
           step: jax.Array | None = None, frozen: dict | None = None, group: str | None = None):
    del rng  # CED trains without dropout
    out, new_state = self.model.apply({"params": params, **model_state}, batch["wave"], train=True,
                                      mutable=list(model_state))
    loss = optax.sigmoid_binary_cross_entropy(out["logits"], batch["labels"]).mean()
    return loss, ({"loss": loss}, dict(new_state))

  def predict(self, variables: Any, batch: dict[str, jax.Array], frozen: dict | None = None
              ) -> dict[str, jax.Array]:
    """Per-example eval outputs, with the labels and validity passed through so they are gathered alike."""
    probs = self.model.apply(variables, batch["wave"], train=False)["probs"]
    return {"probs": probs, "labels": batch["labels"], "valid": batch["valid"]}

  def eval_summaries(self) -> dict[str, Any]:
    """The first evaluation clip's log-mel as an image, and its true and top-predicted labels."""
    if not getattr(self, "_shown", None):
      return {}
    wave, probs, labels = self._shown
    mel = np.asarray(features.log_mel(jnp.asarray(wave)[None], ced.MEL))[0]  # (64, T) dB
    top = [f"{self.class_names[i]} {probs[i]:.2f}" for i in np.argsort(-probs)[:5]]
    true = [self.class_names[i] for i in np.flatnonzero(labels)]
    return {"eval/clip_log_mel": spectrogram_image(mel),
            "eval/clip_labels": f"true: {', '.join(true)}  \npredicted: {', '.join(top)}"}

  def export(self, path: str, variables: dict[str, Any], force: bool = False) -> None:
    """Writes ``variables`` as a model directory (what ``tag``, ``probe`` and fine-tuning read)."""
    export.save(path, ced.FAMILY, ced.to_config(self.model), variables, self.class_names, force=force)

  def summary(self, eval_metrics: dict[str, Any]) -> str:
    return (f"held-out mAP {eval_metrics['eval/mAP']:.4f} vs label-prior baseline "
            f"{eval_metrics['eval/baseline_mAP']:.4f} on {eval_metrics['eval/examples']} clips")

  # --- data --------------------------------------------------------------------------------------------------------
  def _source(self, split: str):
    return tfds.data_source(self.config.data.name, split=split, data_dir=self.config.data.data_dir)

  def train_dataset(self, seed: int):
    data = self.config.data
    return pipeline.train_dataset(
        self._source(data.train_split), dataset_name=data.name, num_classes=self.num_classes,
        sample_rate=self.sample_rate, clip_samples=self.clip_samples, global_batch_size=self.config.train.batch_size,
        seed=seed, num_threads=data.num_threads)

  def eval_batches(self):
    data = self.config.data
    return pipeline.eval_batches(
        self._source(data.eval_split), dataset_name=data.name, num_classes=self.num_classes,
        sample_rate=self.sample_rate, clip_samples=self.clip_samples, global_batch_size=self.config.eval.batch_size)

  @functools.cached_property
  def train_prevalence(self) -> np.ndarray:
    return pipeline.label_prevalence(self._source(self.config.data.train_split), self.num_classes)

  # --- evaluation --------------------------------------------------------------------------------------------------
  def evaluate(self, predict_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict[str, float]:
    """mAP on the eval split next to the label-prior baseline (training-set class frequencies as scores)."""
    probs, labels = [], []
    for batch in self.eval_batches():
      out = predict_fn(batch)
      probs.append(out["probs"][out["valid"]])
      labels.append(out["labels"][out["valid"]])
    first = next(iter(self.eval_batches()))
    self._shown = (first["wave"][0], probs[0][0], labels[0][0])
    probs, labels = np.concatenate(probs), np.concatenate(labels)
    mean_ap, _ = mean_average_precision(probs, labels)
    return {"eval/mAP": mean_ap, "eval/baseline_mAP": prior_baseline_map(self.train_prevalence, labels),
            "eval/examples": int(labels.shape[0])}


def spectrogram_image(spec: np.ndarray) -> np.ndarray:
  """``spec (F, T)`` (dB) → an ``(F, T, 3)`` uint8 image, low frequencies at the bottom (viridis, 80 dB range)."""
  import matplotlib
  top = float(spec.max())
  scaled = np.clip((spec - (top - 80.0)) / 80.0, 0.0, 1.0)[::-1]
  return (matplotlib.colormaps["viridis"](scaled)[..., :3] * 255).astype(np.uint8)
