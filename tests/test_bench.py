"""`make bench` runs and reports consistent figures (a smoke run; speed itself is never asserted)."""
from audiojax.bench import ced as bench


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
