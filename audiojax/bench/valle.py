"""VALL-E decoding speed: the AR decoder with its KV cache against full recomputation in one run, and the real-time
factor of the whole synthesis (AR, NAR, codec decoder).

``python -m audiojax bench valle [--tokens 500]`` builds the ``variant`` model (random weights; EOS made impossible,
so every row runs ``tokens`` steps), a prompt of 60 phonemes and 150 frames (3 s at 50 Hz, 6 codebooks), and times
greedy generation of ``tokens`` codebook-1 tokens (:func:`audiojax.decoding.codec_lm.generate_first_codebook`) with
and without the cache (the best of ``repeats`` after a compiling call), checking that both give the same tokens.
The real-time factor adds the NAR's five greedy passes and the ``tiny`` codec's decoder on the generated frames:
seconds of compute per second of audio (below 1 is faster than real time).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from audiojax.bench.timing import best_seconds
from audiojax.decoding import codec_lm
from audiojax.decoding.sampling import GREEDY
from audiojax.inference.codec import Coder
from audiojax.models import codec, valle

N_Q, BINS, PROMPT_FRAMES, PHONEMES = 6, 1024, 150, 60


def _model(variant: str, **overrides):
  model = valle.Model(variant, text_vocab=100, num_languages=2, n_q=N_Q, bins=BINS, **overrides)
  variables = nn.meta.unbox(model.init(jax.random.PRNGKey(0), *valle.example_inputs(model)))
  bias = variables["params"]["ar"]["head"]["bias"]
  variables["params"]["ar"]["head"]["bias"] = bias.at[valle.eos_id(BINS)].set(-1e9)  # never stop early
  return model, variables


def _prompt(batch: int) -> dict:
  rng = np.random.default_rng(0)
  rows = [{"phonemes": rng.integers(4, 100, PHONEMES), "languages": np.zeros(PHONEMES, np.int32),
           "codes": rng.integers(0, BINS, (PROMPT_FRAMES, N_Q)), "prompt_frames": PROMPT_FRAMES}
          for _ in range(batch)]
  return rows


def main(variant: str = "tiny", tokens: int = 500, repeats: int = 2, batch: int = 1, **overrides) -> dict:
  model, variables = _model(variant, **overrides)
  rows = _prompt(batch)
  packed = valle.pack(rows, PHONEMES + PROMPT_FRAMES + 1, BINS)
  prompt = {k: jnp.asarray(packed[k]) for k in ("text", "languages", "audio", "text_lengths")} | {
      "lengths": jnp.asarray(packed["ar_lengths"])}
  max_new = jnp.full((batch,), tokens, jnp.int32)
  key = jax.random.PRNGKey(0)

  def run(use_cache: bool):
    return codec_lm.generate_first_codebook(model, variables, prompt, max_new, key, max_steps=tokens,
                                            sampling=GREEDY, use_cache=use_cache)

  cached_out, full_out = run(True), run(False)
  same = bool(np.array_equal(np.asarray(cached_out["tokens"]), np.asarray(full_out["tokens"])))
  cached = best_seconds(lambda: run(True), repeats)
  full = best_seconds(lambda: run(False), max(1, repeats - 1))

  codec_model = codec.Model("tiny", n_q=N_Q, bins=BINS, bandwidths=(3.0,))
  coder = Coder(codec_model, nn.meta.unbox(codec_model.init(jax.random.PRNGKey(1),
                                                            *codec.example_inputs(codec_model))))
  generated = np.asarray(cached_out["tokens"])

  def synthesize():
    first = run(True)["tokens"]
    nar_rows = [{**r, "codes": np.concatenate([r["codes"], np.pad(np.asarray(t)[:, None], ((0, 0), (0, N_Q - 1)))])}
                for r, t in zip(rows, np.asarray(first))]
    nar = valle.pack(nar_rows, PHONEMES + PROMPT_FRAMES + tokens + 1, BINS)
    codes = codec_lm.fill_codebooks(model, variables, nar)
    target = np.asarray(codes)[:, PHONEMES + PROMPT_FRAMES:PHONEMES + PROMPT_FRAMES + tokens].transpose(0, 2, 1)
    return coder.decode_batch(target)

  total = best_seconds(synthesize, repeats)
  audio_seconds = tokens / codec_model.frame_rate
  results = {"variant": variant, "tokens": tokens, "batch": batch, "cached_s": cached, "full_s": full,
             "speedup": full / cached, "tokens_per_s": batch * tokens / cached, "identical": same,
             "rtf": total / audio_seconds, "generated": int((generated >= 0).sum())}
  print(f"VALL-E {variant} (AR {valle.count_params(variables['params']['ar']) / 1e6:.1f}M params), batch {batch}, "
        f"{tokens} greedy tokens after a {PHONEMES}-phoneme, {PROMPT_FRAMES}-frame prompt on "
        f"{jax.devices()[0].platform}:")
  print(f"  KV cache           {cached:8.3f} s  ({results['tokens_per_s']:.0f} tokens/s)")
  print(f"  full recomputation {full:8.3f} s  → cache speed-up {results['speedup']:.1f}×; same tokens: {same}")
  print(f"  synthesis (AR + NAR {N_Q - 1} passes + tiny codec decoder) {total:.3f} s for {audio_seconds:.1f} s of "
        f"audio: real-time factor {results['rtf']:.3f}")
  return results
