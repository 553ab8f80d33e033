"""Text normalisation and sentence splitting for speech synthesis: what a TTS front-end does before phonemisation.

- :func:`normalize_english` spells out what espeak-ng reads wrongly or not at all in English: cardinals (``42``,
  ``1,000,000``, ``-3``), decimals (``3.14`` → "three point one four"), ordinals (``21st``), years (``1984`` →
  "nineteen eighty-four", ``2005`` → "two thousand five"), currency (``$5.50`` → "five dollars fifty cents"; £ €),
  percentages, and the common abbreviations (``Dr.``, ``Mr.``, ``St.``, ``e.g.`` ...; espeak-ng would end a clause
  at their full stop). Other languages are left to espeak-ng, which expands numbers in each of its languages.
- :func:`split_sentences` cuts long text into sentences (not at abbreviations or decimals), and sentences longer
  than ``max_chars`` at their clause punctuation, then between words, so a synthesiser sees bounded lengths.
"""
from __future__ import annotations

import re

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10 ** 12, "trillion"), (10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
_ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                  "nine": "ninth", "twelve": "twelfth"}

ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "st": "saint", "prof": "professor",
                 "jr": "junior", "sr": "senior", "vs": "versus", "etc": "et cetera", "no": "number", "mt": "mount",
                 "ft": "fort", "capt": "captain", "gen": "general", "lt": "lieutenant", "col": "colonel",
                 "sgt": "sergeant", "e.g": "for example", "i.e": "that is", "approx": "approximately"}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents")}


def cardinal(n: int) -> str:
  """``n`` in English words: ``1234`` → "one thousand two hundred thirty-four" (no "and")."""
  if n < 0:
    return "minus " + cardinal(-n)
  if n < 20:
    return _ONES[n]
  if n < 100:
    return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _ONES[n % 10])
  if n < 1000:
    return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + cardinal(n % 100))
  for value, name in _SCALES:
    if n >= value:
      head, rest = divmod(n, value)
      return cardinal(head) + " " + name + ("" if rest == 0 else " " + cardinal(rest))
  raise AssertionError(n)


def ordinal(n: int) -> str:
  """``21`` → "twenty-first"."""
  words = cardinal(n)
  stem, sep, last = words.rpartition("-") if "-" in words.split(" ")[-1] else words.rpartition(" ")
  if last in _ORDINAL_WORDS:
    last = _ORDINAL_WORDS[last]
  elif last.endswith("y"):
    last = last[:-1] + "ieth"
  else:
    last = last + "th"
  return stem + sep + last


def year(n: int) -> str:
  """A year as it is read: ``1984`` → "nineteen eighty-four", ``1900`` → "nineteen hundred", ``2005`` → "two
  thousand five", ``2010`` → "twenty ten"."""
  if n % 1000 < 10 or not 1000 <= n <= 9999 or n % 100 == 0 and n % 1000 == 0:
    return cardinal(n)
  head, tail = divmod(n, 100)
  if tail == 0:
    return cardinal(head) + " hundred"
  return cardinal(head) + " " + (cardinal(tail) if tail >= 10 else "oh " + cardinal(tail))


def _digits(text: str) -> str:
  return " ".join(_ONES[int(d)] for d in text)


def _number(match: re.Match) -> str:
  sign, whole, fraction = match.group("sign") or "", match.group("whole").replace(",", ""), match.group("fraction")
  value = int(whole)
  is_year = (not sign and fraction is None and "," not in match.group("whole") and len(whole) == 4
             and 1100 <= value <= 2099)
  words = year(value) if is_year else cardinal(value)
  if fraction is not None:
    words += " point " + _digits(fraction)
  return ("minus " if sign else "") + words


def _money(match: re.Match) -> str:
  one, many, cent, cents = _CURRENCIES[match.group("symbol")]
  whole = int(match.group("whole").replace(",", ""))
  fraction = match.group("fraction")
  words = f"{cardinal(whole)} {one if whole == 1 else many}"
  if fraction:
    hundredths = int(fraction.ljust(2, "0")[:2])
    if hundredths:
      words += f" {cardinal(hundredths)} {cent if hundredths == 1 else cents}"
  return words


_MONEY = re.compile(r"(?P<symbol>[$£€])(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<fraction>\d+))?")
_ORDINAL = re.compile(r"\b(?P<n>\d+)(?:st|nd|rd|th)\b")
_PERCENT = re.compile(r"(?P<n>-?\d+(?:\.\d+)?)\s?%")
_NUMBER = re.compile(r"(?<![\w.])(?P<sign>-)?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<fraction>\d+))?(?![\w])")
_ABBREVIATION = re.compile(r"\b(" + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
                           + r")\.", re.IGNORECASE)


def normalize_english(text: str) -> str:
  """``text`` with numbers, money, percentages, ordinals and abbreviations spelled out (module docstring)."""
  text = _MONEY.sub(_money, text)
  text = _PERCENT.sub(lambda m: _NUMBER.sub(_number, m.group("n")) + " percent", text)
  text = _ORDINAL.sub(lambda m: ordinal(int(m.group("n"))), text)
  text = _NUMBER.sub(_number, text)

  def expand(match: re.Match) -> str:
    word = ABBREVIATIONS[match.group(1).lower()]
    return word.capitalize() if match.group(1)[0].isupper() else word

  return re.sub(r"\s+", " ", _ABBREVIATION.sub(expand, text)).strip()


_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s+[\"'(\[]?[A-ZÀ-ÖØ-Þ0-9¿¡])")
_CLAUSE_END = re.compile(r"(?<=[,;:—])\s+")


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
  """``text`` cut into sentences at ``.``, ``!``, ``?`` before a capital (not after an abbreviation of
  :data:`ABBREVIATIONS` or a single initial), each at most ``max_chars`` long: longer ones are cut at ``, ; :``, then
  between words. Whitespace is collapsed; empty text gives ``[]``."""
  text = re.sub(r"\s+", " ", text).strip()
  if not text:
    return []
  sentences, start = [], 0
  for match in _SENTENCE_END.finditer(text):
    last_word = text[start:match.start()].rsplit(" ", 1)[-1].lower()
    if match.group().startswith(".") and (last_word in ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha())):
      continue
    sentences.append(text[start:match.end()].strip())
    start = match.end()
  sentences.append(text[start:].strip())
  return [piece for sentence in sentences for piece in _fit(sentence, max_chars)]


def _fit(sentence: str, max_chars: int) -> list[str]:
  """``sentence`` in pieces of at most ``max_chars``: clauses packed greedily, an overlong clause cut at words (a
  single word longer than ``max_chars`` stays whole)."""
  if len(sentence) <= max_chars:
    return [sentence]
  pieces: list[str] = []
  for clause in _CLAUSE_END.split(sentence):
    words = clause.split(" ") if len(clause) > max_chars else [clause]
    for word in words:
      if pieces and len(pieces[-1]) + 1 + len(word) <= max_chars:
        pieces[-1] += " " + word
      else:
        pieces.append(word)
  return pieces
