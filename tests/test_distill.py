"""Consistent ensemble distillation: replayable augmentation, teacher pass and logit store, student training."""
import dataclasses
import json
import os
import shutil

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from audiojax.audio import augment, features
from audiojax.audio.io import from_pcm16
from audiojax.data import logit_store, pipeline
from audiojax.inference import load, teacher
from audiojax.models import ced
from audiojax.tasks import distill, registry

AUG = augment.AugmentConfig()


def test_augmentation_replays_bitwise_from_the_seed_and_follows_the_original_mask_rule():
  wave = np.random.default_rng(0).standard_normal((4, 32000)).astype(np.float32) * 0.1
  seeds = np.array([1, 2, 3, 1], np.int32)
  f = jax.jit(lambda w, s: augment.augmented_log_mel(w, s, ced.MEL, AUG))
  a, b = np.asarray(f(wave, seeds)), np.asarray(f(wave, seeds))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a[0], a[1])
  clean = np.asarray(features.log_mel(wave, ced.MEL))
  for i, seed in enumerate(seeds):
    v, m = map(float, augment.mask_draws(np.int32(seed)))
    shifted = np.asarray(augment.time_shift(wave[i], np.int32(seed), AUG))
    assert np.allclose(np.sort(shifted), np.sort(wave[i]))  # a circular shift permutes samples, loses none
    mel = np.asarray(features.log_mel(shifted[None], ced.MEL))[0]
    f_width, t_width = int(np.floor(v * 24)), int(np.floor(v * 192))
    f_start, t_start = int(np.floor(m * (64 - v * 24))), int(np.floor(m * (mel.shape[1] - v * 192)))
    expected = mel.copy()
    expected[f_start:f_start + f_width] = 0.0
    expected[:, t_start:t_start + t_width] = 0.0
    np.testing.assert_allclose(a[i], expected, atol=1e-4)
  assert not np.array_equal(a[0], clean[0])


@pytest.fixture(scope="module")
def store(trained_workdir, tiny_data_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp("store"))
  teacher.teacher_pass([trained_workdir, trained_workdir], "gm_instruments/tiny", tiny_data_dir, out, epochs=2,
                       top_k=4, clip_seconds=1.0, batch_size=16, seed=7)
  return out


def test_teacher_store_holds_the_ensembles_top_k_of_the_seeded_view(store, trained_workdir, tiny_data_dir):
  s = logit_store.LogitStore(store)
  assert (s.meta.epochs, s.meta.top_k, s.meta.num_examples) == (2, 4, 64)
  sizes = sum(os.path.getsize(os.path.join(store, f"epoch_001_{p}.npy")) - 128 for p in ("probs", "indices", "seeds"))
  assert sizes == 64 * (4 * 4 + 4)  # 4·k + 4 bytes per chunk per epoch (84 for the paper's k = 20)
  model, variables = load.ced(trained_workdir)
  example = tfds.data_source("gm_instruments/tiny", split="train", data_dir=tiny_data_dir)[5]
  wave = pipeline.fit_length(from_pcm16(example["audio"]), 16000)[None]
  target, seed = s.target(5, 1)
  assert seed == teacher.epoch_seeds(7, 1, 64)[5]
  assert s.meta.augment_config == augment.for_chunk(1.0)  # the student replays the teacher's settings
  mel = augment.augmented_log_mel(wave, np.array([seed]), ced.MEL, s.meta.augment_config)
  probs = np.asarray(model.apply(variables, mel=mel)["probs"])[0]  # two identical teachers: their mean = one
  top = np.argsort(-probs)[:4]
  np.testing.assert_array_equal(np.flatnonzero(target), np.sort(top))
  np.testing.assert_allclose(target[top], probs[top], atol=1e-3)  # stored as float16


def test_time_mask_scales_with_the_chunk_and_old_stores_read_the_original_settings(store, tmp_path):
  assert augment.for_chunk(10.0) == AUG  # the paper's 10 s chunks: 192 frames
  assert augment.for_chunk(2.0).time_mask_param == 38 and augment.for_chunk(1.0).time_mask_param == 19
  assert augment.for_chunk(2.0).freq_mask_param == AUG.freq_mask_param
  old = tmp_path / "old"
  old.mkdir()
  meta = json.load(open(os.path.join(store, logit_store.META)))
  del meta["augment"]
  json.dump(meta, open(old / logit_store.META, "w"))
  for name in os.listdir(store):
    if name.endswith(".npy"):
      os.symlink(os.path.join(store, name), old / name)
  assert logit_store.LogitStore(str(old)).meta.augment_config == AUG


