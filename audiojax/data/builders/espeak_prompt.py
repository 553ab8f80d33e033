"""``espeak_prompt``: synthetic read speech for contextual (Prompt-) ASR, with rare names and preceding book text.

Every utterance is one cased, punctuated English sentence from a template (statements, questions, exclamations,
quotations; names at the start, middle and end, as vocatives and possessives; numbers written as words; 613 other
word types in ``small``'s training sentences) naming one rare pseudo-name, spoken by espeak-ng. Training uses 51
templates, the test splits 12 others; since 1.1.0 every test word is heard in training, so the test splits hold out
sentence frames, names and voices, not words (1.0.0 had 36 training templates, and 23.7 % of the test words, 23
types such as "insists" and "neither", were never heard in training). Utterances are grouped into simulated
*books* of 4–8 sentences with a cast of two names and one reader, like LibriHeavy: ``pre_text`` is the text of the
book's previous sentences ("" for the first), the content prompt of the recipe, and ``rare_words`` is the name in
the sentence.

Every name is built from syllables and has two to four spellings that espeak-ng pronounces identically in all five
accents used here (``Silurick``/``Sillurick``/``Silurik``, ``Tesszar``/``Teszar``; checked with
``espeak.phonemes``). A book uses one spelling throughout; each training name stars in two books whose spellings
are drawn independently (``small``: 834 training names, 1,288 spellings heard), so the audio alone cannot tell the
spelling and the content prompt can.

==================  ====================  ==================================================================
split               utterances            what is held out
==================  ====================  ==================================================================
train               5,000 (``tiny``: 64)  nothing: training templates, names and voices
test                400 (16)              templates (sentences), names (134) and voices
test_seen_voices    400 (16)              the ``test`` sentences, prompts and prosody, read by training voices
==================  ====================  ==================================================================

``test`` and ``test_seen_voices`` differ only in the voice, so their gap measures voice generalisation and
``test_seen_voices`` alone measures generalisation to new sentences and names. Training voices are the accents
``en-us``, ``en-gb`` and ``en-gb-scotland`` with the variants ``m1``, ``m3``, ``m6``, ``f1``, ``f3`` (15 voices);
test voices are the accents ``en-us-nyc`` and ``en-gb-x-gbclan`` (Lancaster) with the variants ``m4``, ``f2``,
``f5`` (6 voices). The test accents say names as a training accent does: espeak-ng's phonemes of a test name in
``en-us-nyc`` equal those of a training accent for 99 % of the ``small`` test names and in ``en-gb-x-gbclan`` for
97 % (checked at build time against ``TEST_ACCENT_AGREEMENT``; for comparison ``en-gb`` matches ``en-us`` on 77 %).
Speed is 130–190 words per minute and pitch 25–75 (espeak-ng's 0–99 scale), drawn per book with a ±5 jitter per
sentence. ``speaker`` is the voice (``en-gb+f3``).

Audio is espeak-ng's 22.05 kHz resampled to 16-kHz mono int16, peaks below -1 dBFS. ``small``: 5.1 h of train
(utterances 1.7–7.5 s, mean 3.7 s) and 0.4 h per test split, 0.7 GB; build 135 s wall (155 CPU-s, most in
espeak-ng) on a 2-core machine shared with other jobs; ``tiny`` builds in 2–4 s. A build is a pure function of the
config and the espeak-ng version (Debian 12's 1.51 when fetched). espeak-ng is GPL-3 (fetched with apt into
``~/.cache/audiojax/espeak`` unless installed); the generated texts and audio are this project's.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import os
import re
from typing import Iterator, NamedTuple, Sequence

import numpy as np
import tensorflow_datasets as tfds

from audiojax.audio.io import pcm16, resample
from audiojax.data.builders import schema
from audiojax.data.sources import espeak
from audiojax.errors import UserError
from audiojax.text.respell import respellings

log = logging.getLogger("audiojax")

SAMPLE_RATE = 16000
SPLITS = ("train", "test", "test_seen_voices")
TRAIN_ACCENTS = ("en-us", "en-gb", "en-gb-scotland")
TRAIN_VARIANTS = ("m1", "m3", "m6", "f1", "f3")
TEST_ACCENTS = ("en-us-nyc", "en-gb-x-gbclan")
TEST_VARIANTS = ("m4", "f2", "f5")
TRAIN_VOICES = tuple(f"{a}+{v}" for a in TRAIN_ACCENTS for v in TRAIN_VARIANTS)
TEST_VOICES = tuple(f"{a}+{v}" for a in TEST_ACCENTS for v in TEST_VARIANTS)
SPEED_WPM = (130, 190)
PITCH = (25, 75)
TEST_ACCENT_AGREEMENT = 0.85  # least fraction of test names a test accent must pronounce as a training accent does
AMPLITUDE = 70  # espeak-ng's loudness; at its default (100) some voices clip a few samples
_JITTER = 5  # per-sentence speed (wpm) and pitch change around the book's
_BOOK_SIZES = (4, 8)
_MAX_VARIANTS = 3  # respellings tried per name
_SPLIT_INDEX = {"train": 0, "test": 1}

# ---- names: syllables (their respellings, which espeak-ng may pronounce the same: audiojax.text.respell) ----
_HEADS = ("Kal Bron Tess Quil Ash Mor Vel Dar Fen Gal Hal Jor Lin Mar Nor Per Ros Sel Tor Ul Wen Zan Bel Cor Dun El "
          "Fal Gar Isk Kor Lor Mal Nev Or Rav Sil Tal Ver Yor Zer Bar Cal Del Eth Fin Gil Hel Ist Jen Kel Lan Mir Nel "
          "Pal Ran Sor Tam Val Wil Ar Brin Cad Dov Em Fel Gor Hod Ith Kip").split()
_MIDDLES = ("", "", "", "a", "i", "o", "e", "u", "ali", "ori", "ava", "eli", "ane", "aro", "esi")
_TAILS = ("mor beth luna vik mere wick dor ric wyn thas rin dell fax lix ton bert mund gard wen nia ra lo vin sa zar "
          "mont ley phine ford quist bek das tine lyn stan grim fi cot vane rick dith mire zel").split()

# ---- sentence templates: {slot} is filled per occurrence; a capitalised slot name capitalises the filler ----
TRAIN_TEMPLATES = (
    "{name} carried {things} across {place} {time}.",
    "Did {name} really paint {thing} {color}?",
    "{Time}, {name} sold {things} to {role}.",
    "I think {name} left {thing} near {place}.",
    "\"We must hurry,\" said {name}, \"because {role} is waiting.\"",
    "{Role} asked {name} to count the {animals}, and there were {num}.",
    "Why would {name} hide {thing} behind {place}?",
    "{name}'s {noun} was {adj} and smelled of {food}.",
    "After the storm, {name} repaired {thing} with {role}.",
    "There were {num} {animals} in the field when {name} arrived.",
    "Nobody expected {name} to win the race {time}.",
    "{Adverb}, {name} opened {thing} and looked inside.",
    "Tell me, {name}, where did you put {thing}?",
    "The letter from {name} mentioned {things} and {thing}.",
    "{name} and {role} walked to {place} {time}.",
    "Is it true that {name} owns {things}?",
    "My cousin met {name} at {place} {time}.",
    "{name} laughed, dropped {thing}, and ran toward {place}.",
    "It cost {name} {num} coins to buy {thing}.",
    "When did {name} last visit {place}?",
    "{Role} gave {name} {thing} and a jar of {food}.",
    "{name} was too {feeling} to speak {time}.",
    "Without a word, {name} {verb} {thing}.",
    "How many {animals} did {name} see near {place}?",
    "The {adj} {noun} belonged to {name}, not to {role}.",
    "{name} whispered that {place} was {adj} at night.",
    "Please ask {name} to bring {things} {time}.",
    "On the {ordinal} day, {name} {verb} {thing} near {place}.",
    "{name} has lived near {place} for {num} years.",
    "What a {adj} {noun}, {name}!",
    "Everyone at {place} remembers how {name} {verb} {thing}.",
    "{name} kept {num} {color} {nouns} in a box.",
    "Before {meal}, {name} fed the {animals}.",
    "\"{Interjection}!\" cried {name}, pointing at {thing}.",
    "Somewhere near {place}, {name} lost {thing}.",
    "{name} wrote {num} letters to {role} {time}.",
    # 1.1.0: these put every word of the test templates into training sentences of other shapes, so that the test
    # split holds out sentences, not words (in 1.0.0, 23.7 % of the test words were never heard in training).
    "{name} could not find {thing} anywhere.",
    "The {animals} followed {name} all the way home.",
    "{name} insists that the {noun} is {adj}.",
    "We will meet {name} at {place} if it rains.",
    "{name} tried to open {thing} again.",
    "{Role} smiled once at {name}.",
    "Nobody on earth knew {name} better than {role}.",
    "{name} returns {things} to {role} every week.",
    "The house near {place} belongs to {name}.",
    "{name} stands between {role} and the {noun}.",
    "{name} will carry {things} for {role}.",
    "According to the map, {name} lives near {place}.",
    "Neither the {noun} nor the {animals} belonged to {name}.",
    "Only {role} would share {food} with {name}.",
    "Which way did {name} go {time}?",
)
TEST_TEMPLATES = (
    "Could {name} carry {thing} to {place} {time}?",
    "{Role} insists that {name} borrowed {things}.",
    "Only {name} knew the way from {place} to {place}.",
    "{Time}, the {animals} followed {name} to {place}.",
    "\"Look at {thing},\" {name} said {adverb}.",
    "According to {role}, {name} {verb} {thing} {time}.",
    "{name} counted {num} {nouns} and {num} {animals}.",
    "Where on earth did {name} find {thing}?",
    "If {name} returns {time}, we will share the {food}.",
    "Neither {role} nor {name} could open {thing}.",
    "{name}'s house stands between {place} and {place}.",
    "Once again, {name} {verb} {thing} and smiled.",
)

_NOUNS = ("lantern basket letter key coat map bell box candle compass kettle ladder mirror needle parcel rope saddle "
          "shovel spoon teapot umbrella violin wagon whistle blanket bottle bucket button chair clock drum envelope "
          "feather flag hammer helmet jacket jar knife lamp notebook oar painting pencil pillow ribbon ring scarf "
          "shell sock stone sword table ticket trumpet vase wheel barrel brush cup glove hat medal nail pan plate "
          "quilt radio sack tent towel tray shelf anchor puzzle thimble").split()
_IRREGULAR_PLURALS = {"knife": "knives", "shelf": "shelves", "sheep": "sheep", "deer": "deer", "goose": "geese",
                      "mouse": "mice"}
_ADJECTIVES = ("old rusty heavy tiny broken shiny wooden silver golden ancient dusty muddy soft bright narrow wide "
               "quiet noisy strange famous empty crowded cold warm damp fragile enormous clever gentle proud lazy "
               "careful elegant shabby curious crooked polished faded sturdy tangled tidy wobbly gloomy cheerful "
               "peculiar splendid hollow frozen velvet cracked").split()
_COLORS = "red blue green yellow purple orange grey white black brown pink crimson scarlet turquoise amber".split()
_ANIMALS = ("goat sheep cow horse duck goose hen pig rabbit fox owl crow deer frog badger otter pigeon swan mouse "
            "donkey lamb beetle heron squirrel hedgehog").split()
_FOODS = ("bread cheese honey apples soup porridge plums pepper cinnamon butter onions pears oats jam chestnuts "
          "ginger lemons cabbage mushrooms walnuts").split()
_ROLES = ("the baker", "the captain", "the miller", "the teacher", "the blacksmith", "the doctor", "the mayor",
          "the fisherman", "the gardener", "the innkeeper", "the shepherd", "the tailor", "the carpenter",
          "the priest", "the nurse", "the painter", "the postman", "the judge", "the farmer", "the librarian",
          "the old sailor", "the young clerk", "her grandmother", "his uncle", "my neighbour", "the stranger")
_PLACES = ("the harbour", "the old mill", "the market", "the river", "the chapel", "the bakery", "the lighthouse",
           "the north gate", "the bridge", "the orchard", "the station", "the village square", "the library",
           "the forest", "the farm", "the school", "the castle", "the quarry", "the meadow", "the tavern",
           "the museum", "the garden", "the stable", "the pier", "the hill", "the frozen lake", "the town hall",
           "the vineyard", "the crossroads", "the cathedral")
_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_MONTHS = "January February March April May June July August September October November December".split()
_TIMES = ("yesterday", "last winter", "at dawn", "at midnight", "this morning", "before sunrise", "after supper",
          "last week", "in the spring", "in the autumn", "every evening", "at noon", "the other day", "last summer")
_VERBS = ("carried painted found mended borrowed dropped hid polished sold buried cleaned opened wrapped lifted "
          "measured weighed counted offered returned examined guarded sketched pushed pulled traded bought threw "
          "caught broke fixed folded packed shared sharpened stacked tied warmed washed collected").split()
_FEELINGS = ("tired frightened happy angry nervous proud surprised embarrassed excited sleepy sad confused grateful "
             "amazed").split()
_ADVERBS = ("quietly slowly carefully suddenly eagerly nervously gently proudly cheerfully angrily bravely patiently "
            "secretly calmly clumsily").split()
_MEALS = ("breakfast", "lunch", "dinner", "supper", "tea")
_INTERJECTIONS = ("Look", "Stop", "Wait", "Hurry", "Listen", "Careful", "Help", "Quick")
_ORDINALS = "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth".split()
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
          "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> str:
  """``n`` (0–999) in British English words: ``42`` → ``forty-two``, ``312`` → ``three hundred and twelve``."""
  if not 0 <= n <= 999:
    raise ValueError(f"number_words takes 0..999, got {n}")
  if n < 20:
    return _UNITS[n]
  if n < 100:
    return _TENS[n // 10] + ("" if n % 10 == 0 else "-" + _UNITS[n % 10])
  rest = n % 100
  return f"{_UNITS[n // 100]} hundred" + (f" and {number_words(rest)}" if rest else "")


def plural(noun: str) -> str:
  if noun in _IRREGULAR_PLURALS:
    return _IRREGULAR_PLURALS[noun]
  return noun + ("es" if noun.endswith(("s", "x", "sh", "ch")) else "s")


def _article(phrase: str) -> str:
  return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
  return options[int(rng.integers(len(options)))]


def _number(rng: np.random.Generator) -> str:
  """2–999 in words, mostly small."""
  bucket = rng.choice(3, p=(0.6, 0.25, 0.15))
  low, high = ((2, 20), (21, 99), (100, 999))[bucket]
  return number_words(int(rng.integers(low, high + 1)))


def _time(rng: np.random.Generator) -> str:
  kind = rng.integers(4)
  if kind == 0:
    return "on " + _pick(rng, _DAYS)
  if kind == 1:
    return "in " + _pick(rng, _MONTHS)
  if kind == 2:
    return f"{_number(rng) if rng.random() < 0.5 else 'two'} days ago"
  return _pick(rng, _TIMES)


def _thing(rng: np.random.Generator) -> str:
  phrase = _pick(rng, _NOUNS)
  if rng.random() < 0.6:
    phrase = f"{_pick(rng, _ADJECTIVES + _COLORS)} {phrase}"
  return "the " + phrase if rng.random() < 0.4 else _article(phrase)


def _things(rng: np.random.Generator) -> str:
  phrase = plural(_pick(rng, _NOUNS))
  if rng.random() < 0.5:
    phrase = f"{_pick(rng, _ADJECTIVES + _COLORS)} {phrase}"
  return f"{_number(rng)} {phrase}"


_SLOTS = {
    "thing": _thing, "things": _things, "num": _number, "time": _time,
    "noun": lambda rng: _pick(rng, _NOUNS), "nouns": lambda rng: plural(_pick(rng, _NOUNS)),
    "place": lambda rng: _pick(rng, _PLACES), "role": lambda rng: _pick(rng, _ROLES),
    "adj": lambda rng: _pick(rng, _ADJECTIVES), "color": lambda rng: _pick(rng, _COLORS),
    "animals": lambda rng: plural(_pick(rng, _ANIMALS)), "food": lambda rng: _pick(rng, _FOODS),
    "verb": lambda rng: _pick(rng, _VERBS), "feeling": lambda rng: _pick(rng, _FEELINGS),
    "adverb": lambda rng: _pick(rng, _ADVERBS), "meal": lambda rng: _pick(rng, _MEALS),
    "interjection": lambda rng: _pick(rng, _INTERJECTIONS), "ordinal": lambda rng: _pick(rng, _ORDINALS),
}


def fill(template: str, name: str, rng: np.random.Generator) -> str:
  """``template`` with ``{name}`` set to ``name`` and every other slot drawn from the word lists."""
  def slot(match: re.Match) -> str:
    key = match.group(1)
    if key.lower() == "name":
      return name
    if key.lower() not in _SLOTS:
      raise ValueError(f"unknown slot {{{key}}} in template {template!r}")
    value = _SLOTS[key.lower()](rng)
    return value[0].upper() + value[1:] if key[0].isupper() else value
  return re.sub(r"\{(\w+)\}", slot, template)


def vocabulary() -> set[str]:
  """Every lower-cased word the templates and word lists can produce (names excluded)."""
  words = set()
  for text in (*TRAIN_TEMPLATES, *TEST_TEMPLATES, *_ROLES, *_PLACES, *_TIMES, *_INTERJECTIONS):
    words.update(re.findall(r"[a-z]+", re.sub(r"\{\w+\}", " ", text).lower()))
  for group in (_NOUNS, _ADJECTIVES, _COLORS, _ANIMALS, _FOODS, _DAYS, _MONTHS, _VERBS, _FEELINGS, _ADVERBS, _MEALS,
                _ORDINALS, _UNITS, _TENS[2:]):
    words.update(w.lower() for w in group)
  words.update(plural(n) for n in _NOUNS + _ANIMALS)
  words.update(("a", "an", "the", "on", "in", "days", "ago", "hundred", "and"))
  return words


def _all_phonemes(words: list[str], accents: Sequence[str]) -> dict[str, dict[str, str]]:
  """``{accent: {word: phonemes}}``, from espeak-ng processes run side by side (at least one per CPU)."""
  pieces = max(1, -(-(os.cpu_count() or 1) // len(accents)))
  size = -(-len(words) // pieces)
  jobs = [(accent, words[i:i + size]) for accent in accents for i in range(0, len(words), size)]
  with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
    results = list(pool.map(lambda job: espeak.phonemes(job[1], job[0]), jobs))
  table: dict[str, dict[str, str]] = {accent: {} for accent in accents}
  for (accent, chunk), result in zip(jobs, results):
    table[accent].update(zip(chunk, result))
  return table


def make_names(count: int, seed: int) -> list[tuple[str, ...]]:
  """``count`` name families: each a tuple of at least two spellings that sound identical in every accent of
  ``TRAIN_ACCENTS + TEST_ACCENTS``, the first being the generated one. No two families share a pronunciation (in
  ``en-us``) or a spelling, and none is a word of the templates."""
  rng = np.random.default_rng((seed, 7))
  first, others = TRAIN_ACCENTS[0], TRAIN_ACCENTS[1:] + TEST_ACCENTS
  common = vocabulary()
  families: list[tuple[str, ...]] = []
  sounds, spellings = set(), set()
  for _ in range(50):  # rounds of candidates; each keeps about three quarters of them
    need = count - len(families)
    if need <= 0:
      break
    names = []
    for _ in range(int(need * 1.4) + 8):
      name = (_pick(rng, _HEADS) + _pick(rng, _MIDDLES) + _pick(rng, _TAILS)).capitalize()
      if name not in names and name not in spellings and name.lower() not in common:
        names.append(name)
    variants = {}
    for name in names:
      options = [v for v in respellings(name) if v not in spellings and v.lower() not in common]
      variants[name] = [options[i] for i in sorted(rng.permutation(len(options))[:_MAX_VARIANTS])]
    # homophones in one accent first; only those are checked in the other accents (phonemes cost ~1 ms a word)
    words = sorted(set(names) | {v for vs in variants.values() for v in vs})
    heard = _all_phonemes(words, (first,))[first]
    variants = {n: [v for v in vs if heard[v] == heard[n]] for n, vs in variants.items()}
    words = sorted({w for n, vs in variants.items() if vs for w in (n, *vs)})
    table = _all_phonemes(words, others) if words else {}
    for name in names:
      same = [v for v in variants[name] if all(table[a][v] == table[a][name] for a in others)]
      if not same or heard[name] in sounds or name in spellings or spellings.intersection(same):
        continue
      families.append((name, *same))
      sounds.add(heard[name])
      spellings.update((name, *same))
      if len(families) == count:
        return families
  if len(families) < count:
    raise RuntimeError(f"could make only {len(families)} of {count} name families; add syllables")
  return families


def accent_agreement(names: Sequence[str]) -> dict[str, float]:
  """For each test accent, the fraction of ``names`` it pronounces exactly as some training accent does."""
  table = _all_phonemes(list(names), TRAIN_ACCENTS + TEST_ACCENTS)
  return {accent: float(np.mean([any(table[accent][n] == table[a][n] for a in TRAIN_ACCENTS) for n in names]))
          for accent in TEST_ACCENTS}


class Utterance(NamedTuple):
  """One planned example: what to say, who says it, and the text fields of the dataset."""

  id: str
  text: str
  pre_text: str
  rare_words: str
  voice: str
  speed_wpm: int
  pitch: int


@dataclasses.dataclass(eq=False)
class EspeakPromptConfig(tfds.core.BuilderConfig):
  """Split sizes and seed of one ``espeak_prompt`` variant."""

  num_train: int = 5000
  num_test: int = 400
  seed: int = 0
  workers: int | None = None  # espeak-ng processes at a time (default: CPU count)


def _book_sizes(rng: np.random.Generator, total: int) -> list[int]:
  """Sizes (each in ``_BOOK_SIZES``) summing to ``total``; the last book may be shorter."""
  sizes = []
  while sum(sizes) < total:
    sizes.append(min(int(rng.integers(_BOOK_SIZES[0], _BOOK_SIZES[1] + 1)), total - sum(sizes)))
  return sizes


def _plan_books(rng: np.random.Generator, split: str, sizes: list[int], casts: list[tuple[tuple[str, ...], ...]],
                templates: Sequence[str], voices: Sequence[str]) -> list[Utterance]:
  """The utterances of books of ``sizes``, book ``b`` starring the name families ``casts[b]``."""
  utterances = []
  for book, (size, cast) in enumerate(zip(sizes, casts)):
    spelled = [family[int(rng.integers(len(family)))] for family in cast]
    voice = _pick(rng, voices)
    speed, pitch = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1)), int(rng.integers(PITCH[0], PITCH[1] + 1))
    texts = []
    for index in range(size):
      name = spelled[int(rng.integers(len(spelled)))]
      texts.append(fill(_pick(rng, templates), name, rng))
      jitter = rng.integers(-_JITTER, _JITTER + 1, size=2)
      utterances.append(Utterance(
          id=f"{split}-{book:04d}-{index:02d}", text=texts[-1], pre_text=" ".join(texts[:-1]), rare_words=name,
          voice=voice, speed_wpm=int(np.clip(speed + jitter[0], *SPEED_WPM)),
          pitch=int(np.clip(pitch + jitter[1], *PITCH))))
  return utterances


@functools.lru_cache(maxsize=4)
def plan(num_train: int, num_test: int, seed: int) -> dict[str, tuple[Utterance, ...]]:
  """Every utterance of every split, as a pure function of the arguments (and espeak-ng's phonemes)."""
  train_rng = np.random.default_rng((seed, _SPLIT_INDEX["train"]))
  test_rng = np.random.default_rng((seed, _SPLIT_INDEX["test"]))
  train_sizes, test_sizes = _book_sizes(train_rng, num_train), _book_sizes(test_rng, num_test)
  # each training name stars in two books (its spelling drawn per book); each test name in one
  families = make_names(len(train_sizes) + 2 * len(test_sizes), seed)
  train_names, test_names = families[:len(train_sizes)], families[len(train_sizes):]
  slots = [train_names[i] for i in train_rng.permutation(2 * len(train_names)) % len(train_names)]
  train_casts = []
  for book in range(len(train_sizes)):
    first, second = slots[2 * book], slots[2 * book + 1]
    train_casts.append((first,) if first == second else (first, second))
  test_casts = [tuple(test_names[2 * b:2 * b + 2]) for b in range(len(test_sizes))]
  test = _plan_books(test_rng, "test", test_sizes, test_casts, TEST_TEMPLATES, TEST_VOICES)
  # the same sentences and prosody read by training voices: only the voice changes
  seen_rng = np.random.default_rng((seed, 2))
  book_voice = {}
  seen = []
  for u in test:
    book = u.id.split("-")[1]
    book_voice.setdefault(book, _pick(seen_rng, TRAIN_VOICES))
    seen.append(u._replace(id="test_seen_voices" + u.id[len("test"):], voice=book_voice[book]))
  return {"train": tuple(_plan_books(train_rng, "train", train_sizes, train_casts, TRAIN_TEMPLATES, TRAIN_VOICES)),
          "test": tuple(test), "test_seen_voices": tuple(seen)}


def synthesize(utterances: Sequence[Utterance], workers: int | None = None) -> Iterator[np.ndarray]:
  """16-kHz int16 audio of each utterance, in order."""
  requests = (espeak.Request(u.text, u.voice, u.speed_wpm, u.pitch, AMPLITUDE) for u in utterances)
  for wave, rate in espeak.synthesize_many(requests, workers):
    yield pcm16(resample(wave, rate, SAMPLE_RATE))


class EspeakPrompt(tfds.core.GeneratorBasedBuilder):
  """Synthetic Prompt-ASR corpus (see the module docstring for the splits, voices and names)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "Initial release.",
                   "1.1.0": "15 training templates so that every word of the test templates is heard in training."}
  BUILDER_CONFIGS = [
      EspeakPromptConfig(name="small", description="5,000 train, 400 test, 400 test_seen_voices utterances.",
                         num_train=5000, num_test=400),
      EspeakPromptConfig(name="tiny", description="64 train, 16 test, 16 test_seen_voices utterances (for tests).",
                         num_train=64, num_test=16),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=schema.speech_features(),
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # everything is synthesized locally
    config = self.builder_config
    if config.num_train < 1 or config.num_test < 1:
      raise UserError(f"espeak_prompt config '{config.name}' needs num_train and num_test >= 1")
    splits = plan(config.num_train, config.num_test, config.seed)
    test_names = sorted({u.rare_words for u in splits["test"]})
    agreement = accent_agreement(test_names)
    log.info("espeak_prompt: test accents pronounce %s of the test names as a training accent does",
             ", ".join(f"{a} {v:.0%}" for a, v in agreement.items()))
    low = {a: v for a, v in agreement.items() if v < TEST_ACCENT_AGREEMENT}
    if low and len(test_names) >= 20:
      raise RuntimeError(f"test accents {low} pronounce names unlike the training accents; choose other voices")
    return {split: self._generate_examples(utterances) for split, utterances in splits.items()}

  def _generate_examples(self, utterances: Sequence[Utterance]):
    for u, audio in zip(utterances, synthesize(utterances, self.builder_config.workers)):
      yield u.id, schema.speech_example(audio, SAMPLE_RATE, u.text, u.pre_text, u.rare_words, u.voice, u.id)
