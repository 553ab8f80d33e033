"""Tagging audio files with a trained or converted CED: clip-level labels and timestamped events.

Files are read in 10.12 s windows (the model's chunk length) and processed a few windows at a time, so memory stays
bounded whatever the file's length. A file no longer than one window is tagged exactly as ``model.apply`` tags it;
longer files average the windows' probabilities, as the model averages its chunks (each window's mel is computed
from its own samples, so the two frames at each window edge may differ slightly from a whole-file mel).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import jax
import numpy as np

from audiojax.audio.io import stream_audio
from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.models import ced
from audiojax.train import export

WINDOW_SAMPLES = ced.CHUNK_FRAMES * ced.MEL.hop_length  # 161,920 samples = 10.12 s
PATCH_SAMPLES = ced.PATCH * ced.MEL.hop_length  # 2,560 samples = 160 ms per time patch
PATCH_SECONDS = PATCH_SAMPLES / ced.SAMPLE_RATE
GAP_SECONDS = 0.05  # the 4 frames each window leaves without a patch do not split an event


@dataclasses.dataclass
class Event:
  start: float
  end: float
  label: str
  probability: float  # the highest patch probability inside the event


@dataclasses.dataclass
class Result:
  """``probs (C,)`` clip probabilities; ``events`` sorted by start (only when timestamps were asked for)."""

  path: str
  duration: float
  source_rate: int
  probs: np.ndarray
  events: list[Event]


class EventTracker:
  """Turns a stream of per-patch probabilities into events: runs of patches above ``threshold`` per class."""

  def __init__(self, class_names: list[str], threshold: float):
    self.class_names = class_names
    self.threshold = threshold
    self.open: dict[int, Event] = {}
    self.closed: list[Event] = []

  def add(self, start: float, probs: np.ndarray) -> None:
    """One 160 ms patch starting at ``start`` seconds with class probabilities ``probs (C,)``."""
    end = start + PATCH_SECONDS
    active = set(np.flatnonzero(probs >= self.threshold).tolist())
    for c in list(self.open):
      if c not in active or start - self.open[c].end > GAP_SECONDS:
        self.closed.append(self.open.pop(c))
    for c in active:
      event = self.open.get(c)
      if event is None:
        self.open[c] = Event(start, end, self.class_names[c], float(probs[c]))
      else:
        event.end, event.probability = end, max(event.probability, float(probs[c]))

  def finish(self, duration: float) -> list[Event]:
    """Closes open events (none ends after ``duration`` seconds) and returns all, sorted by start."""
    self.closed.extend(self.open.values())
    self.open = {}
    for event in self.closed:
      event.end = min(event.end, duration)
    return sorted(self.closed, key=lambda e: (e.start, e.label))


class Tagger:
  """A CED model with its class names. ``probs(wave (L,)) -> (C,)``; ``tag_file`` streams files of any length."""

  def __init__(self, model: ced.CED, variables: dict, class_names: list[str], windows_per_batch: int = 4):
    if len(class_names) != model.num_classes:
      raise UserError(f"{len(class_names)} class names for a model with {model.num_classes} outputs")
    self.model = model
    self.variables = variables
    self.class_names = class_names
    self.windows_per_batch = windows_per_batch
    self._apply = jax.jit(lambda v, wave: {k: out for k, out in model.apply(v, wave, train=False).items()
                                           if k in ("probs", "frame_logits")})

  @classmethod
  def from_checkpoint(cls, path: str) -> "Tagger":
    """From a training workdir (newest checkpoint) or a converted model directory."""
    path = load.require_dir(path)
    model, variables = load.ced(path)
    names = export.read_class_names(path)
    if len(names) != model.num_classes:
      raise UserError(f"'{os.path.join(path, export.CLASS_NAMES)}' has {len(names)} class names "
                      f"but the model has {model.num_classes} outputs; restore the file written with the model")
    return cls(model, variables, names)

  def probs(self, wave: np.ndarray) -> np.ndarray:
    """Clip probabilities ``(C,)`` of one wave ``(L,)`` at 16 kHz (one forward pass, chunked by the model)."""
    return np.asarray(self._apply(self.variables, np.asarray(wave, np.float32)[None])["probs"])[0]

  def top_k(self, probs: np.ndarray, k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs)[:k]
    return [(self.class_names[i], float(probs[i])) for i in order]

  def _batches(self, windows: Iterator[np.ndarray]) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for window in windows:
      if batch and window.shape[0] != batch[0].shape[0]:  # the final, shorter window gets its own batch
        yield batch
        batch = []
      batch.append(window)
      if len(batch) == self.windows_per_batch:
        yield batch
        batch = []
    if batch:
      yield batch

  def tag_file(self, path: str, *, threshold: float | None = None) -> Result:
    """Clip probabilities of a file of any length, and its events when ``threshold`` is given."""
    source_rate, windows = stream_audio(path, ced.SAMPLE_RATE, WINDOW_SAMPLES, min_seconds=ced.MIN_SECONDS,
                                        needed_by="CED")
    tracker = EventTracker(self.class_names, threshold) if threshold is not None else None
    prob_sum, num_windows, samples = np.zeros(self.model.num_classes), 0, 0
    for batch in self._batches(windows):
      length = batch[0].shape[0]
      wave = np.stack(batch)
      if length < ced.MIN_SAMPLES:  # a final sliver after full windows: pad to the model's minimum
        wave = np.pad(wave, ((0, 0), (0, ced.MIN_SAMPLES - length)))
      out = jax.device_get(self._apply(self.variables, wave))
      prob_sum += out["probs"].sum(0)
      if tracker is not None:
        frame_probs = 1 / (1 + np.exp(-out["frame_logits"].astype(np.float64)))
        patches = min(frame_probs.shape[1], -(-length // PATCH_SAMPLES))  # those that start inside real audio
        for i in range(len(batch)):
          offset = (samples + i * length) / ced.SAMPLE_RATE
          for j in range(patches):
            tracker.add(offset + j * PATCH_SECONDS, frame_probs[i, j])
      num_windows += len(batch)
      samples += length * len(batch)
    duration = samples / ced.SAMPLE_RATE
    events = tracker.finish(duration) if tracker is not None else []
    return Result(path, duration, source_rate, prob_sum / num_windows, events)
