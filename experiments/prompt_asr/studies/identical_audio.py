"""The identical-audio test of Prompt-ASR's content path: the prompt is the only way to tell a name's spelling.

Items: ``study.recordings`` utterances of a held-out split (``study.split``; ``espeak_prompt/small`` test: names and
voices never trained on) whose name occurs in their preceding text. Each recording appears twice, its transcript
and preceding text spelling the name once as recorded (``Tesszar``) and once respelled
(:func:`audiojax.text.respell.respellings`: ``Teszar``); the audio is the same file, so only the content prompt (the
preceding text in the mixed-punc style, with the canonical mixed-punc style prompt) can decide. A model initialised
from a Prompt-ASR training workdir (``:init=DIR``) is fine-tuned on these items by the one trainer (memory dropout
off) and evaluated every ``eval.every_steps`` (and before the first step) by greedy decoding of every item with its
training prompt (``eval.decoder``: the transducer, or the CTC head): **eval/prompt_matched** is the share of items
whose hypothesis spells the name as the prompt does (case-insensitive), **eval/other_spelling** the share spelling
it the other way, split by :func:`spelling_kind`; ``eval/name_attention/<layer>/head<h>/{mean,max}`` is the
cross-attention weight on the name's bytes (:mod:`prompt_attention`, mean and max over frames) next to
``eval/name_share``, what evenly spread attention would put there. ``study.content="list"`` replaces the preceding
text by a biasing list (the name among ``study.distractors`` names of the other recordings, as trained);
``study.paired`` draws whole twin pairs into each batch.

Command:  python -m audiojax train --config experiments/prompt_asr/studies/identical_audio.py:init=workdirs/prompt_asr \
            --workdir workdirs/identical --config.eval.decoder=ctc --config.optim.lr=2e-3 --config.study.paired=True \
            --config.train.steps=400 --config.eval.every_steps=100 [--config.seed=1]
          `:init=DIR,dropout=0,spec_augment=false` fine-tunes without dropout and SpecAugment (the runs below);
          the attention guide: --config.loss.prompt_guide_scale=1 --config.loss.prompt_guide_frames=True
Hardware: a 2-core CPU.
Runtime:  32 recordings (64 items), 400 steps at batch 16 with the CTC head: 14–16 min on one core.
Expected: ≥ 95 % prompt-matched is the bar; a prompt-blind model scores 50 / 50 %. On the 8,000-step
          ``espeak.py`` model (CTC, paired, no dropout or SpecAugment, lr 2e-3) 1 of 4 batch orders reached it at 400
          steps (96.9 %), all 4 at 800 steps with the letter-aligned guide (95.3–100 %). Every measurement, and its
          history: ``experiments/prompt_asr/README.md``. (Those runs drew batches from one generator seeded once;
          batches are now a function of the seed and the step, so a run resumes exactly: the same settings give
          other batch orders.)
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable

import grain
import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from audiojax.config import common, loader
from audiojax.data import pipeline
from audiojax.errors import UserError
from audiojax.tasks import asr, registry
from audiojax.text import prompts, styles
from audiojax.text.respell import respellings
from experiments.prompt_asr.studies import prompt_attention

log = logging.getLogger("audiojax")
TASK = "experiments.prompt_asr.studies.identical_audio:IdenticalAudioTask"


def get_config(arg: str = ""):
  """The ``:init=DIR`` workdir's config, made the study's: its checkpoint and tokenizer, memory dropout off (and with
  ``dropout=P`` / ``spec_augment=false`` those too), the fine-tuning schedule and the ``study`` group."""
  a = common.parse_arg(arg, init="", dropout=-1.0, spec_augment=True)
  if not a.init:
    raise UserError("the identical-audio study fine-tunes a trained Prompt-ASR model: give its workdir, "
                    "--config experiments/prompt_asr/studies/identical_audio.py:init=WORKDIR")
  c = registry.with_current_defaults(loader.restore(os.path.join(a.init, "config.json")))
  c.task = TASK
  c.init.checkpoint = a.init
  c.tokenizer.path = os.path.join(a.init, asr.TOKENIZER_FILE)
  overrides = {**dict(c.model.get("overrides", {}) or {}), "memory_dropout": 0.0}
  if a.dropout >= 0:
    overrides["dropout"] = a.dropout
  if not a.spec_augment:
    overrides["spec_augment"] = False
  c.model.overrides = overrides
  c.train.steps = 300
  c.train.batch_size = 16
  c.train.log_every = 25
  c.eval.batch_size = 16
  c.eval.every_steps = 50
  c.eval.at_start = True
  c.eval.decoder = "transducer"
  c.optim.lr = 5e-4
  c.optim.warmup_steps = 20
  c.loss.warmup_steps = 1  # the pruned loss is already warm in the initial model
  c.checkpoint.every_steps = 100
  c.checkpoint.average_best = 0
  c.study = {"split": "test", "recordings": 32, "skip": 0, "paired": False, "content": "pre_text",
             "distractors": 10}
  if a.local:
    common.local(c, {"train.steps": 2, "train.batch_size": 8, "eval.batch_size": 8, "study.recordings": 4,
                     "study.distractors": 1, "checkpoint.every_steps": 2})
  return c


def make_items(source, count: int, max_samples: int, skip: int = 0) -> list[dict]:
  """``2 * count`` items: each recording with its name spelled as recorded and respelled. The first ``skip``
  usable recordings are passed over, so ``skip=count`` draws a disjoint set for a replication."""
  items, skipped = [], 0
  for i in range(len(source)):
    ex = source[i]
    text, pre_text = ex["text"].decode(), ex["pre_text"].decode()
    name = ex["rare_words"].decode()
    others = [s for s in respellings(name) if s.lower() != name.lower()]
    if not others or name not in text or name not in pre_text or len(ex["audio"]) > max_samples:
      continue
    if skipped < skip:
      skipped += 1
      continue
    wave = pipeline.fit_length(ex["audio"].astype(np.float32) / 32768.0, max_samples)
    for spelling in (name, others[0]):
      items.append({"wave": wave, "wave_length": np.int32(len(ex["audio"])), "spelling": spelling,
                    "other": others[0] if spelling == name else name, "text": text.replace(name, spelling),
                    "content": pre_text.replace(name, spelling), "kind": spelling_kind(name, others[0])})
    if len(items) >= 2 * count:
      break
  return items


def with_biasing_lists(items: list[dict], distractors: int, seed: int = 0) -> list[dict]:
  """``items`` (twin pairs ``2k, 2k + 1``) whose content prompt is a biasing list, lower-cased as in training
  (``prompts.sample_context_list``): the item's spelling among ``distractors`` names of the other recordings, drawn
  and shuffled once per pair, so that the twins' prompts differ only in the spelling."""
  rng = np.random.default_rng(seed)
  names = [items[k]["spelling"] for k in range(0, len(items), 2)]
  out = []
  for k in range(len(names)):
    pool = sorted({n.lower() for n in names} - {items[2 * k]["spelling"].lower(), items[2 * k + 1]["spelling"].lower()})
    if len(pool) < distractors:
      raise UserError(f"config.study.distractors={distractors} needs as many other names; the items hold "
                      f"{len(pool)}: lower it")
    words = [pool[i] for i in rng.choice(len(pool), distractors, replace=False)]
    slot = int(rng.integers(distractors + 1))
    for item in items[2 * k:2 * k + 2]:
      out.append({**item, "content": " ".join(words[:slot] + [item["spelling"].lower()] + words[slot:])})
  return out


