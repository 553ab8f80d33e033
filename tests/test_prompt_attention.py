"""Cross-attention weights recomputed from captured queries (experiments/prompt_asr/studies/prompt_attention.py)
are the ones used."""
import flax.linen as nn
import jax
import numpy as np

from audiojax.models import prompt_asr
from audiojax.text import prompts
from experiments.prompt_asr.studies.prompt_attention import (
  cross_attention_weights,
  mass_on,
)

SMALL = dict(num_layers=2, embed_dim=64, num_heads=2, ff_dim=128, text_dim=48, text_layers=1, text_heads=2,
             pred_dim=32, joiner_dim=32, conv_kernel=7, cross_attention_layers=(1,))


def test_weights_rebuild_each_crossing_layers_output_and_ignore_padding():
  model = prompt_asr.Model("tiny", vocab_size=40, **SMALL)
  rng = np.random.default_rng(0)
  wave = (rng.standard_normal((2, 8000)) * 0.1).astype(np.float32)
  wave_lengths = np.array([8000, 5000], np.int32)
  ids, lengths, style_lengths = prompts.encode_prompts([("UPPER CASE", "the story of Zorbakin"), ("Mixed.", "Tom")],
                                                       48)
  variables = model.init({"params": jax.random.key(0), "dropout": jax.random.key(1)}, wave, wave_lengths, ids,
                         lengths, style_lengths)
  weights, enc_lengths, outputs = cross_attention_weights(model, variables, wave, wave_lengths, ids, lengths,
                                                          style_lengths)
  assert list(weights) == ["layer1"]  # only the crossing layer
  w = weights["layer1"]
  assert w.shape == (2, 2, outputs["layer1"].shape[1], 48)
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
  assert np.all(w[1, :, :, int(lengths[1]):] == 0.0)
  params = nn.meta.unbox(variables)["params"]["layer1"]["cross_attn"]
  memory = model.apply(variables, ids, lengths, style_lengths, method="encode_prompt")
  v = np.einsum("bmd,dhe->bmhe", np.asarray(memory), np.asarray(params["v_kernel"]))
  rebuilt = np.einsum("bhtm,bmhe,hed->btd", w, v, np.asarray(params["out_kernel"]))
  np.testing.assert_allclose(rebuilt, outputs["layer1"], rtol=1e-4, atol=1e-6)
  everything = np.arange(48)[None, :] < lengths[:, None]
  np.testing.assert_allclose(mass_on(w, everything, enc_lengths)["mean"], 1.0, rtol=1e-5)


def test_mass_on_averages_valid_frames_then_items():
  w = np.zeros((2, 1, 3, 4))
  w[0, 0, :, 1] = [0.5, 0.1, 0.9]  # item 0: all 3 frames valid
  w[1, 0, :, 2] = [0.2, 0.4, 1.0]  # item 1: 2 valid frames; the third must not count
  positions = np.array([[False, True, False, False], [False, False, True, False]])
  got = mass_on(w, positions, np.array([3, 2]))
  np.testing.assert_allclose(got["mean"], [(0.5 + 0.1 + 0.9) / 3 / 2 + (0.2 + 0.4) / 2 / 2])
  np.testing.assert_allclose(got["max"], [(0.9 + 0.4) / 2])
