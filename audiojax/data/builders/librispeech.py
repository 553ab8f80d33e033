"""``librispeech_asr``: LibriSpeech (openslr.org/12) read from the folder users unpack it in, in the speech schema.

The layout is ``<root>/LibriSpeech/<split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt`` (``<utterance id>
TRANSCRIPT`` lines, upper case without punctuation) next to ``<utterance id>.flac``; nothing is converted on disk
first. Optional context: the previous transcripts of the chapter as ``pre_text``, and the rare-word lists of Le et al.
2021 (fbai-speech ``is21_deep_bias/ref/test-*.biasing_*.tsv``) as ``rare_words``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Iterator, Sequence

import tensorflow_datasets as tfds

from audiojax.audio.io import load_audio, pcm16
from audiojax.data.builders import schema
from audiojax.data.builders.manual_dir import ManualDirBuilder
from audiojax.errors import UserError

SAMPLE_RATE = 16000
SPLITS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other", "test-clean",
          "test-other")


def librispeech_split_dir(root: str | os.PathLike, split: str) -> str:
  """``<root>/LibriSpeech/<split>`` or ``<root>/<split>``, whichever exists; UserError naming both otherwise."""
  root = os.path.expanduser(os.fspath(root))
  candidates = (os.path.join(root, "LibriSpeech", split), os.path.join(root, split))
  for folder in candidates:
    if os.path.isdir(folder):
      return folder
  found = [s for s in SPLITS if any(os.path.isdir(os.path.join(os.path.dirname(c), s)) for c in candidates)]
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
  """The utterances of LibriSpeech ``split`` (``test-clean`` ...) under ``root``, by speaker, chapter, utterance, as
  :func:`schema.speech_example` dicts (audio int16 ``(L,)`` at 16 kHz).

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
        yield schema.speech_example(pcm16(audio), SAMPLE_RATE, text, " ".join(context), rare_words.get(ident, ""),
                                    speaker, ident)
        previous.append(text)


def _split_name(name: str) -> str:
  return re.sub(r"\W", "_", name)


@dataclasses.dataclass(eq=False)
class LibrispeechConfig(tfds.core.BuilderConfig):
  """The LibriSpeech splits one config builds (TFDS names them with ``_`` for ``-``)."""

  splits: Sequence[str] = ("test-clean", "test-other")
  context_utterances: int = 0


class LibrispeechAsr(ManualDirBuilder):
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

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=self.__doc__, features=schema.speech_features())

  def _split_generators(self, dl_manager):
    del dl_manager  # the corpus is read from manual_dir
    root = self._manual_root(self.MANUAL_DOWNLOAD_INSTRUCTIONS)
    config = self.builder_config
    for split in config.splits:
      librispeech_split_dir(root, split)  # fail before writing anything
    return {_split_name(split): self._generate_examples(root, split) for split in config.splits}

  def _generate_examples(self, root: str, split: str):
    for example in iter_librispeech(root, split, context_utterances=self.builder_config.context_utterances):
      yield example["id"], example
