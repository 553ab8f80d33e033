"""Renders single General-MIDI notes with TinySoundFont from the TimGM6mb SoundFont that ``pretty_midi`` ships.

One synthesizer is loaded per process and reused (it is not thread-safe). Every render ends by silencing the
synthesizer, so no voice of one note sounds in the next and a note renders to the same samples whatever came before.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pretty_midi
import tinysoundfont

from audiojax.audio.io import resample

SOUNDFONT = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
DRUMS = -1  # ``program`` value that selects the GM drum kit (channel 10); ``pitch`` is then the GM drum key

# TinySoundFont's resonant low-pass filter becomes unstable when a modulated cutoff approaches Nyquist: at 16 kHz
# some presets (synth bass 2, halo pad, banjo, bagpipe) blow up to 25x full scale. Rendering at 32 kHz and
# resampling avoids it.
SYNTH_RATE = 32000
_MELODIC_CHANNEL = 0
_DRUM_CHANNEL = 9
_DRUM_BANK = 128
# "All sound off" fades voices out in about 10 ms; this flush lets them finish before the next note.
_FLUSH_SAMPLES = SYNTH_RATE // 20
_FADE_SAMPLES = SYNTH_RATE // 100  # fade-out where ``total_seconds`` cuts a still-sounding release


@functools.cache
def _synth() -> tuple[tinysoundfont.Synth, int]:
  """The process's synthesizer and the id of the loaded SoundFont."""
  synth = tinysoundfont.Synth(samplerate=SYNTH_RATE)
  return synth, synth.sfload(SOUNDFONT)


def _generate(synth: tinysoundfont.Synth, frames: int) -> np.ndarray:
  """``frames`` stereo frames as ``(frames, 2)`` float32."""
  if frames <= 0:
    return np.zeros((0, 2), np.float32)
  return np.frombuffer(synth.generate(frames), np.float32).reshape(frames, 2)


def _select(synth: tinysoundfont.Synth, sfid: int, program: int) -> int:
  """Selects ``program`` (or the drum kit) on its channel and returns the channel."""
  if program == DRUMS:
    synth.program_select(_DRUM_CHANNEL, sfid, _DRUM_BANK, 0, is_drums=True)
    return _DRUM_CHANNEL
  synth.program_select(_MELODIC_CHANNEL, sfid, 0, program, is_drums=False)
  return _MELODIC_CHANNEL


def render_note(program: int, pitch: int, velocity: int, hold_seconds: float, total_seconds: float, *,
                sample_rate: int = 16000) -> np.ndarray:
  """Renders one note: pressed for ``hold_seconds``, then released, cut (with a 10 ms fade) at ``total_seconds``.

  Args:
    program: GM program 0–127, or ``DRUMS`` for the drum kit.
    pitch: MIDI key 0–127 (the GM drum key 35–81 when ``program == DRUMS``).
    velocity: MIDI velocity 1–127.
    hold_seconds: time between note-on and note-off (clipped to ``total_seconds``).
    total_seconds: length of the render, release tail included.
    sample_rate: rate of the returned wave.

  Returns:
    Mono float32 wave of ``round(total_seconds * sample_rate)`` samples (give or take one from resampling).
  """
  if (not (program == DRUMS or 0 <= program <= 127) or not 0 <= pitch <= 127 or not 1 <= velocity <= 127
      or total_seconds <= 0):
    raise ValueError(f"invalid note: program={program}, pitch={pitch}, velocity={velocity}, "
                     f"total_seconds={total_seconds}")
  synth, sfid = _synth()
  channel = _select(synth, sfid, program)
  total = int(round(total_seconds * SYNTH_RATE))
  hold = min(int(round(hold_seconds * SYNTH_RATE)), total)
  synth.noteon(channel, pitch, velocity)
  try:
    held = _generate(synth, hold)
    synth.noteoff(channel, pitch)
    released = _generate(synth, total - hold)
  finally:
    synth.sounds_off(channel)
    synth.generate(_FLUSH_SAMPLES)
  stereo = np.concatenate([held, released])
  wave = 0.5 * (stereo[:, 0] + stereo[:, 1])  # much faster than mean(axis=1) on two channels
  fade = min(_FADE_SAMPLES, wave.shape[0])
  wave[wave.shape[0] - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
  return resample(wave, SYNTH_RATE, sample_rate)
