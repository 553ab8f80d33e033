"""A character n-gram language model (interpolated Kneser–Ney) and its shallow fusion into CTC beam search.

Why characters: the CPU-sized PromptASR decodes over ≈ 300 BPE pieces that are nearly characters, and its errors are
mostly near-miss spellings of words it has heard (``LOK AT`` for ``LOOK AT``). A character model learns spellings
from plain text, needs no lexicon, scores any piece sequence (a piece is scored as its characters), and keeps the
output style apart by itself: trained on text in several styles, its histories (``THE R`` vs ``the r``) hold each
style's case and punctuation.

The model (Chen & Goodman's interpolated Kneser–Ney): for a history ``h`` of ``k − 1`` characters,

  ``P(c | h) = max(N(h c) − D_k, 0) / N(h ·) + D_k · T(h ·) / N(h ·) · P(c | h')``,

``h'`` = ``h`` without its first character, ``N`` the raw counts at the highest order and the continuation counts
(distinct left neighbours) below it, ``T(h ·)`` the distinct continuations of ``h``, and ``D_k = n1 / (n1 + 2 n2)``
per order from the counts of counts. A history never seen backs off whole; the order-1 model interpolates with the
uniform distribution over the characters seen plus one unknown, so every character (and every byte-fallback piece)
keeps a probability. Each line is a sentence: its history starts as ``order − 1`` start markers and its last
character predicts an end marker. Log-probabilities are natural logs.

Write a corpus's training text in its styles with ``python -m audiojax lm-corpus``, then pass ``--lm lm.txt
--decoder ctc --beam 8`` to ``transcribe`` or ``corpus_wer``.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections import Counter, defaultdict
from typing import Iterable, Sequence

from audiojax.errors import UserError
from audiojax.text.styles import normalize_for_wer

BOS, EOS, UNKNOWN = "\x02", "\x03", "\x00"  # start padding, end of sentence, any character never seen in training


class CharNgramLM:
  """Interpolated Kneser–Ney over characters. ``lines``: training sentences; ``order``: n (the history is n − 1
  characters). States are strings of the last ``order − 1`` characters (hashable, cheap to keep in a hypothesis)."""

  def __init__(self, lines: Iterable[str], order: int = 6):
    if not isinstance(order, int) or order < 1:
      raise UserError(f"character LM order must be an int >= 1, got {order!r}")
    self.order = order
    top: Counter[str] = Counter()  # n-grams of the highest order (shorter only at no position: histories are padded)
    self.words: set[str] = set()  # the training words in WER form (what LmFusion's oov_penalty checks)
    for line in lines:
      line = line.strip()
      if not line:
        continue
      self.words.update(normalize_for_wer(line).split())
      padded = BOS * (order - 1) + line + EOS
      for end in range(order - 1, len(padded)):
        top[padded[end - order + 1:end + 1]] += 1
    if not top:
      raise UserError("the character LM got no non-empty training line; give it a text file with one sentence per line")
    # counts[k][history][char] for k = 1..order: raw counts at the top, continuation counts (distinct left
    # neighbours) below, as Kneser-Ney prescribes
    counts: list[dict[str, Counter]] = [defaultdict(Counter) for _ in range(order + 1)]
    for gram, n in top.items():
      counts[order][gram[:-1]][gram[-1]] += n
    for k in range(order - 1, 0, -1):
      for history, nexts in counts[k + 1].items():
        for char in nexts:
          counts[k][history[1:]][char] += 1
    self._counts = counts
    self._totals = [{h: sum(c.values()) for h, c in level.items()} for level in counts]
    self._discounts = [0.0] + [_discount(counts[k]) for k in range(1, order + 1)]
    self.alphabet = sorted({c for c in counts[1][""]} | {UNKNOWN})

  def initial_state(self) -> str:
    return BOS * (self.order - 1)

  @functools.lru_cache(maxsize=1 << 20)
  def char_log_prob(self, state: str, char: str) -> float:
    """``log P(char | state)``; ``char`` may be :data:`EOS`; a character never seen in training is scored as
    :data:`UNKNOWN`."""
    if char not in self._counts[1][""] and char != EOS:
      char = UNKNOWN
    return math.log(self._prob(state[len(state) - self.order + 1:] if self.order > 1 else "", char))

  def _prob(self, history: str, char: str) -> float:
    k = len(history) + 1
    lower = (self._prob(history[1:], char) if k > 1 else 1.0 / len(self.alphabet))
    nexts = self._counts[k].get(history)
    if not nexts:
      return lower
    total, d = self._totals[k][history], self._discounts[k]
    return max(nexts.get(char, 0) - d, 0.0) / total + d * len(nexts) / total * lower

  def next_state(self, state: str, text: str) -> str:
    return (state + text)[len(state) + len(text) - self.order + 1:] if self.order > 1 else ""

  def score(self, state: str, text: str) -> tuple[float, str]:
    """``(log P(text | state), state after text)`` for a string of characters."""
    total = 0.0
    for char in text:
      total += self.char_log_prob(state, char)
      state = self.next_state(state, char)
    return total, state

  def sentence_log_prob(self, text: str) -> float:
    """``log P(text, end)`` of a whole sentence from the initial state."""
    logp, state = self.score(self.initial_state(), text)
    return logp + self.char_log_prob(state, EOS)

  def perplexity(self, lines: Iterable[str]) -> float:
    """Per-character perplexity (end markers counted) of ``lines``."""
    total, chars = 0.0, 0
    for line in lines:
      line = line.strip()
      if line:
        total += self.sentence_log_prob(line)
        chars += len(line) + 1
    if not chars:
      raise UserError("perplexity needs at least one non-empty line")
    return math.exp(-total / chars)

  @classmethod
  def from_file(cls, path: str, order: int = 6) -> "CharNgramLM":
    if not os.path.isfile(path):
      raise UserError(f"LM text file {path} does not exist; write one with python -m audiojax lm-corpus "
                      "--dataset NAME --out FILE, or give any text file with one sentence per line")
    with open(path, encoding="utf-8") as f:
      return cls(f, order)


def _discount(level: dict[str, Counter]) -> float:
  """Ney's absolute discount ``n1 / (n1 + 2 n2)`` of one order (0.5 when the counts give no estimate)."""
  of_counts = Counter(n for nexts in level.values() for n in nexts.values())
  n1, n2 = of_counts.get(1, 0), of_counts.get(2, 0)
  return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


