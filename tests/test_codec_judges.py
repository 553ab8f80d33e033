"""experiments/codec: the Opus round trip keeps length and alignment and spends its bitrate, the judges score the
input itself at their best and noise low, the table builder, and experiments/codec/studies/evaluate.py end to end on a
random-weight tiny codec over 3 clips of espeak_prompt/tiny (Whisper and DNSMOS left out there: they are slow)."""
import dataclasses
import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.errors import UserError
from audiojax.eval import codec as codec_eval
from experiments.codec.studies import evaluate, judges

RATE = 16000


def speechlike(seconds=2.0, seed=0):
  """A voiced-speech-like signal: 11 harmonics of a gliding 120±60 Hz pitch under syllable-rate envelopes."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * RATE)) / RATE
  phase = 2 * np.pi * np.cumsum(120 + 60 * np.sin(2 * np.pi * 0.7 * t)) / RATE
  voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
  envelope = np.sin(2 * np.pi * t) ** 2 * np.clip(3 * np.sin(np.pi * t / seconds), 0, 1)  # 2 syllables/s
  return (0.2 * voiced * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def noise_like(x, seed=1):
  return (0.05 * np.random.default_rng(seed).standard_normal(x.shape)).astype(np.float32)


def _mel_and_snr(x, y):
  lengths = jnp.array([x.shape[0]])
  return (float(codec_eval.log_mel_distance(x[None], y[None], lengths, RATE)[0]),
          float(codec_eval.si_snr(x[None], y[None], lengths)[0]))


# --- Opus ---------------------------------------------------------------------------------------------------------
def test_opus_roundtrip_keeps_length_and_alignment():
  pytest.importorskip("av")
  x = speechlike()
  for kbps in (6, 12):  # SILK: a sub-sample offset of its own resamplers remains (module docstring)
    y = judges.opus_roundtrip(x, RATE, kbps)
    assert y.shape == x.shape and y.dtype == np.float32
    assert abs(judges.lag(x, y, 320)) <= 1.0
  stream = judges.opus_encode(x, RATE, 64)  # CELT: the pre-skip is the whole delay
  assert stream.pre_skip == 312
  assert abs(judges.lag(x, judges.opus_decode(stream), 320)) < 0.1
  late = judges.opus_decode(dataclasses.replace(stream, pre_skip=0))
  assert judges.lag(x, late, 320) == pytest.approx(312 * RATE / 48000, abs=0.2)  # 104 samples late without it


def test_opus_bitrate_changes_size_and_quality_monotonically():
  pytest.importorskip("av")
  x = speechlike()
  low, high = judges.opus_encode(x, RATE, 6), judges.opus_encode(x, RATE, 12)
  assert 4.5 < low.kbps < 7 and 10 < high.kbps < 14 and high.kbps > 1.5 * low.kbps
  (mel_low, snr_low), (mel_high, snr_high) = (_mel_and_snr(x, judges.opus_decode(s)) for s in (low, high))
  assert snr_high > snr_low + 1 and mel_high < mel_low


def test_opus_refuses_what_it_cannot_code():
  pytest.importorskip("av")
  x = speechlike(0.2)
  with pytest.raises(UserError, match="outside libopus' 6–510 kbps"):
    judges.opus_encode(x, RATE, 3.2)
  with pytest.raises(UserError, match="not 22050 Hz; resample"):
    judges.opus_encode(x, 22050, 6)


# --- judges -------------------------------------------------------------------------------------------------------
def test_pesq_and_stoi_are_at_their_best_on_the_input_and_low_on_noise():
  pytest.importorskip("pesq")
  pytest.importorskip("pystoi")
  x = speechlike()
  noise = noise_like(x)
  assert judges.pesq_wb(x, x, RATE) == pytest.approx(4.644, abs=1e-3)  # P.862.2's ceiling
  assert judges.stoi(x, x, RATE) == pytest.approx(1.0, abs=1e-6)
  assert judges.pesq_wb(x, noise, RATE) < 1.5
  assert judges.stoi(x, noise, RATE) < 0.5
  with pytest.raises(judges.JudgeFailed, match="BufferTooShort"):
    judges.pesq_wb(x[:1600], x[:1600], RATE)  # 0.1 s
  with pytest.raises(judges.JudgeFailed, match="NoUtterances"):
    judges.pesq_wb(np.zeros_like(x), x, RATE)
  with pytest.raises(judges.JudgeFailed, match="silent output"):
    judges.pesq_wb(x, np.zeros_like(x), RATE)
  with pytest.raises(judges.JudgeFailed, match="30 frames"):
    judges.stoi(x[:3000], x[:3000], RATE)


def test_dnsmos_rates_the_signal_above_noise():
  pytest.importorskip("speechmos")
  pytest.importorskip("librosa")
  x = speechlike(2.4)  # repeated to 9.6 s: one DNSMOS window
  dnsmos = judges.DNSMOS()
  clean, noisy = dnsmos(x, RATE), dnsmos(noise_like(x), RATE)
  assert 1 <= noisy < 1.5 and clean > noisy + 0.5


# --- the table ----------------------------------------------------------------------------------------------------
def _metric(mean, count=3, failures=0, **extra):
  return {"mean": mean, "count": count, "failures": failures, **extra}


def test_table_from_a_results_dict():
  results = {
      "dataset": "debspeech", "split": "test", "clips": 3, "english_clips": 1,
      "model": {"kbps_per_codebook": 0.4, "bins": 256, "frame_rate": 50},
      "opus": {"min_kbps": 6.0, "below_minimum": [0.4, 3.2]},
      "judges": {"skipped": {"dnsmos": "not installed (speechmos)"}},
      "systems": {
          "input": {"kind": "control", "kbps": None, "metrics": {
              "mel_distance": _metric(0.0), "si_snr": _metric(100.0), "stoi": _metric(1.0), "pesq": _metric(4.64),
              "wer": _metric(0.1, 1, errors=1, words=10)}},
          "codec 3.2 kbps": {"kind": "codec", "kbps": 3.2, "n_q": 8, "metrics": {
              "mel_distance": _metric(1.23456), "si_snr": _metric(-3.21), "stoi": _metric(0.5),
              "pesq": _metric(1.5, 2, 1), "wer": _metric(0.5, 1, errors=5, words=10)}},
          "Opus 6 kbps": {"kind": "opus", "kbps": 6.0, "measured_kbps": 5.71, "metrics": {
              "mel_distance": _metric(2.0), "si_snr": _metric(2.75), "stoi": _metric(0.9),
              "pesq": _metric(None, 0, 3), "wer": _metric(0.2, 1, errors=2, words=10)}},
      },
      "runtime_s": {"total": 12.0, "codec": 2.0, "pesq": 1.0},
  }
  text = evaluate.table(results)
  lines = text.splitlines()
  assert lines[0] == ("| system | kbps | mel distance ↓ | SI-SNR dB ↑ | STOI ↑ | PESQ-wb ↑ | DNSMOS OVRL ↑ | "
                      "WER % ↓ (en) |")
  assert lines[2] == "| input | – | 0.000 | 100.0 | 1.000 | 4.64 | skipped | 10.0 |"
  assert lines[3] == "| codec 3.2 kbps | 3.2 | 1.235 | -3.2 | 0.500 | 1.50 (1 failed) | skipped | 50.0 |"
  assert lines[4] == "| Opus 6 kbps | 6 | 2.000 | 2.8 | 0.900 | – | skipped | 20.0 |"
  assert "0.4 kbps per codebook (log2(256) bits × 50 frames/s)" in text
  assert "6 → 5.71" in text and "its minimum is 6 kbps" in text and "(0.4, 3.2) have no Opus row" in text
  assert "dnsmos skipped: not installed (speechmos)" in text and "1 English clips (10 reference words)" in text
  assert "failed: clips a judge could not score" in text and "runtime 12 s (codec 2 s, pesq 1 s)" in text


def test_clip_selection_and_padding():
  assert evaluate.evenly_spaced(16, 3).tolist() == [0, 8, 15]
  assert evaluate.evenly_spaced(2, 100).tolist() == [0, 1]
  assert [evaluate.bucket(n, 16000) for n in (1, 16000, 16001, 40000, 70000)] == [16000, 16000, 32000, 64000, 128000]
  assert evaluate.fit(np.arange(3.0), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
  names = [s.name for s in evaluate.opus_systems([12, 6, 8], (0.5, 1, 2, 4, 8, 16))]
  assert names == ["Opus 6 kbps", "Opus 8 kbps", "Opus 12 kbps", "Opus 16 kbps"]
  with pytest.raises(UserError, match="--opus-kbps 4 is outside"):
    evaluate.parse_args(["--checkpoint", "c", "--out", "o", "--opus-kbps", "4,6"])
  with pytest.raises(UserError, match="--judges mos unknown"):
    evaluate.parse_args(["--checkpoint", "c", "--out", "o", "--judges", "pesq,mos"])


# --- end to end ---------------------------------------------------------------------------------------------------
def random_codec_dir(path):
  """A tiny 16 kHz codec with random weights as a model directory. The variables take ``model.init``'s shapes
  (``jax.eval_shape``: compiling the init itself takes 20 s on 2 cores) and numpy values: convolution weights
  N(0, 1/fan_in), weight-norm gains and LSTM weights as PyTorch draws them, zero biases, codebooks N(0, 0.5²),
  ``inited`` 1."""
  from audiojax.models import codec
  from audiojax.train import export

  model = codec.Model("tiny")
  shapes = nn.meta.unbox(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, model.hop_length))))
  rng = np.random.default_rng(0)

  def draw(key_path, leaf):
    name = jax.tree_util.keystr(key_path)
    if "inited" in name:
      return np.ones(leaf.shape, np.float32)
    if "codebooks" in name:
      return rng.normal(0, 0.5, leaf.shape).astype(np.float32) if "embed" in name else np.ones(leaf.shape, np.float32)
    if "weight_g" in name:
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    if "bias" in name and "lstm" not in name:
      return np.zeros(leaf.shape, np.float32)
    if "weight_ih" in name or "weight_hh" in name or "bias" in name:
      bound = (leaf.shape[0] // 4) ** -0.5 if leaf.ndim == 2 else 0.1
      return rng.uniform(-bound, bound, leaf.shape).astype(np.float32)
    return rng.normal(0, int(np.prod(leaf.shape[:-1])) ** -0.5, leaf.shape).astype(np.float32)

  variables = jax.tree_util.tree_map_with_path(draw, shapes)
  export.save(str(path), codec.FAMILY, codec.to_config(model), variables, None)
  return str(path)


@pytest.fixture(scope="module")
def espeak_data_dir(espeak_tiny_dir):
  return espeak_tiny_dir


def test_k_active_codebooks_decode_as_the_codes_of_k():
  """The script resynthesises at K codebooks with ``model(wave, active=K)`` (one compilation for every bandwidth);
  that decodes what ``quantizer.decode(encode(n_q=K))`` does, the only difference from ``encode`` → ``decode``."""
  from audiojax.nn import quantize

  module = quantize.ResidualVectorQuantizer(n_q=4, bins=16, dim=4)
  x = np.random.default_rng(5).standard_normal((2, 11, 4)).astype(np.float32)
  variables = nn.meta.unbox(module.init(jax.random.key(0), x))
  variables[quantize.CODEBOOKS]["embed"] = np.random.default_rng(6).standard_normal((4, 16, 4)).astype(np.float32)
  active = jax.jit(lambda v, k: module.apply(v, x, active=k)["quantized"])
  for k in (1, 2, 4):
    codes = module.apply(variables, x, k, method="encode")
    expected = module.apply(variables, codes, method="decode")
    np.testing.assert_allclose(active(variables, jnp.int32(k)), expected, atol=1e-5)


def test_evaluate_script_end_to_end(espeak_data_dir, tmp_path, capsys):
  for package in ("av", "pesq", "pystoi"):
    pytest.importorskip(package)
  model_dir = random_codec_dir(tmp_path / "codec")
  out = tmp_path / "results"
  evaluate.main(["--checkpoint", model_dir, "--dataset", "espeak_prompt/tiny", "--data-dir", espeak_data_dir,
                 "--split", "test", "--max-clips", "3", "--out", str(out), "--opus-kbps", "6,12",
                 "--judges", "stoi,pesq", "--no-whisper", "--language", "en"])
  printed = capsys.readouterr().out
  results = json.loads((out / "results.json").read_text())
  assert (out / "table.md").read_text() in printed + "\n"
  assert results["clips"] == 3 and results["english_clips"] == 3
  systems = results["systems"]
  assert list(systems) == ["input", "codec 0.4 kbps", "codec 0.8 kbps", "codec 1.6 kbps", "codec 3.2 kbps",
                           "Opus 6 kbps", "Opus 12 kbps", "another clip"]
  assert set(results["judges"]["skipped"]) == {"dnsmos", "whisper"}
  for name, entry in systems.items():
    assert {"mel_distance", "si_snr", "stoi", "pesq"} <= set(entry["metrics"]), name
    for metric in entry["metrics"].values():
      assert metric["count"] + metric["failures"] == 3
  inp, opus, other = systems["input"]["metrics"], systems["Opus 12 kbps"]["metrics"], systems["another clip"]["metrics"]
  assert inp["mel_distance"]["mean"] == 0 and inp["stoi"]["mean"] == pytest.approx(1.0)
  assert inp["pesq"]["mean"] == pytest.approx(4.644, abs=1e-3)
  assert opus["pesq"]["mean"] > systems["Opus 6 kbps"]["metrics"]["pesq"]["mean"] > other["pesq"]["mean"]
  assert opus["stoi"]["mean"] > 0.8 > other["stoi"]["mean"]
  assert abs(systems["Opus 12 kbps"]["lag"]["mean"]) <= 1.0
  assert systems["codec 0.4 kbps"]["n_q"] == 1 and systems["codec 3.2 kbps"]["n_q"] == 8
  assert "| codec 0.4 kbps | 0.4 |" in printed and "| DNSMOS OVRL ↑ |" in printed
  clips = [json.loads(line) for line in (out / "clips.jsonl").read_text().splitlines()]
  assert [c["index"] for c in clips] == [0, 8, 15]
