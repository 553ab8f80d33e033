"""The Prompt-ASR output vocabulary: a SentencePiece BPE model with byte fallback, trained on cased, punctuated text.

Layout of every model :func:`train_bpe` writes (what the losses and decoders rely on):

- id 0 ``<blk>``: the transducer/CTC blank and the stateless predictor's "no previous token" padding. It is a
  control piece, so no text ever encodes to it (not even the literal "<blk>"), and :meth:`Tokenizer.decode` drops it;
- id 1 ``<unk>`` (never produced: byte fallback spells unseen characters as UTF-8 bytes);
- ids 2..257 the byte pieces ``<0x00>``..``<0xFF>``; then the characters and merges. No BOS/EOS.

Normalization is SentencePiece's ``identity`` rule (no NFKC, so any string survives a round trip), with its usual
whitespace handling (as in the recipe): runs of spaces are read as one and leading/trailing spaces are dropped, so
``decode(encode(x)) == " ".join(w for w in x.split(" ") if w)``, which is ``x`` itself for text with single inner
spaces (tabs and newlines are ordinary characters). The one exception is SentencePiece's own space marker ``▁``
(U+2581), which decodes as a space.
"""
from __future__ import annotations

import io
import os
import tempfile
from typing import Iterable, Sequence

import numpy as np
import sentencepiece as spm

from audiojax.errors import UserError

BLANK_ID = 0
BLANK_PIECE = "<blk>"
UNK_ID = 1
NUM_BYTE_PIECES = 256


def _spm_message(err: Exception) -> str:
  """The readable tail of a SentencePiece C++ error ("INTERNAL: file.cc(123) [check] message")."""
  text = str(err).strip()
  return text.rsplit("] ", 1)[-1] if "] " in text else text


def train_bpe(texts: Iterable[str], out_path: str, vocab_size: int, *, character_coverage: float = 1.0) -> str:
  """Trains the BPE model on ``texts`` in memory and writes it (atomically) to ``out_path``; returns ``out_path``.

  ``texts`` are cased, punctuated transcripts, one per item, streamed once. ``vocab_size`` counts every piece (the 2
  specials and 256 bytes included), so it must exceed 258 plus the number of distinct characters kept by
  ``character_coverage`` (the recipe: 500 pieces, coverage 0.99).
  """
  if vocab_size <= 2 + NUM_BYTE_PIECES:
    raise UserError(f"BPE vocab_size {vocab_size} is too small: it must exceed {2 + NUM_BYTE_PIECES} (2 specials + "
                    "256 byte pieces) plus the number of characters; use e.g. 500")
  non_empty = (t for t in texts if t and t.strip())
  model = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=non_empty, model_writer=model, model_type="bpe", vocab_size=vocab_size,
        character_coverage=character_coverage, byte_fallback=True, normalization_rule_name="identity",
        pad_id=BLANK_ID, pad_piece=BLANK_PIECE, unk_id=UNK_ID, bos_id=-1, eos_id=-1,
        max_sentence_length=1 << 16, num_threads=1, minloglevel=2)
  except RuntimeError as err:
    message = _spm_message(err)
    if "sentences_.empty()" in str(err) or not message:
      message = "no non-empty training text was given"
    raise UserError(f"training the BPE model for {out_path} failed: {message}") from None
  directory = os.path.dirname(os.path.abspath(out_path))
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as f:
    f.write(model.getvalue())
  os.replace(f.name, out_path)
  return out_path


