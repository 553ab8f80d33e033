"""Batched, ``jax.jit``-able audio front-end: STFT, (mel) spectrograms and decibel scaling, in float32.

Conventions follow torchaudio so that checkpoints trained there see the same features: periodic Hann window,
centred frames with reflect padding, mel filterbanks built like ``torchaudio.functional.melscale_fbanks``.
Array shapes: ``wave (B, L)`` (or ``(L,)``), spectra ``(B, F, T)`` with ``F = n_fft // 2 + 1``, mels
``(B, n_mels, T)``. Integer and string arguments are static: pass them with ``functools.partial`` or
``static_argnames`` when jitting.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

_MEL_SCALES = ("htk", "slaney")
_PAD_MODES = ("reflect", "constant")

# Slaney (Auditory Toolbox) mel scale: linear below 1 kHz, logarithmic above.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hann_window(n: int, periodic: bool = True) -> jnp.ndarray:
  """Hann window ``(n,)`` float32; ``periodic=True`` matches ``torch.hann_window``'s default (a DFT-even window)."""
  if n == 1:
    return jnp.ones((1,), jnp.float32)
  period = n if periodic else n - 1
  return jnp.asarray(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / period), jnp.float32)


def _fft_window(window: str | jnp.ndarray, win_length: int, n_fft: int) -> jnp.ndarray:
  """The analysis window ``(win_length,)`` zero-padded, centred, to ``(n_fft,)`` (torch semantics)."""
  if isinstance(window, str):
    if window != "hann":
      raise ValueError(f"window must be 'hann' or an array, got '{window}'")
    window = hann_window(win_length)
  window = jnp.asarray(window, jnp.float32)
  if window.shape != (win_length,):
    raise ValueError(f"window has shape {window.shape} but win_length is {win_length}")
  left = (n_fft - win_length) // 2
  return jnp.pad(window, (left, n_fft - win_length - left))


def _pad_for_centre(wave: jnp.ndarray, n_fft: int, pad_mode: str) -> jnp.ndarray:
  """Pads the last axis of ``wave (B, L)`` by ``n_fft // 2`` on both sides so frame t is centred on t·hop."""
  if pad_mode not in _PAD_MODES:
    raise ValueError(f"pad_mode must be one of {_PAD_MODES}, got '{pad_mode}'")
  pad = n_fft // 2
  length = wave.shape[-1]
  if pad_mode == "reflect" and length <= pad:
    raise ValueError(f"reflect padding by n_fft // 2 = {pad} needs more than {pad} samples, got {length}; "
                     f"use a longer wave, a smaller n_fft or pad_mode='constant'")
  return jnp.pad(wave, ((0, 0), (pad, pad)), mode=pad_mode)


def _frames(wave: jnp.ndarray, n_fft: int, hop_length: int) -> jnp.ndarray:
  """``wave (B, L)`` → overlapping frames ``(B, T, n_fft)`` with ``T = 1 + (L - n_fft) // hop_length``."""
  length = wave.shape[-1]
  if length < n_fft:
    raise ValueError(f"a wave of {length} samples is shorter than n_fft = {n_fft}; use center=True or a longer wave")
  num = 1 + (length - n_fft) // hop_length
  index = hop_length * np.arange(num)[:, None] + np.arange(n_fft)[None, :]
  return wave[:, index]


