"""RNN-T and CTC losses against brute-force enumeration of every alignment (numpy, float64)."""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxpr_sizes import max_intermediate_size

from audiojax.errors import UserError
from audiojax.objectives import ctc, rnnt


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  m = x.max(-1, keepdims=True)
  return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _logsumexp(values):
  m = max(values)
  return m + math.log(sum(math.exp(v - m) for v in values))


def brute_rnnt_nll(logits, labels, blank_id=0, normalise=True):
  """logits (T, U+1, V) of one example, labels (U,): -log sum over every interleaving of T blanks and U labels that
  ends in a blank. normalise=False: logits already hold the (possibly smoothed) log-probabilities."""
  lp = _log_softmax(logits) if normalise else np.asarray(logits, np.float64)
  frames, num_labels = lp.shape[0], len(labels)
  paths = []
  for label_slots in itertools.combinations(range(frames + num_labels - 1), num_labels):
    t = u = 0
    score = 0.0
    for slot in range(frames + num_labels):
      if slot in label_slots:
        score += lp[t, u, labels[u]]
        u += 1
      else:
        score += lp[t, u, blank_id]
        t += 1
    assert (t, u) == (frames, num_labels)
    paths.append(score)
  return -_logsumexp(paths)


def brute_ctc_nll(logits, labels, blank_id=0):
  """logits (T, V) of one example: -log sum over every frame labelling that collapses (repeats, then blanks) to
  labels; +inf when none does."""
  lp = _log_softmax(logits)
  frames, vocab = lp.shape
  paths = []
  for path in itertools.product(range(vocab), repeat=frames):
    collapsed = [k for i, k in enumerate(path) if (i == 0 or k != path[i - 1]) and k != blank_id]
    if collapsed == list(labels):
      paths.append(sum(lp[t, k] for t, k in enumerate(path)))
  return -_logsumexp(paths) if paths else math.inf


def padded_rnnt_batch(rng, shapes, vocab, pad_frames=1, pad_labels=1):
  """Random logits with garbage in the padding. shapes: [(T_b, U_b)]."""
  frames = max(t for t, _ in shapes) + pad_frames
  num_labels = max(u for _, u in shapes) + pad_labels
  logits = rng.normal(size=(len(shapes), frames, num_labels + 1, vocab)).astype(np.float32) * 2
  labels = rng.integers(1, vocab, size=(len(shapes), num_labels)).astype(np.int32)
  for b, (_, u) in enumerate(shapes):
    labels[b, u:] = -1 if b % 2 else 0  # padding values the loss must ignore
  enc_lengths = np.array([t for t, _ in shapes], np.int32)
  label_lengths = np.array([u for _, u in shapes], np.int32)
  return logits, labels, enc_lengths, label_lengths


RNNT_SHAPES = [(4, 3), (1, 2), (3, 0), (2, 1), (4, 1)]


