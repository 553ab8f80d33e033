"""``libriheavy``: LibriHeavy (k2-fsa/libriheavy) read from the folder users download it to, in the speech schema.

The lhotse cut manifests ``libriheavy_cuts_<subset>.jsonl.gz`` hold one JSON cut per line, whose supervision carries
``custom.texts[0]`` (the book text, cased and punctuated) and ``custom.pre_texts[0]`` (the preceding book text);
``custom.context_list`` (rare words, written by icefall's ``prepare_prompt_asr.sh``) is read when present. Audio is
the LibriLight flac file ``recording.sources[0].source``
(``download/librilight/<subset>/<speaker>/<book>/<file>.flac``), cut at the cut's ``start`` and ``duration``
(seconds); nothing is converted on disk first.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
from typing import Any, Iterator, Sequence

import numpy as np
import soundfile as sf
import tensorflow_datasets as tfds

from audiojax.audio.io import pcm16, resample, to_mono
from audiojax.data.builders import schema
from audiojax.data.builders.manual_dir import ManualDirBuilder
from audiojax.errors import UserError

SAMPLE_RATE = 16000
LIBRILIGHT_PREFIX = "download/librilight/"  # how LibriHeavy manifests address the LibriLight audio


def _field(record: dict, key: str, where: str) -> Any:
  if not isinstance(record, dict) or key not in record:
    raise UserError(f"{where} has no '{key}'; give a LibriHeavy lhotse cut manifest (libriheavy_cuts_*.jsonl.gz)")
  return record[key]


def resolve_audio(source: str, audio_root: str | None, where: str) -> str:
  """The file of a manifest's audio ``source``: as given, under ``audio_root``, or under ``audio_root`` without the
  ``download/librilight/`` prefix the published manifests use."""
  candidates = [source]
  if audio_root is not None:
    candidates.append(os.path.join(audio_root, source))
    if source.startswith(LIBRILIGHT_PREFIX):
      candidates.append(os.path.join(audio_root, source[len(LIBRILIGHT_PREFIX):]))
  for path in candidates:
    if os.path.isfile(path):
      return path
  raise UserError(f"{where}: audio '{source}' not found (tried {', '.join(repr(c) for c in candidates)}); pass the "
                  "folder holding download/librilight (or the LibriLight subsets) as audio_root")


def _texts(supervision: dict, where: str) -> tuple[str, str, str]:
  """``(text, pre_text, rare_words)`` of a LibriHeavy supervision (the cased, punctuated versions)."""
  custom = supervision.get("custom") or {}
  texts, pre_texts = custom.get("texts"), custom.get("pre_texts")
  if texts:
    text = texts[0]
  else:
    text = supervision.get("text")
    if text is None:
      raise UserError(f"{where}: the supervision has neither custom.texts nor text; give a LibriHeavy manifest")
  pre_text = pre_texts[0] if pre_texts else ""
  rare = custom.get("context_list", supervision.get("context_list", "")) or ""
  return text, pre_text, rare if isinstance(rare, str) else " ".join(rare)


class _OpenRecording:
  """Keeps the last recording open: a manifest lists the cuts of one recording together."""

  def __init__(self):
    self.path, self.file = None, None

  def read(self, path: str, start: float, duration: float, channel: int, where: str) -> np.ndarray:
    """``duration`` seconds from ``start`` of ``path``, mono, 16 kHz float32."""
    if path != self.path:
      self.close()
      try:
        self.file = sf.SoundFile(path)
      except (sf.LibsndfileError, RuntimeError) as e:
        raise UserError(f"{where}: cannot read audio '{path}' ({str(e).splitlines()[0]}); re-download it") from None
      self.path = path
    rate = self.file.samplerate
    first, count = int(round(start * rate)), int(round(duration * rate))
    if first < 0 or count <= 0 or first + count > self.file.frames + rate // 100:  # 10 ms of rounding slack
      raise UserError(f"{where}: segment {start:.2f}+{duration:.2f} s lies outside '{path}' "
                      f"({self.file.frames / rate:.2f} s); the manifest does not match this audio")
    self.file.seek(first)
    wave = self.file.read(count, dtype="float32", always_2d=True)
    wave = wave[:, channel] if wave.shape[1] > 1 and channel < wave.shape[1] else to_mono(wave)
    return resample(wave, rate, SAMPLE_RATE)

  def close(self):
    if self.file is not None:
      self.file.close()
    self.path, self.file = None, None


def iter_libriheavy(manifest: str | os.PathLike, audio_root: str | os.PathLike | None = None) -> Iterator[dict]:
  """The cuts of a LibriHeavy manifest (``.jsonl.gz`` or ``.jsonl``), in file order, as
  :func:`schema.speech_example` dicts (audio int16 ``(L,)`` at 16 kHz).

  ``text``/``pre_text`` are ``texts[0]``/``pre_texts[0]`` (cased, punctuated book text; a manifest with only
  ``supervision.text`` gives that and an empty ``pre_text``). Audio paths are resolved by :func:`resolve_audio`.
  Raises UserError naming the file, line and key of anything missing.
  """
  manifest = os.path.expanduser(os.fspath(manifest))
  if not os.path.isfile(manifest):
    raise UserError(f"LibriHeavy manifest '{manifest}' does not exist; download it from huggingface.co/datasets/"
                    "pkufool/libriheavy")
  audio_root = os.path.expanduser(os.fspath(audio_root)) if audio_root is not None else None
  opener = gzip.open if manifest.endswith(".gz") else open
  recording = _OpenRecording()
  try:
    with opener(manifest, "rt", encoding="utf-8") as f:
      for line_number, line in enumerate(f, start=1):
        if not line.strip():
          continue
        where = f"'{manifest}' line {line_number}"
        try:
          cut = json.loads(line)
        except json.JSONDecodeError:
          raise UserError(f"{where} is not JSON; re-download the manifest") from None
        supervisions = _field(cut, "supervisions", where)
        if not supervisions:
          raise UserError(f"{where}: the cut has no supervision; give a LibriHeavy manifest")
        text, pre_text, rare = _texts(supervisions[0], where)
        sources = _field(_field(cut, "recording", where), "sources", where + " recording")
        if not sources:
          raise UserError(f"{where}: the recording has no source; give a LibriHeavy manifest")
        path = resolve_audio(_field(sources[0], "source", where + " recording source"), audio_root, where)
        wave = recording.read(path, float(_field(cut, "start", where)), float(_field(cut, "duration", where)),
                              int(cut.get("channel", 0) or 0), where)
        yield schema.speech_example(pcm16(wave), SAMPLE_RATE, text, pre_text, rare,
                                    str(supervisions[0].get("speaker", "")), str(_field(cut, "id", where)))
  finally:
    recording.close()


@dataclasses.dataclass(eq=False)
class LibriheavyConfig(tfds.core.BuilderConfig):
  """The LibriHeavy manifests (subset names) one config builds."""

  subsets: Sequence[str] = ("test_clean", "test_other")


class Libriheavy(ManualDirBuilder):
  """LibriHeavy read from ``manual_dir``: the ``libriheavy_cuts_<subset>.jsonl.gz`` manifests there, and the
  LibriLight audio under it (``<manual_dir>/download/librilight/...`` as the manifests address it)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      LibriheavyConfig(name="eval", description="dev, test_clean, test_other.",
                       subsets=("dev", "test_clean", "test_other")),
      LibriheavyConfig(name="small", description="small (509 h) for training, with the eval subsets.",
                       subsets=("small", "dev", "test_clean", "test_other")),
      LibriheavyConfig(name="medium", description="medium (5,042 h; the PromptASR recipe) with the eval subsets.",
                       subsets=("medium", "dev", "test_clean", "test_other")),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the libriheavy_cuts_<subset>.jsonl.gz manifests (huggingface.co/datasets/pkufool/libriheavy) in one "
      "folder, with the LibriLight audio at <folder>/download/librilight/<subset>/... (k2-fsa/libriheavy run.sh "
      "stage -1 makes that layout; a symlink will do), and pass the folder as manual_dir.")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=self.__doc__, features=schema.speech_features())

  def _split_generators(self, dl_manager):
    del dl_manager  # the corpus is read from manual_dir
    root = self._manual_root(self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    manifests = {}
    for subset in self.builder_config.subsets:
      path = os.path.join(root, f"libriheavy_cuts_{subset}.jsonl.gz")
      if not os.path.isfile(path):
        raise UserError(f"LibriHeavy manifest '{path}' is missing; download it from huggingface.co/datasets/"
                        "pkufool/libriheavy into the manual_dir")
      manifests[subset] = path
    split_names = {subset: "train" if subset in ("small", "medium", "large") else subset for subset in manifests}
    return {split_names[s]: self._generate_examples(path, root) for s, path in manifests.items()}

  def _generate_examples(self, manifest: str, root: str):
    for example in iter_libriheavy(manifest, root):
      yield example["id"], example
