"""Nothing lost, every mistake one line: workdirs survive wrong configs, corrupt checkpoints, failed saves, kills and
preemption (SIGTERM/SIGINT), and bad input ends with a single ``error:`` line that names the file or key."""
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import soundfile as sf
from conftest import smoke_config

from audiojax import cli
from audiojax.errors import UserError
from audiojax.tasks import registry
from audiojax.train import checkpoint, export, loop

DEMO = "experiments/ced/demo.py:local"


def run_cli(argv, capsys):
  code = 0
  try:
    cli.main(argv)
  except SystemExit as e:
    code = e.code
  out = capsys.readouterr()
  return code, out.out, out.err


def assert_one_line_error(code, err, *fragments):
  lines = [line for line in err.splitlines() if line.startswith("error:")]
  assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


def snapshot(folder):
  """Every file under ``folder`` with its content hash."""
  out = {}
  for path in sorted(glob.glob(os.path.join(folder, "**"), recursive=True)):
    if os.path.isfile(path):
      with open(path, "rb") as f:
        out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
  return out


def tone(path, seconds=1.0, rate=16000):
  t = np.arange(int(seconds * rate)) / rate
  sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
  return str(path)


def train_argv(workdir, data_dir, *extra):
  return ["train", "--config", DEMO, "--workdir", str(workdir), f"--config.data.data_dir={data_dir}", *extra]


def final_params(workdir):
  return jax.device_get(loop.Trainer(registry.task_for_workdir(str(workdir))).restore(str(workdir)).params)


@pytest.fixture
def workdir(trained_workdir, tmp_path):
  """A private copy of the session's trained smoke workdir (6 steps, checkpoints at 3 and 6)."""
  path = tmp_path / "run"
  shutil.copytree(trained_workdir, path)
  return str(path)


# --- 1. a config that does not fit the workdir changes nothing ----------------------------------------------------
def test_an_incompatible_config_leaves_the_workdir_as_it_was(workdir, tiny_data_dir, tmp_path, capsys):
  before = snapshot(workdir)
  code, _, err = run_cli(train_argv(workdir, tiny_data_dir, "--config.model.overrides={'depth': 2}",
                                    "--config.train.steps=9"), capsys)
  assert_one_line_error(code, err, workdir, "config.json")
  assert snapshot(workdir) == before
  code, out, _ = run_cli(["tag", tone(tmp_path / "clip.wav"), "--checkpoint", workdir], capsys)
  assert code == 0 and out.startswith(str(tmp_path / "clip.wav"))


# --- 2. a model directory never lands on a workdir or another model -----------------------------------------------
def test_model_directories_are_written_only_where_nothing_is_lost(workdir, tmp_path, capsys):
  before = snapshot(workdir)
  code, _, err = run_cli(["average", "--workdir", workdir, "--last", "1", "--out", workdir], capsys)
  assert_one_line_error(code, err, "is a training workdir")
  assert snapshot(workdir) == before
  other = tmp_path / "notes"
  other.mkdir()
  (other / "todo.txt").write_text("mine")
  code, _, err = run_cli(["average", "--workdir", workdir, "--last", "1", "--out", str(other)], capsys)
  assert_one_line_error(code, err, "not a model directory")
  model = str(tmp_path / "model")
  assert run_cli(["average", "--workdir", workdir, "--last", "1", "--out", model], capsys)[0] == 0
  first = snapshot(model)
  code, _, err = run_cli(["average", "--workdir", workdir, "--last", "2", "--out", model], capsys)
  assert_one_line_error(code, err, "already holds a model directory", "--force")
  assert snapshot(model) == first
  assert run_cli(["average", "--workdir", workdir, "--last", "2", "--out", model, "--force"], capsys)[0] == 0
  assert snapshot(model) != first and not glob.glob(model + ".*")  # replaced whole, no partial folders left


# --- 3. a corrupt newest checkpoint falls back to the newest intact one -----------------------------------------
def _corrupt(workdir, step):
  files = glob.glob(os.path.join(workdir, "checkpoints", str(step), "state", "**", "d", "*"), recursive=True)
  assert files
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 2)


