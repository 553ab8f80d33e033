"""Pruned RNN-T loss (k2 style) against brute-force path enumeration and a loop-by-loop numpy pruning reference."""
from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxpr_sizes import max_intermediate_size

from audiojax.errors import UserError
from audiojax.objectives import rnnt


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _paths(frames, num_labels):
  """Every alignment as the list of its moves (t, u, is_emit), ending with the final blank at (T-1, U)."""
  for label_slots in itertools.combinations(range(frames + num_labels - 1), num_labels):
    t = u = 0
    moves = []
    for slot in range(frames + num_labels):
      is_emit = slot in label_slots
      moves.append((t, u, is_emit))
      u, t = (u + 1, t) if is_emit else (u, t + 1)
    yield moves


def brute(blank, emit, allowed=None):
  """One example: blank, emit (T_b, U_b+1) log-probs (float64). Returns nll over the paths whose every cell is
  allowed, and the occupation (posterior) of every blank and emit move."""
  frames, states = blank.shape
  scores, all_moves = [], []
  for moves in _paths(frames, states - 1):
    if allowed is not None and not all(allowed[t, u] for t, u, _ in moves):
      continue
    scores.append(sum(emit[t, u] if e else blank[t, u] for t, u, e in moves))
    all_moves.append(moves)
  if not scores:
    return math.inf, None, None
  top = max(scores)
  total = top + math.log(sum(math.exp(s - top) for s in scores))
  blank_occ, emit_occ = np.zeros((frames, states)), np.zeros((frames, states))
  for score, moves in zip(scores, all_moves):
    for t, u, e in moves:
      (emit_occ if e else blank_occ)[t, u] += math.exp(score - total)
  return -total, blank_occ, emit_occ


def ref_prune_ranges(blank_occ, emit_occ, t_len, u_len, prune_range):
  """k2's pruning bounds written out with loops: best window per frame, then the path constraints one by one."""
  batch, frames, states = blank_occ.shape
  width = min(prune_range, states)
  out = np.zeros((batch, frames), np.int64)
  for b in range(batch):
    last = max(u_len[b] - width + 1, 0)
    s = np.full(frames, last)
    for t in range(t_len[b] - 1):
      scores = [blank_occ[b, t, j:j + width].sum() - (emit_occ[b, t, j - 1] if j else 0.0)
                for j in range(states - width + 1)]
      s[t] = int(np.argmax(scores))
    for t in range(frames - 2, -1, -1):  # no window may start after a later one
      s[t] = min(s[t], s[t + 1])
    for t in range(frames - 2, -1, -1):  # a later window may start at most R-1 after this one: pull this one up
      s[t] = max(s[t], s[t + 1] - (width - 1))
    for t in range(frames):  # and reachable from (0, 0)
      s[t] = min(s[t], t * (width - 1))
    out[b] = s
  return out


def _problem(rng, shapes, vocab=5, d_enc=6, d_pred=4, d_join=7, pad_frames=1, pad_labels=1, scale=1.0):
  frames = max(t for t, _ in shapes) + pad_frames
  num_labels = max(u for _, u in shapes) + pad_labels
  batch = len(shapes)
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  params = {"we": f32(rng.normal(size=(d_enc, d_join)) * scale), "wp": f32(rng.normal(size=(d_pred, d_join)) * scale),
            "wo": f32(rng.normal(size=(d_join, vocab)) * scale)}
  enc = f32(rng.normal(size=(batch, frames, d_enc)))
  pred = f32(rng.normal(size=(batch, num_labels + 1, d_pred)))
  am = f32(rng.normal(size=(batch, frames, vocab)))
  lm = f32(rng.normal(size=(batch, num_labels + 1, vocab)))
  labels = rng.integers(1, vocab, size=(batch, num_labels)).astype(np.int32)
  for b, (_, u) in enumerate(shapes):
    labels[b, u:] = -1 if b % 2 else 0  # padding the losses must ignore
  t_len = np.array([t for t, _ in shapes], np.int32)
  u_len = np.array([u for _, u in shapes], np.int32)
  return params, enc, pred, am, lm, labels, t_len, u_len


