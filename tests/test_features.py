"""audiojax.audio.features against an independent float64 numpy reference written from the definitions."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.audio import features as F

# ----------------------------------------------------------------------------------------------------------------
# float64 reference


def ref_hann(n):
  return np.array([0.5 - 0.5 * np.cos(2 * np.pi * i / n) for i in range(n)])


def ref_pad(x, p, mode):
  """Pads ``x (L,)`` by ``p`` both sides: reflect excludes the edge sample (x[p], ..., x[1], x[0], x[1], ...)."""
  if mode == "constant":
    return np.concatenate([np.zeros(p), x, np.zeros(p)])
  left = np.array([x[p - i] for i in range(p)])
  right = np.array([x[len(x) - 2 - i] for i in range(p)])
  return np.concatenate([left, x, right])


def ref_stft(x, n_fft, hop, win_length=None, center=True, pad_mode="reflect"):
  """``x (L,)`` float64 → ``(n_fft // 2 + 1, T)`` complex128, one frame at a time."""
  win_length = win_length or n_fft
  window = np.zeros(n_fft)
  start = (n_fft - win_length) // 2
  window[start:start + win_length] = ref_hann(win_length)
  if center:
    x = ref_pad(x, n_fft // 2, pad_mode)
  cols = []
  t = 0
  while t * hop + n_fft <= len(x):
    cols.append(np.fft.rfft(x[t * hop:t * hop + n_fft] * window))
    t += 1
  return np.stack(cols, axis=1)


def ref_mel(f, scale):
  if scale == "htk":
    return 2595 * np.log10(1 + f / 700)
  return f / (200 / 3) if f < 1000 else 15 + np.log(f / 1000) / (np.log(6.4) / 27)


def ref_hz(m, scale):
  if scale == "htk":
    return 700 * (10 ** (m / 2595) - 1)
  return m * (200 / 3) if m < 15 else 1000 * np.exp((m - 15) * np.log(6.4) / 27)


def ref_filterbank(n_freqs, f_min, f_max, n_mels, sample_rate, scale, norm):
  lo, hi = ref_mel(f_min, scale), ref_mel(f_max, scale)
  edges = [ref_hz(lo + (hi - lo) * i / (n_mels + 1), scale) for i in range(n_mels + 2)]
  fb = np.zeros((n_freqs, n_mels))
  for k in range(n_freqs):
    f = k * (sample_rate / 2) / (n_freqs - 1)
    for i in range(n_mels):
      a, c, b = edges[i], edges[i + 1], edges[i + 2]
      if a < f <= c:
        fb[k, i] = (f - a) / (c - a)
      elif c < f < b:
        fb[k, i] = (b - f) / (b - c)
      if norm == "slaney":
        fb[k, i] *= 2 / (b - a)
  return fb


def ref_ced_log_mel(x):
  """CED settings on ``x (L,)``: power mel ``(64, T)`` and dB with a 120 dB floor below this example's max."""
  power = np.abs(ref_stft(x, 512, 160)) ** 2
  mel = ref_filterbank(257, 0.0, 8000.0, 64, 16000, "htk", None).T @ power
  db = 10 * np.log10(np.maximum(mel, 1e-10))
  return mel, np.maximum(db, db.max() - 120)


# ----------------------------------------------------------------------------------------------------------------
# signals


def sines_and_noise(length, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(length) / 16000
  x = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in [(0.3, 220, 0.1), (0.2, 1234.5, 1.0), (0.1, 5000, 2.0)])
  return (x + 0.01 * rng.standard_normal(length)).astype(np.float32)


def chirp(length):
  """Linear chirp 50 Hz → 7900 Hz over the clip."""
  t = np.arange(length) / 16000
  duration = length / 16000
  return (0.5 * np.sin(2 * np.pi * (50 * t + (7900 - 50) * t ** 2 / (2 * duration)))).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# tests


def test_hann_window_matches_definition():
  np.testing.assert_allclose(F.hann_window(400), ref_hann(400), atol=1e-7)
  symmetric = F.hann_window(11, periodic=False)
  assert symmetric[0] == 0 and symmetric[-1] == 0 and symmetric[5] == 1


@pytest.mark.parametrize("length,n_fft,hop,win_length,center,pad_mode", [
    (1001, 64, 16, None, True, "reflect"),
    (999, 64, 20, 40, True, "constant"),
    (777, 128, 32, 101, False, "reflect"),
    (513, 33, 7, None, True, "reflect"),
])
def test_stft_and_spectrogram_match_reference(length, n_fft, hop, win_length, center, pad_mode):
  rng = np.random.default_rng(length)
  wave = rng.standard_normal((2, length)).astype(np.float32)
  kw = dict(n_fft=n_fft, hop_length=hop, win_length=win_length, center=center, pad_mode=pad_mode)
  ref = np.stack([ref_stft(w.astype(np.float64), n_fft, hop, win_length, center, pad_mode) for w in wave])
  got = np.asarray(F.stft(wave, **kw))
  assert got.shape == ref.shape == (2, n_fft // 2 + 1, ref.shape[-1])
  if center:
    assert got.shape[-1] == 1 + length // hop
  scale = np.abs(ref).max()
  assert np.abs(got - ref).max() < 2e-6 * scale
  power = np.asarray(F.spectrogram(wave, power=2.0, **kw))
  assert np.abs(power - np.abs(ref) ** 2).max() < 4e-6 * scale ** 2
  magnitude = np.asarray(F.spectrogram(wave, power=1.0, **kw))
  assert np.abs(magnitude - np.abs(ref)).max() < 2e-6 * scale


def test_batch_equals_stacked_single_calls():
  wave = np.random.default_rng(1).standard_normal((3, 4000)).astype(np.float32)
  kw = dict(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64)
  batch = np.asarray(F.mel_spectrogram(wave, **kw))
  # equal up to float32 summation order (matmul blocking depends on the batch shape)
  np.testing.assert_allclose(batch, np.stack([F.mel_spectrogram(w, **kw) for w in wave]), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(np.asarray(F.log_mel(wave, F.CED_MEL)),
                             np.stack([F.log_mel(w, F.CED_MEL) for w in wave]), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("scale", ["htk", "slaney"])
@pytest.mark.parametrize("norm", [None, "slaney"])
@pytest.mark.parametrize("n_freqs,f_min,f_max,n_mels,sample_rate", [
    (257, 0.0, 8000.0, 64, 16000),
    (513, 20.0, 11025.0, 80, 22050),
])
def test_filterbank_matches_reference(scale, norm, n_freqs, f_min, f_max, n_mels, sample_rate):
  got = F.mel_filterbank(n_freqs=n_freqs, f_min=f_min, f_max=f_max, n_mels=n_mels, sample_rate=sample_rate,
                         mel_scale=scale, norm=norm)
  ref = ref_filterbank(n_freqs, f_min, f_max, n_mels, sample_rate, scale, norm)
  assert got.shape == ref.shape and got.dtype == np.float32
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * ref.max())


def test_htk_filters_peak_at_one_on_their_centre_bin():
  # One filter whose centre (1000 Hz) is exactly a bin of a 1 Hz grid: it peaks at exactly 1 there.
  f_max = float(F.mel_to_hz(2 * F.hz_to_mel(1000.0) - F.hz_to_mel(500.0)))
  fb = F.mel_filterbank(n_freqs=2001, f_min=500.0, f_max=f_max, n_mels=1, sample_rate=4000)
  assert np.argmax(fb[:, 0]) == 1000 and fb[1000, 0] == pytest.approx(1.0, abs=1e-6)
  # 64 filters on a 1 Hz grid: each peaks within one bin of its centre, at 1 minus at most half a bin of slope.
  fb = F.mel_filterbank(n_freqs=8001, f_min=0.0, f_max=8000.0, n_mels=64, sample_rate=16000)
  edges = F.mel_to_hz(np.linspace(0.0, F.hz_to_mel(8000.0), 66))
  assert fb.max() <= 1.0
  for i in range(64):
    assert abs(np.argmax(fb[:, i]) - edges[i + 1]) <= 1.0
    assert fb[:, i].max() >= 1.0 - 0.5 / min(edges[i + 1] - edges[i], edges[i + 2] - edges[i + 1]) - 1e-6


@pytest.mark.parametrize("scale", ["htk", "slaney"])
def test_mel_scale_round_trip_and_definition(scale):
  hz = np.array([0.0, 50.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0, 22050.0])
  np.testing.assert_allclose(F.mel_to_hz(F.hz_to_mel(hz, scale), scale), hz, rtol=1e-12, atol=1e-9)
  np.testing.assert_allclose(F.hz_to_mel(hz, scale), [ref_mel(f, scale) for f in hz], rtol=1e-12)
  assert F.hz_to_mel(jnp.asarray(hz, jnp.float32), scale).dtype == jnp.float32
  np.testing.assert_allclose(F.hz_to_mel(jnp.asarray(hz), scale), F.hz_to_mel(hz, scale), rtol=1e-5)


@pytest.mark.parametrize("signal", [sines_and_noise, chirp])
@pytest.mark.parametrize("length", [16000, 160000])
def test_ced_log_mel_matches_reference(signal, length):
  wave = signal(length)
  got_power = np.asarray(F.mel_spectrogram(wave, sample_rate=16000, n_fft=512, hop_length=160, win_length=512,
                                           n_mels=64, f_min=0.0, f_max=8000.0))
  got_db = np.asarray(F.log_mel(wave[None], F.CED_MEL))[0]
  ref_power, ref_db = ref_ced_log_mel(wave.astype(np.float64))
  frames = 1 + length // 160
  assert got_db.shape == got_power.shape == ref_db.shape == (64, frames) == (64, F.num_frames(length, F.CED_MEL))
  loud = ref_power > 1e-6 * ref_power.max()
  assert np.max(np.abs(got_power - ref_power)[loud] / ref_power[loud]) < 1e-4
  # float32 STFT error is ~1e-7 of the clip's peak: bins > 90 dB below it (the chirp's far sidelobes) are noise.
  audible = (ref_db > -70) & (ref_db > ref_db.max() - 90)
  assert np.abs(got_db - ref_db)[audible].max() < 2e-2


def test_ced_config_and_frame_count():
  assert F.num_frames(160000, F.CED_MEL) == 1001
  assert (F.CED_MEL.n_fft, F.CED_MEL.hop_length, F.CED_MEL.n_mels, F.CED_MEL.top_db) == (512, 160, 64, 120.0)
  with pytest.raises(AttributeError):
    F.CED_MEL.n_mels = 128


def test_top_db_floor_is_per_example():
  rng = np.random.default_rng(2)
  loud = 1e3 * rng.random((64, 50)) + 1e-12
  quiet = 1e-8 * rng.random((64, 50)) + 1e-20
  both = np.asarray(F.power_to_db(np.stack([loud, quiet]).astype(np.float32), top_db=80.0))
  for i, x in enumerate([loud, quiet]):
    alone = np.asarray(F.power_to_db(x[None].astype(np.float32), top_db=80.0))[0]
    np.testing.assert_array_equal(both[i], alone)
    assert both[i].min() >= both[i].max() - 80.0 - 1e-4
  # A global floor would have clamped the whole quiet example to the loud one's max − 80 dB.
  assert np.ptp(both[1]) > 10.0
  amp = np.asarray(F.amplitude_to_db(np.stack([loud, quiet]).astype(np.float32), top_db=80.0))
  np.testing.assert_array_equal(amp[1], np.asarray(F.amplitude_to_db(quiet[None].astype(np.float32), top_db=80.0))[0])


def test_db_and_log_definitions():
  x = np.array([[0.0, 1e-12, 1e-3, 1.0, 250.0]], np.float32)
  np.testing.assert_allclose(F.power_to_db(x, ref=2.0), 10 * np.log10(np.maximum(x, 1e-10) / 2.0), rtol=1e-5)
  np.testing.assert_allclose(F.amplitude_to_db(x, amin=1e-5), 20 * np.log10(np.maximum(x, 1e-5)), rtol=1e-5)
  np.testing.assert_allclose(F.log_clamp(x, 1e-5), np.log(np.maximum(x, 1e-5)), rtol=1e-6)


def test_reflect_padding_too_short_raises():
  with pytest.raises(ValueError, match="reflect padding"):
    F.stft(np.zeros(256, np.float32), n_fft=512, hop_length=160)
  assert F.stft(np.zeros(256, np.float32), n_fft=512, hop_length=160, pad_mode="constant").shape == (257, 2)
  assert F.stft(np.zeros(257, np.float32), n_fft=512, hop_length=160).shape == (257, 2)


def test_public_functions_jit():
  wave = jnp.asarray(sines_and_noise(4000)[None])
  stft_kw = dict(n_fft=512, hop_length=160, win_length=400)
  mel_kw = dict(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64)
  fb_kw = dict(n_freqs=257, f_min=0.0, f_max=8000.0, n_mels=64, sample_rate=16000)
  hz = jnp.linspace(0.0, 8000.0, 9)
  cases = [
      (functools.partial(F.hann_window, 400), (), F.hann_window(400)),
      (functools.partial(F.stft, **stft_kw), (wave,), F.stft(wave, **stft_kw)),
      (functools.partial(F.spectrogram, **stft_kw), (wave,), F.spectrogram(wave, **stft_kw)),
      (functools.partial(F.hz_to_mel, scale="slaney"), (hz,), F.hz_to_mel(hz, "slaney")),
      (functools.partial(F.mel_to_hz, scale="slaney"), (hz,), F.mel_to_hz(hz, "slaney")),
      (functools.partial(F.mel_filterbank, **fb_kw), (), F.mel_filterbank(**fb_kw)),
      (functools.partial(F.mel_spectrogram, **mel_kw), (wave,), F.mel_spectrogram(wave, **mel_kw)),
      (functools.partial(F.power_to_db, top_db=80.0), (wave ** 2,), F.power_to_db(wave ** 2, top_db=80.0)),
      (functools.partial(F.amplitude_to_db, top_db=80.0), (wave,), F.amplitude_to_db(wave, top_db=80.0)),
      (functools.partial(F.log_clamp, eps=1e-5), (wave,), F.log_clamp(wave, 1e-5)),
      (functools.partial(F.log_mel, cfg=F.CED_MEL), (wave,), F.log_mel(wave, F.CED_MEL)),
  ]
  for fn, args, eager in cases:
    np.testing.assert_allclose(jax.jit(fn)(*args), eager, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jax.jit(F.log_mel, static_argnames="cfg")(wave, F.CED_MEL), F.log_mel(wave, F.CED_MEL),
                             rtol=1e-5, atol=1e-5)
