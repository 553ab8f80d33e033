"""Speech corpora: espeak-ng helpers, the synthetic ``espeak_prompt`` corpus (its ``tiny`` config built for real),
the Asterisk prompts on a fake package layout, and the LibriSpeech / LibriHeavy readers on tiny files in their
published layouts. espeak-ng tests skip only where neither espeak-ng nor apt-get is installed."""
import gzip
import io
import json
import os
import re
import shutil
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from audiojax.data.builders import asterisk_en, espeak_prompt, libriheavy, librispeech
from audiojax.data.sources import espeak
from audiojax.errors import UserError


def text(value):
  return value.decode() if isinstance(value, bytes) else value


def read_split(builder, split):
  source = builder.as_data_source(split=split)
  return [{k: text(v) if isinstance(v, bytes) else v for k, v in source[i].items()} for i in range(len(source))]


def fake_tool(folder, name, body):
  path = folder / name
  path.write_text(f"#!{sys.executable}\nimport os, sys\n{body}\n")
  path.chmod(0o755)


# ---------------------------------------------------------------- espeak helpers (no espeak-ng needed)

def test_parse_wav_with_placeholder_sizes():
  wave = (np.sin(np.arange(500) / 7.0) * 20000).astype(np.int16)
  buffer = io.BytesIO()
  sf.write(buffer, wave, 22050, subtype="PCM_16", format="WAV")
  data = bytearray(buffer.getvalue())
  data[4:8] = (0x7FFFF024).to_bytes(4, "little")  # what espeak-ng --stdout writes: sizes unknown
  data[40:44] = (0x7FFFF000).to_bytes(4, "little")
  assert data[36:40] == b"data"
  parsed, rate = espeak.parse_wav(bytes(data) + b"\x01")  # a dangling odd byte is dropped
  assert rate == 22050
  np.testing.assert_array_equal(parsed, wave.astype(np.float32) / 32768.0)
  with pytest.raises(UserError, match="did not write a WAV stream"):
    espeak.parse_wav(b"error: no voice")


APT_DEPENDS = """espeak-ng
  Depends: libc6
  Depends: libespeak-ng1
 |Depends: libsystemd0
  Depends: libelogind0
  Depends: <libaudio>
    libpulse0
    libaudio-alt
libespeak-ng1
  Depends: libsonic0
 |PreDepends: libfoo
  PreDepends: libbar
"""


def test_dependency_groups():
  assert espeak._dependency_groups(APT_DEPENDS) == [
      ["libc6"], ["libespeak-ng1"], ["libsystemd0", "libelogind0"], ["<libaudio>", "libpulse0", "libaudio-alt"],
      ["libsonic0"], ["libfoo", "libbar"]]


def test_missing_packages_follows_dependencies(tmp_path, monkeypatch):
  graph = {"espeak-ng": ["libc6", "libespeak-ng1", "libsystemd0|libelogind0", "<libaudio>=libpulse0"],
           "libespeak-ng1": ["libsonic0", "libfoo|libbar"], "libpulse0": ["libsndfile1"], "libsonic0": [],
           "libfoo": ["libespeak-ng1"], "libsndfile1": []}
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  fake_tool(bin_dir, "apt-cache", f"""
graph = {graph!r}
for package in [a for a in sys.argv[1:] if not a.startswith("-")][1:]:
  print(package)
  for group in graph[package]:
    if "=" in group:
      virtual, provider = group.split("=")
      print("  Depends: " + virtual)
      print("    " + provider)
      continue
    names = group.split("|")
    for i, name in enumerate(names):
      print((" |" if i < len(names) - 1 else "  ") + "Depends: " + name)""")
  monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
  monkeypatch.setattr(espeak, "_installed_packages", lambda: {"libc6", "libsystemd0"})
  # libelogind0 is an alternative to the installed libsystemd0; libfoo is taken for libfoo|libbar
  assert espeak.missing_packages(["espeak-ng"]) == ["espeak-ng", "libespeak-ng1", "libpulse0", "libsonic0",
                                                    "libfoo", "libsndfile1"]


def test_find_espeak_without_apt(monkeypatch, tmp_path):
  monkeypatch.setattr(espeak.shutil, "which", lambda tool: None)
  espeak.find_espeak.cache_clear()
  try:
    with pytest.raises(UserError, match="espeak-ng is not installed and 'apt-cache' is not here"):
      espeak.find_espeak(str(tmp_path / "cache"))
  finally:
    espeak.find_espeak.cache_clear()


