"""Hotword boosting (shallow fusion): an Aho–Corasick automaton over the hotwords' token sequences.

The graph gives every decoded token that extends a hotword match a bonus, so a hotword survives beam pruning; the
bonus collected by a match that then fails (or is still open when decoding ends) is taken back. The score of a whole
token sequence, after :meth:`ContextGraph.finalize`, is therefore ``bonus * sum(len(w))`` over every occurrence of a
hotword ``w`` in it (overlapping occurrences each count, as in Aho–Corasick matching). While decoding, the running
score of a prefix is that sum over the occurrences completed so far plus ``bonus * depth`` of the open partial match
(the longest suffix of the prefix that starts a hotword, unless that suffix is itself a complete hotword, already
counted). ``forward_one_step`` returns the change of this running score, so it depends on the prefix only.

The idea follows icefall's ``ContextGraph`` and WeNet's ``context_graph``; decoding runs on the host, so this is plain
Python. States are ints (trie node ids, ``root == 0``): hashable and cheap to keep in a hypothesis.
"""
from __future__ import annotations

from collections import deque

from audiojax.errors import UserError


class ContextGraph:
  """Aho–Corasick hotword graph. ``token_lists``: one token-id sequence per hotword; ``bonus``: score per token."""

  root = 0

  def __init__(self, token_lists: list[list[int]], bonus: float):
    if not isinstance(bonus, (int, float)):
      raise UserError(f"context graph bonus {bonus!r} is not a number; pass a float such as 1.5")
    self.bonus = float(bonus)
    self._children: list[dict[int, int]] = [{}]
    self._depth = [0]
    self._is_end = [False]
    for i, tokens in enumerate(token_lists):
      tokens = list(tokens)
      if not tokens:
        raise UserError(f"hotword #{i} has no tokens; drop empty hotwords before building the context graph")
      node = 0
      for token in tokens:
        if not isinstance(token, int) or isinstance(token, bool) or token < 0:
          raise UserError(f"hotword #{i} has token {token!r}; token ids must be non-negative ints")
        nxt = self._children[node].get(token)
        if nxt is None:
          nxt = len(self._children)
          self._children[node][token] = nxt
          self._children.append({})
          self._depth.append(self._depth[node] + 1)
          self._is_end.append(False)
        node = nxt
      self._is_end[node] = True
    self._build_failure_arcs()
    self._goto: dict[tuple[int, int], int] = {}

  @property
  def num_states(self) -> int:
    return len(self._children)

  def _build_failure_arcs(self) -> None:
    """Breadth-first: a node's failure arc points at its longest proper suffix that is also a trie node. Also the
    total length of the hotwords ending at each node (itself and its suffixes along failure arcs)."""
    n = self.num_states
    self._fail = [0] * n
    self._matched_len = [0] * n
    queue = deque(self._children[0].values())
    while queue:
      node = queue.popleft()
      own = self._depth[node] if self._is_end[node] else 0
      self._matched_len[node] = own + self._matched_len[self._fail[node]]
      for token, child in self._children[node].items():
        if node != 0:
          self._fail[child] = self._step(self._fail[node], token)
        queue.append(child)

  def _step(self, state: int, token: int) -> int:
    """The Aho–Corasick transition: follow failure arcs until ``token`` continues a match (or the root is reached)."""
    while True:
      child = self._children[state].get(token)
      if child is not None:
        return child
      if state == 0:
        return 0
      state = self._fail[state]

  def _pending(self, state: int) -> float:
    """Bonus already given to the open (not yet complete) match ending in ``state``."""
    return 0.0 if self._is_end[state] else self.bonus * self._depth[state]

  def forward_one_step(self, state: int, token: int) -> tuple[float, int]:
    """Consume one decoded token: ``(score_delta, new_state)``."""
    key = (state, token)
    new_state = self._goto.get(key)
    if new_state is None:
      new_state = self._goto[key] = self._step(state, token)
    delta = self.bonus * self._matched_len[new_state] + self._pending(new_state) - self._pending(state)
    return delta, new_state

  def finalize(self, state: int) -> float:
    """Score delta at the end of the sequence: take back the bonus of an unfinished match."""
    return -self._pending(state)

  def score(self, tokens: list[int]) -> float:
    """Total score of a whole token sequence (all steps plus the final refund)."""
    total, state = 0.0, self.root
    for token in tokens:
      delta, state = self.forward_one_step(state, token)
      total += delta
    return total + self.finalize(state)
