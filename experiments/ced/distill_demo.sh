#!/usr/bin/env bash
# The evidence runs of experiments/ced/distill_demo.py: label-trained baselines, 2 stronger teachers → logit store →
# students (consistent and inconsistent) × 3 seeds.
# Usage: experiments/ced/distill_demo.sh [ROOT]   (≈ 2 h on a 2-core CPU; results in ROOT/summary.txt)
set -euo pipefail
ROOT=${1:-workdirs/distill_demo}
PY=${PY:-.venv/bin/python}
export XLA_FLAGS=--xla_force_host_platform_device_count=8
mkdir -p "$ROOT"
$PY -m audiojax data build gm_instruments/demo
train_demo() {  # seed steps workdir: the demo's recipe on the labels
  [ -f "$3/metrics.jsonl" ] && grep -q "\"step\": $2, \"eval/mAP\"" "$3/metrics.jsonl" && return
  $PY -m audiojax train --config experiments/ced/demo.py --workdir "$3" --config.seed="$1" \
    --config.train.steps="$2" --config.eval.every_steps=300 --config.checkpoint.every_steps=900 \
    --config.train.progress_bar=false
}
for s in 0 1 2; do train_demo $s 900 "$ROOT/labels_$s"; done        # the student's recipe on labels: the baseline
for s in 0 1; do train_demo $s 2700 "$ROOT/teacher_$s"; done         # teachers: the same model, trained 3× longer
[ -f "$ROOT/store/epoch_007_seeds.npy" ] || $PY -m audiojax teacher --teachers "$ROOT"/teacher_{0,1} \
  --dataset gm_instruments/demo --out "$ROOT/store" --epochs 8 --top-k 5 --clip-seconds 2
for s in 0 1 2; do
  for mode in consistent inconsistent; do
    [ -f "$ROOT/${mode}_$s/averaged/model.json" ] || $PY -m audiojax train \
      --config "experiments/ced/distill_demo.py:mode=$mode,seed=$s" --workdir "$ROOT/${mode}_$s" \
      --config.distill.store="$ROOT/store"
  done
done
$PY - "$ROOT" <<'PY'
import json, sys, os
root = sys.argv[1]
def last(wd, key):
  vals = [json.loads(l)[key] for l in open(os.path.join(wd, "metrics.jsonl")) if key in json.loads(l)]
  return vals[-1] if vals else float("nan")
lines = [f"teacher_{s} (2700 steps): mAP {last(f'{root}/teacher_{s}', 'eval/mAP'):.4f}" for s in range(2)]
for mode in ("labels", "consistent", "inconsistent"):
  final = [last(f"{root}/{mode}_{s}", "eval/mAP") for s in range(3)]
  lines.append(f"{mode:12s} (900 steps) mAP {[round(x, 4) for x in final]} mean {sum(final) / 3:.4f}")
open(os.path.join(root, "summary.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
