"""The codec-LM (VALL-E) task end to end on real (synthetic espeak-ng) speech: a codec's token pass writes stores, a
short training beats the unigram baseline on held-out voices, resumes bitwise, and exports a model directory."""
import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from audiojax import cli
from audiojax.config import loader as config_lib
from audiojax.data.token_store import TokenStore
from audiojax.errors import UserError
from audiojax.inference.codec import Coder
from audiojax.models import codec as codec_model
from audiojax.tasks import registry
from audiojax.train import checkpoint, export, loop

STEPS = 24


@pytest.fixture(scope="module")
def stores(espeak_tiny_dir, tmp_path_factory):
  """Token stores of espeak_prompt/tiny's train and test splits, from an untrained tiny codec at 1.6 kbps."""
  root = tmp_path_factory.mktemp("codec_lm")
  model = codec_model.Model("tiny")
  variables = nn.meta.unbox(model.init(jax.random.PRNGKey(0), *codec_model.example_inputs(model)))
  export.save(str(root / "codec"), codec_model.FAMILY, codec_model.to_config(model), variables, None)
  for split in ("train", "test"):
    cli.main(["codec", "tokens", "--checkpoint", str(root / "codec"), "--dataset", "espeak_prompt/tiny", "--split",
              split, "--bandwidth", "1.6", "--out", str(root / split), "--data-dir", espeak_tiny_dir])
  return root


def smoke_config(stores, **fields):
  c = config_lib.load(f"experiments/valle/espeak.py:smoke,tokens={stores}")
  c.train.steps = STEPS
  c.checkpoint.every_steps = STEPS // 2
  c.optim.lr = 3e-3
  for key, value in fields.items():
    section, _, field = key.partition("__")
    c[section][field] = value
  return c