def spelling_kind(a: str, b: str) -> str:
  """``"same_length"`` when two spellings have as many letters (``Kaludor``/``Caludor``, ``Selyfi``/``Selifi``: the
  rest of the prompt keeps its byte positions, so only the differing letters tell the twins apart), else
  ``"length_differs"`` (``Lanzar``/``Lanzarr``: every later byte of the prompt moves)."""
  return "same_length" if len(a) == len(b) else "length_differs"


def batch_of(task: asr.AsrTask, rows: list[dict], targets: bool = True) -> dict[str, np.ndarray]:
  """The training batch of ``rows``; with the task's guide (and ``targets``) also its ``prompt_targets``, which
  evaluation and the attention readout leave out (``targets=False``)."""
  labels, label_lengths = asr._labels(task.tokenizer, [r["text"] for r in rows], task.max_tokens,
                                      [r["spelling"] for r in rows])
  style = styles.canonical_style_prompt("mixed-punc")
  ids, lengths, style_lengths = task.encode_prompts([(style, r["content"]) for r in rows])
  batch = {"wave": np.stack([r["wave"] for r in rows]), "wave_lengths": np.asarray([r["wave_length"] for r in rows]),
           "labels": labels, "label_lengths": label_lengths, "prompt_ids": ids, "prompt_lengths": lengths,
           "style_lengths": style_lengths}
  if targets and task.guide_targets:
    batch["prompt_targets"] = asr.guide_targets(task.guide_targets, task.tokenizer, task.max_tokens, ids, lengths,
                                                style_lengths, [[r["spelling"]] for r in rows],
                                                [r["text"] for r in rows], strict=True)
  return batch


