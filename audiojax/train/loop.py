"""The one trainer: task → mesh → sharded state → jit-ed steps → metrics, checkpoints, evaluation, resume.

``train(task, workdir)`` resumes from the newest checkpoint in ``workdir`` (state *and* data iterator), so a run
that is killed and restarted ends with the same parameters as one that never stopped. The task
(:mod:`audiojax.tasks.base`) supplies the model, data, loss and evaluation; the trainer keeps, for every task alike:
one optimiser per parameter group (``config.optim`` or ``config.optim.<group>``), an optional EMA of the weights
(``config.train.ema_decay``: evaluated and exported in place of the raw weights), frozen stages (loaded once,
sharded by the same rules, never checkpointed), gradient accumulation and the logical-axis shardings.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from audiojax import parallel, paths
from audiojax.config import loader as config_loader
from audiojax.errors import UserError
from audiojax.train import checkpoint, export, provenance
from audiojax.train import metrics as metrics_lib
from audiojax.train.state import TrainState, create, ema_subtree, make_optimizers, param_path, update_ema, with_ema

log = logging.getLogger("audiojax")


class TrainingDiverged(UserError):
  """The loss became NaN/inf; training stopped without checkpointing the bad state."""


class Trainer:
  """Holds the compiled pieces for one task on one mesh (used by train, eval and checkpoint averaging)."""

  def __init__(self, task: Any, devices: list[jax.Device] | None = None):
    self.task = task
    self.config = config = task.config
    self.mesh = parallel.make_mesh(config.mesh, devices)
    self.rules = parallel.rules_from_config(config.sharding.rules)
    self.batch_sharding = parallel.batch_sharding(self.mesh)
    self.groups = tuple(task.param_groups) if task.param_groups else None
    self.ema_groups = tuple(task.ema_groups) if self.groups and task.ema_groups else None
    self.ema_decay = float(config.train.get("ema_decay", 0.0) or 0.0)
    if not 0.0 <= self.ema_decay < 1.0:
      raise UserError(f"config.train.ema_decay={self.ema_decay} must lie in [0, 1) (0 turns the EMA off)")
    self.optimizers = make_optimizers(config.optim, self.groups, int(config.train.steps))
    self.state_shardings, self.abstract_state = self._shardings()
    self.frozen_shardings, self.frozen = self._load_frozen_stages()

  @property
  def schedule(self) -> Callable:
    """The learning-rate schedule of a single-group task."""
    return self.optimizers[None][1]

  @contextlib.contextmanager
  def context(self):
    """Mesh + logical-axis rules, active while tracing anything that shards."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  def _create(self, params: Any, model_state: Any) -> TrainState:
    return create(params, model_state, self.optimizers, self.ema_groups, ema=self.ema_decay > 0)

  def _init_boxed(self, rng: jax.Array) -> TrainState:
    batch = jax.tree.map(jnp.asarray, self.task.example_batch(parallel.batch_size_per_shard(self.mesh)))
    variables = self.task.init_variables(rng, batch)
    params = variables.pop("params")
    return self._create(params, variables)

  def _shardings(self):
    with self.context():
      abstract_boxed = jax.eval_shape(self._init_boxed, jax.random.key(0))
    shardings = parallel.logical_shardings(abstract_boxed, self.mesh, self.rules)
    abstract = checkpoint.abstract_with_shardings(nn.meta.unbox(abstract_boxed), shardings)
    return shardings, abstract

  def _load_frozen_stages(self) -> tuple[dict, dict]:
    """Each of the task's frozen stages, restored once into the shardings its logical axes give."""
    shardings, frozen = {}, {}
    for name, stage in self.task.frozen_stages().items():
      with self.context():
        boxed = jax.eval_shape(lambda s=stage: s.model.init(jax.random.key(0), *s.inputs))
      shardings[name] = parallel.logical_shardings(boxed, self.mesh, self.rules)
      abstract = checkpoint.abstract_with_shardings(nn.meta.unbox(boxed), shardings[name])
      frozen[name] = checkpoint.restore_variables(stage.path, abstract)
      log.info("frozen stage %s from %s", name, stage.path)
    return shardings, frozen

  def init_state(self, seed: int) -> TrainState:
    """Fresh state, or (``config.init.checkpoint``) one starting from pretrained weights for fine-tuning."""
    init = jax.jit(lambda rng: nn.meta.unbox(self._init_boxed(rng)), out_shardings=self.state_shardings)
    with self.context():
      state = init(jax.random.key(seed))
    path = self.config.init.checkpoint
    return self._from_pretrained(state, path) if path else state

  def _from_pretrained(self, state: TrainState, path: str) -> TrainState:
    fresh = jax.device_get({"params": state.params, **state.model_state})
    variables, reinitialised = merge_pretrained(fresh, self.task.pretrained_variables(path), path,
                                                reinit=tuple(self.config.init.reinit),
                                                head=tuple(self.task.head_prefixes))
    log.info("initialised from %s%s", path, f"; new {', '.join(reinitialised)}" if reinitialised else "")
    params = variables.pop("params")
    build = jax.jit(self._create, out_shardings=self.state_shardings)
    with self.context():
      return build(params, variables)

  # --- steps -------------------------------------------------------------------------------------------------------
  def grads(self, loss_fn: Callable, params: Any, model_state: Any, batch: dict[str, jax.Array], rng: jax.Array,
            step: jax.Array) -> tuple[Any, dict[str, jax.Array], Any]:
    """``(grads, metrics, new model_state)`` of ``loss_fn(params, model_state, batch, rng, step) → (loss, (metrics,
    model_state))``, averaged over ``config.train.grad_accum_steps`` microbatches."""
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    accum = int(self.config.train.grad_accum_steps)
    if accum == 1:
      (_, (metrics, model_state)), grads = grad_fn(params, model_state, batch, rng, step)
      return grads, metrics, model_state

    def split(x):  # microbatch i = rows i::accum, so each microbatch stays spread over every batch shard
      return jnp.swapaxes(x.reshape(x.shape[0] // accum, accum, *x.shape[1:]), 0, 1)

    def body(carry, micro):
      grads_sum, model_state, i = carry
      (_, (metrics, model_state)), grads = grad_fn(params, model_state, micro, jax.random.fold_in(rng, i), step)
      return (jax.tree.map(jnp.add, grads_sum, grads), model_state, i + 1), metrics

    zeros = jax.tree.map(jnp.zeros_like, params)
    (grads, model_state, _), metrics = jax.lax.scan(body, (zeros, model_state, 0), jax.tree.map(split, batch))
    return jax.tree.map(lambda g: g / accum, grads), jax.tree.map(jnp.mean, metrics), model_state

  def apply_gradients(self, state: TrainState, grads: Any, group: str | None = None
                      ) -> tuple[TrainState, dict[str, jax.Array]]:
    """``state`` with ``grads`` applied by the optimiser of ``group`` (None: the single group), and the gradient
    norm and learning rate it used. The step counter and the EMA are the trainer's (:meth:`train_step`)."""
    tx, schedule = self.optimizers[group]
    params = state.params if group is None else state.params[group]
    opt_state = state.opt_state if group is None else state.opt_state[group]
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(jnp.add, params, updates)
    if group is not None:
      params, opt_state = {**state.params, group: params}, {**state.opt_state, group: opt_state}
    return state.replace(params=params, opt_state=opt_state), {"grad_norm": _global_norm(grads),
                                                                "lr": schedule(state.step)}

  def _default_step(self, state: TrainState, batch: dict[str, jax.Array], rng: jax.Array, frozen: dict
                    ) -> tuple[TrainState, dict[str, jax.Array]]:
    """One update of the single group, or one of each group in ``task.param_groups`` order."""
    if self.groups is None:
      loss_fn = functools.partial(self.task.loss, frozen=frozen)
      grads, metrics, model_state = self.grads(loss_fn, state.params, state.model_state, batch, rng, state.step)
      state, stats = self.apply_gradients(state.replace(model_state=model_state), grads)
      return state, {**metrics, **stats}
    metrics, total = {}, 0.0
    for i, group in enumerate(self.groups):
      def loss_fn(group_params, model_state, batch, rng, step, group=group, params=state.params):
        return self.task.loss({**params, group: group_params}, model_state, batch, rng, step, frozen=frozen,
                              group=group)
      grads, group_metrics, model_state = self.grads(loss_fn, state.params[group], state.model_state, batch,
                                                     jax.random.fold_in(rng, i), state.step)
      state, stats = self.apply_gradients(state.replace(model_state=model_state), grads, group)
      metrics.update({f"{group}/{k}": v for k, v in {**group_metrics, **stats}.items()})
      total = total + group_metrics["loss"]
    return state, {**metrics, "loss": total}

  def train_step(self, state: TrainState, batch: dict[str, jax.Array], frozen: dict
                 ) -> tuple[TrainState, dict[str, jax.Array]]:
    rng = jax.random.fold_in(jax.random.key(int(self.config.seed)), state.step)
    custom = getattr(self.task, "train_step", None)
    state, metrics = (custom(self, state, batch, rng, frozen) if custom is not None
                      else self._default_step(state, batch, rng, frozen))
    if state.ema is not None:
      state = state.replace(ema=update_ema(state.ema, ema_subtree(state.params, self.ema_groups), self.ema_decay))
    return state.replace(step=state.step + 1), metrics

  @functools.cached_property
  def jitted_train_step(self) -> Callable:
    """``step(state, batch, frozen) → (state, metrics)``, jit-ed with the shardings of the state, the batch and the
    frozen stages (arguments, not constants baked into the program); the state is donated."""
    batch_shardings = jax.tree.map(lambda _: self.batch_sharding, self.task.example_batch(1))
    return jax.jit(self.train_step, in_shardings=(self.state_shardings, batch_shardings, self.frozen_shardings),
                   out_shardings=(self.state_shardings, parallel.replicated(self.mesh)), donate_argnums=0)

  def compiled_train_step(self) -> Callable:
    """``step(state, batch) → (state, metrics)``: :attr:`jitted_train_step` with this trainer's frozen stages."""
    return lambda state, batch: self.jitted_train_step(state, batch, self.frozen)

  def variables(self, state: TrainState) -> dict[str, Any]:
    """What evaluation and export read: the params (the EMA in their place when kept) and the model state."""
    return {"params": with_ema(state.params, state.ema, self.ema_groups), **state.model_state}

  @functools.cached_property
  def _jitted_predict(self) -> Callable:
    return jax.jit(self.task.predict, out_shardings=self.batch_sharding)

  def predict_fn(self, state: TrainState) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Host batch → task outputs gathered to numpy on every host."""
    variables = self.variables(state)

    def predict(batch):
      with self.context():
        out = self._jitted_predict(variables, parallel.host_batch_to_global(batch, self.batch_sharding),
                                   frozen=self.frozen)
      if jax.process_count() == 1:
        return jax.tree.map(np.asarray, out)
      return jax.tree.map(np.asarray, multihost_utils.process_allgather(out, tiled=True))

    return predict

  def evaluate(self, state: TrainState) -> dict[str, float]:
    parallel.check_batch_divisible(int(self.config.eval.batch_size), self.mesh, "eval.batch_size")
    return self.task.evaluate(self.predict_fn(state))

  def restore(self, workdir: str, step: int | None = None, iterator: Any | None = None) -> TrainState:
    step = checkpoint.require_latest_step(workdir) if step is None else step
    with checkpoint.manager(workdir, read_only=True) as mngr:
      return checkpoint.restore(mngr, step, self.abstract_state, iterator)

  def export(self, state: TrainState, path: str, force: bool = False) -> None:
    """Writes ``state``'s variables as the task's model directory ``path`` (on the first process)."""
    if jax.process_index() == 0:
      self.task.export(path, jax.device_get(self.variables(state)), force=force)


def merge_pretrained(fresh: dict, pretrained: dict, source: str, reinit: tuple[str, ...] = (),
                     head: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
  """Pretrained values for every variable of ``fresh`` (same structure), except paths under ``reinit`` and head
  paths whose shape changed (a new label set): those keep their fresh initialisation. Returns (variables, kept
  fresh paths). Any other missing or mismatched variable is a UserError: the checkpoint is another model."""
  flat_pre = {param_path(k): v for k, v in jax.tree_util.tree_flatten_with_path(pretrained)[0]}
  kept: list[str] = []

  def pick(path, value):
    name = param_path(path)
    if name.startswith(reinit) if reinit else False:
      kept.append(name)
      return value
    if name not in flat_pre:
      raise UserError(f"checkpoint '{source}' has no '{name}'; it is not the model config.model describes")
    old = np.asarray(flat_pre[name])
    if old.shape != value.shape:
      if head and name.startswith(head):
        kept.append(name)
        return value
      raise UserError(f"checkpoint '{source}' has '{name}' of shape {old.shape} but the model needs {value.shape}; "
                      f"use the same config.model (variant, overrides) as the checkpoint")
    return old.astype(value.dtype)

  merged = jax.tree_util.tree_map_with_path(pick, fresh)
  return merged, kept


def _global_norm(tree: Any) -> jax.Array:
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)))


def check_config(config: Any) -> None:
  """The trainer's fields: each a UserError naming the key when out of range (before anything is written)."""
  positive = {"train.steps": config.train.steps, "train.batch_size": config.train.batch_size,
              "train.grad_accum_steps": config.train.grad_accum_steps, "train.log_every": config.train.log_every,
              "eval.batch_size": config.eval.batch_size, "checkpoint.every_steps": config.checkpoint.every_steps,
              "checkpoint.keep": config.checkpoint.keep}
  for key, value in positive.items():
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise UserError(f"config.{key}={value!r} must be a positive integer")
  for key, value in {"eval.every_steps": config.eval.every_steps,
                     "checkpoint.average_best": config.checkpoint.average_best}.items():
    if not isinstance(value, int) or value < 0:
      raise UserError(f"config.{key}={value!r} must be 0 (off) or a positive integer")


def _check_batch(config: Any, mesh) -> None:
  parallel.check_batch_divisible(int(config.train.batch_size), mesh)
  accum = int(config.train.grad_accum_steps)
  shards = parallel.batch_size_per_shard(mesh)
  if int(config.train.batch_size) % (accum * shards):
    raise UserError(f"config.train.batch_size={config.train.batch_size} must be a multiple of "
                    f"train.grad_accum_steps ({accum}) × data×fsdp shards ({shards})")


def check_workdir(workdir: str) -> None:
  """``workdir`` can be a training workdir: not a file, not a model directory (a UserError otherwise)."""
  folder = paths.resolve(workdir)
  if folder.exists() and not folder.is_dir():
    raise UserError(f"--workdir '{workdir}' is a file; give a folder (it is created if missing)")
  if export.is_model_dir(workdir):
    raise UserError(f"--workdir '{workdir}' is a model directory (model.json), not a training workdir; train into "
                    f"a new folder and start from it with --config.init.checkpoint={workdir}")


def make_workdir(workdir: str) -> None:
  """Creates ``workdir`` (a UserError when it cannot be written)."""
  try:
    paths.resolve(workdir).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create --workdir '{workdir}' ({e.strerror or e}); choose a folder you can write") from None
  if not paths.is_uri(workdir) and not os.access(paths.resolve(workdir), os.W_OK | os.X_OK):
    raise UserError(f"--workdir '{workdir}' is not writable; fix its permissions or choose another folder")


class TrainingInterrupted(Exception):
  """SIGTERM or SIGINT stopped training after a checkpoint of the step in progress; rerunning resumes there."""

  def __init__(self, signum: int, step: int, workdir: str):
    self.signum, self.step, self.workdir = signum, step, workdir
    super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}: saved a checkpoint in "
                     f"{checkpoint.checkpoint_dir(workdir)}; rerun the same command to resume")


