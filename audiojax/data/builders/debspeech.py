"""``debspeech``: real recorded multi-speaker speech from Debian packages, with speakers held out by split.

For the codec and the codec-LM TTS: ``debspeech_manifest.csv`` (``package,path,speaker,language,text``) lists
12,738 clips, 5.88 h of speech in 30 language codes, stored as 16-kHz mono int16 (the rate of the codec's CPU
variants; every source is 16 kHz or more: 22.05–128 kHz, LibriVox 16 kHz), each at most 10 s:

=======================  =====  ===============  =========  ========================  =============================
package                  split  clips (minutes)  voices     text                      licence of the recordings
=======================  =====  ===============  =========  ========================  =============================
tuxpaint-stamps-default  both   5,490 (128.1)    19         stamp description (.txt)  GPL-2
fillets-ng-data-cs       train  1,751 (94.9)     35 roles   Czech dialogStr (.lua)    GPL-2
fillets-ng-data-nl       train  1,605 (75.0)     2 roles    Dutch dialogStr (.lua)    GPL-2
klettres-data            both   1,388 (25.8)     20         letter or syllable        GPL-2+
ktuberling-data          both   1,307 (21.3)     12         none                      GPL-2+
gcin-voice               train  1,187 (7.8)      1          Zhuyin syllable + tone    GPL-3 or LGPL-3
pocketsphinx-testdata    test   10 (0.6)         2          transcription files       BSD-2 (LibriVox: PD)
=======================  =====  ===============  =========  ========================  =============================

``train``: 11,300 clips, 5.36 h, 80 speakers, 27 languages; ``test``: 1,438 clips, 0.52 h (31 min), 11 speakers,
languages da, el, lt and en. **No test speaker is heard in training.** Tux Paint, KLettres and KTuberling were
voiced by volunteers per language, often a project's translators (Tux Paint's changelog credits its Danish
recordings to its Danish translator), who may have recorded for the others too, so their clips go to the split of
their language (``BY_LANGUAGE``): Danish, Greek and Lithuanian (``TEST_LANGUAGES``) are test, every other language
train. Test languages are therefore unheard in training except English, whose test voices (a LibriVox reader and
the "cards" recordings of pocketsphinx's test data) come from no other package here. Fish Fillets' Czech and Dutch
casts and gcin's speaker are train.

``speaker`` is ``<package>/<voice>``: the language folder (``tuxpaint-stamps-default/ro``, ``klettres-data/en_GB``;
letter and number stamps are ``<lang>-symbols``, since Tux Paint credits several of them to other recorders), the
Fish Fillets character (``small-fish``, ``big-fish``, ``parrot``; a colour-font role is ``<level>-<colour>``),
``gcin-voice/edward-liu``, ``pocketsphinx-testdata/librivox`` or ``/cards``. Each voice is one person as far as
the package says; roles of one cast may share an actor. ``language`` and ``package`` are extra features; ``id`` is
``<package>/<path>``; ``pre_text`` and ``rare_words`` are empty.

``text`` (10,894 clips) is what the package pairs with the recording, not a checked transcript: Tux Paint's
current description in that language (recordings often read an older or shorter one; 480 texts whose length does not
fit the recording, more than 2.2x faster or slower in characters per second than the language's median, are left
empty), Fish Fillets' subtitle of that line, KLettres' upper-case letter or syllable, gcin's Zhuyin syllable with
its tone digit (``ㄅㄚ4``), pocketsphinx's lower-case transcript. KTuberling names its clips in English only, so they
have no text.

Audio: mono mix, soxr resampling to 16 kHz, leading and trailing silence trimmed (10-ms frames 40 dB below the
loudest one or under -60 dBFS; 0.1 s kept). Clips longer than 10 s after trimming (58: 35 Fish Fillets lines, 23
stamp descriptions) are left out, not cut, because their text cannot be split; the builder skips and counts any
that the manifest still lists. Clips listed but absent or unreadable are counted and logged; a split without any
readable clip is an error.

How the manifest was checked: every candidate of the packages' speech folders (16,495) was decoded and measured:
source rate, level, clipping, edge-trimmed duration, silero-VAD speech probability, f0 and sustained-pitch runs (sung
notes), a hash of the decoded 16-kHz PCM and log-spectrogram correlation between clips of one language. Left out:
960 exact and 12 near copies (Tux Paint's letters are filed four times; 10 clips are one recording under two
different texts, both dropped), 1,301 clipped clips (more than 1 % of samples at full scale: all of Tux Paint's
Spanish and most of KLettres' Malayalam), 73 without speech by the VAD, 27 unreadable or mis-scaled (KLettres
Setswana), 15 below 16 kHz (8-kHz Tux Paint clips), 25 under 0.2 s, 73 Fish Fillets clips of no single speaker or
without a subtitle, 45 KTuberling Serbian copies, and gcin-voice's second voice (``5.ogg``, 1,158 clips): its
four tones of a syllable differ in length by 13 ms on average against 61 ms for the real speaker, tones made from
one take by a singing-voice bank. The sustained-pitch check flagged 34 Fish Fillets lines, drawled dialogue by their
subtitles; nothing sung was found. Packages looked at and not used: hedgewars-data (pitch-raised voice packs: f0
medians 230-410 Hz, 280 Hz for the Mobster and Pirate men; a Robot and a Singer pack), fillets-ng-data (its ``en``
sounds are effects and songs), megaglest-data (mostly grunts and battle cries; unit voices without speaker credits),
warmux-data (cries), freedroidrpg-data (robot voices), scratch (singing, laughs), warzone2100-data (11-kHz voice
lines), the asterisk prompts (8 kHz; the 16-kHz ``-g722`` packages need a G.722 decoder), espeak-ng, flite and
festvox (synthetic), and lincity-ng, wesnoth, lugaru, tuxtype, pysiogame, ri-li, blinken, kanagram, khangman,
sound-icons and gcompris-qt-data (no speech).

The packages are Debian 12 (bookworm)'s: 328 MB of .debs, 464 MB unpacked. Fish Fillets' subtitles come from
fillets-ng-data (71 MB) and are copied into the manifest, so the build does not need that package.
``manual_dir`` is a folder with one subfolder per package, as ``dpkg-deb -x <deb> <dir>/<package>`` makes; without
it the builder runs ``apt-get download`` and ``dpkg-deb -x`` itself into ``~/.cache/audiojax``. The build takes about
2 minutes on 2 cores and writes 573 MB. The ``tiny`` config (gcin-voice and pocketsphinx-testdata, a 10-MB
download) is for smoke tests. No audio is in this repository; the manifest quotes the packages' subtitles and
descriptions (GPL-2) as transcripts.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import logging
import os
import re
from typing import Iterator, Mapping, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from audiojax.audio.io import load_audio, pcm16
from audiojax.data.builders import schema
from audiojax.data.builders.manual_dir import ManualDirBuilder
from audiojax.data.sources import apt
from audiojax.errors import UserError

log = logging.getLogger("audiojax")

SAMPLE_RATE = 16000
MAX_SECONDS = 10.0
MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "debspeech_manifest.csv")
HEADER = ["package", "path", "speaker", "language", "text"]
SPLITS = ("train", "test")
BY_LANGUAGE = "by_language"  # a package whose clips go to the split of their language (see split_of)
SPLIT = {
    "fillets-ng-data-cs": "train", "fillets-ng-data-nl": "train", "gcin-voice": "train",
    "klettres-data": BY_LANGUAGE, "ktuberling-data": BY_LANGUAGE, "tuxpaint-stamps-default": BY_LANGUAGE,
    "pocketsphinx-testdata": "test",
}
TEST_LANGUAGES = ("da", "el", "lt")
_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?(@[a-z]+)?")  # cs, en_GB, sr@latin
_MISSING, _TOO_LONG = "missing", "too long"
# Edge trimming: 10-ms frames quieter than the loudest by more than _TRIM_DB (or below _FLOOR_DB dBFS) are silence;
# _MARGIN_S of it is kept on each side of the sound.
_TRIM_DB, _FLOOR_DB, _MARGIN_S = 40.0, -60.0, 0.1


class Clip(NamedTuple):
  """One manifest row: ``path`` inside the unpacked ``package``, its speaker, language and transcript ("" if none)."""

  package: str
  path: str
  speaker: str
  language: str
  text: str

  @property
  def id(self) -> str:
    return f"{self.package}/{self.path}"


@dataclasses.dataclass(eq=False)
class DebspeechConfig(tfds.core.BuilderConfig):
  """The manifest, the split tables and the packages of one ``debspeech`` variant (tests point them at a fake one).

  ``packages`` empty: every package of the manifest.
  """

  manifest: str = MANIFEST
  split: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(SPLIT))
  test_languages: tuple[str, ...] = TEST_LANGUAGES
  packages: tuple[str, ...] = ()


def base_language(language: str) -> str:
  """``en_GB`` → ``en``, ``sr@latin`` → ``sr``."""
  return re.split(r"[_@]", language, maxsplit=1)[0]


def split_of(clip: Clip, split: Mapping[str, str], test_languages: tuple[str, ...]) -> str:
  """``train`` or ``test``: the package's entry in ``split``, or for a ``BY_LANGUAGE`` package the split of the
  clip's language (``test`` for ``test_languages``)."""
  where = split[clip.package]
  if where == BY_LANGUAGE:
    return "test" if base_language(clip.language) in test_languages else "train"
  return where