def test_rnnt_dense_matches_brute_force_on_a_padded_batch():
  rng = np.random.default_rng(0)
  for vocab, blank_id in ((4, 0), (3, 2)):
    logits, labels, t_len, u_len = padded_rnnt_batch(rng, RNNT_SHAPES, vocab)
    if blank_id:
      labels = np.where(labels > 0, labels - 1, labels)  # labels in 0..V-2, blank is V-1
    got = np.asarray(jax.jit(rnnt.rnnt_loss_dense, static_argnums=4)(logits, labels, t_len, u_len, blank_id))
    want = [brute_rnnt_nll(logits[b, :t, :u + 1], labels[b, :u], blank_id) for b, (t, u) in enumerate(RNNT_SHAPES)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_rnnt_ignores_whatever_the_padding_holds():
  rng = np.random.default_rng(1)
  logits, labels, t_len, u_len = padded_rnnt_batch(rng, RNNT_SHAPES, 4, pad_frames=2, pad_labels=2)
  blank, emit = rnnt.log_probs_blank_and_label(logits, labels, 0)
  loss = jax.jit(rnnt.rnnt_loss_from_log_probs)
  ref = np.asarray(loss(blank, emit, t_len, u_len))
  t = np.arange(blank.shape[1])[None, :, None]
  u = np.arange(blank.shape[2])[None, None, :]
  outside = (t >= t_len[:, None, None]) | (u > u_len[:, None, None])
  for fill in (-np.inf, 1e4, -1e30):
    got = loss(jnp.where(outside, fill, blank), jnp.where(outside, fill, emit), t_len, u_len)
    np.testing.assert_array_equal(np.asarray(got), ref)
  grads = jax.jit(jax.grad(lambda b, e: loss(b, e, t_len, u_len).sum(), argnums=(0, 1)))(
      jnp.where(outside, -jnp.inf, blank), jnp.where(outside, -jnp.inf, emit))
  for g in grads:
    assert np.isfinite(np.asarray(g)).all()
    assert not np.asarray(g)[np.broadcast_to(outside, g.shape)].any()


def joiner_problem(rng, shapes, vocab=5, d_enc=6, d_pred=4, d_join=7, pad_frames=1):
  frames = max(t for t, _ in shapes) + pad_frames
  num_labels = max(u for _, u in shapes)
  params = {"we": rng.normal(size=(d_enc, d_join)), "wp": rng.normal(size=(d_pred, d_join)),
            "wo": rng.normal(size=(d_join, vocab))}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  enc = jnp.asarray(rng.normal(size=(len(shapes), frames, d_enc)), jnp.float32)
  pred = jnp.asarray(rng.normal(size=(len(shapes), num_labels + 1, d_pred)), jnp.float32)
  labels = rng.integers(1, vocab, size=(len(shapes), num_labels)).astype(np.int32)
  t_len = np.array([t for t, _ in shapes], np.int32)
  u_len = np.array([u for _, u in shapes], np.int32)
  return params, enc, pred, labels, t_len, u_len


def tiny_joiner(params):
  return lambda e, p: jnp.tanh(e @ params["we"] + p @ params["wp"]) @ params["wo"]


def test_rnnt_chunked_matches_dense_and_brute_force_for_any_chunk_size():
  rng = np.random.default_rng(2)
  shapes = [(4, 3), (2, 1), (3, 0)]
  params, enc, pred, labels, t_len, u_len = joiner_problem(rng, shapes, vocab=4)
  joiner = tiny_joiner(params)
  logits = joiner(enc[:, :, None], pred[:, None])
  dense = np.asarray(jax.jit(rnnt.rnnt_loss_dense)(logits, labels, t_len, u_len))
  want = [brute_rnnt_nll(np.asarray(logits)[b, :t, :u + 1], labels[b, :u]) for b, (t, u) in enumerate(shapes)]
  np.testing.assert_allclose(dense, want, rtol=1e-5, atol=1e-5)
  for chunk in (2, 3, 16):  # T = 5: not dividing it, larger than it
    loss = jax.jit(lambda *a: rnnt.rnnt_loss(*a, joiner, frames_per_chunk=chunk))
    np.testing.assert_allclose(np.asarray(loss(enc, pred, labels, t_len, u_len)), dense, rtol=1e-6, atol=1e-6)


def test_rnnt_gradient_wrt_logits_matches_finite_differences_of_the_brute_force():
  rng = np.random.default_rng(4)
  logits, labels, t_len, u_len = padded_rnnt_batch(rng, [(3, 2)], 3, pad_frames=0, pad_labels=0)
  grad = np.asarray(jax.jit(jax.grad(lambda x: rnnt.rnnt_loss_dense(x, labels, t_len, u_len).sum()))(logits))[0]
  x = logits[0].astype(np.float64)
  eps = 1e-5
  numeric = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    up, down = x.copy(), x.copy()
    up[idx] += eps
    down[idx] -= eps
    numeric[idx] = (brute_rnnt_nll(up, labels[0]) - brute_rnnt_nll(down, labels[0])) / (2 * eps)
  np.testing.assert_allclose(grad, numeric, atol=2e-5)


def test_rnnt_simple_smoothed_loss_matches_brute_force():
  rng = np.random.default_rng(9)
  shapes, vocab = [(4, 3), (3, 1), (2, 2)], 5
  frames, states = 5, 4  # padded
  lm = rng.normal(size=(len(shapes), states, vocab)).astype(np.float32)
  am = rng.normal(size=(len(shapes), frames, vocab)).astype(np.float32) * 2
  labels = rng.integers(1, vocab, size=(len(shapes), states - 1)).astype(np.int32)
  t_len = np.array([t for t, _ in shapes], np.int32)
  u_len = np.array([u for _, u in shapes], np.int32)
  lm64, am64 = lm.astype(np.float64), am.astype(np.float64)
  # unigram LM: softmax(lm) averaged over the valid predictor positions of the batch
  unigram = np.mean(np.concatenate([np.exp(_log_softmax(lm64[b, :u + 1])) for b, (_, u) in enumerate(shapes)]), 0)
  loss = jax.jit(rnnt.rnnt_loss_simple, static_argnames=("lm_only_scale", "am_only_scale"))
  for lm_scale, am_scale in ((0.0, 0.0), (0.25, 0.1)):
    got = np.asarray(loss(lm, am, labels, t_len, u_len, lm_only_scale=lm_scale, am_only_scale=am_scale))
    for b, (t, u) in enumerate(shapes):
      combined = _log_softmax(am64[b, :t, None] + lm64[b, None, :u + 1])  # (T_b, U_b+1, V): the joiner am + lm
      lm_only = _log_softmax(lm64[b, :u + 1])[None]
      am_only = _log_softmax(am64[b, :t] + np.log(unigram))[:, None] + 0 * combined
      table = (1 - lm_scale - am_scale) * combined + lm_scale * lm_only + am_scale * am_only
      np.testing.assert_allclose(got[b], brute_rnnt_nll(table, labels[b, :u], normalise=False), rtol=1e-5)


def test_rnnt_chunked_gradients_equal_dense_without_materialising_the_full_logits():
  rng = np.random.default_rng(5)
  batch, frames, num_labels, vocab = 2, 64, 5, 50
  params, enc, pred, labels, t_len, u_len = joiner_problem(rng, [(frames, num_labels), (40, 3)], vocab=vocab,
                                                           pad_frames=0)
  full = batch * frames * (num_labels + 1) * vocab

  def chunked(params, enc, pred):  # 64 frames in 8 chunks
    return rnnt.rnnt_loss(enc, pred, labels, t_len, u_len, tiny_joiner(params), frames_per_chunk=8).sum()

  def dense(params, enc, pred):
    logits = tiny_joiner(params)(enc[:, :, None], pred[:, None])
    return rnnt.rnnt_loss_dense(logits, labels, t_len, u_len).sum()

  args = (params, enc, pred)
  traced = [jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2))).trace(*args) for f in (chunked, dense)]
  assert max_intermediate_size(traced[1].jaxpr.jaxpr) >= full  # the check can fail
  assert max_intermediate_size(traced[0].jaxpr.jaxpr) <= full // 4
  compiled = [t.lower().compile() for t in traced]
  temp = [c.memory_analysis().temp_size_in_bytes for c in compiled]
  assert temp[0] < temp[1] / 2, temp

  (loss_c, grads_c), (loss_d, grads_d) = [c(*args) for c in compiled]
  np.testing.assert_allclose(loss_c, loss_d, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(grads_c), jax.tree.leaves(grads_d)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
  assert not np.asarray(grads_c[1])[1, 40:].any()  # padded frames get no gradient
  assert not np.asarray(grads_c[2])[1, 4:].any()  # nor do predictor positions past U_b

  # Directional finite differences of the chunked loss itself (what check_grads(order=1, modes=["rev"]) does).
  loss = jax.jit(chunked)
  for seed in range(2):
    direction = jax.tree.map(lambda x: jnp.asarray(np.random.default_rng(seed).normal(size=x.shape), x.dtype), args)
    step = lambda sign: jax.tree.map(lambda x, d: x + sign * 1e-2 * d, args, direction)
    numeric = (float(loss(*step(1))) - float(loss(*step(-1)))) / 2e-2
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree.leaves(grads_c), jax.tree.leaves(direction)))
    np.testing.assert_allclose(numeric, analytic, rtol=1e-2)


