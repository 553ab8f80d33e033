"""Speed perturbation: a tone played ``factor`` times faster is the tone at ``factor ×`` its frequency, and batches
draw factors that fit their buckets and keep twins one recording."""
import numpy as np
import pytest

from audiojax.audio import speed
from audiojax.errors import UserError

RATE = 16000


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_a_tone_played_faster_is_the_tone_at_a_higher_pitch_and_shorter(factor):
  """Against the closed form: sin(2π f n / rate) → sin(2π factor f m / rate), round(L / factor) samples."""
  length, freq = RATE, 440.0
  tone = np.sin(2 * np.pi * freq * np.arange(length) / RATE)
  out = speed.perturb_speed(tone, factor)
  assert out.dtype == np.float32 and out.shape == (speed.perturbed_length(length, factor),)
  assert out.shape[0] == round(length / factor)
  want = np.sin(2 * np.pi * factor * freq * np.arange(out.shape[0]) / RATE)
  inner = slice(400, out.shape[0] - 400)  # the band-limited filter rings at the two cut ends
  np.testing.assert_allclose(out[inner], want[inner], atol=2e-3)
  both = slice(400, min(length, out.shape[0]) - 400)
  assert not np.allclose(out[both], tone[both], atol=0.1)


def test_factor_one_is_the_identity_and_bad_factors_are_errors():
  wave = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
  np.testing.assert_array_equal(speed.perturb_speed(wave, 1.0), wave)
  with pytest.raises(UserError, match="must be positive"):
    speed.perturb_speed(wave, 0.0)


def test_drawn_factors_are_uniform_over_those_that_fit():
  rng = np.random.default_rng(0)
  draws = [speed.draw_factor(rng, (0.9, 1.0, 1.1), 1000, 2000) for _ in range(3000)]
  counts = {f: draws.count(f) for f in (0.9, 1.0, 1.1)}
  assert sum(counts.values()) == 3000 and all(900 < c < 1100 for c in counts.values())
  # 1000 samples at 0.9 → 1111 > 1050: only 1.0 and 1.1 fit
  assert set(speed.draw_factor(rng, (0.9, 1.0, 1.1), 1000, 1050) for _ in range(200)) == {1.0, 1.1}
  assert speed.draw_factor(rng, (0.9,), 1000, 1000) == 1.0  # nothing fits: unperturbed


def test_training_batches_play_each_row_at_a_drawn_speed_within_the_longest_bucket(tmp_path):
  from audiojax.tasks.asr import TrainingBatch
  from audiojax.text.tokenizer import train_bpe

  text = "Kaludor's house stands by the river."
  tokenizer = train_bpe([text] * 40, str(tmp_path / "bpe"), 300)
  rng = np.random.default_rng(0)
  lengths = [1000, 1200, 1500, 2000] * 2
  waves = [rng.standard_normal(n).astype(np.float32) for n in lengths]
  rows = [{"wave": w, "wave_length": np.int32(len(w)), "text": text, "pre_text": "", "rare_words": "Kaludor",
           "id": str(i)} for i, w in enumerate(waves)]
  common = dict(max_tokens=96, max_prompt_length=256, style_weights=(("mixed-punc", 1.0),), canonical_prob=1.0,
                content_mode="pre_text", distractors=(), max_samples=2100)
  plain = TrainingBatch(tokenizer, **common)(rows, np.random.default_rng(1))
  np.testing.assert_array_equal(plain["wave_lengths"], lengths)
  batcher = TrainingBatch(tokenizer, **common, speed_factors=(0.9, 1.0, 1.1))
  seen = set()
  for seed in range(6):
    batch = batcher(rows, np.random.default_rng(seed))
    for b, (wave, n) in enumerate(zip(batch["wave"], batch["wave_lengths"])):
      factor = next(f for f in (0.9, 1.0, 1.1) if speed.perturbed_length(lengths[b], f) == n)
      seen.add((lengths[b], factor))
      np.testing.assert_array_equal(wave[:n], speed.perturb_speed(waves[b], factor))
      assert not wave[n:].any()
    assert batch["wave"].shape[1] == 2100
  assert (2000, 0.9) not in seen and {(2000, 1.0), (2000, 1.1), (1000, 0.9), (1000, 1.1)} <= seen
  twinned = TrainingBatch(tokenizer, **common, speed_factors=(0.9, 1.0, 1.1), twin_share=1.0)
  for seed in range(4):  # every row is in a twin pair (each has a respellable name): one recording, one speed
    batch = twinned(rows, np.random.default_rng(seed))
    for b in range(0, 8, 2):
      np.testing.assert_array_equal(batch["wave"][b], batch["wave"][b + 1])
    assert len({int(n) for n in batch["wave_lengths"]}) > 1


def test_non_positive_factors_are_an_error_naming_the_key():
  assert speed.checked_factors([0.9, 1, 1.1], "config.data.speed_factors") == (0.9, 1.0, 1.1)
  assert speed.checked_factors((), "config.data.speed_factors") == ()
  with pytest.raises(UserError, match=r"config.data.speed_factors=\(0.9, 0.0\) must all be positive"):
    speed.checked_factors((0.9, 0.0), "config.data.speed_factors")
