"""Training a neural codec (EnCodec's recipe): the codec (``generator``) and a multi-scale STFT discriminator
(``discriminator``) are two parameter groups with their own optimisers, updated in turn each step.

One step (:meth:`CodecTask.train_step`), on a batch of crops ``wave (B, L)``:

1. a random bandwidth (quantiser dropout: one of the model's bandwidths, uniformly) picks how many codebooks decode
   this batch; the codec runs once, updating its codebooks (EMA, k-means start, dead codes);
2. each generator loss (time L1, multi-scale mel, hinge adversarial, feature matching) gives its gradient with
   respect to the decoded wave; the loss balancer (or the fixed weights) combines them, and that gradient plus the
   commitment loss's flows back through the codec;
3. the discriminator learns to tell the input from the (detached) resynthesis of step 1 with the hinge loss.

``config.loss.adversarial_start`` steps of reconstruction losses alone (time L1, mel; the discriminator rests) may
come first, a warm-up for short schedules where an untrained discriminator's gradients would only add noise; with
the adversarial and feature weights both 0 the discriminator never runs.

Evaluation scores held-out clips at every bandwidth of the model: log-mel distance and SI-SNR of the resynthesis,
and each codebook's usage (perplexity) over the held-out frames.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds

from audiojax.data import pipeline
from audiojax.errors import UserError
from audiojax.eval import codec as codec_eval
from audiojax.models import codec
from audiojax.models.discriminators import MultiScaleSTFTDiscriminator
from audiojax.nn.quantize import CODEBOOKS
from audiojax.objectives import codec as objectives
from audiojax.tasks.base import Task
from audiojax.train import export

LOSSES = ("time_l1", "mel", "adversarial", "feature")  # the losses the balancer (or the weights) combine
BALANCER = "balancer"  # the model-state collection carrying the balancer's running gradient norms


def model_from_config(model_cfg: Any) -> codec.Codec:
  overrides = dict(model_cfg.get("overrides", {}) or {})
  return codec.Model(model_cfg.variant, dtype=jnp.dtype(model_cfg.dtype), **overrides)


class CodecTask(Task):
  """Trains ``config.model`` (a :mod:`audiojax.models.codec` variant) on the audio of ``config.data``."""

  primary_metric = "eval/mel_distance"  # at the model's highest bandwidth
  primary_metric_mode = "min"
  param_groups = ("generator", "discriminator")
  ema_groups = ("generator",)

  def __init__(self, config: Any, class_names: list[str] | None = None):
    del class_names  # a codec has no classes
    self.config = config
    self.model = model_from_config(config.model)
    d = config.discriminator
    self.discriminator = MultiScaleSTFTDiscriminator(int(d.filters), tuple(int(n) for n in d.n_ffts),
                                                     dtype=jnp.dtype(config.model.dtype))
    self.sample_rate = self.model.sample_rate
    self.clip_samples = int(round(config.data.clip_seconds * self.sample_rate))
    self.eval_samples = int(round(config.eval.clip_seconds * self.sample_rate))
    self.bandwidths = tuple(float(b) for b in self.model.bandwidths)
    self.n_qs = tuple(self.model.bandwidth_to_n_q(b) for b in self.bandwidths)
    weights = dict(config.loss.weights)
    if sorted(weights) != sorted(LOSSES) or any(w < 0 for w in weights.values()) or not sum(weights.values()):
      raise UserError(f"config.loss.weights must give each of {', '.join(LOSSES)} a weight ≥ 0 (not all 0); got "
                      f"{weights}")
    self.weights = {k: float(weights[k]) for k in LOSSES}
    self.adversarial = self.weights["adversarial"] > 0 or self.weights["feature"] > 0
    self.adversarial_start = int(config.loss.get("adversarial_start", 0))
    self.balancer = (objectives.Balancer(self.weights, decay=float(config.loss.balancer_decay))
                     if config.loss.balancer else None)
    if int(config.train.grad_accum_steps) != 1:
      raise UserError("the codec task updates on whole batches (the balancer needs each loss's gradient); set "
                      "config.train.grad_accum_steps=1")

  # --- model -------------------------------------------------------------------------------------------------------
  def example_batch(self, batch_size: int) -> dict[str, np.ndarray]:
    return {"wave": np.zeros((batch_size, self.clip_samples), np.float32)}

  def init_variables(self, rng: jax.Array, batch: dict[str, jax.Array]) -> dict[str, Any]:
    codec_key, disc_key = jax.random.split(rng)
    generator = self.model.init(codec_key, batch["wave"])
    discriminator = self.discriminator.init(disc_key, batch["wave"])
    variables = {"params": {"generator": generator["params"], "discriminator": discriminator["params"]},
                 CODEBOOKS: generator[CODEBOOKS]}
    return variables | ({BALANCER: self.balancer.init()} if self.balancer else {})

  def _discriminate(self, params: Any, wave: jax.Array) -> tuple[list[jax.Array], list[list[jax.Array]]]:
    return self.discriminator.apply({"params": params}, wave)

  def _active_codebooks(self, key: jax.Array) -> jax.Array | int:
    """The number of codebooks decoding this batch: those of a random bandwidth, or all of them."""
    if not self.config.loss.quantizer_dropout:
      return self.model.n_q
    return jnp.asarray(self.n_qs, jnp.int32)[jax.random.randint(key, (), 0, len(self.n_qs))]

  def train_step(self, trainer: Any, state: Any, batch: dict[str, jax.Array], rng: jax.Array, frozen: dict
                 ) -> tuple[Any, dict[str, jax.Array]]:
    """One generator update and, once the adversary has started, one discriminator update (the module
    docstring's steps 1–3)."""
    wave = batch["wave"]
    quantizer_key, dropout_key = jax.random.split(rng)
    active = self._active_codebooks(dropout_key)

    def generate(params):
      out, mutated = self.model.apply({"params": params, CODEBOOKS: state.model_state[CODEBOOKS]}, wave, train=True,
                                      rng=quantizer_key, active=active, mutable=[CODEBOOKS])
      return (out["wave"], out["commitment_loss"]), (mutated[CODEBOOKS], out["perplexity"])

    (fake, commitment), codec_backward, (codebooks, usage) = jax.vjp(generate, state.params["generator"],
                                                                     has_aux=True)
    reconstruction = self._reconstruction_losses(wave, fake)
    with_adversary = functools.partial(self._adversarial_update, trainer, wave, fake, reconstruction)
    without = functools.partial(self._reconstruction_update, trainer, reconstruction)
    if not self.adversarial:
      state, wave_grad, values = without(state)
    elif self.adversarial_start <= 0:
      state, wave_grad, values = with_adversary(state)
    else:
      state, wave_grad, values = jax.lax.cond(state.step >= self.adversarial_start, with_adversary, without, state)
    commitment_weight = jnp.asarray(self.config.loss.commitment, commitment.dtype)
    (generator_grads,) = codec_backward((wave_grad, commitment_weight))
    model_state = {**state.model_state, CODEBOOKS: codebooks}
    state, generator_stats = trainer.apply_gradients(state.replace(model_state=model_state), generator_grads,
                                                     "generator")
    generator_loss = sum(self.weights[k] * values[k] for k in LOSSES) + commitment_weight * commitment
    on = jnp.arange(usage.shape[0]) < active
    metrics = {"loss": generator_loss, **{f"generator/{k}": values[k] for k in LOSSES},
               "generator/commitment": commitment, "codebooks": jnp.asarray(active, jnp.float32),
               "perplexity": jnp.sum(jnp.where(on, usage, 0.0)) / jnp.sum(on)}
    metrics |= {f"generator/{k}": v for k, v in generator_stats.items()}
    if self.adversarial:
      metrics |= {"adversary": values["adversary"],
                  **{f"discriminator/{k}": values[f"discriminator/{k}"] for k in ("loss", "grad_norm", "lr")}}
    return state, metrics

  def _combine(self, grads: dict[str, jax.Array], state: Any) -> tuple[Any, jax.Array]:
    """The gradient reaching the decoded wave from ``grads {loss: (B, L)}`` (some or all of :data:`LOSSES`): the
    balancer's (its state moves) or the fixed weights'."""
    if not self.balancer:
      return state, sum(self.weights[k] * g for k, g in grads.items())
    wave_grad, balancer_state = self.balancer.combine(grads, state.model_state[BALANCER])
    return state.replace(model_state={**state.model_state, BALANCER: balancer_state}), wave_grad

  def _reconstruction_update(self, trainer: Any, reconstruction: tuple[dict, dict], state: Any
                             ) -> tuple[Any, jax.Array, dict[str, jax.Array]]:
    """Before the adversary starts (or without one): the reconstruction losses alone; the discriminator rests."""
    values, grads = reconstruction
    state, wave_grad = self._combine(grads, state)
    zero = jnp.zeros((), jnp.float32)
    values = {**values, "adversarial": zero, "feature": zero}
    if self.adversarial:
      values |= {"adversary": zero, "discriminator/loss": zero, "discriminator/grad_norm": zero,
                 "discriminator/lr": trainer.optimizers["discriminator"][1](state.step)}
    return state, wave_grad, values

  def _adversarial_update(self, trainer: Any, wave: jax.Array, fake: jax.Array, reconstruction: tuple[dict, dict],
                          state: Any) -> tuple[Any, jax.Array, dict[str, jax.Array]]:
    """Every loss, and one discriminator update (hinge) on the input against the detached resynthesis."""
    disc_params = state.params["discriminator"]
    adversarial_values, adversarial_grads = self._adversarial_losses(disc_params, wave, fake)
    state, wave_grad = self._combine({**reconstruction[1], **adversarial_grads}, state)

    def discriminator_loss(params):
      real_logits, _ = self._discriminate(params, wave)
      fake_logits, _ = self._discriminate(params, jax.lax.stop_gradient(fake))
      return objectives.hinge_discriminator_loss(real_logits, fake_logits)

    disc_loss, disc_grads = jax.value_and_grad(discriminator_loss)(disc_params)
    state, disc_stats = trainer.apply_gradients(state, disc_grads, "discriminator")
    values = {**reconstruction[0], **adversarial_values, "adversary": jnp.ones((), jnp.float32),
              "discriminator/loss": disc_loss, **{f"discriminator/{k}": v for k, v in disc_stats.items()}}
    return state, wave_grad, values

  def _reconstruction_losses(self, wave: jax.Array, fake: jax.Array
                             ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """Time L1 and multi-scale mel of the resynthesis ``fake (B, L)`` of ``wave``, and their gradients with respect
    to ``fake`` → ``({name: ()}, {name: (B, L)})``."""
    windows = tuple(int(w) for w in self.config.loss.mel_log2_windows)
    values, grads = {}, {}
    values["time_l1"], grads["time_l1"] = jax.value_and_grad(lambda y: objectives.time_l1(wave, y))(fake)
    values["mel"], grads["mel"] = jax.value_and_grad(
        lambda y: objectives.multiscale_mel_loss(wave, y, self.sample_rate, windows))(fake)
    return values, grads

  def _adversarial_losses(self, disc_params: Any, wave: jax.Array, fake: jax.Array
                          ) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
    """The hinge adversarial and feature-matching losses of ``fake (B, L)`` and their gradients with respect to
    ``fake``, as :meth:`_reconstruction_losses`; the discriminator runs once on each of ``wave`` and ``fake``."""
    values, grads = {}, {}
    _, real_maps = self._discriminate(disc_params, wave)
    real_maps = jax.lax.stop_gradient(real_maps)
    (fake_logits, fake_maps), disc_backward = jax.vjp(lambda y: self._discriminate(disc_params, y), fake)
    values["adversarial"], logit_grads = jax.value_and_grad(objectives.hinge_generator_loss)(fake_logits)
    values["feature"], map_grads = jax.value_and_grad(
        lambda maps: objectives.feature_matching_loss(real_maps, maps))(fake_maps)
    zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)
    (grads["adversarial"],) = disc_backward((logit_grads, zeros(fake_maps)))
    (grads["feature"],) = disc_backward((zeros(fake_logits), map_grads))
    return values, grads

  def predict(self, variables: Any, batch: dict[str, jax.Array], frozen: dict | None = None
              ) -> dict[str, jax.Array]:
    """Per held-out clip: ``mel_distance`` and ``si_snr`` ``(B, bandwidths)`` of the resynthesis at each of the
    model's bandwidths, and ``counts (B, n_q, bins)`` of the codes of the valid frames."""
    generator = {"params": variables["params"]["generator"], CODEBOOKS: variables[CODEBOOKS]}
    wave, lengths = batch["wave"], batch["length"]

    def resynthesise(model: codec.Codec, wave: jax.Array):
      codes = model.quantizer.encode(model.latents(wave))
      return codes, [model.decode(codes[:, :k])[:, :wave.shape[1]] for k in self.n_qs]

    codes, decoded = self.model.apply(generator, wave, method=resynthesise)
    mel = [codec_eval.log_mel_distance(wave, y, lengths, self.sample_rate) for y in decoded]
    snr = [codec_eval.si_snr(wave, y, lengths) for y in decoded]
    frames = codec_eval.frames_of(lengths, self.model.hop_length)
    return {"mel_distance": jnp.stack(mel, axis=1), "si_snr": jnp.stack(snr, axis=1),
            "counts": codec_eval.code_counts(codes, frames, self.model.bins), "valid": batch["valid"]}

  # --- data --------------------------------------------------------------------------------------------------------
  def _source(self, split: str):
    return tfds.data_source(self.config.data.name, split=split, data_dir=self.config.data.data_dir)

  def train_dataset(self, seed: int):
    data = self.config.data
    return pipeline.train_dataset(
        self._source(data.train_split), dataset_name=data.name, num_classes=None, sample_rate=self.sample_rate,
        clip_samples=self.clip_samples, global_batch_size=self.config.train.batch_size, seed=seed,
        num_threads=data.num_threads)

  def eval_batches(self):
    """Host-local batches of the first ``eval.clip_seconds`` of each held-out clip (or of ``eval.max_examples``
    evenly spaced ones): ``wave (B, L)``, ``length (B,)`` valid samples, ``valid (B,)``; padding rows are invalid."""
    data = self.config.data
    source = self._source(data.eval_split)
    limit = int(self.config.eval.max_examples)
    chosen = (np.linspace(0, len(source) - 1, limit).round().astype(int) if 0 < limit < len(source)
              else np.arange(len(source)))
    indices = chosen[jax.process_index()::jax.process_count()]
    decode = pipeline.Decode(None, self.sample_rate, data.name)
    local_batch = int(self.config.eval.batch_size) // jax.process_count()
    num_batches = math.ceil(math.ceil(len(chosen) / jax.process_count()) / local_batch)  # the same on every host
    for b in range(num_batches):
      rows = []
      for i in range(b * local_batch, (b + 1) * local_batch):
        if i < len(indices):
          wave = decode(source[int(indices[i])])["wave"]
          rows.append((pipeline.fit_length(wave, self.eval_samples), min(wave.shape[0], self.eval_samples), True))
        else:
          rows.append((np.zeros(self.eval_samples, np.float32), 0, False))
      yield {"wave": np.stack([r[0] for r in rows]), "length": np.asarray([r[1] for r in rows], np.int32),
             "valid": np.asarray([r[2] for r in rows])}

  # --- evaluation --------------------------------------------------------------------------------------------------
  def evaluate(self, predict_fn: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]) -> dict[str, float]:
    """Mean log-mel distance and SI-SNR at each bandwidth (``eval/mel_distance@6kbps``...; ``eval/mel_distance``
    and ``eval/si_snr`` at the highest), and each codebook's perplexity as a fraction of its size
    (``eval/codebook_usage_min`` / ``_mean``)."""
    mel, snr, counts = [], [], 0.0
    for batch in self.eval_batches():
      out = predict_fn(batch)
      valid = out["valid"]
      mel.append(out["mel_distance"][valid])
      snr.append(out["si_snr"][valid])
      counts = counts + out["counts"][valid].sum(axis=0)
    mel, snr = np.concatenate(mel), np.concatenate(snr)
    metrics = {}
    for i, kbps in enumerate(self.bandwidths):
      name = codec_eval.bandwidth_name(kbps)
      metrics[f"eval/mel_distance@{name}"] = float(mel[:, i].mean())
      metrics[f"eval/si_snr@{name}"] = float(snr[:, i].mean())
    usage = codec_eval.perplexity(np.asarray(counts)) / self.model.bins
    return metrics | {"eval/mel_distance": float(mel[:, -1].mean()), "eval/si_snr": float(snr[:, -1].mean()),
                      "eval/codebook_usage_min": float(usage.min()), "eval/codebook_usage_mean": float(usage.mean()),
                      "eval/examples": int(mel.shape[0])}

  def export(self, path: str, variables: dict[str, Any], force: bool = False) -> None:
    """Writes the codec (its parameters and codebooks; the discriminator stays in the workdir) as a model directory
    that ``codec encode/decode/roundtrip`` read."""
    weights = {"params": variables["params"]["generator"], CODEBOOKS: variables[CODEBOOKS]}
    export.save(path, codec.FAMILY, codec.to_config(self.model), weights, None, force=force)

  def summary(self, eval_metrics: dict[str, Any]) -> str:
    top = codec_eval.bandwidth_name(self.bandwidths[-1])
    if not isinstance(eval_metrics.get("eval/mel_distance"), float):
      return ""
    return (f"held-out log-mel distance {eval_metrics['eval/mel_distance']:.3f} and SI-SNR "
            f"{eval_metrics['eval/si_snr']:.2f} dB at {top}")
