"""Frozen BERT prompt encoder: WordPiece and BertModel equal Hugging Face's, the converter, and the PromptASR plug-in.

``fixtures/bert_tiny_parity.npz`` was recorded once with transformers 5.23.0 / torch 2.13 (installed in a throwaway
``pip install --target`` directory, never a dependency): a ``BertModel(BertConfig(vocab_size=129, hidden_size=32,
num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64))`` with every
parameter redrawn from ``torch.Generator().manual_seed(0)`` (weights and biases N(0, 0.2²), LayerNorm scales
1 + N(0, 0.2²)), saved by ``save_pretrained``; a hand-written cased ``vocab.txt``; ``BertTokenizerLegacy`` (the Python
``BertTokenizer`` of transformers 4.x) tokens and ids of 21 tricky strings for both ``do_lower_case`` values (the
fast tokenizer's too); the eager-attention ``last_hidden_state`` (and the ``gelu_new`` one) of the recipe's input
``style + " [SEP] " + content`` for three (style, content) pairs, padded with an attention mask.
"""
import dataclasses
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from audiojax.convert import bert as convert_bert
from audiojax.errors import UserError
from audiojax.models import bert, prompt_asr
from audiojax.tasks import registry
from audiojax.text import prompts
from audiojax.text.prompts import PromptEncoding
from audiojax.text.wordpiece import WordPiece

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "bert_tiny_parity.npz"))
VOCAB = [str(t) for t in FIXTURE["vocab"]]
STATE_DICT = {k[3:]: FIXTURE[k] for k in FIXTURE.files if k.startswith("sd/")}
HF_CONFIG = json.loads(str(FIXTURE["config_json"]))
TOKENS = json.loads(str(FIXTURE["tokenizations_json"]))
PAIRS = [tuple(str(x) for x in p) for p in FIXTURE["pairs"]]


def write_hf_dir(path, state_dict=STATE_DICT, config=HF_CONFIG, weights="model.safetensors"):
  """A Hugging Face BERT directory as save_pretrained writes it (plus the vocabulary)."""
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(VOCAB) + "\n")
  if weights.endswith(".safetensors"):
    save_file({k: np.ascontiguousarray(v) for k, v in state_dict.items()}, os.path.join(path, weights))
  else:
    import torch
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in state_dict.items()}, os.path.join(path, weights))
  return str(path)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
  """The fixture's tiny BERT converted through the CLI."""
  from audiojax import cli
  root = tmp_path_factory.mktemp("bert")
  hf = write_hf_dir(root / "hf")
  cli.main(["convert", "bert", "--hf-dir", hf, "--out", str(root / "converted")])
  return str(root / "converted")


# --- WordPiece -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lower", [0, 1])
def test_wordpiece_equals_hugging_face(lower):
  wp = WordPiece(VOCAB, do_lower_case=bool(lower))
  for i, text in enumerate(FIXTURE["strings"]):
    assert wp.tokenize(str(text)) == TOKENS[f"legacy/lower={lower}"][i], repr(text)
    assert [wp.cls_id, *wp.encode(str(text)), wp.sep_id] == TOKENS[f"legacy/ids/lower={lower}"][i]
  # the tricky cases are really exercised: unknown words, >100-char words, CJK, accents
  flat = sum(TOKENS[f"legacy/lower={lower}"], [])
  assert "[UNK]" in flat and "中" in flat and any(t.startswith("##") for t in flat)


def test_lower_case_is_read_or_inferred(tmp_path):
  assert not WordPiece(VOCAB).do_lower_case  # a cased vocabulary (bert-base-cased)
  assert WordPiece([t if t.startswith("[") else t.lower() for t in VOCAB]).do_lower_case
  write_hf_dir(tmp_path)
  assert not WordPiece.from_dir(str(tmp_path)).do_lower_case
  (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true, "model_max_length": 512}')
  wp = WordPiece.from_dir(str(tmp_path))
  assert wp.do_lower_case and wp.tokenize("Café") == ["cafe"]


