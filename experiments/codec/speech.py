"""A 16 kHz EnCodec-style codec trained on real multi-speaker speech (debspeech: Debian packages' recordings;
held-out speakers), at 1.5 / 3 / 6 kbps (12 codebooks × 1024 at 50 Hz; `small` widths, `tiny` on the CPU).

Command:  python -m audiojax data build debspeech
          XLA_FLAGS=--xla_force_host_platform_device_count=8 \
          python -m audiojax train --config experiments/codec/speech.py --workdir ~/runs/codec_speech
          python -m audiojax export ~/runs/codec_speech --out ~/runs/codec_speech_model
          (`:local` = the CPU schedule of experiments/codec/README.md; `:smoke` = a few steps on the synthetic
          espeak_prompt/tiny corpus, for tests)
Hardware: any; `:local` is sized for a 2-core CPU (8 simulated devices, data-parallel).
Runtime:  `:local`: 3600 steps of 16 × 1 s at ≈ 1.4 s/step on the 2-core CPU (≈ 1.5 h, plus 7 evaluations).
Expected: `:local` at step 3600 (experiments/codec/README.md): held-out mel distance 1.65 / 1.61 / 1.59 at
          1.5 / 3 / 6 kbps, SI-SNR −3.8 dB; against Opus 6 kbps on 10 English clips PESQ-wb 1.18 vs 2.22, WER
          63.0 % vs 14.1 %: far from Opus at equal bitrate (not reached on 2 CPU cores).
"""
from audiojax.config import codec, common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, smoke=False)
  c = codec.codec()
  c.data.name = "debspeech"
  c.data.clip_seconds = 1.0
  c.model.variant = "small"
  # 12 codebooks of 1024 at 50 Hz: 1.5 / 3 / 6 kbps (3, 6, 12 codebooks), EnCodec's low bitrates, and Opus' lowest
  c.model.overrides = {"n_q": 12, "bins": 1024, "bandwidths": (1.5, 3.0, 6.0)}
  c.train.steps = 300_000
  c.train.batch_size = 64
  c.train.log_every = 100
  c.eval.every_steps = 5_000
  c.eval.batch_size = 32
  c.eval.clip_seconds = 4.0
  c.checkpoint.every_steps = 5_000
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  if a.local:
    # 2 CPU cores, about 1.5 hours: the tiny widths and the reconstruction losses alone (time L1, mel, commitment):
    # an untrained discriminator's gradients only add noise to a schedule this short, and it costs 4× per step
    common.local(c, {"model.variant": "tiny", "data.clip_seconds": 1.0, "loss.weights.adversarial": 0.0,
                     "loss.weights.feature": 0.0, "optim.generator.lr": 1e-3, "train.steps": 3600,
                     "train.batch_size": 16, "train.log_every": 50, "train.progress_bar": True,
                     "eval.every_steps": 600, "eval.batch_size": 16, "eval.max_examples": 128,
                     "checkpoint.every_steps": 200})
  if a.smoke:
    common.local(c, {"data.name": "espeak_prompt/tiny", "model.variant": "tiny", "model.overrides": {},
                     "data.clip_seconds": 0.25, "loss.mel_log2_windows": [6, 7, 8, 9], "discriminator.filters": 4,
                     "discriminator.n_ffts": [256, 512], "train.steps": 6, "train.batch_size": 8,
                     "train.log_every": 2, "optim.generator.warmup_steps": 2,
                     "optim.discriminator.warmup_steps": 2, "eval.batch_size": 8, "eval.clip_seconds": 1.0,
                     "checkpoint.every_steps": 3})
  return c
