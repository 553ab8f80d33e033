"""Base configs that experiment files start from; every field listed here can be overridden on the command line."""
from __future__ import annotations

import os

import ml_collections

from audiojax import parallel


def parse_arg(arg: str, **defaults):
  """``"variant=mini,subset=as2m,local"`` → ConfigDict of ``defaults`` updated from the arg (types from defaults;
  a bare word sets a bool default to True). Unknown names raise ValueError."""
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (x.strip() for x in (arg or "").split(","))):
    key, eq, value = item.partition("=")
    if key not in out:
      raise ValueError(f"unknown config argument '{key}'; valid: {', '.join(sorted(defaults))}")
    current = defaults[key]
    if not eq:
      value = True
    elif isinstance(current, bool):
      value = value.lower() in ("1", "true", "yes")
    elif current is not None:
      value = type(current)(value)
    out[key] = value
  return out


def default_data_dir() -> str:
  """Where datasets are built/read: ``$AUDIOJAX_DATA_DIR`` or ``./data/tfds``."""
  return os.environ.get("AUDIOJAX_DATA_DIR", os.path.join("data", "tfds"))


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/audiojax`` (``~/.cache/audiojax``): downloaded packages and compiled programs."""
  return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "audiojax")


def tagging_base() -> ml_collections.ConfigDict:
  """Supervised multi-label tagging with a CED encoder."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.task = "tagging"

  c.model = ml_collections.ConfigDict()
  c.model.name = "ced"
  c.model.variant = "tiny"
  c.model.dtype = "float32"  # compute dtype; "bfloat16" for mixed precision (params stay float32)
  # "auto" runs the Pallas kernels on a single GPU/TPU; they are proven only in CPU interpret mode so far, so the
  # default stays on XLA until a device run verifies them (see README "Kernels")
  c.model.attention_impl = "xla"
  c.model.overrides = ml_collections.ConfigDict()  # any CED field, e.g. depth=2 for smoke tests

  c.init = ml_collections.ConfigDict()
  c.init.checkpoint = ""  # fine-tuning: a converted model directory or a training workdir to start from
  c.init.reinit = []  # variable paths to re-initialise anyway, e.g. ["params/head/"]

  c.data = ml_collections.ConfigDict()
  c.data.name = "gm_instruments/demo"
  c.data.data_dir = default_data_dir()
  c.data.manual_dir = ""  # for corpora users download (AudioSet): the directory holding CSVs and clips
  c.data.train_split = "train"
  c.data.eval_split = "test"
  c.data.clip_seconds = 10.0
  c.data.num_threads = 0  # grain read threads (0 = read in the training thread)

  c.train = ml_collections.ConfigDict()
  c.train.steps = 1000
  c.train.batch_size = 32
  c.train.grad_accum_steps = 1
  c.train.log_every = 50
  c.train.progress_bar = True

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 100
  c.optim.end_lr_factor = 0.1
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0
  c.optim.clip_norm = 1.0
  c.optim.trainable = ""  # regex over param paths ("layer0/cross_attn/query/kernel"): only matches train; "": all
  c.optim.scaled_lr_params = ""  # regex over param paths: these follow the lr schedule times scaled_lr_factor
  c.optim.scaled_lr_factor = 1.0

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 0  # 0: only at the end
  c.eval.batch_size = 64

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 500
  c.checkpoint.keep = 3
  c.checkpoint.async_save = True
  c.checkpoint.average_best = 0  # >0: at the end, average the N best evaluated checkpoints (keep them: keep ≥ evals)

  c.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  c.sharding = ml_collections.ConfigDict()
  c.sharding.rules = [list(r) for r in parallel.DEFAULT_RULES]
  return c