def read_manifest(path: str, split: Mapping[str, str]) -> list[Clip]:
  """The rows of a ``package,path,speaker,language,text`` manifest, checked against the package ``split`` table."""
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    if reader.fieldnames != HEADER:
      raise UserError(f"'{path}' must start with the header '{','.join(HEADER)}'; fix the manifest")
    clips, seen = [], set()
    for line, row in enumerate(reader, start=2):
      if None in row or None in row.values():
        raise UserError(f"'{path}' line {line} does not have the {len(HEADER)} fields {','.join(HEADER)}; quote "
                        "fields holding commas")
      clip = Clip(*(row[key] for key in HEADER))
      if clip.package not in split or split[clip.package] not in (*SPLITS, BY_LANGUAGE):
        raise UserError(f"'{path}' line {line}: package '{clip.package}' has no entry in the split table; add it "
                        "to debspeech.SPLIT")
      if not clip.speaker:
        raise UserError(f"'{path}' line {line}: {clip.id} has no speaker; name the voice (package/voice folder)")
      if not _LANGUAGE.fullmatch(clip.language):
        raise UserError(f"'{path}' line {line}: language '{clip.language}' of {clip.id} is not a code like cs, "
                        "en_GB or sr@latin; fix it")
      if (clip.package, clip.path) in seen:
        raise UserError(f"'{path}' line {line}: {clip.id} is listed twice; keep one row")
      seen.add((clip.package, clip.path))
      clips.append(clip)
  return clips


