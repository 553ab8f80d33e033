"""Base config of the codec-LM family: VALL-E (X) trained on a codec token store (``python -m audiojax codec
tokens``)."""
from __future__ import annotations

import ml_collections

from audiojax.config import common


def codec_lm() -> ml_collections.ConfigDict:
  """VALL-E's recipe (Wang et al. 2023, §5.1) at its defaults: both decoders trained together on the sum of their
  losses, a random NAR stage per example, AdamW with warmup and cosine decay. The acoustic prompt is another
  utterance of the same speaker (its transcript joins the text), as at inference."""
  c = common.base()
  c.task = "codec_lm"
  c.model.name = "valle"
  c.model.variant = "tiny"
  c.data.name = ""  # the corpus the stores came from (for the record; the stores say it too)
  c.data.train_store = ""  # token store directories (codec tokens)
  c.data.eval_store = ""
  c.data.vocabulary = ""  # a folder holding phonemes.json; "": built from the training store
  c.data.max_positions = 1024  # the longest packed row: prompt + target phonemes and frames, + 1
  c.data.bucket_positions = []  # ascending row lengths (ending at max_positions) compiled once each; []: one
  c.data.prompt_prob = 1.0  # share of training rows with an acoustic prompt (the rest: the utterance alone)

  c.loss = ml_collections.ConfigDict()
  c.loss.ar_weight = 1.0
  c.loss.nar_weight = 1.0

  c.optim = common.optimizer(5e-4)
  c.optim.weight_decay = 0.01
  c.optim.b2 = 0.98
  c.eval.max_examples = 0  # > 0: the first ones of the eval store
  c.eval.batch_size = 16
  return c
