"""Rare-word study for Prompt-ASR: name recall and false alarms of the prompt path and of hotword boosting.

Every utterance of an ASR split (``text``, ``pre_text``, ``rare_words``) is decoded by one model under each *setting*
of :data:`SETTINGS`: a content prompt (none, the preceding text, a biasing list of the utterance's rare words
shuffled with ``distractors`` other rare words of the split, or those distractors alone) and a decoder (greedy;
modified beam search; beam search with a hotword context graph over the listed words). The style prompt is the
canonical sentence of one style (``--style``, default mixed-punc) throughout; ``--decoder ctc`` decodes with the
CTC head instead of the transducer (prefix beam search, hotwords as shallow fusion). With ``--lm`` (the options of
:func:`audiojax.cli.asr.add_lm_args`) the beam settings also fuse that character LM, and are named ``..., LM``:
its out-of-vocabulary penalty works against held-out names, the hotwords for them.

Measured per setting: normalised WER, **recall** (the reference's rare words spelled exactly in the hypothesis,
case and a possessive 's ignored) and the **false-alarm rate**: the share of utterances whose hypothesis contains a
word of the offered list (or, for settings without a list, of the distractor list that utterance would have been
offered) that is not in its reference. Distractors are drawn per utterance from the split's rare words other than
its own, with a fixed seed, so every setting sees the same lists. On ``espeak_prompt`` a test name's spelling is one
of 2–4 homophones, so the audio alone cannot decide it: recall without a prompt measures the guess, with a list the
use of the list.

Run: ``python experiments/prompt_asr/studies/biasing.py --checkpoint WORKDIR [--split test] [--limit N]
[--bonus 2 [3 ...]] [--beam 4] [--json OUT]`` (several bonuses: the hotword settings are rerun with each, named
``..., bonus B``; ``--beam`` is the width of the beam settings). Results: ``experiments/prompt_asr/README.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Sequence

import numpy as np

from audiojax.cli.asr import add_eval_args, add_lm_args
from audiojax.errors import UserError
from audiojax.eval.wer import wer
from audiojax.text import styles


@dataclasses.dataclass(frozen=True)
class Setting:
  """One way to decode: ``content`` in {"none", "pre_text", "list", "distractors"}; ``boost`` ∈ {"", "list",
  "distractors"}: the words of the hotword graph; ``beam`` 1 = greedy."""

  name: str
  content: str
  beam: int = 1
  boost: str = ""


SETTINGS = (
    Setting("greedy, no prompt", "none"),
    Setting("greedy, preceding text", "pre_text"),
    Setting("greedy, list (true + distractors)", "list"),
    Setting("greedy, distractor-only list", "distractors"),
    Setting("beam, no prompt", "none", beam=4),
    Setting("beam + hotwords (list), no prompt", "none", beam=4, boost="list"),
    Setting("beam + hotwords (distractors), no prompt", "none", beam=4, boost="distractors"),
    Setting("beam + hotwords, list as prompt", "list", beam=4, boost="list"),
    Setting("beam + hotwords, distractors as prompt", "distractors", beam=4, boost="distractors"),
)


def draw_lists(rare_words: Sequence[str], count: int, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
  """Per utterance: ``(true + distractors shuffled, distractors only)``. Distractors are ``count`` distinct rare
  words of the other utterances (never a word of this utterance's own ``rare_words``)."""
  pool = sorted({w for words in rare_words for w in words.split()})
  rng = np.random.default_rng(seed)
  with_true, only = [], []
  for words in rare_words:
    own = set(words.split())
    others = [w for w in pool if w not in own and w.lower() not in {o.lower() for o in own}]
    if len(others) < count:
      raise UserError(f"the split has {len(others)} rare words besides an utterance's own, fewer than "
                      f"--distractors {count}; lower it")
    picked = [others[i] for i in rng.choice(len(others), size=count, replace=False)]
    listed = sorted(own) + picked
    rng.shuffle(listed)
    with_true.append(listed)
    only.append(picked)
  return with_true, only


def score(refs: Sequence[str], hyps: Sequence[str], rare_words: Sequence[str],
          offered: Sequence[Sequence[str]]) -> dict[str, float]:
  """WER, rare-word recall and false-alarm rate (see the module docstring) of ``hyps`` against ``refs``."""
  found = total = alarms = 0
  for ref, hyp, rare, listed in zip(refs, hyps, rare_words, offered):
    hyp_words, ref_words = styles.name_words(hyp), styles.name_words(ref)
    wanted = styles.name_words(rare)
    found += len(wanted & hyp_words)
    total += len(wanted)
    alarms += any(w in hyp_words and w not in ref_words for w in styles.name_words(" ".join(listed)))
  return {"wer": wer([styles.normalize_for_wer(r) for r in refs], [styles.normalize_for_wer(h) for h in hyps]),
          "recall": found / max(total, 1), "false_alarm_rate": alarms / max(len(refs), 1),
          "utterances": len(refs), "rare_words": total}


def run_study(transcriber, examples: list[dict], *, distractors: int = 10, bonus: float = 2.0, batch_size: int = 40,
              settings: Sequence[Setting] = SETTINGS, seed: int = 0, style: str = "mixed-punc",
              log=print) -> dict[str, dict[str, float]]:
  """Decodes ``examples`` (dicts with ``wave``, ``wave_length``, ``text``, ``pre_text``, ``rare_words``) with
  ``transcriber`` (:class:`audiojax.inference.transcriber.Transcriber`) under every setting → ``{setting name:
  metrics}``. The transcriber's LM (``transcriber.lm``), if any, is fused into the beam settings only (their names gain
  ``, LM``)."""
  from audiojax.inference.transcriber import hotword_graph, style_prompt_for

  lm = transcriber.lm
  rare = [e["rare_words"] for e in examples]
  lists, only = draw_lists(rare, distractors, seed)
  words = {"list": lists, "distractors": only}
  style = style_prompt_for(style)
  results = {}
  for setting in settings:
    start = time.perf_counter()
    content = {"none": [""] * len(examples), "pre_text": [e["pre_text"] for e in examples],
               "list": [" ".join(w) for w in lists], "distractors": [" ".join(w) for w in only]}[setting.content]
    graphs = ([hotword_graph(transcriber.tokenizer, w, bonus) for w in words[setting.boost]] if setting.boost
              else [None] * len(examples))
    transcriber.lm = lm if setting.beam > 1 else None
    hyps = transcriber.transcribe_many([e["wave"] for e in examples],
                                       [(style, c) for c in content], batch_size=batch_size, beam=setting.beam,
                                       graphs=graphs)
    offered = words[setting.boost or ("list" if setting.content == "list" else "distractors")]
    name = f"{setting.name}, LM" if transcriber.lm is not None else setting.name
    results[name] = score([e["text"] for e in examples], hyps, rare, offered)
    results[name]["seconds"] = time.perf_counter() - start
    log(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in results[name].items()))
  transcriber.lm = lm
  return results


