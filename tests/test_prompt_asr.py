"""PromptASR model: the prompt path's invariances, padding, the training batch maths and WER."""
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.eval.wer import edit_distance, wer
from audiojax.models import prompt_asr
from audiojax.nn.conformer import DepthwiseConv1D
from audiojax.tasks.asr import predictor_contexts, rare_word_hits
from audiojax.text import prompts, styles

SMALL = dict(num_layers=2, embed_dim=64, num_heads=2, ff_dim=128, text_dim=48, text_layers=1, text_heads=2,
             pred_dim=32, joiner_dim=32, conv_kernel=7)


@pytest.fixture(scope="module")
def setup():
  model = prompt_asr.Model("tiny", vocab_size=40, **SMALL)
  rng = np.random.default_rng(0)
  wave = (rng.standard_normal((3, 12000)) * 0.1).astype(np.float32)
  wave_lengths = np.array([12000, 7000, 9100], np.int32)
  wave[1, 7000:] = 0.0
  wave[2, 9100:] = 0.0
  ids, lengths, style_lengths = prompts.encode_prompts(
      [("UPPER CASE", "the story of Zorbakin"), ("Mixed, case.", "Tom"), ("", "")], 64)
  variables = jax.jit(model.init)({"params": jax.random.key(0), "dropout": jax.random.key(1)}, wave, wave_lengths,
                                  ids, lengths, style_lengths)
  return model, variables, wave, wave_lengths, ids, lengths, style_lengths


def _speech(model, variables, wave, wave_lengths, memory, memory_lengths):
  return _apply(model, "encode_speech")(variables, wave, wave_lengths, memory, memory_lengths)[0]


_JITTED = {}


def _apply(model, method):
  """``model.apply(..., method=method)`` compiled once per (model, method) and shape."""
  key = (id(model), method)
  if key not in _JITTED:
    _JITTED[key] = jax.jit(lambda variables, *args: model.apply(variables, *args, method=method))
  return _JITTED[key]


def test_zero_memory_is_exactly_no_memory(setup):
  model, variables, wave, wl, ids, lengths, sl = setup
  memory = _apply(model, "encode_prompt")(variables, ids, lengths, sl)
  none = _speech(model, variables, wave, wl, None, None)
  zero = _speech(model, variables, wave, wl, jnp.zeros_like(memory), lengths)
  empty = _speech(model, variables, wave, wl, memory, jnp.zeros_like(lengths))  # an all-masked prompt
  assert bool(jnp.all(zero == none)) and bool(jnp.all(empty == none))
  assert not bool(jnp.any(jnp.isnan(empty)))
  with_prompt = _speech(model, variables, wave, wl, memory, lengths)
  assert float(jnp.max(jnp.abs(with_prompt[0] - none[0]))) > 1e-3  # the prompt is used


def test_masked_prompt_padding_changes_nothing(setup):
  model, variables, wave, wl, ids, lengths, sl = setup
  memory = _apply(model, "encode_prompt")(variables, ids, lengths, sl)
  padded_ids = np.asarray(ids).copy()
  for b, n in enumerate(np.asarray(lengths)):
    padded_ids[b, n:] = np.random.default_rng(b).integers(0, 256, padded_ids.shape[1] - n)
  memory2 = _apply(model, "encode_prompt")(variables, padded_ids, lengths, sl)
  np.testing.assert_allclose(memory, memory2, atol=1e-6)
  np.testing.assert_allclose(_speech(model, variables, wave, wl, memory, lengths),
                             _speech(model, variables, wave, wl, memory2, lengths), atol=1e-5)


def test_batched_equals_alone(setup):
  model, variables, wave, wl, ids, lengths, sl = setup
  memory = _apply(model, "encode_prompt")(variables, ids, lengths, sl)
  batched, enc_lengths = _apply(model, "encode_speech")(variables, wave, wl, memory, lengths)
  n, m = int(wl[1]), int(lengths[1])
  alone, alone_lengths = _apply(model, "encode_speech")(variables, wave[1:2, :n], wl[1:2], memory[1:2, :m],
                                                        lengths[1:2])
  assert int(alone_lengths[0]) == int(enc_lengths[1]) == alone.shape[1]
  np.testing.assert_allclose(alone[0], batched[1, :alone.shape[1]], atol=2e-5)
  assert bool(jnp.all(batched[1, alone.shape[1]:] == 0))


