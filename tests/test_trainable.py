"""config.optim.trainable: only the params whose path matches the regex move, exactly as if they were alone."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from audiojax.config import prompt_asr as prompt_asr_config
from audiojax.errors import UserError
from audiojax.train.state import create, make_optimizer, param_path


def _params():
  rng = np.random.default_rng(0)
  draw = lambda *shape: jnp.asarray(rng.standard_normal(shape), jnp.float32)
  return {"layer0": {"cross_attn": {"query": {"kernel": draw(4, 3)}}, "ff": {"kernel": draw(4, 4), "bias": draw(4)}},
          "prompt_encoder": {"embed": {"embedding": draw(5, 3)}}}


def _loss(params):  # every leaf gets a gradient, large enough that global-norm clipping is active
  return sum(jnp.sum(jnp.square(3.0 * p - 1.0)) for p in jax.tree.leaves(params))


def _run(params, optim, steps=4):
  tx, _ = make_optimizer(optim, 10)

  @jax.jit
  def step(state):  # the trainer's update (train/loop.py)
    updates, opt_state = tx.update(jax.grad(_loss)(state.params), state.opt_state, state.params)
    return state.replace(params=jax.tree.map(jnp.add, state.params, updates), opt_state=opt_state)

  state = create(params, {}, tx)
  for _ in range(steps):
    state = step(state)
  return jax.device_get(state.params), state.opt_state


def _optim(**overrides):
  optim = prompt_asr_config.asr().optim
  optim.warmup_steps, optim.weight_decay, optim.clip_norm = 1, 0.01, 1.0
  for key, value in overrides.items():
    optim[key] = value
  return optim


def test_frozen_params_stay_bitwise_and_trained_ones_match_training_them_alone():
  params = _params()
  got, opt_state = _run(params, _optim(trainable="cross_attn|prompt_encoder"))
  np.testing.assert_array_equal(got["layer0"]["ff"]["kernel"], params["layer0"]["ff"]["kernel"])
  np.testing.assert_array_equal(got["layer0"]["ff"]["bias"], params["layer0"]["ff"]["bias"])
  alone = {"layer0": {"cross_attn": params["layer0"]["cross_attn"]}, "prompt_encoder": params["prompt_encoder"]}
  reference, _ = _run(alone, _optim())  # the same AdamW (clipping and decay included) on the trained params only
  np.testing.assert_allclose(got["layer0"]["cross_attn"]["query"]["kernel"],
                             reference["layer0"]["cross_attn"]["query"]["kernel"], rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(got["prompt_encoder"]["embed"]["embedding"],
                             reference["prompt_encoder"]["embed"]["embedding"], rtol=1e-6, atol=1e-7)
  moved = got["prompt_encoder"]["embed"]["embedding"] - params["prompt_encoder"]["embed"]["embedding"]
  assert np.abs(moved).max() > 1e-3
  moments = sum(x.size for x in jax.tree.leaves(opt_state) if x.ndim > 0)
  assert moments == 2 * (4 * 3 + 5 * 3)  # Adam's mu and nu for the trained params only


def test_param_path_and_a_regex_matching_nothing():
  paths = [param_path(p) for p, _ in jax.tree_util.tree_flatten_with_path(_params())[0]]
  assert "layer0/cross_attn/query/kernel" in paths
  with pytest.raises(UserError, match=r"config.optim.trainable='decoder' matches no parameter"):
    _run(_params(), _optim(trainable="decoder"), steps=1)


def test_a_logically_partitioned_param_is_labelled_whole_by_its_own_path():
  import flax.linen as nn

  from audiojax.train.state import trainable_labels
  boxed = {"head": {"kernel": nn.LogicallyPartitioned(jnp.zeros((2, 3)), ("embed", "vocab")), "bias": jnp.zeros(3)}}
  labels = trainable_labels("kernel$")(boxed)
  assert labels == {"head": {"kernel": "train", "bias": "frozen"}}


def test_scaled_lr_params_move_factor_times_as_far_and_the_rest_as_without_scaling():
  """config.optim.scaled_lr_params: the first step with a non-zero lr (the warmup's first is 0, so Adam's moments,
  which ignore the lr, see the same gradients in both runs) moves the matching params exactly ``scaled_lr_factor``
  times as far as unscaled training does; the others move exactly as unscaled; both combine with ``trainable``."""
  params = _params()
  base, _ = _run(params, _optim(), steps=2)
  got, _ = _run(params, _optim(scaled_lr_params="cross_attn", scaled_lr_factor=10.0), steps=2)
  query = lambda tree: tree["layer0"]["cross_attn"]["query"]["kernel"]
  delta = lambda tree: query(tree) - query(params)
  assert np.abs(delta(base)).max() > 1e-4
  np.testing.assert_allclose(delta(got), 10.0 * delta(base), rtol=1e-5, atol=1e-6)  # float32 sums near 1
  np.testing.assert_array_equal(got["layer0"]["ff"]["kernel"], base["layer0"]["ff"]["kernel"])
  np.testing.assert_array_equal(got["prompt_encoder"]["embed"]["embedding"],
                                base["prompt_encoder"]["embed"]["embedding"])
  both, _ = _run(params, _optim(trainable="cross_attn|prompt_encoder", scaled_lr_params="cross_attn",
                                scaled_lr_factor=10.0), steps=2)
  np.testing.assert_array_equal(both["layer0"]["ff"]["kernel"], params["layer0"]["ff"]["kernel"])
  assert np.abs(both["prompt_encoder"]["embed"]["embedding"] - params["prompt_encoder"]["embed"]["embedding"]).max() > 0
  with pytest.raises(UserError, match=r"config.optim.scaled_lr_params='decoder' matches no parameter"):
    _run(params, _optim(scaled_lr_params="decoder"), steps=2)