def test_rnnt_rejects_mismatched_shapes():
  rng = np.random.default_rng(6)
  params, enc, pred, labels, t_len, u_len = joiner_problem(rng, [(3, 2)])
  with pytest.raises(UserError, match="predictor_out"):
    rnnt.rnnt_loss(enc, pred[:, :-1], labels, t_len, u_len, tiny_joiner(params))
  with pytest.raises(UserError, match="frames_per_chunk"):
    rnnt.rnnt_loss(enc, pred, labels, t_len, u_len, tiny_joiner(params), frames_per_chunk=0)
  with pytest.raises(UserError, match="blank_id"):
    rnnt.rnnt_loss(enc, pred, labels, t_len, u_len, tiny_joiner(params), blank_id=5)
  with pytest.raises(UserError, match="labels"):
    rnnt.rnnt_loss_dense(jnp.zeros((1, 3, 4, 5)), labels, t_len, u_len)
  with pytest.raises(UserError, match="enc_lengths"):
    rnnt.rnnt_loss_dense(jnp.zeros((1, 3, 3, 5)), labels, t_len[None], u_len)


def test_ctc_matches_brute_force_and_masks_infeasible_rows():
  rng = np.random.default_rng(7)
  vocab = 4
  # (T_b, labels): feasible ones incl. repeats and empty; infeasible: too short, too short once repeats count.
  rows = [([1, 2, 3], 6), ([2, 2], 5), ([1, 1, 1], 5), ([], 2), ([3], 1), ([1, 2, 2], 3), ([2, 2], 2), ([1, 2, 3], 2)]
  frames, num_labels = 6, 3
  logits = rng.normal(size=(len(rows), frames, vocab)).astype(np.float32) * 2
  labels = np.full((len(rows), num_labels), -1, np.int32)
  for b, (lab, _) in enumerate(rows):
    labels[b, :len(lab)] = lab
  t_len = np.array([t for _, t in rows], np.int32)
  u_len = np.array([len(lab) for lab, _ in rows], np.int32)
  nll, feasible = jax.jit(ctc.ctc_loss)(logits, t_len, labels, u_len)
  want = np.array([brute_ctc_nll(logits[b, :t], lab) for b, (lab, t) in enumerate(rows)])
  np.testing.assert_array_equal(np.asarray(feasible), np.isfinite(want))
  np.testing.assert_allclose(np.asarray(nll), np.where(np.isfinite(want), want, 0.0), rtol=1e-5, atol=1e-5)
  grad = jax.jit(jax.grad(lambda x: ctc.ctc_loss(x, t_len, labels, u_len)[0].sum()))(logits)
  assert not np.asarray(grad)[~np.isfinite(want)].any()
  pad = np.arange(frames)[None, :] >= t_len[:, None]
  assert not np.asarray(grad)[pad].any()