def joiner_of(params):
  return lambda e, p: jnp.tanh(e @ params["we"] + p @ params["wp"]) @ params["wo"]


SHAPES = [(4, 3), (1, 2), (3, 0), (2, 1), (5, 4)]


def test_a_window_covering_all_labels_gives_the_full_loss_and_its_gradients():
  rng = np.random.default_rng(0)
  params, enc, pred, am, lm, labels, t_len, u_len = _problem(rng, SHAPES)
  num_labels = labels.shape[1]

  def pruned(params, enc, pred, am, lm, prune_range):
    simple, nll = rnnt.rnnt_loss_pruned(enc, pred, am, lm, labels, t_len, u_len, joiner_of(params),
                                        prune_range=prune_range)
    return nll.sum(), (simple, nll)

  def full(params, enc, pred):
    nll = rnnt.rnnt_loss_dense(joiner_of(params)(enc[:, :, None], pred[:, None]), labels, t_len, u_len)
    return nll.sum(), nll

  (_, want), want_grads = jax.jit(jax.value_and_grad(full, argnums=(0, 1, 2), has_aux=True))(params, enc, pred)
  want_simple = jax.jit(functools.partial(rnnt.rnnt_loss_simple, lm_only_scale=0.25))(lm, am, labels, t_len, u_len)
  step = jax.jit(jax.value_and_grad(pruned, argnums=(0, 1, 2, 3, 4), has_aux=True), static_argnums=5)
  (_, (simple, got)), grads = step(params, enc, pred, am, lm, num_labels + 1)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(simple), np.asarray(want_simple), rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree.leaves(grads[:3]), jax.tree.leaves(want_grads)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  assert not np.asarray(grads[3]).any() and not np.asarray(grads[4]).any()  # the windows carry no gradient
  _, wider = jax.jit(pruned, static_argnums=5)(params, enc, pred, am, lm, num_labels + 4)[1]  # clipped to U + 1
  np.testing.assert_allclose(np.asarray(wider), np.asarray(want), rtol=1e-5, atol=1e-5)


def test_occupation_is_the_brute_force_posterior():
  rng = np.random.default_rng(1)
  frames, states, batch = 5, 4, len(SHAPES)
  blank = rng.normal(size=(batch, frames + 1, states + 1)).astype(np.float32)
  emit = rng.normal(size=blank.shape).astype(np.float32)
  t_len = np.array([t for t, _ in SHAPES], np.int32)
  u_len = np.array([u for _, u in SHAPES], np.int32)
  nll, blank_occ, emit_occ = jax.jit(rnnt.lattice_occupation)(blank, emit, t_len, u_len)
  for b, (t, u) in enumerate(SHAPES):
    want_nll, want_blank, want_emit = brute(blank[b, :t, :u + 1].astype(np.float64), emit[b, :t, :u + 1])
    np.testing.assert_allclose(float(nll[b]), want_nll, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(blank_occ)[b, :t, :u + 1], want_blank, atol=1e-5)
    np.testing.assert_allclose(np.asarray(emit_occ)[b, :t, :u], want_emit[:, :u], atol=1e-5)
    assert not np.asarray(blank_occ)[b, t:].any() and not np.asarray(blank_occ)[b, :, u + 1:].any()
    assert not np.asarray(emit_occ)[b, :, u:].any()


