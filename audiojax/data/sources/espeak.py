"""espeak-ng without root: find or fetch it, synthesize speech (in parallel) and read its phonemes.

A system ``espeak-ng`` on ``PATH`` is used as it is. Otherwise the Debian packages ``espeak-ng``, ``libespeak-ng1``,
``espeak-ng-data``, ``libpcaudio0`` and ``libsonic0``, plus whichever of their dependencies this machine lacks
(``apt-cache depends``; on a bare Debian 12 that is libpulse0 and the codecs libsndfile1 links, about 6 MB in all), are
downloaded and unpacked into ``~/.cache/audiojax/espeak`` and run with ``LD_LIBRARY_PATH`` and ``ESPEAK_DATA_PATH``
pointing into it. espeak-ng is GPL-3; the GPL does not extend to the audio it produces.

Audio comes back through ``--stdout`` (no temporary files) at espeak-ng's rate, ``ESPEAK_RATE`` (22,050 Hz).
"""
from __future__ import annotations

import collections
import concurrent.futures
import fcntl
import functools
import os
import re
import shutil
import subprocess
import threading
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from audiojax.data.sources import apt
from audiojax.errors import UserError
from audiojax.paths import default_cache_dir
from audiojax.text import phonemes as text_phonemes
from audiojax.text.normalize import normalize_english

ESPEAK_RATE = 22050
PACKAGES = ("espeak-ng", "libespeak-ng1", "espeak-ng-data", "libpcaudio0", "libsonic0")
_APT_DEPENDS = ("apt-cache", "depends", "--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
                "--no-replaces", "--no-enhances")
_DEPENDENCY = re.compile(r"^\s*(\|)?(?:Pre)?Depends:\s+(\S+)")
_PROVIDER = re.compile(r"^\s{4}(\S+)$")
_INSTALL_HINT = "or install it system-wide (apt-get install espeak-ng)"


class Espeak(NamedTuple):
  """How to run espeak-ng: the binary and the environment (None: inherit ours, for a system install)."""

  binary: str
  env: dict[str, str] | None


class Request(NamedTuple):
  """One utterance to synthesize. ``voice`` is an espeak-ng voice with an optional ``+variant`` (``en-us+f3``)."""

  text: str
  voice: str = "en-us"
  speed_wpm: int = 175
  pitch: int = 50
  amplitude: int = 100


def _installed_packages() -> set[str]:
  """Names of the Debian packages installed on this machine."""
  result = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Status}\n"], capture_output=True,
                          text=True, check=False)
  return {name for name, _, status in (line.partition("\t") for line in result.stdout.splitlines())
          if status == "installed"}


def _dependency_groups(apt_output: str) -> list[list[str]]:
  """The dependency groups of ``apt-cache depends`` output: each group is a list of alternatives, and a virtual
  alternative ``<name>`` is replaced by the packages that provide it (listed under it)."""
  groups: list[list[str]] = []
  open_group = False  # the previous line ended with '|': the next alternative joins its group
  for line in apt_output.splitlines():
    match = _DEPENDENCY.match(line)
    if match:
      name = match.group(2).split(":")[0]
      if open_group:
        groups[-1].append(name)
      else:
        groups.append([name])
      open_group = match.group(1) is not None
    elif groups and (provider := _PROVIDER.match(line)):
      groups[-1].append(provider.group(1).split(":")[0])
  return groups


def missing_packages(packages: Sequence[str]) -> list[str]:
  """``packages`` and their recursive dependencies (``Depends``/``PreDepends``) that are not installed here.

  An alternative group ``a | b`` counts as met when any member is installed or already chosen; otherwise its first
  real package is taken.
  """
  installed = _installed_packages()
  chosen = [p for p in packages if p not in installed]
  seen = set(installed) | set(chosen)
  frontier = list(chosen)
  while frontier:
    result = subprocess.run([*_APT_DEPENDS, *frontier], capture_output=True, text=True, check=False)
    if result.returncode != 0:
      raise UserError(f"'apt-cache depends {' '.join(frontier)}' failed ({result.stderr.strip() or 'no output'}); "
                      f"run 'apt-get update' (as root) {_INSTALL_HINT}")
    frontier = []
    for group in _dependency_groups(result.stdout):
      real = [name for name in group if not name.startswith("<")]
      if any(name in seen for name in real) or not real:
        continue
      seen.add(real[0])
      chosen.append(real[0])
      frontier.append(real[0])
  return chosen


def _library_dirs(root: str) -> list[str]:
  """Every folder under ``root`` that holds a shared library (``*.so*``), sorted."""
  found = {folder for folder, _, files in os.walk(root) if any(".so" in f for f in files)}
  return sorted(found)


def _check_runs(espeak: Espeak) -> None:
  result = subprocess.run([espeak.binary, "-q", "-x", "-v", "en"], input="test", env=espeak.env, capture_output=True,
                          text=True, check=False)
  if result.returncode != 0:
    reason = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
    raise UserError(f"'{espeak.binary}' does not run ({reason}); delete the cache folder it is in and try again, "
                    f"{_INSTALL_HINT}")


