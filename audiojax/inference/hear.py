"""HEAR 2021 API (https://hearbenchmark.com/hear-api.html) for CED embeddings.

    model = audiojax.inference.hear.load_model("path/to/converted_or_trained_ced")
    scene = audiojax.inference.hear.get_scene_embeddings(audio, model)           # (n_sounds, D)
    emb, ts = audiojax.inference.hear.get_timestamp_embeddings(audio, model)     # (n_sounds, n_times, D), ms

``audio`` is a ``(n_sounds, n_samples)`` array at 16 kHz (HEAR pads a batch to one length) or a list of 1-D arrays of
different lengths. Scene embeddings are the mean final-layer token (CED's penultimate features, as its HEAR results
use); timestamp embeddings are the frequency-averaged tokens of each 160 ms time patch, stamped at the patch centres.
Sounds shorter than CED's 150 ms minimum are zero-padded to it.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.models import ced


class HearModel:
  """A CED encoder with the attributes the HEAR harness reads."""

  sample_rate = ced.SAMPLE_RATE

  def __init__(self, model: ced.CED, variables: dict):
    self.model = model
    self.variables = variables
    self.scene_embedding_size = model.embed_dim
    self.timestamp_embedding_size = model.embed_dim
    self._apply = jax.jit(lambda v, w: {k: o for k, o in model.apply(v, w).items()
                                        if k in ("embedding", "frame_embeddings")})

  def embed(self, wave: np.ndarray) -> dict[str, np.ndarray]:
    """``wave (B, L)`` → ``embedding (B, D)``, ``frame_embeddings (B, t, D)``."""
    if wave.shape[1] < ced.MIN_SAMPLES:
      wave = np.pad(wave, ((0, 0), (0, ced.MIN_SAMPLES - wave.shape[1])))
    return jax.device_get(self._apply(self.variables, np.asarray(wave, np.float32)))


def load_model(model_file_path: str = "") -> HearModel:
  """Loads a converted CED model directory or a training workdir (no weights ship inside the package)."""
  if not model_file_path:
    raise UserError("audiojax.inference.hear.load_model needs model_file_path: a model directory made by "
                    "'python -m audiojax convert ced' or a training workdir")
  return HearModel(*load.ced(model_file_path))


def _groups(audio) -> list[np.ndarray]:
  """A 2-D array is one group; a list of 1-D arrays is split into groups of equal length (order kept by index)."""
  if isinstance(audio, (list, tuple)):
    return [np.asarray(a, np.float32)[None] for a in audio]
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 2:
    raise UserError(f"HEAR audio must be (n_sounds, n_samples) or a list of 1-D arrays; got shape {audio.shape}")
  return [audio]


def get_scene_embeddings(audio: np.ndarray | Sequence[np.ndarray], model: HearModel) -> np.ndarray:
  """``(n_sounds, scene_embedding_size)`` float32."""
  return np.concatenate([model.embed(group)["embedding"] for group in _groups(audio)])


def get_timestamp_embeddings(audio: np.ndarray | Sequence[np.ndarray], model: HearModel
                             ) -> tuple[np.ndarray, np.ndarray] | tuple[list[np.ndarray], list[np.ndarray]]:
  """``(embeddings (n_sounds, n_times, D), timestamps (n_sounds, n_times) in ms)`` for a 2-D batch; for a list of
  sounds of different lengths, lists of per-sound ``(n_times_i, D)`` and ``(n_times_i,)`` arrays."""
  groups = _groups(audio)
  embeddings = [model.embed(g)["frame_embeddings"] for g in groups]
  stamps = [np.broadcast_to(ced.patch_centers_ms(max(g.shape[1], ced.MIN_SAMPLES)), e.shape[:2]).astype(np.float32)
            for g, e in zip(groups, embeddings)]
  if isinstance(audio, (list, tuple)):
    return [e[0] for e in embeddings], [s[0] for s in stamps]
  return embeddings[0], stamps[0]
