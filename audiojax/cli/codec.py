"""Codec commands: ``codec encode`` (audio → codes file), ``codec decode`` (codes file → audio) and ``codec
roundtrip`` (audio → codes → audio), with a codec model directory (``convert encodec``), and ``codec tokens`` (a
speech corpus split → a token store for the codec LM). Files of any length are
coded in 10 s chunks (see :mod:`audiojax.inference.codec`); audio at another rate is resampled, and a note says so."""
from __future__ import annotations

import argparse
import sys


def _coder(args: argparse.Namespace, overrides: list[str]):
  from audiojax.cli import no_overrides
  from audiojax.inference.codec import Coder

  no_overrides(overrides)
  return Coder.from_checkpoint(args.checkpoint)


def _encode_file(coder, path: str, bandwidth: float):
  codes, source_rate = coder.encode_file(path, bandwidth)
  if source_rate != codes.sample_rate:
    print(f"note: '{path}' is {source_rate} Hz; resampled to {codes.sample_rate} Hz", file=sys.stderr)
  return codes


def _encode(args: argparse.Namespace, overrides: list[str]) -> None:
  coder = _coder(args, overrides)
  codes = _encode_file(coder, args.input, args.bandwidth)
  codes.save(args.out)
  k, frames = codes.codes.shape
  print(f"encoded {args.input} ({codes.num_samples / codes.sample_rate:.2f} s) at {codes.bandwidth:g} kbps: {k} "
        f"codebooks × {frames} frames ({codes.frame_rate} Hz) → {args.out}")


def _decode(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.inference.codec import Codes

  coder = _coder(args, overrides)
  codes = Codes.load(args.input)
  coder.check(codes, args.input)
  seconds = coder.decode_to_file(codes, args.out)
  print(f"decoded {args.input} ({codes.codes.shape[0]} codebooks, {codes.bandwidth:g} kbps) → {args.out} "
        f"({seconds:.2f} s at {codes.sample_rate} Hz)")


def _roundtrip(args: argparse.Namespace, overrides: list[str]) -> None:
  coder = _coder(args, overrides)
  codes = _encode_file(coder, args.input, args.bandwidth)
  seconds = coder.decode_to_file(codes, args.out)
  print(f"coded {args.input} at {codes.bandwidth:g} kbps ({codes.codes.shape[0]} codebooks) and back → {args.out} "
        f"({seconds:.2f} s at {codes.sample_rate} Hz)")


def _tokens(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax import paths
  from audiojax.cli import no_overrides
  from audiojax.inference.codec_tokens import token_pass

  no_overrides(overrides)
  report = token_pass(args.checkpoint, args.dataset, args.split, args.out, bandwidth=args.bandwidth,
                      data_dir=args.data_dir or paths.default_data_dir(), language=args.language)
  print(f"token store {args.out}: {report.written} utterances ({report.seconds / 3600:.2f} h) of {args.dataset}:"
        f"{args.split} at {args.bandwidth:g} kbps; skipped {report.without_text} without text and {report.too_short} "
        "shorter than one frame")


def register(sub: argparse._SubParsersAction) -> None:
  c = sub.add_parser("codec", help="neural codec: audio to codes and back")
  commands = c.add_subparsers(dest="codec_command", required=True, metavar="COMMAND")
  checkpoint = dict(required=True, help="a codec model directory (convert encodec, export) or training workdir")
  bandwidth = dict(type=float, required=True, help="kbps, one of the model's (EnCodec 24 kHz: 1.5, 3, 6, 12, 24)")

  e = commands.add_parser("encode", help="audio file → codes file (.npz)")
  e.add_argument("input", metavar="IN", help="a WAV, FLAC or OGG recording (resampled to the model's rate)")
  e.add_argument("--checkpoint", **checkpoint)
  e.add_argument("--bandwidth", **bandwidth)
  e.add_argument("--out", required=True, help="codes file to write (.npz)")
  e.set_defaults(fn=_encode)

  d = commands.add_parser("decode", help="codes file → audio file, with the model that encoded it")
  d.add_argument("input", metavar="CODES", help="a .npz written by 'codec encode'")
  d.add_argument("--checkpoint", **checkpoint)
  d.add_argument("--out", required=True, help="audio file to write (.wav, .flac or .ogg), at the model's rate")
  d.set_defaults(fn=_decode)

  r = commands.add_parser("roundtrip", help="audio file → codes → audio file (hear what the codec keeps)")
  r.add_argument("input", metavar="IN", help="a WAV, FLAC or OGG recording (resampled to the model's rate)")
  r.add_argument("--checkpoint", **checkpoint)
  r.add_argument("--bandwidth", **bandwidth)
  r.add_argument("--out", required=True, help="audio file to write (.wav, .flac or .ogg), at the model's rate")
  r.set_defaults(fn=_roundtrip)

  t = commands.add_parser("tokens", help="speech corpus split → codec token store (codes + phonemes) for VALL-E")
  t.add_argument("--checkpoint", **checkpoint)
  t.add_argument("--dataset", required=True, help="a built speech dataset with text, e.g. espeak_prompt/small")
  t.add_argument("--split", required=True, help="e.g. train, test")
  t.add_argument("--bandwidth", **bandwidth)
  t.add_argument("--out", required=True, help="token store directory to write")
  t.add_argument("--data-dir", default="", help="where the dataset is built (default: $AUDIOJAX_DATA_DIR or "
                 "./data/tfds)")
  t.add_argument("--language", default="en", help="phonemiser language of examples without a 'language' feature")
  t.set_defaults(fn=_tokens)
