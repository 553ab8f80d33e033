"""HEAR API shapes/timestamps against the model, and linear probes that learn from frozen embeddings."""
import numpy as np
import pytest

from audiojax.errors import UserError
from audiojax.inference import hear, probe
from audiojax.models import ced


@pytest.fixture(scope="module")
def model(trained_workdir):
  return hear.load_model(trained_workdir)


def test_scene_and_timestamp_embeddings_follow_the_hear_api(model):
  assert model.sample_rate == 16000 and model.scene_embedding_size == model.timestamp_embedding_size == 192
  rng = np.random.default_rng(0)
  audio = (0.1 * rng.standard_normal((3, 16000 * 2))).astype(np.float32)
  scene = hear.get_scene_embeddings(audio, model)
  emb, ts = hear.get_timestamp_embeddings(audio, model)
  out = model.model.apply(model.variables, audio)
  np.testing.assert_allclose(scene, out["embedding"], atol=1e-5)
  np.testing.assert_allclose(emb, out["frame_embeddings"], atol=1e-5)
  assert emb.shape == (3, 12, 192) and ts.shape == (3, 12)
  np.testing.assert_allclose(ts[0], 80 + 160 * np.arange(12))  # patch centres in ms


def test_variable_length_sounds_and_long_audio(model):
  rng = np.random.default_rng(1)
  sounds = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (1000, 16000, 16000 * 12)]
  scene = hear.get_scene_embeddings(sounds, model)
  embs, stamps = hear.get_timestamp_embeddings(sounds, model)
  assert scene.shape == (3, 192) and [e.shape[0] for e in embs] == [len(s) for s in stamps]
  assert stamps[2][-1] < 12000 and np.all(np.diff(stamps[2]) > 0)  # a 12 s sound spans two 10.12 s chunks
  assert len(stamps[2]) == len(ced.patch_centers_ms(16000 * 12)) == 63 + (1201 - 1012 - 16) // 16 + 1
  with pytest.raises(UserError, match="needs model_file_path"):
    hear.load_model("")


def test_linear_probe_recovers_a_linear_signal():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((600, 16))
  y = (x @ rng.standard_normal((16, 4))).argmax(1)
  r = probe.linear_probe(x[:500], y[:500], x[500:], y[500:], 4, multilabel=False)
  assert r["test"] > 0.9 and r["baseline"] < 0.5


def test_probe_on_frozen_embeddings_beats_the_label_prior(trained_workdir, tiny_data_dir, tmp_path, capsys):
  """Instrument families from a barely trained 2-layer CED's embeddings (the tiny corpus: 64 train clips)."""
  from audiojax import cli
  cli.main(["probe", "--checkpoint", trained_workdir, "--task", "gm_family", "--dataset", "gm_instruments/tiny",
            "--data-dir", tiny_data_dir])
  line = capsys.readouterr().out.strip()
  test, baseline = float(line.split("test mAP ")[1].split()[0]), float(line.split("baseline ")[1].split(")")[0])
  assert test > baseline + 0.03, line