class _Interrupts:
  """While active (main thread only), SIGTERM and SIGINT set :attr:`signum` instead of killing the process; the loop
  checkpoints and stops at the end of the step. A second signal acts at once, as without the guard."""

  def __init__(self):
    self.signum: int | None = None
    self._previous: dict[int, Any] = {}

  def _handle(self, signum, frame):
    if self.signum is not None:  # the second one: the default behaviour
      self._restore()
      signal.raise_signal(signum)
      return
    self.signum = signum

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _restore(self):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def __exit__(self, *exc):
    self._restore()


def _save_failed(error: BaseException, workdir: str) -> UserError:
  """The one line for a checkpoint that could not be written, naming the step a rerun resumes from."""
  saved = checkpoint.steps(workdir)
  resume = f"training resumes from step {saved[0]}" if saved else "training starts again"
  return UserError(f"writing a checkpoint in {checkpoint.checkpoint_dir(workdir)} failed "
                   f"({checkpoint.first_line(error)}); free disk space or fix the folder's permissions, then rerun "
                   f"the same command: {resume}")


class _PendingMetrics:
  """Step metrics stay on device until a log point, so the host never waits on the step in flight."""

  def __init__(self):
    self.items: list[tuple[int, dict[str, jax.Array]]] = []

  def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
    self.items.append((step, metrics))

  def flush(self, last_good: int | None, workdir: str) -> dict[str, float]:
    """Fetches pending metrics, raises TrainingDiverged at the first non-finite loss, returns their mean."""
    fetched = jax.device_get(self.items)
    self.items = []
    for step, m in fetched:
      if not np.isfinite(m["loss"]):
        where = (f"the last good checkpoint is step {last_good} in {checkpoint.checkpoint_dir(workdir)}"
                 if last_good is not None else "no checkpoint was written")
        raise TrainingDiverged(f"training diverged: loss is {float(m['loss'])} at step {step} ({where}); "
                               f"lower optim.lr, raise optim.warmup_steps or set optim.clip_norm")
    if not fetched:
      return {}
    return {k: float(np.mean([m[k] for _, m in fetched])) for k in fetched[-1][1]}


