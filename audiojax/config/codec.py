"""Base config of the codec family: an EnCodec-style codec trained against a multi-scale STFT discriminator."""
from __future__ import annotations

import ml_collections

from audiojax.config import common


def codec() -> ml_collections.ConfigDict:
  """EnCodec's recipe (Défossez et al. 2022, §3.4 and §4): 1-s crops, time L1 (weight 0.1), multi-scale mel
  (1), hinge adversarial (3) and feature matching (3) through the loss balancer, commitment loss (1) on the encoder
  directly, a random bandwidth per batch (quantiser dropout), Adam with β = (0.5, 0.9) at 3e-4 for both groups."""
  c = common.base()
  c.task = "codec"
  c.model.name = "codec"
  c.model.variant = "tiny"
  c.data.name = "debspeech"
  c.data.clip_seconds = 1.0

  c.loss = ml_collections.ConfigDict()
  c.loss.weights = ml_collections.ConfigDict({"time_l1": 0.1, "mel": 1.0, "adversarial": 3.0, "feature": 3.0})
  c.loss.balancer = True  # False: the weights multiply the losses' gradients as they are
  c.loss.balancer_decay = 0.999
  c.loss.adversarial_start = 0  # steps of reconstruction losses alone before the discriminator starts
  c.loss.commitment = 1.0
  c.loss.quantizer_dropout = True  # False: every batch uses all the codebooks
  c.loss.mel_log2_windows = [6, 7, 8, 9, 10]

  c.discriminator = ml_collections.ConfigDict()
  c.discriminator.filters = 32
  c.discriminator.n_ffts = [1024, 2048, 512]

  c.optim = ml_collections.ConfigDict({g: common.optimizer(3e-4) for g in ("generator", "discriminator")})
  for group in ("generator", "discriminator"):
    c.optim[group].b1 = 0.5
    c.optim[group].b2 = 0.9
    c.optim[group].clip_norm = 0.0

  c.eval.clip_seconds = 4.0  # held-out clips are scored on their first seconds
  c.eval.max_examples = 0  # > 0: an evenly spaced subset of the eval split
  return c
