"""Inference with trained checkpoints: tag audio files."""
from __future__ import annotations

import os

import jax
import numpy as np

from audiojax import model_dir
from audiojax.audio.io import Audio, load_audio
from audiojax.errors import UserError
from audiojax.models import ced


class Tagger:
  """Clip-level tagging with a CED model. ``probs(wave (L,)) -> (C,)`` sigmoid probabilities."""

  def __init__(self, model: ced.CED, variables: dict, class_names: list[str]):
    self.model = model
    self.variables = variables
    self.class_names = class_names
    self._apply = jax.jit(lambda v, wave: model.apply(v, wave, train=False)["probs"])

  @classmethod
  def from_checkpoint(cls, path: str) -> "Tagger":
    """From a training workdir (newest checkpoint) or a converted model directory."""
    path = os.path.abspath(path)
    if not os.path.isdir(path):
      raise UserError(f"checkpoint '{path}' does not exist; give a training workdir or a converted model directory")
    model, variables = ced.load(path)
    return cls(model, variables, model_dir.read_class_names(path))

  def load(self, path: str) -> Audio:
    return load_audio(path, ced.SAMPLE_RATE, min_seconds=ced.MIN_SECONDS, needed_by="CED")

  def probs(self, wave: np.ndarray) -> np.ndarray:
    return np.asarray(self._apply(self.variables, np.asarray(wave, np.float32)[None]))[0]

  def top_k(self, wave: np.ndarray, k: int) -> list[tuple[str, float]]:
    p = self.probs(wave)
    order = np.argsort(-p)[:k]
    return [(self.class_names[i], float(p[i])) for i in order]
