"""WordPiece tokenization equal to Hugging Face's ``BertTokenizer`` (the Python one of transformers 4.x, called
``BertTokenizerLegacy`` in 5.x), and the ``[CLS] style [SEP] content [SEP]`` prompt encoding of a frozen BERT.

Basic tokenizer: drop NUL, U+FFFD and control characters, map whitespace to spaces, put spaces around CJK ideographs,
NFC-normalise, split on whitespace; with ``do_lower_case`` lower-case each word and strip accents (NFD, drop
combining marks ``Mn``), then split every punctuation character (Unicode ``P*`` and all non-alphanumeric printable
ASCII) into its own word. WordPiece: greedy longest-match-first over the vocabulary, continuation pieces prefixed
with ``##``; a word longer than 100 characters, or one with no full cover, becomes ``[UNK]``.

Differences from Hugging Face, both deliberate: special-token strings inside the text (a literal ``"[SEP]"``) are
ordinary text here, so user text cannot inject separators; and the fast (Rust) tokenizer of transformers 5.x skips the
NFC step, so it differs from the Python one (and from this) on decomposed accents such as ``"e\\u0301"``.
"""
from __future__ import annotations

import json
import os
import unicodedata
from typing import Sequence

import numpy as np

from audiojax import paths
from audiojax.errors import UserError

VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG = "tokenizer_config.json"
MAX_WORD_CHARS = 100
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")


def _is_whitespace(ch: str) -> bool:
  return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
  return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
  cp = ord(ch)
  # every printable non-alphanumeric ASCII character counts ("$", "^", "`" are not Unicode punctuation)
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(ch).startswith("P")


_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _is_cjk(ch: str) -> bool:
  """CJK Unified Ideographs (not Hiragana, Katakana or Hangul, which are written with spaces)."""
  cp = ord(ch)
  return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _strip_accents(word: str) -> str:
  return "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")


def _split_punctuation(word: str) -> list[str]:
  pieces: list[str] = []
  current = ""
  for ch in word:
    if _is_punctuation(ch):
      if current:
        pieces.append(current)
        current = ""
      pieces.append(ch)
    else:
      current += ch
  return pieces + ([current] if current else [])


def read_vocab(path: str) -> list[str]:
  """The lines of a BERT ``vocab.txt`` (line i is token id i)."""
  if not os.path.isfile(path):
    raise UserError(f"vocabulary '{path}' does not exist; give the vocab.txt of the BERT model")
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n") for line in f]


def is_cased(vocab: Sequence[str]) -> bool:
  """True when some piece other than the bracketed specials holds an upper-case letter (bert-base-cased's vocabulary
  does, bert-base-uncased's does not)."""
  return any(t.lower() != t for t in vocab if not (t.startswith("[") and t.endswith("]")))