def stft(wave: jnp.ndarray, *, n_fft: int, hop_length: int, win_length: int | None = None,
         window: str | jnp.ndarray = "hann", center: bool = True, pad_mode: str = "reflect") -> jnp.ndarray:
  """Short-time Fourier transform (one-sided, unnormalised), as ``torch.stft(..., return_complex=True)``.

  Args:
    wave: ``(B, L)`` or ``(L,)`` real samples.
    n_fft: FFT size; gives ``F = n_fft // 2 + 1`` frequency bins.
    hop_length: samples between frame starts.
    win_length: window length ``<= n_fft`` (default ``n_fft``); a shorter window is zero-padded, centred.
    window: ``"hann"`` (periodic) or an array ``(win_length,)``.
    center: pad by ``n_fft // 2`` on both sides so that ``T = 1 + L // hop_length``; otherwise
      ``T = 1 + (L - n_fft) // hop_length``.
    pad_mode: ``"reflect"`` (needs ``L > n_fft // 2``) or ``"constant"`` (zeros); used when ``center``.

  Returns:
    complex64 ``(B, F, T)``, or ``(F, T)`` for a 1-D ``wave``.

  Raises:
    ValueError: for inconsistent sizes, or a wave too short to reflect-pad or to hold one frame.
  """
  win_length = n_fft if win_length is None else win_length
  if not 0 < win_length <= n_fft or hop_length <= 0:
    raise ValueError(f"need 0 < win_length <= n_fft and hop_length > 0, got win_length={win_length}, "
                     f"n_fft={n_fft}, hop_length={hop_length}")
  wave = jnp.asarray(wave, jnp.float32)
  if wave.ndim not in (1, 2):
    raise ValueError(f"wave must be (L,) or (B, L), got shape {wave.shape}")
  batched = wave.ndim == 2
  wave = wave if batched else wave[None]
  if center:
    wave = _pad_for_centre(wave, n_fft, pad_mode)
  frames = _frames(wave, n_fft, hop_length) * _fft_window(window, win_length, n_fft)
  spec = jnp.swapaxes(jnp.fft.rfft(frames, axis=-1), -1, -2)
  return spec if batched else spec[0]


def spectrogram(wave: jnp.ndarray, *, n_fft: int, hop_length: int, win_length: int | None = None,
                power: float = 2.0, center: bool = True, pad_mode: str = "reflect") -> jnp.ndarray:
  """``|STFT|**power`` of a Hann-windowed wave: ``(B, L)`` → ``(B, F, T)`` float32 (``(L,)`` → ``(F, T)``).

  ``power=2`` is the power spectrum, ``power=1`` the magnitude. See :func:`stft` for the other arguments.
  """
  if power <= 0:
    raise ValueError(f"power must be > 0, got {power}")
  spec = stft(wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length, center=center, pad_mode=pad_mode)
  # re² + im² is exact where |X|² = abs()**2 would round through a square root.
  energy = jnp.square(spec.real) + jnp.square(spec.imag)
  return energy if power == 2.0 else energy ** (power / 2.0)


def _array_module(x):
  """jax.numpy for jax arrays and tracers, numpy otherwise (so host-side constants stay float64)."""
  return jnp if isinstance(x, jax.Array) else np


def _check_mel_scale(scale: str) -> None:
  if scale not in _MEL_SCALES:
    raise ValueError(f"mel scale must be one of {_MEL_SCALES}, got '{scale}'")


