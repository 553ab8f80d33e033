#!/usr/bin/env bash
# The evidence runs of experiments/ced/distill_demo.py: 3 teachers → logit store → students (3 modes × 3 seeds).
# Usage: experiments/ced/distill_demo.sh [ROOT]   (≈ 1.5 h on a 2-core CPU; results in ROOT/summary.txt)
set -euo pipefail
ROOT=${1:-workdirs/distill_demo}
PY=${PY:-.venv/bin/python}
export XLA_FLAGS=--xla_force_host_platform_device_count=8
mkdir -p "$ROOT"
$PY -m audiojax data build gm_instruments/demo
for s in 0 1 2; do
  $PY -m audiojax train --config experiments/ced/demo.py --workdir "$ROOT/teacher_$s" \
    --config.seed=$s --config.train.steps=900 --config.train.progress_bar=false
done
[ -f "$ROOT/store/meta.json" ] || $PY -m audiojax teacher --teachers "$ROOT"/teacher_{0,1,2} \
  --dataset gm_instruments/demo --out "$ROOT/store" --epochs 8 --top-k 5 --clip-seconds 2
for s in 0 1 2; do
  for mode in labels consistent inconsistent; do
    $PY -m audiojax train --config "experiments/ced/distill_demo.py:mode=$mode,seed=$s" \
      --workdir "$ROOT/${mode}_$s" --config.distill.store="$ROOT/store"
  done
done
$PY - "$ROOT" <<'PY'
import json, sys, glob, os
root = sys.argv[1]
def last(wd, key):
  vals = [json.loads(l)[key] for l in open(os.path.join(wd, "metrics.jsonl")) if key in json.loads(l)]
  return vals[-1] if vals else float("nan")
lines = [f"teacher_{s}: mAP {last(f'{root}/teacher_{s}', 'eval/mAP'):.4f}" for s in range(3)]
for mode in ("labels", "consistent", "inconsistent"):
  final = [last(f"{root}/{mode}_{s}", "eval/mAP") for s in range(3)]
  avg = [last(f"{root}/{mode}_{s}", "eval/averaged_mAP") for s in range(3)]
  lines.append(f"{mode:12s} final mAP {[round(x, 4) for x in final]} mean {sum(final)/3:.4f} | "
               f"best-2 averaged {[round(x, 4) for x in avg]} mean {sum(avg)/3:.4f}")
open(os.path.join(root, "summary.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
