"""Zero-shot speech synthesis with a VALL-E model (:mod:`audiojax.models.valle`): say a text in the voice of a short
recorded prompt whose transcript is known.

The prompt is encoded by the codec the model was trained on and phonemised; each text is normalised and cut into
sentences (:func:`audiojax.text.normalize.split_sentences`, short enough that prompt + sentence + its speech fit the
model's ``max_positions``), and every sentence is spoken after the same prompt (so a long text keeps the voice): the
AR decoder samples codebook 1 with a KV cache until EOS or ``max_frames_per_phoneme`` frames per phoneme, the NAR
decoder fills the other codebooks greedily, the codec decodes, and a text's sentences are joined with
``pause_seconds`` of silence. All sentences of a call run as one batch (padded to few shapes, so repeated calls
reuse the compiled programs).
"""
from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from audiojax.audio.io import load_audio
from audiojax.data.sources import espeak
from audiojax.decoding import codec_lm
from audiojax.decoding.sampling import Sampling
from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.inference.codec import Coder
from audiojax.models import valle
from audiojax.text.normalize import split_sentences

MIN_PROMPT_SECONDS = 1.0
SILENCE_RMS = 10 ** (-60 / 20)  # a prompt quieter than -60 dBFS RMS is silence
DEFAULT_SAMPLING = Sampling(temperature=1.0, top_p=0.8, ras_window=10, ras_threshold=0.1)  # VALL-E 2's RAS
SHAPE_STEP = 64  # packed lengths and decoding steps are rounded up to a multiple of this


@dataclasses.dataclass(frozen=True)
class Prompt:
  """An acoustic prompt: its codes ``(frames, n_q)``, phonemes and language."""

  codes: np.ndarray
  phonemes: tuple[str, ...]
  language: str

  @property
  def frames(self) -> int:
    return self.codes.shape[0]


@dataclasses.dataclass
class Speech:
  """One text spoken: ``wave (L,)`` at ``sample_rate``; ``sentences``, and how many of them ended on EOS (the
  others were cut at their frame cap)."""

  wave: np.ndarray
  sample_rate: int
  sentences: int
  ended: int

  @property
  def seconds(self) -> float:
    return self.wave.shape[0] / self.sample_rate


def _round_up(n: int, step: int = SHAPE_STEP) -> int:
  return step * math.ceil(max(n, 1) / step)


