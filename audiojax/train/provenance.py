"""What a run was made with: each start of ``train`` appends a record to ``WORKDIR/environment.json`` — the package
versions, the devices and process count, the audiojax source's git commit (and whether its tree was dirty) and the
command line — so that a result can be reproduced months later, also across resumes on other machines."""
from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import subprocess
import sys
from typing import Any

import jax

from audiojax import paths

FILE = "environment.json"
PACKAGES = ("audiojax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain", "numpy", "tensorflow-datasets",
            "ml-collections", "soundfile", "soxr", "sentencepiece", "torch")


def _versions() -> dict[str, str | None]:
  def version(name: str) -> str | None:
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      return None
  return {name: version(name) for name in PACKAGES}


def _git() -> dict[str, Any]:
  """The commit of the audiojax source tree and whether it had uncommitted changes (None outside a git checkout)."""
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  run = lambda *args: subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=10)
  try:
    commit = run("rev-parse", "HEAD")
    if commit.returncode:
      return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(run("status", "--porcelain").stdout.strip())}
  except (OSError, subprocess.TimeoutExpired):
    return {"commit": None, "dirty": None}


def environment() -> dict[str, Any]:
  """This process's environment, as one JSON-able record."""
  devices = jax.devices()
  return {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "command": [os.path.basename(sys.argv[0]), *sys.argv[1:]], "python": sys.version.split()[0],
          "packages": _versions(), "backend": jax.default_backend(), "process_count": jax.process_count(),
          "devices": {"count": len(devices), "kind": devices[0].device_kind}, "git": _git()}


def record(workdir: str, start_step: int) -> None:
  """Appends this run's environment, starting at ``start_step``, to ``WORKDIR/environment.json`` (atomically)."""
  path = paths.resolve(workdir) / FILE
  runs = []
  if path.is_file():
    try:
      runs = json.loads(path.read_text())["runs"]
    except (ValueError, KeyError, TypeError):
      runs = []  # an unreadable record is replaced, never a reason to stop training
  runs.append({"start_step": start_step, **environment()})
  paths.write_atomic(path, json.dumps({"runs": runs}, indent=2))