def spelling_hits(hypothesis: str, spelling: str, other: str) -> tuple[bool, bool]:
  """Whether ``hypothesis`` holds the word ``spelling``, and whether it holds ``other`` (case, punctuation and a
  possessive ``'s`` ignored)."""
  words = styles.name_words(hypothesis)
  return styles.normalize_for_wer(spelling) in words, styles.normalize_for_wer(other) in words


def shares_by_kind(kinds: list[str], hits: list[bool]) -> dict[str, dict[str, float]]:
  """``{kind: {"items": n, "prompt_matched": share}}`` over the items of each :func:`spelling_kind`."""
  return {kind: {"items": kinds.count(kind), "prompt_matched": float(np.mean([h for k, h in zip(kinds, hits)
                                                                               if k == kind]))}
          for kind in sorted(set(kinds))}


def training_draw(rng: np.random.Generator, count: int, batch_size: int, paired: bool) -> np.ndarray:
  """``(batch_size,)`` item indices without repeats; ``paired``: whole twin pairs (items ``2k, 2k + 1``, one
  recording spelled both ways), so the batch's gradient sets the two spellings against each other."""
  if not paired:
    return rng.choice(count, batch_size, replace=False)
  if batch_size % 2:
    raise UserError(f"config.study.paired needs an even config.train.batch_size, not {batch_size}")
  pairs = rng.choice(count // 2, batch_size // 2, replace=False)
  return np.stack([2 * pairs, 2 * pairs + 1], axis=1).reshape(-1)


@dataclasses.dataclass(frozen=True)
class StudyBatches:
  """Step ``k`` → the training batch of ``batch_size`` items drawn by :func:`training_draw` from a generator seeded
  by ``(seed, k)``: a pure function of the step, so the iterator resumes exactly."""

  count: int
  batch_size: int
  paired: bool
  seed: int
  make_batch: Callable[[np.ndarray], dict[str, np.ndarray]]

  def __call__(self, step: int) -> dict[str, np.ndarray]:
    rows = training_draw(np.random.default_rng([self.seed, step]), self.count, self.batch_size, self.paired)
    return self.make_batch(rows)


class IdenticalAudioTask(asr.AsrTask):
  """Fine-tunes a Prompt-ASR model on twin items (one recording, two spellings) and measures whether the prompt
  decides the written spelling (see the module docstring)."""

  primary_metric = "eval/prompt_matched"
  primary_metric_mode = "max"

  def __init__(self, config: Any, class_names: list[str] | None = None):
    super().__init__(config, class_names)
    study = config.study
    source = tfds.data_source(config.data.name, split=study.split, data_dir=config.data.data_dir)
    self.items = make_items(source, int(study.recordings), self.max_samples, int(study.skip))
    if len(self.items) < 2 * int(study.recordings):
      raise UserError(f"split '{study.split}' has {len(self.items) // 2} usable recordings after config.study.skip="
                      f"{study.skip}, fewer than config.study.recordings={study.recordings}; lower one of them")
    if study.content == "list":
      self.items = with_biasing_lists(self.items, int(study.distractors))
    elif study.content != "pre_text":
      raise UserError(f"config.study.content='{study.content}': use 'pre_text' or 'list'")

  def summary(self, eval_metrics: dict[str, Any]) -> str:
    return (f"prompt-matched {eval_metrics['eval/prompt_matched']:.1%}, other spelling "
            f"{eval_metrics['eval/other_spelling']:.1%} on {eval_metrics['eval/examples']} items")

  def _batch(self, rows: np.ndarray, targets: bool = True) -> dict[str, np.ndarray]:
    return batch_of(self, [self.items[int(i)] for i in rows], targets)

  def train_dataset(self, seed: int):
    draw = StudyBatches(len(self.items), int(self.config.train.batch_size), bool(self.config.study.paired), seed,
                        self._batch)
    return grain.MapDataset.range(10**9).map(draw).to_iter_dataset()

  def predict(self, variables: Any, batch: dict[str, jax.Array], frozen: dict | None = None
              ) -> dict[str, jax.Array]:
    """Greedy decoding, and per item, crossing layer and head the attention weight on the name's bytes
    (``name_mean``, ``name_max``: ``(B, layers, H)``)."""
    out = super().predict(variables, batch, frozen)
    weights, enc_lengths, _ = prompt_attention.crossing_weights(
        self.model, variables, batch["wave"], batch["wave_lengths"], batch["prompt_ids"], batch["prompt_lengths"],
        batch["style_lengths"])
    masses = [prompt_attention.mass_per_item(weights[layer], batch["name_positions"], enc_lengths)
              for layer in sorted(weights)]
    return {**out, "name_mean": jnp.stack([m["mean"] for m in masses], axis=1),
            "name_max": jnp.stack([m["max"] for m in masses], axis=1)}

  def evaluate(self, predict_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict[str, float]:
    size = int(self.config.eval.batch_size)
    hyps, hits, other_hits, mean, peak, shares = [], [], [], [], [], []
    for indices, real in pipeline.fixed_size_batches(len(self.items), size):
      rows = [self.items[i] for i in indices]
      batch = batch_of(self, rows, targets=False)
      names = prompts.word_positions(batch["prompt_ids"], batch["prompt_lengths"], batch["style_lengths"],
                                     [[row["spelling"]] for row in rows])
      out = predict_fn({**batch, "name_positions": names, "valid": np.arange(size) < real})
      for b, row in enumerate(rows[:real]):
        hyps.append(self.tokenizer.decode(out["tokens"][b][out["emitted"][b]].tolist()))
        hit, other_hit = spelling_hits(hyps[-1], row["spelling"], row["other"])
        hits.append(hit)
        other_hits.append(other_hit)
      mean.append(out["name_mean"][:real])
      peak.append(out["name_max"][:real])
      shares.extend(names[:real].sum(1) / batch["prompt_lengths"][:real])
    for item, hyp in list(zip(self.items, hyps))[:4]:
      log.info("identical audio: %r → %r", item["text"], hyp)
    kinds = [item["kind"] for item in self.items]
    results = {"eval/prompt_matched": float(np.mean(hits)), "eval/other_spelling": float(np.mean(other_hits)),
               "eval/name_share": float(np.mean(shares)), "eval/examples": len(self.items)}
    for kind, share in shares_by_kind(kinds, hits).items():
      results[f"eval/prompt_matched/{kind}"] = share["prompt_matched"]
    if not self.bert_dir:  # a BERT's positions are WordPiece tokens, not the name's bytes
      mean, peak = np.concatenate(mean).mean(0), np.concatenate(peak).mean(0)  # (layers, H)
      for i in range(mean.shape[0]):
        for h in range(mean.shape[1]):
          results[f"eval/name_attention/crossing{i}/head{h}/mean"] = round(float(mean[i, h]), 4)
          results[f"eval/name_attention/crossing{i}/head{h}/max"] = round(float(peak[i, h]), 4)
    return results