def train(task: Any, workdir: str, *, until_step: int | None = None) -> dict[str, Any]:
  """Trains (or resumes) ``task`` (built from its config by :func:`audiojax.tasks.registry.build`) in ``workdir`` up
  to ``config.train.steps`` (or ``until_step``, then stops with a checkpoint, e.g. for staged runs). Returns the last
  logged train metrics and the final eval metrics.

  Nothing is lost: the workdir's ``config.json`` is written only once the state has been restored (a config that
  does not fit the checkpoints changes nothing); an unreadable newest checkpoint is skipped for the newest intact
  one; a failed save stops training at once; SIGTERM/SIGINT checkpoint the step in progress and raise
  :class:`TrainingInterrupted`; a rerun of a finished run completes a missing final evaluation; ``metrics.jsonl``
  keeps no rows past the step training resumed from."""
  config = task.config
  check_config(config)
  check_workdir(workdir)
  trainer = Trainer(task)
  _check_batch(config, trainer.mesh)
  make_workdir(workdir)
  total = int(config.train.steps)
  stop = total if until_step is None else min(int(until_step), total)

  iterator = iter(task.train_dataset(int(config.seed)))
  if checkpoint.steps(workdir):
    state, start = checkpoint.restore_newest(workdir, lambda step: trainer.restore(workdir, step, iterator),
                                             quarantine=True)
    log.info("resumed from step %d in %s", start, checkpoint.checkpoint_dir(workdir))
  else:
    start, state = 0, trainer.init_state(int(config.seed))
  if jax.process_index() == 0:  # only now: a config that does not fit the checkpoints has changed nothing
    config_loader.save(config, paths.resolve(workdir) / "config.json")
    if task.class_names is not None:
      export.write_class_names(workdir, task.class_names)
    task.save_assets(workdir)
    provenance.record(workdir, start)
  mngr = checkpoint.manager(workdir, keep=int(config.checkpoint.keep), async_save=bool(config.checkpoint.async_save))
  last_good = start if start else None
  writer = metrics_lib.MetricWriter(workdir, resumed_from=start)
  if start == 0 and config.eval.get("at_start", False):
    writer.write(0, trainer.evaluate(state))
  step_fn = trainer.compiled_train_step()
  pending = _PendingMetrics()
  log_every, ckpt_every = int(config.train.log_every), int(config.checkpoint.every_steps)
  eval_every = int(config.eval.every_steps)
  bar = tqdm(total=stop, initial=start, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0,
             disable=jax.process_index() != 0 or not config.train.progress_bar)
  window_start, window_steps = None, 0
  loop_start = time.perf_counter()  # not tqdm's clock: a disabled bar reports 0 s elapsed
  train_metrics: dict[str, float] = {}
  eval_metrics: dict[str, float] = {}

  def save(step: int) -> None:
    try:
      mngr.check_for_errors()  # an earlier background save that failed stops training here
      checkpoint.save(mngr, step, state, iterator)
    except Exception as e:  # noqa: BLE001 (disk full, permissions: any failure to persist)
      raise _save_failed(e, workdir) from None

  try:
    with _Interrupts() as interrupts:
      for step in range(start + 1, stop + 1):
        batch = parallel.host_batch_to_global(next(iterator), trainer.batch_sharding)
        with trainer.context():
          state, step_metrics = step_fn(state, batch)
        pending.add(step, step_metrics)
        bar.update(1)
        saved = False
        first = window_start is None
        if first:  # the first step includes compilation: time from its end
          jax.block_until_ready(state.step)
          window_start = time.perf_counter()
          writer.write(step, {"compile_and_first_step_seconds": window_start - loop_start})
          pending.flush(last_good, workdir)
          bar.reset(total=stop)  # the bar's rate and time left count from here: compilation left out
          bar.initial = step
          bar.update(step)
        else:
          window_steps += 1
        at_end = step == stop
        if not first and (step % log_every == 0 or at_end or step % ckpt_every == 0):
          try:
            mngr.check_for_errors()  # a background save that failed stops training here, not at the end
          except Exception as e:  # noqa: BLE001
            raise _save_failed(e, workdir) from None
          train_metrics = pending.flush(last_good, workdir)
          elapsed = time.perf_counter() - window_start
          train_metrics["examples_per_sec"] = window_steps * int(config.train.batch_size) / max(elapsed, 1e-9)
          writer.write(step, train_metrics)
          bar.set_postfix(loss=f"{train_metrics['loss']:.4f}", ex_s=f"{train_metrics['examples_per_sec']:.1f}")
          window_start, window_steps = time.perf_counter(), 0
        if step % ckpt_every == 0 or at_end:
          save(step)
          saved, last_good = True, step
          window_start, window_steps = time.perf_counter(), 0  # throughput excludes checkpointing
        if (eval_every and step % eval_every == 0) or step == total:
          eval_metrics = trainer.evaluate(state)
          writer.write(step, eval_metrics)
          writer.write_summaries(step, task.eval_summaries())
          if jax.process_index() == 0:  # the curve is current after every evaluation, not only at the end
            metrics_lib.plot_training_curve(workdir, task.primary_metric)
          bar.write(f"step {step}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                   for k, v in eval_metrics.items()))
          window_start, window_steps = time.perf_counter(), 0
        if interrupts.signum is not None:
          pending.flush(last_good, workdir)
          if not saved:
            save(step)
          mngr.wait_until_finished()
          raise TrainingInterrupted(interrupts.signum, step, workdir)
  finally:
    in_flight = sys.exc_info()[1]
    bar.close()
    try:
      mngr.wait_until_finished()
      mngr.check_for_errors()
    except Exception as e:  # noqa: BLE001
      if in_flight is None:
        raise _save_failed(e, workdir) from None
      log.warning("a checkpoint save failed too: %s", checkpoint.first_line(e))
    finally:
      mngr.close()
      writer.close()
      if hasattr(iterator, "close"):
        iterator.close()
  if stop == total:
    eval_metrics = eval_metrics or _final_eval(trainer, state, workdir, total)
    if int(config.checkpoint.average_best) > 0:
      averaged = _recorded(workdir, total, "averaged_steps")
      if averaged is None:
        averaged = average_best_checkpoints(trainer, workdir, int(config.checkpoint.average_best))
        metrics_lib.MetricWriter(workdir).write(total, averaged)
      eval_metrics = {**eval_metrics, **{k: v for k, v in averaged.items() if "averaged" in k}}
    if jax.process_index() == 0:
      metrics_lib.plot_training_curve(workdir, task.primary_metric)
  return {"train": train_metrics, "eval": eval_metrics, "step": stop}


def _recorded(workdir: str, step: int, key: str) -> dict[str, Any] | None:
  """The merged ``metrics.jsonl`` rows of ``step`` when one holds ``key``, else None."""
  rows = [r for r in metrics_lib.read(workdir) if r["step"] == step]
  if not any(key in r for r in rows):
    return None
  return {k: v for r in rows for k, v in r.items() if k != "step"}


def _final_eval(trainer: Trainer, state: TrainState, workdir: str, total: int) -> dict[str, Any]:
  """The final evaluation of a finished run: read back from ``metrics.jsonl``, or run now when the run that
  trained it was stopped before it (and recorded)."""
  key = trainer.task.primary_metric or "eval/examples"
  recorded = _recorded(workdir, total, key)
  if recorded is not None:
    return {k: v for k, v in recorded.items() if k.startswith("eval/")}
  log.info("step %d has no final evaluation in %s; evaluating now", total, workdir)
  result = trainer.evaluate(state)
  metrics_lib.MetricWriter(workdir).write(total, result)
  return result


def average_checkpoints(trainer: Trainer, workdir: str, steps: Sequence[int]) -> TrainState:
  """The state of ``steps[0]`` with the parameters, model state and EMA replaced by their mean over the
  checkpoints of ``steps`` (icefall's ``--avg``)."""
  first = trainer.restore(workdir, steps[0])
  total = (first.params, first.model_state, first.ema)
  for step in steps[1:]:  # a running sum: two states in memory, however many are averaged
    state = trainer.restore(workdir, step)
    total = jax.tree.map(jnp.add, total, (state.params, state.model_state, state.ema))
  params, model_state, ema = jax.tree.map(lambda x: x / len(steps), total)
  return first.replace(params=params, model_state=model_state, ema=ema)


def average_best_checkpoints(trainer: Trainer, workdir: str, n: int) -> dict[str, Any]:
  """Averages the parameters (and model state) of the ``n`` kept checkpoints with the best eval metric, evaluates
  the average and exports it as the model directory ``WORKDIR/averaged``."""
  key = trainer.task.primary_metric
  with checkpoint.manager(workdir, read_only=True) as mngr:
    kept = set(mngr.all_steps())
  scored = {r["step"]: r[key] for r in metrics_lib.read(workdir) if key in r and r["step"] in kept}
  if not scored:
    raise UserError(f"checkpoint.average_best={n} but no kept checkpoint was evaluated; make checkpoint.every_steps "
                    f"a multiple of eval.every_steps and checkpoint.keep large enough")
  higher_is_better = trainer.task.primary_metric_mode == "max"
  best = sorted(scored, key=scored.get, reverse=higher_is_better)[:n]
  averaged = average_checkpoints(trainer, workdir, best)
  result = {f"{key.replace('eval/', 'eval/averaged_')}": trainer.evaluate(averaged)[key],
            "averaged_steps": sorted(best)}
  trainer.export(averaged, str(paths.resolve(workdir) / "averaged"), force=True)
  return result


def export_average_of_last(task: Any, workdir: str, n: int, out: str, force: bool = False) -> list[int]:
  """Exports the mean of the newest ``n`` kept checkpoints of ``workdir`` (trained by ``task``'s config) as the
  model directory ``out`` (any ``--checkpoint`` reads it). Returns the averaged steps."""
  with checkpoint.manager(workdir, read_only=True) as mngr:
    kept = sorted(mngr.all_steps())
  if not 1 <= n <= len(kept):
    raise UserError(f"cannot average the last {n} checkpoints of '{workdir}', which keeps {len(kept)} {kept}; pass "
                    f"--last between 1 and {len(kept)}")
  steps = kept[-n:]
  export.check_writable(out, force)
  trainer = Trainer(task)
  trainer.export(average_checkpoints(trainer, workdir, steps), out, force=force)
  return steps


def export_workdir(task: Any, workdir: str, out: str, force: bool = False) -> int:
  """Writes the newest intact checkpoint of ``workdir`` (parameters only, the EMA in their place when kept) as the
  model directory ``out`` with its model card (:func:`audiojax.train.export.write_model_card`); returns the step."""
  out = str(paths.resolve(out))
  export.check_writable(out, force)
  variables, step = checkpoint.restore_newest(
      workdir, lambda step: checkpoint.restore_step_variables(workdir, step, None, use_ema=True))
  task.export(out, variables, force=force)
  export.write_model_card(out, workdir, step, task.model.__class__.__name__)
  return step


def evaluate(task: Any, workdir: str) -> dict[str, float]:
  """Evaluates the newest checkpoint of ``workdir`` with ``task`` (built from the workdir's config)."""
  trainer = Trainer(task)
  state, step = checkpoint.restore_newest(workdir, lambda step: trainer.restore(workdir, step))
  return {"step": step, **trainer.evaluate(state)}