def table(results: dict[str, dict[str, float]]) -> str:
  """Markdown table of :func:`run_study`'s results."""
  lines = ["| setting | WER | rare-word recall | false alarms |", "|---|---|---|---|"]
  for name, m in results.items():
    lines.append(f"| {name} | {100 * m['wer']:.1f} % | {100 * m['recall']:.1f} % | "
                 f"{100 * m['false_alarm_rate']:.1f} % |")
  return "\n".join(lines)


def load_examples(checkpoint: str, dataset: str | None, split: str, limit: int, data_dir: str | None) -> list[dict]:
  """Decoded examples of ``dataset/split`` (default: the checkpoint's training dataset), at most ``limit``."""
  import os

  import tensorflow_datasets as tfds

  from audiojax.config import loader as config_lib
  from audiojax.models import prompt_asr
  from audiojax.paths import default_data_dir
  from audiojax.tasks.asr import DecodeSpeech

  config_file = os.path.join(checkpoint, "config.json")
  name = dataset or (config_lib.restore(config_file).data.name if os.path.isfile(config_file) else None)
  if not name:
    raise UserError(f"'{checkpoint}' names no dataset; pass --dataset (e.g. espeak_prompt/small)")
  source = tfds.data_source(name, split=split, data_dir=data_dir or default_data_dir())
  count = min(limit or len(source), len(source))
  decode = DecodeSpeech(sys.maxsize, prompt_asr.SAMPLE_RATE, name)  # unbounded: main checks the model's window
  return [decode(source[i]) for i in range(count)]


def main(argv: Sequence[str] | None = None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  add_eval_args(p)
  p.add_argument("--dataset", default=None, help="default: the checkpoint's training dataset")
  p.add_argument("--distractors", type=int, default=10)
  p.add_argument("--bonus", type=float, nargs="+", default=[2.0],
                 help="hotword bonus per token; more values rerun the hotword settings with each (a sweep)")
  p.add_argument("--batch-size", type=int, default=40)
  p.add_argument("--beam", type=int, default=4, help="width of the beam settings (at least 2)")
  p.add_argument("--json", default=None, help="also write the results here")
  add_lm_args(p)
  args = p.parse_args(argv)
  from audiojax.inference.transcriber import transcriber_from_args

  try:
    if args.beam < 2:
      raise UserError(f"--beam {args.beam}: the beam settings need a width of at least 2")
    settings = [dataclasses.replace(s, beam=args.beam) if s.beam > 1 else s for s in SETTINGS]
    transcriber = transcriber_from_args(args, beam=args.beam)
    examples = load_examples(args.checkpoint, args.dataset, args.split, args.limit, args.data_dir)
    too_long = [e["id"] for e in examples if e["wave_length"] > transcriber.window]
    if too_long:
      raise UserError(f"{len(too_long)} utterances (e.g. '{too_long[0]}') are longer than the model's window of "
                      f"{transcriber.window / 16000:g} s; this study decodes single windows")
    results = run_study(transcriber, examples, distractors=args.distractors, bonus=args.bonus[0],
                        batch_size=args.batch_size, settings=settings, style=args.style)
    for bonus in args.bonus[1:]:
      boosted = [dataclasses.replace(s, name=f"{s.name}, bonus {bonus:g}") for s in settings if s.boost]
      results.update(run_study(transcriber, examples, distractors=args.distractors, bonus=bonus,
                               batch_size=args.batch_size, settings=boosted, style=args.style))
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(table(results))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
  main()
