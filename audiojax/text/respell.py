"""Other spellings of a made-up name that an English reader may pronounce the same (``Kaludor`` → ``Caludor``,
``Selyfi`` → ``Selifi``, ``Lanzar`` → ``Lanzarr``): the homophone candidates of the espeak corpus's pseudo-names and
of Prompt-ASR's respelling augmentation, where only a text prompt can tell which spelling is meant."""
from __future__ import annotations

import re

RULES = (  # (pattern, replacement) applied at one match at a time
    (r"^K(?=[aou])", "C"), (r"^C(?=[aou])", "K"), (r"c(?=[aou])", "k"), (r"k(?=[aou])", "c"), (r"ph", "f"),
    (r"f", "ph"), (r"qu", "kw"), (r"(?<=[^aeiouy])y(?=[^aeiouy])", "i"), (r"(?<=[^aeiouy])i(?=[^aeiouy])", "y"),
    (r"ck$", "k"), (r"(?<=[aeiou])k$", "ck"), (r"(?<=[aeiou])c$", "k"), (r"ee", "ea"), (r"ea", "ee"),
    (r"(?<=[aeiou])([lnrstm])(?=[aeiou])", r"\1\1"), (r"([lnrstm])\1", r"\1"), (r"or$", "ore"), (r"ore$", "or"),
    (r"(?<=[aeiou])x$", "cks"), (r"(?<=[aeiou])s$", "ss"), (r"ine$", "ene"), (r"ey$", "y"), (r"y$", "ie"),
    (r"(?<=[aeiou])([lnr])$", r"\1\1"), (r"([lnr])\1$", r"\1"), (r"(?<=[^aeiou])e$", ""), (r"th$", "the"),
)


def respellings(name: str) -> list[str]:
  """Candidate other spellings of ``name`` (one rule applied once each), sorted."""
  found = set()
  for pattern, replacement in RULES:
    for match in re.finditer(pattern, name):
      candidate = name[:match.start()] + match.expand(replacement) + name[match.end():]
      candidate = candidate[:1].upper() + candidate[1:]
      if candidate != name and len(candidate) > 2:
        found.add(candidate)
  return sorted(found)