def test_small_windows_give_the_brute_force_sum_over_the_paths_inside_them():
  rng = np.random.default_rng(2)
  shapes = [(5, 3), (2, 2), (4, 0), (1, 1), (6, 4), (3, 3)]
  params, enc, pred, am, lm, labels, t_len, u_len = _problem(rng, shapes, scale=1.5)
  logits = np.asarray(joiner_of(params)(enc[:, :, None], pred[:, None]), np.float64)
  full = np.asarray(jax.jit(rnnt.rnnt_loss_dense)(jnp.asarray(logits, jnp.float32), labels, t_len, u_len))
  # The windows come from the smoothed additive lattice: its brute-force occupation through the numpy reference.
  simple_lp = 0.75 * _log_softmax(np.asarray(am, np.float64)[:, :, None] + np.asarray(lm, np.float64)[:, None]) \
      + 0.25 * _log_softmax(np.asarray(lm, np.float64))[:, None]
  for prune_range in (2, 3):
    blank_occ = np.zeros(simple_lp.shape[:3])
    emit_occ = np.zeros(simple_lp.shape[:3])
    for b, (t, u) in enumerate(shapes):
      lp = simple_lp[b, :t, :u + 1]
      _, blank_occ[b, :t, :u + 1], emit_occ[b, :t, :u + 1] = brute(
          lp[..., 0], np.take_along_axis(lp, np.pad(labels[b, :u], (0, 1))[None, :, None], -1)[..., 0])
    emit_occ[:, :, -1] = 0
    s_begin = ref_prune_ranges(blank_occ, emit_occ, t_len, u_len, prune_range)
    loss = jax.jit(lambda *a: rnnt.rnnt_loss_pruned(*a, joiner_of(params), prune_range=prune_range))
    simple, got = (np.asarray(x) for x in loss(enc, pred, am, lm, labels, t_len, u_len))
    for b, (t, u) in enumerate(shapes):
      lp = _log_softmax(logits[b, :t, :u + 1])
      cols = np.arange(u + 1)[None]
      allowed = (cols >= s_begin[b, :t, None]) & (cols < s_begin[b, :t, None] + prune_range)
      want, _, _ = brute(lp[..., 0], np.take_along_axis(lp, np.pad(labels[b, :u], (0, 1))[None, :, None], -1)[..., 0],
                         allowed)
      if u > t * (prune_range - 1):
        assert want == math.inf and got[b] == 0.0  # no path survives: reported as 0
      else:
        np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-5)
        assert got[b] >= full[b] - 1e-5
    assert (got - full).max() > 0.1  # a random model loses paths to pruning: the checks can fail


def _check_ranges(s_begin, t_len, u_len, prune_range, num_labels):
  width = min(prune_range, num_labels + 1)
  assert s_begin.dtype == np.int32
  assert (s_begin >= 0).all() and (s_begin <= num_labels + 1 - width).all()
  for b, (t, u) in enumerate(zip(t_len, u_len)):
    s = s_begin[b, :t]
    assert s[0] == 0
    steps = np.diff(s)
    assert (steps >= 0).all() and (steps <= width - 1).all(), s
    if u <= t * (width - 1):
      assert s[-1] <= u <= s[-1] + width - 1, (s, u)


def test_ranges_match_the_loop_reference_and_keep_a_path_alive():
  rng = np.random.default_rng(3)
  for prune_range in (2, 3, 5):
    r1 = prune_range - 1
    # (T_b, U_b): empty labels, one frame, exactly at and one past the T_b limit, long and short.
    shapes = [(7, 0), (1, 0), (1, r1), (1, r1 + 1), (3, 3 * r1), (3, 3 * r1 + 1), (9, 4), (2, 1), (9, 9), (5, 2)]
    frames, num_labels = 9, max(u for _, u in shapes)
    t_len = np.array([t for t, _ in shapes], np.int32)
    u_len = np.array([u for _, u in shapes], np.int32)
    blank_occ = rng.random((len(shapes), frames, num_labels + 1)) ** 4  # peaky, like posteriors
    emit_occ = rng.random(blank_occ.shape) ** 4
    got = np.asarray(jax.jit(rnnt.prune_ranges, static_argnums=4)(
        blank_occ.astype(np.float32), emit_occ.astype(np.float32), t_len, u_len, prune_range))
    np.testing.assert_array_equal(got, ref_prune_ranges(blank_occ, emit_occ, t_len, u_len, prune_range))
    _check_ranges(got, t_len, u_len, prune_range, num_labels)
    np.testing.assert_array_equal(np.asarray(rnnt.pruned_feasible(t_len, u_len, prune_range, num_labels)),
                                  u_len <= t_len * min(prune_range, num_labels + 1) - t_len)