def _fetch(cache_dir: str) -> tuple[str, list[str]]:
  """Fetches and unpacks espeak-ng and its missing dependencies into ``cache_dir`` unless done before; returns the
  unpacked root and the package names."""
  listing = os.path.join(cache_dir, "packages.txt")  # the packages fetched, once all were unpacked
  if os.path.exists(listing):
    with open(listing, encoding="utf-8") as f:
      packages = f.read().split()
  else:
    for tool in ("apt-cache", "dpkg-query"):
      if shutil.which(tool) is None:
        raise UserError(f"espeak-ng is not installed and '{tool}' is not here to fetch it; install espeak-ng "
                        "(it is packaged by every Linux distribution and by Homebrew)")
    packages = missing_packages(PACKAGES)
  root = apt.fetch_packages(packages, cache_dir)
  if not os.path.exists(listing):
    with open(listing, "w", encoding="utf-8") as f:
      f.write("\n".join(packages) + "\n")
  return root, packages


_FIND_LOCK = threading.Lock()


def find_espeak(cache_dir: str | None = None) -> Espeak:
  """The system espeak-ng, or one fetched into ``cache_dir`` (default ``~/.cache/audiojax/espeak``) on first use.

  Safe to call from many threads and processes at once: one of them fetches, the others wait for it. Raises
  UserError when apt is missing or fails, or when the fetched binary does not run.
  """
  with _FIND_LOCK:
    return _find_espeak(cache_dir)