def test_a_corrupt_newest_checkpoint_falls_back_to_the_newest_intact_step(workdir, tiny_data_dir, tmp_path, capsys,
                                                                          caplog):
  intact = checkpoint.restore_variables(workdir)
  older = checkpoint.steps(workdir)[1]
  _corrupt(workdir, checkpoint.steps(workdir)[0])
  restored = checkpoint.restore_variables(workdir)
  assert "is unreadable" in caplog.text and "using step 3" in caplog.text
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(intact)))
  code, out, err = run_cli(["tag", tone(tmp_path / "clip.wav"), "--checkpoint", workdir], capsys)
  assert code == 0 and "Traceback" not in err
  code, out, _ = run_cli(["eval", "--workdir", workdir], capsys)
  assert code == 0 and json.loads(out)["step"] == older
  code, _, err = run_cli(train_argv(workdir, tiny_data_dir), capsys)  # resumes from step 3, writes step 6 again
  assert code == 0 and checkpoint.steps(workdir)[0] == 6
  assert glob.glob(os.path.join(workdir, "corrupt_checkpoints", "6-*"))


# --- 4. a kill between the final checkpoint and the final evaluation ----------------------------------------------
def test_a_rerun_completes_a_missing_final_evaluation(workdir, tiny_data_dir, capsys):
  path = os.path.join(workdir, "metrics.jsonl")
  rows = [json.loads(line) for line in open(path)]
  with open(path, "w") as f:  # as if killed after the step-6 checkpoint, before its evaluation was recorded
    f.writelines(json.dumps(r) + "\n" for r in rows if "eval/mAP" not in r)
  code, out, _ = run_cli(train_argv(workdir, tiny_data_dir), capsys)
  assert code == 0 and "step 6: held-out mAP" in out
  evals = [r for r in map(json.loads, open(path)) if "eval/mAP" in r]
  assert [r["step"] for r in evals] == [6]
  code, out, _ = run_cli(train_argv(workdir, tiny_data_dir), capsys)  # a third run evaluates nothing more
  assert code == 0 and "step 6: held-out mAP" in out
  assert [r["step"] for r in map(json.loads, open(path)) if "eval/mAP" in r] == [6]


# --- 5. a failed save stops training at once ------------------------------------------------------------------------
def test_a_failed_checkpoint_save_stops_training_with_one_line(tiny_data_dir, tmp_path):
  """Files past 200 kB fail with EFBIG (SIGXFSZ ignored): every checkpoint write fails, as on a full disk."""
  workdir = tmp_path / "full"
  argv = [sys.executable, "-m", "audiojax"] + train_argv(workdir, tiny_data_dir, "--config.train.steps=12")
  proc = subprocess.run(["bash", "-c", 'ulimit -f 195; trap "" XFSZ; exec "$@"', "bash", *argv],
                        capture_output=True, text=True, env={**os.environ, "AUDIOJAX_COMPILATION_CACHE": ""})
  assert_one_line_error(proc.returncode, proc.stderr, "writing a checkpoint", "File too large", "free disk space")
  rows = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
  assert max(r["step"] for r in rows) < 12 and not any("eval/mAP" in r for r in rows)


# --- 6. SIGTERM / SIGINT checkpoint the step in progress; the rerun resumes exactly -----------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tiny_data_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("straight")
  loop.train(registry.build(smoke_config(tiny_data_dir, train__steps=40, checkpoint__every_steps=100)), str(workdir))
  return final_params(workdir)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_checkpoints_the_step_in_progress_and_the_rerun_resumes_exactly(sig, uninterrupted, tiny_data_dir,
                                                                                 tmp_path):
  workdir = tmp_path / "preempted"
  argv = [sys.executable, "-m", "audiojax"] + train_argv(workdir, tiny_data_dir, "--config.train.steps=40",
                                                          "--config.checkpoint.every_steps=100")
  proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "AUDIOJAX_COMPILATION_CACHE": ""})
  metrics = workdir / "metrics.jsonl"
  deadline = time.time() + 300
  while time.time() < deadline and not (metrics.exists() and any(json.loads(l)["step"] >= 6 for l in open(metrics))):
    time.sleep(0.2)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 128 + sig and "Traceback" not in err, err
  last = err.strip().splitlines()[-1]
  assert last.startswith(f"interrupted by {sig.name} at step") and "rerun the same command" in last
  stopped = int(last.split(" at step ")[1].split(":")[0])
  assert 6 <= stopped < 40 and checkpoint.steps(str(workdir)) == [stopped]
  loop.train(registry.build(smoke_config(tiny_data_dir, train__steps=40, checkpoint__every_steps=100)), str(workdir))
  for a, b in zip(jax.tree.leaves(final_params(workdir)), jax.tree.leaves(uninterrupted), strict=True):
    np.testing.assert_array_equal(a, b)
  steps = [r["step"] for r in map(json.loads, open(metrics)) if "loss" in r]
  assert steps == sorted(set(steps))  # every logged step once: rows past the checkpoint were dropped on resume