def test_ranges_follow_a_single_alignment():
  """Occupation of one path with at most R-1 labels per frame: every cell of that path lies in its frame's window."""
  rng = np.random.default_rng(4)
  for prune_range in (2, 3, 4):
    frames, num_labels, batch = 12, 20, 16
    blank_occ, emit_occ = np.zeros((batch, frames, num_labels + 1)), np.zeros((batch, frames, num_labels + 1))
    t_len = rng.integers(1, frames + 1, batch).astype(np.int32)
    per_frame = [rng.integers(0, prune_range, t) for t in t_len]
    u_len = np.array([min(p.sum(), num_labels) for p in per_frame], np.int32)
    cells = []
    for b in range(batch):
      u, mine = 0, []
      for t in range(t_len[b]):
        for _ in range(per_frame[b][t]):
          if u < u_len[b]:
            emit_occ[b, t, u] = 1
            mine.append((t, u))
            u += 1
        blank_occ[b, t, u] = 1
        mine.append((t, u))
      cells.append(mine)
    s_begin = np.asarray(rnnt.prune_ranges(blank_occ, emit_occ, t_len, u_len, prune_range))
    _check_ranges(s_begin, t_len, u_len, prune_range, num_labels)
    for b in range(batch):
      for t, u in cells[b]:
        assert s_begin[b, t] <= u < s_begin[b, t] + prune_range, (b, t, u, s_begin[b])


def _peaked_problem(rng, shapes, vocab, sharpness):
  """Additive am + lm scores whose alignment emits label u at a chosen frame, one label per frame, blank elsewhere."""
  frames = max(t for t, _ in shapes)
  num_labels = max(u for _, u in shapes)
  batch = len(shapes)
  am = rng.normal(size=(batch, frames, vocab)) * 0.5
  lm = rng.normal(size=(batch, num_labels + 1, vocab)) * 0.5
  labels = np.zeros((batch, num_labels), np.int32)
  for b, (t, u) in enumerate(shapes):
    labels[b, :u] = rng.permutation(np.arange(1, vocab))[:u]  # distinct labels: the frames do not interfere
    emit_frames = np.sort(rng.choice(t, u, replace=False))
    am[b, :, 0] += 1.5 * sharpness
    for k, f in enumerate(emit_frames):
      am[b, f, 0] -= 0.9 * sharpness
      am[b, f, labels[b, k]] += sharpness
      lm[b, k, labels[b, k]] += 0.2 * sharpness
  t_len = np.array([t for t, _ in shapes], np.int32)
  u_len = np.array([u for _, u in shapes], np.int32)
  return jnp.asarray(am, jnp.float32), jnp.asarray(lm, jnp.float32), labels, t_len, u_len


def test_pruned_loss_is_close_to_the_full_loss_when_the_model_is_peaked():
  rng = np.random.default_rng(5)
  shapes = [(30, 12), (24, 20), (17, 3), (30, 0)]
  add = lambda e, p: e + p  # the additive joiner: encoder_out = am, predictor_out = lm

  def loss(am, lm, labels, t_len, u_len):
    nll = rnnt.rnnt_loss_pruned(am, lm, am, lm, labels, t_len, u_len, add, prune_range=3)[1]
    return nll.sum(), nll

  step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))
  dense = jax.jit(rnnt.rnnt_loss_dense)
  for sharpness, close in ((12.0, True), (0.0, False)):
    am, lm, labels, t_len, u_len = _peaked_problem(rng, shapes, 24, sharpness)
    full = np.asarray(dense(am[:, :, None] + lm[:, None], labels, t_len, u_len))
    (value, got), grads = step(am, lm, labels, t_len, u_len)
    got = np.asarray(got)
    assert (got >= full - 1e-4).all()
    assert np.isfinite(float(value)) and all(np.isfinite(np.asarray(g)).all() for g in grads)
    gap = got - full
    if close:
      assert gap.max() < 1e-3, gap
    else:
      assert gap[:2].min() > 0.1, gap  # an unpeaked model spreads mass outside 3 positions
    np.testing.assert_allclose(got[3], full[3], rtol=1e-5)  # no labels: nothing is pruned


