"""Text side of Prompt-ASR: style transforms (golden strings, an independent per-character reference), the BPE
tokenizer (blank id, byte fallback round trips, errors), byte-level prompt encoding (layout, end-keeping truncation at
UTF-8 boundaries against a per-character reference) and the samplers' branch frequencies over 10k draws."""
import string

import numpy as np
import pytest

from audiojax.errors import UserError
from audiojax.text import prompts, styles
from audiojax.text.tokenizer import Tokenizer, train_bpe

MIXED = 'Well—I don\'t know; it’s 3 o\'clock... "Mr. Smith-Jones!" she said.'


# --- styles ---------------------------------------------------------------------------------------------------------
def test_canonical_style_prompts_golden():
  assert styles.canonical_style_prompt("upper-no-punc") == (
      "MIXED CASE ENGLISH TRANSCRIPTION WITH PUNCTUATION ACTUALLY IT'S FULLY NOT RELATED")
  assert styles.canonical_style_prompt("lower-no-punc") == (
      "mixed case english transcription with punctuation actually it's fully not related")
  assert styles.canonical_style_prompt("lower-punc") == (
      "mixed-case english transcription, with punctuation. actually, it's fully not related.")
  assert styles.canonical_style_prompt("mixed-punc") == styles.CANONICAL_STYLE_SENTENCE


def test_transform_goldens_and_wer_normalization():
  assert styles.apply_style(MIXED, "upper-no-punc") == "WELL I DON'T KNOW IT'S 3 O'CLOCK MR SMITH JONES SHE SAID"
  assert styles.apply_style(MIXED, "lower-no-punc") == "well i don't know it's 3 o'clock mr smith jones she said"
  assert styles.apply_style(MIXED, "lower-punc") == MIXED.lower()
  assert styles.apply_style(MIXED, "mixed-punc") == MIXED
  # non-ASCII letters are dropped, as in the recipe
  assert styles.apply_style("Café  naïve\tStraße,\n ok ", "upper-no-punc") == "CAF NAVE STRASSE OK"
  assert styles.normalize_for_wer(MIXED) == styles.apply_style(MIXED, "upper-no-punc")
  assert styles.normalize_for_wer("Hello, world!") == styles.normalize_for_wer("HELLO WORLD")
  with pytest.raises(UserError, match="unknown text style"):
    styles.apply_style("x", "title-case")


def _reference_only_alpha(text: str) -> str:
  """Per-character restatement of upper/lower_only_alpha (plus the apostrophe mapping and space collapsing)."""
  out = []
  for c in text:
    if c in "’‘":
      c = "'"
    if c in "-—":
      out.append(" ")
    elif c in string.ascii_letters + string.digits + "'" or c.isspace():
      out.append(c)
  return " ".join("".join(out).split())


def test_no_punc_transforms_match_per_character_reference():
  rng = np.random.default_rng(0)
  alphabet = list(string.ascii_letters + string.digits + string.punctuation + "  \t\n—’‘éßΩ日🎉")
  for _ in range(300):
    text = "".join(rng.choice(alphabet, int(rng.integers(0, 60))))
    assert styles.apply_style(text, "upper-no-punc") == _reference_only_alpha(text.upper())
    assert styles.apply_style(text, "lower-no-punc") == _reference_only_alpha(text.lower())


@pytest.mark.parametrize("text, style", [
    ("HELLO WORLD", "upper-no-punc"), ("IT'S 3 O'CLOCK", "upper-no-punc"), ("A", "upper-no-punc"),
    ("hello world", "lower-no-punc"), ("hello, world.", "lower-punc"), ("Hello, world.", "mixed-punc"),
    ("Did you see Zorbakin?", "mixed-punc"), ("", "unknown"), ("  ", "unknown"), ("123 ...", "unknown"),
    ("Hello world", "unknown"), ("HELLO, WORLD.", "unknown"), ("HELLO  WORLD", "unknown"), (" HELLO", "unknown"),
    ("ÉMILE", "unknown"),
])
def test_detect_style_table(text, style):
  assert styles.detect_style(text) == style


def test_detect_style_recognises_every_rendered_style():
  sentences = [MIXED, styles.CANONICAL_STYLE_SENTENCE, "The pilot warned Heekstoth, in the garden.", "Did Jon go?"]
  for sentence in sentences:
    for style in styles.STYLES:
      assert styles.detect_style(styles.apply_style(sentence, style)) == style, (sentence, style)


def test_clean_book_text():
  assert styles.clean_book_text('" “Yes,” it’s ‘fine’.') == '"Yes," it\'s \'fine\'.'


