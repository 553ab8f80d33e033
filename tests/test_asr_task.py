"""PromptASR end to end on real espeak-ng speech: train (smoke), evaluate, resume, export and transcribe."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from audiojax import cli
from audiojax.config import loader as config_lib
from audiojax.inference import load
from audiojax.inference import transcriber as asr_inference
from audiojax.inference.transcriber import Transcriber
from audiojax.tasks import registry
from audiojax.train import loop


@pytest.fixture(scope="module")
def data_dir(espeak_tiny_dir):
  return espeak_tiny_dir


@pytest.fixture(scope="module")
def workdir(data_dir, tmp_path_factory):
  config = config_lib.load("experiments/prompt_asr/espeak.py:local")
  config.data.data_dir = data_dir
  wd = str(tmp_path_factory.mktemp("asr"))
  result = loop.train(registry.build(config), wd)
  return wd, result


def test_smoke_training_logs_losses_and_per_condition_metrics(workdir):
  wd, result = workdir
  records = [json.loads(line) for line in open(os.path.join(wd, "metrics.jsonl"))]
  losses = [r for r in records if "rnnt_loss" in r]
  assert losses and all(np.isfinite(r["loss"]) and r["ctc_feasible"] == 1.0 for r in losses)
  ev = result["eval"]
  assert ev["eval/examples"] == 8
  for condition in ("mixed-punc/canonical/pre_text", "upper-no-punc/canonical/none"):
    for metric in ("wer", "styled_wer", "style_ok", "rare_word_recall"):
      assert 0.0 <= ev[f"eval/{condition}/{metric}"] <= 1.0 or metric.endswith("wer")
  assert os.path.isfile(os.path.join(wd, "tokenizer.model"))


def test_transcribe_cli_reads_the_workdir(workdir, data_dir, tmp_path):
  wd, _ = workdir
  wav = tmp_path / "long.wav"
  # 20 s: three windows of the model's 7.5 s, so the long-file path (windows + history prompt) runs
  rng = np.random.default_rng(0)
  sf.write(wav, (rng.standard_normal(20 * 16000) * 0.01).astype(np.float32), 16000)
  words = tmp_path / "words.txt"
  words.write_text("Zorbakin\nKalavik\n")
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  out = subprocess.run([sys.executable, "-m", "audiojax", "transcribe", str(wav), "--checkpoint", wd,
                        "--style-prompt", "upper-no-punc", "--biasing-list", str(words), "--beam", "2"],
                       capture_output=True, text=True, env=env, check=False)
  assert out.returncode == 0, out.stderr
  assert out.stdout.startswith(f"{wav}\t")
  bad = subprocess.run([sys.executable, "-m", "audiojax", "transcribe", str(wav), "--checkpoint", str(tmp_path)],
                       capture_output=True, text=True, env=env, check=False)
  assert bad.returncode == 2 and "tokenizer.model" in bad.stderr


def test_exported_model_directory_transcribes_like_the_workdir(workdir, data_dir, tmp_path):
  wd, _ = workdir
  model, variables, _, _ = load.prompt_asr(wd)
  registry.task_for_workdir(wd).export(str(tmp_path / "model"), variables)
  source = tfds.data_source("espeak_prompt/tiny", split="test", data_dir=data_dir)
  wave = source[0]["audio"].astype(np.float32) / 32768.0
  texts = [Transcriber.from_checkpoint(path).transcribe_window(wave, "Mixed case.", "A prompt.")
           for path in (wd, str(tmp_path / "model"))]
  assert texts[0] == texts[1]



def test_batched_transcription_and_the_rare_word_study(workdir, data_dir, tmp_path):
  wd, _ = workdir
  transcriber = Transcriber.from_checkpoint(wd)
  source = tfds.data_source("espeak_prompt/tiny", split="test", data_dir=data_dir)
  waves = [source[i]["audio"].astype(np.float32) / 32768.0 for i in range(3)]
  pairs = [("Mixed case.", "A prompt."), ("UPPER CASE", ""), ("Mixed case.", "Zorbak Kalavik")]
  graphs = [None, asr_inference.hotword_graph(transcriber.tokenizer, ["Zorbak"], 2.0), None]
  batched = transcriber.transcribe_batch(waves, pairs, beam=2, graphs=graphs)
  assert batched == [transcriber.transcribe_window(w, s, c, beam=2, graph=g)
                     for w, (s, c), g in zip(waves, pairs, graphs)]
  out = tmp_path / "study.json"
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  run = subprocess.run([sys.executable, "experiments/prompt_asr/studies/biasing.py", "--checkpoint", wd,
                        "--data-dir", data_dir, "--limit", "6", "--distractors", "3", "--batch-size", "4",
                        "--bonus", "2", "5", "--beam", "3", "--json", str(out)],
                       capture_output=True, text=True, env=env, check=False)
  assert run.returncode == 0, run.stderr
  results = json.loads(out.read_text())["results"]
  assert len(results) == 9 + 4 and "| beam + hotwords (list), no prompt |" in run.stdout
  assert "beam + hotwords (list), no prompt, bonus 5" in results
  for metrics in results.values():
    assert metrics["utterances"] == 6 and 0.0 <= metrics["recall"] <= 1.0 and 0 <= metrics["false_alarm_rate"] <= 1


def test_corpus_transcription_equals_transcribing_each_file(workdir, data_dir, tmp_path):
  from audiojax.inference.transcriber import transcribe_corpus

  wd, _ = workdir
  transcriber = Transcriber.from_checkpoint(wd)
  source = tfds.data_source("espeak_prompt/tiny", split="test", data_dir=data_dir)
  short = [source[i]["audio"].astype(np.float32) / 32768.0 for i in range(3)]
  long = np.concatenate(short * 3)  # longer than the 7.5-s window: decoded in windows with history
  waves = [short[0], long, short[1], short[2]]
  paths = []
  for i, wave in enumerate(waves):
    paths.append(str(tmp_path / f"{i}.wav"))
    sf.write(paths[-1], wave, 16000, subtype="FLOAT")
  style = asr_inference.style_prompt_for("mixed-punc")
  assert len(long) > transcriber.window
  assert transcribe_corpus(transcriber, waves, style_prompt=style, batch_size=2) == [
      transcriber.transcribe_file(p, style_prompt="mixed-punc") for p in paths]


def test_length_buckets_cut_only_padding_and_resume_exactly(data_dir):
  from audiojax.audio.io import from_pcm16
  from audiojax.tasks.asr import AsrTask
  config = config_lib.load("experiments/prompt_asr/espeak.py:local")
  config.data.data_dir = data_dir
  config.data.bucket_seconds = (1.5, 2.5, 3.5)
  task = AsrTask(config)
  edges = task.bucket_samples()
  assert edges == (24000, 40000, 56000, task.max_samples)
  source = tfds.data_source(config.data.name, split=config.data.train_split, data_dir=data_dir)
  audio = [from_pcm16(source[i]["audio"]) for i in range(len(source))]
  batches = [b for _, b in zip(range(6), iter(task.train_dataset(3)))]
  widths = set()
  for batch in batches:
    width, longest = batch["wave"].shape[1], int(batch["wave_lengths"].max())
    widths.add(width)
    assert batch["wave"].shape[0] == config.train.batch_size
    assert width in edges and longest <= width and not [e for e in edges if longest <= e < width]
    for wave, n in zip(batch["wave"], batch["wave_lengths"]):  # each row is a whole utterance, then zeros
      assert any(len(a) == n and np.array_equal(a, wave[:n]) for a in audio) and not wave[n:].any()
  assert len(widths) > 1
  restarted = iter(task.train_dataset(3))
  for want in batches:
    got = next(restarted)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_ctc_decoder_reads_the_ctc_head_in_inference_and_evaluation(workdir, data_dir):
  import jax

  from audiojax.tasks.asr import AsrTask
  wd, _ = workdir
  model, variables, tokenizer, settings = load.prompt_asr(wd)
  source = tfds.data_source("espeak_prompt/tiny", split="test", data_dir=data_dir)
  waves = [source[i]["audio"].astype(np.float32) / 32768.0 for i in range(3)]
  pairs = [("Mixed case.", "A prompt."), ("UPPER CASE", ""), ("Mixed case.", "Zorbak Kalavik")]
  # a random CTC head, so best paths are not all blank after 4 training steps. After 4 steps the encoder output is
  # nearly the same vector at every frame; a bias that cancels its mean lets the frames' differences pick the tokens.
  variables = jax.tree.map(lambda x: x, variables)
  head = variables["params"]["ctc_head"]
  head["kernel"] = np.random.default_rng(0).normal(0, 1, head["kernel"].shape).astype(np.float32)
  ctc = Transcriber(model, variables, tokenizer, settings, decoder="ctc")
  ids, lengths, style_lengths = ctc.encode_prompts(pairs)
  padded = np.zeros((3, ctc.window), np.float32)
  for i, w in enumerate(waves):
    padded[i, :len(w)] = w
  wave_lengths = np.asarray([len(w) for w in waves], np.int32)
  memory = model.apply(variables, ids, lengths, style_lengths, method="encode_prompt")
  enc, enc_lengths = model.apply(variables, padded, wave_lengths, memory, lengths, method="encode_speech")
  valid = np.arange(enc.shape[1])[None, :] < np.asarray(enc_lengths)[:, None]
  head["bias"] = -(np.asarray(enc)[valid].mean(0) @ head["kernel"]).astype(np.float32)
  ctc = Transcriber(model, variables, tokenizer, settings, decoder="ctc")
  texts = ctc.transcribe_batch(waves, pairs)
  # independently: the CTC head's per-frame argmax, repeats merged, blanks dropped
  best = np.asarray(model.apply(variables, enc, method="ctc_logits")).argmax(-1)
  want = []
  for b in range(3):
    path = [int(x) for x in best[b, :int(enc_lengths[b])]]
    want.append([x for i, x in enumerate(path) if x != 0 and (i == 0 or x != path[i - 1])])
  assert sum(map(len, want)) >= 3 and len({t for w in want for t in w}) >= 2
  assert texts == [tokenizer.decode(w) for w in want]
  assert len(ctc.transcribe_batch(waves, pairs, beam=3)) == 3
  # the evaluation path decodes the same on device
  config = config_lib.restore(os.path.join(wd, "config.json"))
  config.eval.decoder = "ctc"
  out = AsrTask(config).predict(variables, {"wave": padded, "wave_lengths": wave_lengths, "prompt_ids": ids,
                                            "prompt_lengths": lengths, "style_lengths": style_lengths,
                                            "valid": np.ones(3, bool)})
  tokens, emitted = np.asarray(out["tokens"]), np.asarray(out["emitted"])
  assert [tokens[b][emitted[b]].tolist() for b in range(3)] == want


def test_corpus_wer_with_a_character_lm_from_the_training_transcripts(workdir, data_dir, tmp_path, capsys):

  wd, _ = workdir
  lm_text = tmp_path / "lm.txt"
  cli.main(["lm-corpus", "--dataset", "espeak_prompt/tiny", "--data-dir", data_dir, "--out", str(lm_text), "--order",
            "4"])
  train = tfds.data_source("espeak_prompt/tiny", split="train", data_dir=data_dir)
  lines = lm_text.read_text(encoding="utf-8").splitlines()
  assert len(lines) == 2 * len(train) and lines[len(train)] == lines[len(train)].upper()
  assert "per-character perplexity" in capsys.readouterr().out
  common = ["--checkpoint", wd, "--dataset", "espeak_prompt/tiny", "--data-dir", data_dir, "--limit", "3"]
  cli.main(["wer"] + common + ["--decoder", "ctc", "--beam", "3", "--lm", str(lm_text), "--lm-order", "4",
                               "--lm-weight", "0.6"])
  result = json.loads(capsys.readouterr().out)
  assert result["utterances"] == 3 and result["lm"] == {"file": str(lm_text), "order": 4, "weight": 0.6,
                                                         "token_bonus": 0.0, "oov_penalty": 0.0}
  cli.main(["wer"] + common + ["--beam", "2", "--lm", str(lm_text), "--lm-oov-penalty", "2"])  # the transducer
  assert json.loads(capsys.readouterr().out)["lm"]["oov_penalty"] == 2.0
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["wer"] + common + ["--decoder", "ctc", "--lm", str(lm_text)])
  assert exit_info.value.code == 2 and "give --beam 2 or more" in capsys.readouterr().err
  # the rare-word study fuses the LM into its beam settings only
  from audiojax.decoding import CharNgramLM
  from experiments.prompt_asr.studies import biasing
  transcriber = Transcriber.from_checkpoint(wd, decoder="ctc", lm=CharNgramLM.from_file(str(lm_text), 4))
  examples = biasing.load_examples(wd, "espeak_prompt/tiny", "test", 3, data_dir)
  results = biasing.run_study(transcriber, examples, distractors=1, settings=biasing.SETTINGS[:1] +
                              biasing.SETTINGS[4:6], log=lambda _: None)
  assert set(results) == {"greedy, no prompt", "beam, no prompt, LM", "beam + hotwords (list), no prompt, LM"}
  assert transcriber.lm is not None


def test_am_only_scale_reaches_the_simple_loss(data_dir):
  """``config.loss.am_only_scale`` is the simple loss's am-only smoothing: the task's ``simple_loss`` equals the
  objective's on the same encoder and predictor outputs, and differs from the unsmoothed one."""
  import jax
  import jax.numpy as jnp

  from audiojax.objectives.rnnt import rnnt_loss_simple
  from audiojax.tasks.asr import predictor_contexts

  config = config_lib.load("experiments/prompt_asr/espeak.py:local")
  config.data.data_dir = data_dir
  trainer = loop.Trainer(registry.build(config))
  task, state = trainer.task, trainer.init_state(0)
  batch = jax.tree.map(jnp.asarray, next(iter(task.train_dataset(0))))
  key = jax.random.key(1)
  variables = {"params": state.params, **state.model_state}
  out = task.model.apply(variables, *task._inputs(batch), train=True, rngs={"dropout": key})
  pred = task.model.apply(variables, predictor_contexts(batch["labels"], task.model.context_size), method="predictor")
  am, lm = task.model.apply(variables, out["encoder_out"], pred, method="simple_logits")
  tokens = float(jnp.sum(batch["label_lengths"] + 1))
  got = {}
  for scale in (0.0, 0.75):
    config.loss.am_only_scale = scale
    _, (metrics, _) = task.loss(state.params, state.model_state, batch, key, step=jnp.asarray(10))
    want = rnnt_loss_simple(lm, am, batch["labels"], out["enc_lengths"], batch["label_lengths"],
                            lm_only_scale=float(config.loss.lm_only_scale), am_only_scale=scale)
    got[scale] = float(metrics["simple_loss"])
    np.testing.assert_allclose(got[scale], float(jnp.sum(want)) / tokens, rtol=1e-5)
  assert abs(got[0.75] - got[0.0]) > 1e-4  # at init the am is near uniform, so the smoothing moves the loss little


