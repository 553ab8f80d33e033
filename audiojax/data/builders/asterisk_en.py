"""``asterisk_en``: real recorded English prompts of the Asterisk PBX, read by one woman, with their transcripts.

The Debian packages ``asterisk-core-sounds-en-wav`` (568 8-kHz mono wav files, 25.5 min, voice of Allison Smith;
CC-BY-SA-3.0) and ``asterisk-core-sounds-en`` (``core-sounds-en.txt.gz``: one ``name: text`` line per prompt) give a
small real-speech evaluation set for ASR, a ``test`` split only: 551 utterances, 24.3 min, upsampled to 16 kHz (the
band above 4 kHz is empty, as on a telephone line). The build takes a few seconds after the 18-MB download.

``text`` is the transcript as given, with its stage directions removed: bracketed notes (``at [@]`` → ``at``,
``IAX (note: does not say "2")`` → ``IAX``). Prompts whose transcript is only a note (tones, beeps, ten files of
silence, monkeys screaming) are left out, as is the one transcript without a recording (``pls-try-call-later``).
The transcripts are NOT uniformly cased and punctuated: of the 551, 266 start with a capital and 226 end with ``.``,
``?`` or ``!`` (``Please enter your password followed by the pound key.``), while 277 are all lower case: the words
of ``digits/``, ``letters/``, ``phonetic/`` and ``dictate/`` and many short prompts, without punctuation (``zero``,
``alpha``, ``press 0 for help``). Key presses are written as numerals and symbols (``press 1``, ``*``, ``#``) where
the speaker says "one", "star", "pound". Score with normalised text (case, punctuation, numbers) or report both.
``pre_text`` and ``rare_words`` are empty, ``speaker`` is ``allison``, ``id`` is the prompt name (``digits/7``,
``vm-intro``).

``manual_dir`` is a folder with one subfolder per package, as ``dpkg-deb -x <deb> <dir>/<package>`` makes; without
it the builder runs ``apt-get download`` and ``dpkg-deb -x`` itself into ``~/.cache/audiojax`` (18 MB).
"""
from __future__ import annotations

import glob
import gzip
import logging
import os
import re
from typing import Iterator

import tensorflow_datasets as tfds

from audiojax.audio.io import load_audio, pcm16
from audiojax.data.builders import schema
from audiojax.data.builders.manual_dir import ManualDirBuilder
from audiojax.data.sources import apt
from audiojax.errors import UserError

log = logging.getLogger("audiojax")

SAMPLE_RATE = 16000
SOUNDS_PACKAGE = "asterisk-core-sounds-en-wav"
TEXT_PACKAGE = "asterisk-core-sounds-en"
PACKAGES = (SOUNDS_PACKAGE, TEXT_PACKAGE)
SPEAKER = "allison"
_TRANSCRIPT = "usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt"
_SOUNDS = "usr/share/asterisk/sounds"
_NOTE = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")  # [ascending tones], (10 seconds of silence), <beep ascending>


def clean_transcript(text: str) -> str:
  """``text`` without its bracketed notes and with single spaces; "" when it was only a note."""
  return " ".join(_NOTE.sub(" ", text).split())


def read_transcripts(path: str) -> dict[str, str]:
  """``{prompt name: cleaned text}`` of ``core-sounds-en.txt(.gz)``; prompts whose text is only a note are left out."""
  opener = gzip.open if path.endswith(".gz") else open
  texts = {}
  with opener(path, "rt", encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      line = line.strip()
      if not line or line.startswith(";"):
        continue
      name, sep, text = line.partition(": ")
      if not sep or not name:
        raise UserError(f"'{path}' line {line_number} is not 'name: text'; unpack {TEXT_PACKAGE} again")
      text = clean_transcript(text)
      if text:
        texts[name.strip()] = text
  return texts


def find_transcripts(root: str) -> str:
  """The transcript file under the unpacked packages in ``root``."""
  for suffix in (".gz", ""):
    path = os.path.join(root, TEXT_PACKAGE, _TRANSCRIPT + suffix)
    if os.path.isfile(path):
      return path
  raise UserError(f"'{os.path.join(root, TEXT_PACKAGE, _TRANSCRIPT)}.gz' is missing; unpack {TEXT_PACKAGE} there "
                  f"({apt.manual_command([TEXT_PACKAGE], root)})")


def find_sounds(root: str) -> str:
  """The folder of the English prompts (``.../sounds/en_US_f_Allison``; the one with most wav files)."""
  folders = [d for d in glob.glob(os.path.join(glob.escape(root), SOUNDS_PACKAGE, _SOUNDS, "*")) if os.path.isdir(d)]
  counts = {d: len(glob.glob(os.path.join(glob.escape(d), "**", "*.wav"), recursive=True)) for d in folders}
  if not counts or max(counts.values()) == 0:
    raise UserError(f"no wav files under '{os.path.join(root, SOUNDS_PACKAGE, _SOUNDS)}'; unpack {SOUNDS_PACKAGE} "
                    f"there ({apt.manual_command([SOUNDS_PACKAGE], root)})")
  return max(counts, key=counts.get)


class AsteriskEn(ManualDirBuilder):
  """Asterisk English prompts (see the module docstring for the transcripts and the licence)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: asterisk-core-sounds-en 1.6.1 (Debian 12)."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Optional. apt-get download asterisk-core-sounds-en-wav asterisk-core-sounds-en, then dpkg-deb -x "
      "<package>_*.deb <dir>/<package> for each, and pass <dir> as manual_dir. Without manual_dir the builder does "
      "this into ~/.cache/audiojax.")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=schema.speech_features(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the packages come from apt, see _package_root
    root = self._package_root(list(PACKAGES))
    return {"test": self._generate_examples(read_transcripts(find_transcripts(root)), find_sounds(root))}

  def _generate_examples(self, texts: dict[str, str], sounds: str) -> Iterator:
    missing = [name for name in texts if not os.path.isfile(os.path.join(sounds, name + ".wav"))]
    if len(missing) == len(texts):
      raise UserError(f"none of the {len(texts)} transcribed prompts has a wav file in '{sounds}'; unpack "
                      f"{SOUNDS_PACKAGE} again")
    if missing:
      log.info("asterisk_en: %d transcribed prompt(s) without a recording left out (first: %s)", len(missing),
               missing[0])
    for name, text in texts.items():
      if name in missing:
        continue
      audio = pcm16(load_audio(os.path.join(sounds, name + ".wav"), SAMPLE_RATE).wave)
      yield name, schema.speech_example(audio, SAMPLE_RATE, text, "", "", SPEAKER, name)