# --- tokenizer ------------------------------------------------------------------------------------------------------
def _corpus(n=300, seed=0):
  rng = np.random.default_rng(seed)
  subjects = ["The pilot", "Mary", "Mr. Smith", "A tired sailor", "Her brother", "The old man"]
  verbs = ["warned", "called", "met", "thanked", "followed", "saw"]
  names = ["John", "Stephen", "Zak", "Heekstoth", "Zorbakin", "Anne-Marie", "O'Brien"]
  tails = ["in the garden.", "at noon!", "near the river, twice.", "before dinner?", "— again; quietly."]
  return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(names)}, {rng.choice(tails)}" for _ in range(n)]


@pytest.fixture(scope="module")
def bpe_path(tmp_path_factory):
  return train_bpe(iter(_corpus()), str(tmp_path_factory.mktemp("bpe") / "sub" / "bpe.model"), 320)


def test_bpe_layout_blank_unk_bytes(bpe_path):
  tok = Tokenizer(bpe_path)
  assert tok.vocab_size == 320 and tok.blank_id == 0
  assert tok.piece(0) == "<blk>" and tok.piece(1) == "<unk>"
  assert [tok.piece(i) for i in range(2, 258)] == [f"<0x{b:02X}>" for b in range(256)]
  for text in _corpus(50, seed=1) + ["<blk>", "<unk> <0x41>"]:
    ids = tok.encode(text)
    assert ids and 0 not in ids and 1 not in ids
    assert tok.decode(ids) == text
  with pytest.raises(UserError, match="outside the BPE vocabulary"):
    tok.piece(320)


def test_bpe_byte_fallback_round_trips_unseen_characters(bpe_path):
  tok = Tokenizer(bpe_path)
  for text in ["Zoë’s café — 日本語 🎉 Ω≈ç√", "µ\tné\nX", "ﬁve ＡＢＣ", "q"]:
    assert tok.decode(tok.encode(text)) == text
  emoji_pieces = [tok.piece(i) for i in tok.encode("🎉")]
  assert emoji_pieces[-4:] == [f"<0x{b:02X}>" for b in "🎉".encode("utf-8")]
  assert tok.decode(tok.encode("  Hello   there  ")) == "Hello there"
  rng = np.random.default_rng(0)
  alphabet = list(string.printable + "  éßΩ日本🎉𝄞’—\u3000\u00a0\u200b")
  for _ in range(200):
    text = "".join(rng.choice(alphabet, int(rng.integers(0, 40))))
    assert tok.decode(tok.encode(text)) == " ".join(w for w in text.split(" ") if w), repr(text)


def test_bpe_batch_padding_and_blank_skipping(bpe_path):
  tok = Tokenizer(bpe_path)
  texts = ["Mary met John, at noon!", "", "Zorbakin 🎉"]
  ids, lengths = tok.encode_batch(texts)
  assert ids.dtype == np.int32 and lengths.dtype == np.int32
  assert ids.shape == (3, max(len(tok.encode(t)) for t in texts))
  for row, text in enumerate(texts):
    expected = tok.encode(text)
    assert lengths[row] == len(expected) and list(ids[row, :lengths[row]]) == expected
    assert not ids[row, lengths[row]:].any()
  assert tok.decode_batch(ids, lengths) == texts
  assert tok.decode_batch(ids) == texts  # the blank padding is skipped
  assert tok.encode_batch(texts, pad_to=40)[0].shape == (3, 40)
  with pytest.raises(UserError, match="pad_to"):
    tok.encode_batch(texts, pad_to=1)
  assert tok.decode([0, *tok.encode("Mary"), 0, 0]) == "Mary"


def test_bpe_training_is_deterministic_and_errors_are_clear(tmp_path, bpe_path):
  again = train_bpe(_corpus(), str(tmp_path / "again.model"), 320)
  assert open(again, "rb").read() == open(bpe_path, "rb").read()
  with pytest.raises(UserError, match="too small"):
    train_bpe(_corpus(), str(tmp_path / "a.model"), 200)
  with pytest.raises(UserError, match="smaller than required_chars"):
    train_bpe(_corpus(), str(tmp_path / "b.model"), 270)
  with pytest.raises(UserError, match="too high"):
    train_bpe(_corpus(), str(tmp_path / "c.model"), 5000)
  with pytest.raises(UserError, match="no non-empty training text"):
    train_bpe(["", "  "], str(tmp_path / "d.model"), 300)
  with pytest.raises(UserError, match="does not exist"):
    Tokenizer(str(tmp_path / "missing.model"))
  (tmp_path / "corrupt.model").write_bytes(b"not a model")
  with pytest.raises(UserError, match="not a readable SentencePiece model"):
    Tokenizer(str(tmp_path / "corrupt.model"))
  import sentencepiece as spm
  spm.SentencePieceTrainer.train(sentence_iterator=iter(_corpus()), model_prefix=str(tmp_path / "plain"),
                                 vocab_size=100, model_type="bpe", minloglevel=2)
  with pytest.raises(UserError, match="<blk> at id 0"):
    Tokenizer(str(tmp_path / "plain.model"))


