"""The attention guide of PromptASR's content path: its loss against numpy, the byte targets, and the batches."""
import re

import numpy as np
import pytest

from audiojax.objectives.prompt_guide import EPS, prompt_guide_loss
from audiojax.text import prompts


def test_guide_loss_is_the_mean_log_frame_average_over_rows_with_targets():
  rng = np.random.default_rng(0)
  weights = [rng.dirichlet(np.ones(6), size=(3, 2, 5)) for _ in range(2)]  # 2 layers of (B=3, H=2, T=5, M=6)
  targets = np.zeros((3, 6), bool)
  targets[0, [1, 2]] = True
  targets[1, 4] = True  # row 2 has none: it must not count
  frame_lengths = np.array([5, 3, 4])
  loss, mass = prompt_guide_loss(weights, targets, frame_lengths)
  per_row, masses = [], []
  for b in (0, 1):
    n = frame_lengths[b]
    means = [w[b, h, :n][:, targets[b]].sum(-1).mean() for w in weights for h in range(2)]
    per_row.append(np.mean([-np.log(m + EPS) for m in means]))
    masses.append(np.mean(means))
  np.testing.assert_allclose(loss, np.mean(per_row), rtol=1e-5)
  np.testing.assert_allclose(mass, np.mean(masses), rtol=1e-5)
  none, _ = prompt_guide_loss(weights, np.zeros((3, 6), bool), frame_lengths)
  assert float(none) == 0.0


def test_word_positions_mark_whole_words_in_any_case_and_only_kept_content():
  style, content = "Kaludor style.", "Kaludor met KALUDOR's son, not Kaludorx."
  ids, lengths, style_lengths = prompts.encode_prompts([(style, content), ("S.", "Lanzar " + "x" * 80 + " end")], 64)
  found = prompts.word_positions(ids, lengths, style_lengths, [["kaludor"], ["Lanzar"]])
  start = len(style) + 1  # the style prompt and the separator: never targets
  want = np.zeros(64, bool)
  for at in (0, content.index("KALUDOR")):  # not the style's, nor the one inside "Kaludorx"
    want[start + at:start + at + 7] = True
  np.testing.assert_array_equal(found[0], want)
  assert not found[1].any()  # the content kept its end: the name was cut off


def test_training_batches_target_each_rows_own_spelling(tmp_path):
  """``guide_targets="words"``: twins target their own spelling in their content prompt, single rows their rare words
  where their content holds them, and nothing else is marked."""
  from audiojax.tasks.asr import TrainingBatch
  from audiojax.text.respell import respellings
  from audiojax.text.tokenizer import train_bpe

  text, pre_text = "Kaludor's house stands by the river.", "Everyone in town knew Kaludor. He sang."
  spellings = ["Kaludor", *respellings("Kaludor")]
  tokenizer = train_bpe([text, pre_text] * 20 + [" ".join(spellings)] * 5, str(tmp_path / "bpe"), 300)
  rows = [{"wave": np.full(160, i, np.float32), "wave_length": np.int32(160), "text": text, "pre_text": pre_text,
           "rare_words": "Kaludor", "id": str(i)} for i in range(8)]
  batcher = TrainingBatch(tokenizer, max_tokens=96, max_prompt_length=256,
                          style_weights=(("mixed-punc", 0.5), ("upper-no-punc", 0.5)), canonical_prob=0.3,
                          content_mode="mix", distractors=("Tesszar", "Morvent", "Ilsabe", "Corwen"),
                          max_samples=160, twin_share=0.5, respell_prob=0.5, guide_targets="words")
  marked_rows = 0
  for seed in range(6):
    batch = batcher(rows, np.random.default_rng(seed))
    assert batch["prompt_targets"].shape == batch["prompt_ids"].shape
    for b in range(8):
      target = batcher.tokenizer.decode(batch["labels"][b][:batch["label_lengths"][b]].tolist())
      own = next(s for s in sorted(spellings, key=len, reverse=True) if s.lower() in target.lower())
      ids, n, start = batch["prompt_ids"][b], int(batch["prompt_lengths"][b]), int(batch["style_lengths"][b])
      content = bytes(ids[start:n].astype(np.uint8)).lower()
      want = np.zeros(ids.shape, bool)
      for m in re.finditer(rb"(?<![a-z0-9])" + own.lower().encode() + rb"(?![a-z0-9])", content):
        want[start + m.start():start + m.end()] = True
      np.testing.assert_array_equal(batch["prompt_targets"][b], want)
      marked_rows += bool(want.any())
      if b < 4:  # twins always name their own spelling
        assert want.any()
  assert marked_rows > 6 * 4


