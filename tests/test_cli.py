"""Command line: tagging works, and every kind of bad input is a one-line error (exit status 2, no traceback)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audiojax import cli


def run_cli(argv, capsys):
  """Runs ``python -m audiojax ARGV`` in-process → (exit code, stdout, stderr)."""
  code = 0
  try:
    cli.main(argv)
  except SystemExit as e:
    code = e.code
  out = capsys.readouterr()
  return code, out.out, out.err


def tone(seconds, rate, freq=440.0):
  t = np.arange(int(seconds * rate)) / rate
  return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def assert_one_line_error(code, err, *fragments):
  lines = [l for l in err.splitlines() if l.startswith("error:")]
  assert code == 2, err
  assert len(lines) == 1, err
  assert "Traceback" not in err
  for fragment in fragments:
    assert fragment in lines[0], lines[0]


def test_tag_prints_top_k_labels(trained_workdir, tmp_path, capsys):
  path = tmp_path / "clip.wav"
  sf.write(path, tone(1.0, 16000), 16000)
  code, out, _ = run_cli(["tag", str(path), "--checkpoint", trained_workdir, "--top-k", "3"], capsys)
  assert code == 0
  lines = out.strip().splitlines()
  assert lines[0] == str(path) and len(lines) == 4
  names = open(os.path.join(trained_workdir, "class_names.txt")).read().split()
  for line in lines[1:]:
    prob, name = line.split()
    assert 0.0 <= float(prob) <= 1.0 and name in names


def test_non_16khz_audio_is_resampled_and_said_so(trained_workdir, tmp_path, capsys):
  path = tmp_path / "cd.flac"
  sf.write(path, np.stack([tone(1.0, 44100)] * 2, axis=1), 44100)
  code, out, err = run_cli(["tag", str(path), "--checkpoint", trained_workdir], capsys)
  assert code == 0 and "is 44100 Hz; resampled to 16000 Hz" in err and len(out.splitlines()) == 6


def _bad_file(kind, tmp_path):
  path = tmp_path / f"{kind}.wav"
  if kind == "empty":
    sf.write(path, np.zeros(0, np.float32), 16000)
  elif kind == "not_audio":
    path.write_text("this is a text file, not a recording")
  elif kind == "nan":
    wave = tone(1.0, 16000)
    wave[100] = np.nan
    sf.write(path, wave, 16000, subtype="FLOAT")
  elif kind == "too_short":
    sf.write(path, tone(0.1, 16000), 16000)
  return path


@pytest.mark.parametrize("kind,fragments", [
    ("missing", ["does not exist", "check the path"]),
    ("empty", ["is empty", "give a recording"]),
    ("not_audio", ["cannot read audio file", "WAV, FLAC or OGG"]),
    ("nan", ["NaN", "re-export"]),
    ("too_short", ["100 ms long", "needs at least 150 ms"]),
])
def test_bad_audio_is_a_one_line_error(kind, fragments, trained_workdir, tmp_path, capsys):
  path = _bad_file(kind, tmp_path)
  code, _, err = run_cli(["tag", str(path), "--checkpoint", trained_workdir], capsys)
  assert_one_line_error(code, err, str(path), *fragments)


def test_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
  clip = tmp_path / "clip.wav"
  sf.write(clip, tone(1.0, 16000), 16000)
  code, _, err = run_cli(["tag", str(clip), "--checkpoint", str(tmp_path / "nowhere")], capsys)
  assert_one_line_error(code, err, "nowhere", "does not exist", "training workdir")
  code, _, err = run_cli(["eval", "--workdir", str(tmp_path / "nowhere")], capsys)
  assert_one_line_error(code, err, "nowhere")


def test_workdir_without_checkpoints_is_a_one_line_error(trained_workdir, tmp_path, capsys):
  empty = tmp_path / "fresh"
  empty.mkdir()
  for name in ("config.json", "class_names.txt"):
    (empty / name).write_text(open(os.path.join(trained_workdir, name)).read())
  clip = tmp_path / "clip.wav"
  sf.write(clip, tone(1.0, 16000), 16000)
  code, _, err = run_cli(["tag", str(clip), "--checkpoint", str(empty)], capsys)
  assert_one_line_error(code, err, "no checkpoint in", "train first")


def test_unknown_config_key_is_a_one_line_error(tmp_path, capsys):
  code, _, err = run_cli(["train", "--config", "experiments/ced/demo.py:local", "--workdir", str(tmp_path),
                          "--config.optim.learning_rate=1e-3"], capsys)
  assert_one_line_error(code, err, "unknown config key 'optim.learning_rate'", "valid keys")


def test_mesh_that_does_not_divide_the_batch_is_a_one_line_error(tiny_data_dir, tmp_path, capsys):
  code, _, err = run_cli(["train", "--config", "experiments/ced/demo.py:local", "--workdir", str(tmp_path),
                          f"--config.data.data_dir={tiny_data_dir}", "--config.train.batch_size=12"], capsys)
  assert_one_line_error(code, err, "config.train.batch_size=12", "multiple of 8")


def test_errors_exit_2_without_traceback_in_a_real_process(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "audiojax", "tag", str(tmp_path / "absent.wav"), "--checkpoint",
                         str(tmp_path)], capture_output=True, text=True)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith("error: ")


def test_compilation_cache_is_written_and_reused_by_a_real_process(trained_workdir, tmp_path):
  """``python -m audiojax`` turns on JAX's persistent cache: the first run fills it and a second run reads it."""
  sf.write(tmp_path / "clip.wav", tone(1.0, 16000), 16000)
  cache = tmp_path / "xla"
  env = {**os.environ, "AUDIOJAX_COMPILATION_CACHE": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
  argv = [sys.executable, "-m", "audiojax", "tag", str(tmp_path / "clip.wav"), "--checkpoint", trained_workdir]
  first = subprocess.run(argv, capture_output=True, text=True, env=env)
  entries = sorted(os.listdir(cache)) if cache.exists() else []
  assert first.returncode == 0 and entries, first.stderr
  second = subprocess.run(argv, capture_output=True, text=True, env=env)
  assert second.returncode == 0 and second.stdout == first.stdout
  assert sorted(os.listdir(cache)) == entries  # every program came from the cache: nothing new was written
