"""Consistent ensemble distillation on the embedded corpus: the evidence runs for CED's method at CPU scale.

Teachers: three label-trained taggers (`experiments/ced/demo.py` with `--config.seed=S --config.train.steps=900`),
whose ensemble writes a logit store (8 augmented epochs, top-5 of 22 classes). The student is the demo's model
(CED-tiny width, depth 4) trained with the demo's schedule, in one of three modes:
  mode=consistent    the paper: soft top-k targets, the teacher's exact augmented view replayed from the seed
  mode=inconsistent  ablation: the same targets, fresh random masks and no time shift (`disable_consistency`)
  mode=labels        no teacher: the same student trained on the ground-truth labels (the demo)

Command:  python -m audiojax teacher --teachers t0 t1 t2 --dataset gm_instruments/demo --out store \\
            --epochs 8 --top-k 5 --clip-seconds 2
          python -m audiojax train --config experiments/ced/distill_demo.py:mode=consistent,seed=0 \\
            --workdir wd --config.distill.store=store
Hardware: a 2-core CPU (8 simulated devices are not needed; the mesh fills whatever devices there are).
Runtime:  ≈ 5 min per student run; teachers ≈ 10 min each; teacher pass ≈ 8 min (2-core CPU, loaded).
Expected: measured with distill_demo.sh (3 teachers at 900 steps: mAP 0.234 / 0.247 / 0.242), held-out mAP after 450
          student steps, seeds 0 / 1 / 2:
            labels        0.191 / 0.190 / 0.177   mean 0.186
            consistent    0.172 / 0.175 / 0.180   mean 0.176
            inconsistent  0.118 / 0.119 / 0.123   mean 0.120
          Consistent replay beats inconsistent augmentation on every seed (+0.056 mAP); at this scale (450 steps,
          22 classes, top-5 targets) the distilled student does NOT beat the label-trained one (−0.010).
          At 900 steps (``--config.train.steps=900 --config.eval.every_steps=300``) the gap widens: consistent
          students 0.210 / 0.209 / 0.214 (mean 0.211; best-2 averages 0.205 / 0.208 / 0.212) against the
          label-trained teachers of the same steps and seeds, 0.234 / 0.247 / 0.242 (mean 0.241): −0.030, below on
          every seed, and below the teacher ensemble (0.258) the students imitate.
"""
from audiojax import configs


def get_config(arg: str = ""):
  a = configs.parse_arg(arg, mode="consistent", seed=0)
  if a.mode not in ("consistent", "inconsistent", "labels"):
    raise ValueError(f"mode must be consistent, inconsistent or labels; got {a.mode!r}")
  c = configs.tagging_base()
  c.task = "tagging" if a.mode == "labels" else "distill"
  c.seed = a.seed
  c.distill = configs.ml_collections.ConfigDict({"store": "", "consistent": a.mode == "consistent"})
  c.data.name = "gm_instruments/demo"
  c.data.clip_seconds = 2.0
  c.model.variant = "tiny"
  c.model.overrides = {"depth": 4, "bn_momentum": 0.9}
  c.train.steps = 900
  c.train.batch_size = 32
  c.train.log_every = 10
  c.train.progress_bar = False
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 30
  c.optim.weight_decay = 0.01
  c.eval.every_steps = 300
  c.eval.batch_size = 64
  c.checkpoint.every_steps = 300
  c.checkpoint.keep = 10
  c.checkpoint.average_best = 2
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  return c
