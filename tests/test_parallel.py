"""Sharding: the same training run gives the same losses and parameters on 1 device and on 8 simulated devices."""
import jax
import numpy as np
import pytest
from jax.sharding import AxisType

from audiojax import parallel
from audiojax.config import ced as ced_config
from audiojax.errors import UserError
from audiojax.tasks import registry
from audiojax.train.loop import Trainer


def small_config(mesh):
  c = ced_config.tagging()
  c.model.overrides = {"depth": 1}
  c.data.clip_seconds = 0.64
  c.train.batch_size = 8
  c.optim.warmup_steps = 1
  c.mesh = dict(zip(("data", "fsdp", "tensor"), mesh))
  return c


def run_steps(mesh, devices, steps=3):
  trainer = Trainer(registry.build(small_config(mesh), class_names=[f"c{i}" for i in range(6)]), devices=devices)
  state = trainer.init_state(0)
  step = trainer.compiled_train_step()
  rng = np.random.default_rng(0)
  losses = []
  for _ in range(steps):
    batch = {"wave": rng.standard_normal((8, 10240)).astype(np.float32) * 0.1,
             "labels": (rng.random((8, 6)) < 0.3).astype(np.float32)}
    with trainer.context():
      state, metrics = step(state, parallel.host_batch_to_global(batch, trainer.batch_sharding))
    losses.append(float(metrics["loss"]))
  return losses, jax.device_get(state.params), state


def test_same_training_on_one_and_eight_devices():
  assert jax.device_count() == 8, "conftest sets 8 simulated CPU devices"
  ref_losses, ref_params, _ = run_steps((1, 1, 1), jax.devices()[:1])
  assert ref_losses[-1] < ref_losses[0]
  for mesh in [(8, 1, 1), (2, 2, 2), (1, 2, 4)]:
    losses, params, state = run_steps(mesh, jax.devices())
    np.testing.assert_allclose(losses, ref_losses, rtol=2e-5, err_msg=str(mesh))
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
      np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-5, err_msg=str(mesh))
    if mesh == (1, 2, 4):  # the parameters really are sharded: fc1 kernel (embed → fsdp, mlp → tensor)
      spec = state.params["blocks_0"]["mlp"]["fc1"]["kernel"].sharding.spec
      assert tuple(spec) == ("fsdp", "tensor")
      # 3 heads do not divide tensor=4: that dimension falls back to replication instead of failing
      assert state.params["blocks_0"]["attn"]["qkv_kernel"].sharding.spec[2] is None


def test_mesh_from_config():
  mesh = parallel.make_mesh({"data": -1, "fsdp": 2, "tensor": 1})
  assert dict(mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
  assert all(t == AxisType.Auto for t in mesh.axis_types)
  with pytest.raises(UserError, match="needs 12 devices"):
    parallel.make_mesh({"data": 3, "fsdp": 4, "tensor": 1})
  with pytest.raises(UserError, match="at most one -1"):
    parallel.make_mesh({"data": -1, "fsdp": -1, "tensor": 1})


def test_batch_that_does_not_divide_the_mesh_is_a_clear_error():
  mesh = parallel.make_mesh({"data": 4, "fsdp": 2, "tensor": 1})
  with pytest.raises(UserError, match=r"config.train.batch_size=12 does not divide .* use a multiple of 8"):
    parallel.check_batch_divisible(12, mesh)
