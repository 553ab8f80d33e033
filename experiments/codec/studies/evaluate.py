"""A trained codec against Opus at equal bitrate on held-out speech, judged by models independent of both.

For ``--max-clips`` evenly spaced clips of a speech dataset's split (at 16 kHz), each **system** gives a version of
the clip: the codec at each of its bandwidths (``model(wave, active=K)``: the first K codebooks, exactly as
``encode(n_q=K)`` then ``decode``; clips are zero-padded to 1, 2, 4, 8... seconds so that a few compilations serve
every length, which changes only the last partial frame), Opus through PyAV at 6, 8 and 12 kbps and at the codec's
bandwidths that Opus supports (≥ 6 kbps; :mod:`experiments.codec.studies.judges`: libopus' defaults, the pre-skip
removed), and two controls: the **input** itself (each measure's best) and **another clip** (the next evaluated clip
cut or repeated to the same length: a measure's level for unrelated speech). Each is scored against the clip:

- log-mel distance and SI-SNR (:mod:`audiojax.eval.codec`), STOI (pystoi), PESQ wide-band (pesq; a clip on which it
  finds no utterance, or too short, is counted as failed), DNSMOS P.835 OVRL (speechmos; no reference), and on the
  English clips the WER of Whisper tiny.en (faster-whisper; references and transcripts in
  :func:`audiojax.eval.wer.normalize` form; the input row is Whisper on the original audio);
- the offset (samples) at which the system's output best matches the clip by cross-correlation (``lag`` in
  results.json; 0 means aligned).

A judge whose package is missing is skipped with a note; ``pip install -e '.[judges]'`` installs them all.
Writes ``OUT/results.json`` (per system: kbps, per measure mean, count and failures), ``OUT/table.md`` (printed too)
and ``OUT/clips.jsonl`` (every clip's scores and transcripts).

Command:  python experiments/codec/studies/evaluate.py --checkpoint ~/runs/codec_speech_model --dataset debspeech \
            --data-dir data/tfds --split test --max-clips 100 --out ~/runs/codec_eval
          (debspeech's test split has 10 English clips, which 100 evenly spaced clips miss: for the WER add a run
          with --languages en --max-clips 10)
Runtime:  DNSMOS dominates on a CPU: about 0.5 s per 9-s window, and it repeats a short clip to at least 9 s and
          slides over that in 1-s steps (1–9 windows per clip); then Whisper tiny.en. Measured runs:
          experiments/codec/README.md.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: the repository root on the path, for `experiments.codec`
  sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from typing import Any, Iterable  # noqa: E402

import numpy as np  # noqa: E402
import soxr  # noqa: E402

from audiojax.errors import UserError  # noqa: E402
from experiments.codec.studies import judges as judges_lib  # noqa: E402

RATE = judges_lib.JUDGE_RATE  # every system is compared at 16 kHz
OPUS_KBPS = (6.0, 8.0, 12.0)
JUDGES = ("stoi", "pesq", "dnsmos", "whisper")
INPUT, OTHER = "input", "another clip"
MEASURES = {  # key: (table header, number format)
    "mel_distance": ("mel distance ↓", "{:.3f}"),
    "si_snr": ("SI-SNR dB ↑", "{:.1f}"),
    "stoi": ("STOI ↑", "{:.3f}"),
    "pesq": ("PESQ-wb ↑", "{:.2f}"),
    "dnsmos": ("DNSMOS OVRL ↑", "{:.2f}"),
    "wer": ("WER % ↓ (en)", "{:.1f}"),
}
MAX_LAG = RATE // 50  # ±20 ms searched for the alignment offset


@dataclasses.dataclass
class Clip:
  """One evaluated clip: ``wave (L,)`` float32 at 16 kHz, its transcript, base language ("" if unknown) and id."""

  index: int
  id: str
  wave: np.ndarray
  text: str
  language: str


@dataclasses.dataclass
class System:
  """A row of the table: ``kind`` is ``codec``, ``opus`` or ``control``; ``kbps`` None for controls."""

  name: str
  kind: str
  kbps: float | None = None
  n_q: int | None = None


# --- data -------------------------------------------------------------------------------------------------------------
def _text(value: Any) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def open_split(dataset: str, split: str, data_dir: str):
  """The random-access source of ``dataset``'s ``split`` in ``data_dir``; never builds a dataset."""
  import tensorflow_datasets as tfds

  from audiojax.data import builders

  name, _, config = dataset.partition("/")
  if name in builders.BUILDERS:
    cls = builders.BUILDERS[name]
    if config and config not in {c.name for c in cls.BUILDER_CONFIGS}:
      raise UserError(f"--dataset '{dataset}' has no config '{config}'; choose one of "
                      f"{', '.join(f'{name}/{c.name}' for c in cls.BUILDER_CONFIGS)}")
    builder = cls(data_dir=data_dir, config=config or None, file_format="array_record")
    if not builder.is_prepared():
      raise UserError(f"dataset '{dataset}' is not built in --data-dir '{data_dir}'; build it with 'python -m "
                      f"audiojax data build {builder.info.full_name.rsplit('/', 1)[0]} --data-dir {data_dir}'")
    if split not in builder.info.splits:
      raise UserError(f"dataset '{dataset}' has no split '{split}'; choose --split from "
                      f"{', '.join(builder.info.splits)}")
  try:
    return tfds.data_source(dataset, split=split, data_dir=data_dir)
  except (tfds.core.registered.DatasetNotFoundError, FileNotFoundError, ValueError) as e:
    raise UserError(f"cannot read --dataset '{dataset}' split '{split}' from --data-dir '{data_dir}' "
                    f"({str(e).splitlines()[0]}); give a built TFDS dataset") from None