def asr_base() -> ml_collections.ConfigDict:
  """Prompt-conditioned speech recognition (PromptASR): RNN-T + CTC on an ASR dataset of the shared schema."""
  c = tagging_base()
  c.task = "asr"
  c.model.name = "prompt_asr"
  c.model.variant = "tiny"
  c.tokenizer = ml_collections.ConfigDict({"path": "", "vocab_size": 500})  # "": trained on the train split
  c.data.name = "espeak_prompt/small"
  c.data.max_seconds = 8.0  # utterances are zero-padded to this (longer ones are an error, never cut)
  c.data.bucket_seconds = ()  # e.g. (3.0, 4.5): pad each batch only to the bucket of its longest utterance
  c.data.max_tokens = 64  # BPE tokens per transcript
  c.data.speed_factors = ()  # e.g. (0.9, 1.0, 1.1): training waves played at one drawn per utterance (Kaldi's)
  c.data.max_prompt_bytes = 256  # style [SEP] content, UTF-8 bytes; content keeps its end
  c.data.max_prompt_tokens = 128  # the same in WordPiece tokens, with text_encoder="bert"
  c.model.text_encoder = "bytes"  # "bytes": trainable byte encoder; "bert": frozen BERT (python -m audiojax convert bert)
  c.model.bert_dir = ""  # the converted BERT, for text_encoder="bert"
  del c.data["clip_seconds"]
  c.prompts = ml_collections.ConfigDict()
  c.prompts.style_weights = {"mixed-punc": 0.5, "upper-no-punc": 0.5}
  c.prompts.canonical_prob = 0.3  # share of style prompts that are the fixed canonical style sentence
  c.prompts.content = "pre_text"  # or "mix": the preceding text or a biasing list (the recipe's context-list model)
  c.prompts.respell_prob = 0.0  # per rare word: a homophone respelling only the prompt can tell (not in the recipe)
  c.prompts.twin_share = 0.0  # share of batch rows in twin pairs: one recording, two spellings (not in the recipe)
  c.loss = ml_collections.ConfigDict({
      "rnnt_weight": 1.0, "ctc_weight": 0.3,
      # k2's pruned RNN-T (the recipe's): the joiner sees prune_range cells per frame; 0 = the full loss.
      # am_only_scale (k2's am_scale; the recipe's 0): the simple loss's share scored by the encoder-side projection
      # alone, which makes that projection read the style prompt (see experiments/prompt_asr/espeak.py)
      "prune_range": 5, "simple_scale": 0.5, "lm_only_scale": 0.25, "am_only_scale": 0.0, "warmup_steps": 2000,
      "frames_per_chunk": 16,  # full loss only: frames per joiner chunk
      # ours: pull the first prompt_guide_heads heads of every crossing layer toward the prompt bytes of the
      # utterance's rare words (audiojax.objectives.prompt_guide); 0 = off
      # prompt_guide_frames: each frame toward the prompt bytes of the letters it emits (by a CTC alignment)
      "prompt_guide_scale": 0.0, "prompt_guide_heads": 1, "prompt_guide_frames": False})
  c.eval.conditions = ["mixed-punc/canonical/pre_text", "upper-no-punc/canonical/pre_text",
                       "mixed-punc/example/pre_text", "upper-no-punc/example/pre_text",
                       "mixed-punc/canonical/none", "mixed-punc/canonical/context"]
  c.eval.max_examples = 0  # 0: the whole eval split
  c.eval.batch_size = 32
  c.eval.decoder = "transducer"  # greedy search of the RNN-T, or "ctc": the CTC head's best path
  c.optim.lr = 2e-3
  c.optim.weight_decay = 0.01
  return c


BASES = {"tagging": tagging_base, "asr": asr_base}  # config.task → its base config


def with_current_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A restored ``config`` (a workdir's ``config.json``) laid over its task's current base config.

  Groups (``data``, ``eval``, ``loss``...) gain the fields added to the code since the workdir was written, with
  their defaults, so an old workdir still evaluates and takes ``--config`` overrides of new fields. Values inside a
  group are kept whole: a dict such as ``prompts.style_weights`` is not merged with the default's keys."""
  base = BASES.get(config.get("task"))
  if base is None:
    return config
  merged = base().to_dict()
  for key, value in config.to_dict().items():
    if isinstance(value, dict) and isinstance(merged.get(key), dict):
      merged[key] = {**merged[key], **value}
    else:
      merged[key] = value
  return ml_collections.ConfigDict(merged)