# --- 7. mistakes that ended in tracebacks --------------------------------------------------------------------------
@pytest.mark.parametrize("extra,fragments", [
    (["--config.model.overrides={'depthh': 2}"], ["config.model.overrides has 'depthh'", "valid: "]),
    (["--config.mesh={'dat': 8}"], ["unknown config key 'mesh.dat'", "valid keys: data, fsdp, tensor"]),
    (["--config.train.batch_size=0"], ["config.train.batch_size=0 must be a positive integer"]),
    (["--config.checkpoint.every_steps=0"], ["config.checkpoint.every_steps=0 must be a positive integer"]),
    (["--config.train.log_every=0"], ["config.train.log_every=0 must be a positive integer"]),
    (["--config.train.steps=-5"], ["config.train.steps=-5 must be a positive integer"]),
])
def test_bad_training_configs_are_one_line_errors_that_create_nothing(extra, fragments, tiny_data_dir, tmp_path,
                                                                     capsys):
  workdir = tmp_path / "never"
  code, _, err = run_cli(train_argv(workdir, tiny_data_dir, *extra), capsys)
  assert_one_line_error(code, err, *fragments)
  assert not workdir.exists()


@pytest.mark.parametrize("spec,fragments", [
    ("experiments/ced/demo.py:bogus", ["demo.py:bogus", "unknown config argument 'bogus'"]),
    ("experiments/ced/audioset.py:variant=huge", ["variant=huge", "variant must be one of"]),
    ("SYNTAX", ["syntax error at line 1"]),
])
def test_bad_config_files_and_arguments_are_one_line_errors(spec, fragments, tmp_path, capsys):
  if spec == "SYNTAX":
    spec = str(tmp_path / "broken.py")
    open(spec, "w").write("def get_config(:\n  pass\n")
  code, _, err = run_cli(["train", "--config", spec, "--workdir", str(tmp_path / "w")], capsys)
  assert_one_line_error(code, err, *fragments)


def test_unusable_workdirs_are_one_line_errors(tiny_data_dir, tmp_path, capsys):
  a_file = tmp_path / "file"
  a_file.write_text("x")
  code, _, err = run_cli(train_argv(a_file, tiny_data_dir), capsys)
  assert_one_line_error(code, err, "is a file")
  code, _, err = run_cli(train_argv("/proc/audiojax_workdir", tiny_data_dir), capsys)  # a read-only file system
  assert_one_line_error(code, err, "/proc/audiojax_workdir", "choose a folder you can write")


def test_a_model_directory_is_not_a_workdir(workdir, tiny_data_dir, tmp_path, capsys):
  model = str(tmp_path / "model")
  assert run_cli(["average", "--workdir", workdir, "--last", "1", "--out", model], capsys)[0] == 0
  before = snapshot(model)
  code, _, err = run_cli(train_argv(model, tiny_data_dir), capsys)
  assert_one_line_error(code, err, "is a model directory", "--config.init.checkpoint")
  assert snapshot(model) == before


@pytest.mark.parametrize("damage,fragments", [
    ("bad_json", ["is not valid JSON"]),
    ("no_config", ["has no 'config' object"]),
    ("extra_key", ["unknown keys ['width']"]),
    ("wrong_type", ["wrongly typed ['depth']"]),
    ("no_variables", ["has no model.safetensors"]),
])
def test_damaged_model_directories_are_one_line_errors(damage, fragments, workdir, tmp_path, capsys):
  model = tmp_path / "model"
  assert run_cli(["average", "--workdir", workdir, "--last", "1", "--out", str(model)], capsys)[0] == 0
  meta = json.loads((model / "model.json").read_text())
  if damage == "bad_json":
    (model / "model.json").write_text("{not json")
  elif damage == "no_config":
    (model / "model.json").write_text(json.dumps({"family": "ced"}))
  elif damage == "extra_key":
    (model / "model.json").write_text(json.dumps({**meta, "config": {**meta["config"], "width": 3}}))
  elif damage == "wrong_type":
    (model / "model.json").write_text(json.dumps({**meta, "config": {**meta["config"], "depth": "one"}}))
  else:
    (model / "model.safetensors").unlink()
  code, _, err = run_cli(["tag", tone(tmp_path / "clip.wav"), "--checkpoint", str(model)], capsys)
  assert_one_line_error(code, err, *fragments)


