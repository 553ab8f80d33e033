"""`make bench` runs and reports consistent figures (a smoke run; speed itself is never asserted)."""
import importlib.util

import numpy as np
import pytest

from audiojax import cli
from audiojax.bench import ced as bench
from audiojax.bench import codec as bench_codec


def test_bench_reports_throughput_and_fraction_of_peak(capsys):
  results = bench.main(variant="tiny", quick=True, batch_size=8, clip_seconds=2.0, depth=1)
  assert results["matmul_peak_gflops"] > 0 and results["inference_clips_per_sec"] > 0
  assert results["train_steps_per_sec"] > 0
  assert abs(results["train_fraction_of_peak"] - results["train_gflops"] / results["matmul_peak_gflops"]) < 1e-9
  assert "of peak" in capsys.readouterr().out


def test_asr_bench_times_the_encoder_and_both_convolutions(capsys):
  from audiojax.bench import prompt_asr as bench_asr
  results = bench_asr.main(batch=2, seconds=1.0, prompt_bytes=32, repeats=1, num_layers=1, embed_dim=32,
                           num_heads=2, ff_dim=64, text_dim=32, text_layers=1, text_heads=2, conv_kernel=5)
  assert results["encoder_s"] > 0 and results["depthwise_s"] > 0 and results["grouped_conv_s"] > 0
  assert results["depthwise_speedup"] == results["grouped_conv_s"] / results["depthwise_s"]
  assert "XLA grouped convolution" in capsys.readouterr().out


def test_codec_bench_reports_real_time_factors_next_to_the_original(capsys):
  """The torch column and the sanity line appear where the PyPI ``encodec`` package imports (skipped otherwise)."""
  has_encodec = all(importlib.util.find_spec(m) is not None for m in ("encodec", "torch"))
  results = bench_codec.main(seconds=0.5, bandwidths=(1.5, 24.0), repeats=1)
  out = capsys.readouterr().out
  assert [row["codebooks"] for row in results["rows"]] == [2, 32]
  sides = ("jax", "torch") if has_encodec else ("jax",)
  for row in results["rows"]:
    for key in (f"{side}_{step}_rtf" for side in sides for step in ("encode", "decode")):
      assert np.isfinite(row[key]) and row[key] > 0, key
  assert "encode RTF JAX" in out and "CPU threads" in out
  if has_encodec:
    assert results["torch"] is None and results["max_abs_diff"] < 1e-4 and "sanity:" in out and " agree" in out
  else:
    assert "torch_encode_rtf" not in results["rows"][0] and "torch column absent" in out


def test_codec_bench_refuses_a_bad_length(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["bench", "codec", "--seconds", "0"])
  assert exit_info.value.code == 2
  assert "error: --seconds 0: give a positive number of seconds" in capsys.readouterr().err


def test_valle_bench_compares_the_kv_cache_with_recomputation(capsys):
  from audiojax.bench import valle as bench_valle
  results = bench_valle.main(tokens=16, repeats=1, depth=1, width=32, heads=2, mlp_dim=64)
  assert results["identical"] and results["generated"] == 16
  assert results["speedup"] > 0 and results["rtf"] > 0
  out = capsys.readouterr().out
  assert "cache speed-up" in out and "real-time factor" in out