def hz_to_mel(f, scale: str = "htk"):
  """Frequency in Hz → mels, elementwise. numpy in → numpy out (float64 kept); jax in → jax out."""
  _check_mel_scale(scale)
  xp = _array_module(f)
  f = xp.asarray(f)
  if scale == "htk":
    return 2595.0 * xp.log10(1.0 + f / 700.0)
  # The maximum keeps log() finite in the branch that where() discards.
  log_part = _SLANEY_BREAK_MEL + xp.log(xp.maximum(f, _SLANEY_BREAK_HZ) / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
  return xp.where(f < _SLANEY_BREAK_HZ, f / _SLANEY_HZ_PER_MEL, log_part)


def mel_to_hz(m, scale: str = "htk"):
  """Mels → frequency in Hz, elementwise; the inverse of :func:`hz_to_mel`."""
  _check_mel_scale(scale)
  xp = _array_module(m)
  m = xp.asarray(m)
  if scale == "htk":
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
  log_part = _SLANEY_BREAK_HZ * xp.exp(_SLANEY_LOG_STEP * (m - _SLANEY_BREAK_MEL))
  return xp.where(m < _SLANEY_BREAK_MEL, m * _SLANEY_HZ_PER_MEL, log_part)


@functools.lru_cache(maxsize=32)
def _cached_filterbank(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int, mel_scale: str,
                       norm: str | None) -> np.ndarray:
  _check_mel_scale(mel_scale)
  if norm not in (None, "slaney"):
    raise ValueError(f"norm must be None or 'slaney', got '{norm}'")
  if not 0.0 <= f_min < f_max:
    raise ValueError(f"need 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
  bin_hz = np.linspace(0.0, sample_rate / 2.0, n_freqs)
  mels = np.linspace(hz_to_mel(np.float64(f_min), mel_scale), hz_to_mel(np.float64(f_max), mel_scale), n_mels + 2)
  edges = mel_to_hz(mels, mel_scale)
  lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
  rising = (bin_hz[:, None] - lower) / (centre - lower)
  falling = (upper - bin_hz[:, None]) / (upper - centre)
  weights = np.maximum(0.0, np.minimum(rising, falling))
  if norm == "slaney":
    weights *= 2.0 / (upper - lower)
  weights = weights.astype(np.float32)
  weights.flags.writeable = False
  return weights


def mel_filterbank(*, n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int,
                   mel_scale: str = "htk", norm: str | None = None) -> np.ndarray:
  """Triangular mel filters ``(n_freqs, n_mels)`` float32 (read-only, cached), like torchaudio's melscale_fbanks.

  Filter ``i`` rises from edge ``i`` to peak 1 at edge ``i + 1`` and falls to 0 at edge ``i + 2``, where the
  ``n_mels + 2`` edges are equally spaced in mels between ``mel(f_min)`` and ``mel(f_max)``. The filters are
  evaluated at the FFT bin frequencies ``linspace(0, sample_rate / 2, n_freqs)``. ``norm="slaney"`` scales filter
  ``i`` by ``2 / (edge[i + 2] - edge[i])`` so that every filter has the same area. Built in float64.
  """
  return _cached_filterbank(int(n_freqs), float(f_min), float(f_max), int(n_mels), int(sample_rate), mel_scale,
                            norm)


def mel_spectrogram(wave: jnp.ndarray, *, sample_rate: int, n_fft: int, hop_length: int,
                    win_length: int | None = None, n_mels: int, f_min: float = 0.0, f_max: float | None = None,
                    power: float = 2.0, mel_scale: str = "htk", norm: str | None = None, center: bool = True,
                    pad_mode: str = "reflect") -> jnp.ndarray:
  """Mel spectrogram ``(B, L)`` → ``(B, n_mels, T)`` float32 (``(L,)`` → ``(n_mels, T)``), as torchaudio's.

  ``f_max`` defaults to ``sample_rate / 2``. See :func:`spectrogram` and :func:`mel_filterbank`.
  """
  spec = spectrogram(wave, n_fft=n_fft, hop_length=hop_length, win_length=win_length, power=power, center=center,
                     pad_mode=pad_mode)
  fbank = mel_filterbank(n_freqs=n_fft // 2 + 1, f_min=f_min, f_max=sample_rate / 2.0 if f_max is None else f_max,
                         n_mels=n_mels, sample_rate=sample_rate, mel_scale=mel_scale, norm=norm)
  # HIGHEST keeps TPUs from rounding the matmul inputs to bfloat16.
  return jnp.einsum("...ft,fm->...mt", spec, fbank, precision=jax.lax.Precision.HIGHEST)


def _to_db(x: jnp.ndarray, multiplier: float, amin: float, ref: float, top_db: float | None) -> jnp.ndarray:
  """``multiplier · log10(max(x, amin) / max(ref, amin))``, floored at ``top_db`` below each example's max."""
  db = multiplier * (jnp.log10(jnp.maximum(x, amin)) - np.log10(max(ref, amin)))
  if top_db is None:
    return db
  if db.ndim < 2:
    raise ValueError(f"top_db needs a batched input (B, ...), got shape {db.shape}; add a leading batch axis")
  peak = jnp.max(db, axis=tuple(range(1, db.ndim)), keepdims=True)
  return jnp.maximum(db, peak - top_db)


def power_to_db(x: jnp.ndarray, *, amin: float = 1e-10, ref: float = 1.0, top_db: float | None = None) -> jnp.ndarray:
  """Power ``x (B, ...)`` → decibels ``10·log10(max(x, amin)) − 10·log10(max(ref, amin))``, same shape.

  With ``top_db``, values are floored at ``max − top_db`` where the max is taken per example (over every axis but
  the first). Unlike torchaudio's AmplitudeToDB, which takes one max over the whole batch for a 3-D input, batch
  members never influence each other here, so a feature does not depend on what it was batched with.
  """
  return _to_db(x, 10.0, amin, ref, top_db)


def amplitude_to_db(x: jnp.ndarray, *, amin: float = 1e-10, ref: float = 1.0,
                    top_db: float | None = None) -> jnp.ndarray:
  """Amplitude ``x (B, ...)`` → decibels ``20·log10(max(x, amin)) − 20·log10(max(ref, amin))``.

  ``top_db`` floors per example, as in :func:`power_to_db`.
  """
  return _to_db(x, 20.0, amin, ref, top_db)


def log_clamp(x: jnp.ndarray, eps: float = 1e-5) -> jnp.ndarray:
  """Natural log ``log(max(x, eps))``, elementwise, same shape as ``x``."""
  return jnp.log(jnp.maximum(x, eps))


@dataclasses.dataclass(frozen=True)
class MelConfig:
  """A log-mel front-end: centred reflect-padded periodic-Hann STFT, mel filterbank, power → dB.

  Hashable, so it can be a static argument of ``jax.jit``.
  """

  sample_rate: int
  n_fft: int
  win_length: int
  hop_length: int
  n_mels: int
  f_min: float
  f_max: float
  mel_scale: str
  norm: str | None
  power: float
  amin: float
  top_db: float | None


def num_frames(num_samples: int, cfg: MelConfig) -> int:
  """Frames that :func:`log_mel` gives for ``num_samples`` samples (centred frames: ``1 + L // hop``)."""
  return 1 + num_samples // cfg.hop_length


def log_mel(wave: jnp.ndarray, cfg: MelConfig) -> jnp.ndarray:
  """``wave (B, L)`` → log-mel ``(B, n_mels, T)`` in dB, ``T = num_frames(L, cfg)``; ``(L,)`` → ``(n_mels, T)``.

  ``cfg.power == 2`` mels are converted with :func:`power_to_db`, others (magnitude) with :func:`amplitude_to_db`;
  ``top_db`` floors each example on its own.
  """
  batched = jnp.ndim(wave) == 2
  mel = mel_spectrogram(wave if batched else wave[None], sample_rate=cfg.sample_rate, n_fft=cfg.n_fft,
                        hop_length=cfg.hop_length, win_length=cfg.win_length, n_mels=cfg.n_mels, f_min=cfg.f_min,
                        f_max=cfg.f_max, power=cfg.power, mel_scale=cfg.mel_scale, norm=cfg.norm)
  to_db = power_to_db if cfg.power == 2.0 else amplitude_to_db
  db = to_db(mel, amin=cfg.amin, top_db=cfg.top_db)
  return db if batched else db[0]


# The CED audio tagger's front-end: torchaudio MelSpectrogram(16000, n_fft=512, win_length=512, hop_length=160,
# f_min=0, f_max=8000, n_mels=64) then AmplitudeToDB(stype="power", top_db=120). 10 s → 1001 frames.
CED_MEL = MelConfig(sample_rate=16000, n_fft=512, win_length=512, hop_length=160, n_mels=64, f_min=0.0, f_max=8000.0,
                    mel_scale="htk", norm=None, power=2.0, amin=1e-10, top_db=120.0)