# ---------------------------------------------------------------- espeak_prompt text (no espeak-ng needed)

def test_number_words():
  expected = {0: "zero", 7: "seven", 13: "thirteen", 20: "twenty", 42: "forty-two", 99: "ninety-nine",
              100: "one hundred", 101: "one hundred and one", 312: "three hundred and twelve",
              870: "eight hundred and seventy", 999: "nine hundred and ninety-nine"}
  assert {n: espeak_prompt.number_words(n) for n in expected} == expected
  with pytest.raises(ValueError):
    espeak_prompt.number_words(1000)


def skeleton(sentence, name):
  return sentence.replace(name, "<NAME>")


def test_templates_fill_into_cased_punctuated_sentences():
  rng = np.random.default_rng(0)
  vocabulary = espeak_prompt.vocabulary()
  for template in espeak_prompt.TRAIN_TEMPLATES + espeak_prompt.TEST_TEMPLATES:
    for _ in range(20):
      sentence = espeak_prompt.fill(template, "Zorvek", rng)
      assert "{" not in sentence and "Zorvek" in sentence, sentence
      assert re.match(r'^"?[A-Z]', sentence) and sentence.rstrip('"')[-1] in ".?!,", sentence
      words = set(re.findall(r"[a-z]+", sentence.replace("Zorvek", "").lower()))
      assert words <= vocabulary, (sentence, words - vocabulary)
  assert len(vocabulary) > 500
  assert not set(espeak_prompt.TRAIN_TEMPLATES) & set(espeak_prompt.TEST_TEMPLATES)


def test_test_split_holds_out_sentences_not_words():
  """In ``small``, every word of the test templates' slots and frames (names aside) is heard in training, as in a
  real corpus, while no test sentence frame is a training frame."""
  def words(utterance):
    text = re.sub(r"\b(?:" + "|".join(utterance.rare_words.split()) + r")\b", " ", utterance.text)
    return set(re.findall(r"[a-z]+", text.lower()))

  planned = espeak_prompt.plan(5000, 400, seed=0)
  heard = set().union(*(words(u) for u in planned["train"]))
  unheard = set().union(*(words(u) for u in planned["test"])) - heard
  assert not unheard, f"test words never heard in training: {sorted(unheard)}"


def test_respellings():
  candidates = espeak_prompt.respellings("Kalavik")
  assert {"Calavik", "Kalavick", "Kallavik", "Kalavyk"} <= set(candidates)
  assert "Kalavik" not in candidates and all(c[0].isupper() for c in candidates)


# ---------------------------------------------------------------- espeak-ng itself

@pytest.fixture(scope="module")
def espeak_ready():
  if shutil.which("espeak-ng") is None and shutil.which("apt-get") is None:
    pytest.skip("neither espeak-ng nor apt-get is installed, so espeak-ng cannot be fetched")
  return espeak.find_espeak()


def test_synthesize_is_deterministic_speech(espeak_ready):
  sentence = "Did Kalvimor really carry forty-two lanterns across the old bridge?"
  wave, rate = espeak.synthesize(sentence, "en-gb+f3", 160, 50)
  again, _ = espeak.synthesize(sentence, "en-gb+f3", 160, 50)
  slower, _ = espeak.synthesize(sentence, "en-gb+f3", 120, 50)
  assert rate == espeak.ESPEAK_RATE and wave.dtype == np.float32
  np.testing.assert_array_equal(wave, again)
  seconds = wave.size / rate
  assert 11 * 60 / 160 * 0.6 < seconds < 11 * 60 / 160 * 1.6, seconds  # 11 words at 160 wpm
  assert slower.size > 1.15 * wave.size
  assert 0.1 < np.abs(wave).max() < 1.0 and np.sqrt(np.mean(wave ** 2)) > 0.03
  with pytest.raises(UserError, match="no voice 'no-such-voice'"):
    espeak.synthesize("hello", "no-such-voice")
  with pytest.raises(UserError, match="no variant 'f9'"):
    espeak.phonemes(["hello"], "en-gb+f9")
  for voice in espeak_prompt.TRAIN_VOICES + espeak_prompt.TEST_VOICES:
    espeak.check_voice(voice)