def test_encode_prompt_is_the_recipe_input_and_style_span():
  """``[CLS] style [SEP] content [SEP]`` = HF's tokenization of ``style + " [SEP] " + content``, and style_length
  = the recipe's style_lens (tokens of the style alone, [CLS] and [SEP] included)."""
  wp = WordPiece(VOCAB)
  m = FIXTURE["input_ids"].shape[1]
  ids, lengths, style_lengths = wp.encode_prompts(PAIRS, m)
  np.testing.assert_array_equal(ids, FIXTURE["input_ids"])
  np.testing.assert_array_equal(lengths, FIXTURE["attention_mask"].sum(1))
  np.testing.assert_array_equal(style_lengths, FIXTURE["style_lens"])


def test_encode_prompt_truncation_keeps_the_content_end():
  wp = WordPiece(VOCAB)
  style, content = "The story of the world", "hello world Zorbakin tom stop yes no mixed text the end"
  s, c = wp.tokenize(style), wp.tokenize(content)
  assert len(s) == 5 and "##bak" in c
  for max_tokens in range(3, len(s) + len(c) + 6):
    ids, length, style_length = wp.encode_prompt(style, content, max_tokens)
    pieces = [VOCAB[i] for i in ids[:length]]
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and all(VOCAB[i] == "[PAD]" for i in ids[length:])
    assert pieces[style_length - 1] == "[SEP]" and "[SEP]" not in pieces[1:style_length - 1]
    kept_style, kept_content = pieces[1:style_length - 1], pieces[style_length:-1]
    room = max_tokens - 3
    if len(s) + len(c) <= room:
      assert (kept_style, kept_content) == (s, c)
      continue
    cap = max(min(max_tokens // 4, room), room - len(c))  # style: its beginning, up to max_tokens // 4
    assert kept_style == s[:cap]
    tail = c[len(c) - (room - len(kept_style)):] if room > len(kept_style) else []
    while tail and tail[0].startswith("##"):  # content: its end, from a whole word
      tail = tail[1:]
    assert kept_content == tail and kept_content == c[len(c) - len(kept_content):]
    assert length <= max_tokens
  with pytest.raises(UserError, match="max_tokens=2"):
    wp.encode_prompt("a", "b", 2)


# --- BertModel parity and conversion -------------------------------------------------------------------------------
@pytest.mark.parametrize("act", ["gelu", "gelu_new"])
def test_converted_bert_reproduces_hugging_face(bert_dir, act):
  config, variables = convert_bert.load(bert_dir)
  assert config == bert.BertConfig.from_dict(HF_CONFIG)
  model = bert.Bert(dataclasses.replace(config, hidden_act=act), attention_impl="xla")
  ids, mask = FIXTURE["input_ids"], FIXTURE["attention_mask"].astype(bool)
  with jax.default_matmul_precision("highest"):
    out = np.asarray(jax.jit(model.apply)(variables, ids, mask.sum(1)))
  want = FIXTURE["last_hidden_state" if act == "gelu" else "last_hidden_state_gelu_new"]
  np.testing.assert_allclose(out[mask], want[mask], atol=1e-5, rtol=0)
  assert np.all(out[~mask] == 0) and want[mask].std() > 0.5
  other = FIXTURE["last_hidden_state_gelu_new" if act == "gelu" else "last_hidden_state"]
  assert np.abs(out[mask] - other[mask]).max() > 1e-4  # the two activations are told apart


def test_pytorch_bin_with_prefix_heads_and_old_names_converts_the_same(bert_dir, tmp_path):
  pytest.importorskip("torch")
  sd = {}
  for name, value in STATE_DICT.items():
    name = "bert." + name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
    sd[name] = value
  sd["cls.predictions.bias"] = np.zeros(len(VOCAB), np.float32)  # BertForMaskedLM's head: ignored
  sd["cls.predictions.decoder.weight"] = STATE_DICT["embeddings.word_embeddings.weight"]
  sd["bert.embeddings.position_ids"] = np.arange(64)[None]
  hf = write_hf_dir(tmp_path / "hf", sd, weights="pytorch_model.bin")
  convert_bert.convert(hf, str(tmp_path / "out"))
  _, a = convert_bert.load(str(tmp_path / "out"))
  _, b = convert_bert.load(bert_dir)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def test_bad_checkpoints_are_clear_errors(tmp_path):
  config = bert.BertConfig.from_dict(HF_CONFIG)
  missing = {k: v for k, v in STATE_DICT.items() if k != "encoder.layer.1.intermediate.dense.bias"}
  with pytest.raises(UserError, match="lacks 'encoder.layer.1.intermediate.dense.bias'"):
    convert_bert.to_variables(missing, config)
  wrong = {**STATE_DICT, "encoder.layer.0.attention.self.key.weight": np.zeros((32, 16), np.float32)}
  with pytest.raises(UserError, match="'encoder.layer.0.attention.self.key.weight' of shape \\(32, 16\\)"):
    convert_bert.to_variables(wrong, config)
  extra = {**STATE_DICT, "encoder.layer.2.output.dense.bias": np.zeros(32, np.float32)}
  with pytest.raises(UserError, match="does not use \\(encoder.layer.2.output.dense.bias\\)"):
    convert_bert.to_variables(extra, config)
  with pytest.raises(UserError, match="hidden_act 'swish' is not supported"):
    bert.BertConfig.from_dict({**HF_CONFIG, "hidden_act": "swish"})
  with pytest.raises(UserError, match="roberta model, not BERT"):
    bert.BertConfig.from_dict({**HF_CONFIG, "model_type": "roberta"})
  hf = write_hf_dir(tmp_path / "hf")
  os.remove(os.path.join(hf, "vocab.txt"))
  with pytest.raises(UserError, match="no vocab.txt"):
    convert_bert.convert(hf, str(tmp_path / "out"))
  with pytest.raises(UserError, match="not a converted BERT directory .* convert bert --hf-dir"):
    convert_bert.load(hf)


# --- the PromptASR plug-in -----------------------------------------------------------------------------------------
SMALL = dict(num_layers=1, embed_dim=32, num_heads=2, ff_dim=64, text_dim=16, text_layers=1, text_heads=2,
             pred_dim=16, joiner_dim=16, conv_kernel=3)

# today's byte-path parameter tree of Model("tiny", vocab_size=11, **SMALL) (taken before the BERT option existed)
BYTE_TREE = """ctc_head/bias (11,)|ctc_head/kernel (32, 11)|joiner_enc/bias (16,)|joiner_enc/kernel (32, 16)|
joiner_out/bias (11,)|joiner_out/kernel (16, 11)|joiner_pred/kernel (16, 16)|layer0/conv/depthwise/bias (32,)|
layer0/conv/depthwise/kernel (3, 1, 32)|layer0/conv/norm/bias (32,)|layer0/conv/norm/scale (32,)|
layer0/conv/pointwise1/bias (64,)|layer0/conv/pointwise1/kernel (32, 64)|layer0/conv/pointwise2/bias (32,)|
layer0/conv/pointwise2/kernel (32, 32)|layer0/cross_attn/k_kernel (16, 2, 16)|layer0/cross_attn/out_kernel (2, 16, 32)|
layer0/cross_attn/q_bias (2, 16)|layer0/cross_attn/q_kernel (32, 2, 16)|layer0/cross_attn/v_kernel (16, 2, 16)|
layer0/ff1/fc1/bias (64,)|layer0/ff1/fc1/kernel (32, 64)|layer0/ff1/fc2/bias (32,)|layer0/ff1/fc2/kernel (64, 32)|
layer0/ff2/fc1/bias (64,)|layer0/ff2/fc1/kernel (32, 64)|layer0/ff2/fc2/bias (32,)|layer0/ff2/fc2/kernel (64, 32)|
layer0/norm_conv/bias (32,)|layer0/norm_conv/scale (32,)|layer0/norm_cross_attn/bias (32,)|
layer0/norm_cross_attn/scale (32,)|layer0/norm_ff1/bias (32,)|layer0/norm_ff1/scale (32,)|layer0/norm_ff2/bias (32,)|
layer0/norm_ff2/scale (32,)|layer0/norm_out/bias (32,)|layer0/norm_out/scale (32,)|layer0/norm_self_attn/bias (32,)|
layer0/norm_self_attn/scale (32,)|layer0/self_attn/proj_bias (32,)|layer0/self_attn/proj_kernel (2, 16, 32)|
layer0/self_attn/qkv_bias (3, 2, 16)|layer0/self_attn/qkv_kernel (32, 3, 2, 16)|pred_embed/embedding (11, 16)|
pred_proj/bias (16,)|pred_proj/kernel (32, 16)|prompt_encoder/block0/attn/proj_bias (16,)|
prompt_encoder/block0/attn/proj_kernel (2, 8, 16)|prompt_encoder/block0/attn/qkv_bias (3, 2, 8)|
prompt_encoder/block0/attn/qkv_kernel (16, 3, 2, 8)|prompt_encoder/block0/mlp/fc1/bias (64,)|
prompt_encoder/block0/mlp/fc1/kernel (16, 64)|prompt_encoder/block0/mlp/fc2/bias (16,)|
prompt_encoder/block0/mlp/fc2/kernel (64, 16)|prompt_encoder/block0/norm1/bias (16,)|
prompt_encoder/block0/norm1/scale (16,)|prompt_encoder/block0/norm2/bias (16,)|prompt_encoder/block0/norm2/scale (16,)|
prompt_encoder/embed/embedding (258, 16)|prompt_encoder/norm/bias (16,)|prompt_encoder/norm/scale (16,)|
prompt_encoder/pos_embed (512, 16)|prompt_encoder/style_indicator (16,)|simple_am_proj/bias (11,)|
simple_am_proj/kernel (32, 11)|simple_lm_proj/bias (11,)|simple_lm_proj/kernel (16, 11)|subsampling/conv0/bias (64,)|
subsampling/conv0/kernel (3, 3, 1, 64)|subsampling/conv1/bias (64,)|subsampling/conv1/kernel (3, 3, 64, 64)|
subsampling/out/bias (32,)|subsampling/out/kernel (1280, 32)"""


def _tree(variables):
  return {jax.tree_util.keystr(k, simple=True, separator="/"): tuple(v.shape)
          for k, v in jax.tree_util.tree_flatten_with_path(nn.meta.unbox(variables))[0]}


def _init(model, ids, lengths, style_lengths):
  wave = np.zeros((ids.shape[0], 1600), np.float32)
  return jax.eval_shape(lambda: model.init({"params": jax.random.key(0), "dropout": jax.random.key(0)}, wave,
                                           np.full(ids.shape[0], 1600), ids, lengths, style_lengths))


def test_byte_path_parameter_tree_is_unchanged():
  model = prompt_asr.Model("tiny", vocab_size=11, **SMALL)
  assert model.text_encoder == "bytes"
  tree = _tree(_init(model, *prompts.encode_prompts([("A", "b")], 16)))
  want = dict(line.rsplit(" ", 1) for line in BYTE_TREE.replace("\n", "").replace(", ", ",").split("|"))
  assert {k: str(v).replace(" ", "") for k, v in tree.items()} == {f"params/{k}": v for k, v in want.items()}


@pytest.fixture(scope="module")
def task(bert_dir, tmp_path_factory):
  """An AsrTask with text_encoder="bert" (tiny BERT, tiny speech model, a small BPE tokenizer), no dataset."""
  from audiojax.config import prompt_asr as prompt_asr_config
  from audiojax.tasks.asr import AsrTask
  from audiojax.text.tokenizer import train_bpe
  words = "The story of Zorbakin, hello world. Tom met a pilot in the garden; did you see UPPER CASE".split()
  path = str(tmp_path_factory.mktemp("bpe") / "bpe.model")
  train_bpe([" ".join(words[(i * 7 + j) % len(words)] for j in range(8)) for i in range(200)], path, 300)
  c = prompt_asr_config.asr()
  c.tokenizer.path = path
  c.model.overrides = SMALL
  c.model.text_encoder = "bert"
  c.model.bert_dir = bert_dir
  c.data.max_prompt_tokens = 24
  c.data.max_seconds = 0.5
  c.data.max_tokens = 12
  c.train.batch_size = 8
  c.train.steps = 10
  c.optim.warmup_steps = 0
  c.loss.prune_range = 0
  c.mesh = {"data": 1, "fsdp": -1, "tensor": 1}  # the frozen BERT's "embed" axis is sharded over fsdp
  return AsrTask(c), c


def _batch(task, n=8):
  rng = np.random.default_rng(0)
  b = task.example_batch(n)
  b["wave"] = (rng.standard_normal(b["wave"].shape) * 0.1).astype(np.float32)
  b["wave_lengths"] = rng.integers(4000, b["wave"].shape[1] + 1, n).astype(np.int32)
  b["labels"][:, :5] = rng.integers(3, task.tokenizer.vocab_size, (n, 5))
  b["label_lengths"][:] = 5
  pairs = [("Mixed case.", "The story of Zorbakin, hello world."), ("", "tom"), ("UPPER CASE", ""), ("", "")] * 2
  b["prompt_ids"], b["prompt_lengths"], b["style_lengths"] = task.encode_prompts(pairs[:n])
  return b


@pytest.fixture(scope="module")
def variables(task):
  """The task's initial variables (one compilation): random speech model, converted BERT in "frozen"."""
  t, _ = task
  key = jax.random.key(0, impl="unsafe_rbg")  # compiles in half the time of threefry; the values do not matter
  return jax.device_get(nn.meta.unbox(jax.jit(t.init_variables)(key, _batch(t, 4))))


def test_bert_prompts_and_frozen_weights_in_the_task(task, variables, bert_dir):
  t, _ = task
  ids, lengths, style_lengths = t.encode_prompts(PAIRS)
  np.testing.assert_array_equal(ids[:, :FIXTURE["input_ids"].shape[1]], FIXTURE["input_ids"])
  np.testing.assert_array_equal(style_lengths, FIXTURE["style_lens"])
  assert set(variables) == {"params", "frozen"}
  assert not any("bert" in k for k in _tree(variables["params"]))
  assert _tree(variables["params"])["prompt_encoder/style_indicator"] == (32,)
  np.testing.assert_array_equal(variables["params"]["prompt_encoder"]["style_indicator"], 0.5)
  _, converted = convert_bert.load(bert_dir)
  for x, y in zip(jax.tree.leaves(variables["frozen"]["prompt_encoder"]["bert"]), jax.tree.leaves(converted),
                  strict=True):
    np.testing.assert_array_equal(x, y)
  # the memory is HF's last hidden state + the style indicator on the style span
  memory = jax.jit(lambda v, *a: t.model.apply(v, *a, method="encode_prompt"))(variables, ids, lengths, style_lengths)
  mask = FIXTURE["attention_mask"].astype(bool)
  style = np.arange(mask.shape[1])[None] < FIXTURE["style_lens"][:, None]
  want = FIXTURE["last_hidden_state"] + 0.5 * style[..., None]
  np.testing.assert_allclose(np.asarray(memory)[:, :mask.shape[1]][mask], want[mask], atol=1e-5)


def test_optimizer_steps_never_touch_the_frozen_collection(task, variables):
  """AdamW with weight decay, built as the trainer builds it, on a loss through the prompt encoder: the style
  indicator moves, the BERT (outside "params") stays bit-identical and gets no gradient."""
  from audiojax.train.state import create, make_optimizer
  t, config = task
  # the prompt encoder's share of the task's variables (the speech side plays no part and would only add compile time)
  params, model_state = {"prompt_encoder": variables["params"]["prompt_encoder"]}, {"frozen": variables["frozen"]}
  ids, lengths, style_lengths = t.encode_prompts(PAIRS)
  target = np.random.default_rng(0).standard_normal((len(PAIRS), ids.shape[1], 32)).astype(np.float32)

  def loss(p, ms):
    memory = t.model.apply({"params": p, **ms}, ids, lengths, style_lengths, method="encode_prompt")
    return jnp.sum(jnp.square(memory - target))

  tx, _ = make_optimizer(config.optim, int(config.train.steps))

  @jax.jit
  def step(state):  # the trainer's update (train/loop.py), gradients taken w.r.t. "frozen" too to show they are 0
    grads, frozen_grads = jax.grad(loss, argnums=(0, 1))(state.params, state.model_state)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return state.replace(params=jax.tree.map(jnp.add, state.params, updates), opt_state=opt_state), frozen_grads

  state = create(params, model_state, tx)
  for _ in range(3):
    state, frozen_grads = step(state)
  assert all(float(jnp.max(jnp.abs(g))) == 0 for g in jax.tree.leaves(frozen_grads))  # stop_gradient
  for x, y in zip(jax.tree.leaves(model_state), jax.tree.leaves(state.model_state), strict=True):
    np.testing.assert_array_equal(x, y)
  moved = np.abs(state.params["prompt_encoder"]["style_indicator"] - params["prompt_encoder"]["style_indicator"])
  assert moved.max() > 1e-3


@pytest.mark.slow
def test_trainer_steps_on_the_task_loss_update_params_but_never_the_frozen_bert(task):
  """The real trainer on 8 devices, the BERT's "embed" axis sharded over fsdp; ≈ 30 s idle (mostly compilation)."""
  from audiojax.train import loop
  _, config = task
  trainer = loop.Trainer(registry.build(config))
  frozen_spec = trainer.state_shardings.model_state["frozen"]["prompt_encoder"]["bert"]["embeddings"]["word"].spec
  assert tuple(frozen_spec) == (None, "fsdp")  # ("vocab", "embed") through the config's rules
  state = trainer.init_state(0)
  before = jax.device_get(state)
  step = trainer.compiled_train_step()
  batch = _batch(trainer.task)
  for _ in range(2):
    with trainer.context():
      state, metrics = step(state, batch)
  after = jax.device_get(state)
  assert np.isfinite(float(metrics["loss"]))
  for x, y in zip(jax.tree.leaves(before.model_state), jax.tree.leaves(after.model_state), strict=True):
    np.testing.assert_array_equal(x, y)
  indicator = lambda s: s.params["prompt_encoder"]["style_indicator"]
  assert np.abs(indicator(after) - indicator(before)).max() > 0  # the style indicator trains
  k = lambda s: s.params["layer0"]["cross_attn"]["k_kernel"]
  assert np.abs(k(after) - k(before)).max() > 0


def test_frozen_collection_shards_through_the_rules(task):
  from audiojax.train import loop
  _, config = task
  trainer = loop.Trainer(registry.build(config))  # shardings from the abstract init: nothing compiles
  assert trainer.mesh.shape["fsdp"] == jax.device_count()
  specs = jax.tree.map(lambda s: tuple(s.spec), trainer.state_shardings.model_state["frozen"])
  bert_specs = specs["prompt_encoder"]["bert"]
  assert bert_specs["embeddings"]["word"] == (None, "fsdp")  # ("vocab", "embed")
  assert bert_specs["layer_0"]["query"]["kernel"] == ("fsdp", "tensor", None)  # ("embed", "heads", "kv")
  assert bert_specs["layer_0"]["intermediate"]["kernel"] == ("fsdp", "tensor")  # ("embed", "mlp")


def test_all_masked_bert_prompt_is_no_prompt(task, variables):
  t, _ = task
  b = _batch(t, 4)
  memory = jax.jit(lambda v, *a: t.model.apply(v, *a, method="encode_prompt"))(
      variables, b["prompt_ids"], b["prompt_lengths"], b["style_lengths"])
  apply = jax.jit(lambda v, *a: t.model.apply(v, *a, method="encode_speech"))
  # a zero memory is exactly no memory (test_prompt_asr.py); one compiled function serves all three calls
  none, _ = apply(variables, b["wave"], b["wave_lengths"], jnp.zeros_like(memory), b["prompt_lengths"])
  empty, _ = apply(variables, b["wave"], b["wave_lengths"], memory, jnp.zeros_like(b["prompt_lengths"]))
  assert bool(jnp.all(empty == none)) and not bool(jnp.any(jnp.isnan(empty)))
  with_prompt, _ = apply(variables, b["wave"], b["wave_lengths"], memory, b["prompt_lengths"])
  assert float(jnp.max(jnp.abs(with_prompt[0] - none[0]))) > 1e-3


def test_exported_bert_model_directory_round_trips(task, variables, tmp_path):
  from audiojax.inference import load
  from audiojax.inference import transcriber as asr_inference
  t, config = task
  t.export(str(tmp_path / "model"), variables)
  model, loaded, _, settings = load.prompt_asr(str(tmp_path / "model"))
  assert model.text_encoder == "bert" and model.bert == t.model.bert
  for x, y in zip(jax.tree.leaves(variables), jax.tree.leaves(loaded), strict=True):
    np.testing.assert_array_equal(x, y)
  encoding = asr_inference.prompt_encoding(settings)
  assert isinstance(encoding, PromptEncoding) and encoding.max_length == 24
  for x, y in zip(encoding(PAIRS), t.encode_prompts(PAIRS)):
    np.testing.assert_array_equal(x, y)
