"""Test setup: 8 simulated CPU devices (sharding tests), float32 matmuls at full precision."""
import atexit
import os
import shutil
import tempfile

from audiojax.tasks import registry

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("AUDIOJAX_COMPILATION_CACHE", "")  # in-process CLI calls compile afresh, like the rest

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
# Tests train the same small models again and again (a run, then its resumption; one config in many files): a
# compilation cache private to this test process compiles each program once. Subprocesses and the CLI's own cache
# stay off (AUDIOJAX_COMPILATION_CACHE above).
_XLA_CACHE = tempfile.mkdtemp(prefix="audiojax_test_xla_")
atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
jax.config.update("jax_compilation_cache_dir", _XLA_CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
  """The embedded corpus's tiny config, built once per test session."""
  from audiojax.data import builders
  data_dir = tmp_path_factory.mktemp("tfds")
  builders.build("gm_instruments/tiny", data_dir)
  return str(data_dir)


def smoke_config(data_dir, **train):
  """The demo experiment's smoke setting reading the session's tiny corpus."""
  from audiojax.config import loader as config_lib
  c = config_lib.load("experiments/ced/demo.py:local")
  c.data.data_dir = data_dir
  c.train.progress_bar = False
  for key, value in train.items():
    section, _, field = key.partition("__")
    c[section][field] = value
  return c


@pytest.fixture(scope="session")
def trained_workdir(tiny_data_dir, tmp_path_factory):
  """A workdir trained by the smoke config (checkpoint, config, class names, metrics)."""
  from audiojax.train import loop
  workdir = str(tmp_path_factory.mktemp("trained"))
  loop.train(registry.build(smoke_config(tiny_data_dir)), workdir)
  return workdir


@pytest.fixture(scope="session")
def espeak_tiny_dir(tmp_path_factory):
  """The synthetic speech corpus's tiny config (``espeak_prompt/tiny``), built once per test session."""
  if shutil.which("espeak-ng") is None and shutil.which("apt-get") is None:
    pytest.skip("neither espeak-ng nor apt-get is installed, so espeak-ng cannot be fetched")
  from audiojax.data.builders import espeak_prompt
  root = str(tmp_path_factory.mktemp("tfds"))
  espeak_prompt.EspeakPrompt(config="tiny", data_dir=root, file_format="array_record").download_and_prepare()
  return root