def trim_silence(wave: np.ndarray, sample_rate: int) -> np.ndarray:
  """``wave`` without its leading and trailing silence (10-ms frames more than 40 dB below the loudest one, or
  below -60 dBFS), keeping 0.1 s of it on each side; unchanged when it has no such edges."""
  frame = sample_rate // 100
  count = wave.shape[0] // frame
  if count == 0:
    return wave
  power = np.mean(np.square(wave[:count * frame].reshape(count, frame), dtype=np.float64), axis=1)
  level = 10 * np.log10(power + 1e-12)
  loud = np.flatnonzero(level > max(level.max() - _TRIM_DB, _FLOOR_DB))
  if loud.size == 0:
    return wave
  margin = int(_MARGIN_S * sample_rate)
  return wave[max(0, loud[0] * frame - margin):min(wave.shape[0], (loud[-1] + 1) * frame + margin)]


def load_clip(package_dir: str, path: str) -> np.ndarray:
  """16-kHz mono int16 audio of manifest ``path`` under ``package_dir``, its silent edges trimmed.

  Raises FileNotFoundError if the file is absent and UserError if it is not readable audio.
  """
  file = os.path.join(package_dir, path)
  if not os.path.isfile(file):
    raise FileNotFoundError(file)
  return pcm16(trim_silence(load_audio(file, SAMPLE_RATE).wave, SAMPLE_RATE))


