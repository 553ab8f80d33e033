"""Training VALL-E (X) (:mod:`audiojax.models.valle`) on codec token stores (:mod:`audiojax.data.token_store`).

A training row is one target utterance ``U`` and, as its acoustic prompt, another utterance ``P`` of the same speaker
(drawn per epoch among those that fit ``max_positions``; with probability ``1 - data.prompt_prob``, or when none
fits, no prompt): phonemes ``P.text ∪ U.text`` (each with its language) and frames ``P.codes ∪ U.codes``, packed
(:func:`audiojax.models.valle.pack`). Rows come in batches of similar lengths
(:class:`~audiojax.data.pipeline.LengthBucketedBatches`), padded to the smallest of ``data.bucket_positions`` that
holds them.

The loss is ``ar_weight · AR cross-entropy`` (codebook 1 of every frame, prompt and target, then EOS) ``+
nar_weight · NAR cross-entropy`` (codebook ``stage`` of the target's frames, one random stage in ``2..n_q`` per row;
the prompt's frames are given whole).

Evaluation, on the eval store's utterances each with a fixed prompt of the same speaker, scores the target's frames
only: teacher-forced AR accuracy (top-1 and top-10) and NLL per token against two baselines (the training store's
unigram frequencies; copying the previous token), the NAR's accuracy at every stage given the true codebooks below
it, and both again without the acoustic prompt (the paper's ablation).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import grain
import jax
import jax.numpy as jnp
import numpy as np

from audiojax import paths
from audiojax.data import pipeline
from audiojax.data.token_store import TokenStore
from audiojax.errors import UserError
from audiojax.models import valle
from audiojax.tasks.base import Task
from audiojax.text.phonemes import PhonemeVocabulary
from audiojax.train import export

CODEC_DIR = "codec"  # a model directory's copy of the codec its tokens came from


def load_vocabulary(config: Any, store: TokenStore) -> PhonemeVocabulary:
  """``config.data.vocabulary``'s phonemes.json, or the vocabulary of ``store``'s symbols and languages."""
  if config.data.vocabulary:
    return PhonemeVocabulary.load(config.data.vocabulary)
  return PhonemeVocabulary.build((u.phonemes for u in store.utterances), store.meta.languages)


@dataclasses.dataclass
class RowMaker:
  """Store utterances → unpacked VALL-E rows (see :func:`audiojax.models.valle.pack`)."""

  store: TokenStore
  vocabulary: PhonemeVocabulary
  max_positions: int

  def __post_init__(self):
    self.by_speaker = self.store.speakers()
    self.frames = self.store.frames
    self.text_lengths = np.asarray([len(u.phonemes) for u in self.store.utterances])

  def length(self, index: int, prompt: int | None) -> int:
    """Positions of the packed row (phonemes, the word boundary between them, frames, BOS)."""
    if prompt is None:
      return int(self.text_lengths[index] + self.frames[index] + 1)
    return int(self.text_lengths[index] + self.text_lengths[prompt] + 1 + self.frames[index] + self.frames[prompt]
               + 1)

  def pick_prompt(self, index: int, rng: np.random.Generator) -> int | None:
    """Another utterance of ``index``'s speaker whose row fits ``max_positions``, or None."""
    others = [j for j in self.by_speaker[self.store.utterances[index].speaker]
              if j != index and self.length(index, j) <= self.max_positions]
    return int(rng.choice(others)) if others else None

  def row(self, index: int, prompt: int | None) -> dict[str, Any]:
    u = self.store.utterances[index]
    segments = [(u.phonemes, u.language)]
    codes = self.store.codes(index)
    prompt_frames = 0
    if prompt is not None:
      p = self.store.utterances[prompt]
      segments.insert(0, (p.phonemes, p.language))
      prompt_codes = self.store.codes(prompt)
      prompt_frames = prompt_codes.shape[0]
      codes = np.concatenate([prompt_codes, codes])
    ids, languages = self.vocabulary.encode_segments(segments)
    if len(ids) + codes.shape[0] + 1 > self.max_positions:
      raise UserError(f"utterance '{u.id}' needs {len(ids) + codes.shape[0] + 1} positions, more than "
                      f"config.data.max_positions={self.max_positions}; raise it")
    return {"phonemes": np.asarray(ids), "languages": np.asarray(languages), "codes": codes.astype(np.int32),
            "prompt_frames": prompt_frames}