class WordPiece:
  """A BERT tokenizer: ``tokenize(text) -> pieces``, ``encode(text) -> ids`` and the prompt encoding.

  ``do_lower_case=None`` infers it from the vocabulary (:func:`is_cased`); ``strip_accents=None`` follows
  ``do_lower_case`` (as BERT does).
  """

  def __init__(self, vocab: Sequence[str], *, do_lower_case: bool | None = None, strip_accents: bool | None = None,
               tokenize_chinese_chars: bool = True):
    self.vocab = list(vocab)
    self.ids = {}
    for i, token in enumerate(self.vocab):
      self.ids[token] = i  # a duplicated line maps to its last id, as in Hugging Face's load_vocab
    missing = [t for t in SPECIALS if t not in self.ids]
    if missing:
      raise UserError(f"the BERT vocabulary lacks {', '.join(missing)}; give the vocab.txt the model was trained with")
    self.do_lower_case = (not is_cased(self.vocab)) if do_lower_case is None else bool(do_lower_case)
    self.strip_accents = strip_accents
    self.tokenize_chinese_chars = tokenize_chinese_chars
    self.pad_id, self.unk_id, self.cls_id, self.sep_id = (self.ids[t] for t in SPECIALS)

  @classmethod
  def from_dir(cls, path: str) -> "WordPiece":
    """From a directory holding ``vocab.txt`` and optionally ``tokenizer_config.json`` (a Hugging Face BERT
    directory, or an audiojax BERT directory written by :func:`audiojax.models.bert.save`). Without a tokenizer
    config, ``do_lower_case`` is inferred from the vocabulary (bert-base-cased → False)."""
    return cls(read_vocab(os.path.join(path, VOCAB_FILE)), **read_settings(path))

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  def settings(self) -> dict:
    """What :meth:`from_dir` reads back from ``tokenizer_config.json``."""
    return {"do_lower_case": self.do_lower_case, "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.tokenize_chinese_chars}

  def save(self, path: str) -> None:
    """Writes ``vocab.txt`` and ``tokenizer_config.json`` into the directory ``path`` (local or a bucket)."""
    folder = paths.resolve(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / VOCAB_FILE).write_text("".join(t + "\n" for t in self.vocab), encoding="utf-8")
    (folder / TOKENIZER_CONFIG).write_text(json.dumps(self.settings(), indent=2))

  # --- tokenization ------------------------------------------------------------------------------------------------
  def basic_tokenize(self, text: str) -> list[str]:
    """Words and punctuation marks, cleaned (and lower-cased / accent-stripped when configured)."""
    chars = []
    for ch in text:
      if ch in "\x00\ufffd" or _is_control(ch):
        continue
      if _is_whitespace(ch):
        chars.append(" ")
      elif self.tokenize_chinese_chars and _is_cjk(ch):
        chars.append(f" {ch} ")
      else:
        chars.append(ch)
    words = []
    for word in unicodedata.normalize("NFC", "".join(chars)).split():
      if self.do_lower_case:
        word = word.lower()
        if self.strip_accents is not False:
          word = _strip_accents(word)
      elif self.strip_accents:
        word = _strip_accents(word)
      words.extend(_split_punctuation(word))
    return " ".join(words).split()  # accent stripping can leave empty words; drop them

  def _wordpieces(self, word: str) -> list[str]:
    if len(word) > MAX_WORD_CHARS:
      return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
      for end in range(len(word), start, -1):
        piece = word[start:end] if start == 0 else "##" + word[start:end]
        if piece in self.ids:
          break
      else:
        return ["[UNK]"]
      pieces.append(piece)
      start = end
    return pieces

  def tokenize(self, text: str) -> list[str]:
    """``text`` → WordPiece strings (``"##"`` marks a piece continuing a word), no special tokens added."""
    return [p for word in self.basic_tokenize(text) for p in self._wordpieces(word)]

  def encode(self, text: str) -> list[int]:
    """``text`` → token ids, no special tokens added."""
    return [self.ids[p] for p in self.tokenize(text)]

  # --- prompts -----------------------------------------------------------------------------------------------------
  def encode_prompt(self, style_prompt: str, content_prompt: str, max_tokens: int, *,
                    max_style_tokens: int | None = None) -> tuple[np.ndarray, int, int]:
    """``[CLS] style [SEP] content [SEP]`` padded with ``[PAD]`` to ``max_tokens``.

    Returns ``ids (max_tokens,)`` int32, ``length`` (valid positions) and ``style_length`` (``[CLS]`` + style +
    the first ``[SEP]``: the positions that get the style indicator, the recipe's ``style_lens``).

    When the whole does not fit, the style keeps its beginning, up to ``max_style_tokens`` pieces (default
    ``max_tokens // 4``; more when the content leaves room), and the content keeps its END (the most recent text),
    starting at a whole word (leading ``##`` pieces of a cut word are dropped). Hugging Face's ``truncation=True``,
    which the recipe uses, keeps the beginning instead, so an over-long preceding text loses exactly the words next
    to the utterance; this deliberately differs.
    """
    if max_tokens < 3:
      raise UserError(f"prompt max_tokens={max_tokens} is too small: [CLS], [SEP] and [SEP] alone take 3; use e.g. "
                      "128")
    style = self.tokenize(style_prompt)
    content = self.tokenize(content_prompt)
    room = max_tokens - 3
    if len(style) + len(content) > room:
      cap = max_tokens // 4 if max_style_tokens is None else max_style_tokens
      style = style[:max(min(cap, room), room - len(content))]
      keep = room - len(style)
      content = content[len(content) - keep:] if keep else []
      while content and content[0].startswith("##"):
        content = content[1:]
    tokens = ["[CLS]", *style, "[SEP]", *content, "[SEP]"]
    ids = np.full((max_tokens,), self.pad_id, np.int32)
    ids[:len(tokens)] = [self.ids[t] for t in tokens]
    return ids, len(tokens), len(style) + 2

  def encode_prompts(self, pairs: Sequence[tuple[str, str]], max_tokens: int, *,
                     max_style_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batched :meth:`encode_prompt` over ``(style_prompt, content_prompt)`` pairs: ``ids (B, max_tokens)`` int32,
    ``lengths (B,)`` int32, ``style_lengths (B,)`` int32."""
    ids = np.full((len(pairs), max_tokens), self.pad_id, np.int32)
    lengths = np.zeros((len(pairs),), np.int32)
    style_lengths = np.zeros((len(pairs),), np.int32)
    for row, (style, content) in enumerate(pairs):
      ids[row], lengths[row], style_lengths[row] = self.encode_prompt(style, content, max_tokens,
                                                                      max_style_tokens=max_style_tokens)
    return ids, lengths, style_lengths


def read_settings(path: str) -> dict:
  """``do_lower_case`` / ``strip_accents`` / ``tokenize_chinese_chars`` from ``path/tokenizer_config.json`` when it
  exists (absent keys: inferred / BERT's defaults)."""
  file = os.path.join(path, TOKENIZER_CONFIG)
  if not os.path.isfile(file):
    return {}
  try:
    with open(file) as f:
      raw = json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f"cannot read '{file}' ({e}); fix or delete it (do_lower_case is then inferred)") from None
  out = {}
  for key in ("do_lower_case", "strip_accents", "tokenize_chinese_chars"):
    if raw.get(key) is not None:
      out[key] = bool(raw[key])
  return out
