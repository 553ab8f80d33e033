"""Debian packages without root: ``apt-get download`` and ``dpkg-deb -x`` into a cache, one folder per package.

Serves the datasets built from Debian packages (``debsfx``, ``debspeech``, ``asterisk_en``) and the espeak-ng fetch
(``espeak``).
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import subprocess
import tempfile

from audiojax.errors import UserError

log = logging.getLogger("audiojax")

# The folder name is that of the first user (debsfx); kept so the packages unpacked before stay found.
_ROOT = "debsfx"
_UNPACKED = ".debsfx-unpacked"  # written into a package folder once dpkg-deb finished


def manual_command(packages: list[str], target: str) -> str:
  """The shell commands that fetch and unpack ``packages`` into ``target`` by hand."""
  return (f"apt-get download {' '.join(packages)} && for f in *.deb; do dpkg-deb -x \"$f\" {target}/\"${{f%%_*}}\"; "
          f"done, then pass --manual-dir {target}")


def _run(command: list[str], cwd: str, fix: str, show_progress: bool = False) -> None:
  """Runs ``command``; UserError naming its last error line and ``fix`` if it fails. ``show_progress``: its
  output lines (apt's ``Get:N ... [size]`` per package) are logged as they come, so a long download is seen."""
  with tempfile.TemporaryFile("w+") as errors:  # a file, not a pipe: a chatty stderr cannot block the stdout reader
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=errors, text=True) as proc:
      for line in proc.stdout:
        if show_progress and line.strip():
          log.info("%s", line.strip())
    errors.seek(0)
    stderr = errors.read()
  if proc.returncode != 0:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("W:")]
    reason = lines[-1].strip() if lines else f"exit status {proc.returncode}"
    raise UserError(f"'{' '.join(command[:2])} ...' failed ({reason}); {fix}")


def _newest_deb(folder: str, package: str) -> str | None:
  """The most recently downloaded ``<package>_*.deb`` in ``folder``, or None."""
  debs = glob.glob(os.path.join(glob.escape(folder), f"{glob.escape(package)}_*.deb"))
  return max(debs, key=os.path.getmtime) if debs else None


def fetch_packages(packages: list[str], cache_dir: str) -> str:
  """Downloads and unpacks each of ``packages`` not yet unpacked under ``cache_dir``; returns the unpacked root.

  The .debs go to ``<cache_dir>/debs`` and package ``p`` is unpacked into ``<cache_dir>/debsfx/p``. Raises
  UserError, with the commands to run by hand, when apt-get or dpkg-deb is missing or fails.
  """
  root, debs = os.path.join(cache_dir, _ROOT), os.path.join(cache_dir, "debs")
  todo = [p for p in packages if not os.path.exists(os.path.join(root, p, _UNPACKED))]
  if not todo:
    return root
  manual = manual_command(packages, root)
  for tool in ("apt-get", "dpkg-deb"):
    if shutil.which(tool) is None:
      raise UserError(f"fetching Debian packages needs '{tool}', which is not installed here; on a Debian or "
                      f"Ubuntu machine run: {manual}")
  os.makedirs(debs, exist_ok=True)
  to_download = [p for p in todo if _newest_deb(debs, p) is None]
  if to_download:
    log.info("apt: downloading %d Debian packages into %s", len(to_download), debs)
    _run(["apt-get", "download", *to_download], debs,
         f"if apt has no package lists run 'apt-get update' (as root), or fetch them by hand: {manual}",
         show_progress=True)
  for i, package in enumerate(todo, 1):
    deb, target = _newest_deb(debs, package), os.path.join(root, package)
    if deb is None:
      raise UserError(f"apt-get download wrote no {package}_*.deb into '{debs}'; fetch it by hand: {manual}")
    log.info("apt: unpacking %s (%d of %d)", os.path.basename(deb), i, len(todo))
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    _run(["dpkg-deb", "-x", deb, target], debs, f"if '{deb}' is a truncated download, delete it and build again")
    open(os.path.join(target, _UNPACKED), "w").close()
  return root
