"""The corpus WER tool's reference normalisation (what a speaker says for key presses)."""
from audiojax.eval.wer import normalize, spoken_form


def test_lone_digits_and_keypad_symbols_are_spelled_out():
  assert spoken_form("press 1 to send, or 2.") == "press one to send, or two."
  assert spoken_form("press * to pause, # to exit") == "press star to pause, pound to exit"
  assert spoken_form("dial 500 or a 28.8 modem, H.323") == "dial 500 or a 28.8 modem, H.323"
  assert spoken_form("folder 5") == "folder five"
  assert normalize("Press 1, then #.") == "PRESS ONE THEN POUND"