def test_a_workdir_of_another_family_or_a_file_is_named(workdir, tmp_path, capsys):
  config = json.loads(open(os.path.join(workdir, "config.json")).read())
  asr_like = tmp_path / "asr"
  shutil.copytree(workdir, asr_like)
  (asr_like / "config.json").write_text(json.dumps({**config, "task": "asr"}))
  clip = tone(tmp_path / "clip.wav")
  code, _, err = run_cli(["tag", clip, "--checkpoint", str(asr_like)], capsys)
  assert_one_line_error(code, err, "holds a asr run, not a CED tagger")
  code, _, err = run_cli(["tag", clip, "--checkpoint", clip], capsys)
  assert_one_line_error(code, err, clip, "is a file")


def test_class_names_that_do_not_fit_the_model_name_the_file(workdir, tmp_path, capsys):
  names = os.path.join(workdir, "class_names.txt")
  open(names, "w").write("a\nb\n")
  code, _, err = run_cli(["tag", tone(tmp_path / "clip.wav"), "--checkpoint", workdir], capsys)
  assert_one_line_error(code, err, names, "2 class names", "outputs")


def test_data_export_into_a_folder_is_a_one_line_error(tiny_data_dir, tmp_path, capsys):
  code, _, err = run_cli(["data", "export", "gm_instruments/tiny", "--data-dir", tiny_data_dir, "--split", "test",
                          "--out", str(tmp_path)], capsys)
  assert_one_line_error(code, err, str(tmp_path), "is a folder")


def test_direct_api_errors_are_user_errors(workdir):
  with pytest.raises(UserError, match="no checkpoint of"):
    checkpoint.restore_newest(workdir, lambda step: 1 / 0)
  with pytest.raises(UserError, match="is a training workdir"):
    export.check_writable(workdir, force=True)


