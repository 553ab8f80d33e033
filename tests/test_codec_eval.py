"""The codec's held-out measures against numpy: masked log-mel distance, SI-SNR, code counts and perplexity."""
import numpy as np
import pytest

from audiojax.audio import features
from audiojax.eval import codec as codec_eval

RATE = 16000


def _numpy_log_mel(wave: np.ndarray) -> np.ndarray:
  """Power mel of a centred, zero-padded periodic-Hann STFT, floored log: ``(L,)`` → ``(mels, T)``."""
  n_fft, hop = codec_eval.MEL_N_FFT, codec_eval.MEL_N_FFT // 4
  padded = np.pad(wave.astype(np.float64), n_fft // 2)
  frames = np.stack([padded[i:i + n_fft] for i in range(0, len(padded) - n_fft + 1, hop)])
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
  power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
  fbank = np.asarray(features.mel_filterbank(n_freqs=n_fft // 2 + 1, f_min=0.0, f_max=RATE / 2,
                                             n_mels=codec_eval.MEL_BINS, sample_rate=RATE))
  return np.log(np.maximum(power @ fbank, 1e-5)).T


def test_log_mel_distance_counts_only_frames_inside_each_clip():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, 8000)).astype(np.float32) * 0.1
  y = x + rng.standard_normal(x.shape).astype(np.float32) * 0.05
  lengths = np.array([8000, 5000, 1], np.int32)
  got = np.asarray(codec_eval.log_mel_distance(x, y, lengths, RATE))
  for b in range(3):
    diff = np.abs(_numpy_log_mel(x[b]) - _numpy_log_mel(y[b]))
    frames = np.arange(diff.shape[1]) * (codec_eval.MEL_N_FFT // 4) < lengths[b]
    np.testing.assert_allclose(got[b], diff[:, frames].mean(), rtol=2e-3)
  np.testing.assert_allclose(codec_eval.log_mel_distance(x, x, lengths, RATE), 0.0, atol=1e-6)


def test_si_snr_is_scale_invariant_and_ignores_the_padding():
  rng = np.random.default_rng(1)
  s = rng.standard_normal((2, 4000)).astype(np.float32)
  e = 3.0 * s + 0.1 * rng.standard_normal(s.shape).astype(np.float32)
  e[1, 3000:] = 100.0  # beyond its length: never counted
  lengths = np.array([4000, 3000], np.int32)
  got = np.asarray(codec_eval.si_snr(s, e, lengths))
  for b, n in enumerate(lengths):
    ref, est = s[b, :n] - s[b, :n].mean(), e[b, :n] - e[b, :n].mean()
    target = est @ ref / (ref @ ref) * ref
    expected = 10 * np.log10(target @ target / ((est - target) @ (est - target)))
    np.testing.assert_allclose(got[b], expected, rtol=1e-4)
  np.testing.assert_allclose(codec_eval.si_snr(s, 0.5 * e, lengths), codec_eval.si_snr(s, 2 * e, lengths), rtol=1e-4)


def test_code_counts_and_perplexity():
  rng = np.random.default_rng(2)
  codes = rng.integers(0, 8, (2, 3, 10)).astype(np.int32)
  frames = np.array([10, 4], np.int32)
  counts = np.asarray(codec_eval.code_counts(codes, frames, 8))
  for b in range(2):
    for k in range(3):
      np.testing.assert_array_equal(counts[b, k], np.bincount(codes[b, k, :frames[b]], minlength=8))
  np.testing.assert_allclose(codec_eval.perplexity(np.array([[5.0, 5, 5, 5], [20, 0, 0, 0]])), [4.0, 1.0])


@pytest.mark.parametrize("kbps, name", [(1.5, "1.5kbps"), (6.0, "6kbps"), (0.4, "0.4kbps")])
def test_bandwidth_names(kbps, name):
  assert codec_eval.bandwidth_name(kbps) == name
  assert codec_eval.frames_of(np.array([320, 321, 1]), 320).tolist() == [1, 2, 1]
