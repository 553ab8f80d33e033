"""``debsfx``: real recorded sound events from Debian game and music packages, labelled by a hand-checked manifest.

``debsfx_manifest.csv`` (``package,path,label``) lists 1,166 clips of 19 classes, single-label, each at most 10 s:

- drum hits (one sample of an acoustic or electronic kit): ``kick``, ``snare`` (rimshots included), ``hi_hat``
  (closed, open, pedal), ``tom``, ``cymbal`` (crash, ride, china, splash), ``clap`` (hand claps, not finger snaps);
- ``explosion`` (blasts, not launches), ``gunshot`` (rifle, pistol, shotgun, machine gun; not cannons or lasers),
  ``fire`` (burning and crackling, not fireball whooshes), ``water`` (splashes, drops, streams, waterfalls),
  ``footsteps``, ``bird`` (calls), ``animal`` (calls of mammals and frogs), ``human_pain`` (pain cries, grunts and
  death screams without words), ``door`` (doors and gates opening or closing), ``engine`` (motors, jets,
  helicopters; no sirens), ``sword`` (blade clashes and hits), ``bow`` (bow or crossbow release, arrow flight),
  ``chopping`` (an axe on wood).

Every candidate was checked by its file name and folder, its package's metadata (Hydrogen ``drumkit.xml``
instrument names and authors), its duration, level, speech content and spectrogram. Rejected, for example:
cowbells, waterglasses and finger snaps (drum-kit instruments that are not the class their name suggests), the
Audiophob "Kick" (its file is a tom) and "Pedal HH" (a shaker), sirens filed as vehicles, fireball and flamethrower
whooshes filed as fire, voice lines ("Fire!" in warmux), monster voices, wading steps (footsteps or water?),
silent files, loops and ambiences longer than 10 s, and every recording found twice (exact or resampled copies;
freeciv-data is left out because its sounds are Warzone 2100's). At most 40 clips come from one package per class.

``train`` and ``test`` hold whole packages (``SPLIT``), so no recording chain is shared between them. Packages that
share one stay together: hydrogen-data and hydrogen-drumkits contain kits by the same authors (GMRockKit is The
Black Pearl), so both are ``train`` and the drum test clips come from lmms-common and sonic-pi-samples. Every
class has clips of at least two packages and appears in both splits.

The packages are Debian 12 (bookworm)'s: 3.7 GB of .debs, 6.4 GB unpacked (0ad-data alone is 1.4 GB; its sounds
sit in ``public.zip``, read in place like the ``.pk3`` and ``.wz`` archives of openarena-data, nexuiz-data and
warzone2100-data). ``manual_dir`` is a folder with one subfolder per package, as ``dpkg-deb -x <deb> <dir>/<package>``
makes; without it the builder runs ``apt-get download`` and ``dpkg-deb -x`` itself into ``~/.cache/audiojax``.
Clips listed but absent or unreadable are counted and logged; a class left without clips in a split is an error.
Audio is stored as 16-kHz mono int16. The audio is not in this repository; its licences:

=========================  =====  =====================================================================
package                    split  licence of the sounds
=========================  =====  =====================================================================
0ad-data                   train  CC-BY-SA-3.0 (Wildfire Games)
hedgewars-data             train  GFDL-1.3
hydrogen-data              train  GPL (GMRockKit, TR808EmulationKit)
hydrogen-drumkits          train  per kit: GPL-2(+), CC0 (Audiophob), CC-BY-3.0, CC-BY-SA-3.0
lincity-ng-data            train  GPL-2+
megaglest-data             train  CC-BY-SA-3.0
openarena-data             train  GPL-2+
scorched3d-data            train  GPL-2+ (apoc mod: CC-BY-SA-3.0)
tuxpaint-stamps-default    train  GPL-2
warmux-data                train  GPL-2+
freedink-data              test   zlib
freedroidrpg-data          test   GPL-2+
lmms-common                test   GPL-2+
minetest-data              test   CC-BY-SA-3.0
nexuiz-data                test   GPL-2+
sonic-pi-samples           test   CC0 (a few CC-BY-SA-4.0)
supertux-data              test   GPL-2+ / GPL-3+ / CC-BY-SA mix
warzone2100-data           test   GPL-2+
wesnoth-1.16-data          test   GPL-2+
widelands-data             test   GPL-2+
=========================  =====  =====================================================================
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import io
import logging
import os
import re
import zipfile
from typing import Iterator, Mapping, NamedTuple

import numpy as np
import soundfile as sf
import tensorflow_datasets as tfds

from audiojax.audio.io import load_audio, pcm16, resample, to_mono
from audiojax.data.builders import schema
from audiojax.data.builders.manual_dir import ManualDirBuilder
from audiojax.data.sources import apt
from audiojax.errors import UserError

log = logging.getLogger("audiojax")

SAMPLE_RATE = 16000
MANIFEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "debsfx_manifest.csv")
CLASSES = ("kick", "snare", "hi_hat", "tom", "cymbal", "clap", "explosion", "gunshot", "fire", "water", "footsteps",
           "bird", "animal", "human_pain", "door", "engine", "sword", "bow", "chopping")
SPLITS = ("train", "test")
SPLIT = {
    "0ad-data": "train", "hedgewars-data": "train", "hydrogen-data": "train", "hydrogen-drumkits": "train",
    "lincity-ng-data": "train", "megaglest-data": "train", "openarena-data": "train", "scorched3d-data": "train",
    "tuxpaint-stamps-default": "train", "warmux-data": "train",
    "freedink-data": "test", "freedroidrpg-data": "test", "lmms-common": "test", "minetest-data": "test",
    "nexuiz-data": "test", "sonic-pi-samples": "test", "supertux-data": "test", "warzone2100-data": "test",
    "wesnoth-1.16-data": "test", "widelands-data": "test",
}
_ARCHIVE = re.compile(r"\.(zip|pk3|wz)/")  # "a/b.pk3/sound/x.wav" is member "sound/x.wav" of archive "a/b.pk3"
_MISSING = "missing"


class Clip(NamedTuple):
  """One manifest row: ``path`` inside the unpacked ``package``."""

  package: str
  path: str
  label: str

  @property
  def id(self) -> str:
    return f"{self.package}/{self.path}"


@dataclasses.dataclass(eq=False)
class DebsfxConfig(tfds.core.BuilderConfig):
  """The manifest and the package split of one ``debsfx`` variant (tests point them at a tiny fake corpus)."""

  manifest: str = MANIFEST
  split: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(SPLIT))


def read_manifest(path: str, split: Mapping[str, str]) -> list[Clip]:
  """The rows of a ``package,path,label`` manifest, checked against ``CLASSES`` and the package ``split`` table."""
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    if reader.fieldnames != ["package", "path", "label"]:
      raise UserError(f"'{path}' must start with the header 'package,path,label'; fix the manifest")
    clips, seen = [], set()
    for line, row in enumerate(reader, start=2):
      clip = Clip(row["package"], row["path"], row["label"])
      if clip.label not in CLASSES:
        raise UserError(f"'{path}' line {line}: unknown label '{clip.label}'; use one of {', '.join(CLASSES)}")
      if split.get(clip.package) not in SPLITS:
        raise UserError(f"'{path}' line {line}: package '{clip.package}' has no train/test entry in the split "
                        "table; add it to debsfx.SPLIT")
      if (clip.package, clip.path) in seen:
        raise UserError(f"'{path}' line {line}: {clip.id} is listed twice; keep one row")
      seen.add((clip.package, clip.path))
      clips.append(clip)
  return clips


def _read_member(archive: zipfile.ZipFile, member: str, where: str) -> np.ndarray:
  """16-kHz mono float audio of ``member`` of an open zip ``archive``; UserError if it is not audio."""
  try:
    wave, rate = sf.read(io.BytesIO(archive.read(member)), dtype="float32", always_2d=False)
  except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, zipfile.BadZipFile) as e:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise UserError(f"cannot read audio '{member}' in '{where}' ({reason})") from None
  wave = to_mono(np.asarray(wave, np.float32))
  if wave.size == 0:
    raise UserError(f"audio '{member}' in '{where}' is empty")
  return resample(wave, int(rate), SAMPLE_RATE)


def load_clip(package_dir: str, path: str, archives: dict[str, zipfile.ZipFile]) -> np.ndarray:
  """16-kHz mono int16 audio of manifest ``path`` under ``package_dir``.

  A path through a ``.zip``, ``.pk3`` or ``.wz`` archive names a member of it; ``archives`` keeps those open.
  Raises FileNotFoundError if the file or member is absent and UserError if it is not readable audio.
  """
  match = _ARCHIVE.search(path)
  if match is None:
    file = os.path.join(package_dir, path)
    if not os.path.isfile(file):
      raise FileNotFoundError(file)
    return pcm16(load_audio(file, SAMPLE_RATE).wave)
  file, member = os.path.join(package_dir, path[:match.end() - 1]), path[match.end():]
  if file not in archives:
    if not os.path.isfile(file):
      raise FileNotFoundError(file)
    try:
      archives[file] = zipfile.ZipFile(file)
    except zipfile.BadZipFile:
      raise UserError(f"'{file}' is not a zip archive; unpack its package again") from None
  try:
    archives[file].getinfo(member)
  except KeyError:
    raise FileNotFoundError(f"{file}/{member}") from None
  return pcm16(_read_member(archives[file], member, file))


def coverage_summary(what: str, total: int, problems: list[tuple[Clip, str]]) -> str:
  """``debsfx test: 337 of 339 clips read; 1 missing, 1 unreadable (first: <id>: <reason>)``."""
  if not problems:
    return f"{what}: all {total:,} clips read"
  missing = sum(1 for _, reason in problems if reason == _MISSING)
  counts = ", ".join(f"{n:,} {kind}" for n, kind in ((missing, "missing"), (len(problems) - missing, "unreadable"))
                     if n)
  clip, reason = problems[0]
  return f"{what}: {total - len(problems):,} of {total:,} clips read; {counts} (first: {clip.id}: {reason})"


class Debsfx(ManualDirBuilder):
  """Debian sound-event corpus (see the module docstring for the classes, the split and the licences)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: 1,166 clips, 19 classes, Debian 12 packages."}
  BUILDER_CONFIGS = [DebsfxConfig(name="bookworm", description="Debian 12 packages; train and test by package.")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Optional. Unpack the packages of debsfx.SPLIT yourself, one folder each: apt-get download <packages>, then "
      "dpkg-deb -x <package>_*.deb <dir>/<package>, and pass <dir> as manual_dir. Without manual_dir the builder "
      "does this into ~/.cache/audiojax.")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=schema.tagging_features(CLASSES, extra={"package": tfds.features.Text()}),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the packages come from apt, see _package_root
    config = self.builder_config
    clips = read_manifest(config.manifest, config.split)
    by_split = {split: [c for c in clips if config.split[c.package] == split] for split in SPLITS}
    for split, rows in by_split.items():
      if not rows:  # TFDS cannot write an empty split
        raise UserError(f"'{config.manifest}' lists no clip of a {split} package; assign packages to both splits")
    root = self._package_root(sorted({c.package for c in clips}))
    return {split: self._generate_examples(split, rows, root) for split, rows in by_split.items()}

  def _generate_examples(self, split: str, clips: list[Clip], root: str) -> Iterator:
    problems: list[tuple[Clip, str]] = []
    found = collections.Counter()
    archives: dict[str, zipfile.ZipFile] = {}
    try:
      for clip in clips:
        try:
          audio = load_clip(os.path.join(root, clip.package), clip.path, archives)
        except FileNotFoundError:
          problems.append((clip, _MISSING))
          continue
        except UserError as e:
          problems.append((clip, f"unreadable: {e}"))
          continue
        found[clip.label] += 1
        yield clip.id, {"audio": audio, "sample_rate": SAMPLE_RATE, "labels": [clip.label], "id": clip.id,
                        "package": clip.package}
    finally:
      for archive in archives.values():
        archive.close()
    log.log(logging.WARNING if problems else logging.INFO, "%s",
            coverage_summary(f"{self.name} {split}", len(clips), problems))
    empty = sorted({c.label for c in clips} - set(found))
    if empty:
      raise UserError(f"{self.name} {split}: no readable clip of class {', '.join(empty)} under '{root}'; unpack "
                      f"its packages there ({apt.manual_command(sorted({c.package for c in clips}), root)})")
