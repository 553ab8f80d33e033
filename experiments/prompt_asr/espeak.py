"""PromptASR on the offline espeak corpus: style switching, content prompts and rare names at CPU scale.

Data: ``espeak_prompt/small`` (5,000 training utterances ≈ 5.1 h read by 15 espeak-ng voices; test: 400 held-out
sentences and names read by 6 held-out voices; ``test_seen_voices``: the same read by training voices).
Model: PromptASR ``tiny`` (4 Conformer layers of width 144 cross-attending to a 2-layer byte-level prompt encoder),
pruned RNN-T (range 5) + 0.3 CTC over 320 BPE pieces; content prompts are the preceding text or a biasing list.

Command:  python -m audiojax data build espeak_prompt/small
          python -m audiojax train --config experiments/prompt_asr/espeak.py --workdir workdirs/prompt_asr
          python -m audiojax eval --workdir workdirs/prompt_asr --config.eval.max_examples=0
          python -m audiojax lm-corpus --dataset espeak_prompt/small --split train --out workdirs/lm.txt
          python -m audiojax wer --checkpoint workdirs/prompt_asr --dataset espeak_prompt/small \
              --style upper-no-punc --beam 16 --lm workdirs/lm.txt --lm-weight 0.2 --lm-token-bonus 4 \
              --lm-oov-penalty 6   # the transducer; the CTC head: --decoder ctc --lm-weight 0.6 --lm-token-bonus 2
          python experiments/prompt_asr/studies/biasing.py --checkpoint workdirs/prompt_asr --style upper-no-punc \
              --bonus 2 --beam 16 --lm workdirs/lm.txt --lm-weight 0.2 --lm-token-bonus 4 --lm-oov-penalty 6
          python -m audiojax train --workdir workdirs/identical --config \
              experiments/prompt_asr/studies/identical_audio.py:init=workdirs/prompt_asr,dropout=0,spec_augment=false \
              --config.eval.decoder=ctc --config.optim.lr=2e-3 --config.study.paired=True \
              --config.train.steps=400 --config.eval.every_steps=100 [--config.seed=1] \
              [--config.train.steps=800 --config.loss.prompt_guide_scale=1 --config.loss.prompt_guide_frames=True]
Hardware: a 2-core CPU.
Runtime:  the default run (8,000 steps in one cosine, speed perturbation from step 0): 2 h 0 min on 2 cores alone
          (0.77-0.96 s/step; first step after ≈ 5 min of compilation). ``:local`` (4 steps on the tiny corpus):
          1–3 min, mostly compilation.
Expected: held-out WER (400 test utterances: held-out voices, sentences and names) with the transducer and the
          character LM: **14.7 % upper-no-punc, 15.4 % mixed-punc** (≤ 20 % without a list); greedy transducer
          30.6 / 27.2 %; the LM at weight 0.6, bonus 2: 15.9 / 17.9 %. Without ``loss.am_only_scale`` the transducer
          fails in mixed case. Hotwords for each utterance's names plus 10 distractors: 8.2 % WER, 82.0 % name recall,
          0 % false alarms. Identical audio: the ≥ 95 % bar is met by 1 of 4 batch orders at 400 steps, by 4 of 4
          at 800 with the letter-aligned attention guide. No prompt gain on held-out names.
          Every measurement: experiments/prompt_asr/README.md.
"""
from audiojax.config import common, prompt_asr


def get_config(arg: str = ""):
  a = common.parse_arg(arg, steps=8000, content="mix")
  c = prompt_asr.asr()
  c.data.name = "espeak_prompt/small"
  c.data.max_seconds = 7.5  # the longest utterance of espeak_prompt/small (all splits) is 7.48 s
  # train-split durations: mean 3.66 s, median 3.57, 90th percentile 4.72, 99th 5.96; buckets halve the padded frames
  c.data.bucket_seconds = (3.0, 3.75, 4.5, 6.0)
  c.data.max_tokens = 112  # the longest transcript (all splits, either style) is 108 pieces
  c.data.max_prompt_bytes = 256
  c.data.speed_factors = (0.9, 1.0, 1.1)  # from step 0: WER + LM 15.9 % at step 8,000 (see Expected)
  # 320 pieces = 2 specials + 256 bytes + 62 letters, marks and merges: nearly characters. With 500 (≈ 240 merges
  # split between the mixed-case and upper-case spellings) the CTC loss was still 3.9 nats/token after 775 steps.
  c.tokenizer.vocab_size = 320
  c.prompts.content = a.content
  c.train.steps = a.steps
  c.train.batch_size = 16
  c.train.log_every = 25
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 100
  c.loss.am_only_scale = 0.1  # without it the transducer fails in mixed case (see Expected)
  c.loss.warmup_steps = 300  # pruned RNN-T: simple 1 → 0.5, pruned 0.1 → 1 (the recipe: 2,000 of ≈ 300k steps)
  c.eval.every_steps = a.steps
  c.eval.batch_size = 40
  c.checkpoint.every_steps = 300
  c.checkpoint.keep = 3
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  if a.local:
    common.local(c, {
        "data.name": "espeak_prompt/tiny", "data.speed_factors": (), "tokenizer.vocab_size": 400,
        "model.overrides": {"num_layers": 1, "embed_dim": 64, "num_heads": 2, "ff_dim": 128, "text_dim": 48,
                            "text_layers": 1, "text_heads": 2, "pred_dim": 32, "joiner_dim": 32, "conv_kernel": 7},
        "train.steps": 4, "train.batch_size": 8, "train.log_every": 2, "optim.warmup_steps": 2,
        "loss.warmup_steps": 2, "eval.batch_size": 8, "eval.max_examples": 8,
        "eval.conditions": ["mixed-punc/canonical/pre_text", "upper-no-punc/canonical/none"],
        "checkpoint.every_steps": 2})
  return c