def test_phonemes_tell_homophones(espeak_ready):
  words = ["Barwick", "Barwik", "Barwyck", "Zorabeth", "Mr. Smith"]
  found = espeak.phonemes(words, "en-us")
  assert found[0] == found[1] == found[2] != found[3]
  assert found == [espeak.phonemes([w], "en-us")[0] for w in words]  # batched == one word at a time
  assert len(found[4].split()) == 2  # two clauses of one word: the per-word fallback


def test_name_families_are_homophones_in_every_accent(espeak_ready):
  families = espeak_prompt.make_names(5, seed=3)
  assert len(families) == 5 and all(len(f) >= 2 for f in families)
  accents = espeak_prompt.TRAIN_ACCENTS + espeak_prompt.TEST_ACCENTS
  sounds = []
  for family in families:
    for accent in accents:
      heard = {espeak.phonemes([spelling], accent)[0] for spelling in family}  # one process per word
      assert len(heard) == 1, (family, accent, heard)
    sounds.append(espeak.phonemes([family[0]], "en-us")[0])
  assert len(set(sounds)) == 5 and len({s for f in families for s in f}) == sum(map(len, families))


@pytest.fixture(scope="module")
def tiny(espeak_ready, tmp_path_factory):
  """{split: examples} of espeak_prompt/tiny built from scratch."""
  start = time.time()
  builder = espeak_prompt.EspeakPrompt(config="tiny", data_dir=str(tmp_path_factory.mktemp("tfds")),
                                       file_format="array_record")
  builder.download_and_prepare()
  print(f"espeak_prompt/tiny built in {time.time() - start:.1f} s")
  return {split: read_split(builder, split) for split in espeak_prompt.SPLITS}


def books(examples):
  grouped = {}
  for ex in examples:
    _, book, index = ex["id"].rsplit("-", 2)
    grouped.setdefault(book, []).append((int(index), ex))
  return {book: [ex for _, ex in sorted(rows, key=lambda r: r[0])] for book, rows in grouped.items()}


def test_tiny_sizes_and_schema(tiny):
  assert {split: len(rows) for split, rows in tiny.items()} == {"train": 64, "test": 16, "test_seen_voices": 16}
  ex = tiny["train"][0]
  assert set(ex) == {"audio", "sample_rate", "text", "pre_text", "rare_words", "speaker", "id"}
  assert ex["audio"].dtype == np.int16 and ex["sample_rate"] == 16000


def test_tiny_splits_hold_out_names_sentences_and_voices(tiny, espeak_ready):
  train, test, seen = tiny["train"], tiny["test"], tiny["test_seen_voices"]
  train_names, test_names = {ex["rare_words"] for ex in train}, {ex["rare_words"] for ex in test}
  assert not train_names & test_names
  # no test name sounds like a training name either
  heard_train = set(espeak.phonemes(sorted(train_names), "en-us"))
  assert not heard_train & set(espeak.phonemes(sorted(test_names), "en-us"))
  train_skeletons = {skeleton(ex["text"], ex["rare_words"]) for ex in train}
  assert not train_skeletons & {skeleton(ex["text"], ex["rare_words"]) for ex in test}
  assert {ex["speaker"] for ex in train} <= set(espeak_prompt.TRAIN_VOICES)
  assert {ex["speaker"] for ex in test} <= set(espeak_prompt.TEST_VOICES)
  # held-out voices: neither the accent nor the variant (timbre) of a test voice is used in training
  for part in (0, 1):
    used = {voice.split("+")[part] for voice in espeak_prompt.TRAIN_VOICES}
    assert not used & {voice.split("+")[part] for voice in espeak_prompt.TEST_VOICES}
  # test_seen_voices: the same sentences and prompts, read by training voices
  test_by_id = {ex["id"].split("-", 1)[1]: ex for ex in test}
  for ex in seen:
    twin = test_by_id[ex["id"].split("-", 1)[1]]
    assert (ex["text"], ex["pre_text"], ex["rare_words"]) == (twin["text"], twin["pre_text"], twin["rare_words"])
    assert ex["speaker"] in espeak_prompt.TRAIN_VOICES


