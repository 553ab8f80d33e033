"""The trainer's features for every family: parameter groups with their own optimisers (a two-player GAN), an EMA of
the weights, and frozen stages loaded from model directories — on 8 simulated devices, with bitwise resume."""
import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from jax.sharding import PartitionSpec as P
from toy_tasks import Encoder, FrozenEncoderTask, GanTask, RegressionTask, toy_config

from audiojax import parallel
from audiojax.errors import UserError
from audiojax.train import checkpoint, export, loop

GROUPS = ("discriminator", "generator")


def gan_config(steps):
  c = toy_config(steps, groups=GROUPS)
  c.train.ema_decay = 0.9
  return c


def final_state(task, workdir):
  return jax.device_get(loop.Trainer(task).restore(workdir))


def test_gan_learns_with_two_optimisers_and_resumes_bitwise(tmp_path):
  assert jax.device_count() == 8
  straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
  config = gan_config(240)
  untrained = loop.Trainer(GanTask(config))
  before = untrained.evaluate(untrained.init_state(0))["eval/mean_error"]
  result = loop.train(GanTask(config), straight)
  assert result["eval"]["eval/mean_error"] < 0.3 < before, (before, result["eval"])
  assert {"discriminator/loss", "generator/loss", "discriminator/lr", "generator/grad_norm"} <= set(result["train"])
  first = loop.train(GanTask(gan_config(240)), resumed, until_step=110)
  assert first["step"] == 110
  loop.train(GanTask(gan_config(240)), resumed)
  a, b = final_state(GanTask(config), straight), final_state(GanTask(config), resumed)
  assert set(a.params) == set(GROUPS) and set(a.opt_state) == set(GROUPS) and set(a.ema) == {"generator"}
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def test_updating_one_group_leaves_the_other_groups_state_untouched():
  trainer = loop.Trainer(GanTask(gan_config(10)))
  state = trainer.init_state(0)
  grads = jax.tree.map(np.ones_like, state.params["discriminator"])
  with trainer.context():  # twice: optax's warmup gives the first update a learning rate of 0
    updated, stats = trainer.apply_gradients(state, grads, "discriminator")
    updated, stats = trainer.apply_gradients(updated, grads, "discriminator")
  for key in ("params", "opt_state"):
    same, moved = (jax.tree.leaves(getattr(s, key)["generator"]) for s in (state, updated))
    for x, y in zip(same, moved, strict=True):
      np.testing.assert_array_equal(x, y)
  assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(state.params["discriminator"]),
                                                     jax.tree.leaves(updated.params["discriminator"])))
  assert float(stats["grad_norm"]) > 0


def test_a_group_without_its_optimiser_is_a_one_line_error():
  c = toy_config(10, groups=("discriminator",))
  with pytest.raises(UserError, match="config.optim lacks generator"):
    loop.Trainer(GanTask(c))


def test_ema_is_the_numpy_recurrence_and_is_what_evaluation_and_restore_read(tmp_path):
  decay, steps = 0.9, 12
  config = toy_config(steps)
  config.train.ema_decay = decay
  trainer = loop.Trainer(RegressionTask(config))
  state = trainer.init_state(0)
  expected = jax.device_get(state.params)
  step_fn, iterator = trainer.compiled_train_step(), iter(trainer.task.train_dataset(0))
  for _ in range(steps):
    with trainer.context():
      state, _ = step_fn(state, parallel.host_batch_to_global(next(iterator), trainer.batch_sharding))
    params = jax.device_get(state.params)
    expected = jax.tree.map(lambda e, p: decay * np.float64(e) + (1 - decay) * np.float64(p), expected, params)
  for got, want in zip(jax.tree.leaves(jax.device_get(state.ema)), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  assert trainer.variables(state)["params"] is state.ema

  workdir = str(tmp_path / "run")
  loop.train(RegressionTask(config), workdir)
  saved = final_state(RegressionTask(config), workdir)
  with_ema = checkpoint.restore_variables(workdir)["params"]
  raw = checkpoint.restore_variables(workdir, use_ema=False)["params"]
  for a, b in zip(jax.tree.leaves(with_ema), jax.tree.leaves(saved.ema), strict=True):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(raw), jax.tree.leaves(saved.params), strict=True):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(with_ema), jax.tree.leaves(raw)))


def test_ema_decay_outside_0_1_is_a_one_line_error():
  config = toy_config(10)
  config.train.ema_decay = 1.0
  with pytest.raises(UserError, match="ema_decay=1.0 must lie in"):
    loop.Trainer(RegressionTask(config))


def test_frozen_stage_is_sharded_by_the_rules_never_trained_nor_checkpointed(tmp_path):
  encoder = Encoder()
  stage = jax.device_get(nn.meta.unbox(encoder.init(jax.random.key(7), np.zeros((1, 4), np.float32))))
  stage_dir = str(tmp_path / "encoder")
  export.save(stage_dir, "toy_encoder", {"features": 8}, stage, None)
  config = toy_config(80, lr=0.1)
  config.encoder = ml_collections.ConfigDict({"model_dir": stage_dir})
  config.mesh = {"data": 2, "fsdp": 2, "tensor": 2}
  trainer = loop.Trainer(FrozenEncoderTask(config))
  kernel = trainer.frozen["encoder"]["params"]["kernel"]
  assert kernel.sharding.spec == P("fsdp", "tensor")
  before = trainer.evaluate(trainer.init_state(0))["eval/mse"]
  workdir = str(tmp_path / "run")
  result = loop.train(FrozenEncoderTask(config), workdir)
  assert result["eval"]["eval/mse"] < 0.1 * before
  after = loop.Trainer(FrozenEncoderTask(config)).frozen["encoder"]
  np.testing.assert_array_equal(np.asarray(after["params"]["kernel"]), stage["params"]["kernel"])
  step = checkpoint.latest_step(workdir)
  saved = ocp.PyTreeCheckpointer().metadata(f"{checkpoint.checkpoint_dir(workdir)}/{step}/state")
  tree = getattr(getattr(saved, "item_metadata", saved), "tree", saved)
  assert "encoder" not in str(jax.tree_util.tree_structure(tree))
  assert set(tree["params"]) == {"kernel", "bias"} and tree["params"]["kernel"].shape == (8, 1)



def test_a_checkpoint_written_before_the_ema_field_restores(tmp_path):
  """Workdirs trained before the train state had ``ema`` resume and evaluate (the state comes back without EMA)."""
  config = toy_config(4)
  trainer = loop.Trainer(RegressionTask(config))
  state = trainer.init_state(0)
  legacy = {"step": state.step, "params": state.params, "model_state": state.model_state,
            "opt_state": state.opt_state}
  with checkpoint.manager(str(tmp_path), async_save=False) as mngr:
    checkpoint.save(mngr, 0, legacy, None)
  restored = trainer.restore(str(tmp_path), 0)
  assert restored.ema is None and int(restored.step) == 0
  for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(state.params), strict=True):
    np.testing.assert_array_equal(a, b)