def test_memory_dropout_drops_whole_prompts(setup):
  model, variables, wave, wl, ids, lengths, sl = setup
  dropping = prompt_asr.Model("tiny", vocab_size=40, **SMALL, memory_dropout=1.0, dropout=0.0, spec_augment=False)
  out = jax.jit(lambda v: dropping.apply(v, wave, wl, ids, lengths, sl, train=True,
                                         rngs={"dropout": jax.random.key(3)}))(variables)
  none = _speech(model, variables, wave, wl, None, None)
  np.testing.assert_allclose(out["encoder_out"], none, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [7, 4])
def test_depthwise_conv_is_the_grouped_convolution(kernel_size):
  """The shifted-sum depthwise convolution equals XLA's grouped convolution with "SAME" padding (odd and even
  kernels), in value and in both gradients, and keeps ``nn.Conv``'s parameter shapes and initial values."""
  x = jax.random.normal(jax.random.key(0), (2, 19, 6))
  conv = DepthwiseConv1D(kernel_size)
  params = conv.init(jax.random.key(1), x)
  reference = nn.Conv(6, (kernel_size,), feature_group_count=6, padding="SAME")
  ref_params = reference.init(jax.random.key(1), x)
  unboxed = nn.meta.unbox(params)
  assert jax.tree.map(jnp.shape, unboxed) == jax.tree.map(jnp.shape, ref_params)
  np.testing.assert_array_equal(unboxed["params"]["kernel"], ref_params["params"]["kernel"])
  unboxed["params"]["bias"] = jnp.linspace(-1.0, 1.0, 6)
  loss = lambda module: lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  np.testing.assert_allclose(conv.apply(unboxed, x), reference.apply(unboxed, x), atol=1e-5)
  grads, ref_grads = jax.grad(loss(conv), (0, 1))(unboxed, x), jax.grad(loss(reference), (0, 1))(unboxed, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5), grads, ref_grads)


def test_subsampled_lengths_match_the_encoder():
  frames = jnp.arange(1, 60)
  expected = [int(np.ceil(np.ceil(t / 2) / 2)) for t in range(1, 60)]
  assert prompt_asr.subsampled_lengths(frames).tolist() == expected


def test_predictor_contexts_are_the_previous_tokens():
  labels = jnp.array([[5, 6, 7], [8, 9, 0]])
  ctx = predictor_contexts(labels, 2)
  assert ctx.shape == (2, 4, 2)
  assert ctx[0].tolist() == [[0, 0], [0, 5], [5, 6], [6, 7]]
  assert ctx[1, :3].tolist() == [[0, 0], [0, 8], [8, 9]]


def test_wer_and_rare_word_hits():
  assert edit_distance("a b c d".split(), "a x c".split()) == 2
  assert wer(["a b c d", "e f"], ["a x c", "e f g"]) == pytest.approx(3 / 6)
  assert rare_word_hits("I met ZORBAKIN today.", "Zorbakin") == (1, 1)
  assert rare_word_hits("I met Zorbakyn today.", "Zorbakin") == (0, 1)
  assert rare_word_hits("Zorbakin's coat.", "Zorbakin Tesszar") == (1, 2)