def test_tiny_books_chain_pre_text_and_name_rare_words(tiny):
  vocabulary = espeak_prompt.vocabulary()
  for split, examples in tiny.items():
    for book, rows in books(examples).items():
      assert len({ex["speaker"] for ex in rows}) == 1, (split, book)  # one reader per book
      for index, ex in enumerate(rows):
        assert ex["pre_text"] == " ".join(r["text"] for r in rows[:index])
        name = ex["rare_words"]
        assert re.search(rf"\b{name}\b", ex["text"]) and name[0].isupper() and name.lower() not in vocabulary
      assert len({ex["rare_words"] for ex in rows}) <= 2  # a cast of two
  # most sentences after a book's first name the name of an earlier sentence, in the same spelling
  later = [ex for rows in books(tiny["train"]).values() for ex in rows[1:]]
  assert np.mean([ex["rare_words"] in ex["pre_text"] for ex in later]) > 0.6


def test_tiny_audio_is_plausible_speech(tiny):
  for examples in tiny.values():
    for ex in examples:
      audio = ex["audio"].astype(np.float64) / 32768.0
      seconds = audio.size / 16000
      words = len(ex["text"].split())
      assert words * 60 / 190 * 0.5 < seconds < words * 60 / 130 * 1.6 + 1.0, (ex["id"], words, seconds)
      assert np.abs(ex["audio"]).max() < 32767  # no clipping
      frames = audio[: audio.size // 320 * 320].reshape(-1, 320)  # 20 ms
      level = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)
      assert np.mean(level > -40) > 0.5, ex["id"]  # mostly voiced, with pauses
      spectrum = np.abs(np.fft.rfft(audio)) ** 2
      assert spectrum[: spectrum.size // 2].sum() > 0.8 * spectrum.sum()  # speech energy is below 4 kHz


def test_plan_is_deterministic(tiny):
  planned = espeak_prompt.plan.__wrapped__(64, 16, 0)
  assert planned == espeak_prompt.plan(64, 16, 0)
  assert [u.text for u in planned["train"]] == [ex["text"] for ex in sorted(tiny["train"], key=lambda e: e["id"])]


# ---------------------------------------------------------------- asterisk_en (fake package layout)

TRANSCRIPT = """; Core Asterisk Sounds in English

agent-pass: Please enter your password followed by the pound key.
digits/7: seven
letters/at: at [@]
beep: [this is a simple beep tone]
vm-intro: Please leave your message after the tone.  (simple tone sound plays)
pls-try-call-later: Please try your call again later.
"""


@pytest.fixture(scope="module")
def asterisk_layout(tmp_path_factory):
  root = tmp_path_factory.mktemp("asterisk")
  doc = root / asterisk_en.TEXT_PACKAGE / "usr/share/doc/asterisk-core-sounds-en"
  doc.mkdir(parents=True)
  with gzip.open(doc / "core-sounds-en.txt.gz", "wt") as f:
    f.write(TRANSCRIPT)
  sounds = root / asterisk_en.SOUNDS_PACKAGE / "usr/share/asterisk/sounds/en_US_f_Allison"
  rng = np.random.default_rng(0)
  for name, seconds in (("agent-pass", 0.5), ("digits/7", 0.25), ("letters/at", 0.2), ("beep", 0.1),
                        ("vm-intro", 0.3)):
    (sounds / name).parent.mkdir(parents=True, exist_ok=True)
    sf.write(sounds / f"{name}.wav", rng.normal(0, 0.1, int(8000 * seconds)), 8000, subtype="PCM_16")
  return root


def test_read_transcripts_drops_notes(asterisk_layout):
  path = asterisk_en.find_transcripts(str(asterisk_layout))
  assert asterisk_en.read_transcripts(path) == {
      "agent-pass": "Please enter your password followed by the pound key.", "digits/7": "seven",
      "letters/at": "at", "vm-intro": "Please leave your message after the tone.",
      "pls-try-call-later": "Please try your call again later."}


def test_asterisk_builder(asterisk_layout, tmp_path):
  builder = asterisk_en.AsteriskEn(data_dir=str(tmp_path), manual_dir=str(asterisk_layout), file_format="array_record")
  builder.download_and_prepare()
  assert list(builder.info.splits) == ["test"]
  examples = {ex["id"]: ex for ex in read_split(builder, "test")}
  assert set(examples) == {"agent-pass", "digits/7", "letters/at", "vm-intro"}  # no note-only, no missing wav
  ex = examples["digits/7"]
  assert (ex["text"], ex["pre_text"], ex["rare_words"], ex["speaker"]) == ("seven", "", "", "allison")
  assert ex["sample_rate"] == 16000 and ex["audio"].size == 4000  # 0.25 s at 8 kHz → 16 kHz


def test_asterisk_missing_manual_dir(tmp_path):
  builder = asterisk_en.AsteriskEn(data_dir=str(tmp_path), manual_dir=str(tmp_path / "nowhere"))
  with pytest.raises(UserError, match="manual_dir .* does not exist"):
    builder.download_and_prepare()


# ---------------------------------------------------------------- LibriSpeech (tiny files in the real layout)

LIBRISPEECH = {  # split: {(speaker, chapter): [(utterance id, transcript)]}
    "test-clean": {("103", "1240"): [("103-1240-0000", "CHAPTER ONE MISSUS RACHEL LYNDE IS SURPRISED"),
                                     ("103-1240-0001", "THAT HAD ITS SOURCE AWAY BACK IN THE WOODS")],
                   ("19", "198"): [("19-198-0001", "NORTHANGER ABBEY")]},
    "test-other": {("1688", "142285"): [("1688-142285-0000", "THERE'S IRON THEY SAY IN ALL OUR BLOOD")]},
}


@pytest.fixture(scope="module")
def librispeech_layout(tmp_path_factory):
  """(root, {utterance id: int16 audio written})."""
  root = tmp_path_factory.mktemp("ls")
  rng = np.random.default_rng(1)
  audio = {}
  for split, chapters in LIBRISPEECH.items():
    for (speaker, chapter), rows in chapters.items():
      folder = root / "LibriSpeech" / split / speaker / chapter
      folder.mkdir(parents=True)
      (folder / f"{speaker}-{chapter}.trans.txt").write_text("".join(f"{u} {t}\n" for u, t in rows))
      for ident, _ in rows:
        audio[ident] = rng.integers(-8000, 8000, int(rng.integers(3000, 6000))).astype(np.int16)
        sf.write(folder / f"{ident}.flac", audio[ident], 16000, subtype="PCM_16")
  return root, audio


def test_iter_librispeech(librispeech_layout, tmp_path):
  root, audio = librispeech_layout
  examples = list(librispeech.iter_librispeech(root, "test-clean"))
  assert [ex["id"] for ex in examples] == ["19-198-0001", "103-1240-0000", "103-1240-0001"]  # numeric order
  for ex in examples:
    np.testing.assert_array_equal(ex["audio"], audio[ex["id"]])
    assert ex["sample_rate"] == 16000 and ex["pre_text"] == "" and ex["speaker"] == ex["id"].split("-")[0]
  assert examples[1]["text"] == "CHAPTER ONE MISSUS RACHEL LYNDE IS SURPRISED"
  tsv = tmp_path / "test-clean.biasing_100.tsv"
  tsv.write_text('103-1240-0001\tthat had its source\t["source", "woods"]\t["aubigny", "source", "woods"]\n')
  with_context = list(librispeech.iter_librispeech(
      str(root / "LibriSpeech"), "test-clean", context_utterances=1,
      rare_words=librispeech.read_biasing_tsv(tsv)))
  assert [ex["pre_text"] for ex in with_context] == ["", "", "CHAPTER ONE MISSUS RACHEL LYNDE IS SURPRISED"]
  assert [ex["rare_words"] for ex in with_context] == ["", "", "source woods"]
  assert librispeech.read_biasing_tsv(tsv, with_distractors=True) == {"103-1240-0001": "aubigny source woods"}


def test_librispeech_errors(librispeech_layout, tmp_path):
  root, _ = librispeech_layout
  with pytest.raises(UserError, match=r"split 'dev-clean' is not in .*\(found: test-clean, test-other\)"):
    next(librispeech.iter_librispeech(root, "dev-clean"))
  broken = tmp_path / "LibriSpeech/test-clean/7/8"
  broken.mkdir(parents=True)
  (broken / "7-8.trans.txt").write_text("7-8-0000 HELLO\n")
  with pytest.raises(UserError, match="7-8-0000.flac' does not exist"):
    list(librispeech.iter_librispeech(tmp_path, "test-clean"))
  (broken / "7-8.trans.txt").unlink()
  with pytest.raises(UserError, match="transcript .*7-8.trans.txt' is missing"):
    list(librispeech.iter_librispeech(tmp_path, "test-clean"))
  bad = tmp_path / "bad.tsv"
  bad.write_text("only\ttwo\n")
  with pytest.raises(UserError, match="line 1 has 2 tab-separated fields"):
    librispeech.read_biasing_tsv(bad)


def test_librispeech_builder(librispeech_layout, tmp_path):
  root, audio = librispeech_layout
  config = librispeech.LibrispeechConfig(name="fake", splits=("test-clean", "test-other"))
  builder = librispeech.LibrispeechAsr(config=config, data_dir=str(tmp_path), manual_dir=str(root),
                                       file_format="array_record")
  builder.download_and_prepare()
  assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {"test_clean": 3, "test_other": 1}
  (ex,) = read_split(builder, "test_other")
  assert ex["text"] == "THERE'S IRON THEY SAY IN ALL OUR BLOOD"
  np.testing.assert_array_equal(ex["audio"], audio["1688-142285-0000"])
  with pytest.raises(UserError, match="pass manual_dir"):
    librispeech.LibrispeechAsr(config=config, data_dir=str(tmp_path / "other")).download_and_prepare()


# ---------------------------------------------------------------- LibriHeavy (a tiny manifest and LibriLight flac)

SOURCE = "download/librilight/small/100/sea_fairies_0812_librivox_64kb_mp3/01_baum_sea_fairies_64kb.flac"


def cut(ident, start, duration, texts, pre_texts, **custom):
  recording = ident.rsplit("_", 1)[0]
  return {"id": ident, "start": start, "duration": duration, "channel": 0,
          "supervisions": [{"id": ident, "recording_id": recording, "start": 0, "duration": duration, "channel": 0,
                            "language": "English", "speaker": "100",
                            "custom": {"texts": texts, "pre_texts": pre_texts, "begin_byte": 0, "end_byte": 9,
                                       **custom}}],
          "recording": {"id": recording, "sources": [{"type": "file", "channels": [0], "source": SOURCE}],
                        "sampling_rate": 16000, "num_samples": 80000, "duration": 5.0, "channel_ids": [0]},
          "custom": {"text_path": "download/librilight_text/Sea Fairies/text.txt"}, "type": "MonoCut"}


CUTS = [
    cut("small/100/sea_fairies/01_baum_0", 0.5, 1.25, ["The little girl was thoughtful.", "THE LITTLE GIRL"],
        ["...us mortal folk,\" replied Cap'n Bill.", "US MORTAL FOLK"]),
    cut("small/100/sea_fairies/01_baum_1", 2.0, 1.5, ["\"But why?\" she asked.", "BUT WHY SHE ASKED"],
        ["The little girl was thoughtful.", "THE LITTLE GIRL"], context_list="MERMAIDS WINK"),
]


def write_manifest(path, cuts):
  with gzip.open(path, "wt") as f:
    f.writelines(json.dumps(c) + "\n" for c in cuts)
  return path


@pytest.fixture(scope="module")
def libriheavy_layout(tmp_path_factory):
  """(root with the manifest and download/librilight, the recording's int16 samples)."""
  root = tmp_path_factory.mktemp("lh")
  recording = np.random.default_rng(2).integers(-9000, 9000, 80000).astype(np.int16)
  (root / SOURCE).parent.mkdir(parents=True)
  sf.write(root / SOURCE, recording, 16000, subtype="PCM_16")
  write_manifest(root / "libriheavy_cuts_test_clean.jsonl.gz", CUTS)
  return root, recording


def test_iter_libriheavy(libriheavy_layout):
  root, recording = libriheavy_layout
  manifest = root / "libriheavy_cuts_test_clean.jsonl.gz"
  for audio_root in (root, root / "download/librilight"):  # as the manifest says, or the LibriLight folder itself
    examples = list(libriheavy.iter_libriheavy(manifest, audio_root))
    assert [ex["id"] for ex in examples] == [c["id"] for c in CUTS]
    np.testing.assert_array_equal(examples[0]["audio"], recording[8000:8000 + 20000])
    np.testing.assert_array_equal(examples[1]["audio"], recording[32000:32000 + 24000])
  first, second = examples
  assert (first["text"], first["pre_text"], first["rare_words"]) == (
      "The little girl was thoughtful.", "...us mortal folk,\" replied Cap'n Bill.", "")
  assert (second["text"], second["rare_words"], second["speaker"]) == ("\"But why?\" she asked.", "MERMAIDS WINK",
                                                                      "100")


def test_libriheavy_errors(libriheavy_layout, tmp_path):
  root, _ = libriheavy_layout
  broken = dict(CUTS[0])
  del broken["recording"]
  with pytest.raises(UserError, match="line 2 has no 'recording'"):
    list(libriheavy.iter_libriheavy(write_manifest(tmp_path / "a.jsonl.gz", [CUTS[0], broken]), root))
  with pytest.raises(UserError, match="audio 'download/librilight/.*' not found"):
    list(libriheavy.iter_libriheavy(root / "libriheavy_cuts_test_clean.jsonl.gz", tmp_path))
  late = cut("small/100/sea_fairies/01_baum_9", 4.5, 2.0, ["Late."], [""])
  with pytest.raises(UserError, match="outside"):
    list(libriheavy.iter_libriheavy(write_manifest(tmp_path / "b.jsonl.gz", [late]), root))
  with pytest.raises(UserError, match="does not exist"):
    list(libriheavy.iter_libriheavy(tmp_path / "none.jsonl.gz"))


def test_libriheavy_builder(libriheavy_layout, tmp_path):
  root, recording = libriheavy_layout
  config = libriheavy.LibriheavyConfig(name="fake", subsets=("test_clean",))
  builder = libriheavy.Libriheavy(config=config, data_dir=str(tmp_path), manual_dir=str(root),
                                  file_format="array_record")
  builder.download_and_prepare()
  examples = {ex["id"]: ex for ex in read_split(builder, "test_clean")}
  assert examples[CUTS[1]["id"]]["pre_text"] == "The little girl was thoughtful."
  np.testing.assert_array_equal(examples[CUTS[0]["id"]]["audio"], recording[8000:28000])
  missing = libriheavy.LibriheavyConfig(name="fake_missing", subsets=("dev",))
  with pytest.raises(UserError, match="libriheavy_cuts_dev.jsonl.gz' is missing"):
    libriheavy.Libriheavy(config=missing, data_dir=str(tmp_path), manual_dir=str(root)).download_and_prepare()


def test_length_bucketed_batches_cover_each_epoch_once_with_little_padding():
  from audiojax.data.pipeline import LengthBucketedBatches, bucket_length
  lengths = np.random.default_rng(0).integers(100, 1000, 1000)
  batches = LengthBucketedBatches(lengths, batch_size=8, seed=1, window_batches=10)
  assert batches.per_epoch == 125
  epoch0 = np.stack([batches[i] for i in range(125)])
  epoch1 = np.stack([batches[i] for i in range(125, 250)])
  for epoch in (epoch0, epoch1):
    assert len(np.unique(epoch)) == epoch.size == 1000
  assert not np.array_equal(epoch0, epoch1)
  np.testing.assert_array_equal(LengthBucketedBatches(lengths, 8, seed=1, window_batches=10)[137], epoch1[12])
  spread = np.mean([np.ptp(lengths[b]) for b in epoch0])
  random_spread = np.mean([np.ptp(lengths[b]) for b in np.random.default_rng(2).permutation(1000).reshape(125, 8)])
  assert spread < 0.25 * random_spread
  assert bucket_length(300, (200, 300, 400)) == 300 and bucket_length(301, (200, 300, 400)) == 400
  with pytest.raises(UserError, match="max_seconds"):
    bucket_length(401, (200, 300, 400))


def test_fixed_size_batches_cover_every_index_once_in_one_shape():
  from audiojax.data.pipeline import fixed_size_batches
  batches = list(fixed_size_batches(7, 3))
  assert batches == [([0, 1, 2], 3), ([3, 4, 5], 3), ([6, 6, 6], 1)]
  assert [i for rows, real in batches for i in rows[:real]] == list(range(7))
  assert list(fixed_size_batches(0, 4)) == [] and list(fixed_size_batches(4, 4)) == [([0, 1, 2, 3], 4)]


def test_probing_a_speech_corpus_is_a_one_line_error(librispeech_layout, tmp_path, monkeypatch):
  """A linear probe needs class labels; a speech dataset has none (a traceback before)."""
  from audiojax.inference import probe
  root, _ = librispeech_layout
  config = librispeech.LibrispeechConfig(name="fake", splits=("test-clean",))
  builder = librispeech.LibrispeechAsr(config=config, data_dir=str(tmp_path), manual_dir=str(root),
                                       file_format="array_record")
  builder.download_and_prepare()
  monkeypatch.setattr(probe.builders, "build", lambda name, data_dir, **kw: builder)
  with pytest.raises(UserError, match="has no class labels") as info:
    probe.run("unused_checkpoint", "debsfx", str(tmp_path), dataset="librispeech_asr/fake")
  assert "\n" not in str(info.value)
