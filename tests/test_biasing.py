"""The rare-word study's bookkeeping: biasing lists, recall and false alarms, checked on hand-made cases."""
import pytest

from audiojax.errors import UserError
from experiments.prompt_asr.studies.biasing import draw_lists, score


def test_draw_lists_never_offers_an_utterances_own_words_as_distractors():
  rare = ["Zorbak", "Kalavik", "Tesszar", "Mirelo Zorbak", "Quenby", "Ostrel", ""]
  lists, only = draw_lists(rare, 3, seed=1)
  for words, listed, distractors in zip(rare, lists, only):
    own = set(words.split())
    assert len(distractors) == len(set(distractors)) == 3
    assert not own & set(distractors)
    assert sorted(listed) == sorted(own | set(distractors))
  assert draw_lists(rare, 3, seed=1) == (lists, only)  # a pure function of the seed
  assert draw_lists(rare, 3, seed=2) != (lists, only)
  with pytest.raises(UserError, match="--distractors"):
    draw_lists(rare, 6)


def test_score_counts_recall_and_false_alarms_case_insensitively():
  refs = ["Ask Zorbak, then Kalavik.", "Tesszar came home.", "Nobody here."]
  hyps = ["ASK ZORBAK THEN KALAVIC", "Teszar came home Ostrel.", "Nobody here."]
  rare = ["Zorbak Kalavik", "Tesszar", ""]
  offered = [["Zorbak", "Kalavik", "Quenby"], ["Tesszar", "Ostrel"], ["Quenby"]]
  m = score(refs, hyps, rare, offered)
  assert m["recall"] == pytest.approx(1 / 3)  # only Zorbak is spelled right
  assert m["false_alarm_rate"] == pytest.approx(1 / 3)  # utterance 2 says Ostrel, which its reference does not
  assert m["wer"] == pytest.approx(3 / 9)  # kalavic, teszar, the inserted ostrel over 9 reference words
  assert m["utterances"] == 3 and m["rare_words"] == 3
  assert score(["Kaludor's house."], ["KALUDOR'S HOUSE"], ["Kaludor"], [["Kaludor"]])["recall"] == 1.0