def test_respelled_names_agree_in_transcript_prompt_and_list(tmp_path):
  """Prompt-decidable spellings: the target and the content prompt carry the same new spelling; prob 0 is a no-op."""
  from audiojax.tasks.asr import TrainingBatch, respell_rare_words
  from audiojax.text.respell import respellings
  from audiojax.text.tokenizer import train_bpe

  text, pre_text = "Kaludor's house stands by the river.", "Everyone in town knew Kaludor. He sang."
  rng = np.random.default_rng(0)
  assert respell_rare_words(rng, text, pre_text, "Kaludor", 0.0) == (text, pre_text, "Kaludor")
  seen = set()
  for _ in range(20):
    new_text, new_pre, new_list = respell_rare_words(rng, text, pre_text, "Kaludor", 1.0)
    assert new_list in respellings("Kaludor")
    assert new_text == text.replace("Kaludor", new_list) and new_pre == pre_text.replace("Kaludor", new_list)
    seen.add(new_list)
  assert len(seen) > 1

  tokenizer = train_bpe([text, pre_text] * 20 + [" ".join(respellings("Kaludor"))] * 5, str(tmp_path / "bpe"), 300)
  batcher = TrainingBatch(tokenizer, max_tokens=96, max_prompt_length=256, style_weights=(("mixed-punc", 1.0),),
                          canonical_prob=1.0, content_mode="pre_text", distractors=(), max_samples=160,
                          respell_prob=1.0)
  rows = [{"wave": np.zeros(160, np.float32), "wave_length": np.int32(160), "text": text, "pre_text": pre_text,
           "rare_words": "Kaludor", "id": str(i)} for i in range(8)]
  batch = batcher(rows, np.random.default_rng(1))
  agree = 0
  for b in range(8):
    target = batcher.tokenizer.decode(batch["labels"][b][:batch["label_lengths"][b]].tolist())
    spelling = target.split("'")[0]
    assert spelling in respellings("Kaludor")
    _, content = prompts.decode_prompt(batch["prompt_ids"][b], int(batch["prompt_lengths"][b]))
    agree += content == pre_text.replace("Kaludor", spelling)
  assert agree >= 6  # a row's content prompt is blanked or swapped with another row's 5 % of the time each


def test_twin_pairs_share_audio_and_prompts_but_not_the_spelling(tmp_path):
  """twin_share: a recording twice, its name spelled as recorded and respelled, the same style and style prompt, and a
  content prompt that names each twin's own spelling (never the other's); the batch keeps its size."""
  from audiojax.tasks.asr import TrainingBatch
  from audiojax.text.respell import respellings
  from audiojax.text.tokenizer import train_bpe

  text, pre_text = "Kaludor's house stands by the river.", "Everyone in town knew Kaludor. He sang."
  spellings = ["Kaludor", *respellings("Kaludor")]
  tokenizer = train_bpe([text, pre_text] * 20 + [" ".join(spellings)] * 5, str(tmp_path / "bpe"), 300)
  rows = [{"wave": np.full(160, i, np.float32), "wave_length": np.int32(160), "text": text, "pre_text": pre_text,
           "rare_words": "Kaludor", "id": str(i)} for i in range(8)]
  for share, pairs in ((1.0, 4), (0.5, 2)):
    batcher = TrainingBatch(tokenizer, max_tokens=96, max_prompt_length=256,
                            style_weights=(("mixed-punc", 0.5), ("upper-no-punc", 0.5)), canonical_prob=0.3,
                            content_mode="mix", distractors=("Tesszar", "Kaludor", "Caludor", "Morvent", "Ilsabe"),
                            max_samples=160, twin_share=share)
    for seed in range(5):
      batch = batcher(rows, np.random.default_rng(seed))
      assert batch["wave"].shape == (8, 160)
      targets = [batcher.tokenizer.decode(batch["labels"][b][:batch["label_lengths"][b]].tolist()) for b in range(8)]
      decoded = [prompts.decode_prompt(batch["prompt_ids"][b], int(batch["prompt_lengths"][b])) for b in range(8)]
      for b in range(0, 2 * pairs, 2):
        assert batch["wave"][b, 0] == batch["wave"][b + 1, 0]
        (first, style), (second, second_style) = (
            next((sp.lower(), st) for sp in spellings for st in ("mixed-punc", "upper-no-punc")
                 if t == styles.apply_style(text.replace("Kaludor", sp), st)) for t in targets[b:b + 2])
        assert first == "kaludor" and second != first and style == second_style
        either = "|".join(sorted({first, second}, key=len, reverse=True))
        unnamed = [re.sub(rf"(?i){either}", "NAME", d[0]) for d in decoded[b:b + 2]]
        assert unnamed[0] == unnamed[1]  # the same style prompt, up to the spelling
        for (_, content), own, other in ((decoded[b], first, second), (decoded[b + 1], second, first)):
          words = set(re.findall(r"[a-z]+", content.lower()))
          assert own in words and other not in words
      singles = [batch["wave"][b, 0] for b in range(2 * pairs, 8)]
      assert len(set(singles)) == len(singles) and not set(singles) & {batch["wave"][b, 0] for b in range(2 * pairs)}
