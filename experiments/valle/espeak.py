"""VALL-E on synthetic multi-speaker English (espeak_prompt: 15 training voices, 6 held-out voices), over the
`:local` codec of experiments/codec/speech.py at 3 kbps (6 codebooks × 1024 at 50 Hz).

Command:  python -m audiojax data build espeak_prompt/small
          for s in train test; do python -m audiojax codec tokens --checkpoint CODEC_DIR \
            --dataset espeak_prompt/small --split $s --bandwidth 3 --out data/valle_tokens/$s; done
          XLA_FLAGS=--xla_force_host_platform_device_count=8 \
          python -m audiojax train --config experiments/valle/espeak.py:local --workdir ~/runs/valle_espeak
          (`tokens=DIR` reads the stores from DIR/train and DIR/test; `:smoke` = a few steps for tests)
Hardware: any; `:local` is sized for a 2-core CPU (8 simulated devices, data-parallel).
Runtime:  see experiments/valle/README.md.
Expected: see experiments/valle/README.md (held-out voices: teacher-forced AR / NAR accuracy against the copy and
          unigram baselines, and with / without the acoustic prompt).
"""
import os

from audiojax.config import codec_lm, common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, smoke=False, tokens="data/valle_tokens")
  c = codec_lm.codec_lm()
  c.data.name = "espeak_prompt/small"
  c.data.train_store = os.path.join(a.tokens, "train")
  c.data.eval_store = os.path.join(a.tokens, "test")
  c.model.variant = "small"
  c.data.max_positions = 1024
  c.data.bucket_positions = [384, 512, 768, 1024]
  c.train.steps = 100_000
  c.train.batch_size = 64
  c.optim.warmup_steps = 2_000
  c.eval.every_steps = 5_000
  c.eval.max_examples = 256
  c.checkpoint.every_steps = 5_000
  if a.local:
    common.local(c, {"model.variant": "tiny", "data.max_positions": 640, "data.bucket_positions": [384, 512, 640],
                     "train.steps": 3000, "train.batch_size": 8, "train.log_every": 50, "train.progress_bar": True,
                     "optim.warmup_steps": 200, "eval.every_steps": 500, "eval.batch_size": 8,
                     "eval.max_examples": 96, "checkpoint.every_steps": 100})
  if a.smoke:
    common.local(c, {"model.variant": "tiny", "model.overrides": {"depth": 2, "width": 64, "heads": 2, "mlp_dim": 128},
                     "data.max_positions": 640, "data.bucket_positions": [], "train.steps": 6,
                     "train.batch_size": 8, "train.log_every": 2, "optim.warmup_steps": 2, "eval.batch_size": 8,
                     "eval.max_examples": 8, "checkpoint.every_steps": 3})
  return c
