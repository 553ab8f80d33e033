"""The feature schemas the datasets share: multi-label tagging and speech (ASR)."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import tensorflow_datasets as tfds


def _audio_features() -> dict[str, tfds.features.FeatureConnector]:
  """The ``audio`` (int16 ``(L,)``) and ``sample_rate`` features every dataset starts with."""
  return {
      # raw bytes: far faster to write and read than the default int64 list; decodes to the same int16 array
      "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES),
      "sample_rate": tfds.features.Scalar(dtype=np.int32),
  }


def tagging_features(class_names: Sequence[str], *,
                     extra: Mapping[str, tfds.features.FeatureConnector] | None = None) -> tfds.features.FeaturesDict:
  """The features of a tagging dataset: ``audio`` (int16 ``(L,)``), ``sample_rate``, ``labels`` (indices into
  ``class_names``, ``(num_labels,)``) and ``id``, then the dataset's ``extra`` features."""
  return tfds.features.FeaturesDict({
      **_audio_features(),
      "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=class_names)),
      "id": tfds.features.Text(),
      **(extra or {}),
  })


def speech_features(*, extra: Mapping[str, tfds.features.FeatureConnector] | None = None
                    ) -> tfds.features.FeaturesDict:
  """The features of every speech dataset: ``audio`` (int16 ``(L,)``), ``sample_rate``, ``text``, ``pre_text`` (the
  preceding text, "" if none), ``rare_words`` (space-separated, "" if none), ``speaker`` and ``id``, then the
  dataset's ``extra`` features."""
  return tfds.features.FeaturesDict({
      **_audio_features(),
      "text": tfds.features.Text(),
      "pre_text": tfds.features.Text(),
      "rare_words": tfds.features.Text(),
      "speaker": tfds.features.Text(),
      "id": tfds.features.Text(),
      **(extra or {}),
  })


def speech_example(audio: np.ndarray, sample_rate: int, text: str, pre_text: str, rare_words: str, speaker: str,
                   ident: str) -> dict:
  """One example of :func:`speech_features` (``audio`` int16 ``(L,)`` at ``sample_rate``)."""
  return {"audio": audio, "sample_rate": sample_rate, "text": text, "pre_text": pre_text, "rare_words": rare_words,
          "speaker": speaker, "id": ident}