def coverage_summary(what: str, total: int, problems: list[tuple[Clip, str]]) -> str:
  """``debspeech test: 337 of 340 clips read; 1 missing, 1 unreadable, 1 too long (first: <id>: <reason>)``."""
  if not problems:
    return f"{what}: all {total:,} clips read"
  kinds = collections.Counter(reason if reason in (_MISSING, _TOO_LONG) else "unreadable" for _, reason in problems)
  counts = ", ".join(f"{kinds[kind]:,} {kind}" for kind in (_MISSING, "unreadable", _TOO_LONG) if kinds[kind])
  clip, reason = problems[0]
  return f"{what}: {total - len(problems):,} of {total:,} clips read; {counts} (first: {clip.id}: {reason})"


class Debspeech(ManualDirBuilder):
  """Debian multi-speaker speech (see the module docstring for the sources, the split and the licences)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: Debian 12 packages, speakers held out by language group."}
  BUILDER_CONFIGS = [
      DebspeechConfig(name="full", description="Every manifest clip; train and test hold disjoint speakers."),
      DebspeechConfig(name="tiny", description="gcin-voice (train) and pocketsphinx-testdata (test): a 10-MB "
                      "download for smoke tests.", packages=("gcin-voice", "pocketsphinx-testdata")),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Optional. Unpack the packages of debspeech.SPLIT yourself, one folder each: apt-get download <packages>, "
      "then dpkg-deb -x <package>_*.deb <dir>/<package>, and pass <dir> as manual_dir. Without manual_dir the "
      "builder does this into ~/.cache/audiojax.")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=schema.speech_features(extra={"language": tfds.features.Text(), "package": tfds.features.Text()}),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the packages come from apt, see _package_root
    config = self.builder_config
    clips = read_manifest(config.manifest, config.split)
    if config.packages:
      unknown = sorted(set(config.packages) - {c.package for c in clips})
      if unknown:
        raise UserError(f"debspeech config '{config.name}' names package(s) {', '.join(unknown)} that "
                        f"'{config.manifest}' does not list; fix DebspeechConfig.packages")
      clips = [c for c in clips if c.package in config.packages]
    by_split = {split: [c for c in clips if split_of(c, config.split, config.test_languages) == split]
                for split in SPLITS}
    for split, rows in by_split.items():
      if not rows:  # TFDS cannot write an empty split
        raise UserError(f"'{config.manifest}' gives no clip to the {split} split; assign packages or languages to "
                        "both splits")
    packages = sorted({c.package for c in clips})
    root = self._package_root(packages)
    absent = [p for p in packages if not os.path.isdir(os.path.join(root, p))]
    if absent:
      raise UserError(f"debspeech: no unpacked package folder {', '.join(absent)} under '{root}'; unpack it there "
                      f"({apt.manual_command(absent, root)})")
    return {split: self._generate_examples(split, rows, root) for split, rows in by_split.items()}

  def _generate_examples(self, split: str, clips: list[Clip], root: str) -> Iterator:
    problems: list[tuple[Clip, str]] = []
    for clip in clips:
      try:
        audio = load_clip(os.path.join(root, clip.package), clip.path)
      except FileNotFoundError:
        problems.append((clip, _MISSING))
        continue
      except UserError as e:
        problems.append((clip, f"unreadable: {e}"))
        continue
      if audio.shape[0] > MAX_SECONDS * SAMPLE_RATE:
        problems.append((clip, _TOO_LONG))
        continue
      example = schema.speech_example(audio, SAMPLE_RATE, clip.text, "", "", clip.speaker, clip.id)
      yield clip.id, {**example, "language": clip.language, "package": clip.package}
    log.log(logging.WARNING if problems else logging.INFO, "%s",
            coverage_summary(f"{self.name} {split}", len(clips), problems))
    if len(problems) == len(clips):
      raise UserError(f"{self.name} {split}: none of its {len(clips):,} clips could be read under '{root}'; unpack "
                      f"its packages there again ({apt.manual_command(sorted({c.package for c in clips}), root)})")
