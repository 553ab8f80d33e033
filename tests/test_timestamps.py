"""Tagging files of any length: streamed 10.12 s windows, clip probabilities, timestamped events, JSON output."""
import json

import numpy as np
import pytest
import soundfile as sf

from audiojax import cli
from audiojax.audio.io import load_audio, stream_audio
from audiojax.inference.tagger import (
  PATCH_SECONDS,
  WINDOW_SAMPLES,
  EventTracker,
  Tagger,
)


def test_streamed_blocks_equal_the_whole_resampled_file(tmp_path):
  rng = np.random.default_rng(0)
  wave = (0.1 * rng.standard_normal((44100 * 23, 2))).astype(np.float32)
  sf.write(tmp_path / "cd.wav", wave, 44100, subtype="FLOAT")
  rate, blocks = stream_audio(tmp_path / "cd.wav", 16000, 50000)
  blocks = list(blocks)
  assert rate == 44100 and all(b.shape == (50000,) for b in blocks[:-1]) and 0 < blocks[-1].shape[0] <= 50000
  whole = load_audio(tmp_path / "cd.wav", 16000).wave
  streamed = np.concatenate(blocks)
  assert abs(streamed.shape[0] - whole.shape[0]) <= 1
  n = min(streamed.shape[0], whole.shape[0])
  np.testing.assert_allclose(streamed[:n], whole[:n], atol=2e-4)  # continuous resampling: no seams at block edges


def test_event_tracker_merges_runs_and_bridges_window_gaps():
  tracker = EventTracker(["dog", "bell"], threshold=0.5)
  probs = [(0.9, 0.1), (0.8, 0.6), (0.2, 0.7), (0.1, 0.1), (0.95, 0.1)]
  for j, p in enumerate(probs):
    tracker.add(j * PATCH_SECONDS, np.array(p))
  tracker.add(5 * PATCH_SECONDS + 0.04, np.array([0.9, 0.0]))  # after a 40 ms window seam: same event
  events = tracker.finish(duration=6 * PATCH_SECONDS)
  assert [(e.label, round(e.start, 2), round(e.end, 2), e.probability) for e in events] == [
      ("dog", 0.0, 0.32, 0.9), ("bell", 0.16, 0.48, 0.7), ("dog", 0.64, 0.96, 0.95)]


@pytest.fixture(scope="module")
def tagger(trained_workdir):
  return Tagger.from_checkpoint(trained_workdir)


def test_short_file_is_tagged_exactly_like_the_model(tagger, tmp_path):
  wave = (0.1 * np.random.default_rng(1).standard_normal(16000 * 5)).astype(np.float32)
  sf.write(tmp_path / "short.wav", wave, 16000, subtype="FLOAT")
  result = tagger.tag_file(str(tmp_path / "short.wav"))
  np.testing.assert_allclose(result.probs, tagger.probs(wave), atol=1e-6)
  assert result.duration == 5.0


def test_long_file_streams_windows_and_events_cover_it(tagger, tmp_path):
  rng = np.random.default_rng(2)
  samples = 2 * WINDOW_SAMPLES + 16000 * 3  # two full windows and a 3 s remainder
  wave = (0.1 * rng.standard_normal(samples)).astype(np.float32)
  sf.write(tmp_path / "long.wav", wave, 16000, subtype="FLOAT")
  result = tagger.tag_file(str(tmp_path / "long.wav"), threshold=0.3)
  windows = [wave[:WINDOW_SAMPLES], wave[WINDOW_SAMPLES:2 * WINDOW_SAMPLES], wave[2 * WINDOW_SAMPLES:]]
  np.testing.assert_allclose(result.probs, np.mean([tagger.probs(w) for w in windows], axis=0), atol=1e-6)
  assert result.events, "a smoke-trained model is above 0.3 somewhere"
  for e in result.events:
    assert 0 <= e.start < e.end <= result.duration + 1e-9 and e.label in tagger.class_names


def test_cli_prints_timestamped_events_as_text_and_json(trained_workdir, tmp_path, capsys):
  wave = (0.1 * np.random.default_rng(3).standard_normal(16000 * 12)).astype(np.float32)
  sf.write(tmp_path / "a.wav", wave, 16000, subtype="FLOAT")
  cli.main(["tag", str(tmp_path / "a.wav"), "--checkpoint", trained_workdir, "--timestamps", "--threshold", "0.3"])
  text = capsys.readouterr().out
  assert "events (probability ≥ 0.3, 160 ms resolution):" in text
  event_lines = text.split("160 ms resolution):\n")[1].strip().splitlines()
  assert event_lines and all("–" in line for line in event_lines)
  cli.main(["tag", str(tmp_path / "a.wav"), "--checkpoint", trained_workdir, "--timestamps", "--threshold", "0.3",
            "--format", "json", "--top-k", "2"])
  record = json.loads(capsys.readouterr().out)
  assert record["duration"] == 12.0 and len(record["top"]) == 2
  assert len(record["events"]) == len(event_lines)
  assert all(round(e["start"] / 0.16, 6) % 1 < 1e-6 or e["start"] > 10.12 for e in record["events"])
