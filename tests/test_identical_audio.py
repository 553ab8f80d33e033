"""Scoring of the identical-audio study (experiments/prompt_asr/studies/identical_audio.py)."""
import numpy as np

from experiments.prompt_asr.studies.identical_audio import (
  shares_by_kind,
  spelling_hits,
  spelling_kind,
)


def test_spelling_hits_ignore_case_and_punctuation_but_not_spelling():
  assert spelling_hits('"Lopkat a tent, Caludor sad prondy.', "Caludor", "Kaludor") == (True, False)
  assert spelling_hits("LOOK AT A TENT KALUDOR SAID", "Caludor", "Kaludor") == (False, True)
  assert spelling_hits("Kaludor's house", "Caludor", "Kaludor") == (False, True)
  assert spelling_hits("Caludors house", "Caludor", "Kaludor") == (False, False)
  assert spelling_hits("calludor said", "Caludor", "Kaludor") == (False, False)


def test_paired_draws_hold_whole_twin_pairs_and_single_draws_need_not():
  import pytest

  from audiojax.errors import UserError
  from experiments.prompt_asr.studies.identical_audio import training_draw

  rng = np.random.default_rng(0)
  for _ in range(50):
    drawn = training_draw(rng, 64, 16, paired=True)
    assert drawn.shape == (16,) and len(set(drawn.tolist())) == 16
    assert all(a % 2 == 0 and b == a + 1 for a, b in zip(drawn[::2], drawn[1::2]))  # items 2k, 2k + 1: twins
  singles = [training_draw(rng, 64, 16, paired=False) for _ in range(50)]
  assert all(len(set(d.tolist())) == 16 for d in singles)
  assert any(set(d.tolist()) != set((d ^ 1).tolist()) for d in singles)  # d ^ 1: each item's twin
  with pytest.raises(UserError, match="even config.train.batch_size"):
    training_draw(rng, 64, 15, paired=True)


def test_spelling_kinds_and_their_shares():
  assert spelling_kind("Kaludor", "Caludor") == spelling_kind("Selyfi", "Selifi") == "same_length"
  assert spelling_kind("Lanzar", "Lanzarr") == spelling_kind("Nevalix", "Nevalicks") == "length_differs"
  shares = shares_by_kind(["same_length", "length_differs", "same_length", "length_differs"], [True, True, False, True])
  assert shares == {"length_differs": {"items": 2, "prompt_matched": 1.0},
                    "same_length": {"items": 2, "prompt_matched": 0.5}}


def test_skip_draws_recordings_disjoint_from_the_first_ones():
  from experiments.prompt_asr.studies.identical_audio import make_items

  def example(i, name, in_pre_text=True):
    return {"text": f"{name} came home {i}.".encode(), "pre_text": (f"Ask {name}." if in_pre_text else "Ask.").encode(),
            "rare_words": name.encode(), "audio": np.full(100 + i, i, np.int16)}
  source = [example(0, "Lanzar"), example(1, "Selyfi", in_pre_text=False), example(2, "Selyfi"),
            example(3, "Lanzar"), example(4, "Selyfi")]
  first = make_items(source, 2, 1000)
  second = make_items(source, 2, 1000, skip=2)
  assert [int(i["wave_length"]) for i in first] == [100, 100, 102, 102]  # example 1: the name is not in pre_text
  assert [int(i["wave_length"]) for i in second] == [103, 103, 104, 104]
  assert [i["spelling"] for i in second] == ["Lanzar", "Lanzarr", "Selyfi", "Selifi"]
  assert second[1]["text"] == "Lanzarr came home 3." and second[1]["content"] == "Ask Lanzarr."
  assert len(make_items(source, 2, 1000, skip=3)) == 2  # one usable recording left


def test_biasing_lists_hold_the_spelling_among_distractors_and_twins_differ_only_there():
  import pytest

  from audiojax.errors import UserError
  from experiments.prompt_asr.studies.identical_audio import with_biasing_lists

  names = [("Kaludor", "Caludor"), ("Selyfi", "Selifi"), ("Lanzar", "Lanzarr"), ("Tesszar", "Teszar")]
  items = [{"spelling": s, "content": "pre"} for pair in names for s in pair]
  listed = with_biasing_lists(items, distractors=2, seed=1)
  for k, (a, b) in enumerate(names):
    first, second = listed[2 * k]["content"].split(), listed[2 * k + 1]["content"].split()
    assert len(first) == 3 and a.lower() in first and b.lower() in second
    assert [w for w in first if w != a.lower()] == [w for w in second if w != b.lower()]  # same distractors, order
    assert not {a.lower(), b.lower()} & set(w for w in first if w != a.lower())  # never the name's own spellings
  with pytest.raises(UserError, match="config.study.distractors=4 needs as many other names"):
    with_biasing_lists(items, distractors=4)


def test_name_attention_positions_find_the_spelling_in_the_kept_content_bytes():
  """``name_attention`` measures the weight on ``prompts.word_positions`` of each item's spelling."""
  from audiojax.text import prompts

  spellings = [["Kaludor"], ["Selifi"], ["Lanzar"]]
  ids, lengths, style_lengths = prompts.encode_prompts(
      [("Style.", "Ask Kaludor now."), ("S.", "lanzar selifi"), ("S.", "Lanzar " + "x" * 40 + " end")], 24)
  found = prompts.word_positions(ids, lengths, style_lengths, spellings)
  assert bytes(ids[0][found[0]].astype(np.uint8)) == b"Kaludor"
  assert bytes(ids[1][found[1]].astype(np.uint8)) == b"selifi"  # any case
  assert not found[2].any()  # the content kept its end: the name was cut off
