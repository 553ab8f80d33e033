"""The TTS text front-end: English normalisation against num2words, sentence splitting, IPA symbols, the phoneme
vocabulary, and espeak-ng phonemisation in two languages."""
import json
import random
import re
import shutil

import pytest
from num2words import num2words

from audiojax.data.sources import espeak
from audiojax.errors import UserError
from audiojax.text import normalize, phonemes


def _plain(words: str) -> str:
  """num2words' British forms ("one hundred and one", "eleven oh-one") in the front-end's American ones."""
  return re.sub(r"\s+", " ", words.replace(" and ", " ").replace(",", "").replace("oh-", "oh ")).strip()


def test_numbers_read_as_num2words_reads_them():
  rng = random.Random(0)
  for n in [*range(0, 1200), *(rng.randrange(10 ** 13) for _ in range(500))]:
    assert normalize.cardinal(n) == _plain(num2words(n)), n
  for n in range(1, 1200):
    assert normalize.ordinal(n) == _plain(num2words(n, to="ordinal")), n
  for n in range(1100, 2000):
    assert normalize.year(n) == _plain(num2words(n, to="year")), n


def test_english_text_has_its_numbers_money_and_abbreviations_spelled_out():
  got = normalize.normalize_english("Dr. Smith paid $5.50 on the 21st of May 1984 , i.e. 3.5% of 1,000,000 at -3 C.")
  assert got == ("Doctor Smith paid five dollars fifty cents on the twenty-first of May nineteen eighty-four , that "
                 "is three point five percent of one million at minus three C.")
  assert normalize.normalize_english("£1 and €2.01 in 2005") == "one pound and two euros one cent in two thousand five"
  assert normalize.normalize_english("version v2 or 3rd-party") == "version v2 or third-party"


def test_sentences_split_at_their_ends_not_at_abbreviations_and_stay_under_the_limit():
  text = "Dr. Smith arrived at 3.30 today.  He paid!  Did J. R. R. Tolkien write it? \"Yes.\" No."
  assert normalize.split_sentences(text) == ["Dr. Smith arrived at 3.30 today.", "He paid!",
                                             "Did J. R. R. Tolkien write it?", "\"Yes.\"", "No."]
  long = "one, two three four; " * 30 + "the end."
  pieces = normalize.split_sentences(long, max_chars=50)
  assert all(len(p) <= 50 for p in pieces) and len(pieces) > 10
  assert " ".join(pieces) == " ".join(long.split())  # nothing lost or reordered
  assert normalize.split_sentences("   ") == []


def test_ipa_is_cut_into_symbols_with_their_marks():
  assert phonemes.symbols("həlˈoʊ wˈɜːld\nðɪs") == ["h", "ə", "l", "ˈ", "o", "ʊ", "_", "w", "ˈ", "ɜː", "l", "d",
                                                     ",", "ð", "ɪ", "s"]
  assert phonemes.symbols("bɔ̃ʒˈuʁ lə- mˈɔ̃d") == ["b", "ɔ̃", "ʒ", "ˈ", "u", "ʁ", "_", "l", "ə", "_", "m", "ˈ", "ɔ̃",
                                                   "d"]
  assert phonemes.symbols("t͡ʃˈɜːtʃ\n\n") == ["t͡ʃ", "ˈ", "ɜː", "t", "ʃ"]
  assert phonemes.symbols("") == []


def test_the_vocabulary_numbers_symbols_after_specials_and_languages(tmp_path):
  sequences = [["h", "ə", "_", "l"], ["ɔ̃", "ˈ", "h"]]
  vocabulary = phonemes.PhonemeVocabulary.build(sequences, ["en", "fr"])
  assert vocabulary.tokens[:6] == ("<pad>", "<bos>", "<eos>", "<unk>", "<en>", "<fr>") and vocabulary.pad_id == 0
  assert len(vocabulary) == 6 + 6
  ids = vocabulary.encode(["h", "ə", "x"], "fr", bos=True, eos=True)
  assert ids[:2] == [1, 5] and ids[-1] == 2 and vocabulary.decode(ids[2:-1]) == ["h", "ə", "<unk>"]
  vocabulary.save(str(tmp_path))
  again = phonemes.PhonemeVocabulary.load(str(tmp_path))
  assert again.tokens == vocabulary.tokens and again.languages == ("en", "fr")
  with pytest.raises(UserError, match="language 'de' is not one this model was trained on"):
    vocabulary.encode(["h"], "de")
  with pytest.raises(UserError, match="language 'xx' has no phonemiser voice"):
    phonemes.PhonemeVocabulary(["a"], ["xx"])
  data = json.loads((tmp_path / "phonemes.json").read_text())
  swapped = [*data["tokens"][:4], data["tokens"][5], data["tokens"][4], *data["tokens"][6:]]
  (tmp_path / "phonemes.json").write_text(json.dumps({**data, "tokens": swapped}))
  with pytest.raises(UserError, match="out of order"):
    phonemes.PhonemeVocabulary.load(str(tmp_path))


@pytest.fixture(scope="module")
def espeak_available():
  if shutil.which("espeak-ng") is None and shutil.which("apt-get") is None:
    pytest.skip("neither espeak-ng nor apt-get is installed, so espeak-ng cannot be fetched")


def test_espeak_phonemises_normalised_english_and_french(espeak_available):
  digits, words, clauses, french = espeak.phonemize(
      ["I have 42 cats.", "I have forty-two cats.", "Hello, world", "Bonjour le monde"], "en")[:3] + \
      espeak.phonemize(["Bonjour le monde"], "fr")
  assert digits == words and "ˈ" in digits and "_" in digits  # numbers read as words, stress and word boundaries
  assert clauses.count(",") == 1 and clauses[0] == "h"
  assert french[:3] == ["b", "ɔ̃", "ʒ"]  # the nasal vowel of the French voice, one symbol
  with pytest.raises(UserError, match="has no phonemiser voice"):
    espeak.phonemize(["x"], "tlh")
