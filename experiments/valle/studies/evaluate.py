"""A trained VALL-E speaking held-out sentences in held-out voices, judged by models independent of it.

For ``--max-clips`` evenly spaced utterances ``U`` of a token store's split (the held-out voices' utterances), the
prompt is another utterance ``P`` of the same voice (fixed per clip by ``--seed``, among those that fit half of the
model's ``max_positions``). Systems, each one waveform per clip at the codec's rate:

- **ground truth**: ``U``'s recording; **resynthesis**: ``U``'s codes in the store decoded by the codec (the ceiling
  of anything spoken through this codec);
- **generated**: ``speak`` of ``U``'s text after the prompt ``P`` (the synthesizer's defaults: top-p 0.8 with
  repetition-aware sampling, a cap of 8 frames per phoneme);
- controls: **shuffled text** (generated from the next clip's text, scored against ``U``'s) and **prompt alone**
  (``P``'s recording scored against ``U``'s text).

Judges: Whisper tiny.en's WER against ``U``'s text (:mod:`experiments.codec.studies.judges`; both sides in
:func:`audiojax.eval.wer.normalize` form); DNSMOS P.835 OVRL; and the voice, by Resemblyzer's pretrained speaker
encoder (``pip install --no-deps resemblyzer==0.1.4 webrtcvad-wheels``: trained on other corpora, never on these
voices): a clip counts as its prompt's voice when its embedding is closer (cosine) to the centroid of that voice's
ground-truth utterances (up to 8, ``U`` and ``P`` left out) than to every other held-out voice's centroid
(chance 1 / voices). Also the share of generated sentences that ended on EOS.

Writes ``OUT/results.json``, ``OUT/table.md`` (printed) and ``OUT/clips.jsonl``; with ``--save-audio`` the clips'
WAVs too.

Command:  python experiments/valle/studies/evaluate.py --checkpoint ~/runs/valle_espeak_model \
            --store data/valle_tokens/test --dataset espeak_prompt/small --split test --max-clips 48 \
            --out ~/runs/valle_eval
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script: the repository root on the path, for `experiments.codec`
  sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

import argparse  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402
from tqdm import tqdm  # noqa: E402

from audiojax import paths  # noqa: E402
from audiojax.audio.io import from_pcm16, resample  # noqa: E402
from audiojax.data.token_store import TokenStore  # noqa: E402
from audiojax.eval import wer as wer_lib  # noqa: E402
from audiojax.inference.synthesizer import Synthesizer  # noqa: E402
from experiments.codec.studies import judges as judges_lib  # noqa: E402

SYSTEMS = ("ground truth", "resynthesis", "generated", "shuffled text", "prompt alone")


class SpeakerEncoder:
  """Resemblyzer's GE2E speaker encoder: a 256-d unit embedding of a 16 kHz clip."""

  def __init__(self):
    from resemblyzer import VoiceEncoder, preprocess_wav

    self.encoder, self.preprocess = VoiceEncoder("cpu", verbose=False), preprocess_wav
    self.version = f"resemblyzer {judges_lib.package_version('resemblyzer')}"

  def __call__(self, wave: np.ndarray, sample_rate: int) -> np.ndarray:
    trimmed = self.preprocess(np.asarray(wave, np.float32), source_sr=sample_rate)
    return self.encoder.embed_utterance(trimmed if trimmed.size > sample_rate // 4 else wave.astype(np.float32))


def pick_prompt(store: TokenStore, voices: dict[str, list[int]], index: int, limit: int,
                rng: np.random.Generator) -> int:
  u = store.utterances[index]
  others = [j for j in voices[u.speaker] if j != index
            and len(store.utterances[j].phonemes) + store.frames[j] + 1 <= limit]
  if not others:
    raise SystemExit(f"voice {u.speaker} has no other utterance short enough to prompt with")
  return int(rng.choice(others))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--checkpoint", required=True)
  p.add_argument("--store", required=True, help="token store of the held-out split")
  p.add_argument("--dataset", required=True)
  p.add_argument("--split", default="test")
  p.add_argument("--data-dir", default=paths.default_data_dir())
  p.add_argument("--max-clips", type=int, default=48)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--out", required=True)
  p.add_argument("--save-audio", action="store_true")
  args = p.parse_args(argv)

  synth = Synthesizer.from_checkpoint(args.checkpoint)
  store = TokenStore(args.store)
  source = tfds.data_source(args.dataset, split=args.split, data_dir=args.data_dir)
  position = {ex_id: i for i, ex_id in enumerate(source[i]["id"].decode() for i in range(len(source)))}
  rate = synth.sample_rate

  def recording(index: int) -> np.ndarray:
    example = source[position[store.utterances[index].id]]
    wave = from_pcm16(example["audio"])
    return resample(wave, int(example["sample_rate"]), rate) if int(example["sample_rate"]) != rate else wave

  clips = np.linspace(0, len(store) - 1, min(args.max_clips, len(store))).round().astype(int)
  judges = judges_lib.load_judges(("dnsmos", "whisper"))
  try:
    speaker = SpeakerEncoder()
  except ImportError as e:
    speaker, judges.skipped["speaker"] = None, f"not installed ({e}): pip install --no-deps resemblyzer==0.1.4 " \
                                                "webrtcvad-wheels"
  os.makedirs(args.out, exist_ok=True)
  voices = store.speakers()
  rows = []
  for n, i in enumerate(tqdm(clips, desc="clips", file=sys.stderr)):
    u = store.utterances[i]
    prompt_index = pick_prompt(store, voices, int(i), synth.max_positions // 2,
                               np.random.default_rng([args.seed, int(i)]))
    p_utt = store.utterances[prompt_index]
    prompt = synth.prompt_from_wave(recording(prompt_index), p_utt.text, p_utt.language)
    other_text = store.utterances[clips[(n + 1) % len(clips)]].text
    generated, shuffled = (synth.speak([t], prompt, u.language, seed=args.seed + int(i))[0]
                           for t in (u.text, other_text))
    resynthesis = synth.coder.decode_batch(store.codes(int(i)).T[None])[0]
    waves = {"ground truth": recording(int(i)), "resynthesis": resynthesis, "generated": generated.wave,
             "shuffled text": shuffled.wave, "prompt alone": recording(prompt_index)}
    row = {"id": u.id, "voice": u.speaker, "prompt": p_utt.id, "text": u.text, "ended": generated.ended,
           "sentences": generated.sentences, "seconds": {k: w.shape[0] / rate for k, w in waves.items()}}
    for name, wave in waves.items():
      judge_wave = resample(wave, rate, judges_lib.JUDGE_RATE) if rate != judges_lib.JUDGE_RATE else wave
      scores = {}
      if judges.whisper is not None:
        scores["transcript"] = judges.whisper(judge_wave, judges_lib.JUDGE_RATE)
      if judges.dnsmos is not None and np.any(wave):
        scores["dnsmos"] = judges.dnsmos(judge_wave, judges_lib.JUDGE_RATE)
      if speaker is not None and np.any(wave):
        scores["embedding"] = speaker(judge_wave, judges_lib.JUDGE_RATE).tolist()
      row[name] = scores
      if args.save_audio:
        sf.write(os.path.join(args.out, f"{u.id}-{name.replace(' ', '_')}.wav"), np.clip(wave, -1, 1), rate)
    rows.append(row)

  centroids = {}
  if speaker is not None:
    used = {r["id"] for r in rows} | {r["prompt"] for r in rows}
    for voice, members in voices.items():
      chosen = [j for j in members if store.utterances[j].id not in used][:8]
      embeddings = [speaker(resample(recording(j), rate, judges_lib.JUDGE_RATE) if rate != judges_lib.JUDGE_RATE
                            else recording(j), judges_lib.JUDGE_RATE) for j in chosen]
      if embeddings:
        centroid = np.mean(embeddings, axis=0)
        centroids[voice] = centroid / np.linalg.norm(centroid)

  results = {"checkpoint": args.checkpoint, "store": args.store, "clips": len(rows), "voices": sorted(centroids),
             "judges": judges.versions | ({"speaker": speaker.version} if speaker else {}), "skipped": judges.skipped,
             "eos_rate": float(np.mean([r["ended"] / max(r["sentences"], 1) for r in rows])), "systems": {}}
  for name in SYSTEMS:
    entry = {}
    if judges.whisper is not None:
      entry["wer"] = wer_lib.wer([wer_lib.normalize(r["text"]) for r in rows],
                                 [wer_lib.normalize(r[name]["transcript"]) for r in rows])
    scored = [r[name]["dnsmos"] for r in rows if "dnsmos" in r[name]]
    if scored:
      entry["dnsmos"] = float(np.mean(scored))
    if centroids:
      names = sorted(centroids)
      matrix = np.stack([centroids[v] for v in names])
      hits = [names[int(np.argmax(matrix @ np.asarray(r[name]["embedding"])))] == r["voice"]
              for r in rows if "embedding" in r[name]]
      entry["voice_accuracy"] = float(np.mean(hits)) if hits else float("nan")
    entry["seconds"] = float(np.mean([r["seconds"][name] for r in rows]))
    results["systems"][name] = entry
  lines = [f"VALL-E {args.checkpoint} on {len(rows)} held-out clips of {len(voices)} voices ({args.store}); "
           f"EOS on {results['eos_rate']:.1%} of generated sentences", "",
           "| system | WER % ↓ | voice accuracy ↑ | DNSMOS OVRL ↑ | mean seconds |", "|---|---:|---:|---:|---:|"]
  for name, e in results["systems"].items():
    fmt = lambda key, f: f.format(e[key]) if key in e else "–"  # noqa: E731
    lines.append(f"| {name} | {fmt('wer', '{:.1%}').rstrip('%')} | {fmt('voice_accuracy', '{:.1%}')} | "
                 f"{fmt('dnsmos', '{:.2f}')} | {e['seconds']:.2f} |")
  table = "\n".join(lines)
  print(table)
  with open(os.path.join(args.out, "table.md"), "w") as f:
    f.write(table + "\n")
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  with open(os.path.join(args.out, "clips.jsonl"), "w") as f:
    for r in rows:
      f.write(json.dumps({k: ({kk: vv for kk, vv in v.items() if kk != "embedding"} if isinstance(v, dict) else v)
                          for k, v in r.items()}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
  main()