# --- prompt encoding ------------------------------------------------------------------------------------------------
def test_encode_prompt_layout():
  ids, length, style_length = prompts.encode_prompt("AB", "cd", 10)
  assert ids.dtype == np.int32 and ids.shape == (10,)
  assert list(ids) == [65, 66, prompts.SEP_ID, 99, 100] + [prompts.PAD_ID] * 5
  assert (length, style_length) == (5, 3)
  ids, length, style_length = prompts.encode_prompt("", "", 4)
  assert list(ids) == [prompts.SEP_ID] + [prompts.PAD_ID] * 3 and (length, style_length) == (1, 1)
  ids, length, style_length = prompts.encode_prompt("é", "日", 8)
  assert list(ids[:length]) == [0xC3, 0xA9, prompts.SEP_ID, 0xE6, 0x97, 0xA5] and style_length == 3
  assert prompts.PROMPT_VOCAB_SIZE == 258 and ids.max() < prompts.PROMPT_VOCAB_SIZE
  with pytest.raises(UserError, match="max_bytes"):
    prompts.encode_prompt("a", "b", 1)


def test_encode_prompt_truncation_keeps_content_end():
  content = "".join(f"{i:03d} " for i in range(100))
  ids, length, style_length = prompts.encode_prompt("S" * 40, content, 64)
  assert length == 64 and style_length == 16 + 1  # style capped at 64 // 4
  assert prompts.decode_prompt(ids, length) == ("S" * 16, content[-(64 - 17):])
  # a short content leaves its room to the style
  ids, length, style_length = prompts.encode_prompt("S" * 100, "tail", 64)
  assert (length, style_length) == (64, 60) and prompts.decode_prompt(ids, length) == ("S" * 59, "tail")
  ids, length, style_length = prompts.encode_prompt("S" * 100, content, 64, max_style_bytes=30)
  assert style_length == 31
  # multi-byte characters: 2-byte é, budget 15 bytes -> 7 whole characters
  ids, length, style_length = prompts.encode_prompt("", "é" * 20, 16)
  assert (length, style_length) == (15, 1) and prompts.decode_prompt(ids, length) == ("", "é" * 7)


def _longest_prefix(text: str, budget: int) -> str:
  return max((text[:k] for k in range(len(text) + 1) if len(text[:k].encode()) <= budget), key=len)


def _longest_suffix(text: str, budget: int) -> str:
  return max((text[k:] for k in range(len(text) + 1) if len(text[k:].encode()) <= budget), key=len)


