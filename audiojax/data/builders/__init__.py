"""audiojax's TFDS datasets; importing this package registers them with TFDS.

Every dataset is written as ArrayRecord with ``audio`` (int16 mono PCM), ``sample_rate`` and ``id``, plus multi-label
``labels`` (tagging corpora) or ``text``, ``pre_text``, ``rare_words`` and ``speaker`` (speech corpora; both schemas
live in ``schema``), and reads back without TensorFlow through ``tfds.data_source("<name>/<config>", split=...,
data_dir=...)``.
"""
from __future__ import annotations

import os

import tensorflow_datasets as tfds

from audiojax.data.builders import (
  asterisk_en,
  audioset,
  debsfx,
  debspeech,
  espeak_prompt,
  gm_instruments,
  libriheavy,
  librispeech,
)
from audiojax.errors import UserError

BUILDERS = {"gm_instruments": gm_instruments.GmInstruments, "audioset": audioset.Audioset, "debsfx": debsfx.Debsfx,
            "espeak_prompt": espeak_prompt.EspeakPrompt, "asterisk_en": asterisk_en.AsteriskEn,
            "librispeech_asr": librispeech.LibrispeechAsr, "libriheavy": libriheavy.Libriheavy,
            "debspeech": debspeech.Debspeech}


def _available() -> str:
  return ", ".join(f"{name}/{config.name}" for name, cls in BUILDERS.items() for config in cls.BUILDER_CONFIGS)


def build(name: str, data_dir: str | os.PathLike, *,
          manual_dir: str | os.PathLike | None = None) -> tfds.core.DatasetBuilder:
  """Returns the builder of ``name`` ("gm_instruments/demo", "audioset/balanced", ...) in ``data_dir``.

  Prepares the dataset first unless it already is. ``manual_dir`` is the folder of a dataset the user downloads
  (AudioSet); generated datasets take none.
  """
  dataset, _, config = name.partition("/")
  cls = BUILDERS.get(dataset)
  if cls is None or (config and config not in {c.name for c in cls.BUILDER_CONFIGS}):
    raise UserError(f"unknown dataset '{name}'; choose one of {_available()}")
  kwargs = {}
  if manual_dir is not None:
    if cls.MANUAL_DOWNLOAD_INSTRUCTIONS is None:
      raise UserError(f"dataset '{name}' is generated, not downloaded; leave manual_dir unset")
    kwargs["manual_dir"] = manual_dir
  builder = cls(data_dir=os.fspath(data_dir), config=config or None, file_format="array_record", **kwargs)
  builder.download_and_prepare()  # returns at once when the dataset is already prepared
  return builder


def class_names(builder: tfds.core.DatasetBuilder) -> list[str]:
  """The label names of ``builder``'s dataset, in label-index order."""
  return list(builder.info.features["labels"].feature.names)


def export_example(builder: tfds.core.DatasetBuilder, split: str, index: int, out: str | os.PathLike) -> None:
  """Writes example ``index`` of ``split`` as a 16-bit wav at ``out`` and prints its id and true labels (or
  transcript)."""
  import soundfile as sf

  if split not in builder.info.splits:
    raise UserError(f"dataset '{builder.info.full_name}' has no split '{split}'; choose one of "
                    f"{', '.join(builder.info.splits)}")
  source = tfds.data_source(builder.info.full_name.rsplit("/", 1)[0], split=split, data_dir=builder.data_dir_root)
  if os.path.isdir(out):
    raise UserError(f"--out '{out}' is a folder; give the file to write, e.g. {os.path.join(out, 'clip.wav')}")
  if not 0 <= index < len(source):
    raise UserError(f"--index {index} is outside split '{split}' (0..{len(source) - 1})")
  example = source[index]
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  sf.write(os.fspath(out), example["audio"], int(example["sample_rate"]), subtype="PCM_16")

  def text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)

  if "labels" not in builder.info.features:
    print(f"wrote {out}: {split}[{index}] id={text(example['id'])}, transcript: {text(example['text'])}")
    return
  names = class_names(builder)
  print(f"wrote {out}: {split}[{index}] id={text(example['id'])}, true labels: "
        f"{', '.join(names[i] for i in example['labels'])}")