def test_prompt_guide_joins_the_loss_and_pulls_the_attention_to_the_names(data_dir):
  """``loss.prompt_guide_scale``: the task's guide is the objective on the attention that
  ``experiments/prompt_asr/studies/prompt_attention.py`` recomputes, it enters the loss at its scale, and a few steps
  on it alone put more of the guided head's weight on the names, on the batch trained on and on another."""
  import jax
  import jax.numpy as jnp
  import optax

  from audiojax.objectives.ctc import ctc_alignment
  from audiojax.objectives.prompt_guide import frame_guide_loss, prompt_guide_loss
  from experiments.prompt_asr.studies.prompt_attention import cross_attention_weights

  config = config_lib.load("experiments/prompt_asr/espeak.py:local")
  config.data.data_dir = data_dir
  config.loss.prompt_guide_scale = 0.5
  config.model.overrides = {**config.model.overrides, "dropout": 0.0, "memory_dropout": 0.0, "spec_augment": False}
  trainer = loop.Trainer(registry.build(config))
  task, state = trainer.task, trainer.init_state(0)
  batches = iter(task.train_dataset(0))
  train = [jax.tree.map(jnp.asarray, next(batches)) for _ in range(6)]
  batch, other = train[0], jax.tree.map(jnp.asarray, next(batches))
  assert all(b["prompt_targets"].any() for b in train) and other["prompt_targets"].any()
  key = jax.random.key(1)
  variables = {"params": state.params, **state.model_state}

  def guide(params, b):
    weights, enc_lengths, _ = cross_attention_weights(task.model, {**variables, "params": params}, b["wave"],
                                                      b["wave_lengths"], b["prompt_ids"], b["prompt_lengths"],
                                                      b["style_lengths"])
    return prompt_guide_loss([w[:, :1] for w in weights.values()], b["prompt_targets"], jnp.asarray(enc_lengths))

  loss, (metrics, _) = task.loss(state.params, state.model_state, batch, key, step=jnp.asarray(10))
  want_loss, want_mass = guide(state.params, batch)
  np.testing.assert_allclose(metrics["prompt_guide_loss"], want_loss, rtol=1e-4)
  np.testing.assert_allclose(metrics["prompt_guide_mass"], want_mass, rtol=1e-4)
  np.testing.assert_allclose(loss, metrics["rnnt_loss"] + 0.3 * metrics["ctc_loss"] + 0.5 * want_loss, rtol=1e-5)

  # the aligned form: per-token targets (B, U, M), here every token pointed at the names; each frame takes the
  # targets of the token this step's CTC alignment gives it
  weights, enc_lengths, _ = cross_attention_weights(task.model, variables, batch["wave"], batch["wave_lengths"],
                                                    batch["prompt_ids"], batch["prompt_lengths"],
                                                    batch["style_lengths"])
  per_token = jnp.repeat(batch["prompt_targets"][:, None], batch["labels"].shape[1], axis=1)
  out = task.model.apply(variables, *task._inputs(batch), train=True, rngs={"dropout": key})
  align = ctc_alignment(jax.nn.log_softmax(out["ctc_logits"]), out["enc_lengths"], batch["labels"],
                        batch["label_lengths"])
  assert (align >= 0).any()
  per_frame = (align >= 0)[:, :, None] & batch["prompt_targets"][:, None, :]
  task.guide_frames = True
  _, (metrics, _) = task.loss(state.params, state.model_state, {**batch, "prompt_targets": per_token}, key,
                              step=jnp.asarray(10))
  want = frame_guide_loss([w[:, :1] for w in weights.values()], per_frame)
  np.testing.assert_allclose(metrics["prompt_guide_loss"], want[0], rtol=1e-4)
  task.guide_frames = False

  config.loss.rnnt_weight, config.loss.ctc_weight = 0.0, 0.0  # the guide alone
  grad = jax.jit(jax.grad(lambda p, b: task.loss(p, state.model_state, b, key, step=jnp.asarray(10))[0]))
  tx = optax.adam(3e-3)
  params, opt = state.params, tx.init(state.params)
  for step in range(30):
    updates, opt = tx.update(grad(params, train[step % len(train)]), opt, params)
    params = optax.apply_updates(params, updates)
  for b in (batch, other):  # trained on, and held out
    before, after = guide(state.params, b)[1], guide(params, b)[1]
    assert after > 2 * before, (before, after)


