"""Where audiojax reads and writes: the defaults (built datasets, the cache of downloaded packages and compiled
programs; each can be moved with an environment variable), and the paths of workdirs and model directories, which
may be bucket URIs (``gs://bucket/run``) as well as local folders."""
from __future__ import annotations

import os
import re

from etils import epath


def default_data_dir() -> str:
  """Where datasets are built/read: ``$AUDIOJAX_DATA_DIR`` or ``./data/tfds``."""
  return os.environ.get("AUDIOJAX_DATA_DIR", os.path.join("data", "tfds"))


def default_cache_dir() -> str:
  """``$XDG_CACHE_HOME/audiojax`` (``~/.cache/audiojax``): downloaded packages and compiled programs."""
  return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "audiojax")


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path: str | os.PathLike) -> bool:
  """Whether ``path`` names a bucket object (``gs://``, ``s3://``...) rather than a local file."""
  return bool(_URI.match(os.fspath(path)))


def resolve(path: str | os.PathLike) -> epath.Path:
  """A workdir, model directory or file that may live in a bucket: URIs as they are (read and written through
  ``etils.epath``: ``gs://`` needs ``gcsfs``, or TensorFlow's file system), local paths made absolute with ``~``
  expanded."""
  text = os.fspath(path)
  return epath.Path(text if is_uri(text) else os.path.abspath(os.path.expanduser(text)))


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
  """Writes the whole file or leaves the old one: a local file is written beside and renamed over; an object store
  replaces whole objects anyway."""
  target = resolve(path)
  write = (lambda p: p.write_bytes(data)) if isinstance(data, bytes) else (lambda p: p.write_text(data))
  if is_uri(target):
    write(target)
    return
  tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
  write(tmp)
  tmp.replace(target)


def copy_tree(source: str | os.PathLike, target: str | os.PathLike) -> None:
  """Copies the folder ``source`` into ``target`` (created; files there are overwritten), local or bucket."""
  source, target = resolve(source), resolve(target)
  target.mkdir(parents=True, exist_ok=True)
  for item in source.iterdir():
    if item.is_dir():
      copy_tree(item, target / item.name)
    else:
      item.copy(target / item.name, overwrite=True)


def local_copy(path: str | os.PathLike) -> str:
  """``path`` as a local file or folder for the readers that need one (SentencePiece, a BERT vocabulary, a whole
  model directory): local paths as they are; a bucket object copied (once per URI, refreshed when re-asked) into
  ``default_cache_dir()/remote``."""
  text = os.fspath(path)
  if not is_uri(text):
    return os.fspath(resolve(text))
  source = epath.Path(text)
  target = epath.Path(default_cache_dir()) / "remote" / text.replace("://", "/", 1)
  if source.is_dir():
    copy_tree(source, target)
  else:
    target.parent.mkdir(parents=True, exist_ok=True)
    source.copy(target, overwrite=True)
  return os.fspath(target)
