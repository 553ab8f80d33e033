"""Readers for published speech corpora in the layouts users download them in, and their TFDS builders.

Every reader yields dicts of the common ASR schema (no network, nothing converted on disk first):
``audio`` int16 ``(L,)`` at 16 kHz, ``sample_rate`` 16000, ``text``, ``pre_text`` (preceding text, "" if none),
``rare_words`` (space-separated, "" if none), ``speaker``, ``id``.

- LibriSpeech (openslr.org/12): ``<root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt``
  (``<utterance id> TRANSCRIPT`` lines, upper case without punctuation) next to ``<utterance id>.flac``.
  Optional context: the previous transcripts of the chapter as ``pre_text``, and the rare-word lists of Le et al.
  2021 (fbai-speech ``is21_deep_bias/ref/test-*.biasing_*.tsv``) as ``rare_words``.
- LibriHeavy (k2-fsa/libriheavy): lhotse cut manifests ``libriheavy_cuts_<subset>.jsonl.gz``, one JSON cut per
  line, whose supervision carries ``custom.texts[0]`` (the book text, cased and punctuated) and
  ``custom.pre_texts[0]`` (the preceding book text); ``custom.context_list`` (rare words, written by icefall's
  ``prepare_prompt_asr.sh``) is read when present. Audio is the LibriLight flac file
  ``recording.sources[0].source`` (``download/librilight/<subset>/<speaker>/<book>/<file>.flac``), cut at the cut's
  ``start`` and ``duration`` (seconds).
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
from typing import Any, Iterator, Sequence

import numpy as np
import soundfile as sf
import tensorflow_datasets as tfds

from audiojax.audio.io import load_audio, pcm16, resample, to_mono
from audiojax.errors import UserError

SAMPLE_RATE = 16000
LIBRISPEECH_SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
                      "test-clean", "test-other")
LIBRILIGHT_PREFIX = "download/librilight/"  # how LibriHeavy manifests address the LibriLight audio


def speech_features() -> tfds.features.FeaturesDict:
  """The TFDS features of every ASR dataset (the common schema; audio as raw int16 bytes)."""
  return tfds.features.FeaturesDict({
      "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES),
      "sample_rate": tfds.features.Scalar(dtype=np.int32),
      "text": tfds.features.Text(),
      "pre_text": tfds.features.Text(),
      "rare_words": tfds.features.Text(),
      "speaker": tfds.features.Text(),
      "id": tfds.features.Text(),
  })


def _example(audio: np.ndarray, text: str, pre_text: str, rare_words: str, speaker: str, ident: str) -> dict:
  return {"audio": audio, "sample_rate": SAMPLE_RATE, "text": text, "pre_text": pre_text, "rare_words": rare_words,
          "speaker": speaker, "id": ident}


# ---------------------------------------------------------------- LibriSpeech

def librispeech_split_dir(root: str | os.PathLike, split: str) -> str:
  """``<root>/LibriSpeech/<split>`` or ``<root>/<split>``, whichever exists; UserError naming both otherwise."""
  root = os.path.expanduser(os.fspath(root))
  candidates = (os.path.join(root, "LibriSpeech", split), os.path.join(root, split))
  for folder in candidates:
    if os.path.isdir(folder):
      return folder
  found = [s for s in LIBRISPEECH_SPLITS if any(os.path.isdir(os.path.join(os.path.dirname(c), s)) for c in candidates)]
  raise UserError(f"LibriSpeech split '{split}' is not in '{candidates[0]}' or '{candidates[1]}'; unpack "
                  f"{split}.tar.gz from openslr.org/12 there" + (f" (found: {', '.join(found)})" if found else ""))


def read_biasing_tsv(path: str | os.PathLike, with_distractors: bool = False) -> dict[str, str]:
  """``{utterance id: space-separated words}`` of a Le et al. biasing list (``id, text, [oracle], [oracle+others]``
  tab-separated, the lists as JSON); ``with_distractors`` takes the fourth column instead of the oracle words."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserError(f"biasing list '{path}' does not exist; take it from fbai-speech is21_deep_bias/ref/")
  words = {}
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      fields = line.rstrip("\n").split("\t")
      if len(fields) != 4:
        raise UserError(f"'{path}' line {line_number} has {len(fields)} tab-separated fields, not 4 (id, text, "
                        "oracle words, words with distractors); give an is21_deep_bias ref tsv")
      try:
        listed = json.loads(fields[3] if with_distractors else fields[2])
      except json.JSONDecodeError:
        raise UserError(f"'{path}' line {line_number}: the word list is not a JSON list") from None
      words[fields[0]] = " ".join(listed)
  return words


def _read_transcripts(path: str) -> list[tuple[str, str]]:
  """``(utterance id, text)`` of one ``.trans.txt``, in file order."""
  rows = []
  with open(path, encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      ident, _, text = line.strip().partition(" ")
      if not text:
        raise UserError(f"'{path}' line {line_number} has no transcript after the id; re-download the split")
      rows.append((ident, text.strip()))
  return rows


def _numeric_dirs(folder: str) -> list[str]:
  names = [n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))]
  return sorted(names, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n))