def test_identical_audio_study_runs_through_the_one_trainer(workdir, tmp_path, capsys):
  """The study fine-tunes the workdir's model on twin items with ``--config.*`` overrides, evaluates before the first
  step and at the end, and its workdir evaluates again through the registry's ``module:Class`` task."""
  wd, _ = workdir
  study = str(tmp_path / "study")
  cli.main(["train", "--config", f"experiments/prompt_asr/studies/identical_audio.py:init={wd},local,dropout=0,"
            "spec_augment=false", "--workdir", study, "--config.eval.decoder=ctc", "--config.study.paired=True"])
  records = [json.loads(line) for line in open(os.path.join(study, "metrics.jsonl"))]
  evals = [r for r in records if "eval/prompt_matched" in r]
  assert [r["step"] for r in evals] == [0, 2]
  for r in evals:
    assert 0 <= r["eval/prompt_matched"] <= 1 and 0 <= r["eval/other_spelling"] <= 1 and r["eval/examples"] == 8
    assert 0 < r["eval/name_share"] < 1 and 0 <= r["eval/name_attention/crossing0/head0/mean"] <= 1
  config = config_lib.restore(os.path.join(study, "config.json"))
  assert config.model.overrides.memory_dropout == 0.0 and config.model.overrides.spec_augment is False
  capsys.readouterr()
  cli.main(["eval", "--workdir", study])
  assert json.loads(capsys.readouterr().out)["eval/examples"] == 8


def test_transcribe_says_when_it_resamples(workdir, tmp_path, capsys):
  wd, _ = workdir
  path = tmp_path / "cd.wav"
  t = np.arange(44100) / 44100
  sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 44100)
  cli.main(["transcribe", str(path), "--checkpoint", wd])
  out = capsys.readouterr()
  assert out.out.startswith(f"{path}\t") and "is 44100 Hz; resampled to 16000 Hz" in out.err


def test_wer_writes_icefalls_result_files(workdir, data_dir, tmp_path, capsys):
  wd, _ = workdir
  results = tmp_path / "results"
  cli.main(["wer", "--checkpoint", wd, "--dataset", "espeak_prompt/tiny", "--data-dir", data_dir, "--limit", "3",
            "--results-dir", str(results)])
  summary = json.loads(capsys.readouterr().out)
  name = "test-transducer-beam1"
  assert sorted(os.listdir(results)) == [f"errs-{name}.txt", f"recogs-{name}.txt", f"wer-summary-{name}.txt"]
  reported = float((results / f"wer-summary-{name}.txt").read_text().split()[-1])
  assert abs(reported - 100 * summary["wer"]) < 0.01
  assert len((results / f"recogs-{name}.txt").read_text().splitlines()) == 6