def test_frame_guide_loss_averages_over_the_frames_that_have_targets():
  from audiojax.objectives.prompt_guide import frame_guide_loss
  rng = np.random.default_rng(1)
  weights = [rng.dirichlet(np.ones(5), size=(2, 3, 4)) for _ in range(2)]  # 2 layers of (B=2, H=3, T=4, M=5)
  targets = np.zeros((2, 4, 5), bool)
  targets[0, 1, [0, 2]] = True
  targets[0, 3, 4] = True
  targets[1, 0, 1] = True
  loss, mass = frame_guide_loss(weights, targets)
  on = [w[b, h, t][targets[b, t]].sum() for w in weights for b, t in ((0, 1), (0, 3), (1, 0)) for h in range(3)]
  np.testing.assert_allclose(loss, np.mean(-np.log(np.asarray(on) + EPS)), rtol=1e-5)
  np.testing.assert_allclose(mass, np.mean(on), rtol=1e-5)


def test_char_spans_map_each_token_to_the_letters_it_spells(tmp_path):
  from audiojax.text.tokenizer import Tokenizer, train_bpe
  texts = ["Kaludor's house stands by the river.", "\"Look at a tent,\" Caludor said.", "KALUDOR AND THE RIVER"]
  tokenizer = Tokenizer(train_bpe(texts * 30, str(tmp_path / "bpe"), 300))
  for text in texts:
    spans = tokenizer.char_spans(text)
    pieces = [tokenizer.piece(i).replace("\u2581", " ") for i in tokenizer.encode(text)]
    pieces[0] = pieces[0].lstrip(" ")
    assert [text[a:z] for a, z in spans] == pieces and spans[-1][1] == len(text)
  text = "caf\u00e9 \u2603 RIVER"  # characters the model lacks fall back to byte pieces
  spans, ids = tokenizer.char_spans(text), tokenizer.encode(text)
  assert len(spans) == len(ids) and spans[-1][1] == len(text)
  byte_spans = [(a, z) for (a, z), token in zip(spans, ids) if tokenizer.piece(token).startswith("<0x")]
  for (a, z), token in zip(spans, ids):
    piece = tokenizer.piece(token)
    if piece.startswith("<0x"):  # each byte piece spans its whole character
      assert z - a == 1 and bytes([int(piece[1:-1], 16)]) in text[a:z].encode()
  assert byte_spans.count((3, 4)) == 2 and byte_spans.count((5, 6)) == 3  # é: 2 bytes, ☃: 3



def test_guide_targets_refuse_text_the_pieces_do_not_spell_back_only_when_strict(tmp_path):
  from audiojax.errors import UserError
  from audiojax.tasks.asr import guide_targets
  from audiojax.text.tokenizer import Tokenizer, train_bpe
  tokenizer = Tokenizer(train_bpe(["Ask Kaludor now.", "KALUDOR AND THE RIVER"] * 30, str(tmp_path / "bpe"), 300))
  text = "Ask  Kaludor now."  # the tokenizer collapses the double space, so its pieces do not spell this back
  assert tokenizer.char_spans(text) is None
  ids, lengths, style_lengths = prompts.encode_prompts([("S.", "Kaludor came.")], 32)
  args = ("letters", tokenizer, 8, ids, lengths, style_lengths, [["Kaludor"]], [text])
  assert not guide_targets(*args).any()
  with pytest.raises(UserError, match="do not spell 'Ask  Kaludor now.' back"):
    guide_targets(*args, strict=True)