# --- 8. input that was accepted silently ----------------------------------------------------------------------------
def test_truncated_and_mis_scaled_audio_are_one_line_errors(workdir, tmp_path, capsys):
  whole = tone(tmp_path / "whole.wav", seconds=2.0)
  data = open(whole, "rb").read()
  cut = tmp_path / "cut.wav"
  cut.write_bytes(data[:len(data) // 2])  # the header still announces 2 s
  code, _, err = run_cli(["tag", str(cut), "--checkpoint", workdir], capsys)
  assert_one_line_error(code, err, str(cut), "is truncated", "download it again")
  loud = tmp_path / "loud.wav"
  t = np.arange(16000) / 16000
  sf.write(loud, (300.0 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000, subtype="FLOAT")
  code, _, err = run_cli(["tag", str(loud), "--checkpoint", workdir], capsys)
  assert_one_line_error(code, err, str(loud), "magnitude 300.0", "rescale it")
  code, _, _ = run_cli(["tag", whole, "--checkpoint", workdir], capsys)
  assert code == 0


class _Exploit:
  """Unpickling this would run ``print``: a checkpoint that carries code."""

  def __reduce__(self):
    return (print, ("pickled code ran",))


def test_a_refused_pickle_is_explained_without_torchs_advice_to_run_it(tmp_path):
  torch = pytest.importorskip("torch")
  from audiojax.convert.torch_io import read_state_dict
  torch.save({"model": {"w": torch.zeros(2)}, "payload": _Exploit()}, tmp_path / "evil.pt")
  with pytest.raises(UserError) as info:
    read_state_dict(tmp_path / "evil.pt")
  message = str(info.value)
  assert "never executes" in message and "weights_only=False" not in message and "\n" not in message


# --- 9. a converter reads only inside the folder it is given ---------------------------------------------------------
@pytest.mark.parametrize("shard", ["../outside.safetensors", "/tmp/outside.safetensors", "sub/../../outside.bin"])
def test_bert_shard_paths_outside_the_folder_are_refused(shard, tmp_path):
  from audiojax.convert import bert
  hf = tmp_path / "hf"
  hf.mkdir()
  (hf / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 4, "hidden_size": 8,
                                              "num_hidden_layers": 1, "num_attention_heads": 2,
                                              "intermediate_size": 16, "max_position_embeddings": 8}))
  (hf / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
  (tmp_path / "outside.safetensors").write_bytes(b"not read")
  (hf / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
  with pytest.raises(UserError, match="outside"):
    bert.convert(str(hf), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_a_cut_off_flac_is_a_one_line_error(workdir, tmp_path, capsys):
  whole, cut = tmp_path / "whole.flac", tmp_path / "cut.flac"
  t = np.arange(32000) / 16000
  sf.write(whole, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
  cut.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
  code, _, err = run_cli(["tag", str(cut), "--checkpoint", workdir], capsys)
  assert_one_line_error(code, err, str(cut), "damaged or cut off")


# --- 11. extending a finished run ---------------------------------------------------------------------------------
def test_extending_a_finished_run_equals_training_that_long_at_once(tiny_data_dir, tmp_path):
  """With a constant learning rate (the schedule is the only thing the step count changes), a run trained to 4 steps
  and then rerun with ``train.steps=8`` ends where an 8-step run ends."""
  def config(steps):
    return smoke_config(tiny_data_dir, train__steps=steps, optim__warmup_steps=0, optim__end_lr_factor=1.0,
                        train__log_every=1)
  loop.train(registry.build(config(8)), str(tmp_path / "straight"))
  loop.train(registry.build(config(4)), str(tmp_path / "extended"))
  loop.train(registry.build(config(8)), str(tmp_path / "extended"))
  for a, b in zip(jax.tree.leaves(final_params(tmp_path / "straight")),
                  jax.tree.leaves(final_params(tmp_path / "extended")), strict=True):
    np.testing.assert_array_equal(a, b)
  losses = [{r["step"]: r["loss"] for r in map(json.loads, open(tmp_path / name / "metrics.jsonl")) if "loss" in r}
            for name in ("straight", "extended")]
  assert losses[1][8] == losses[0][8]


# --- 2, 7, 8: converting a released CED checkpoint ------------------------------------------------------------------
def _released(tmp_path, name="release.safetensors", **changes):
  """A CED-tiny (2 blocks) state dict in the released layout as safetensors, with ``changes`` applied."""
  from ced_random_weights import random_state_dict, torch_state_dict_shapes
  from safetensors.numpy import save_file
  state = random_state_dict(torch_state_dict_shapes(192, 2, 10), seed=3)
  for key, value in changes.items():
    if value is None:
      del state[key]
    else:
      state[key] = value
  path = tmp_path / name
  save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(path))
  return str(path), state


def test_converting_into_a_workdir_is_refused_and_changes_nothing(workdir, tmp_path, capsys):
  path, _ = _released(tmp_path)
  before = snapshot(workdir)
  code, _, err = run_cli(["convert", "ced", "--torch-checkpoint", path, "--out", workdir], capsys)
  assert_one_line_error(code, err, "is a training workdir")
  assert snapshot(workdir) == before


@pytest.mark.parametrize("change,fragments", [
    ("missing_head", ["lacks the output layer"]),
    ("wrong_shape", ["blocks_0/mlp/fc1/kernel", "the model needs"]),
    ("nan", ["NaN or infinite values", "head"]),
])
def test_damaged_released_checkpoints_are_one_line_errors(change, fragments, tmp_path, capsys):
  _, state = _released(tmp_path, name="probe.safetensors")
  changes = {"missing_head": {"outputlayer.1.weight": None, "outputlayer.1.bias": None},
             "wrong_shape": {"blocks.0.mlp.fc1.weight": state["blocks.0.mlp.fc1.weight"][:-1]},
             "nan": {"outputlayer.1.bias": np.full_like(state["outputlayer.1.bias"], np.nan)}}[change]
  path, _ = _released(tmp_path, **changes)
  out = tmp_path / "out"
  code, _, err = run_cli(["convert", "ced", "--torch-checkpoint", path, "--out", str(out)], capsys)
  assert_one_line_error(code, err, path, *fragments)
  assert not out.exists()
