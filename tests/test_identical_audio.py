"""Scoring of the identical-audio test (audiojax.eval.identical_audio)."""
from audiojax.eval.identical_audio import shares_by_kind, spelling_hits, spelling_kind


def test_spelling_hits_ignore_case_and_punctuation_but_not_spelling():
  assert spelling_hits('"Lopkat a tent, Caludor sad prondy.', "Caludor", "Kaludor") == (True, False)
  assert spelling_hits("LOOK AT A TENT KALUDOR SAID", "Caludor", "Kaludor") == (False, True)
  assert spelling_hits("Kaludor's house", "Caludor", "Kaludor") == (False, True)
  assert spelling_hits("Caludors house", "Caludor", "Kaludor") == (False, False)
  assert spelling_hits("calludor said", "Caludor", "Kaludor") == (False, False)


def test_paired_draws_hold_whole_twin_pairs_and_single_draws_need_not():
  import numpy as np
  import pytest
  from audiojax.errors import UserError
  from audiojax.eval.identical_audio import training_draw

  rng = np.random.default_rng(0)
  for _ in range(50):
    drawn = training_draw(rng, 64, 16, paired=True)
    assert drawn.shape == (16,) and len(set(drawn.tolist())) == 16
    assert all(a % 2 == 0 and b == a + 1 for a, b in zip(drawn[::2], drawn[1::2]))  # items 2k, 2k + 1: twins
  singles = [training_draw(rng, 64, 16, paired=False) for _ in range(50)]
  assert all(len(set(d.tolist())) == 16 for d in singles)
  assert any(set(d.tolist()) != set((d ^ 1).tolist()) for d in singles)  # d ^ 1: each item's twin
  with pytest.raises(UserError, match="even --batch-size"):
    training_draw(rng, 64, 15, paired=True)


def test_spelling_kinds_and_their_shares():
  assert spelling_kind("Kaludor", "Caludor") == spelling_kind("Selyfi", "Selifi") == "same_length"
  assert spelling_kind("Lanzar", "Lanzarr") == spelling_kind("Nevalix", "Nevalicks") == "length_differs"
  shares = shares_by_kind(["same_length", "length_differs", "same_length", "length_differs"], [True, True, False, True])
  assert shares == {"length_differs": {"items": 2, "prompt_matched": 1.0},
                    "same_length": {"items": 2, "prompt_matched": 0.5}}


def test_skip_draws_recordings_disjoint_from_the_first_ones():
  import numpy as np
  from audiojax.eval.identical_audio import make_items

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
  assert second[1]["text"] == "Lanzarr came home 3." and second[1]["pre_text"] == "Ask Lanzarr."
  assert len(make_items(source, 2, 1000, skip=3)) == 2  # one usable recording left
