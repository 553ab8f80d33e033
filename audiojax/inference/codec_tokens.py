"""The token pass: a speech corpus (a TFDS split with ``text`` and ``speaker``) → a codec token store
(:mod:`audiojax.data.token_store`) for the codec-LM task.

Each utterance with text is resampled to the codec's rate if needed, cut to whole codec frames (the last
``< hop`` samples, under 20 ms at 50 Hz, are dropped, so the codes of the kept frames do not depend on what pads a
batch: the codec is causal), encoded at ``bandwidth`` in batches of similar lengths, and its text is turned into
phonemes by espeak-ng in the example's ``language`` (or ``language``). Utterances without text are skipped and
counted; so are ones shorter than one frame.
"""
from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import tensorflow_datasets as tfds
from tqdm import tqdm

from audiojax.audio.io import from_pcm16, resample
from audiojax.data import token_store
from audiojax.data.sources import espeak
from audiojax.errors import UserError
from audiojax.inference.codec import Coder

BUCKET_SECONDS = 2.0  # batches are padded to a multiple of this (few shapes to compile)


@dataclasses.dataclass
class PassReport:
  written: int
  without_text: int
  too_short: int
  seconds: float


def encode_batch(coder: Coder, waves: list[np.ndarray], n_q: int, bucket: int) -> list[np.ndarray]:
  """Codes ``(frames, n_q)`` of each of ``waves`` (each a whole number of frames), padded together to a multiple of
  ``bucket`` samples."""
  hop = coder.model.hop_length
  longest = max(w.shape[0] for w in waves)
  size = bucket * math.ceil(longest / bucket)
  batch = np.stack([np.pad(w, (0, size - w.shape[0])) for w in waves])
  codes = np.asarray(coder.encode_batch(batch, n_q))  # (B, n_q, frames)
  return [c[:, :w.shape[0] // hop].T for c, w in zip(codes, waves)]


def token_pass(codec_dir: str, dataset: str, split: str, out: str, *, bandwidth: float, data_dir: str,
               language: str = "en", batch_size: int = 16) -> PassReport:
  """Writes the token store of ``dataset``'s ``split`` to ``out`` (see the module docstring)."""
  coder = Coder.from_checkpoint(codec_dir)
  model = coder.model
  if not model.causal:
    raise UserError(f"codec '{codec_dir}' is not causal; the token pass pads batches and needs a causal codec")
  n_q, hop, rate = model.bandwidth_to_n_q(bandwidth), model.hop_length, model.sample_rate
  try:
    source = tfds.data_source(dataset, split=split, data_dir=data_dir)
  except Exception as e:  # noqa: BLE001 (tfds raises many kinds for a missing dataset)
    raise UserError(f"cannot read split '{split}' of dataset '{dataset}' in '{data_dir}' ({str(e).splitlines()[0]}); "
                    f"build it with 'python -m audiojax data build {dataset}'") from None
  kept, without_text, too_short, seconds = [], 0, 0, 0.0
  for i in tqdm(range(len(source)), desc=f"reading {dataset}:{split}", unit="clip", file=sys.stderr, disable=None):
    example = source[i]
    text = example["text"].decode() if isinstance(example["text"], bytes) else str(example["text"])
    if not text.strip():
      without_text += 1
      continue
    wave = from_pcm16(example["audio"])
    if int(example["sample_rate"]) != rate:
      wave = resample(wave, int(example["sample_rate"]), rate)
    wave = wave[:wave.shape[0] // hop * hop]
    if not wave.shape[0]:
      too_short += 1
      continue
    seconds += wave.shape[0] / rate
    lang = example.get("language", language)
    lang = lang.decode() if isinstance(lang, bytes) else str(lang)
    speaker = example["speaker"].decode() if isinstance(example["speaker"], bytes) else str(example["speaker"])
    ident = example["id"].decode() if isinstance(example["id"], bytes) else str(example["id"])
    kept.append((token_store.Utterance(ident, speaker, lang or language, text, ()), wave))
  if not kept:
    raise UserError(f"split '{split}' of '{dataset}' has no utterance with text; the codec-LM needs transcripts")
  by_language: dict[str, list[int]] = {}
  for i, (u, _) in enumerate(kept):
    by_language.setdefault(u.language, []).append(i)
  phonemes: list[tuple[str, ...]] = [()] * len(kept)
  for lang, indices in by_language.items():
    symbols = espeak.phonemize([kept[i][0].text for i in indices], lang)
    for i, s in zip(indices, symbols):
      phonemes[i] = tuple(s)
  codes: list[np.ndarray | None] = [None] * len(kept)
  order = np.argsort([w.shape[0] for _, w in kept], kind="stable")
  bucket = int(BUCKET_SECONDS * rate)
  for start in tqdm(range(0, len(order), batch_size), desc="encoding", unit="batch", file=sys.stderr, disable=None):
    chosen = order[start:start + batch_size]
    for i, c in zip(chosen, encode_batch(coder, [kept[i][1] for i in chosen], n_q, bucket)):
      codes[i] = c
  meta = token_store.StoreMeta(dataset, split, coder.model_id, codec_dir, n_q, model.bins, model.frame_rate, 0,
                               sorted(by_language))
  token_store.write(out, meta, ((dataclasses.replace(u, phonemes=p), c)
                                for (u, _), p, c in zip(kept, phonemes, codes)))
  return PassReport(len(kept), without_text, too_short, seconds)

