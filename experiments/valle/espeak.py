"""VALL-E on synthetic multi-speaker English (espeak_prompt: 15 training voices, 6 held-out voices), over the
`:local` codec of experiments/codec/speech.py at 3 kbps (6 codebooks × 1024 at 50 Hz).

Command:  python -m audiojax data build espeak_prompt/small
          for s in train test; do python -m audiojax codec tokens --checkpoint CODEC_DIR \
            --dataset espeak_prompt/small --split $s --bandwidth 3 --out data/valle_tokens/$s; done
          python -m audiojax train --config experiments/valle/espeak.py:local --workdir ~/runs/valle_espeak
          (`tokens=DIR` reads the stores from DIR/train and DIR/test; `:smoke` = a few steps for tests)
Hardware: any; `:local` is sized for a 2-core CPU (one CPU device; batch 8 rows of up to 640 positions).
Runtime:  `:local`: 1500 steps (cut from 3000) at 1.9 s/step alone on the 2-core CPU (≈ 48 min); see the README.
Expected: `:local` at step 1500 (experiments/valle/README.md): held-out AR accuracy 0.160 (copy 0.084, unigram
          0.030), top-10 0.494, NLL 4.13 (unigram 5.75); NAR accuracy 0.033 with the prompt, 0.020 without; generated
          speech not intelligible (Whisper WER 101 % vs 112 % for the codec resynthesis).
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
                     "train.steps": 1500, "train.batch_size": 8, "train.log_every": 50, "train.progress_bar": True,
                     "optim.warmup_steps": 200, "eval.every_steps": 500, "eval.batch_size": 8,
                     "eval.max_examples": 96, "checkpoint.every_steps": 100})
  if a.smoke:
    common.local(c, {"model.variant": "tiny", "model.overrides": {"depth": 2, "width": 64, "heads": 2, "mlp_dim": 128},
                     "data.max_positions": 640, "data.bucket_positions": [], "train.steps": 6,
                     "train.batch_size": 8, "train.log_every": 2, "optim.warmup_steps": 2, "eval.batch_size": 8,
                     "eval.max_examples": 8, "checkpoint.every_steps": 3})
  return c