def evenly_spaced(count: int, limit: int) -> np.ndarray:
  """``limit`` indices spread evenly over ``range(count)`` (all of them when ``limit >= count``), as the codec task's
  held-out evaluation picks them."""
  if limit >= count:
    return np.arange(count)
  return np.unique(np.linspace(0, count - 1, limit).round().astype(int))


def language_of(example: dict[str, Any], default_language: str) -> str:
  """The base language of ``example`` (``en_GB`` → ``en``), else ``default_language``."""
  from audiojax.data.builders.debspeech import base_language

  return base_language(_text(example["language"])) if "language" in example else default_language


def choose(source, max_clips: int, languages: tuple[str, ...], default_language: str) -> np.ndarray:
  """``max_clips`` evenly spaced indices of ``source``, among the clips in ``languages`` if any are given."""
  if not languages:
    return evenly_spaced(len(source), max_clips)
  candidates = np.array([i for i in range(len(source)) if language_of(source[i], default_language) in languages])
  if candidates.size == 0:
    raise UserError(f"no clip of the split is in --languages {','.join(languages)}; choose others (or give "
                    "--language for a dataset without a 'language' feature)")
  return candidates[evenly_spaced(candidates.size, max_clips)]


def load_clips(source, indices: Iterable[int], default_language: str) -> list[Clip]:
  """The clips ``indices`` of ``source`` resampled to 16 kHz (``language``: the example's, else
  ``default_language``)."""
  from audiojax.audio.io import from_pcm16

  clips = []
  for i in indices:
    example = source[int(i)]
    if "audio" not in example or "sample_rate" not in example:
      raise UserError("the dataset's examples have no 'audio' and 'sample_rate'; give a speech dataset of audiojax's "
                      "schema (audiojax/data/builders/schema.py)")
    wave = from_pcm16(example["audio"])
    rate = int(example["sample_rate"])
    if rate != RATE:
      wave = soxr.resample(wave, rate, RATE, quality="VHQ").astype(np.float32)
    if wave.shape[0] == 0:
      raise UserError(f"example {i} ('{_text(example.get('id', i))}') of the dataset has no audio; rebuild the dataset")
    clips.append(Clip(int(i), _text(example.get("id", str(i))), wave, _text(example.get("text", "")),
                      language_of(example, default_language)))
  return clips