@pytest.fixture(scope="module")
def trained(stores, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("valle"))
  config = smoke_config(stores, eval__at_start=True)
  loop.train(registry.build(config), workdir, until_step=STEPS // 2)
  result = loop.train(registry.build(config), workdir)
  return workdir, result


def _evals(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return {r["step"]: r for r in rows if "eval/ar_accuracy" in r}


def test_token_pass_writes_codes_that_match_the_codec(stores, espeak_tiny_dir):
  import tensorflow_datasets as tfds

  from audiojax.audio.io import from_pcm16

  store = TokenStore(str(stores / "test"))
  source = tfds.data_source("espeak_prompt/tiny", split="test", data_dir=espeak_tiny_dir)
  assert len(store) == len(source) and store.meta.n_q == 4 and store.meta.frame_rate == 50
  coder = Coder.from_checkpoint(str(stores / "codec"))
  assert store.meta.codec_id == coder.model_id
  for i in (0, len(store) - 1):  # batch-encoded codes equal the clip encoded alone, cut to whole frames
    wave = from_pcm16(source[i]["audio"])
    wave = wave[:wave.shape[0] // 320 * 320]
    alone = coder.encode_batch(wave[None], 4)[0].T
    np.testing.assert_array_equal(store.codes(i), alone)
    u = store.utterances[i]
    assert u.text == source[i]["text"].decode() and u.speaker == source[i]["speaker"].decode()
    assert len(u.phonemes) > 10 and "_" in u.phonemes


def test_training_beats_the_unigram_baseline_on_held_out_voices(trained):
  workdir, result = trained
  evals = _evals(workdir)
  first, last = evals[0], evals[STEPS]
  assert last["eval/ar_nll"] < first["eval/ar_nll"] - 1.0
  assert last["eval/ar_nll"] < last["eval/ar_nll_unigram"]
  assert last["eval/nar_accuracy"] > first["eval/nar_accuracy"]
  assert last["eval/examples"] == 8
  for key in ("eval/ar_accuracy_no_prompt", "eval/nar_accuracy_no_prompt@2", "eval/ar_accuracy_copy",
              "eval/ar_top10"):
    assert 0.0 <= last[key] <= 1.0


def test_resumed_run_equals_the_straight_run_bitwise(trained, stores, tmp_path):
  workdir, _ = trained
  straight = str(tmp_path / "straight")
  loop.train(registry.build(smoke_config(stores, eval__at_start=True)), straight)
  a, b = checkpoint.restore_variables(workdir), checkpoint.restore_variables(straight)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_export_writes_a_model_directory_with_vocabulary_and_codec(trained, tmp_path):
  workdir, _ = trained
  out = str(tmp_path / "model")
  cli.main(["export", workdir, "--out", out])
  meta = export.read_meta(out, "valle")
  assert meta["n_q"] == 4 and meta["model"]["depth"] == 2
  assert os.path.isfile(os.path.join(out, "phonemes.json"))
  assert Coder.from_checkpoint(os.path.join(out, "codec")).model_id == meta["codec_id"]


def test_bad_settings_are_one_line_errors(stores, tmp_path):
  with pytest.raises(UserError, match="train_store is empty"):
    registry.build(smoke_config(stores, data__train_store=""))
  with pytest.raises(UserError, match="not a codec token store"):
    registry.build(smoke_config(stores, data__train_store=str(tmp_path)))
  with pytest.raises(UserError, match="must end at config.data.max_positions"):
    registry.build(smoke_config(stores, data__bucket_positions=[128]))
  task = registry.build(smoke_config(stores, data__max_positions=32))
  with pytest.raises(UserError, match="max_positions=32"):
    task.eval_rows()


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("valle_model") / "model")
  cli.main(["export", trained[0], "--out", out])
  return out


@pytest.fixture(scope="module")
def prompt_wav(espeak_tiny_dir, tmp_path_factory):
  """A held-out voice's utterance as a WAV file, and its transcript."""
  import soundfile as sf
  import tensorflow_datasets as tfds

  example = tfds.data_source("espeak_prompt/tiny", split="test", data_dir=espeak_tiny_dir)[0]
  path = str(tmp_path_factory.mktemp("prompt") / "prompt.wav")
  sf.write(path, example["audio"], int(example["sample_rate"]), subtype="PCM_16")
  return path, example["text"].decode()


def test_speak_writes_speech_for_a_text_and_for_lines(model_dir, prompt_wav, tmp_path, capsys):
  import soundfile as sf

  audio, text = prompt_wav
  out = str(tmp_path / "one.wav")
  cli.main(["speak", "--checkpoint", model_dir, "--text", "Good morning. It is 7 o'clock.", "--prompt-audio", audio,
            "--prompt-text", text, "--out", out, "--seed", "3"])
  printed = capsys.readouterr().out
  assert "real-time factor" in printed and "2 sentence(s)" in printed
  wave, rate = sf.read(out)
  assert rate == 16000 and wave.shape[0] > 0.25 * rate and np.isfinite(wave).all()
  lines = tmp_path / "lines.txt"
  lines.write_text("The first line.\n\nA second line here.\n")
  cli.main(["speak", "--checkpoint", model_dir, "--lines", str(lines), "--prompt-audio", audio, "--prompt-text", text,
            "--out-dir", str(tmp_path / "many")])
  assert sorted(os.listdir(tmp_path / "many")) == ["0000.wav", "0001.wav"]


def test_speak_rejects_bad_input_with_one_line_and_writes_nothing(model_dir, prompt_wav, tmp_path, capsys):
  import soundfile as sf

  audio, text = prompt_wav
  short, silent = str(tmp_path / "short.wav"), str(tmp_path / "silent.wav")
  sf.write(short, np.random.default_rng(0).normal(0, 0.1, 8000), 16000)
  sf.write(silent, np.zeros(48000), 16000)
  long = str(tmp_path / "long.wav")
  sf.write(long, np.tile(sf.read(audio)[0], 3), 16000)
  out = str(tmp_path / "out.wav")
  cases = [(["--text", "   "], "empty"), (["--text", "?! ..."], "no pronounceable characters"),
           (["--text", "Hello.", "--language", "xx"], "is not one this model speaks"),
           (["--text", "Hello.", "--prompt-audio", short], "give at least 1 s"),
           (["--text", "Hello.", "--prompt-audio", silent], "is silence"),
           (["--text", "Hello.", "--prompt-audio", long, "--prompt-text", " ".join([text] * 3)],
            "longer than this model")]
  for extra, message in cases:
    args = ["speak", "--checkpoint", model_dir, "--prompt-audio", audio, "--prompt-text", text, "--out", out]
    with pytest.raises(SystemExit) as exit_info:
      cli.main(args + extra)
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and message in err and len(err.splitlines()) == 1, (extra, err)
    assert not os.path.exists(out)