def bucket(longest: int, buckets: tuple[int, ...], max_positions: int) -> int:
  return pipeline.bucket_length(longest, buckets) if buckets else max_positions


@dataclasses.dataclass
class TrainingBatch:
  """Example indices → a packed training batch (grain ``random_map``: the prompts are drawn from its rng)."""

  rows: RowMaker
  bins: int
  prompt_prob: float
  buckets: tuple[int, ...]

  def __call__(self, indices: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    chosen = []
    for i in indices:
      prompt = self.rows.pick_prompt(int(i), rng) if rng.random() < self.prompt_prob else None
      chosen.append(self.rows.row(int(i), prompt))
    longest = max(len(r["phonemes"]) + r["codes"].shape[0] + 1 for r in chosen)
    return valle.pack(chosen, bucket(longest, self.buckets, self.rows.max_positions), self.bins)


class CodecLmTask(Task):
  """Trains ``config.model`` (a :mod:`audiojax.models.valle` variant) on ``config.data.train_store``."""

  primary_metric = "eval/ar_accuracy"
  primary_metric_mode = "max"

  def __init__(self, config: Any, class_names: list[str] | None = None):
    del class_names
    self.config = config
    data = config.data
    if not data.train_store:
      raise UserError("config.data.train_store is empty; write a token store with 'python -m audiojax codec tokens' "
                      "and pass --config.data.train_store=DIR")
    self.train_store = TokenStore(data.train_store)
    self.eval_store = TokenStore(data.eval_store) if data.eval_store else None
    meta = self.train_store.meta
    if self.eval_store and (self.eval_store.meta.codec_id, self.eval_store.meta.n_q) != (meta.codec_id, meta.n_q):
      raise UserError(f"the eval store '{data.eval_store}' was written by another codec or bandwidth than the "
                      f"train store '{data.train_store}'; run the token pass of both with the same codec")
    self.vocabulary = load_vocabulary(config, self.train_store)
    self.max_positions = int(data.max_positions)
    self.buckets = tuple(sorted(int(b) for b in data.get("bucket_positions", ()) or ()))
    if self.buckets and self.buckets[-1] != self.max_positions:
      raise UserError(f"config.data.bucket_positions={list(self.buckets)} must end at config.data.max_positions="
                      f"{self.max_positions}")
    overrides = dict(config.model.get("overrides", {}) or {})
    self.model = valle.Model(config.model.variant, text_vocab=len(self.vocabulary),
                             num_languages=max(1, len(self.vocabulary.languages)), n_q=meta.n_q, bins=meta.bins,
                             attention_impl=config.model.attention_impl, dtype=jnp.dtype(config.model.dtype),
                             **overrides)
    self.n_q, self.bins = meta.n_q, meta.bins

  # --- model -------------------------------------------------------------------------------------------------------
  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    zeros = np.zeros((batch_size, self.max_positions), np.int32)
    ones = np.ones((batch_size,), np.int32)
    return {"text": zeros, "languages": zeros, "audio": zeros, "targets": zeros - 1,
            "codes": np.zeros((batch_size, self.max_positions, self.n_q), np.int32), "text_lengths": ones,
            "prompt_frames": 0 * ones, "lengths": 2 * ones, "ar_lengths": 3 * ones}

  def _inputs(self, batch: dict[str, jax.Array]) -> tuple[jax.Array, ...]:
    return (batch["text"], batch["languages"], batch["audio"], batch["codes"], batch["text_lengths"],
            batch["prompt_frames"], batch["lengths"])

  def init_variables(self, rng: jax.Array, batch: dict[str, jax.Array]) -> dict[str, Any]:
    stage = jnp.ones(batch["text"].shape[:1], jnp.int32)
    return {"params": self.model.init(rng, *self._inputs(batch), stage)["params"]}

  def _nar_mask(self, batch: dict[str, jax.Array]) -> jax.Array:
    """``(B, S)``: the target's frames (after the prompt, before the end)."""
    position = jnp.arange(batch["text"].shape[1])[None, :]
    frame = position - batch["text_lengths"][:, None]
    return (frame >= batch["prompt_frames"][:, None]) & (position < batch["lengths"][:, None])

  def loss(self, params: Any, model_state: Any, batch: dict[str, jax.Array], rng: jax.Array,
           step: jax.Array | None = None, frozen: dict | None = None, group: str | None = None):
    stage_key, dropout_key = jax.random.split(rng)
    stage = jax.random.randint(stage_key, batch["text"].shape[:1], 1, self.n_q)
    ar_logits, nar_logits = self.model.apply({"params": params}, *self._inputs(batch), stage, deterministic=False,
                                             rngs={"dropout": dropout_key})
    ar_mask = batch["targets"] >= 0
    ar_ce, ar_correct = _cross_entropy(ar_logits, batch["targets"], ar_mask)
    nar_targets = jnp.take_along_axis(batch["codes"], stage[:, None, None], axis=2)[..., 0]
    nar_mask = self._nar_mask(batch)
    nar_ce, nar_correct = _cross_entropy(nar_logits, nar_targets, nar_mask)
    ar_count, nar_count = jnp.maximum(ar_mask.sum(), 1), jnp.maximum(nar_mask.sum(), 1)
    ar_loss, nar_loss = ar_ce.sum() / ar_count, nar_ce.sum() / nar_count
    loss = self.config.loss.ar_weight * ar_loss + self.config.loss.nar_weight * nar_loss
    metrics = {"loss": loss, "ar_loss": ar_loss, "nar_loss": nar_loss, "ar_accuracy": ar_correct.sum() / ar_count,
               "nar_accuracy": nar_correct.sum() / nar_count}
    return loss, (metrics, model_state)

  def predict(self, variables: Any, batch: dict[str, jax.Array], frozen: dict | None = None
              ) -> dict[str, jax.Array]:
    """Per eval row, sums over the target's frames with the prompt and (``np_`` keys) without it: AR ``correct``,
    ``top10``, ``nll``, ``copy`` (the previous token is right) and ``count``; NAR ``nar_correct (B, n_q - 1)`` per
    stage and ``nar_count``."""
    params = {"params": variables["params"]}
    out = {}
    for prefix in ("", "np_"):
      b = {k[len(prefix):]: v for k, v in batch.items() if k.startswith(prefix) and (prefix or not k.startswith("np_"))}
      logits = self.model.apply(params, b["text"], b["languages"], b["audio"], b["text_lengths"], b["ar_lengths"],
                                method="ar_logits")
      mask = mask_of(b)
      nll, correct = _cross_entropy(logits, b["targets"], mask)
      target_logit = jnp.take_along_axis(logits, jnp.maximum(b["targets"], 0)[..., None], axis=-1)
      top10 = (jnp.sum(logits > target_logit, axis=-1) < 10) & mask
      copy = (b["audio"] == b["targets"]) & mask
      nar_mask = self._nar_mask(b)
      nar_correct = []
      for stage in range(1, self.n_q):
        stages = jnp.full(b["text"].shape[:1], stage, jnp.int32)
        nar_logits = self.model.apply(params, b["text"], b["languages"], b["codes"], b["text_lengths"],
                                      b["prompt_frames"], b["lengths"], stages, method="nar_logits")
        right = (jnp.argmax(nar_logits, -1) == b["codes"][..., stage]) & nar_mask
        nar_correct.append(right.sum(-1))
      out |= {f"{prefix}correct": correct.sum(-1), f"{prefix}top10": top10.sum(-1), f"{prefix}nll": nll.sum(-1),
              f"{prefix}copy": copy.sum(-1), f"{prefix}count": mask.sum(-1),
              f"{prefix}nar_correct": jnp.stack(nar_correct, -1), f"{prefix}nar_count": nar_mask.sum(-1)}
    return out | {"valid": batch["valid"], "targets": batch["targets"], "target_mask": mask_of(batch)}

  # --- data --------------------------------------------------------------------------------------------------------
  def train_dataset(self, seed: int):
    local_batch = int(self.config.train.batch_size) // jax.process_count()
    rows = RowMaker(self.train_store, self.vocabulary, self.max_positions)
    indices = np.arange(len(self.train_store))[jax.process_index()::jax.process_count()]
    lengths = [rows.length(int(i), None) for i in indices]
    batches = pipeline.LengthBucketedBatches(lengths, local_batch, seed)
    batcher = TrainingBatch(rows, self.bins, float(self.config.data.prompt_prob), self.buckets)
    return (grain.MapDataset.source(batches).seed(seed).map(lambda b: indices[b])
            .random_map(batcher).to_iter_dataset())

  def eval_rows(self) -> list[tuple[dict, dict]]:
    """``(with prompt, without)`` rows of the eval store's examples (the first ``eval.max_examples``), each prompt a
    fixed other utterance of the same speaker."""
    if self.eval_store is None:
      raise UserError("config.data.eval_store is empty; write the held-out split's token store with 'python -m "
                      "audiojax codec tokens' and pass --config.data.eval_store=DIR")
    rows = RowMaker(self.eval_store, self.vocabulary, self.max_positions)
    limit = int(self.config.eval.max_examples) or len(self.eval_store)
    out = []
    for i in range(min(limit, len(self.eval_store))):
      prompt = rows.pick_prompt(i, np.random.default_rng([int(self.config.seed), i]))
      out.append((rows.row(i, prompt), rows.row(i, None)))
    return out

  def eval_batches(self):
    rows = self.eval_rows()
    mine = rows[jax.process_index()::jax.process_count()]
    local_batch = int(self.config.eval.batch_size) // jax.process_count()
    num_batches = math.ceil(math.ceil(len(rows) / jax.process_count()) / local_batch)
    for b in range(num_batches):
      chunk = mine[b * local_batch:(b + 1) * local_batch]
      valid = np.arange(local_batch) < len(chunk)
      chunk = chunk + [mine[0]] * (local_batch - len(chunk))
      longest = max(len(r["phonemes"]) + r["codes"].shape[0] + 1 for r, _ in chunk)
      size = bucket(longest, self.buckets, self.max_positions)
      with_prompt = valle.pack([r for r, _ in chunk], size, self.bins)
      without = valle.pack([r for _, r in chunk], size, self.bins)
      yield with_prompt | {f"np_{k}": v for k, v in without.items()} | {"valid": valid}

  # --- evaluation --------------------------------------------------------------------------------------------------
  @functools.cached_property
  def unigram(self) -> np.ndarray:
    """Codebook-1 (and EOS) frequencies of the training store, add-one smoothed: ``(bins + 1,)``."""
    counts = np.ones(self.bins + 1)
    for i in range(len(self.train_store)):
      counts[:self.bins] += np.bincount(self.train_store.codes(i)[:, 0], minlength=self.bins)
    counts[self.bins] += len(self.train_store)
    return counts / counts.sum()

  def evaluate(self, predict_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict[str, float]:
    """The module docstring's scores: ``eval/ar_accuracy`` (primary), ``eval/ar_top10``, ``eval/ar_nll``,
    ``eval/ar_accuracy_copy`` and ``eval/ar_accuracy_unigram`` / ``eval/ar_nll_unigram`` (baselines),
    ``eval/nar_accuracy`` (mean over stages) and ``eval/nar_accuracy@k`` (codebook k), and the ``_no_prompt``
    versions."""
    unigram = self.unigram
    sums: dict[str, Any] = {}
    unigram_nll = unigram_right = examples = 0
    for batch in self.eval_batches():
      out = predict_fn(batch)
      valid = out["valid"]
      examples += int(valid.sum())
      for key, value in out.items():
        if key not in ("valid", "targets", "target_mask"):
          sums[key] = sums.get(key, 0) + np.asarray(value)[valid].sum(0)
      targets, mask = out["targets"][valid], out["target_mask"][valid]
      unigram_nll += -np.log(unigram[targets[mask]]).sum()
      unigram_right += (targets[mask] == np.argmax(unigram)).sum()
    metrics = {}
    for prefix, suffix in (("", ""), ("np_", "_no_prompt")):
      count = max(float(sums[f"{prefix}count"]), 1.0)
      metrics[f"eval/ar_accuracy{suffix}"] = float(sums[f"{prefix}correct"]) / count
      metrics[f"eval/ar_top10{suffix}"] = float(sums[f"{prefix}top10"]) / count
      metrics[f"eval/ar_nll{suffix}"] = float(sums[f"{prefix}nll"]) / count
      nar = np.asarray(sums[f"{prefix}nar_correct"], np.float64) / max(float(sums[f"{prefix}nar_count"]), 1.0)
      metrics[f"eval/nar_accuracy{suffix}"] = float(nar.mean())
      metrics |= {f"eval/nar_accuracy{suffix}@{k + 2}": float(a) for k, a in enumerate(nar)}
    count = max(float(sums["count"]), 1.0)
    metrics["eval/ar_accuracy_copy"] = float(sums["copy"]) / count
    metrics["eval/ar_accuracy_unigram"] = float(unigram_right) / count
    metrics["eval/ar_nll_unigram"] = float(unigram_nll) / count
    return metrics | {"eval/examples": examples}

  def summary(self, eval_metrics: dict[str, Any]) -> str:
    if not isinstance(eval_metrics.get("eval/ar_accuracy"), float):
      return ""
    return (f"held-out AR accuracy {eval_metrics['eval/ar_accuracy']:.3f} (copy baseline "
            f"{eval_metrics['eval/ar_accuracy_copy']:.3f}), NAR accuracy {eval_metrics['eval/nar_accuracy']:.3f} "
            f"({eval_metrics['eval/nar_accuracy_no_prompt']:.3f} without the prompt)")

  # --- assets and export -------------------------------------------------------------------------------------------
  def save_assets(self, workdir: str) -> None:
    """The phoneme vocabulary next to the checkpoints, so the workdir alone reads text as it was trained to."""
    self.vocabulary.save(workdir)

  @classmethod
  def workdir_config(cls, config: Any, workdir: str) -> Any:
    if (paths.resolve(workdir) / PhonemeVocabulary.FILE).is_file():
      with config.unlocked():
        config.data.vocabulary = workdir
    return config

  def export(self, path: str, variables: dict[str, Any], force: bool = False) -> None:
    """A model directory ``speak`` reads: the model, the phoneme vocabulary, a copy of the codec the tokens came
    from (``codec/``) and what synthesis needs (``max_positions``, the codec's ``n_q``)."""
    meta = self.train_store.meta
    settings = {"model": valle.to_config(self.model), "max_positions": self.max_positions, "n_q": meta.n_q,
                "codec_id": meta.codec_id}

    def assets(folder: str) -> None:
      self.vocabulary.save(folder)
      paths.copy_tree(meta.codec_dir, paths.resolve(folder) / CODEC_DIR)

    export.save(path, valle.FAMILY, settings, {"params": variables["params"]}, None, assets=assets, force=force)


def mask_of(batch: dict[str, jax.Array]) -> jax.Array:
  """``(B, S)``: AR rows that predict the target's frames and EOS (after the prompt)."""
  frame = jnp.arange(batch["text"].shape[1])[None, :] - batch["text_lengths"][:, None]
  return (batch["targets"] >= 0) & (frame >= batch["prompt_frames"][:, None])


def _cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-position cross-entropy and top-1 correctness ``(B, S)``, zero where ``mask`` is False."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, jnp.maximum(targets, 0)[..., None], axis=-1)[..., 0]
  correct = jnp.argmax(logits, axis=-1) == targets
  return jnp.where(mask, nll, 0.0), correct & mask