def test_ctc_blank_id_and_errors():
  rng = np.random.default_rng(8)
  logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
  labels = np.array([[0, 1], [1, 1]], np.int32)
  t_len, u_len = np.array([5, 4]), np.array([2, 2])
  nll, feasible = jax.jit(ctc.ctc_loss, static_argnames="blank_id")(logits, t_len, labels, u_len, blank_id=2)
  want = [brute_ctc_nll(logits[b, :t_len[b]], labels[b], blank_id=2) for b in range(2)]
  np.testing.assert_allclose(np.asarray(nll), want, rtol=1e-5)
  assert np.asarray(feasible).all()
  with pytest.raises(UserError, match="blank_id"):
    ctc.ctc_loss(logits, t_len, labels, u_len, blank_id=3)
  with pytest.raises(UserError, match="logit_lengths"):
    ctc.ctc_loss(logits, t_len[:1], labels, u_len)


def _best_path(log_probs: np.ndarray, labels: list[int]) -> tuple[float, tuple[int, ...] | None]:
  """Brute force: the highest-scoring frame path (blank 0) that collapses to ``labels``."""
  best, best_path = -np.inf, None
  for path in itertools.product(range(log_probs.shape[1]), repeat=log_probs.shape[0]):
    collapsed = [p for i, p in enumerate(path) if p != 0 and (i == 0 or p != path[i - 1])]
    if collapsed == labels:
      score = sum(log_probs[t, p] for t, p in enumerate(path))
      if score > best:
        best, best_path = score, path
  return best, best_path


def test_ctc_alignment_is_the_best_path_by_brute_force_in_a_padded_batch():
  rng = np.random.default_rng(0)
  rows = [([1, 2], 6), ([2, 2], 6), ([1, 2, 1], 5), ([3], 4), ([], 3), ([1, 1, 1], 4)]  # (labels, frames)
  log_probs = np.log(rng.dirichlet(np.ones(4), size=(len(rows), 6))).astype(np.float32)  # B=6, T=6, V=4
  labels = np.zeros((len(rows), 3), np.int32)
  for b, (row, _) in enumerate(rows):
    labels[b, :len(row)] = row
  labels[4, :] = 3  # padding past a row's labels is ignored
  got = np.asarray(ctc.ctc_alignment(jnp.asarray(log_probs), jnp.array([f for _, f in rows]), jnp.asarray(labels),
                                     jnp.array([len(r) for r, _ in rows])))
  for b, (row, frames) in enumerate(rows[:5]):
    best, best_path = _best_path(log_probs[b, :frames].astype(np.float64), row)
    assert list(got[b, frames:]) == [-1] * (6 - frames)  # past the row's frames
    align = got[b, :frames]
    assert [row[u] if u >= 0 else 0 for u in align] == list(best_path), b
    assert sum(log_probs[b, t, row[u] if u >= 0 else 0] for t, u in enumerate(align)) == pytest.approx(best, abs=1e-5)
    emitted = [u for i, u in enumerate(align) if u >= 0 and (i == 0 or u != align[i - 1])]
    assert emitted == list(range(len(row)))  # every label, in order, once
  assert list(got[5]) == [-1] * 6  # [1, 1, 1] needs 5 frames: infeasible in 4