def test_infeasible_rows_are_zero_and_get_no_gradient():
  rng = np.random.default_rng(6)
  shapes = [(2, 5), (4, 3)]  # 5 labels in 2 frames need 3 per frame: impossible with prune_range 3
  params, enc, pred, am, lm, labels, t_len, u_len = _problem(rng, shapes, pad_frames=0, pad_labels=0)

  def loss(enc, pred):
    nll = rnnt.rnnt_loss_pruned(enc, pred, am, lm, labels, t_len, u_len, joiner_of(params), prune_range=3)[1]
    return nll.sum(), nll

  (_, nll), (g_enc, g_pred) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))(enc, pred)
  nll = np.asarray(nll)
  assert nll[0] == 0 and 0 < nll[1] < 1e3
  assert not np.asarray(g_enc)[0].any() and not np.asarray(g_pred)[0].any()
  assert np.isfinite(np.asarray(g_enc)).all() and np.asarray(g_enc)[1].any()


def test_the_gradient_never_holds_a_full_lattice_of_logits():
  rng = np.random.default_rng(7)
  batch, frames, num_labels, vocab = 2, 48, 19, 40
  params, enc, pred, am, lm, labels, t_len, u_len = _problem(rng, [(frames, num_labels), (30, 7)], vocab=vocab,
                                                             pad_frames=0, pad_labels=0)
  full = batch * frames * (num_labels + 1) * vocab

  def pruned(params, enc, pred, am, lm):
    simple, nll = rnnt.rnnt_loss_pruned(enc, pred, am, lm, labels, t_len, u_len, joiner_of(params), prune_range=5)
    return 0.5 * simple.sum() + nll.sum()

  def dense(params, enc, pred):
    return rnnt.rnnt_loss_dense(joiner_of(params)(enc[:, :, None], pred[:, None]), labels, t_len, u_len).sum()

  traced_dense = jax.jit(jax.grad(dense, argnums=(0, 1, 2))).trace(params, enc, pred)
  traced = jax.jit(jax.grad(pruned, argnums=(0, 1, 2, 3, 4))).trace(params, enc, pred, am, lm)
  assert max_intermediate_size(traced_dense.jaxpr.jaxpr) >= full  # the check can fail
  assert max_intermediate_size(traced.jaxpr.jaxpr) <= full // 4


def test_bad_arguments_are_user_errors():
  rng = np.random.default_rng(8)
  params, enc, pred, am, lm, labels, t_len, u_len = _problem(rng, [(3, 2)])
  joiner = joiner_of(params)
  call = lambda **kw: rnnt.rnnt_loss_pruned(*kw.pop("args", (enc, pred, am, lm)), labels, t_len, u_len,
                                            kw.pop("joiner", joiner), **kw)
  with pytest.raises(UserError, match="prune_range"):
    call(prune_range=1)
  with pytest.raises(UserError, match="vocabulary"):
    call(joiner=lambda e, p: joiner(e, p)[..., :-1])
  with pytest.raises(UserError, match="predictor_out"):
    call(args=(enc, pred[:, :-1], am, lm))
  with pytest.raises(UserError, match="lm_only_scale"):
    call(lm_only_scale=1.5)
  with pytest.raises(UserError, match="blank_id"):
    call(blank_id=9)
