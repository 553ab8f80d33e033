"""The band mask both SpecAugments build on, and PromptASR's SpecAugment (CED's seeded masks: test_distill.py)."""
import jax
import jax.numpy as jnp
import numpy as np

from audiojax.audio import augment


def test_band_mask_marks_start_to_start_plus_width():
  mask = augment.band_mask(8, jnp.array([[2, 6], [0, 3]]), jnp.array([[3, 5], [0, 1]]))
  expected = [[[0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0, 1, 1]],
              [[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0, 0]]]
  np.testing.assert_array_equal(mask, np.array(expected, bool))
  # fractional bounds, as CED's masks draw them: positions 2 and 3 lie in [1.5, 3.7)
  np.testing.assert_array_equal(augment.band_mask(5, jnp.float32(1.5), jnp.float32(2.2)), [0, 0, 1, 1, 0])


def test_spec_augment_zeroes_whole_bands_inside_each_utterance():
  spec = augment.SpecAugment()
  lengths = jnp.array([300, 120, 40])
  feats = jnp.ones((3, 300, 80))
  out = np.asarray(jax.jit(spec)(feats, lengths, jax.random.key(0)))
  zero = out == 0
  freq_bands, frames = zero.all(axis=1), zero.all(axis=2)  # (B, F) bins zero in every frame, (B, T) frames zeroed
  np.testing.assert_array_equal(zero, freq_bands[:, None, :] | frames[:, :, None])  # nothing but whole bands
  assert freq_bands.sum(axis=1).max() <= spec.freq_masks * spec.freq_width
  for b, n in enumerate(np.asarray(lengths)):
    max_width = max(int(n * spec.time_width_fraction), 1)
    assert frames[b].sum() <= spec.time_masks * max_width and not frames[b, n:].any()
  assert freq_bands.any() and frames.any()
  assert not np.array_equal(out, np.asarray(spec(feats, lengths, jax.random.key(1))))
