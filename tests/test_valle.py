"""VALL-E (audiojax.models.valle) against a numpy transformer written from the paper's description, its masks, its
KV cache against full recomputation, the NAR generation, and the samplers (top-k / top-p / repetition-aware)."""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.decoding import codec_lm, sampling
from audiojax.errors import UserError
from audiojax.models import valle

BINS, N_Q, TEXT_VOCAB = 16, 4, 20


def tiny_model(**overrides):
  fields = dict(text_vocab=TEXT_VOCAB, n_q=N_Q, bins=BINS, width=32, heads=2, mlp_dim=64, depth=2)
  return valle.Model("tiny", **{**fields, **overrides})


def random_rows(rng, count, prompt_frames=(3, 5), target_frames=(4, 7)):
  rows = []
  for _ in range(count):
    t = int(rng.integers(3, 7))
    frames_p, frames_t = int(rng.integers(*prompt_frames)), int(rng.integers(*target_frames))
    rows.append({"phonemes": rng.integers(4, TEXT_VOCAB, t), "languages": np.where(np.arange(t) < 2, 1, 2),
                 "codes": rng.integers(0, BINS, (frames_p + frames_t, N_Q)), "prompt_frames": frames_p})
  return rows


@pytest.fixture(scope="module")
def setup():
  model = tiny_model()
  variables = model.init(jax.random.PRNGKey(0), *valle.example_inputs(model))
  # the AdaLN kernels start at zero (a plain LayerNorm); give them values so the reference checks the conditioning
  params = nn.meta.unbox(variables["params"])
  key = iter(jax.random.split(jax.random.PRNGKey(1), 64))
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: 0.1 * jax.random.normal(next(key), x.shape) if "kernel" in str(path[-1]) and x.ndim == 3
      and "norm" in str(path) else x, params)
  batch = valle.pack(random_rows(np.random.default_rng(0), 3), 24, BINS)
  return model, {"params": params}, batch


# --- an independent numpy reference --------------------------------------------------------------------------------
def np_sinusoid(position, dim):
  i = np.arange(dim // 2)
  angle = position / 10000.0 ** (2 * i / dim)
  out = np.empty(dim)
  out[0::2], out[1::2] = np.sin(angle), np.cos(angle)
  return out


def np_norm(x, eps=1e-5):
  return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps)


def np_block(p, x, visible, cond=None):
  """One pre-LN block on one example ``x (L, D)``; ``visible (L, L)`` bool."""
  def norm(name, h):
    if cond is None:
      return np_norm(h) * p[name]["scale"] + p[name]["bias"]
    scale = cond @ p[name]["kernel"][:, 0] + p[name]["bias"][0]
    shift = cond @ p[name]["kernel"][:, 1] + p[name]["bias"][1]
    return np_norm(h) * scale + shift

  a = p["attn"]
  h = norm("norm1", x)
  qkv = np.einsum("nd,dkhe->nkhe", h, a["qkv_kernel"]) + a["qkv_bias"]
  q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
  logits = np.einsum("qhe,khe->hqk", q, k) / math.sqrt(q.shape[-1])
  logits = np.where(visible[None], logits, -np.inf)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  x = x + np.einsum("hqk,khe,hed->qd", weights, v, a["proj_kernel"]) + a["proj_bias"]
  h = norm("norm2", x)
  m = p["mlp"]
  u = h @ m["fc1"]["kernel"] + m["fc1"]["bias"]
  u = 0.5 * u * (1 + np.vectorize(math.erf)(u / math.sqrt(2)))
  return x + u @ m["fc2"]["kernel"] + m["fc2"]["bias"]


def np_embed_text(p, text, languages, t, width):
  return [p["text_embed"][text[i]] + p["language_embed"][languages[i]] + p["position_scale"][0] * np_sinusoid(i, width)
          for i in range(t)]


def np_ar(params, batch, b, width=32, depth=2):
  p = jax.tree.map(np.asarray, params["ar"])
  t, length = int(batch["text_lengths"][b]), int(batch["ar_lengths"][b])
  rows = np_embed_text(p, batch["text"][b], batch["languages"][b], t, width)
  rows += [p["audio_embed"][batch["audio"][b, i]] + p["position_scale"][1] * np_sinusoid(i - t, width)
           for i in range(t, length)]
  x = np.stack(rows)
  q, k = np.arange(length)[:, None], np.arange(length)[None, :]
  visible = (k <= q) | (k < t)
  for i in range(depth):
    x = np_block(p[f"blocks_{i}"], x, visible)
  x = np_norm(x) * p["final_norm"]["scale"] + p["final_norm"]["bias"]
  return x @ p["head"]["kernel"] + p["head"]["bias"]


