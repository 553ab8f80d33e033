"""``audioset``: the AudioSet clips a user downloaded, read from ``manual_dir``.

``manual_dir`` holds the official CSVs from http://research.google.com/audioset/download.html
(``class_labels_indices.csv``, ``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``,
``eval_segments.csv``) and, anywhere below it, one audio file per clip (any format libsndfile reads) named by its
YouTube id in one of the common ways: ``<ytid>.wav``, ``Y<ytid>.wav`` (PANNs), ``<ytid>_<start>.wav`` or
``<ytid>_<start>_<end>.wav``.

Clips are stored as 16-kHz mono int16, neither padded nor trimmed, except files that hold the whole video: a file
more than ``FULL_VIDEO_SLACK_SECONDS`` longer than its segment is cut to the segment's [start, end].

Clips listed in a CSV but absent (or unreadable) are counted, logged in one line per split and listed, one
``<ytid>\\t<reason>`` per line, in ``missing_<split>.txt`` in the dataset's directory.
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
from typing import Iterator, NamedTuple

import numpy as np
import tensorflow_datasets as tfds

from audiojax.audio.io import duration_seconds, load_audio, pcm16
from audiojax.data.builders import schema
from audiojax.data.builders.manual_dir import ManualDirBuilder
from audiojax.errors import UserError

log = logging.getLogger("audiojax")

SAMPLE_RATE = 16000
DOWNLOAD_URL = "http://research.google.com/audioset/download.html"
CLASS_CSV = "class_labels_indices.csv"
SEGMENT_CSVS = {
    "balanced_train": "balanced_train_segments.csv",
    "unbalanced_train": "unbalanced_train_segments.csv",
    "eval": "eval_segments.csv",
}
AUDIO_EXTENSIONS = frozenset((".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff"))
FULL_VIDEO_SLACK_SECONDS = 0.5
_YTID_LENGTH = 11
_MISSING = "missing"
_SEGMENT_SUFFIX = re.compile(r"_\d+(\.\d+)?([_-]\d+(\.\d+)?)?")  # "_30", "_30.000_40.000", "_30000-40000"


class Segment(NamedTuple):
  """One row of a segments CSV."""

  ytid: str
  start: float
  end: float
  labels: tuple[int, ...]


@dataclasses.dataclass(eq=False)
class AudiosetConfig(tfds.core.BuilderConfig):
  """Which AudioSet splits a variant holds."""

  splits: tuple[str, ...] = ()


def _require_file(manual_dir: str, name: str) -> str:
  path = os.path.join(manual_dir, name)
  if not os.path.isfile(path):
    raise UserError(f"AudioSet file '{path}' is missing; download {name} from {DOWNLOAD_URL} into '{manual_dir}'")
  return path


def read_classes(manual_dir: str) -> list[tuple[str, str]]:
  """``(mid, display_name)`` of every class, in index order, from ``class_labels_indices.csv``."""
  path = _require_file(manual_dir, CLASS_CSV)
  with open(path, newline="", encoding="utf-8") as f:
    reader = csv.DictReader(f)
    if not {"index", "mid", "display_name"} <= set(reader.fieldnames or ()):
      raise UserError(f"'{path}' must have the header 'index,mid,display_name'; re-download it from {DOWNLOAD_URL}")
    rows = list(reader)
  if [row["index"].strip() for row in rows] != [str(i) for i in range(len(rows))]:
    raise UserError(f"'{path}' must list the class indices 0, 1, 2, ... in order; re-download it from {DOWNLOAD_URL}")
  return [(row["mid"], row["display_name"]) for row in rows]


def read_segments(path: str, mid_to_index: dict[str, int]) -> list[Segment]:
  """Rows of an AudioSet segments CSV (``# ...`` comment lines, then ``YTID, start, end, "mid1,mid2"``)."""
  segments = []
  with open(path, newline="", encoding="utf-8") as f:
    for line_number, line in enumerate(f, start=1):
      if line.startswith("#") or not line.strip():
        continue
      row = next(csv.reader([line], skipinitialspace=True))
      try:
        ytid, start, end, mids = row
        labels = tuple(sorted(mid_to_index[mid] for mid in mids.split(",")))
        segments.append(Segment(ytid, float(start), float(end), labels))
      except ValueError:
        raise UserError(f"'{path}' line {line_number} is not 'YTID, start_seconds, end_seconds, \"mid1,mid2\"'; "
                        f"re-download it from {DOWNLOAD_URL}") from None
      except KeyError as e:
        raise UserError(f"'{path}' line {line_number} has label {e.args[0]}, which {CLASS_CSV} does not list; "
                        f"download both files from {DOWNLOAD_URL}") from None
  return segments


def resolve_ytid(stem: str, ytids: set[str]) -> str | None:
  """The YouTube id a file stem names, or None; exact ``<ytid>`` beats ``Y<ytid>`` beats ``<ytid>_<start>...``."""
  names = [stem, stem[1:]] if stem.startswith("Y") else [stem]
  for name in names:
    if name in ytids:
      return name
  for name in names:
    if name[:_YTID_LENGTH] in ytids and _SEGMENT_SUFFIX.fullmatch(name[_YTID_LENGTH:]):
      return name[:_YTID_LENGTH]
  return None


def find_clips(manual_dir: str, ytids: set[str]) -> dict[str, str]:
  """Maps each YouTube id in ``ytids`` that has an audio file anywhere under ``manual_dir`` to that file.

  The walk is sorted, so when several files name one clip the same one is always chosen.
  """
  clips = {}
  for root, dirs, files in os.walk(manual_dir):
    dirs.sort()
    for name in sorted(files):
      stem, ext = os.path.splitext(name)
      if ext.lower() in AUDIO_EXTENSIONS:
        ytid = resolve_ytid(stem, ytids)
        if ytid is not None:
          clips.setdefault(ytid, os.path.join(root, name))
  return clips


def load_segment(path: str, segment: Segment) -> np.ndarray:
  """16-kHz mono int16 audio of ``segment`` from ``path``: the whole file when it is the clip, only [start, end]
  when it holds the whole video (read from there, so an hour-long file costs the memory of its 10 s)."""
  length = segment.end - segment.start
  duration, _ = duration_seconds(path)
  if duration <= length + FULL_VIDEO_SLACK_SECONDS:
    return pcm16(load_audio(path, SAMPLE_RATE).wave)
  if duration <= segment.start:
    raise UserError(f"audio file '{path}' ends before its segment starts at {segment.start:g} s")
  return pcm16(load_audio(path, SAMPLE_RATE, start_seconds=segment.start, seconds=length).wave)


def coverage_summary(what: str, total: int, problems: list[tuple[str, str]], listing: str) -> str:
  """``audioset eval: 18,732 of 22,160 clips found; 3,420 missing, 8 unreadable (listed in <listing>)``."""
  if not problems:
    return f"{what}: all {total:,} clips found"
  missing = sum(1 for _, reason in problems if reason == _MISSING)
  counts = ", ".join(f"{n:,} {kind}" for n, kind in ((missing, "missing"), (len(problems) - missing, "unreadable"))
                     if n)
  return f"{what}: {total - len(problems):,} of {total:,} clips found; {counts} (listed in {listing})"


class Audioset(ManualDirBuilder):
  """AudioSet from a local download (see the module docstring for the expected layout)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [
      AudiosetConfig(name="balanced", description="balanced_train and eval.", splits=("balanced_train", "eval")),
      AudiosetConfig(name="full", description="balanced_train, unbalanced_train and eval.",
                     splits=("balanced_train", "unbalanced_train", "eval")),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f"Download the AudioSet CSVs from {DOWNLOAD_URL} and the clips (e.g. with yt-dlp or a PANNs-style "
      "downloader), and pass the folder holding them as manual_dir.")

  def __init__(self, **kwargs):
    self._problems: dict[str, list[tuple[str, str]]] = {}  # split -> (ytid, reason) of each clip left out
    self._num_segments: dict[str, int] = {}
    super().__init__(**kwargs)

  def _features(self) -> tfds.features.FeaturesDict:
    """Features with the class names from ``manual_dir``, or those of the already prepared dataset."""
    if self._manual_dir is None:
      if (self.data_path / "features.json").exists():
        return tfds.features.FeatureConnector.from_config(os.fspath(self.data_path))
      raise UserError(f"{self.name}/{self.builder_config.name} is not prepared in '{self.data_dir_root}'; pass "
                      f"manual_dir=<folder with the AudioSet CSVs and clips> (download them from {DOWNLOAD_URL})")
    root = self._manual_root(f"put {CLASS_CSV}, the segment CSVs (from {DOWNLOAD_URL}) and the clips there, or fix "
                             "the path")
    names = [name for _, name in read_classes(root)]
    for split in self.builder_config.splits:
      _require_file(root, SEGMENT_CSVS[split])
    return schema.tagging_features(names, extra={"start": tfds.features.Scalar(dtype=np.float32),
                                                 "end": tfds.features.Scalar(dtype=np.float32)})

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(builder=self, description=__doc__, features=self._features(),
                                 homepage=DOWNLOAD_URL)

  def _split_generators(self, dl_manager):
    del dl_manager  # the data is read from self._manual_dir, which _info already checked
    mid_to_index = {mid: i for i, (mid, _) in enumerate(read_classes(self._manual_dir))}
    segments = {split: read_segments(os.path.join(self._manual_dir, SEGMENT_CSVS[split]), mid_to_index)
                for split in self.builder_config.splits}
    clips = find_clips(self._manual_dir, {s.ytid for rows in segments.values() for s in rows})
    for split, rows in segments.items():
      if not any(s.ytid in clips for s in rows):  # TFDS cannot write an empty split
        raise UserError(f"{SEGMENT_CSVS[split]} lists {len(rows):,} clips but none of them is under "
                        f"'{self._manual_dir}'; download them (named <ytid>.wav, Y<ytid>.wav or "
                        f"<ytid>_<start>_<end>.wav; flac/ogg/mp3 work too) or choose a config without {split}")
    return {split: self._generate_examples(split, rows, clips) for split, rows in segments.items()}

  def _generate_examples(self, split: str, segments: list[Segment], clips: dict[str, str]) -> Iterator:
    problems = self._problems.setdefault(split, [])
    self._num_segments[split] = len(segments)
    for segment in segments:
      path = clips.get(segment.ytid)
      if path is None:
        problems.append((segment.ytid, _MISSING))
        continue
      try:
        audio = load_segment(path, segment)
      except UserError as e:
        problems.append((segment.ytid, f"unreadable: {e}"))
        continue
      yield f"{segment.ytid}_{segment.start:.3f}", {
          "audio": audio, "sample_rate": SAMPLE_RATE, "labels": list(segment.labels), "id": segment.ytid,
          "start": segment.start, "end": segment.end}
    if len(problems) == len(segments):
      raise UserError(f"no {split} clip under '{self._manual_dir}' could be read, e.g. {problems[0][0]}: "
                      f"{problems[0][1]}")

  def _post_download_and_prepare_hook(self) -> None:
    """Writes ``missing_<split>.txt`` and logs the per-split summary (data_dir is final only here)."""
    for split, problems in self._problems.items():
      path = os.path.join(self.data_dir, f"missing_{split}.txt")
      with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{ytid}\t{reason}\n" for ytid, reason in problems)
      log.log(logging.WARNING if problems else logging.INFO, "%s",
              coverage_summary(f"{self.name} {split}", self._num_segments[split], problems, path))

