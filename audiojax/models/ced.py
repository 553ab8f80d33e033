"""CED: the ViT audio-tagging encoder of "CED: Consistent Ensemble Distillation for Audio Tagging" (ICASSP 2024).

Matches the original implementation (RicherMans/CED ``models/audiotransformer.py``):
16 kHz wave → 64-bin HTK log-mel (dB, top_db 120) → per-mel-bin BatchNorm → 16×16 stride-16 patches over
(64 mel × T) giving 4 frequency × t time patches in frequency-major token order → learned additive time (63) and
frequency (4) position embeddings (no cls token) → 12 pre-LN ViT blocks → LayerNorm → head
(mean over tokens → LayerNorm(eps 1e-5) → Linear).

Inputs longer than 1012 frames (10.12 s) are split into 1012-frame chunks of the normalised mel, the last one
zero-padded, and the per-chunk sigmoid probabilities are averaged. Deviation from the original: when the frame count is
an exact multiple of 1012 the original drops the last full chunk; here every frame is used.
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax.audio import features
from audiojax.errors import UserError
from audiojax.models import check_fields, count_params  # noqa: F401 (count_params: part of the model API)
from audiojax.nn.transformer import EncoderBlock, layer_norm

SAMPLE_RATE = 16000
MEL = features.CED_MEL
PATCH = 16
FREQ_PATCHES = MEL.n_mels // PATCH  # 4
CHUNK_FRAMES = 1012  # 10.12 s: the longest input one forward pass sees
TIME_PATCHES = (CHUNK_FRAMES - PATCH) // PATCH + 1  # 63
MIN_SAMPLES = (PATCH - 1) * MEL.hop_length  # 2400 samples = 150 ms → 16 frames, one patch
MIN_SECONDS = MIN_SAMPLES / SAMPLE_RATE

VARIANTS = {
    "tiny": dict(embed_dim=192, num_heads=3),
    "mini": dict(embed_dim=256, num_heads=4),
    "small": dict(embed_dim=384, num_heads=6),
    "base": dict(embed_dim=768, num_heads=12),
}


class CED(nn.Module):
  """CED encoder + tagging head. Call with ``wave (B, L)`` float32 at 16 kHz, L ≥ 2400.

  Returns a dict:
    ``logits (B, C)``: clip logits (for chunked inputs, the logit of the mean chunk probability);
    ``probs (B, C)``: sigmoid probabilities (mean over chunks);
    ``frame_logits (B, t, C)``: per-time-patch (160 ms) logits, frequency-averaged tokens through the head;
    ``tokens (B, n·4·t, D)``: final-norm token embeddings, frequency-major within each chunk;
    ``embedding (B, D)``: mean token embedding (mean over chunks) — the HEAR scene embedding;
    ``frame_embeddings (B, t, D)``: frequency-averaged tokens per 160 ms time patch (see :func:`patch_centers_ms`).
  """

  embed_dim: int
  num_heads: int
  depth: int = 12
  mlp_ratio: int = 4
  num_classes: int = 527
  chunk_frames: int = CHUNK_FRAMES
  bn_momentum: float = 0.99  # running-stat decay of the mel BatchNorm (PyTorch momentum 0.01, as the original)
  attention_impl: str = "auto"
  dtype: Any = jnp.float32

  def setup(self):
    d = self.embed_dim
    self.init_bn = nn.BatchNorm(momentum=self.bn_momentum, epsilon=1e-5, name="init_bn",
                                scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("mels",)),
                                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mels",)))
    self.patch_embed = nn.Conv(d, (PATCH, PATCH), strides=(PATCH, PATCH), padding="VALID", dtype=self.dtype,
                               kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(),
                                                                        (None, None, None, "embed")),
                               bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))
    pos_init = nn.initializers.normal(0.02)
    self.time_pos_embed = self.param("time_pos_embed", nn.with_logical_partitioning(pos_init, (None, "embed")),
                                     (TIME_PATCHES, d))
    self.freq_pos_embed = self.param("freq_pos_embed", nn.with_logical_partitioning(pos_init, (None, "embed")),
                                     (FREQ_PATCHES, d))
    self.blocks = [EncoderBlock(self.num_heads, d // self.num_heads, self.mlp_ratio * d, norm_eps=1e-6,
                                attention_impl=self.attention_impl, dtype=self.dtype, name=f"blocks_{i}")
                   for i in range(self.depth)]
    self.norm = layer_norm(1e-6, self.dtype, "norm")
    self.head_norm = layer_norm(1e-5, jnp.float32, "head_norm")
    self.head = nn.Dense(self.num_classes, name="head",
                         kernel_init=nn.with_logical_partitioning(nn.initializers.truncated_normal(0.02),
                                                                  ("embed", "classes")),
                         bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("classes",)))

  def normalized_mel(self, wave: jax.Array | None, train: bool, mel: jax.Array | None = None) -> jax.Array:
    """``wave (B, L)`` (or an already computed dB ``mel (B, 64, T)``) → BatchNorm-ed mel ``(B, T, 64)``."""
    if mel is None:
      if wave.ndim != 2:
        raise ValueError(f"CED expects a waveform batch (B, L); got shape {wave.shape}")
      if wave.shape[1] < MIN_SAMPLES:
        raise ValueError(f"CED needs at least {MIN_SAMPLES} samples ({MIN_SECONDS * 1000:.0f} ms at 16 kHz); "
                         f"got {wave.shape[1]}")
      mel = features.log_mel(wave.astype(jnp.float32), MEL)  # (B, 64, T)
    elif mel.shape[-1] < PATCH:
      raise ValueError(f"CED needs at least {PATCH} mel frames; got {mel.shape[-1]}")
    return self.init_bn(jnp.swapaxes(mel, 1, 2), use_running_average=not train)

  def encode(self, mel: jax.Array) -> jax.Array:
    """Normalised mel ``(B, T, 64)`` with T ≤ chunk_frames → tokens ``(B, 4, t, D)`` after the final norm."""
    x = jnp.swapaxes(mel, 1, 2)[..., None].astype(self.dtype)  # (B, 64 freq, T, 1)
    x = self.patch_embed(x)  # (B, 4, t, D)
    t = x.shape[2]
    x = x + self.time_pos_embed[None, None, :t].astype(self.dtype) + self.freq_pos_embed[None, :, None].astype(
        self.dtype)
    b, f, _, d = x.shape
    x = x.reshape(b, f * t, d)  # frequency-major: token index = f·t + time
    x = nn.with_logical_constraint(x, ("act_batch", "act_length", "act_embed"))
    for block in self.blocks:
      x = block(x)
    return self.norm(x).reshape(b, f, t, d)

  def classify(self, pooled: jax.Array) -> jax.Array:
    """``(..., D)`` → logits ``(..., C)`` in float32."""
    return self.head(self.head_norm(pooled.astype(jnp.float32)))

  def __call__(self, wave: jax.Array | None = None, *, mel: jax.Array | None = None,
               train: bool = False) -> dict[str, jax.Array]:
    """``wave (B, L)``, or ``mel (B, 64, T)``: a dB mel from :data:`MEL` (e.g. augmented) instead of the wave."""
    mel = self.normalized_mel(wave, train, mel)
    batch, frames = mel.shape[:2]
    if frames <= self.chunk_frames:
      chunks, n_chunks = mel, 1
    else:
      n_chunks = math.ceil(frames / self.chunk_frames)
      mel = jnp.pad(mel, ((0, 0), (0, n_chunks * self.chunk_frames - frames), (0, 0)))  # zeros after normalisation
      chunks = mel.reshape(batch * n_chunks, self.chunk_frames, MEL.n_mels)
    tokens = self.encode(chunks)  # (B·n, 4, t, D)
    t, d = tokens.shape[2], tokens.shape[3]
    chunk_logits = self.classify(tokens.mean(axis=(1, 2))).reshape(batch, n_chunks, -1)
    frame_tokens = tokens.mean(axis=1)  # (B·n, t, D)
    frame_logits = self.classify(frame_tokens).reshape(batch, n_chunks * t, -1)
    frame_embeddings = frame_tokens.reshape(batch, n_chunks * t, d)
    embedding = tokens.mean(axis=(1, 2)).reshape(batch, n_chunks, d).mean(axis=1)
    if n_chunks == 1:
      logits = chunk_logits[:, 0]
      probs = jax.nn.sigmoid(logits)
    else:
      probs = jax.nn.sigmoid(chunk_logits).mean(axis=1)
      clipped = jnp.clip(probs, 1e-7, 1 - 1e-7)
      logits = jnp.log(clipped) - jnp.log1p(-clipped)
      valid = valid_patch_indices(frames, self.chunk_frames, t)
      frame_logits, frame_embeddings = frame_logits[:, valid], frame_embeddings[:, valid]
    return dict(logits=logits, probs=probs, frame_logits=frame_logits,
                frame_embeddings=frame_embeddings.astype(jnp.float32),
                tokens=tokens.reshape(batch, n_chunks * FREQ_PATCHES * t, d).astype(jnp.float32),
                embedding=embedding.astype(jnp.float32))


def valid_patch_indices(frames: int, chunk_frames: int, patches_per_chunk: int) -> np.ndarray:
  """Indices (into the concatenated per-chunk time patches) of the patches whose 16 frames are all real input."""
  idx = np.arange(math.ceil(frames / chunk_frames) * patches_per_chunk)
  start = (idx // patches_per_chunk) * chunk_frames + (idx % patches_per_chunk) * PATCH
  return idx[start + PATCH <= frames]


def patch_centers_ms(num_samples: int, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
  """Centre times (ms) of the time patches behind ``frame_logits`` / ``frame_embeddings`` for a wave of
  ``num_samples`` samples: patch j of chunk c covers frames ``c·1012 + 16j … +15`` (10 ms each)."""
  frames = num_frames(num_samples)
  if frames <= chunk_frames:
    starts = np.arange((frames - PATCH) // PATCH + 1) * PATCH
  else:
    per_chunk = (chunk_frames - PATCH) // PATCH + 1
    idx = valid_patch_indices(frames, chunk_frames, per_chunk)
    starts = (idx // per_chunk) * chunk_frames + (idx % per_chunk) * PATCH
  return (starts + PATCH / 2) * 1000.0 * MEL.hop_length / SAMPLE_RATE


def Model(variant: str = "tiny", num_classes: int = 527, **overrides: Any) -> CED:  # noqa: N802 (factory)
  """Builds a named CED variant (``tiny | mini | small | base``); ``overrides`` replace any field (e.g. ``depth``)."""
  if variant not in VARIANTS:
    raise UserError(f"unknown CED variant '{variant}' (config.model.variant); choose one of {sorted(VARIANTS)}")
  check_fields(CED, overrides)
  return CED(**{**VARIANTS[variant], "num_classes": num_classes, **overrides})



def num_frames(num_samples: int) -> int:
  """Mel frames for ``num_samples`` samples (centre padding): ``1 + L // 160``."""
  return 1 + num_samples // MEL.hop_length