@functools.cache
def _find_espeak(cache_dir: str | None) -> Espeak:
  system = shutil.which("espeak-ng")
  if system is not None:
    return Espeak(system, None)
  cache_dir = cache_dir or os.path.join(default_cache_dir(), "espeak")
  os.makedirs(cache_dir, exist_ok=True)
  with open(os.path.join(cache_dir, ".lock"), "w") as lock:  # another process may be fetching into the same cache
    fcntl.flock(lock, fcntl.LOCK_EX)
    root, packages = _fetch(cache_dir)
  binary = os.path.join(root, "espeak-ng", "usr", "bin", "espeak-ng")
  data = [os.path.dirname(folder) for folder, _, files in os.walk(os.path.join(root, "espeak-ng-data"))
          if os.path.basename(folder) == "espeak-ng-data" and "phontab" in files]
  if not os.path.isfile(binary) or not data:
    raise UserError(f"the espeak-ng packages unpacked in '{root}' hold no espeak-ng binary or espeak-ng-data; "
                    f"delete '{cache_dir}' and try again, {_INSTALL_HINT}")
  env = dict(os.environ)
  libraries = [d for p in packages for d in _library_dirs(os.path.join(root, p))]
  env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries + [env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
  env["ESPEAK_DATA_PATH"] = data[0]
  espeak = Espeak(binary, env)
  _check_runs(espeak)
  return espeak


find_espeak.cache_clear = _find_espeak.cache_clear  # forget what was found (tests)


def _run(espeak: Espeak, args: list[str], text: str) -> bytes:
  """Runs espeak-ng with ``args`` on ``text`` (given on stdin); its stdout, or UserError with its last error line."""
  result = subprocess.run([espeak.binary, *args], input=text.encode("utf-8"), env=espeak.env, capture_output=True,
                          check=False)
  if result.returncode != 0:
    lines = result.stderr.decode("utf-8", "replace").strip().splitlines()
    raise UserError(f"espeak-ng {' '.join(args)} failed ({lines[-1] if lines else result.returncode}); check the "
                    "espeak-ng installation")
  return result.stdout


_VOICES: dict[str, tuple[frozenset[str], frozenset[str]]] = {}  # by binary


def _known_voices(espeak: Espeak) -> tuple[frozenset[str], frozenset[str]]:
  """(voice names, variant names) espeak-ng accepts: languages, names and file names of ``--voices`` (all
  languages) and of ``--voices=variant``, lower-cased."""
  if espeak.binary in _VOICES:
    return _VOICES[espeak.binary]

  def names(listing: str) -> frozenset[str]:
    found = set()
    for row in listing.splitlines()[1:]:
      fields = row.split()
      if len(fields) >= 5:
        found.update(n.lower() for n in (fields[1], fields[3], fields[4], fields[4].rsplit("/", 1)[-1]))
    return frozenset(found)
  voices = _run(espeak, ["--voices"], "").decode("utf-8", "replace")
  variants = _run(espeak, ["--voices=variant"], "").decode("utf-8", "replace")
  _VOICES[espeak.binary] = names(voices), names(variants)
  return _VOICES[espeak.binary]


def check_voice(voice: str, espeak: Espeak | None = None) -> None:
  """UserError unless espeak-ng knows ``voice`` (``en-gb``, ``en-gb+f3``); espeak-ng itself silently falls back to
  its default voice on a typo."""
  espeak = espeak or find_espeak()
  voices, variants = _known_voices(espeak)
  name, _, variant = voice.lower().partition("+")
  if name not in voices or (variant and variant not in variants):
    unknown = f"variant '{variant}'" if name in voices else f"voice '{name}'"
    raise UserError(f"espeak-ng has no {unknown} (in '{voice}'); list them with 'espeak-ng --voices' and "
                    "'espeak-ng --voices=variant'")


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
  """``(wave (L,) float32 in [-1, 1), rate)`` of a 16-bit mono RIFF stream.

  espeak-ng's ``--stdout`` header holds placeholder sizes (0x7ffff000), so the data chunk runs to the end.
  """
  if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
    raise UserError("espeak-ng --stdout did not write a WAV stream; check the espeak-ng installation")
  position, rate = 12, None
  while position + 8 <= len(data):
    chunk, size = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
    body = position + 8
    if chunk == b"fmt ":
      channels = int.from_bytes(data[body + 2:body + 4], "little")
      rate = int.from_bytes(data[body + 4:body + 8], "little")
      bits = int.from_bytes(data[body + 14:body + 16], "little")
      if channels != 1 or bits != 16:
        raise UserError(f"espeak-ng wrote {channels}-channel {bits}-bit audio; expected mono 16-bit")
    elif chunk == b"data":
      if rate is None:
        break
      samples = data[body:len(data) - (len(data) - body) % 2]
      return np.frombuffer(samples, "<i2").astype(np.float32) / 32768.0, rate
    position = body + size + (size & 1)
  raise UserError("espeak-ng --stdout wrote a WAV stream without a fmt and data chunk; check the installation")


def synthesize(text: str, voice: str = "en-us", speed_wpm: int = 175, pitch: int = 50, amplitude: int = 100, *,
               espeak: Espeak | None = None) -> tuple[np.ndarray, int]:
  """Speaks ``text``: ``(wave (L,) float32, ESPEAK_RATE)``. ``pitch`` is espeak-ng's 0–99 (50 is the voice's own),
  ``amplitude`` its 0–200 loudness (at 100 a few voices reach full scale)."""
  if not text.strip():
    raise UserError("synthesize got an empty text; give at least one word")
  espeak = espeak or find_espeak()
  check_voice(voice, espeak)
  args = ["--stdout", "-v", voice, "-s", str(int(speed_wpm)), "-p", str(int(pitch)), "-a", str(int(amplitude))]
  return parse_wav(_run(espeak, args, text))


def synthesize_many(requests: Iterable[Request], workers: int | None = None) -> Iterator[tuple[np.ndarray, int]]:
  """``synthesize`` of each request, in order, ``workers`` (default: CPU count) espeak-ng processes at a time.

  At most ``4 * workers`` results wait unread, so memory stays bounded however many requests there are.
  """
  workers = workers or os.cpu_count() or 1
  espeak = find_espeak()
  pending: collections.deque[concurrent.futures.Future] = collections.deque()
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # threads only wait on the processes
    try:
      for request in requests:
        pending.append(pool.submit(synthesize, *request, espeak=espeak))
        if len(pending) >= 4 * workers:
          yield pending.popleft().result()
      while pending:
        yield pending.popleft().result()
    finally:
      for future in pending:
        future.cancel()


def ipa(text: str, voice: str = "en-us", espeak: Espeak | None = None) -> str:
  """espeak-ng's IPA (``-q --ipa``) of one ``text`` (single line): words separated by spaces, one clause per line."""
  return _run(espeak or find_espeak(), ["-q", "--ipa", "-v", voice], text + "\n").decode("utf-8")


def phonemize(texts: Sequence[str], language: str = "en", workers: int | None = None) -> list[list[str]]:
  """The phoneme symbols (:func:`audiojax.text.phonemes.symbols`) of each of ``texts`` in ``language`` (a key of
  :data:`audiojax.text.phonemes.VOICES`), English normalised first; one espeak-ng process per text, ``workers`` at
  a time."""
  voice = text_phonemes.check_language(language)
  espeak = find_espeak()
  check_voice(voice, espeak)

  def one(text: str) -> list[str]:
    text = normalize_english(text) if language == "en" else text
    return text_phonemes.symbols(ipa(" ".join(text.split()), voice, espeak)) if text.strip() else []

  with concurrent.futures.ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:
    return list(pool.map(one, texts))


def phonemes(words: Sequence[str], voice: str = "en-us") -> list[str]:
  """espeak-ng's phoneme mnemonics (``-q -x``, stress marks included) of each of ``words``, in one process."""
  if not words:
    return []
  for word in words:
    if not word.strip() or "\n" in word:
      raise UserError(f"phonemes got {word!r}; give non-empty single-line words")
  espeak = find_espeak()
  check_voice(voice, espeak)
  # -x still synthesizes (silently); at 300 wpm that is faster, and the phonemes do not depend on the speed.
  # One sentence per line keeps each word a clause of its own, so its phonemes come back on their own line.
  args = ["-q", "-x", "-s", "300", "-v", voice]
  lines = _run(espeak, args, "".join(f"{w}.\n" for w in words)).decode("utf-8").splitlines()
  lines = [line.strip() for line in lines if line.strip()]
  if len(lines) == len(words):
    return lines
  # a word espeak-ng splits into clauses ("Mr. Smith") breaks the alignment: one process per word then
  return [" ".join(_run(espeak, args, f"{w}.\n").decode("utf-8").split()) for w in words]