def np_nar(params, batch, b, stage, width=32, depth=2):
  p = jax.tree.map(np.asarray, params["nar"])
  t, length, prompt = int(batch["text_lengths"][b]), int(batch["lengths"][b]), int(batch["prompt_frames"][b])
  rows = np_embed_text(p, batch["text"][b], batch["languages"][b], t, width)
  for i in range(t, length):
    used = N_Q if i - t < prompt else stage
    rows.append(sum(p["code_embed"][q][batch["codes"][b, i, q]] for q in range(used))
                + p["position_scale"][1] * np_sinusoid(i - t, width))
  x, cond = np.stack(rows), p["stage_embed"][stage]
  for i in range(depth):
    x = np_block(p[f"blocks_{i}"], x, np.ones((length, length), bool), cond)
  scale = cond @ p["final_norm"]["kernel"][:, 0] + p["final_norm"]["bias"][0]
  shift = cond @ p["final_norm"]["kernel"][:, 1] + p["final_norm"]["bias"][1]
  return (np_norm(x) * scale + shift) @ p["code_embed"][stage].T


def test_ar_and_nar_match_the_numpy_reference(setup):
  model, variables, batch = setup
  stage = np.array([1, 2, 3], np.int32)
  with jax.default_matmul_precision("highest"):
    ar, nar = model.apply(variables, batch["text"], batch["languages"], batch["audio"], batch["codes"],
                          batch["text_lengths"], batch["prompt_frames"], batch["lengths"], stage)
  for b in range(3):
    np.testing.assert_allclose(ar[b, :batch["ar_lengths"][b]], np_ar(variables["params"], batch, b), atol=1e-4,
                               rtol=1e-4)
    np.testing.assert_allclose(nar[b, :batch["lengths"][b]], np_nar(variables["params"], batch, b, stage[b]),
                               atol=1e-4, rtol=1e-4)


def test_pack_layout():
  rows = random_rows(np.random.default_rng(1), 2)
  batch = valle.pack(rows, 24, BINS)
  t, frames = len(rows[0]["phonemes"]), rows[0]["codes"].shape[0]
  assert batch["audio"][0, t] == valle.bos_id(BINS)
  np.testing.assert_array_equal(batch["audio"][0, t + 1:t + 1 + frames], rows[0]["codes"][:, 0])
  np.testing.assert_array_equal(batch["targets"][0, t:t + frames], rows[0]["codes"][:, 0])
  assert batch["targets"][0, t + frames] == valle.eos_id(BINS) and (batch["targets"][0, t + frames + 1:] == -1).all()
  np.testing.assert_array_equal(batch["codes"][0, t:t + frames], rows[0]["codes"])
  assert batch["ar_lengths"][0] == batch["lengths"][0] + 1 == t + frames + 1
  with pytest.raises(UserError, match="does not fit 8 positions"):
    valle.pack(rows, 8, BINS)


def test_ar_is_a_prefix_lm(setup):
  """Phonemes see each other both ways; audio sees all phonemes and only earlier audio."""
  model, variables, batch = setup
  run = lambda b: model.apply(variables, b["text"], b["languages"], b["audio"], b["text_lengths"],  # noqa: E731
                              b["ar_lengths"], method="ar_logits")
  base = run(batch)
  t = int(batch["text_lengths"][0])
  later_audio = {**batch, "audio": batch["audio"].copy()}
  later_audio["audio"][0, t + 3] = (later_audio["audio"][0, t + 3] + 1) % BINS
  changed = np.abs(np.asarray(run(later_audio) - base)[0]).max(-1) > 1e-6
  assert not changed[:t + 3].any() and changed[t + 3:batch["ar_lengths"][0]].all()
  last_phoneme = {**batch, "text": batch["text"].copy()}
  last_phoneme["text"][0, t - 1] = (last_phoneme["text"][0, t - 1] + 1) % TEXT_VOCAB
  changed = np.abs(np.asarray(run(last_phoneme) - base)[0]).max(-1) > 1e-6
  assert changed[:batch["ar_lengths"][0]].all()  # the first phoneme already sees the last one
  assert not np.abs(np.asarray(run(last_phoneme) - base)[1:]).max() > 0  # other rows untouched


