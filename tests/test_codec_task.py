"""The codec task: a short GAN training on held-out speech beats the untrained codec, resumes bitwise, and its
workdir and exported model directory both serve the codec commands."""
import json
import os

import jax
import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from audiojax import cli
from audiojax.config import loader as config_lib
from audiojax.errors import UserError
from audiojax.eval import codec as codec_eval
from audiojax.tasks import registry
from audiojax.train import checkpoint, loop

STEPS = 16


@pytest.fixture(scope="module")
def data_dir(espeak_tiny_dir):
  return espeak_tiny_dir


def smoke_config(data_dir, **fields):
  c = config_lib.load("experiments/codec/speech.py:smoke")
  c.data.data_dir = data_dir
  c.train.steps = STEPS
  c.checkpoint.every_steps = STEPS // 2
  c.optim.generator.lr = c.optim.discriminator.lr = 1e-3
  for key, value in fields.items():
    section, _, field = key.partition("__")
    c[section][field] = value
  return c


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
  """A run stopped halfway and resumed, evaluated at the start and at the end; the discriminator starts after a
  quarter of the steps."""
  workdir = str(tmp_path_factory.mktemp("codec"))
  config = smoke_config(data_dir, eval__at_start=True, loss__adversarial_start=STEPS // 4)
  loop.train(registry.build(config), workdir, until_step=STEPS // 2)
  result = loop.train(registry.build(config), workdir)
  return workdir, result


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def _evals(workdir):
  return {r["step"]: r for r in _rows(workdir) if "eval/mel_distance" in r}


def test_training_beats_the_untrained_codec_on_held_out_speech(trained):
  workdir, result = trained
  evals = _evals(workdir)
  start, end = evals[0], evals[STEPS]
  assert end["eval/examples"] == 16
  for kbps in ("0.4kbps", "0.8kbps", "1.6kbps", "3.2kbps"):  # SI-SNR needs phase, far beyond a few steps
    assert end[f"eval/mel_distance@{kbps}"] < 0.8 * start[f"eval/mel_distance@{kbps}"]
  train = result["train"]
  for key in ("generator/mel", "generator/adversarial", "generator/feature", "discriminator/loss", "codebooks"):
    assert np.isfinite(train[key])
  assert 1 <= train["codebooks"] <= 8
  logged = [r for r in _rows(workdir) if "adversary" in r]
  assert logged[0]["adversary"] == 0 and logged[0]["discriminator/loss"] == 0  # the warm-up: reconstruction alone
  assert logged[-1]["adversary"] == 1 and logged[-1]["discriminator/loss"] > 0


def test_resumed_run_equals_the_straight_run_bitwise(trained, data_dir, tmp_path):
  workdir, _ = trained
  straight = str(tmp_path / "straight")
  loop.train(registry.build(smoke_config(data_dir, eval__at_start=True, loss__adversarial_start=STEPS // 4)), straight)
  a, b = (checkpoint.restore_variables(w) for w in (workdir, straight))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)
  assert set(a) == {"params", "codebooks", "balancer"}
  assert set(a["params"]) == {"generator", "discriminator"}


def test_exported_codec_round_trips_a_file_through_the_codec_commands(trained, data_dir, tmp_path):
  workdir, result = trained
  model_dir = str(tmp_path / "model")
  cli.main(["export", workdir, "--out", model_dir])
  clip = tfds.data_source("espeak_prompt/tiny", split="test", data_dir=data_dir)[0]["audio"]
  wav, out = str(tmp_path / "in.wav"), str(tmp_path / "out.wav")
  sf.write(wav, clip, 16000, subtype="PCM_16")
  cli.main(["codec", "roundtrip", wav, "--checkpoint", model_dir, "--bandwidth", "3.2", "--out", out])
  decoded, rate = sf.read(out, dtype="float32")
  assert rate == 16000 and decoded.shape == clip.shape
  reference = clip.astype(np.float32) / 32768
  lengths = np.array([clip.shape[0]], np.int32)
  distance = float(codec_eval.log_mel_distance(reference[None], decoded[None], lengths, 16000)[0])
  evals = _evals(workdir)
  assert distance < evals[0]["eval/mel_distance"]  # the exported weights are the trained ones
  from_workdir = str(tmp_path / "from_workdir.wav")
  cli.main(["codec", "roundtrip", wav, "--checkpoint", workdir, "--bandwidth", "3.2", "--out", from_workdir])
  np.testing.assert_array_equal(sf.read(from_workdir, dtype="float32")[0], decoded)


def test_bad_loss_settings_are_one_line_errors(data_dir):
  with pytest.raises(UserError, match="config.loss.weights must give each of"):
    registry.build(smoke_config(data_dir, loss__weights={"mel": 1.0}))
  with pytest.raises(UserError, match="grad_accum_steps=1"):
    registry.build(smoke_config(data_dir, train__grad_accum_steps=2))
