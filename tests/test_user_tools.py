"""What users expect around the models: provenance of every run, a curve that is current after each evaluation,
batch commands that keep going past a bad file, and workdirs and model directories in cloud buckets."""
import json
import os
import shutil

import fsspec
import numpy as np
import pytest
import soundfile as sf
from conftest import smoke_config
from fsspec.implementations.memory import MemoryFileSystem

from audiojax import cli, paths
from audiojax.config import loader as config_lib
from audiojax.tasks import registry
from audiojax.train import export, loop, provenance
from audiojax.train import metrics as metrics_lib


def test_every_start_of_a_run_records_its_environment(tiny_data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  loop.train(registry.build(smoke_config(tiny_data_dir)), workdir, until_step=3)
  loop.train(registry.build(smoke_config(tiny_data_dir)), workdir)
  runs = json.load(open(os.path.join(workdir, provenance.FILE)))["runs"]
  assert [r["start_step"] for r in runs] == [0, 3]
  for run in runs:
    assert run["packages"]["jax"] and run["packages"]["flax"] and run["devices"]["count"] == 8
    assert run["process_count"] == 1 and run["backend"] == "cpu" and run["command"]
    assert set(run["git"]) == {"commit", "dirty"}
  commit = runs[0]["git"]["commit"]
  assert commit is None or len(commit) == 40


def test_the_curve_is_written_after_each_evaluation(tiny_data_dir, tmp_path):
  workdir = str(tmp_path / "run")
  config = smoke_config(tiny_data_dir, eval__every_steps=3)
  loop.train(registry.build(config), workdir, until_step=3)  # stopped before the end: the curve exists already
  assert os.path.getsize(os.path.join(workdir, "training_curve.png")) > 0


def test_tag_goes_on_past_a_bad_file_with_skip_errors(trained_workdir, tmp_path, capsys):
  good = []
  for name in ("a.wav", "c.wav"):
    t = np.arange(16000) / 16000
    sf.write(tmp_path / name, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    good.append(str(tmp_path / name))
  bad = str(tmp_path / "missing.wav")
  try:
    cli.main(["tag", good[0], bad, good[1], "--checkpoint", trained_workdir, "--top-k", "1", "--skip-errors"])
    code = 0
  except SystemExit as e:
    code = e.code
  out = capsys.readouterr()
  assert code == 1
  assert [line for line in out.out.splitlines() if not line.startswith(" ")] == good  # both good files, in order
  errors = [line for line in out.err.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and bad in errors[0] and "1 of 3 files failed" in out.err


def _tag(checkpoint, clip, capsys):
  cli.main(["tag", clip, "--checkpoint", checkpoint, "--top-k", "5", "--format", "json"])
  return json.loads(capsys.readouterr().out)["top"]


def test_an_exported_model_tags_like_its_workdir_also_from_a_hub_cache(trained_workdir, tmp_path, capsys,
                                                                       monkeypatch):
  clip = str(tmp_path / "clip.wav")
  t = np.arange(24000) / 16000
  sf.write(clip, (0.3 * np.sin(2 * np.pi * 660 * t)).astype(np.float32), 16000)
  out = tmp_path / "shared"
  cli.main(["export", trained_workdir, "--out", str(out)])
  assert "exported step 6" in capsys.readouterr().out
  assert {"model.json", "model.safetensors", "class_names.txt", "README.md", "training_config.json",
          "environment.json"} <= set(os.listdir(out))
  card = (out / "README.md").read_text()
  assert "eval/mAP" in card and "gm_instruments/tiny" in card and '"task": "tagging"' in card
  want = _tag(trained_workdir, clip, capsys)
  assert _tag(str(out), clip, capsys) == want

  # the layout huggingface_hub's cache uses: models--ORG--NAME/{refs/main, snapshots/<commit>/...}
  repo = tmp_path / "hub" / "models--audiojax--ced-demo"
  commit = "0123456789abcdef0123456789abcdef01234567"
  shutil.copytree(out, repo / "snapshots" / commit)
  (repo / "refs").mkdir()
  (repo / "refs" / "main").write_text(commit)
  monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  assert _tag("hf://audiojax/ced-demo", clip, capsys) == want
  try:
    cli.main(["tag", clip, "--checkpoint", "hf://audiojax/absent"])
  except SystemExit as e:
    assert e.code == 2
  err = capsys.readouterr().err
  assert "error: cannot get 'hf://audiojax/absent'" in err and len(err.strip().splitlines()) == 1


def _event_tags(folder):
  """``{tag: kind}`` of the summaries in TensorBoard event files (TFRecord framing, tensorboardX protos)."""
  import glob
  import struct

  from tensorboardX.proto import event_pb2
  tags = {}
  for path in glob.glob(os.path.join(folder, "events.*")):
    data = open(path, "rb").read()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset:offset + 8])
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 12 + length + 4
      for value in event.summary.value:
        tags[value.tag] = value.WhichOneof("value")
  return tags


def test_evaluations_put_a_log_mel_image_and_the_labels_in_tensorboard(trained_workdir):
  tags = _event_tags(os.path.join(trained_workdir, "tensorboard"))
  assert tags.get("eval/clip_log_mel") == "image" and tags.get("eval/mAP") == "simple_value"
  assert any(tag.startswith("eval/clip_labels") for tag in tags)


class _MemoryBucket(MemoryFileSystem):
  """An in-memory stand-in for Google Cloud Storage behind fsspec (gcsfs' protocol and constructor arguments), so
  that ``gs://`` paths take the code path they take on a TPU VM, through etils.epath, without a network."""

  protocol = ("gcs", "gs")

  def __init__(self, *args, finalize_on_close=False, **kwargs):
    super().__init__(*args, **kwargs)


@pytest.fixture
def bucket(monkeypatch, tmp_path):
  for protocol in _MemoryBucket.protocol:
    fsspec.register_implementation(protocol, _MemoryBucket, clobber=True)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
  yield "gs://audiojax-test"
  _MemoryBucket.store.clear()
  _MemoryBucket.pseudo_dirs.clear()
  _MemoryBucket.pseudo_dirs.append("")


def test_a_workdir_in_a_bucket_gets_its_records_there(bucket):
  workdir = f"{bucket}/runs/demo"
  loop.check_workdir(workdir)
  loop.make_workdir(workdir)
  assert not os.path.exists("gs:") and not os.path.exists(os.path.join("gs:", "audiojax-test"))
  config = config_lib.load("experiments/ced/demo.py:local")
  config_lib.save(config, paths.resolve(workdir) / "config.json")
  restored = config_lib.restore(f"{workdir}/config.json")
  assert json.loads(restored.to_json_best_effort()) == json.loads(config.to_json_best_effort())
  writer = metrics_lib.MetricWriter(workdir)
  for step in (1, 2, 3):
    writer.write(step, {"loss": 1.0 / step, "eval/mAP": 0.1 * step})
  writer.close()
  resumed = metrics_lib.MetricWriter(workdir, resumed_from=2)  # step 3 is repeated by the resumed run
  resumed.write(3, {"loss": 0.25})
  resumed.close()
  assert [(r["step"], r["loss"]) for r in metrics_lib.read(workdir)] == [(1, 1.0), (2, 0.5), (3, 0.25)]
  events = list((paths.resolve(workdir) / "tensorboard").iterdir())
  assert events and all(e.name.startswith("events.") and e.stat().length > 0 for e in events)
  provenance.record(workdir, 0)
  provenance.record(workdir, 3)
  runs = json.loads((paths.resolve(workdir) / provenance.FILE).read_text())["runs"]
  assert [r["start_step"] for r in runs] == [0, 3]
  png = metrics_lib.plot_training_curve(workdir)
  assert png == f"{workdir}/training_curve.png" and paths.resolve(png).read_bytes().startswith(b"\x89PNG")


def test_a_model_exported_to_a_bucket_tags_by_its_uri(trained_workdir, bucket, tmp_path, capsys):
  clip = str(tmp_path / "clip.wav")
  t = np.arange(24000) / 16000
  sf.write(clip, (0.3 * np.sin(2 * np.pi * 660 * t)).astype(np.float32), 16000)
  model = f"{bucket}/models/ced-demo"
  cli.main(["export", trained_workdir, "--out", model])
  assert f"to {model}" in capsys.readouterr().out
  assert export.is_model_dir(model)
  assert {"model.json", "model.safetensors", "class_names.txt", "README.md"} <= {
      p.name for p in paths.resolve(model).iterdir()}
  assert _tag(model, clip, capsys) == _tag(trained_workdir, clip, capsys)
  with pytest.raises(SystemExit):  # a second export to the same place without --force
    cli.main(["export", trained_workdir, "--out", model])
  assert "already holds a model directory" in capsys.readouterr().err
