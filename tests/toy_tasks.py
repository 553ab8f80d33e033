"""Toy tasks on the real trainer: a 1-D GAN (two parameter groups), a linear regression (EMA) and a head on a frozen
encoder stage. Small enough that a few hundred steps run in seconds on the CPU."""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from audiojax.config import common
from audiojax.tasks.base import FrozenStage, Task

REAL_MEAN, REAL_STD = 3.0, 0.5


def toy_config(steps: int, batch_size: int = 16, groups: tuple[str, ...] = (), lr: float = 3e-2):
  c = common.base()
  c.task = "toy"
  c.train.steps = steps
  c.train.batch_size = batch_size
  c.train.log_every = 10
  c.train.progress_bar = False
  c.checkpoint.every_steps = 10
  c.checkpoint.keep = 100
  c.eval.batch_size = batch_size
  if groups:
    c.optim = ml_collections.ConfigDict({g: common.optimizer(lr) for g in groups})
    for g in groups:
      c.optim[g].warmup_steps = 5
      c.optim[g].b1 = 0.5
  else:
    c.optim.lr = lr
    c.optim.warmup_steps = 5
  return c


@dataclasses.dataclass(frozen=True)
class GaussianBatches:
  """Example ``i`` of the stream: a real sample of N(REAL_MEAN, REAL_STD²) and standard normal noise, ``(dim,)``
  each."""

  seed: int
  dim: int = 1

  def __call__(self, i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, i])
    return {"real": (REAL_MEAN + REAL_STD * rng.standard_normal(self.dim)).astype(np.float32),
            "noise": rng.standard_normal(self.dim).astype(np.float32)}


def stream(seed: int, batch_size: int, dim: int = 1):
  return grain.MapDataset.range(10**9).map(GaussianBatches(seed, dim)).batch(batch_size).to_iter_dataset()


class Generator(nn.Module):
  @nn.compact
  def __call__(self, z):
    return nn.Dense(1, name="out")(nn.tanh(nn.Dense(8, name="hidden")(z)))