FAMILY = "ced"
CONFIG_FIELDS = ("embed_dim", "num_heads", "depth", "mlp_ratio", "num_classes", "chunk_frames", "bn_momentum")


def to_config(model: CED) -> dict[str, Any]:
  """The constructor fields a model directory records (runtime fields such as ``dtype`` are chosen at load)."""
  return {f: getattr(model, f) for f in CONFIG_FIELDS}


def from_config(config: dict[str, Any], **runtime: Any) -> CED:
  """The model of a model directory's config; ``runtime`` sets fields such as ``attention_impl`` or ``dtype``. A
  key CED does not have, or a value of the wrong type, is a UserError."""
  unknown = sorted(set(config) - set(CONFIG_FIELDS))
  kinds = {k: (int, float) if k == "bn_momentum" else int for k in CONFIG_FIELDS}
  wrong = [k for k in CONFIG_FIELDS
           if k in config and (isinstance(config[k], bool) or not isinstance(config[k], kinds[k]))]
  if unknown or wrong:
    raise UserError(f"a CED model.json config has {'unknown keys ' + repr(unknown) if unknown else ''}"
                    f"{' and ' if unknown and wrong else ''}{'wrongly typed ' + repr(wrong) if wrong else ''}; "
                    f"expected {', '.join(CONFIG_FIELDS)} (numbers): convert or export the model again")
  return CED(**{**config, **runtime})


def example_inputs(model: CED) -> tuple[jax.Array, ...]:
  """The smallest input ``init`` accepts: ``wave (1, MIN_SAMPLES)``."""
  return (jnp.zeros((1, MIN_SAMPLES)),)

