"""Phonemes for speech synthesis (VALL-E's text side): espeak-ng's IPA of normalised text, cut into phoneme symbols,
and the vocabulary that numbers them with language-ID tokens (VALL-E X).

- :func:`audiojax.data.sources.espeak.phonemize` runs espeak-ng (``-q --ipa``, the language's voice of
  :data:`VOICES`) on each text, English first through :func:`audiojax.text.normalize.normalize_english`, and cuts
  its IPA with :func:`symbols`; espeak-ng's clause breaks become ``,``.
- :func:`symbols` cuts an IPA string into symbols: a base character with the marks that modify it (combining
  diacritics, length ``ː``, tie bars, syllabicity), stress marks ``ˈ ˌ`` apart, word boundaries as :data:`WORD`.
- :class:`PhonemeVocabulary` numbers the symbols a corpus uses after the specials (``<pad> <bos> <eos> <unk>``) and
  one ``<xx>`` token per language; it is saved as JSON beside a model, so a model reads text exactly as it was
  trained to.
"""
from __future__ import annotations

import json
import unicodedata
from typing import Iterable, Sequence

from audiojax import paths
from audiojax.errors import UserError

VOICES = {"en": "en-us", "fr": "fr-fr", "de": "de", "es": "es", "it": "it", "ru": "ru", "cs": "cs", "nl": "nl",
          "pt": "pt", "pl": "pl", "zh": "cmn", "ja": "ja"}  # language ID → espeak-ng voice
WORD, CLAUSE = "_", ","  # the symbols of a word boundary and of a clause break
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
_STRESS = frozenset("ˈˌ")
_MODIFIERS = frozenset("ːˑ˞ʰʲʷˠˤⁿˡ̃͡‿")  # attach to the symbol before them


def language_token(language: str) -> str:
  return f"<{language}>"


def check_language(language: str) -> str:
  """The espeak-ng voice of ``language`` (a UserError naming the supported ones otherwise)."""
  if language not in VOICES:
    raise UserError(f"language '{language}' has no phonemiser voice; use one of {', '.join(sorted(VOICES))}")
  return VOICES[language]


def symbols(ipa: str) -> list[str]:
  """An IPA string (words separated by spaces, clauses by newlines or ``,``) → its phoneme symbols."""
  out: list[str] = []
  for word in ipa.replace("\n", f" {CLAUSE} ").split():
    if word == CLAUSE:
      if out and out[-1] == WORD:
        out[-1] = CLAUSE
      elif out:
        out.append(CLAUSE)
      continue
    if out and out[-1] != CLAUSE:
      out.append(WORD)
    for char in word:
      if char == "-":  # espeak-ng's mark of an unstressed word joined to the next
        continue
      attaches = unicodedata.combining(char) or char in _MODIFIERS or out and out[-1].endswith("͡")
      if attaches and out and out[-1] not in (WORD, CLAUSE) and out[-1] not in _STRESS:
        out[-1] += char
      else:
        out.append(char)
  while out and out[-1] in (WORD, CLAUSE):
    out.pop()
  return out


class PhonemeVocabulary:
  """Numbers phoneme symbols: the specials (``<pad>`` = 0), the language tokens, then the corpus' symbols."""

  FILE = "phonemes.json"

  def __init__(self, symbols_: Sequence[str], languages: Sequence[str]):
    for language in languages:
      check_language(language)
    self.languages = tuple(languages)
    self.tokens = (*SPECIALS, *(language_token(x) for x in self.languages),
                   *(s for s in symbols_ if s not in SPECIALS))
    self.index = {t: i for i, t in enumerate(self.tokens)}
    if len(self.index) != len(self.tokens):
      raise ValueError("phoneme symbols must be distinct")

  @classmethod
  def build(cls, sequences: Iterable[Sequence[str]], languages: Sequence[str]) -> "PhonemeVocabulary":
    """The vocabulary of the symbols in ``sequences`` (sorted, so the same corpus always gives the same ids)."""
    seen = sorted({s for sequence in sequences for s in sequence})
    return cls(seen, languages)

  def __len__(self) -> int:
    return len(self.tokens)

  @property
  def pad_id(self) -> int:
    return self.index[PAD]

  def encode(self, sequence: Sequence[str], language: str | None = None, *, bos: bool = False,
             eos: bool = False) -> list[int]:
    """Ids of ``sequence`` (unknown symbols → ``<unk>``), after the language token when ``language`` is given."""
    ids = [self.index[BOS]] if bos else []
    if language is not None:
      if language not in self.languages:
        raise UserError(f"language '{language}' is not one this model was trained on ({', '.join(self.languages)})")
      ids.append(self.index[language_token(language)])
    ids += [self.index.get(s, self.index[UNK]) for s in sequence]
    return ids + ([self.index[EOS]] if eos else [])

  def encode_segments(self, segments: Sequence[tuple[Sequence[str], str]]) -> tuple[list[int], list[int]]:
    """VALL-E's text: the symbols of each ``(phonemes, language)`` segment (an acoustic prompt's transcript, the text
    to say), joined by a word boundary → ``(ids, language indices)``, each symbol tagged with its segment's language
    (an index into :attr:`languages`)."""
    ids: list[int] = []
    languages: list[int] = []
    for sequence, language in segments:
      if language not in self.languages:
        raise UserError(f"language '{language}' is not one this model was trained on ({', '.join(self.languages)})")
      if ids and sequence and WORD in self.index:
        ids.append(self.index[WORD])
        languages.append(languages[-1])
      ids += [self.index.get(s, self.index[UNK]) for s in sequence]
      languages += [self.languages.index(language)] * len(sequence)
    return ids, languages

  def decode(self, ids: Iterable[int]) -> list[str]:
    return [self.tokens[i] for i in ids]

  def save(self, folder: str) -> None:
    paths.write_atomic(paths.resolve(folder) / self.FILE, json.dumps(
        {"languages": list(self.languages), "tokens": list(self.tokens)}, ensure_ascii=False, indent=1))

  @classmethod
  def load(cls, folder: str) -> "PhonemeVocabulary":
    file = paths.resolve(folder) / cls.FILE
    if not file.is_file():
      raise UserError(f"'{file}' does not exist; point at a TTS workdir or model directory")
    try:
      data = json.loads(file.read_text())
      languages = data["languages"]
      prefix = len(SPECIALS) + len(languages)
      vocabulary = cls(data["tokens"][prefix:], languages)
    except (ValueError, KeyError, TypeError) as e:
      raise UserError(f"'{file}' is not a phoneme vocabulary ({e}); export the model again") from None
    if list(vocabulary.tokens) != data["tokens"]:
      raise UserError(f"'{file}' lists its specials or languages out of order; export the model again")
    return vocabulary