@dataclasses.dataclass
class LmFusion:
  """Shallow fusion of a :class:`CharNgramLM` into a token search: extending a hypothesis by a token adds
  ``weight × log P_lm(its characters) + token_bonus``, minus ``oov_penalty`` for every word found not to be one of
  the LM's training words; the end adds ``weight × log P_lm(end)``.

  Words are compared in the WER form (:func:`~audiojax.text.styles.normalize_for_wer`): a word is out of vocabulary
  as soon as its first characters start no training word, or when it ends (a space, dash or the end) as a proper
  prefix of one; either way it is penalised once. Held-out names are out of vocabulary by design, so the penalty
  trades names against near-miss spellings of common words: tune it. ``piece_texts[i]`` is token ``i``'s text
  (SentencePiece's ``▁`` as a space; byte-fallback and control pieces as :data:`UNKNOWN`); a hypothesis's leading
  space is dropped, as the tokenizer's decode drops it. States are ``(LM state, partial word in WER form or None once
  out of vocabulary)``."""

  lm: CharNgramLM
  piece_texts: Sequence[str]
  weight: float = 0.5
  token_bonus: float = 0.0
  oov_penalty: float = 0.0
  cache_size: int = 1 << 20  # (state, token) scores kept; the cache is emptied when full, so memory stays bounded

  def __post_init__(self):
    self._cache: dict[tuple[tuple, int], tuple[float, tuple]] = {}
    self._prefixes = {w[:i] for w in self.lm.words for i in range(1, len(w) + 1)} if self.oov_penalty else set()

  @classmethod
  def for_tokenizer(cls, lm: CharNgramLM, tokenizer, weight: float, token_bonus: float = 0.0,
                    oov_penalty: float = 0.0) -> "LmFusion":
    return cls(lm, [_piece_text(tokenizer.piece(i)) for i in range(tokenizer.vocab_size)], weight, token_bonus,
               oov_penalty)

  def initial_state(self) -> tuple:
    return (self.lm.initial_state(), "")

  def extend(self, state: tuple, token: int) -> tuple[float, tuple]:
    """``(score added by token, next state)``."""
    key = (state, token)
    hit = self._cache.get(key)
    if hit is None:
      lm_state, word = state
      text = self.piece_texts[token]
      if lm_state == self.lm.initial_state():
        text = text.lstrip(" ")
      logp, lm_state = self.lm.score(lm_state, text)
      score = self.weight * logp + self.token_bonus
      if self.oov_penalty:
        for char in text:
          if char.isspace() or char in WORD_BREAKS:
            score -= self.oov_penalty * self._is_oov(word)
            word = ""
          elif word is not None and normalize_for_wer(char):
            word += normalize_for_wer(char)
            if word not in self._prefixes:
              score -= self.oov_penalty
              word = None
      if len(self._cache) >= self.cache_size:
        self._cache.clear()
      hit = self._cache[key] = (score, (lm_state, word))
    return hit

  def finish(self, state: tuple) -> float:
    lm_state, word = state
    return self.weight * self.lm.char_log_prob(lm_state, EOS) - self.oov_penalty * self._is_oov(word)

  def _is_oov(self, word: str | None) -> bool:
    """Whether a word that ends now is out of vocabulary and not yet penalised."""
    return bool(word) and word not in self.lm.words


WORD_BREAKS = "-—"  # like whitespace, these end a word in the WER form


def _piece_text(piece: str) -> str:
  if piece.startswith("<") and piece.endswith(">"):  # <blk>, <unk>, byte fallback <0xNN>
    return UNKNOWN
  return piece.replace("▁", " ")