def fit(wave: np.ndarray, length: int) -> np.ndarray:
  """``wave`` cut, or repeated, to ``length`` samples."""
  return np.tile(wave, -(-length // wave.shape[0]))[:length]


def fit_length(wave: np.ndarray, length: int) -> np.ndarray:
  """``wave`` cut, or zero-padded, to ``length`` samples (float32)."""
  out = np.zeros(length, np.float32)
  out[:min(length, wave.shape[0])] = wave[:length]
  return out


# --- systems ----------------------------------------------------------------------------------------------------------
def bucket(length: int, unit: int) -> int:
  """The padded length of a clip of ``length`` samples: ``unit`` times a power of two."""
  units = -(-length // unit)
  return unit * (1 << max(0, math.ceil(math.log2(units))))


class Codec:
  """The codec's resynthesis of a 16 kHz clip at each of its bandwidths (see the module docstring)."""

  def __init__(self, model, variables):
    import jax

    self.model, self.variables = model, variables
    self.unit = model.hop_length * model.frame_rate  # whole frames, ≥ 1 s
    self.systems = [System(f"codec {b:g} kbps", "codec", float(b), model.bandwidth_to_n_q(b))
                    for b in sorted(model.bandwidths)]
    self._apply = jax.jit(lambda variables, wave, active: model.apply(variables, wave, active=active)["wave"])

  def resynthesise(self, wave: np.ndarray, n_q: int) -> np.ndarray:
    """``wave (L,)`` at the model's rate through the first ``n_q`` codebooks → ``(L,)``."""
    padded = np.zeros((1, bucket(wave.shape[0], self.unit)), np.float32)
    padded[0, :wave.shape[0]] = wave
    return np.asarray(self._apply(self.variables, padded, np.int32(n_q)))[0, :wave.shape[0]]

  def __call__(self, wave: np.ndarray) -> dict[str, np.ndarray]:
    """``wave (L,)`` at 16 kHz → each codec system's name → its ``(L,)`` at 16 kHz."""
    rate = self.model.sample_rate
    x = wave if rate == RATE else soxr.resample(wave, RATE, rate, quality="VHQ").astype(np.float32)
    out = {}
    for system in self.systems:
      y = self.resynthesise(x, system.n_q)
      out[system.name] = fit_length(y if rate == RATE else soxr.resample(y, rate, RATE, quality="VHQ"), wave.shape[0])
    return out


def opus_systems(kbps: Iterable[float], codec_bandwidths: Iterable[float]) -> list[System]:
  """Opus at ``kbps`` and at the codec's bandwidths in Opus' range, ascending."""
  lo, hi = judges_lib.OPUS_MIN_KBPS, judges_lib.OPUS_MAX_KBPS
  rates = sorted({float(k) for k in kbps} | {float(b) for b in codec_bandwidths if lo <= b <= hi})
  return [System(f"Opus {k:g} kbps", "opus", k) for k in rates]


class Timer:
  """Seconds spent per stage, summed over calls: ``with timer("pesq"): ...``."""

  def __init__(self):
    self.seconds: dict[str, float] = {}
    self._stage, self._start = "", 0.0

  def __call__(self, stage: str) -> "Timer":
    self._stage = stage
    return self

  def __enter__(self):
    self._start = time.perf_counter()

  def __exit__(self, *exc):
    self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + time.perf_counter() - self._start


# --- scoring ----------------------------------------------------------------------------------------------------------
class WaveMeasures:
  """Log-mel distance and SI-SNR of every system's output against the clip, in one jitted batch ``(S, L)`` (L
  padded to a power-of-two number of seconds, the valid length given)."""

  def __init__(self):
    import jax

    from audiojax.eval import codec as codec_eval

    self._fn = jax.jit(lambda ref, outs, lengths: (codec_eval.log_mel_distance(ref, outs, lengths, RATE),
                                                   codec_eval.si_snr(ref, outs, lengths)))

  def __call__(self, reference: np.ndarray, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``reference (L,)``, S outputs ``(L,)`` → ``(mel_distance (S,), si_snr (S,))``."""
    length = reference.shape[0]
    padded = bucket(length, RATE)
    ref = np.zeros((len(outputs), padded), np.float32)
    ref[:, :length] = reference
    outs = np.zeros_like(ref)
    for i, y in enumerate(outputs):
      outs[i, :length] = y
    mel, snr = self._fn(ref, outs, np.full((len(outputs),), length, np.int32))
    return np.asarray(mel), np.asarray(snr)


def score_clip(clip: Clip, outputs: dict[str, np.ndarray], kinds: dict[str, str], judges: judges_lib.Judges,
               measures: WaveMeasures, timer: Timer) -> dict[str, dict[str, Any]]:
  """Every measure of every system's output for ``clip``: ``{system: {measure: value}}``, a failed judge's value
  None (its reason under ``failed``), Whisper's transcript under ``transcript`` (English clips)."""
  names = list(outputs)
  scores: dict[str, dict[str, Any]] = {n: {} for n in names}
  with timer("mel/SI-SNR"):
    mel, snr = measures(clip.wave, [outputs[n] for n in names])
  for i, n in enumerate(names):
    scores[n]["mel_distance"], scores[n]["si_snr"] = float(mel[i]), float(snr[i])
    if kinds[n] != "control":
      scores[n]["lag"] = judges_lib.lag(clip.wave, outputs[n], MAX_LAG)
  for key, judge in (("stoi", judges.stoi), ("pesq", judges.pesq)):
    if judge is not None:
      with timer(key):
        for n in names:
          _judge(scores[n], key, lambda: judge(clip.wave, outputs[n], RATE))
  if judges.dnsmos is not None:
    with timer("dnsmos"):
      for n in names:
        _judge(scores[n], "dnsmos", lambda: judges.dnsmos(outputs[n], RATE))
  if judges.whisper is not None and clip.language == "en":
    with timer("whisper"):
      for n in names:
        scores[n]["transcript"] = judges.whisper(outputs[n], RATE)
  return scores


def _judge(scores: dict[str, Any], key: str, fn) -> None:
  try:
    scores[key] = fn()
  except judges_lib.JudgeFailed as e:
    scores[key] = None
    scores.setdefault("failed", {})[key] = str(e)


def summarise(records: list[dict[str, Any]], systems: list[System]) -> dict[str, dict[str, Any]]:
  """Per system: kind, kbps, codebooks, Opus' measured payload kbps, the mean alignment ``lag`` and each measure's
  ``{mean, count, failures}`` over the clips (WER: the corpus WER, errors / reference words, over the English clips
  with a non-empty reference; ``count`` those clips)."""
  from audiojax.eval.wer import normalize, word_errors

  out = {}
  for system in systems:
    rows = [r["systems"][system.name] for r in records if system.name in r["systems"]]
    entry: dict[str, Any] = {"kind": system.kind, "kbps": system.kbps}
    if system.n_q is not None:
      entry["n_q"] = system.n_q
    if system.kind == "opus":
      entry["measured_kbps"] = float(np.mean([row["measured_kbps"] for row in rows])) if rows else None
    lags = [row["lag"] for row in rows if "lag" in row]
    if lags:
      entry["lag"] = {"mean": float(np.mean(lags)), "min": float(np.min(lags)), "max": float(np.max(lags)),
                      "count": len(lags)}
    metrics = {}
    for key in ("mel_distance", "si_snr", "stoi", "pesq", "dnsmos"):
      seen = [row[key] for row in rows if key in row]
      if seen:
        values = [v for v in seen if v is not None]
        metrics[key] = {"mean": float(np.mean(values)) if values else None, "count": len(values),
                        "failures": len(seen) - len(values)}
    pairs = [(normalize(r["text"]), normalize(r["systems"][system.name]["transcript"])) for r in records
             if "transcript" in r["systems"].get(system.name, {}) and normalize(r["text"])]
    if pairs:
      errors, words = word_errors([p[0] for p in pairs], [p[1] for p in pairs])
      metrics["wer"] = {"mean": errors / words, "count": len(pairs), "failures": 0, "errors": errors, "words": words}
    entry["metrics"] = metrics
    out[system.name] = entry
  return out


# --- the table --------------------------------------------------------------------------------------------------------
def _cell(metric: dict[str, Any] | None, key: str, skipped: bool) -> str:
  if skipped:
    return "skipped"
  if not metric or metric.get("mean") is None:
    return "–"
  value = metric["mean"] * (100 if key == "wer" else 1)
  text = MEASURES[key][1].format(value)
  return f"{text} ({metric['failures']} failed)" if metric.get("failures") else text


def table(results: dict[str, Any]) -> str:
  """The markdown table of ``results`` (results.json's layout) and its notes."""
  skipped = results["judges"]["skipped"]
  header = ["system", "kbps"] + [MEASURES[k][0] for k in MEASURES]
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
  for name, entry in results["systems"].items():
    kbps = "–" if entry["kbps"] is None else f"{entry['kbps']:g}"
    cells = [_cell(entry["metrics"].get(k), k, (k if k != "wer" else "whisper") in skipped) for k in MEASURES]
    lines.append("| " + " | ".join([name, kbps] + cells) + " |")
  notes = []
  model = results["model"]
  notes.append(f"Codec: {model['kbps_per_codebook']:g} kbps per codebook (log2({model['bins']}) bits × "
               f"{model['frame_rate']} frames/s); its kbps is that times the codebooks used.")
  opus = results.get("opus", {})
  if opus.get("skipped"):
    notes.append(f"Opus skipped: {opus['skipped']}.")
  else:
    measured = ", ".join(f"{e['kbps']:g} → {e['measured_kbps']:.2f}" for e in results["systems"].values()
                         if e["kind"] == "opus" and e.get("measured_kbps") is not None)
    notes.append(f"Opus: libopus through PyAV at the target kbps (packets measured: {measured} kbps); its minimum "
                 f"is {opus['min_kbps']:g} kbps, so the codec's bandwidths below it "
                 f"({', '.join(f'{b:g}' for b in opus['below_minimum']) or 'none'}) have no Opus row at equal "
                 "bitrate." if measured else "Opus: no rows.")
  other = (f"; {OTHER}: the next evaluated clip cut or repeated to the same length (the level of unrelated speech)"
           if OTHER in results["systems"] else "")
  notes.append(f"{INPUT}: the clip itself (each measure's best){other}. SI-SNR of the input is limited only by its "
               "1e-8 floor.")
  english = results.get("english_clips", 0)
  if "whisper" in skipped:
    notes.append(f"WER skipped: {skipped['whisper']}.")
  else:
    words = next((e["metrics"]["wer"]["words"] for e in results["systems"].values() if "wer" in e["metrics"]), 0)
    notes.append(f"WER: Whisper tiny.en (greedy) on the {english} English clips ({words} reference words), "
                 "normalised by audiojax.eval.wer.normalize; the input row is Whisper on the original audio."
                 if words else f"WER: no English clip with a transcript among the {results['clips']} clips.")
  for name, reason in skipped.items():
    if name != "whisper":
      notes.append(f"{name} skipped: {reason}.")
  if any(m.get("failures") for e in results["systems"].values() for m in e["metrics"].values()):
    notes.append("failed: clips a judge could not score (PESQ: no utterance found, too short or a silent output; "
                 "STOI: under 30 frames of speech; DNSMOS: silence), left out of its mean.")
  runtime = results.get("runtime_s", {})
  if runtime:
    parts = ", ".join(f"{k} {v:.0f} s" for k, v in runtime.items() if k != "total")
    languages = results.get("languages", "all")
    subset = f"{results['split']}" + ("" if languages == "all" else f", languages {','.join(languages)}")
    notes.append(f"{results['clips']} clips of {results['dataset']} ({subset}); runtime "
                 f"{runtime.get('total', 0):.0f} s ({parts}).")
  return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


# --- the run ----------------------------------------------------------------------------------------------------------
def _kbps_list(text: str) -> list[float]:
  try:
    values = [float(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise UserError(f"--opus-kbps '{text}' is not a comma-separated list of numbers; e.g. --opus-kbps 6,8,12") from None
  bad = [v for v in values if not judges_lib.OPUS_MIN_KBPS <= v <= judges_lib.OPUS_MAX_KBPS]
  if bad:
    raise UserError(f"--opus-kbps {', '.join(f'{v:g}' for v in bad)} is outside Opus' "
                    f"{judges_lib.OPUS_MIN_KBPS:g}–{judges_lib.OPUS_MAX_KBPS:g} kbps; choose bitrates in that range")
  return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  from audiojax.paths import default_data_dir

  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--checkpoint", required=True, help="codec model directory ('audiojax export' or 'convert encodec')")
  p.add_argument("--dataset", default="debspeech", help="a built TFDS speech dataset, e.g. debspeech")
  p.add_argument("--data-dir", default=default_data_dir())
  p.add_argument("--split", default="test")
  p.add_argument("--max-clips", type=int, default=100, help="evenly spaced clips of the split (default 100)")
  p.add_argument("--languages", default="", help="only clips in these languages, e.g. en (debspeech's test split "
                 "has 10 English clips, which 100 evenly spaced clips miss: the WER needs --languages en)")
  p.add_argument("--out", required=True, help="folder for results.json, table.md and clips.jsonl")
  p.add_argument("--opus-kbps", default=",".join(f"{k:g}" for k in OPUS_KBPS),
                 help="Opus bitrates (the codec's bandwidths of 6 kbps and more are added)")
  p.add_argument("--judges", default=",".join(JUDGES), help=f"which of {','.join(JUDGES)} to run")
  p.add_argument("--no-whisper", action="store_true", help="skip the Whisper WER (the slowest judge)")
  p.add_argument("--language", default="",
                 help="the language of clips of a dataset without a 'language' feature (e.g. en for espeak_prompt)")
  args = p.parse_args(argv)
  if args.max_clips < 1:
    raise UserError(f"--max-clips {args.max_clips} evaluates nothing; give 1 or more")
  args.opus_kbps = _kbps_list(args.opus_kbps)
  args.languages = tuple(v.strip() for v in args.languages.split(",") if v.strip())
  names = tuple(j.strip() for j in args.judges.split(",") if j.strip())
  unknown = [j for j in names if j not in JUDGES]
  if unknown:
    raise UserError(f"--judges {', '.join(unknown)} unknown; choose from {','.join(JUDGES)}")
  args.judges = tuple(j for j in names if not (args.no_whisper and j == "whisper"))
  return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
  """Runs the evaluation (see the module docstring); returns the results dict it wrote."""
  from tqdm import tqdm

  from audiojax.inference import load
  from audiojax.models import codec as codec_model

  args = parse_args(argv)
  start = time.perf_counter()
  timer = Timer()
  model, variables = load.codec(args.checkpoint)
  codec = Codec(model, variables)
  source = open_split(args.dataset, args.split, args.data_dir)
  if len(source) == 0:
    raise UserError(f"split '{args.split}' of '{args.dataset}' is empty; choose another --split")
  clips = load_clips(source, choose(source, args.max_clips, args.languages, args.language), args.language)
  try:
    os.makedirs(args.out, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create --out '{args.out}' ({e.strerror}); choose a writable folder") from None

  english = sum(c.language == "en" for c in clips)
  wanted = tuple(j for j in JUDGES if j in args.judges and (j != "whisper" or english))
  judges = judges_lib.load_judges(wanted)
  for name in JUDGES:
    if name not in args.judges:
      judges.skipped[name] = "not asked for (--judges / --no-whisper)"
    elif name not in wanted:
      judges.skipped[name] = (f"no English clip among the {len(clips)} clips (choose them with --languages en; "
                              "--language en for a dataset without a 'language' feature)")
  for name, reason in judges.skipped.items():
    print(f"note: {name} skipped: {reason}", file=sys.stderr)
  opus_note = None
  try:
    judges_lib.require_av()
    opus = opus_systems(args.opus_kbps, model.bandwidths)
  except UserError as e:
    opus, opus_note = [], str(e)
    print(f"note: Opus skipped: {opus_note}", file=sys.stderr)
  controls = [System(INPUT, "control")] + ([System(OTHER, "control")] if len(clips) > 1 else [])
  systems = controls[:1] + codec.systems + opus + controls[1:]
  kinds = {s.name: s.kind for s in systems}
  measures = WaveMeasures()

  records = []
  for j, clip in enumerate(tqdm(clips, desc="clips", unit="clip", file=sys.stderr)):
    outputs = {INPUT: clip.wave}
    with timer("codec"):
      outputs |= codec(clip.wave)
    measured = {}
    with timer("opus"):
      for system in opus:
        stream = judges_lib.opus_encode(clip.wave, RATE, system.kbps)
        outputs[system.name] = judges_lib.opus_decode(stream)
        measured[system.name] = stream.kbps
    if len(clips) > 1:
      outputs[OTHER] = fit(clips[(j + 1) % len(clips)].wave, clip.wave.shape[0])
    scores = score_clip(clip, outputs, kinds, judges, measures, timer)
    for name, kbps in measured.items():
      scores[name]["measured_kbps"] = kbps
    records.append({"index": clip.index, "id": clip.id, "language": clip.language, "text": clip.text,
                    "seconds": clip.wave.shape[0] / RATE, "systems": scores})

  results = {
      "checkpoint": os.path.abspath(args.checkpoint), "dataset": args.dataset, "split": args.split,
      "languages": list(args.languages) or "all",
      "data_dir": os.path.abspath(args.data_dir), "clips": len(clips),
      "english_clips": english, "sample_rate": RATE,
      "model": {"config": codec_model.to_config(model), "bandwidths": [float(b) for b in model.bandwidths],
                "kbps_per_codebook": model.bandwidth_per_codebook, "bins": model.bins,
                "frame_rate": model.frame_rate},
      "opus": {"min_kbps": judges_lib.OPUS_MIN_KBPS, "kbps": [s.kbps for s in opus],
               "below_minimum": [float(b) for b in sorted(model.bandwidths) if b < judges_lib.OPUS_MIN_KBPS],
               "library": f"av {judges_lib.package_version('av')} (libopus)",
               **({"skipped": opus_note} if opus_note else {})},
      "judges": {"versions": judges.versions, "skipped": judges.skipped},
      "systems": summarise(records, systems),
      "runtime_s": {"total": time.perf_counter() - start, **timer.seconds},
  }
  text = table(results)
  try:
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as f:
      json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "table.md"), "w", encoding="utf-8") as f:
      f.write(text)
    with open(os.path.join(args.out, "clips.jsonl"), "w", encoding="utf-8") as f:
      for record in records:
        f.write(json.dumps(record) + "\n")
  except OSError as e:
    raise UserError(f"cannot write to --out '{args.out}' ({e.strerror}); choose a writable folder") from None
  print(text)
  return results


if __name__ == "__main__":
  try:
    main()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
