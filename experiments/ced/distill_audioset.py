"""CED students on AudioSet from stored teacher logits — the paper's setup (RicherMans/CED trainconfig/*.yaml).

Command:  teacher pass (once per subset; the paper's ensemble is 2 ViT-Base + 3 ViT-Large AudioSet taggers, mAP 50.14; any
audiojax checkpoints work, e.g. converted CED-base releases):
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
from audiojax import configs

LR = {"tiny": 1e-3, "mini": 1e-3, "small": 3e-4, "base": 3e-4}


def get_config(arg: str = ""):
  a = configs.parse_arg(arg, variant="mini", subset="as2m", local=False)
  if a.variant not in LR or a.subset not in ("as20k", "as2m"):
    raise ValueError(f"variant must be one of {sorted(LR)} and subset as20k or as2m; got {arg!r}")
  full = a.subset == "as2m"
  steps_per_epoch = 6250 if full else 690
  c = configs.tagging_base()
  c.task = "distill"
  c.distill = configs.ml_collections.ConfigDict({"store": "", "consistent": True})
  c.data.name = "audioset/full" if full else "audioset/balanced"
  c.data.train_split = "unbalanced_train+balanced_train" if full else "balanced_train"
  c.data.eval_split = "eval"
  c.data.clip_seconds = 10.0
  c.model.variant = a.variant
  c.model.dtype = "bfloat16"
  c.train.batch_size = 128 if full else 32
  c.train.steps = 300 * steps_per_epoch
  c.train.log_every = 100
  c.optim.lr = LR[a.variant]
  c.optim.warmup_steps = 62_500 if full else 5_000
  c.optim.end_lr_factor = 0.1
  c.optim.weight_decay = 0.0
  c.optim.clip_norm = 0.0
  c.eval.every_steps = (3 if full else 5) * steps_per_epoch
  c.eval.batch_size = 128
  c.checkpoint.every_steps = c.eval.every_steps
  c.checkpoint.keep = 100
  c.checkpoint.average_best = 4  # the paper averages its 4 best checkpoints
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  if a.local:
    c.model.dtype = "float32"
    c.model.overrides = {"depth": 2}
    c.train.batch_size = 8
    c.train.steps = 20
    c.train.log_every = 5
    c.optim.warmup_steps = 5
    c.eval.every_steps = 10
    c.eval.batch_size = 8
    c.checkpoint.every_steps = 10
    c.checkpoint.average_best = 2
  return c