def test_student_stream_reads_the_right_teacher_epoch(store, tiny_data_dir):
  s = logit_store.LogitStore(store)
  source = tfds.data_source("gm_instruments/tiny", split="train", data_dir=tiny_data_dir)
  examples = distill.StudentExamples(s, 16000)
  for j, epoch in ((3, 0), (64 + 3, 1), (2 * 64 + 3, 0)):  # stream position → teacher epoch (j // N) mod E
    out = examples(j, (9, source[9]))
    np.testing.assert_array_equal(out["labels"], s.target(9, epoch)[0])
    assert out["seeds"] == s.target(9, epoch)[1]


@pytest.mark.parametrize("consistent", [True, False])
def test_student_trains_from_the_store_and_averages_its_best_checkpoints(store, tiny_data_dir, tmp_path,
                                                                         consistent):
  from audiojax.config import loader as config_lib
  from audiojax.train import loop
  c = config_lib.load(f"experiments/ced/distill_demo.py:mode={'consistent' if consistent else 'inconsistent'}")
  config_lib.override(c, [f"--config.distill.store={store}", "--config.data.name=gm_instruments/tiny",
                          f"--config.data.data_dir={tiny_data_dir}", "--config.data.clip_seconds=1.0",
                          "--config.model.overrides={'depth': 1}", "--config.train.steps=4",
                          "--config.train.batch_size=8", "--config.eval.every_steps=2",
                          "--config.checkpoint.every_steps=2", "--config.eval.batch_size=8",
                          "--config.optim.warmup_steps=1"])
  result = loop.train(registry.build(c), str(tmp_path))
  assert np.isfinite(result["train"]["loss"])
  assert result["eval"]["averaged_steps"] == [2, 4] and "eval/averaged_mAP" in result["eval"]
  model, _ = load.ced(str(tmp_path / "averaged"))
  assert model.depth == 1

  from audiojax import cli
  from audiojax.errors import UserError
  cli.main(["average", "--workdir", str(tmp_path), "--last", "2"])  # the newest two: the same steps here
  _, averaged = load.ced(str(tmp_path / "averaged_last2"))
  trainer = loop.Trainer(registry.task_for_workdir(str(tmp_path), local_mesh=True))
  newest = trainer.restore(str(tmp_path))
  oldest = trainer.restore(str(tmp_path), 2)
  as_numpy = lambda s: jax.device_get({"params": s.params, **s.model_state})
  for got, a, b in zip(*map(jax.tree.leaves, (averaged, as_numpy(oldest), as_numpy(newest)))):
    np.testing.assert_allclose(got, (np.asarray(a, np.float64) + b) / 2, rtol=1e-6, atol=1e-7)
  assert any(not np.allclose(a, b) for a, b in zip(*map(jax.tree.leaves, (as_numpy(oldest), as_numpy(newest)))))
  with pytest.raises(UserError, match="pass --last between 1 and 2"):
    loop.export_average_of_last(trainer.task, str(tmp_path), 3, str(tmp_path / "x"))


def test_teacher_cli_records_an_explicit_time_mask(trained_workdir, tiny_data_dir, tmp_path):
  from audiojax import cli
  out = str(tmp_path / "store")
  cli.main(["teacher", "--teachers", trained_workdir, "--dataset", "gm_instruments/tiny", "--data-dir", tiny_data_dir,
            "--out", out, "--epochs", "1", "--top-k", "2", "--clip-seconds", "1", "--batch-size", "16",
            "--time-mask-frames", "7"])
  assert logit_store.LogitStore(out).meta.augment_config == dataclasses.replace(augment.for_chunk(1.0),
                                                                                time_mask_param=7)


def test_a_store_whose_metadata_is_not_a_stores_is_a_one_line_error(store, tmp_path):
  from audiojax.errors import UserError
  copy = tmp_path / "store"
  shutil.copytree(store, copy)
  meta = json.loads((copy / logit_store.META).read_text())
  (copy / logit_store.META).write_text(json.dumps({**meta, "surprise": 1}))
  with pytest.raises(UserError, match="is not a teacher store's metadata") as info:
    logit_store.LogitStore(str(copy))
  assert "\n" not in str(info.value)
