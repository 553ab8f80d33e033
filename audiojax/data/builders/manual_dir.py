"""The base of the builders that read a folder the user downloaded or unpacked (``manual_dir``)."""
from __future__ import annotations

import os

import tensorflow_datasets as tfds

from audiojax.data.sources import apt
from audiojax.errors import UserError
from audiojax.paths import default_cache_dir


class ManualDirBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A builder reading ``manual_dir`` given to the constructor (as ``builders.build`` passes it)."""

  def __init__(self, *, manual_dir: str | os.PathLike | None = None, **kwargs):
    # Set before super().__init__, which calls _info, which may read manual_dir (AudioSet's class list).
    self._manual_dir = os.path.expanduser(os.fspath(manual_dir)) if manual_dir is not None else None
    super().__init__(**kwargs)

  def _manual_root(self, fix: str) -> str:
    """``manual_dir``, checked to be an existing folder; UserError naming it and ``fix`` (what to put there)
    otherwise."""
    fix = fix[:1].lower() + fix[1:]
    if self._manual_dir is None:
      raise UserError(f"{self.name} is read from a folder you download; pass manual_dir=<folder> ({fix})")
    if not os.path.isdir(self._manual_dir):
      raise UserError(f"{self.name} manual_dir '{self._manual_dir}' does not exist; {fix}")
    return self._manual_dir

  def _package_root(self, packages: list[str]) -> str:
    """The folder holding one unpacked folder per Debian package of ``packages``: ``manual_dir`` if given, else
    the download cache, where missing packages are fetched with apt."""
    if self._manual_dir is None:
      return apt.fetch_packages(packages, default_cache_dir())
    return self._manual_root(f"unpack the packages there ({apt.manual_command(packages, self._manual_dir)}) or "
                             "leave it unset to download them")
