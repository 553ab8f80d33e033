"""`make bench` runs and reports consistent figures (a smoke run; speed itself is never asserted)."""
from audiojax import bench


def test_bench_reports_throughput_and_fraction_of_peak(capsys):
  results = bench.main(variant="tiny", quick=True, batch_size=8, clip_seconds=2.0, depth=1)
  assert results["matmul_peak_gflops"] > 0 and results["inference_clips_per_sec"] > 0
  assert results["train_steps_per_sec"] > 0
  assert abs(results["train_fraction_of_peak"] - results["train_gflops"] / results["matmul_peak_gflops"]) < 1e-9
  assert "of peak" in capsys.readouterr().out
