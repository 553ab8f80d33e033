"""Fine-tune a pretrained CED (a converted release or any audiojax workdir) on a new label set.

The encoder starts from the checkpoint; the head is re-initialised when the dataset's class count differs (or
always, with `--config.init.reinit="['params/head/']"`), as the original's users do by rebuilding
`ced_*(num_classes=K)` (RicherMans/CED issue #22).

Command:  python -m audiojax convert ced --torch-checkpoint audiotransformer_mini_mAP_4896.pt --out ced_mini
          python -m audiojax train --config experiments/ced/finetune.py:variant=mini --workdir workdirs/ft \\
            --config.init.checkpoint=ced_mini --config.data.name=gm_instruments/demo
          (`variant` must be the checkpoint's; any tagging dataset works as `data.name`)
Hardware: any; CED-mini fine-tunes on a single GPU or, slowly, on a CPU.
Runtime:  300 steps of batch 32 × 2 s clips: ≈ 10 min for CED-mini on a 2-core CPU.
Expected: not measured with a released checkpoint here (none can be downloaded on this machine); the test suite
          fine-tunes a converted checkpoint end to end and checks that only the head starts fresh.
"""
from audiojax.config import ced, common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, variant="mini", steps=300)
  c = ced.tagging()
  c.model.variant = a.variant
  c.data.name = "gm_instruments/demo"
  c.data.clip_seconds = 2.0
  c.train.steps = a.steps
  c.train.batch_size = 32
  c.train.log_every = 10
  c.optim.lr = 1e-4
  c.optim.warmup_steps = 30
  c.optim.weight_decay = 0.01
  c.eval.every_steps = 100
  c.checkpoint.every_steps = 100
  if a.local:
    common.local(c, {"data.name": "gm_instruments/tiny", "data.clip_seconds": 1.0, "train.steps": 6,
                     "train.batch_size": 8, "train.log_every": 2, "optim.warmup_steps": 2, "eval.batch_size": 8,
                     "checkpoint.every_steps": 3})
  return c
