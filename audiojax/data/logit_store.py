"""Teacher logit store for consistent ensemble distillation.

For every teacher epoch ``e`` and example (chunk) ``i`` it holds the ensemble's top-k probabilities (float16), their
class indices (int16) and the int32 seed of the augmented view the teacher saw: 4·k + 4 bytes per chunk per epoch
(84 for k = 20, as in the paper). Layout: ``meta.json`` and ``epoch_XXX_{probs,indices,seeds}.npy`` (memory-mapped
when read, so a grain pipeline can index it randomly without loading it).
"""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from audiojax.audio.augment import AugmentConfig
from audiojax.errors import UserError

META = "meta.json"


@dataclasses.dataclass
class StoreMeta:
  dataset: str
  split: str
  num_examples: int
  num_classes: int
  top_k: int
  epochs: int
  clip_seconds: float
  teachers: list[str]
  seed: int
  # the teacher's augmentation (``augment.AugmentConfig`` fields), replayed by the student; stores written before
  # this field existed used the 10 s defaults
  augment: dict = dataclasses.field(default_factory=lambda: dataclasses.asdict(AugmentConfig()))

  @property
  def augment_config(self) -> AugmentConfig:
    return AugmentConfig(**self.augment)


def _path(root: str, epoch: int, part: str) -> str:
  return os.path.join(root, f"epoch_{epoch:03d}_{part}.npy")


def write_meta(root: str, meta: StoreMeta) -> None:
  os.makedirs(root, exist_ok=True)
  with open(os.path.join(root, META), "w") as f:
    json.dump(dataclasses.asdict(meta), f, indent=2)


def write_epoch(root: str, epoch: int, probs: np.ndarray, indices: np.ndarray, seeds: np.ndarray) -> None:
  """``probs, indices (N, k)``, ``seeds (N,)``; written to temporary names, then renamed (atomic per file)."""
  for part, array, dtype in (("probs", probs, np.float16), ("indices", indices, np.int16), ("seeds", seeds, np.int32)):
    tmp = _path(root, epoch, part) + ".tmp.npy"
    np.save(tmp, np.asarray(array, dtype))
    os.replace(tmp, _path(root, epoch, part))


class LogitStore:
  """Read access: ``target(example, epoch)`` → dense soft target ``(C,)`` and the view's seed."""

  def __init__(self, root: str):
    meta_path = os.path.join(root, META)
    if not os.path.isfile(meta_path):
      raise UserError(f"'{root}' is not a teacher logit store (no {META}); write one with "
                      f"'python -m audiojax teacher ...'")
    try:
      with open(meta_path) as f:
        self.meta = StoreMeta(**json.load(f))
    except (ValueError, TypeError) as e:  # bad JSON, or keys StoreMeta does not have
      raise UserError(f"'{meta_path}' is not a teacher store's metadata ({e}); rerun the teacher pass") from None
    self.root = root
    missing = [e for e in range(self.meta.epochs) if not os.path.isfile(_path(root, e, "seeds"))]
    if missing:
      raise UserError(f"teacher logit store '{root}' lacks epochs {missing}; rerun the teacher pass")
    self._arrays: dict[tuple[int, str], np.ndarray] = {}

  def _array(self, epoch: int, part: str) -> np.ndarray:
    key = (epoch, part)
    if key not in self._arrays:  # opened lazily: each grain worker maps its own view
      self._arrays[key] = np.load(_path(self.root, epoch, part), mmap_mode="r")
    return self._arrays[key]

  def target(self, example: int, epoch: int) -> tuple[np.ndarray, np.int32]:
    dense = np.zeros(self.meta.num_classes, np.float32)
    dense[self._array(epoch, "indices")[example].astype(np.int64)] = self._array(epoch, "probs")[example]
    return dense, self._array(epoch, "seeds")[example]

  def __getstate__(self):  # picklable for grain workers: drop open memory maps
    return {**self.__dict__, "_arrays": {}}