class Discriminator(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(1, name="out")(nn.tanh(nn.Dense(16, name="hidden")(x)))


class GanTask(Task):
  """A generator learns N(3, 0.5²) from noise against a discriminator: groups ``discriminator`` then
  ``generator``, each with its own optimiser; the EMA follows the generator only."""

  primary_metric = "eval/mean_error"
  primary_metric_mode = "min"
  param_groups = ("discriminator", "generator")
  ema_groups = ("generator",)

  def __init__(self, config):
    self.config = config
    self.model = Generator()
    self.discriminator = Discriminator()

  def example_batch(self, batch_size):
    return {"real": np.zeros((batch_size, 1), np.float32), "noise": np.zeros((batch_size, 1), np.float32)}

  def init_variables(self, rng, batch):
    g, d = jax.random.split(rng)
    return {"params": {"generator": self.model.init(g, batch["noise"])["params"],
                       "discriminator": self.discriminator.init(d, batch["real"])["params"]}}

  def loss(self, params, model_state, batch, rng, step=None, frozen=None, group=None):
    fake = self.model.apply({"params": params["generator"]}, batch["noise"])
    critic = lambda x: self.discriminator.apply({"params": params["discriminator"]}, x)
    if group == "discriminator":
      fake = jax.lax.stop_gradient(fake)
      loss = jnp.mean(jax.nn.softplus(-critic(batch["real"])) + jax.nn.softplus(critic(fake)))
    else:
      loss = jnp.mean(jax.nn.softplus(-critic(fake)))
    return loss, ({"loss": loss}, model_state)

  def predict(self, variables, batch, frozen=None):
    return {"fake": self.model.apply({"params": variables["params"]["generator"]}, batch["noise"])}

  def train_dataset(self, seed):
    return stream(seed, self.config.train.batch_size)

  def evaluate(self, predict_fn):
    noise = np.random.default_rng(123).standard_normal((512, 1)).astype(np.float32)
    size = int(self.config.eval.batch_size)
    fakes = np.concatenate([predict_fn({"real": noise[i:i + size], "noise": noise[i:i + size]})["fake"]
                            for i in range(0, len(noise), size)])
    return {"eval/mean_error": float(abs(fakes.mean() - REAL_MEAN)), "eval/std": float(fakes.std())}


class RegressionTask(Task):
  """``y = x · 2 − 1`` learnt by a Dense(1): one parameter group, for the EMA."""

  primary_metric = "eval/mse"
  primary_metric_mode = "min"

  def __init__(self, config):
    self.config = config
    self.model = nn.Dense(1)

  def example_batch(self, batch_size):
    return {"real": np.zeros((batch_size, 1), np.float32), "noise": np.zeros((batch_size, 1), np.float32)}

  def init_variables(self, rng, batch):
    return dict(self.model.init(rng, batch["noise"]))

  def loss(self, params, model_state, batch, rng, step=None, frozen=None, group=None):
    pred = self.model.apply({"params": params}, batch["noise"])
    loss = jnp.mean(jnp.square(pred - (2 * batch["noise"] - 1)))
    return loss, ({"loss": loss}, model_state)

  def predict(self, variables, batch, frozen=None):
    return {"pred": self.model.apply(variables, batch["noise"])}

  def train_dataset(self, seed):
    return stream(seed, self.config.train.batch_size)

  def evaluate(self, predict_fn):
    x = np.linspace(-2, 2, self.config.eval.batch_size, dtype=np.float32)[:, None]
    pred = predict_fn({"real": x, "noise": x})["pred"]
    return {"eval/mse": float(np.mean(np.square(pred - (2 * x - 1))))}


class Encoder(nn.Module):
  """A frozen feature extractor whose kernel carries logical axes (so the trainer shards it by the rules)."""

  features: int = 8

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.with_logical_partitioning(nn.initializers.normal(1.0), ("embed", "mlp")),
                        (x.shape[-1], self.features))
    return jnp.tanh(x @ kernel)


class FrozenEncoderTask(RegressionTask):
  """A head regressing the sum of a frozen :class:`Encoder`'s features, the encoder loaded from
  ``config.encoder.model_dir``."""

  def __init__(self, config):
    super().__init__(config)
    self.encoder = Encoder()

  def frozen_stages(self):
    return {"encoder": FrozenStage(self.config.encoder.model_dir, self.encoder, (jnp.zeros((1, 4)),))}

  def example_batch(self, batch_size):
    return {"real": np.zeros((batch_size, 4), np.float32), "noise": np.zeros((batch_size, 4), np.float32)}

  def _features(self, frozen, x):
    return self.encoder.apply(frozen["encoder"], x)

  def init_variables(self, rng, batch):
    return dict(self.model.init(rng, jnp.zeros((batch["noise"].shape[0], 8))))

  def loss(self, params, model_state, batch, rng, step=None, frozen=None, group=None):
    out = self.predict({"params": params}, batch, frozen)
    loss = jnp.mean(jnp.square(out["pred"] - out["target"]))
    return loss, ({"loss": loss}, model_state)

  def predict(self, variables, batch, frozen=None):
    """The head's prediction and the target, the sum of the frozen features (learnable exactly)."""
    features = self._features(frozen, batch["noise"])
    return {"pred": self.model.apply(variables, features), "target": jnp.sum(features, axis=-1, keepdims=True)}

  def train_dataset(self, seed):
    return stream(seed, self.config.train.batch_size, dim=4)

  def evaluate(self, predict_fn):
    x = np.random.default_rng(0).standard_normal((self.config.eval.batch_size, 4)).astype(np.float32)
    out = predict_fn({"real": x, "noise": x})
    return {"eval/mse": float(np.mean(np.square(out["pred"] - out["target"])))}
