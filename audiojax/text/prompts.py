"""Prompts for Prompt-ASR: the training-time samplers of the recipe and the byte-level prompt encoding.

Every sampler takes a ``numpy.random.Generator`` and draws only from it, so a prompt is a pure function of the
generator's state (derive it from (seed, step, example id) for exact resume).

- :func:`sample_training_text` — the recipe's ``triplet_text_sampling``: (target text, style prompt, content prompt)
  with the target style and the content style drawn independently and a style prompt always in the target style.
- :func:`sample_context_list` — the word-level biasing variant's content prompt (``get_pre_text_with_context_list2``):
  rare words of the utterance mixed with distractors, or the preceding text.
- :func:`perturb_batch` — the per-batch prompt robustness tricks of the recipe's ``compute_loss``.
- :func:`encode_prompt` / :func:`encode_prompts` — ``style SEP content`` as UTF-8 byte ids for the trainable text
  encoder, with the style span length for the style indicator.
- :class:`PromptEncoding` — the model's prompt encoding: those bytes, or a frozen BERT's WordPiece ids.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from audiojax.errors import UserError
from audiojax.text.styles import STYLES, apply_style, canonical_style_prompt
from audiojax.text.wordpiece import WordPiece

# Prompt vocabulary: ids 0..255 are the UTF-8 byte values, then two specials.
PAD_ID = 256  # padding after the prompt (masked out by the prompt lengths)
SEP_ID = 257  # separates the style prompt from the content prompt
PROMPT_VOCAB_SIZE = 258

DEFAULT_STYLE_WEIGHTS = {"mixed-punc": 0.5, "upper-no-punc": 0.5}
RECIPE_STYLE_WEIGHTS = {"mixed-punc": 0.7, "upper-no-punc": 0.3}  # what icefall trains with


# --- byte-level prompt encoding ---------------------------------------------------------------------------------------
def _is_continuation(byte: int) -> bool:
  return byte & 0xC0 == 0x80  # 10xxxxxx: inside a multi-byte UTF-8 character


def _head(data: bytes, n: int) -> bytes:
  """The first ``<= n`` bytes of ``data``, not splitting a UTF-8 character."""
  if n >= len(data):
    return data
  while n > 0 and _is_continuation(data[n]):
    n -= 1
  return data[:n]


def _tail(data: bytes, n: int) -> bytes:
  """The last ``<= n`` bytes of ``data``, not splitting a UTF-8 character."""
  if n >= len(data):
    return data
  start = len(data) - n
  while start < len(data) and _is_continuation(data[start]):
    start += 1
  return data[start:]


def encode_prompt(style_prompt: str, content_prompt: str, max_bytes: int, *,
                  max_style_bytes: int | None = None) -> tuple[np.ndarray, int, int]:
  """``style_bytes SEP content_bytes`` padded with ``PAD_ID`` to ``max_bytes``.

  Returns ``ids (max_bytes,)`` int32, ``length`` (valid positions) and ``style_length`` (style bytes + SEP: the
  positions that get the style indicator). When the whole does not fit, the style prompt keeps its beginning, up to
  ``max_style_bytes`` bytes of it (default ``max_bytes // 4``; more when the content leaves room), and the content
  prompt keeps its END (the most recent text); both are cut at UTF-8 character boundaries, so decoding never fails.
  The same cut applies in training and at test time, so a capped canonical style sentence is still the one trained on.
  """
  if max_bytes < 2:
    raise UserError(f"prompt max_bytes={max_bytes} is too small: it needs room for the separator and some text; "
                    "use e.g. 256")
  style = style_prompt.encode("utf-8")
  content = content_prompt.encode("utf-8")
  room = max_bytes - 1
  if len(style) + len(content) > room:
    cap = max_bytes // 4 if max_style_bytes is None else min(max_style_bytes, room)
    style = _head(style, max(cap, room - len(content)))
    content = _tail(content, room - len(style))
  ids = np.full((max_bytes,), PAD_ID, np.int32)
  ids[:len(style)] = np.frombuffer(style, np.uint8)
  ids[len(style)] = SEP_ID
  ids[len(style) + 1:len(style) + 1 + len(content)] = np.frombuffer(content, np.uint8)
  return ids, len(style) + 1 + len(content), len(style) + 1


def encode_prompts(pairs: Sequence[tuple[str, str]], max_bytes: int, *,
                   max_style_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Batched :func:`encode_prompt` over ``(style_prompt, content_prompt)`` pairs: ``ids (B, max_bytes)`` int32,
  ``lengths (B,)`` int32, ``style_lengths (B,)`` int32."""
  ids = np.full((len(pairs), max_bytes), PAD_ID, np.int32)
  lengths = np.zeros((len(pairs),), np.int32)
  style_lengths = np.zeros((len(pairs),), np.int32)
  for row, (style, content) in enumerate(pairs):
    ids[row], lengths[row], style_lengths[row] = encode_prompt(style, content, max_bytes,
                                                               max_style_bytes=max_style_bytes)
  return ids, lengths, style_lengths


def decode_prompt(ids: np.ndarray, length: int) -> tuple[str, str]:
  """Inverse of :func:`encode_prompt` (after truncation): ``(style_prompt, content_prompt)``."""
  ids = [int(i) for i in np.asarray(ids)[:length]]
  if SEP_ID not in ids:
    raise UserError("prompt ids have no separator (SEP_ID); they were not made by encode_prompt")
  sep = ids.index(SEP_ID)
  return bytes(ids[:sep]).decode("utf-8"), bytes(ids[sep + 1:]).decode("utf-8")


def _word_spans(content: bytes, word: str) -> list[tuple[int, int]]:
  """The ``[start, end)`` bytes of each whole-word occurrence of ``word``, in any case, in the lower-cased bytes
  ``content``."""
  pattern = rb"(?<![a-z0-9])" + re.escape(word.lower().encode("utf-8")) + rb"(?![a-z0-9])"
  return [match.span() for match in re.finditer(pattern, content)]


def word_positions(ids: np.ndarray, lengths: np.ndarray, style_lengths: np.ndarray,
                   words: Sequence[Sequence[str]]) -> np.ndarray:
  """``(B, M)`` bool: the positions of byte prompts ``ids (B, M)`` (:func:`encode_prompts`) holding a whole-word
  occurrence, in any case, of one of row b's ``words[b]`` in its content bytes (those the encoding kept: a word cut
  by truncation is not marked)."""
  found = np.zeros(ids.shape, bool)
  for b, row_words in enumerate(words):
    start, stop = int(style_lengths[b]), int(lengths[b])
    content = bytes(ids[b, start:stop].astype(np.uint8)).lower()
    for word in row_words:
      for at, end in _word_spans(content, word):
        found[b, start + at:start + end] = True
  return found


def letter_positions(ids: np.ndarray, lengths: np.ndarray, style_lengths: np.ndarray,
                     words: Sequence[Sequence[str]], texts: Sequence[str],
                     spans: Sequence[Sequence[tuple[int, int]] | None], num_tokens: int) -> np.ndarray:
  """``(B, num_tokens, M)`` bool: for each token ``u`` of row b's transcript ``texts[b]`` (characters
  ``spans[b][u]``, :meth:`~audiojax.text.tokenizer.Tokenizer.char_spans`) that spells letters of a whole-word
  occurrence, in any case, of one of ``words[b]``, the prompt bytes holding the same letters in every occurrence of
  that word in the content bytes the encoding kept (as :func:`word_positions` marks them). A row whose ``spans`` is
  None (pieces that do not spell the text back) has no targets."""
  found = np.zeros((ids.shape[0], num_tokens, ids.shape[1]), bool)
  for b, (row_words, text, row_spans) in enumerate(zip(words, texts, spans)):
    if row_spans is None:
      continue
    start, stop = int(style_lengths[b]), int(lengths[b])
    content = bytes(ids[b, start:stop].astype(np.uint8)).lower()
    for word in row_words:
      occurrences = _word_spans(content, word)
      if not occurrences:
        continue
      in_prompt = start + np.asarray([at for at, _ in occurrences], np.int64)
      size = occurrences[0][1] - occurrences[0][0]
      for said in re.finditer(rf"(?<![a-z0-9]){re.escape(word)}(?![a-z0-9])", text, re.IGNORECASE):
        for u, (a, z) in enumerate(row_spans):
          if max(a, said.start()) < min(z, said.end()):
            first = len(text[said.start():max(a, said.start())].lower().encode("utf-8"))
            last = min(len(text[said.start():min(z, said.end())].lower().encode("utf-8")), size)
            found[b, u, (in_prompt[:, None] + np.arange(first, last)[None]).reshape(-1)] = True
  return found


# --- training-text sampling -------------------------------------------------------------------------------------------
class TrainingText(NamedTuple):
  """One sampled training triplet plus the styles drawn for it."""
  target_text: str  # the transcript in target_style
  style_prompt: str  # an example of target_style
  content_prompt: str  # the preceding text (or a context list) in content_style
  target_style: str
  content_style: str


def _style_distribution(style_weights: Mapping[str, float]) -> tuple[list[str], np.ndarray]:
  names = list(style_weights)
  for name in names:
    if name not in STYLES:
      raise UserError(f"style_weights has unknown style {name!r}; use keys among {', '.join(STYLES)}")
  weights = np.array([float(style_weights[n]) for n in names], np.float64)
  if not names or np.any(weights < 0) or weights.sum() <= 0:
    raise UserError(f"style_weights {dict(style_weights)} must be non-negative with a positive sum")
  return names, weights / weights.sum()


def random_substring(rng: np.random.Generator, text: str, min_chars: int, max_chars: int) -> str:
  """A random substring of ``text`` of ``min(len, min_chars)``..``max_chars`` characters (the recipe's
  ``get_substring``: uniform start, then an end drawn uniformly up to the end of the text, capped at ``max_chars``)."""
  min_chars = min(len(text), min_chars)
  start = int(rng.integers(0, len(text) - min_chars + 1))
  end = min(start + max_chars, int(rng.integers(start + min_chars, len(text) + 1)))
  return text[start:end]


def sample_training_text(rng: np.random.Generator, text: str, pre_text: str, *,
                         style_weights: Mapping[str, float] = DEFAULT_STYLE_WEIGHTS, canonical_prob: float = 0.3,
                         content: str | None = None, min_style_chars: int = 80, max_style_chars: int = 150,
                         style_from_text: bool = True) -> TrainingText:
  """One training triplet from a transcript ``text`` and its preceding text ``pre_text`` (both mixed-punc).

  - The target style and the content style are drawn independently from ``style_weights`` (the recipe trains with
    :data:`RECIPE_STYLE_WEIGHTS`; our default is 50/50).
  - Style prompt, always in the target style: with probability ``canonical_prob`` the canonical style sentence
    (:func:`~audiojax.text.styles.canonical_style_prompt`; a from-scratch prompt encoder does not generalise to
    this test-time sentence unless it sees it in training), otherwise a random ``min_style_chars``..``max_style_chars``
    character substring of ``pre_text`` rendered in the target style. When ``pre_text`` is shorter than
    ``min_style_chars`` the substring comes from ``text`` instead (``style_from_text=True``; note this shows the
    model part of its own transcript in the style span) or is the whole short ``pre_text`` (``False``, the
    recipe's behaviour); an empty source gives the canonical sentence.
  - Content prompt: ``content`` (e.g. from :func:`sample_context_list`; default ``pre_text``) in the content style.
  """
  names, probs = _style_distribution(style_weights)
  target_style = names[int(rng.choice(len(names), p=probs))]
  content_style = names[int(rng.choice(len(names), p=probs))]
  source = pre_text
  if len(pre_text) < min_style_chars and style_from_text:
    source = text
  if rng.random() < canonical_prob or not source.strip():
    style_prompt = canonical_style_prompt(target_style)
  else:
    style_prompt = apply_style(random_substring(rng, source, min_style_chars, max_style_chars), target_style)
  content_prompt = apply_style(pre_text if content is None else content, content_style)
  return TrainingText(apply_style(text, target_style), style_prompt, content_prompt, target_style, content_style)


def sample_context_list(rng: np.random.Generator, rare_words: Sequence[str] | str, distractor_pool: Sequence[str], *,
                        pre_text: str, reference: str | None = None,
                        num_distractors: tuple[int, int] = (50, 100),
                        num_distractors_only: tuple[int, int] = (5, 100), max_reference_words: int = 20,
                        substring_chars: tuple[int, int] = (15, 150), lowercase: bool = True) -> str:
  """A content prompt for the word-level biasing variant (the recipe's ``get_pre_text_with_context_list2``).

  ``rare_words``: the utterance's rare words (a list or the dataset's space-separated string); ``distractor_pool``:
  rare words of the whole corpus; ``reference``: the text the "reference words" and "substring" branches draw from
  (the recipe passes the preceding text there, which is the default). Ranges are inclusive; distractor counts are
  capped at the pool size (our CPU corpora have small pools: shrink ``num_distractors`` to match).

  With rare words:    40 % a random non-empty subset of them + ``num_distractors`` distractors, shuffled;
                      15 % 1..``max_reference_words`` reference words (drawn with replacement, weight len^1.2)
                      + ``num_distractors`` distractors, shuffled;  45 % ``pre_text``.
  Without rare words: 30 % 1..``max_reference_words`` reference words (no distractors: what the recipe's code
                      does);  10 % ``num_distractors_only`` distractors;  20 % a ``substring_chars`` substring of
                      the reference;  40 % ``pre_text``.
  Rare words and distractors are lower-cased when ``lowercase`` (as in the recipe). The result is space-joined and
  still to be rendered in a content style (pass it as ``content=`` to :func:`sample_training_text`).
  """
  if isinstance(rare_words, str):
    rare_words = rare_words.split()
  reference = pre_text if reference is None else reference
  case = (lambda w: w.lower()) if lowercase else (lambda w: w)

  def distractors(count_range: tuple[int, int]) -> list[str]:
    count = min(int(rng.integers(count_range[0], count_range[1] + 1)), len(distractor_pool))
    return [case(distractor_pool[int(i)]) for i in rng.choice(len(distractor_pool), count, replace=False)]

  def reference_words() -> list[str]:
    words = reference.split()
    if not words:
      return []
    weights = np.array([len(w) for w in words], np.float64) ** 1.2
    count = int(rng.integers(1, min(len(words), max_reference_words) + 1))
    return [words[int(i)] for i in rng.choice(len(words), count, p=weights / weights.sum())]

  def shuffled(words: list[str]) -> str:
    return " ".join(words[int(i)] for i in rng.permutation(len(words)))

  v = rng.random()
  if rare_words:
    if v < 0.4:
      count = int(rng.integers(1, len(rare_words) + 1))
      chosen = [case(rare_words[int(i)]) for i in rng.choice(len(rare_words), count, replace=False)]
      return shuffled(chosen + distractors(num_distractors))
    if v < 0.55:
      return shuffled(reference_words() + distractors(num_distractors))
    return pre_text
  if v < 0.3:
    return " ".join(reference_words())
  if v < 0.4:
    return " ".join(distractors(num_distractors_only))
  if v < 0.6:
    return random_substring(rng, reference, *substring_chars)
  return pre_text


# --- per-batch robustness ---------------------------------------------------------------------------------------------
def _swap_and_blank(rng: np.random.Generator, prompts: list[str], swap_prob: float, blank_prob: float,
                    groups: Sequence[str] | None) -> list[str]:
  """Each row with probability ``swap_prob`` takes the prompt of another row of the same group (unchanged when it
  has none), then each row is blanked with probability ``blank_prob``."""
  out = list(prompts)
  for row in np.flatnonzero(rng.random(len(prompts)) < swap_prob):
    others = [j for j in range(len(prompts)) if j != row and (groups is None or groups[j] == groups[row])]
    if others:
      out[row] = prompts[others[int(rng.integers(len(others)))]]
  blank = rng.random(len(prompts)) < blank_prob
  return ["" if b else p for p, b in zip(out, blank)]


def perturb_batch(rng: np.random.Generator, content_prompts: Sequence[str], style_prompts: Sequence[str], *,
                  shuffle_content: float = 0.05, blank_content: float = 0.05, shuffle_style: float = 0.2,
                  blank_style: float = 0.05, style_batch_prob: float = 0.5,
                  target_styles: Sequence[str] | None = None) -> tuple[list[str], list[str]]:
  """The recipe's prompt-robustness tricks over one batch; returns new ``(content_prompts, style_prompts)``.

  Content: each row takes another row's content prompt with probability ``shuffle_content`` (irrelevant context),
  then is blanked with probability ``blank_content``. Style: only in a random ``style_batch_prob`` share of the
  batches, each row takes another row's style prompt with probability ``shuffle_style`` and is then blanked with
  probability ``blank_style``. (The recipe permutes ``int(B * p)`` rows, which is none at all for B < 20; drawing
  per row keeps the rate at ``p`` for small CPU batches.)

  The style prompt must stay in the row's target style. The recipe keeps that by swapping raw (mixed-punc) snippets
  and rendering them in the target style afterwards; our :func:`sample_training_text` returns rendered prompts, so
  pass ``target_styles`` (``TrainingText.target_style`` per row) and a row only takes the style prompt of a row with
  the same target style. Without ``target_styles`` any row may be swapped with any other: only correct when all rows
  share one target style or when the prompts are raw text the caller renders afterwards.
  """
  if target_styles is not None and len(target_styles) != len(style_prompts):
    raise UserError(f"perturb_batch got {len(target_styles)} target_styles for {len(style_prompts)} style prompts; "
                    "pass one target style per row")
  content = _swap_and_blank(rng, list(content_prompts), shuffle_content, blank_content, None)
  style = list(style_prompts)
  if rng.random() < style_batch_prob:
    style = _swap_and_blank(rng, style, shuffle_style, blank_style, target_styles)
  return content, style


@dataclasses.dataclass(frozen=True)
class PromptEncoding:
  """PromptASR's prompt encoding, picklable for data workers: ``(style, content)`` pairs → ``ids (B, max_length)``
  int32, ``lengths (B,)``, ``style_lengths (B,)``. UTF-8 bytes (:func:`encode_prompts`) when ``vocab_dir`` is
  empty, else WordPiece of the BERT vocabulary in ``vocab_dir`` (:meth:`WordPiece.encode_prompts`)."""

  max_length: int
  vocab_dir: str = ""

  @functools.cached_property
  def wordpiece(self) -> WordPiece:
    return WordPiece.from_dir(self.vocab_dir)

  def __call__(self, pairs: Sequence[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not self.vocab_dir:
      return encode_prompts(pairs, self.max_length)
    return self.wordpiece.encode_prompts(pairs, self.max_length)
