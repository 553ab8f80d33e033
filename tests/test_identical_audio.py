"""Scoring of the identical-audio test (audiojax.eval.identical_audio)."""
from audiojax.eval.identical_audio import spelling_hits


def test_spelling_hits_ignore_case_and_punctuation_but_not_spelling():
  assert spelling_hits('"Lopkat a tent, Caludor sad prondy.', "Caludor", "Kaludor") == (True, False)
  assert spelling_hits("LOOK AT A TENT KALUDOR SAID", "Caludor", "Kaludor") == (False, True)
  assert spelling_hits("Kaludor's house", "Caludor", "Kaludor") == (False, True)
  assert spelling_hits("Caludors house", "Caludor", "Kaludor") == (False, False)
  assert spelling_hits("calludor said", "Caludor", "Kaludor") == (False, False)
