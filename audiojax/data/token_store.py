"""Codec token store: one split of a speech corpus as codec codes plus phonemes, written once by the token pass
(``python -m audiojax codec tokens``) and read by the codec-LM task (VALL-E) instead of the audio.

Layout of a store directory::

  meta.json           dataset, split, codec model id and directory, n_q, bins, frame_rate, examples, languages
  codes.npy           (total_frames, n_q) int16: every utterance's frames, one after another
  offsets.npy         (examples + 1,) int64: utterance i is codes[offsets[i]:offsets[i + 1]]
  utterances.jsonl    one line per utterance: id, speaker, language, text, phonemes (espeak-ng symbols)

``codes.npy`` is memory-mapped when read, so a store may be far larger than memory; the phonemes are symbols, not
ids, so one store serves any phoneme vocabulary. Files are written under temporary names and renamed, ``meta.json``
last: a store with ``meta.json`` is complete.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Iterable

import numpy as np

from audiojax import paths
from audiojax.errors import UserError

META, CODES, OFFSETS, UTTERANCES = "meta.json", "codes.npy", "offsets.npy", "utterances.jsonl"


@dataclasses.dataclass
class StoreMeta:
  dataset: str
  split: str
  codec_id: str  # audiojax.inference.codec.model_id of the codec that made the codes
  codec_dir: str
  n_q: int
  bins: int
  frame_rate: int
  examples: int
  languages: list[str]


@dataclasses.dataclass(frozen=True)
class Utterance:
  id: str
  speaker: str
  language: str
  text: str
  phonemes: tuple[str, ...]


def write(root: str, meta: StoreMeta, utterances: Iterable[tuple[Utterance, np.ndarray]]) -> None:
  """Writes a store: ``utterances`` yields each utterance with its codes ``(frames, n_q)``."""
  folder = paths.resolve(root)
  folder.mkdir(parents=True, exist_ok=True)
  codes, offsets, lines = [], [0], []
  for utterance, frames in utterances:
    if frames.ndim != 2 or frames.shape[1] != meta.n_q:
      raise ValueError(f"codes of {utterance.id} have shape {frames.shape}, not (frames, {meta.n_q})")
    codes.append(np.asarray(frames, np.int16))
    offsets.append(offsets[-1] + frames.shape[0])
    lines.append(json.dumps(dataclasses.asdict(utterance), ensure_ascii=False))
  meta = dataclasses.replace(meta, examples=len(lines))
  for name, array in ((CODES, np.concatenate(codes) if codes else np.zeros((0, meta.n_q), np.int16)),
                      (OFFSETS, np.asarray(offsets, np.int64))):
    tmp = folder / f"{name}.tmp.npy"
    with tmp.open("wb") as f:
      np.save(f, array)
    tmp.rename(folder / name)
  paths.write_atomic(folder / UTTERANCES, "\n".join(lines) + "\n")
  paths.write_atomic(folder / META, json.dumps(dataclasses.asdict(meta), indent=1))


class TokenStore:
  """Read access: ``len(store)``, ``store.codes(i)`` → ``(frames, n_q)`` int16, ``store.utterances[i]``."""

  def __init__(self, root: str):
    folder = paths.resolve(root)
    if not (folder / META).is_file():
      raise UserError(f"'{root}' is not a codec token store (no {META}); write one with 'python -m audiojax codec "
                      "tokens'")
    try:
      self.meta = StoreMeta(**json.loads((folder / META).read_text()))
      self.utterances = [Utterance(**{**json.loads(line), "phonemes": tuple(json.loads(line)["phonemes"])})
                         for line in (folder / UTTERANCES).read_text().splitlines() if line]
    except (ValueError, TypeError, KeyError) as e:
      raise UserError(f"'{root}' holds a damaged token store ({e}); run the token pass again") from None
    self.root = str(folder)
    self.offsets = np.load(paths.local_copy(folder / OFFSETS))
    if len(self.utterances) != self.meta.examples or len(self.offsets) != self.meta.examples + 1:
      raise UserError(f"'{root}' lists {len(self.utterances)} utterances and {len(self.offsets) - 1} offsets for "
                      f"{self.meta.examples} examples; run the token pass again")
    self._codes = None

  def __len__(self) -> int:
    return self.meta.examples

  @property
  def frames(self) -> np.ndarray:
    """``(examples,)`` frames of each utterance."""
    return np.diff(self.offsets)

  def codes(self, index: int) -> np.ndarray:
    if self._codes is None:  # opened lazily: each grain worker maps its own view
      self._codes = np.load(paths.local_copy(paths.resolve(self.root) / CODES), mmap_mode="r")
    return np.asarray(self._codes[self.offsets[index]:self.offsets[index + 1]])

  def speakers(self) -> dict[str, list[int]]:
    """``{speaker: [utterance indices]}``."""
    out: dict[str, list[int]] = {}
    for i, u in enumerate(self.utterances):
      out.setdefault(u.speaker, []).append(i)
    return out

  def __getstate__(self):  # picklable for grain workers: drop the open memory map
    return {**self.__dict__, "_codes": None}