def iter_librispeech(root: str | os.PathLike, split: str, *, context_utterances: int = 0,
                     rare_words: dict[str, str] | None = None) -> Iterator[dict]:
  """The utterances of LibriSpeech ``split`` (``test-clean`` ...) under ``root``, by speaker, chapter, utterance.

  ``pre_text`` is the previous ``context_utterances`` transcripts of the same chapter (0: ""); ``rare_words`` maps
  utterance ids to their rare words (see :func:`read_biasing_tsv`). Transcripts are as published: upper case,
  no punctuation. Raises UserError for a missing split, transcript or audio file.
  """
  folder = librispeech_split_dir(root, split)
  rare_words = rare_words or {}
  for speaker in _numeric_dirs(folder):
    for chapter in _numeric_dirs(os.path.join(folder, speaker)):
      chapter_dir = os.path.join(folder, speaker, chapter)
      transcript = os.path.join(chapter_dir, f"{speaker}-{chapter}.trans.txt")
      if not os.path.isfile(transcript):
        raise UserError(f"LibriSpeech transcript '{transcript}' is missing; re-download {split}")
      previous: list[str] = []
      for ident, text in _read_transcripts(transcript):
        audio = load_audio(os.path.join(chapter_dir, ident + ".flac"), SAMPLE_RATE).wave
        context = previous[-context_utterances:] if context_utterances > 0 else []
        yield _example(pcm16(audio), text, " ".join(context), rare_words.get(ident, ""), speaker, ident)
        previous.append(text)


# ---------------------------------------------------------------- LibriHeavy

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
  """The cuts of a LibriHeavy manifest (``.jsonl.gz`` or ``.jsonl``), in file order.

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
        yield _example(pcm16(wave), text, pre_text, rare, str(supervisions[0].get("speaker", "")),
                       str(_field(cut, "id", where)))
  finally:
    recording.close()


# ---------------------------------------------------------------- TFDS builders

def _split_name(name: str) -> str:
  return re.sub(r"\W", "_", name)


def _manual_root(manual_dir: str | None, dataset: str, fix: str) -> str:
  """``manual_dir`` checked to be an existing folder; UserError saying what to put there otherwise."""
  fix = fix[:1].lower() + fix[1:]
  if manual_dir is None:
    raise UserError(f"{dataset} is read from a folder you download; pass manual_dir=<folder> ({fix})")
  if not os.path.isdir(manual_dir):
    raise UserError(f"{dataset} manual_dir '{manual_dir}' does not exist; {fix}")
  return manual_dir


class _ManualDirBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder reading ``manual_dir`` given to the constructor (as ``builders.build`` passes it)."""

  def __init__(self, *, manual_dir: str | os.PathLike | None = None, **kwargs):
    self._manual_dir = os.path.expanduser(os.fspath(manual_dir)) if manual_dir is not None else None
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=self.__doc__, features=speech_features())


@dataclasses.dataclass(eq=False)
class LibrispeechConfig(tfds.core.BuilderConfig):
  """The LibriSpeech splits one config builds (TFDS names them with ``_`` for ``-``)."""

  splits: Sequence[str] = ("test-clean", "test-other")
  context_utterances: int = 0


class LibrispeechAsr(_ManualDirBuilder):
  """LibriSpeech read from ``manual_dir`` (``<manual_dir>/LibriSpeech/<split>/...``) into the common ASR schema."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      LibrispeechConfig(name="eval", description="dev-clean, dev-other, test-clean, test-other.",
                        splits=("dev-clean", "dev-other", "test-clean", "test-other")),
      LibrispeechConfig(name="eval_context", description="The eval splits with the chapter's previous 3 "
                        "transcripts as pre_text.", splits=("dev-clean", "dev-other", "test-clean", "test-other"),
                        context_utterances=3),
      LibrispeechConfig(name="train_clean_100", description="train-clean-100.", splits=("train-clean-100",)),
      LibrispeechConfig(name="train_960", description="train-clean-100, train-clean-360, train-other-500.",
                        splits=("train-clean-100", "train-clean-360", "train-other-500")),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = ("Download the splits from https://www.openslr.org/12 and unpack them into one "
                                  "folder (tar xzf makes <dir>/LibriSpeech/<split>/...); pass <dir> as manual_dir.")

  def _split_generators(self, dl_manager):
    del dl_manager  # the corpus is read from manual_dir
    root = _manual_root(self._manual_dir, "librispeech_asr", self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    config = self.builder_config
    for split in config.splits:
      librispeech_split_dir(root, split)  # fail before writing anything
    return {_split_name(split): self._generate_examples(root, split) for split in config.splits}

  def _generate_examples(self, root: str, split: str):
    for example in iter_librispeech(root, split, context_utterances=self.builder_config.context_utterances):
      yield example["id"], example


@dataclasses.dataclass(eq=False)
class LibriheavyConfig(tfds.core.BuilderConfig):
  """The LibriHeavy manifests (subset names) one config builds."""

  subsets: Sequence[str] = ("test_clean", "test_other")


class Libriheavy(_ManualDirBuilder):
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

  def _split_generators(self, dl_manager):
    del dl_manager  # the corpus is read from manual_dir
    root = _manual_root(self._manual_dir, "libriheavy", self.MANUAL_DOWNLOAD_INSTRUCTIONS)
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
