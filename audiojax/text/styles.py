"""Output styles of Prompt-ASR: the text transforms that make every style from cased, punctuated book text.

The recipe (icefall ``zipformer_prompt_asr/text_normalization.py``) trains on one mixed-case, punctuated transcript per
utterance and derives the other styles from it:

=================  =================================================================================================
``mixed-punc``     the text as it is (identity)
``upper-no-punc``  upper-cased; ``-`` and ``—`` become spaces; only ``[A-Za-z0-9']`` and whitespace kept; spaces
                   collapsed and stripped (the recipe's ``upper_only_alpha``, also the WER normalization)
``lower-no-punc``  the same, lower-cased (``lower_only_alpha``)
``lower-punc``     lower-cased, nothing removed (``lower_all_char``)
=================  =================================================================================================

Two deliberate differences from the recipe: the no-punc styles collapse runs of whitespace (the recipe leaves double
spaces where punctuation was removed; SentencePiece ignores them anyway), and they read the typographic apostrophes
``’`` / ``‘`` as ``'`` so "it’s" becomes "IT'S", not "ITS".

The style prompt is an *example* in the wanted style, not an instruction: at test time it is
:data:`CANONICAL_STYLE_SENTENCE` rendered in that style (:func:`canonical_style_prompt`).
"""
from __future__ import annotations

import re

from audiojax.errors import UserError

STYLES = ("mixed-punc", "upper-no-punc", "lower-no-punc", "lower-punc")
UNKNOWN_STYLE = "unknown"  # what detect_style returns for text that is in none of STYLES
CANONICAL_STYLE_SENTENCE = "Mixed-case English transcription, with punctuation. Actually, it's fully not related."

_DASHES = re.compile("[-—]")
_NOT_KEPT = re.compile(r"[^A-Za-z0-9\s']+")


def _check_style(style: str) -> None:
  if style not in STYLES:
    raise UserError(f"unknown text style {style!r}; use one of {', '.join(STYLES)}")


def _only_alpha(text: str) -> str:
  text = text.replace("’", "'").replace("‘", "'")
  text = _NOT_KEPT.sub("", _DASHES.sub(" ", text))
  return " ".join(text.split())


def apply_style(text: str, style: str) -> str:
  """``text`` (mixed case with punctuation) rendered in ``style`` (one of :data:`STYLES`)."""
  _check_style(style)
  if style == "mixed-punc":
    return text
  if style == "upper-no-punc":
    return _only_alpha(text.upper())
  if style == "lower-no-punc":
    return _only_alpha(text.lower())
  return text.lower()


def canonical_style_prompt(style: str) -> str:
  """The decode-time style prompt: :data:`CANONICAL_STYLE_SENTENCE` in ``style``."""
  return apply_style(CANONICAL_STYLE_SENTENCE, style)


def normalize_for_wer(text: str) -> str:
  """The recipe's "post-normalized" WER form (``upper_only_alpha``), applied to reference and hypothesis alike."""
  return apply_style(text, "upper-no-punc")


def name_words(text: str) -> set[str]:
  """The words of ``text`` a name can be matched against: :func:`normalize_for_wer` words with a possessive ``'S``
  removed (``Kaludor's`` → ``KALUDOR``)."""
  return {word.removesuffix("'S") for word in normalize_for_wer(text).split()}


def clean_book_text(text: str) -> str:
  """Book text as the recipe feeds it (``train_text_normalization``): curly quotes made straight and a leading
  ``'" '`` (a quote left open from the previous segment) dropped."""
  text = text.replace("“", '"').replace("”", '"').replace("‘", "'").replace("’", "'")
  return text[2:] if text.startswith('" ') else text


def _is_punctuation(char: str) -> bool:
  return not (char.isalnum() or char.isspace() or char == "'")


def detect_style(text: str) -> str:
  """Which of :data:`STYLES` ``text`` (e.g. a hypothesis) is written in, or :data:`UNKNOWN_STYLE`.

  Rules, first match wins:

  1. no letter at all (empty, digits, punctuation only): ``unknown``;
  2. ``text == apply_style(text, "upper-no-punc")``: ``upper-no-punc`` (no lower-case letter, nothing outside
     ``[A-Z0-9' ]``, single spaces, no leading/trailing space);
  3. ``text == apply_style(text, "lower-no-punc")``: ``lower-no-punc``;
  4. with punctuation (any character that is not alphanumeric, whitespace or ``'``): ``lower-punc`` if it has no
     upper-case letter, ``mixed-punc`` if it has both upper- and lower-case letters;
  5. anything else (mixed case without punctuation, upper case with punctuation, non-ASCII letters without
     punctuation...): ``unknown``.

  Style compliance of a hypothesis asked for in style ``s`` is ``detect_style(hyp) == s``.
  """
  if not any(c.isalpha() for c in text):
    return UNKNOWN_STYLE
  if text == apply_style(text, "upper-no-punc"):
    return "upper-no-punc"
  if text == apply_style(text, "lower-no-punc"):
    return "lower-no-punc"
  has_upper = any(c.isupper() for c in text)
  has_lower = any(c.islower() for c in text)
  if any(_is_punctuation(c) for c in text) and has_lower:
    return "mixed-punc" if has_upper else "lower-punc"
  return UNKNOWN_STYLE
