"""Command line: ``python -m audiojax train | eval | average | tag | transcribe | data | convert | probe | teacher |
bench``.

Bad input (files, config keys, checkpoints, meshes) ends with one ``error: ...`` line and exit status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

from audiojax.asr_options import add_decoder_arg, add_lm_args
from audiojax.errors import UserError


def _train(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax import config as config_lib
  from audiojax.train import loop

  config = config_lib.override(config_lib.load(args.config), overrides)
  result = loop.train(config, args.workdir)
  ev = result["eval"]
  if "eval/mAP" in ev:
    print(f"step {result['step']}: held-out mAP {ev['eval/mAP']:.4f} vs label-prior baseline "
          f"{ev['eval/baseline_mAP']:.4f} on {ev['eval/examples']} clips")
  elif "eval/wer" in ev:
    print(f"step {result['step']}: held-out WER {ev['eval/wer']:.4f} on {ev['eval/examples']} utterances "
          f"({config.eval.conditions[0]})")
  print(f"checkpoints in {os.path.join(args.workdir, 'checkpoints')}; metrics in "
        f"{os.path.join(args.workdir, 'metrics.jsonl')}")


def _eval(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.train import loop

  result = loop.evaluate(args.workdir, overrides)
  print(json.dumps(result, indent=2))


def _average(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.train import loop

  _no_overrides(overrides)
  out = args.out or os.path.join(args.workdir, f"averaged_last{args.last}")
  steps = loop.export_average_of_last(args.workdir, args.last, out)
  print(f"averaged steps {', '.join(map(str, steps))} of {args.workdir} into {out}")


def _tag(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.inference import Tagger

  _no_overrides(overrides)
  if args.top_k < 1:
    raise UserError(f"--top-k {args.top_k}: give a positive number of labels")
  if not 0.0 < args.threshold < 1.0:
    raise UserError(f"--threshold {args.threshold}: give a probability between 0 and 1")
  tagger = Tagger.from_checkpoint(args.checkpoint)
  for path in args.files:
    result = tagger.tag_file(path, threshold=args.threshold if args.timestamps else None)
    if result.source_rate != 16000:
      print(f"note: '{path}' is {result.source_rate} Hz; resampled to 16000 Hz", file=sys.stderr)
    top = tagger.top_k(result.probs, args.top_k)
    if args.format == "json":
      record = {"file": path, "duration": round(result.duration, 3),
                "top": [{"label": name, "probability": round(p, 4)} for name, p in top]}
      if args.timestamps:
        record["events"] = [{"start": round(e.start, 2), "end": round(e.end, 2), "label": e.label,
                             "probability": round(e.probability, 4)} for e in result.events]
      print(json.dumps(record))
      continue
    print(path)
    for name, prob in top:
      print(f"  {prob:.3f}  {name}")
    if args.timestamps:
      print(f"  events (probability ≥ {args.threshold:g}, 160 ms resolution):")
      for e in result.events:
        print(f"  {e.start:8.2f}–{e.end:<8.2f} {e.label}  {e.probability:.3f}")


def _transcribe(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.asr_inference import transcriber_from_args

  _no_overrides(overrides)
  words = None
  if args.biasing_list:
    if not os.path.isfile(args.biasing_list):
      raise UserError(f"--biasing-list '{args.biasing_list}' does not exist; give a text file with one word per line")
    with open(args.biasing_list, encoding="utf-8") as f:
      words = [w.strip() for w in f if w.strip()]
  transcriber = transcriber_from_args(args, args.beam)
  for path in args.files:
    text = transcriber.transcribe_file(path, style_prompt=args.style_prompt, content_prompt=args.content_prompt,
                                      biasing_words=words, beam=args.beam, boost=args.boost)
    print(f"{path}\t{text}")


def _data(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.data import builders

  _no_overrides(overrides)
  builder = builders.build(args.name, args.data_dir, manual_dir=args.manual_dir)
  if args.action == "build":
    for split, info in builder.info.splits.items():
      print(f"{args.name} {split}: {info.num_examples} examples")
    print(f"in {builder.data_dir}")
    return
  builders.export_example(builder, args.split, args.index, args.out)


def _convert(args: argparse.Namespace, overrides: list[str]) -> None:
  _no_overrides(overrides)
  if args.family == "bert":
    _convert_bert(args)
    return
  from audiojax.convert import ced as convert_ced

  if not args.torch_checkpoint:
    raise UserError("convert ced needs --torch-checkpoint (the released .pt or model.safetensors)")
  model, count = convert_ced.convert(args.torch_checkpoint, args.out, args.variant, args.labels)
  if not args.labels:
    print("note: no --labels given; classes are named class_0.. (pass AudioSet's class_labels_indices.csv)",
          file=sys.stderr)
  print(f"converted CED (width {model.embed_dim}, depth {model.depth}, {count:,} parameters, {model.num_classes} "
        f"classes) from {args.torch_checkpoint} to {args.out}")


def _convert_bert(args: argparse.Namespace) -> None:
  from audiojax.convert import bert as convert_bert

  if not args.hf_dir:
    raise UserError("convert bert needs --hf-dir: the local Hugging Face BERT directory (config.json, vocab.txt, "
                    "model.safetensors or pytorch_model.bin)")
  for flag, value in (("--torch-checkpoint", args.torch_checkpoint), ("--variant", args.variant),
                      ("--labels", args.labels)):
    if value:
      raise UserError(f"{flag} is for 'convert ced'; 'convert bert' reads everything from --hf-dir")
  config, count = convert_bert.convert(args.hf_dir, args.out)
  print(f"converted BERT ({config.num_hidden_layers} layers of width {config.hidden_size}, {count:,} parameters; "
        f"pooler and task heads not used) from {args.hf_dir} to {args.out}")


def _probe(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax import probe

  _no_overrides(overrides)
  r = probe.run(args.checkpoint, args.task, args.data_dir, args.dataset)
  print(f"{args.task}: test {r['metric']} {r['test']:.4f} (baseline {r['baseline']:.4f}); linear probe on "
        f"{r['embedding_size']}-d scene embeddings, {r['train']} train / {r['test_examples']} test clips, "
        f"L2 {r['weight_decay']:g}")


def _teacher(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.audio import augment
  from audiojax.tasks import distill

  _no_overrides(overrides)
  aug = None  # teacher_pass's default: the original's, scaled to the chunk
  if args.time_mask_frames is not None:
    aug = dataclasses.replace(augment.for_chunk(args.clip_seconds), time_mask_param=args.time_mask_frames)
  meta = distill.teacher_pass(args.teachers, args.dataset, args.data_dir, args.out, split=args.split,
                              epochs=args.epochs, top_k=args.top_k, clip_seconds=args.clip_seconds,
                              batch_size=args.batch_size, seed=args.seed, aug=aug)
  per_chunk = 4 * meta.top_k + 4
  print(f"teacher store {args.out}: {meta.epochs} epochs × {meta.num_examples} chunks × top-{meta.top_k} "
        f"({per_chunk} bytes per chunk per epoch) from {len(meta.teachers)} teacher(s)")


def _bench(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax import bench

  _no_overrides(overrides)
  bench.main(variant=args.variant, quick=args.quick)


def _no_overrides(overrides: list[str]) -> None:
  if overrides:
    raise UserError(f"unexpected arguments {' '.join(overrides)}; see --help")


def parser() -> argparse.ArgumentParser:
  from audiojax.configs import default_data_dir

  p = argparse.ArgumentParser(prog="python -m audiojax", description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="command", required=True)

  t = sub.add_parser("train", help="train (or resume) an experiment; extra --config.a.b=v arguments override fields")
  t.add_argument("--config", required=True, help="experiments/<family>/<name>.py[:arg]")
  t.add_argument("--workdir", required=True, help="checkpoints, metrics and plots go here; re-running resumes")
  t.set_defaults(fn=_train)

  e = sub.add_parser("eval", help="evaluate the newest checkpoint of a workdir on its eval split (--config.KEY=VALUE "
                                   "changes its config, e.g. --config.eval.decoder=ctc)")
  e.add_argument("--workdir", required=True)
  e.set_defaults(fn=_eval)

  a = sub.add_parser("average", help="export the mean of a workdir's newest checkpoints as a model directory")
  a.add_argument("--workdir", required=True)
  a.add_argument("--last", type=int, required=True, help="how many of the newest kept checkpoints to average")
  a.add_argument("--out", default="", help="the model directory to write (default WORKDIR/averaged_lastN)")
  a.set_defaults(fn=_average)

  g = sub.add_parser("tag", help="print the top-k labels of audio files")
  g.add_argument("files", nargs="+", metavar="FILE")
  g.add_argument("--checkpoint", required=True, help="a training workdir or a converted model directory")
  g.add_argument("--top-k", type=int, default=5)
  g.add_argument("--timestamps", action="store_true", help="also print events as start–end label probability")
  g.add_argument("--threshold", type=float, default=0.5, help="event threshold on the 160 ms patch probability")
  g.add_argument("--format", choices=("text", "json"), default="text", help="json: one JSON object per file")
  g.set_defaults(fn=_tag)

  tr = sub.add_parser("transcribe", help="speech to text with a PromptASR model, one line per file")
  tr.add_argument("files", nargs="+", metavar="FILE")
  tr.add_argument("--checkpoint", required=True, help="a PromptASR training workdir or model directory")
  tr.add_argument("--content-prompt", default="", help="preceding text or rare words that may occur")
  tr.add_argument("--style-prompt", default=None,
                  help="an example of the wanted style, or a style name (mixed-punc, upper-no-punc, lower-punc, "
                       "lower-no-punc); default mixed-punc")
  tr.add_argument("--biasing-list", default=None,
                  help="file of words (one per line): the content prompt (unless given) and hotword boosting")
  tr.add_argument("--beam", type=int, default=1, help="1: greedy; >1: beam search")
  add_decoder_arg(tr)
  tr.add_argument("--boost", type=float, default=2.0, help="hotword bonus per token (with --biasing-list)")
  add_lm_args(tr)
  tr.set_defaults(fn=_transcribe)

  d = sub.add_parser("data", help="build a dataset, or export one example as a wav file")
  d.add_argument("action", choices=("build", "export"))
  d.add_argument("name", help="e.g. gm_instruments/demo or audioset/balanced")
  d.add_argument("--data-dir", default=default_data_dir())
  d.add_argument("--manual-dir", default=None, help="directory of a corpus you downloaded (AudioSet)")
  d.add_argument("--split", default="test")
  d.add_argument("--index", type=int, default=0)
  d.add_argument("--out", default="example.wav")
  d.set_defaults(fn=_data)

  c = sub.add_parser("convert", help="convert a published PyTorch checkpoint into an audiojax model directory")
  c.add_argument("family", choices=("ced", "bert"))
  c.add_argument("--torch-checkpoint", default=None,
                 help="ced: .pt/.pth/.bin (read with weights_only) or .safetensors")
  c.add_argument("--hf-dir", default=None,
                 help="bert: a local Hugging Face BERT directory (config.json, vocab.txt, model.safetensors or "
                      "pytorch_model.bin), e.g. bert-base-cased for PromptASR's config.model.bert_dir")
  c.add_argument("--variant", choices=("tiny", "mini", "small", "base"), default=None,
                 help="checked against the checkpoint's width (inferred when omitted)")
  c.add_argument("--out", required=True, help="model directory to write (use it as --checkpoint of tag)")
  c.add_argument("--labels", default=None, help="AudioSet's class_labels_indices.csv, or one class name per line")
  c.set_defaults(fn=_convert)

  pr = sub.add_parser("probe", help="HEAR-style linear probe on frozen CED embeddings")
  pr.add_argument("--checkpoint", required=True, help="a training workdir or a converted model directory")
  pr.add_argument("--task", required=True, help="gm_family, gm_pitch or debsfx")
  pr.add_argument("--dataset", default=None, help="override the task's dataset, e.g. gm_instruments/small")
  pr.add_argument("--data-dir", default=default_data_dir())
  pr.set_defaults(fn=_probe)

  te = sub.add_parser("teacher", help="consistent-distillation teacher pass: ensemble top-k into a logit store")
  te.add_argument("--teachers", nargs="+", required=True, help="training workdirs or converted model directories")
  te.add_argument("--dataset", required=True, help="e.g. gm_instruments/demo or audioset/balanced")
  te.add_argument("--out", required=True, help="logit store directory (config.distill.store of the student)")
  te.add_argument("--split", default="train")
  te.add_argument("--epochs", type=int, default=4, help="augmented passes (the paper: 40)")
  te.add_argument("--top-k", type=int, default=20)
  te.add_argument("--clip-seconds", type=float, default=10.0, help="chunk length (the student's data.clip_seconds)")
  te.add_argument("--time-mask-frames", type=int, default=None,
                  help="time-mask parameter in mel frames (default: the paper's 192 per 10 s of chunk)")
  te.add_argument("--batch-size", type=int, default=32)
  te.add_argument("--seed", type=int, default=0)
  te.add_argument("--data-dir", default=default_data_dir())
  te.set_defaults(fn=_teacher)

  b = sub.add_parser("bench", help="CED speed: inference clips/s, train steps/s, GFLOP/s vs the matmul peak")
  b.add_argument("--variant", default="mini")
  b.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
  b.set_defaults(fn=_bench)
  return p


COMPILATION_CACHE_ENV = "AUDIOJAX_COMPILATION_CACHE"


def enable_compilation_cache() -> str | None:
  """Turns on JAX's persistent compilation cache so that a rerun, a resumed run or an eval after training loads
  compiled programs from disk instead of compiling again; returns the folder, or None when off.

  The folder is ``$AUDIOJAX_COMPILATION_CACHE`` (empty: off), else ``$XDG_CACHE_HOME/audiojax/xla``. An explicit
  ``JAX_COMPILATION_CACHE_DIR`` is left to JAX. Measured: the Prompt-ASR smoke run took 71 s with an empty cache and
  42 s with a warm one on the 2-core CPU; on an H100 each Prompt-ASR ``train_step`` shape compiles in 30–42 s.
  """
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return os.environ["JAX_COMPILATION_CACHE_DIR"]
  folder = os.environ.get(COMPILATION_CACHE_ENV)
  if folder is None:
    from audiojax.configs import default_cache_dir
    folder = os.path.join(default_cache_dir(), "xla")
  if not folder:
    return None
  import jax
  jax.config.update("jax_compilation_cache_dir", os.path.expanduser(folder))
  return folder


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
  logging.getLogger("audiojax").setLevel(logging.INFO)
  enable_compilation_cache()
  from absl import flags  # grain worker processes read absl flags; parse them once
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(sys.argv[:1])
  args, overrides = parser().parse_known_args(argv)
  try:
    args.fn(args, overrides)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