def test_letter_positions_point_each_token_at_its_letters_in_every_occurrence():
  text = "Ask CALUDOR now."
  spans = [(0, 3), (3, 4), (4, 6), (6, 7), (7, 11), (11, 15), (15, 16)]  # "Ask", " ", "CA", "L", "UDOR", " now", "."
  ids, lengths, style_lengths = prompts.encode_prompts([("S.", "caludor met Caludor, not caludorx.")] * 2, 48)
  got = prompts.letter_positions(ids, lengths, style_lengths, [["Caludor"], ["Selifi"]], [text] * 2,
                                 [spans, spans], 9)
  content = 3  # "S." and the separator
  want = np.zeros((9, 48), bool)
  for token, letters in ((2, range(0, 2)), (3, range(2, 3)), (4, range(3, 7))):
    for start in (content, content + len("caludor met ")):  # both whole-word occurrences, not "caludorx"
      want[token, [start + i for i in letters]] = True
  np.testing.assert_array_equal(got[0], want)
  assert not got[1].any()  # a word the transcript does not say
  none = prompts.letter_positions(ids[:1], lengths[:1], style_lengths[:1], [["Caludor"]], [text], [None], 9)
  assert not none.any()  # pieces that do not spell the text back: no targets


def test_letter_targets_of_training_batches_spell_each_token_in_the_prompt(tmp_path):
  """``guide_targets="letters"``: per label token, the prompt bytes it targets are the rare-word letters it spells,
  in every occurrence, and together the tokens cover exactly the word targets of rows whose transcript says it."""
  from audiojax.tasks.asr import TrainingBatch
  from audiojax.text.respell import respellings
  from audiojax.text.tokenizer import train_bpe

  text, pre_text = "Kaludor's house stands by the river.", "Everyone in town knew Kaludor. He sang."
  spellings = ["Kaludor", *respellings("Kaludor")]
  tokenizer = train_bpe([text, pre_text] * 20 + [" ".join(spellings)] * 5, str(tmp_path / "bpe"), 300)
  rows = [{"wave": np.full(160, i, np.float32), "wave_length": np.int32(160), "text": text, "pre_text": pre_text,
           "rare_words": "Kaludor", "id": str(i)} for i in range(8)]
  settings = dict(max_tokens=96, max_prompt_length=256, style_weights=(("mixed-punc", 0.5), ("upper-no-punc", 0.5)),
                  canonical_prob=0.3, content_mode="mix", distractors=("Tesszar", "Morvent", "Ilsabe"),
                  max_samples=160, twin_share=0.5, respell_prob=0.5)
  letters, words = (TrainingBatch(tokenizer, **settings, guide_targets=kind) for kind in ("letters", "words"))
  spelled = 0
  for seed in range(4):
    batch, word_batch = (b(rows, np.random.default_rng(seed)) for b in (letters, words))
    np.testing.assert_array_equal(batch["prompt_ids"], word_batch["prompt_ids"])  # the same draws
    assert batch["prompt_targets"].shape == (8, 96, 256)
    np.testing.assert_array_equal(batch["prompt_targets"].any(1), word_batch["prompt_targets"])
    for b in range(8):
      target = letters.tokenizer.decode(batch["labels"][b][:batch["label_lengths"][b]].tolist())
      own = next(s for s in sorted(spellings, key=len, reverse=True) if s.lower() in target.lower())
      occurrences = int(word_batch["prompt_targets"][b].sum()) // len(own)
      for u in range(int(batch["label_lengths"][b])):
        a, z = letters.tokenizer.char_spans(target)[u]
        piece = target[a:z].lower()
        marked = bytes(batch["prompt_ids"][b][batch["prompt_targets"][b, u]].astype(np.uint8)).decode().lower()
        if marked:  # the token's letters, once per occurrence
          spelled += 1
          assert len(marked) % occurrences == 0 and marked[:len(marked) // occurrences] in piece, (piece, marked)
          assert marked[:len(marked) // occurrences] in own.lower()
  assert spelled > 4 * 4
