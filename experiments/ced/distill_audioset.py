"""CED students on AudioSet from stored teacher logits — the paper's setup (RicherMans/CED trainconfig/*.yaml).

Command:  teacher pass (once per subset; the paper's ensemble is 2 ViT-Base + 3 ViT-Large AudioSet taggers, mAP
          50.14; any audiojax checkpoints work, e.g. converted CED-base releases):
          python -m audiojax teacher --teachers T1 T2 ... --dataset audioset/balanced --split balanced_train \\
            --epochs 40 --top-k 20 --clip-seconds 10 --out gs://.../logits_as20k --data-dir ...
          student:
          python -m audiojax train --config experiments/ced/distill_audioset.py:variant=mini,subset=as20k \\
            --workdir ... --config.distill.store=gs://.../logits_as20k --config.data.manual_dir=/data/audioset
          `subset=as2m` uses the full set (teacher pass over unbalanced_train+balanced_train); `local` shrinks it.
          The paper initialises students from AudioSet-MAE checkpoints (audiotransformer_*_mae_as_10s.pt); set
          `--config.init.checkpoint` to a converted one (converting the MAE files is not verified yet).
Hardware: as2m: a TPU v4-32 / v5e-32 slice (batch 128); as20k: one TPU v4-8 or an 8-GPU box (batch 32).
Runtime:  as20k: up to 300 epochs × 690 steps; as2m: up to 300 × 6,250 steps (early stopping in the paper).
Expected: the paper's mAP — AS-20K 36.5 / 38.5 / 41.6 / 44.0 and AS-2M 48.1 / 49.0 / 49.6 / 50.0 for
          tiny / mini / small / base — not reproduced in audiojax yet (no AudioSet or accelerator here).
Differences from the original: AdamW without weight decay instead of bitsandbytes Adam8bit; bfloat16 compute
instead of fp16 AMP; no mixup (the author doubts it was used with consistency, CED issue #23).
"""
from audiojax.config import ced, common


def get_config(arg: str = ""):
  a = common.parse_arg(arg, variant="mini", subset="as2m")
  if a.subset not in ("as20k", "as2m"):
    raise ValueError(f"subset must be as20k or as2m; got {arg!r}")
  c = ced.audioset(ced.distill(), a.variant, full=a.subset == "as2m")
  c.checkpoint.every_steps = c.eval.every_steps
  c.checkpoint.keep = 100
  c.checkpoint.average_best = 4  # the paper averages its 4 best checkpoints
  if a.local:
    common.local(c, {"model.overrides": {"depth": 2}, "train.batch_size": 8, "train.steps": 20, "train.log_every": 5,
                     "optim.warmup_steps": 5, "eval.every_steps": 10, "eval.batch_size": 8,
                     "checkpoint.every_steps": 10, "checkpoint.average_best": 2})
  return c