def test_kv_cache_steps_equal_full_recomputation(setup):
  """Prefill on the prompt, then feed the rest one token at a time: the same logits as the full forward."""
  model, variables, _ = setup
  rows = random_rows(np.random.default_rng(2), 3)
  full = valle.pack(rows, 24, BINS)
  prompt = valle.pack([{**r, "codes": r["codes"][:r["prompt_frames"]]} for r in rows], 16, BINS)
  with jax.default_matmul_precision("highest"):
    reference = model.apply(variables, full["text"], full["languages"], full["audio"], full["text_lengths"],
                            full["ar_lengths"], method="ar_logits")
    logits, caches = model.apply(variables, prompt["text"], prompt["languages"], prompt["audio"],
                                 prompt["text_lengths"], prompt["ar_lengths"], 24, method="prefill")
    lengths = prompt["ar_lengths"]
    for step in range(3):
      expected = reference[np.arange(3), lengths - 1]
      np.testing.assert_allclose(logits, expected, atol=2e-5, rtol=1e-5)
      token = full["audio"][np.arange(3), lengths]
      logits, caches = model.apply(variables, token, caches, prompt["text_lengths"], lengths, method="decode_step")
      lengths = lengths + 1


@pytest.mark.parametrize("settings", [sampling.GREEDY, sampling.Sampling(temperature=1.0, top_k=5, top_p=0.9,
                                                                          ras_window=4)])
def test_cached_generation_is_token_identical_to_recomputation(setup, settings):
  model, variables, _ = setup
  rows = random_rows(np.random.default_rng(3), 3)
  prompt = valle.pack([{**r, "codes": r["codes"][:r["prompt_frames"]]} for r in rows], 16, BINS)
  ar_prompt = {k: prompt[k] for k in ("text", "languages", "audio", "text_lengths")} | {"lengths": prompt["ar_lengths"]}
  max_new = jnp.asarray([12, 5, 12])
  runs = [codec_lm.generate_first_codebook(model, variables, ar_prompt, max_new, jax.random.PRNGKey(7), max_steps=12,
                                           sampling=settings, use_cache=cache) for cache in (True, False)]
  for key in ("tokens", "counts", "ended"):
    np.testing.assert_array_equal(runs[0][key], runs[1][key])
  counts = np.asarray(runs[0]["counts"])
  assert counts[1] <= 5 and (counts <= 12).all() and counts.sum() > 3
  for b in range(3):  # tokens up to the count, -1 after; a row that stops early without EOS hit its cap
    assert (np.asarray(runs[0]["tokens"][b, :counts[b]]) >= 0).all()
    assert (np.asarray(runs[0]["tokens"][b, counts[b]:]) == -1).all()
    assert runs[0]["ended"][b] or counts[b] == max_new[b]


def test_eos_stops_a_row():
  """A model whose head always prefers EOS stops at once; one that never does runs to its cap."""
  model = tiny_model(depth=1)
  variables = nn.meta.unbox(model.init(jax.random.PRNGKey(0), *valle.example_inputs(model)))
  rows = random_rows(np.random.default_rng(4), 2)
  prompt = valle.pack([{**r, "codes": r["codes"][:r["prompt_frames"]]} for r in rows], 16, BINS)
  ar_prompt = {k: prompt[k] for k in ("text", "languages", "audio", "text_lengths")} | {"lengths": prompt["ar_lengths"]}
  for bias, ended, counts in ((50.0, True, 0), (-50.0, False, 6)):
    params = jax.tree.map(lambda x: x, variables["params"])
    params["ar"]["head"]["bias"] = params["ar"]["head"]["bias"].at[valle.eos_id(BINS)].set(bias)
    out = codec_lm.generate_first_codebook(model, {"params": params}, ar_prompt, jnp.asarray([6, 6]),
                                           jax.random.PRNGKey(0), max_steps=8, sampling=sampling.GREEDY)
    assert list(np.asarray(out["ended"])) == [ended] * 2 and list(np.asarray(out["counts"])) == [counts] * 2


