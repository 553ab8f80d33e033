"""Metric records: ``WORKDIR/metrics.jsonl`` (one JSON object per record), TensorBoard events, and the curve plot."""
from __future__ import annotations

import json
import math
import os
from typing import Any

import jax


class MetricWriter:
  """Appends records to ``metrics.jsonl`` and TensorBoard (process 0 only; other hosts write nothing).

  ``resumed_from``: the step training resumes from; records of later steps (written before the run stopped, by the
  steps it now repeats) are dropped from both, so every step is recorded once, by the run that kept it."""

  def __init__(self, workdir: str, resumed_from: int | None = None):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # lazy: only the writing process needs it
      purge = {} if resumed_from is None else {"purge_step": resumed_from + 1}
      if resumed_from is not None and os.path.exists(self.path):
        kept = [r for r in read(workdir) if r["step"] <= resumed_from]
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
          f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, self.path)
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"), **purge)

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    for key, value in record.items():
      if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
        self._tb.add_scalar(key, value, step)
    self._tb.flush()

  def write_summaries(self, step: int, summaries: dict[str, Any]) -> None:
    """Text (``str``) and images (``(H, W, 3)`` uint8) for TensorBoard."""
    if not self.enabled or not summaries:
      return
    for name, value in summaries.items():
      if isinstance(value, str):
        self._tb.add_text(name, value, step)
      else:
        self._tb.add_image(name, value, step, dataformats="HWC")
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def _plain(value: Any) -> Any:
  if hasattr(value, "item"):
    value = value.item()
  return value


def read(workdir: str) -> list[dict[str, Any]]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_training_curve(workdir: str, metric: str = "eval/mAP", baseline: str = "eval/baseline_mAP") -> str:
  """Writes ``WORKDIR/training_curve.png``: training loss and the eval ``metric`` (with its baseline) over steps."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = read(workdir)
  train = [r for r in records if "loss" in r]
  evals = [r for r in records if metric in r]
  fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(10, 3.8))
  ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1)
  ax_loss.set(xlabel="step", ylabel="training loss", title="training loss")
  ax_loss.set_yscale("log")
  if evals:
    ax_eval.plot([r["step"] for r in evals], [r[metric] for r in evals], "o-", label=metric)
    if baseline in evals[-1]:
      ax_eval.axhline(evals[-1][baseline], color="gray", ls="--", label=baseline)
    ax_eval.legend()
  ax_eval.set(xlabel="step", ylabel=metric, title=f"held-out {metric}")
  fig.tight_layout()
  path = os.path.join(workdir, "training_curve.png")
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path
