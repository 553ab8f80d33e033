"""``speak``: zero-shot text to speech with a VALL-E model in the voice of a short prompt recording
(:mod:`audiojax.inference.synthesizer`)."""
from __future__ import annotations

import argparse
import os
import sys


def _lines(path: str) -> list[str]:
  from audiojax.errors import UserError

  try:
    with open(path, encoding="utf-8") as f:
      lines = [line.strip() for line in f]
  except OSError as e:
    raise UserError(f"cannot read --lines file '{path}' ({e.strerror}); give a UTF-8 text file, one text per line")
  lines = [line for line in lines if line]
  if not lines:
    raise UserError(f"--lines file '{path}' has no text; give one text per line")
  return lines


def _speak(args: argparse.Namespace, overrides: list[str]) -> None:
  from tqdm import tqdm

  from audiojax.cli import no_overrides
  from audiojax.decoding.sampling import Sampling
  from audiojax.errors import UserError
  from audiojax.inference.codec import write_audio
  from audiojax.inference.synthesizer import Synthesizer

  no_overrides(overrides)
  if (args.text is None) == (args.lines is None):
    raise UserError("give either --text or --lines")
  if args.text is not None and not args.out:
    raise UserError("--text writes one file: give --out OUT.wav")
  if args.lines is not None and not args.out_dir:
    raise UserError("--lines writes one file per line: give --out-dir DIR")
  texts = [args.text] if args.text is not None else _lines(args.lines)
  synthesizer = Synthesizer.from_checkpoint(args.checkpoint, max_frames_per_phoneme=args.max_frames_per_phoneme)
  language = args.language
  synthesizer.check_language(language)
  prompt = synthesizer.prompt(args.prompt_audio, args.prompt_text, args.prompt_language or language)
  for text in texts:  # every text is checked before anything is written
    synthesizer.phonemes(text, language)
  sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, ras_window=args.ras_window,
                      ras_threshold=args.ras_threshold)
  outputs = ([args.out] if args.text is not None else
             [os.path.join(args.out_dir, f"{i:04d}.wav") for i in range(len(texts))])
  if args.out_dir:
    os.makedirs(args.out_dir, exist_ok=True)
  seconds = wall = 0.0
  ended = sentences = 0
  batch = max(1, args.batch_size)
  for start in tqdm(range(0, len(texts), batch), desc="speaking", unit="batch", file=sys.stderr,
                    disable=None if len(texts) > batch else True):
    speech, took = synthesizer.timed_speak(texts[start:start + batch], prompt, language, seed=args.seed + start,
                                           sampling=sampling)
    wall += took
    for s, out in zip(speech, outputs[start:start + batch]):
      write_audio(out, iter([s.wave]), s.sample_rate)
      seconds += s.seconds
      ended += s.ended
      sentences += s.sentences
  where = args.out or args.out_dir
  print(f"spoke {len(texts)} text(s), {sentences} sentence(s), {seconds:.2f} s of audio → {where}; "
        f"{ended}/{sentences} ended on EOS; real-time factor {wall / max(seconds, 1e-9):.2f}")


def register(sub: argparse._SubParsersAction) -> None:
  s = sub.add_parser("speak", help="text to speech in the voice of a prompt recording (VALL-E)")
  s.add_argument("--checkpoint", required=True, help="a VALL-E model directory (export) or codec-LM workdir")
  s.add_argument("--text", help="the text to say (long text is spoken sentence by sentence)")
  s.add_argument("--lines", help="a text file: each non-empty line is spoken to its own file in --out-dir")
  s.add_argument("--prompt-audio", required=True, help="a recording of the voice (≥ 1 s; about 3 s is typical)")
  s.add_argument("--prompt-text", required=True, help="what the prompt recording says")
  s.add_argument("--language", default="en", help="the language of the text (default en)")
  s.add_argument("--prompt-language", default="", help="the prompt's language (default: --language)")
  s.add_argument("--seed", type=int, default=0)
  s.add_argument("--out", help="audio file to write with --text (.wav, .flac, .ogg)")
  s.add_argument("--out-dir", help="folder for --lines (NNNN.wav per line)")
  s.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
  s.add_argument("--top-k", type=int, default=0, help="0: off")
  s.add_argument("--top-p", type=float, default=0.8, help="nucleus (1: off)")
  s.add_argument("--ras-window", type=int, default=10, help="repetition-aware sampling window (0: off)")
  s.add_argument("--ras-threshold", type=float, default=0.1)
  s.add_argument("--max-frames-per-phoneme", type=float, default=8.0, help="a sentence's length cap")
  s.add_argument("--batch-size", type=int, default=16, help="--lines spoken at once")
  s.set_defaults(fn=_speak)