def test_nar_fill_keeps_the_prompt_and_codebook_one(setup):
  model, variables, _ = setup
  rows = random_rows(np.random.default_rng(5), 2)
  packed = valle.pack(rows, 24, BINS)
  given = packed["codes"].copy()
  target = np.zeros_like(given, bool)
  for b, r in enumerate(rows):
    t = packed["text_lengths"][b]
    target[b, t + r["prompt_frames"]:packed["lengths"][b], 1:] = True
  given[target] = 0
  filled = np.asarray(codec_lm.fill_codebooks(model, variables, {**packed, "codes": given}))
  np.testing.assert_array_equal(filled[~target], given[~target])
  # each stage is the argmax of the NAR given the stages before it
  stage2 = model.apply(variables, packed["text"], packed["languages"], filled, packed["text_lengths"],
                       packed["prompt_frames"], packed["lengths"], np.full(2, 2, np.int32), method="nar_logits")
  np.testing.assert_array_equal(filled[..., 2][target[..., 2]], np.argmax(stage2, -1)[target[..., 2]])


# --- samplers ------------------------------------------------------------------------------------------------------
def test_filter_logits_matches_numpy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 30)).astype(np.float32)
  for top_k, top_p in ((5, 1.0), (0, 0.7), (8, 0.5), (0, 0.0)):
    out = np.asarray(sampling.filter_logits(jnp.asarray(logits), top_k, top_p))
    for row, kept in zip(logits, np.isfinite(out)):
      order = np.argsort(-row)
      allowed = np.zeros(30, bool)
      allowed[order[:top_k or 30]] = True
      probs = np.where(allowed, np.exp(row - row.max()), 0.0)  # top-p acts on the top-k's renormalised distribution
      probs /= probs.sum()
      cumulative = 0.0
      nucleus = np.zeros(30, bool)
      for i in order:  # the smallest set of most likely tokens whose probability reaches top_p
        nucleus[i] = True
        cumulative += probs[i]
        if cumulative >= top_p:
          break
      np.testing.assert_array_equal(kept, allowed & (nucleus if top_p < 1 else True))


def test_sample_follows_the_distribution():
  probs = np.array([0.5, 0.3, 0.15, 0.05])
  logits = jnp.log(jnp.asarray(np.tile(probs, (20000, 1)), jnp.float32))
  tokens = np.asarray(sampling.sample(jax.random.PRNGKey(0), logits))
  np.testing.assert_allclose(np.bincount(tokens, minlength=4) / 20000, probs, atol=0.015)
  top2 = np.asarray(sampling.sample(jax.random.PRNGKey(1), logits, top_k=2))
  np.testing.assert_allclose(np.bincount(top2, minlength=4) / 20000, [0.625, 0.375, 0, 0], atol=0.015)


def test_repetition_aware_sampling_breaks_a_loop_nucleus_sampling_falls_into():
  """Logits that always favour the same token (p = 0.6): nucleus sampling with top_p 0.5 repeats it forever; VALL-E
  2's repetition-aware sampling (window 10, threshold 0.1) redraws from the full distribution when it repeats."""
  logits = jnp.log(jnp.asarray([[0.6] + [0.4 / 15] * 15], jnp.float32))

  def run(settings):
    history, tokens, key = jnp.full((1, 10), -1, jnp.int32), [], jax.random.PRNGKey(0)
    for _ in range(200):
      key, sub = jax.random.split(key)
      token = sampling.sample_tokens(sub, logits, history, settings)
      history = sampling.push_history(history, token)
      tokens.append(int(token[0]))
    return np.asarray(tokens)

  def longest_run(tokens):
    best = current = 1
    for a, b in zip(tokens[:-1], tokens[1:]):
      current = current + 1 if a == b else 1
      best = max(best, current)
    return best

  nucleus = run(sampling.Sampling(top_p=0.5))
  ras = run(sampling.Sampling(top_p=0.5, ras_window=10, ras_threshold=0.1))
  assert (nucleus == 0).all()
  # once the token repeats, each step draws from the full distribution (token 0 at 0.6): runs stay short (the
  # expected longest of 200 is about 9) and the other tokens appear
  assert longest_run(nucleus) == 200 and longest_run(ras) < 20
  assert 0.4 < (ras == 0).mean() < 0.8 and len(set(ras)) > 8