class Tokenizer:
  """A BPE model written by :func:`train_bpe`: text ↔ token ids, blank id 0."""

  blank_id = BLANK_ID

  def __init__(self, path: str):
    if not os.path.isfile(path):
      raise UserError(f"BPE model file {path} does not exist; train one with audiojax.text.tokenizer.train_bpe or "
                      "fix the path")
    self.path = path
    try:
      self._sp = spm.SentencePieceProcessor(model_file=path)
    except (RuntimeError, OSError) as err:
      raise UserError(f"BPE model file {path} is not a readable SentencePiece model ({_spm_message(err)}); "
                      "retrain it with audiojax.text.tokenizer.train_bpe") from None
    if self._sp.get_piece_size() <= BLANK_ID or self._sp.id_to_piece(BLANK_ID) != BLANK_PIECE:
      raise UserError(f"BPE model file {path} does not have {BLANK_PIECE} at id {BLANK_ID}; retrain it with "
                      "audiojax.text.tokenizer.train_bpe")

  @property
  def vocab_size(self) -> int:
    """Number of pieces V (the logits' last dimension), blank included."""
    return self._sp.get_piece_size()

  def piece(self, token_id: int) -> str:
    """The piece string of ``token_id`` (``"<blk>"``, ``"<0x41>"``, ``"▁the"``...)."""
    if not 0 <= token_id < self.vocab_size:
      raise UserError(f"token id {token_id} is outside the BPE vocabulary [0, {self.vocab_size}) of {self.path}")
    return self._sp.id_to_piece(int(token_id))

  def char_spans(self, text: str) -> list[tuple[int, int]] | None:
    """The ``[start, end)`` characters of ``text`` each token of :meth:`encode` spells (the word-boundary mark ``▁``
    counts as the space before a word; the byte pieces of one byte-fallback character all span that character);
    None when the pieces do not spell ``text`` back exactly (normalisation changed it)."""
    spans, at, pending, held = [], 0, b"", 0  # pending: the bytes of a character not yet complete, from held pieces
    for k, token in enumerate(self.encode(text)):
      if self._sp.is_byte(token):
        pending, held = pending + bytes([int(self.piece(token)[1:-1], 16)]), held + 1
        try:
          piece = pending.decode("utf-8")
        except UnicodeDecodeError:
          if len(pending) < 4:
            continue
          return None
        if text[at:at + len(piece)] != piece:
          return None
        spans += [(at, at + len(piece))] * held
        at, pending, held = at + len(piece), b"", 0
        continue
      piece = self.piece(token).replace("\u2581", " ")
      if k == 0 and piece.startswith(" "):
        piece = piece[1:]  # the mark SentencePiece puts before the text
      if pending or text[at:at + len(piece)] != piece:
        return None
      spans.append((at, at + len(piece)))
      at += len(piece)
    return spans if at == len(text) and not pending else None

  def encode(self, text: str) -> list[int]:
    """Token ids of ``text`` (never 0)."""
    return self._sp.encode(text)

  def encode_batch(self, texts: Sequence[str], pad_to: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``ids (B, U)`` int32, right-padded with the blank 0, and ``lengths (B,)`` int32. ``U`` is the longest
    encoding, or ``pad_to`` (a fixed shape for jit; longer encodings are an error)."""
    encoded = self._sp.encode(list(texts))
    lengths = np.array([len(ids) for ids in encoded], np.int32)
    width = int(lengths.max(initial=0))
    if pad_to is not None:
      if width > pad_to:
        raise UserError(f"a text encodes to {width} BPE tokens, more than pad_to={pad_to}; raise pad_to or filter "
                        "long transcripts")
      width = pad_to
    ids = np.full((len(encoded), width), BLANK_ID, np.int32)
    for row, seq in enumerate(encoded):
      ids[row, :len(seq)] = seq
    return ids, lengths

  def decode(self, ids: Iterable[int]) -> str:
    """Text of ``ids`` (a list or 1-d array); blanks (0) are skipped."""
    return self._sp.decode([int(i) for i in ids if int(i) != BLANK_ID])

  def decode_batch(self, ids: np.ndarray, lengths: np.ndarray | None = None) -> list[str]:
    """Texts of the rows of ``ids (B, U)``, each cut to ``lengths (B,)`` when given."""
    ids = np.asarray(ids)
    if lengths is None:
      return [self.decode(row) for row in ids]
    return [self.decode(row[:int(n)]) for row, n in zip(ids, lengths)]
