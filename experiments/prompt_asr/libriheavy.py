"""PromptASR on LibriHeavy medium: the paper's setup (icefall egs/libriheavy/ASR/zipformer_prompt_asr).

Data: LibriHeavy medium (5,042 h; texts[0] and pre_texts[0] with casing and punctuation) read from the layout users
download (`libriheavy_cuts_medium.jsonl.gz` + LibriLight flac): `--config.data.manual_dir=/data/libriheavy`.
Model: PromptASR ``base`` (16 Conformer layers of width 512, every layer cross-attending to a 6-layer byte-level prompt
encoder; the recipe uses a 66 M Zipformer2 with a frozen BERT-base), pruned RNN-T (prune range 5, simple loss
1 → 0.5, lm_only_scale 0.25, the recipe's am_only_scale 0, warm-up 2,000 steps) + 0.1 CTC over 500 BPE pieces
with byte fallback trained on cased, punctuated text. Style mix 0.7 mixed-punc / 0.3 upper-no-punc as the recipe;
``content=mix`` also trains biasing lists (the recipe's context-list model). ``bert_dir=DIR`` swaps the byte encoder
for the recipe's frozen BERT (``bert-base-cased`` converted with ``python -m audiojax convert bert --hf-dir ...
--out DIR``; prompts of up to 500 WordPiece tokens, as the recipe's ``max_length``).

Command:  python -m audiojax data build libriheavy/medium --manual-dir /data/libriheavy
          python -m audiojax train --config experiments/prompt_asr/libriheavy.py --workdir gs://.../promptasr
Hardware: a TPU v5e-32 or 8 GPUs (batch 256 utterances ≈ 1,000 s of audio per step; the recipe: 4 GPUs,
          --max-duration 1000, 60 epochs ≈ 300k steps).
Runtime:  about 3 days on 8 × A100 (recipe scale); not run here.
Expected: the recipe's normalised WER on LibriHeavy test-clean/test-other with matching-style preceding text as the
          content prompt: 2.60 / 5.50 (vs 3.13 / 6.78 without prompts: −17 % / −19 % relative). Not reproduced here.
          On the espeak corpus the recipe's am_only_scale 0 left the transducer unable to write mixed case (the
          encoder-side simple projection ignored the style; ``espeak.py``): if mixed-punc output reads like babble
          while upper-no-punc is fine, train with ``--config.loss.am_only_scale=0.1``.
"""
from audiojax.config import common, prompt_asr


def get_config(arg: str = ""):
  a = common.parse_arg(arg, content="pre_text", bert_dir="")
  c = prompt_asr.asr()
  c.data.name = "libriheavy/medium"
  c.data.eval_split = "test_clean"
  c.data.max_seconds = 30.0
  c.data.max_tokens = 256
  c.data.max_prompt_bytes = 1024
  c.data.num_threads = 16
  c.model.variant = "base"
  c.model.dtype = "bfloat16"
  c.tokenizer.vocab_size = 500
  c.prompts.style_weights = {"mixed-punc": 0.7, "upper-no-punc": 0.3}
  c.prompts.content = a.content
  c.loss.ctc_weight = 0.1
  c.train.steps = 300_000
  c.train.batch_size = 256
  c.optim.lr = 1e-3
  c.optim.warmup_steps = 5000
  c.optim.weight_decay = 0.01
  c.eval.every_steps = 10_000
  c.eval.batch_size = 64
  c.eval.max_examples = 2000
  c.checkpoint.every_steps = 5000
  c.checkpoint.keep = 10
  c.checkpoint.average_best = 5
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  if a.bert_dir:
    c.model.text_encoder = "bert"
    c.model.bert_dir = a.bert_dir
    c.data.max_prompt_tokens = 500
  if a.local:  # the same pipeline shrunk to a CPU (needs the dataset built from a few manifests)
    common.local(c, {"model.variant": "tiny", "data.max_seconds": 20.0, "train.steps": 20, "train.batch_size": 4,
                     "eval.max_examples": 8, "eval.batch_size": 4})
  return c