def test_encode_prompt_matches_per_character_reference():
  rng = np.random.default_rng(0)
  alphabet = list("abc XY,.") + ["é", "ß", "日", "本", "🎉", "𝄞"]
  for _ in range(400):
    style = "".join(rng.choice(alphabet, int(rng.integers(0, 40))))
    content = "".join(rng.choice(alphabet, int(rng.integers(0, 120))))
    max_bytes = int(rng.integers(2, 160))
    ids, length, style_length = prompts.encode_prompt(style, content, max_bytes)
    got_style, got_content = prompts.decode_prompt(ids, length)
    room = max_bytes - 1
    if len(style.encode()) + len(content.encode()) <= room:
      want_style, want_content = style, content
    else:
      want_style = _longest_prefix(style, max(max_bytes // 4, room - len(content.encode())))
      want_content = _longest_suffix(content, room - len(want_style.encode()))
    assert (got_style, got_content) == (want_style, want_content)
    assert style_length == len(want_style.encode()) + 1 and length <= max_bytes
    assert (ids[length:] == prompts.PAD_ID).all()


def test_encode_prompts_batches():
  pairs = [("STYLE", "content one"), ("", "x" * 300), ("Mixed.", "")]
  ids, lengths, style_lengths = prompts.encode_prompts(pairs, 32)
  assert ids.shape == (3, 32) and ids.dtype == lengths.dtype == style_lengths.dtype == np.int32
  for row, (style, content) in enumerate(pairs):
    one = prompts.encode_prompt(style, content, 32)
    np.testing.assert_array_equal(ids[row], one[0])
    assert (lengths[row], style_lengths[row]) == one[1:]


# --- samplers -------------------------------------------------------------------------------------------------------
PRE = ("It was late in the evening when the old sailor, tired and wet, finally reached the harbour. "
       "Nobody waited for him; the lamps were out, and the rain—cold, endless—kept falling on the empty quay.")
TEXT = "He knocked twice at the door of the inn, and Mrs. O'Hara let him in."


def test_training_text_frequencies_and_style_agreement():
  rng = np.random.default_rng(0)
  weights = prompts.RECIPE_STYLE_WEIGHTS
  draws = [prompts.sample_training_text(rng, TEXT, PRE, style_weights=weights) for _ in range(10_000)]
  target = np.array([d.target_style for d in draws])
  content = np.array([d.content_style for d in draws])
  assert abs(np.mean(target == "mixed-punc") - 0.7) < 0.02
  assert abs(np.mean(content == "mixed-punc") - 0.7) < 0.02
  assert abs(np.mean((target == "mixed-punc") & (content == "mixed-punc")) - 0.49) < 0.02  # independent draws
  canonical = np.array([d.style_prompt == styles.canonical_style_prompt(d.target_style) for d in draws])
  assert abs(canonical.mean() - 0.3) < 0.02
  upper_pre = styles.apply_style(PRE, "upper-no-punc")
  lengths = []
  for d in draws:
    assert d.target_text == styles.apply_style(TEXT, d.target_style)
    assert d.content_prompt == styles.apply_style(PRE, d.content_style)
    assert styles.apply_style(d.style_prompt, d.target_style) == d.style_prompt
    if d.style_prompt == styles.canonical_style_prompt(d.target_style):
      continue
    if d.target_style == "mixed-punc":
      assert d.style_prompt in PRE
      lengths.append(len(d.style_prompt))
    else:
      assert d.style_prompt in upper_pre and d.style_prompt == d.style_prompt.upper()
  assert min(lengths) == 80 and max(lengths) == 150


def test_training_text_sources_and_determinism():
  def draw(seed, **kw):
    rng = np.random.default_rng(seed)
    return [prompts.sample_training_text(rng, TEXT, "Short.", canonical_prob=0.0, **kw) for _ in range(50)]
  assert draw(3) == draw(3)
  assert all(d.style_prompt in styles.apply_style(TEXT, d.target_style) for d in draw(3))
  assert all(d.style_prompt == styles.apply_style("Short.", d.target_style) for d in draw(3, style_from_text=False))
  rng = np.random.default_rng(0)
  d = prompts.sample_training_text(rng, "", "", canonical_prob=0.0, content="alpha, beta",
                                   style_weights={"upper-no-punc": 1.0})
  assert d == ("", styles.canonical_style_prompt("upper-no-punc"), "ALPHA BETA", "upper-no-punc", "upper-no-punc")
  with pytest.raises(UserError, match="unknown style"):
    prompts.sample_training_text(rng, TEXT, PRE, style_weights={"shouting": 1.0})
  with pytest.raises(UserError, match="non-negative"):
    prompts.sample_training_text(rng, TEXT, PRE, style_weights={"mixed-punc": 0.0})


RARE = ["Zorbakin", "Heekstoth", "Quillane"]
POOL = [f"dist{i}" for i in range(200)]
CONTEXT_PRE = " ".join(f"pre{i:02d}x" for i in range(60))  # no word is a prefix or suffix of another


def _context_branch(out: str) -> str:
  words = out.split()
  if out == CONTEXT_PRE:
    return "pre_text"
  if len(out) >= 15 and out in CONTEXT_PRE:
    return "substring"  # a reference-word draw is contiguous only by (negligible) chance
  kinds = {w[:3] if w[:3] in ("dis", "pre") else "rare" for w in words}
  return {frozenset({"rare", "dis"}): "rare+dist", frozenset({"pre", "dis"}): "ref+dist",
          frozenset({"pre"}): "ref", frozenset({"dis"}): "dist"}.get(frozenset(kinds), "substring")


def test_context_list_branch_frequencies_with_rare_words():
  rng = np.random.default_rng(0)
  outs = [prompts.sample_context_list(rng, " ".join(RARE), POOL, pre_text=CONTEXT_PRE) for _ in range(10_000)]
  branches = np.array([_context_branch(o) for o in outs])
  for name, p in {"rare+dist": 0.40, "ref+dist": 0.15, "pre_text": 0.45}.items():
    assert abs(np.mean(branches == name) - p) < 0.02, name
  for out, branch in zip(outs, branches):
    words = out.split()
    if branch == "rare+dist":
      rare = [w for w in words if not w.startswith("dist")]
      assert 1 <= len(rare) <= 3 and len(set(rare)) == len(rare) and set(rare) <= {w.lower() for w in RARE}
      assert 50 <= len(words) - len(rare) <= 100
    elif branch == "ref+dist":
      assert 1 <= sum(w.startswith("pre") for w in words) <= 20
      assert 50 <= sum(w.startswith("dist") for w in words) <= 100


def test_context_list_branch_frequencies_without_rare_words():
  rng = np.random.default_rng(1)
  outs = [prompts.sample_context_list(rng, [], POOL, pre_text=CONTEXT_PRE) for _ in range(10_000)]
  branches = np.array([_context_branch(o) for o in outs])
  for name, p in {"ref": 0.30, "dist": 0.10, "substring": 0.20, "pre_text": 0.40}.items():
    assert abs(np.mean(branches == name) - p) < 0.02, name
  for out, branch in zip(outs, branches):
    if branch == "ref":
      assert 1 <= len(out.split()) <= 20
    elif branch == "dist":
      assert 5 <= len(out.split()) <= 100 and len(set(out.split())) == len(out.split())
    elif branch == "substring":
      assert 15 <= len(out) <= 150


def test_context_list_reference_words_weighted_by_length():
  rng = np.random.default_rng(3)
  words = []
  for _ in range(20_000):
    out = prompts.sample_context_list(rng, ["rare"], POOL[:20], pre_text="PRE", reference="ab abcdefgh",
                                      num_distractors=(1, 2))
    if out != "PRE" and "rare" not in out.split():
      words += [w for w in out.split() if not w.startswith("dist")]
  ratio = words.count("abcdefgh") / words.count("ab")
  assert abs(ratio / (8 / 2) ** 1.2 - 1) < 0.1


def test_context_list_small_pool_and_configurable_counts():
  rng = np.random.default_rng(2)
  for _ in range(200):
    out = prompts.sample_context_list(rng, RARE, POOL[:7], pre_text=CONTEXT_PRE, num_distractors=(2, 3),
                                      num_distractors_only=(1, 1), lowercase=False)
    n_dist = sum(w.startswith("dist") for w in out.split())
    assert n_dist in (0, 2, 3)
    assert all(w in RARE or w.startswith(("dist", "pre")) for w in out.split())
  out = {prompts.sample_context_list(rng, [], [], pre_text="") for _ in range(50)}
  assert out == {""}


def test_perturb_batch_rates():
  rng = np.random.default_rng(0)
  batch = 50
  content = [f"c{i}" for i in range(batch)]
  style = [f"s{i}" for i in range(batch)]
  swapped_c = blank_c = swapped_s = blank_s = active = 0
  n_batches = 2000
  for _ in range(n_batches):
    new_c, new_s = prompts.perturb_batch(rng, content, style)
    swapped_c += sum(a not in ("", b) for a, b in zip(new_c, content))
    blank_c += new_c.count("")
    swapped_s += sum(a not in ("", b) for a, b in zip(new_s, style))
    blank_s += new_s.count("")
    active += new_s != style
  rows = n_batches * batch
  assert abs(swapped_c / rows - 0.05 * 0.95) < 0.01
  assert abs(blank_c / rows - 0.05) < 0.01
  assert abs(swapped_s / rows - 0.5 * 0.2 * 0.95) < 0.01
  assert abs(blank_s / rows - 0.5 * 0.05) < 0.01
  assert abs(active / n_batches - 0.5) < 0.03
  assert content[0] == "c0" and style[0] == "s0"  # inputs untouched


def test_perturb_batch_keeps_target_style():
  rng = np.random.default_rng(1)
  targets = ["mixed-punc", "upper-no-punc"] * 8
  style = [f"{t}:{i}" for i, t in enumerate(targets)]
  swaps = 0
  for _ in range(500):
    _, new_s = prompts.perturb_batch(rng, [""] * 16, style, shuffle_style=0.5, target_styles=targets)
    for got, target, orig in zip(new_s, targets, style):
      assert got == "" or got.split(":")[0] == target
      swaps += got not in ("", orig)
  assert swaps > 500
  with pytest.raises(UserError, match="target_styles"):
    prompts.perturb_batch(rng, ["a"], ["b"], target_styles=[])
