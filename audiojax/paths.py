"""Where audiojax reads and writes by default: built datasets, and the cache of downloaded packages and compiled
programs. Each can be moved with an environment variable."""
from __future__ import annotations

import os


def default_data_dir() -> str:
  """Where datasets are built/read: ``$AUDIOJAX_DATA_DIR`` or ``./data/tfds``."""
  return os.environ.get("AUDIOJAX_DATA_DIR", os.path.join("data", "tfds"))


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/audiojax`` (``~/.cache/audiojax``): downloaded packages and compiled programs."""
  return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "audiojax")
