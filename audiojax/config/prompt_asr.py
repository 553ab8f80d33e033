"""Base config of the Prompt-ASR family: RNN-T + CTC on an ASR dataset of the shared speech schema."""
from __future__ import annotations

import ml_collections

from audiojax.config import common


def asr() -> ml_collections.ConfigDict:
  """Prompt-conditioned speech recognition (PromptASR)."""
  c = common.base()
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
  # "bytes": the trainable byte encoder; "bert": a frozen BERT (python -m audiojax convert bert)
  c.model.text_encoder = "bytes"
  c.model.bert_dir = ""  # the converted BERT, for text_encoder="bert"
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
      # alone, which makes that projection read the style prompt (see experiments/prompt_asr/README.md)
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
