"""Metric records: ``WORKDIR/metrics.jsonl`` (one JSON object per record), TensorBoard events, and the curve plot;
the workdir may be a bucket URI (:func:`audiojax.paths.resolve`)."""
from __future__ import annotations

import io
import json
import math
from typing import Any

import jax

from audiojax import paths


class MetricWriter:
  """Appends records to ``metrics.jsonl`` and TensorBoard (process 0 only; other hosts write nothing).

  ``resumed_from``: the step training resumes from; records of later steps (written before the run stopped, by the
  steps it now repeats) are dropped from both, so every step is recorded once, by the run that kept it."""

  def __init__(self, workdir: str, resumed_from: int | None = None):
    self.enabled = jax.process_index() == 0
    self.path = paths.resolve(workdir) / "metrics.jsonl"
    self._tb = None
    if self.enabled:
      from tensorboardX import SummaryWriter  # lazy: only the writing process needs it
      _route_tensorboard_uris_through_epath()
      purge = {} if resumed_from is None else {"purge_step": resumed_from + 1}
      if resumed_from is not None and self.path.exists():
        kept = [r for r in read(workdir) if r["step"] <= resumed_from]
        paths.write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
      self._tb = SummaryWriter(str(paths.resolve(workdir) / "tensorboard"), **purge)

  def write(self, step: int, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
    line = json.dumps(record) + "\n"
    if paths.is_uri(self.path):  # objects cannot be appended to: rewritten whole (the file stays small)
      paths.write_atomic(self.path, (self.path.read_text() if self.path.exists() else "") + line)
    else:
      with self.path.open("a") as f:
        f.write(line)
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
  path = paths.resolve(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class _EpathFile:
  """A binary file opened through ``etils.epath`` as tensorboardX's record writer uses it (no ``fileno``)."""

  def __init__(self, path: str):
    self._file = paths.resolve(path).open("wb")

  def write(self, data: bytes) -> None:
    self._file.write(data)

  def flush(self) -> None:
    self._file.flush()

  def close(self) -> None:
    self._file.close()


class _EpathWriterFactory:
  def open(self, path: str) -> _EpathFile:
    return _EpathFile(path)

  def directory_check(self, path: str) -> None:
    paths.resolve(path).mkdir(parents=True, exist_ok=True)


def _route_tensorboard_uris_through_epath() -> None:
  """TensorBoard events in a bucket go through the same ``etils.epath`` file systems as everything else in the
  workdir (tensorboardX's own gs:// and s3:// writers need google-cloud-storage / boto3)."""
  from tensorboardX import record_writer
  for scheme in ("gs", "s3", "az"):
    record_writer.register_writer_factory(scheme, _EpathWriterFactory())


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
  path = paths.resolve(workdir) / "training_curve.png"
  png = io.BytesIO()
  fig.savefig(png, format="png", dpi=110)
  plt.close(fig)
  paths.write_atomic(path, png.getvalue())
  return str(path)