class Synthesizer:
  """A VALL-E model, its phoneme vocabulary and its codec (see the module docstring)."""

  def __init__(self, model: valle.Valle, variables: dict, vocabulary, coder: Coder, max_positions: int, *,
               max_frames_per_phoneme: float = 8.0, pause_seconds: float = 0.25):
    self.model, self.variables, self.vocabulary, self.coder = model, variables, vocabulary, coder
    self.max_positions = int(max_positions)
    self.max_frames_per_phoneme = float(max_frames_per_phoneme)
    self.pause_seconds = float(pause_seconds)
    self.sample_rate = coder.model.sample_rate
    self.bandwidth = coder.bandwidth_of(model.n_q)

  @classmethod
  def from_checkpoint(cls, path: str, **options) -> "Synthesizer":
    """From a VALL-E model directory (``export``) or codec-LM training workdir."""
    model, variables, vocabulary, settings = load.valle(path)
    return cls(model, variables, vocabulary, Coder.from_checkpoint(settings["codec_dir"]), settings["max_positions"],
               **options)

  def check_language(self, language: str) -> None:
    if language not in self.vocabulary.languages:
      raise UserError(f"language '{language}' is not one this model speaks ({', '.join(self.vocabulary.languages)}); "
                      "choose one with --language")

  def phonemes(self, text: str, language: str, what: str = "text") -> tuple[str, ...]:
    """The phoneme symbols of ``text``; a UserError for empty text or text with nothing to pronounce."""
    self.check_language(language)
    if not text.strip():
      raise UserError(f"the {what} is empty; give words to say")
    symbols = tuple(espeak.phonemize([text], language)[0])
    if not [s for s in symbols if s not in ("_", ",")]:
      raise UserError(f"the {what} {text!r} has no pronounceable characters; give words in {language}")
    return symbols

  def prompt(self, audio_path: str, text: str, language: str) -> Prompt:
    """The acoustic prompt of ``audio_path`` (any rate; resampled) with its transcript ``text``."""
    audio = load_audio(audio_path, self.sample_rate, needed_by="the voice prompt")
    return self.prompt_from_wave(audio.wave, text, language, f"prompt audio '{audio_path}'")

  def prompt_from_wave(self, wave: np.ndarray, text: str, language: str, name: str = "the prompt audio") -> Prompt:
    """The acoustic prompt of ``wave (L,)`` at the codec's rate with its transcript ``text``."""
    wave = wave[:wave.shape[0] // self.coder.model.hop_length * self.coder.model.hop_length]
    seconds = wave.shape[0] / self.sample_rate
    if seconds < MIN_PROMPT_SECONDS:
      raise UserError(f"{name} is {seconds:.2f} s; give at least {MIN_PROMPT_SECONDS:g} s of "
                      "speech (3 s is typical)")
    if float(np.sqrt(np.mean(np.square(wave)))) < SILENCE_RMS:
      raise UserError(f"{name} is silence (below -60 dBFS); give a recording of the voice")
    phonemes = self.phonemes(text, language, "prompt text")
    codes = self.coder.encode_batch(wave[None], self.model.n_q)[0].T
    limit = self.max_positions // 2
    if len(phonemes) + codes.shape[0] + 1 > limit:
      most = (limit - len(phonemes) - 1) / self.coder.model.frame_rate
      raise UserError(f"{name} ({seconds:.1f} s) with its text is longer than this model "
                      f"takes (at most {max(most, 0):.1f} s with this text: half of max_positions={self.max_positions})"
                      "; give a shorter prompt")
    return Prompt(codes.astype(np.int32), phonemes, language)

  def _sentences(self, text: str, language: str, prompt: Prompt) -> list[tuple[str, ...]]:
    budget = self.max_positions - len(prompt.phonemes) - prompt.frames - 2
    max_chars = max(20, int(budget / (1 + self.max_frames_per_phoneme)))
    sentences = split_sentences(text, max_chars)
    if not sentences:
      raise UserError("the text is empty; give words to say")
    return [self.phonemes(s, language) for s in sentences]

  def speak(self, texts: list[str], prompt: Prompt, language: str, *, seed: int = 0,
            sampling: Sampling = DEFAULT_SAMPLING) -> list[Speech]:
    """Each of ``texts`` spoken in ``prompt``'s voice in ``language`` (all in one batch)."""
    self.check_language(language)
    pieces = [(t, p) for t, text in enumerate(texts) for p in self._sentences(text, language, prompt)]
    rows, max_new = [], []
    for _, phonemes in pieces:
      ids, languages = self.vocabulary.encode_segments([(prompt.phonemes, prompt.language), (phonemes, language)])
      rows.append({"phonemes": np.asarray(ids), "languages": np.asarray(languages), "codes": prompt.codes,
                   "prompt_frames": prompt.frames})
      room = self.max_positions - (len(ids) + prompt.frames + 1)
      max_new.append(max(1, min(room, int(self.max_frames_per_phoneme * len(phonemes)))))
    batch = 1 << (len(rows) - 1).bit_length()  # a power of two: few shapes
    padded = rows + [rows[0]] * (batch - len(rows))
    max_new += [1] * (batch - len(max_new))
    packed = valle.pack(padded, _round_up(max(len(r["phonemes"]) + prompt.frames + 1 for r in padded)),
                        self.model.bins)
    ar_prompt = {k: packed[k] for k in ("text", "languages", "audio", "text_lengths")} | {"lengths": packed[
        "ar_lengths"]}
    generated = codec_lm.generate_first_codebook(
        self.model, self.variables, ar_prompt, jnp.asarray(max_new), jax.random.PRNGKey(seed),
        max_steps=_round_up(max(max_new)), sampling=sampling)
    tokens, counts, ended = (np.asarray(generated[k]) for k in ("tokens", "counts", "ended"))
    full_rows = []
    for row, toks, count in zip(padded, tokens, counts):
      target = np.zeros((max(int(count), 1), self.model.n_q), np.int32)
      target[:count, 0] = toks[:count]
      full_rows.append({**row, "codes": np.concatenate([prompt.codes, target])})
    nar = valle.pack(full_rows, _round_up(max(len(r["phonemes"]) + r["codes"].shape[0] + 1 for r in full_rows)),
                     self.model.bins)
    codes = np.asarray(codec_lm.fill_codebooks(self.model, self.variables, nar))
    target_codes = np.zeros((len(pieces), self.model.n_q, _round_up(int(counts[:len(pieces)].max()))), np.int32)
    for i in range(len(pieces)):
      start = int(nar["text_lengths"][i]) + prompt.frames
      target_codes[i, :, :counts[i]] = codes[i, start:start + counts[i]].T
    waves = self.coder.decode_batch(target_codes)
    hop = self.coder.model.hop_length
    pause = np.zeros(int(self.pause_seconds * self.sample_rate), np.float32)
    out = []
    for t in range(len(texts)):
      mine = [i for i, (owner, _) in enumerate(pieces) if owner == t]
      parts = []
      for k, i in enumerate(mine):
        parts += ([pause] if k else []) + [waves[i, :counts[i] * hop]]
      out.append(Speech(np.concatenate(parts).astype(np.float32), self.sample_rate, len(mine),
                        int(ended[mine].sum())))
    return out

  def timed_speak(self, *args, **kwargs) -> tuple[list[Speech], float]:
    """:meth:`speak` and its wall-clock seconds."""
    start = time.perf_counter()
    speech = self.speak(*args, **kwargs)
    return speech, time.perf_counter() - start
