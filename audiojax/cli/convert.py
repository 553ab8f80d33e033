"""``convert <family>``: published PyTorch checkpoints → audiojax model directories, one sub-command per family."""
from __future__ import annotations

import argparse
import sys


def _ced(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides
  from audiojax.convert import ced

  no_overrides(overrides)
  model, count = ced.convert(args.torch_checkpoint, args.out, args.variant, args.labels, force=args.force)
  if not args.labels:
    print("note: no --labels given; classes are named class_0.. (pass AudioSet's class_labels_indices.csv)",
          file=sys.stderr)
  print(f"converted CED (width {model.embed_dim}, depth {model.depth}, {count:,} parameters, {model.num_classes} "
        f"classes) from {args.torch_checkpoint} to {args.out}")


def _bert(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides
  from audiojax.convert import bert

  no_overrides(overrides)
  config, count = bert.convert(args.hf_dir, args.out, force=args.force)
  print(f"converted BERT ({config.num_hidden_layers} layers of width {config.hidden_size}, {count:,} parameters; "
        f"pooler and task heads not used) from {args.hf_dir} to {args.out}")


def _encodec(args: argparse.Namespace, overrides: list[str]) -> None:
  from audiojax.cli import no_overrides
  from audiojax.convert import encodec

  no_overrides(overrides)
  model, count = encodec.convert(args.torch_checkpoint, args.out, force=args.force)
  print(f"converted EnCodec ({model.sample_rate // 1000} kHz, {model.n_filters} filters, {count:,} parameters, "
        f"{model.n_q} codebooks × {model.bins}, {', '.join(f'{b:g}' for b in model.bandwidths)} kbps) from "
        f"{args.torch_checkpoint} to {args.out}")


def register(sub: argparse._SubParsersAction) -> None:
  c = sub.add_parser("convert", help="convert a published PyTorch checkpoint into an audiojax model directory")
  families = c.add_subparsers(dest="family", required=True, metavar="FAMILY")

  ced = families.add_parser("ced", help="RicherMans/CED releases (audiotransformer_*.pt) or their Hugging Face form")
  ced.add_argument("--torch-checkpoint", required=True, help=".pt/.pth/.bin (read with weights_only) or .safetensors")
  ced.add_argument("--variant", choices=("tiny", "mini", "small", "base"), default=None,
                   help="checked against the checkpoint's width (inferred when omitted)")
  ced.add_argument("--out", required=True, help="model directory to write (use it as --checkpoint of tag)")
  ced.add_argument("--labels", default=None, help="AudioSet's class_labels_indices.csv, or one class name per line")
  ced.add_argument("--force", action="store_true", help="replace the model directory already at --out")
  ced.set_defaults(fn=_ced)

  bert = families.add_parser("bert", help="a Hugging Face BERT directory: PromptASR's frozen prompt encoder")
  bert.add_argument("--hf-dir", required=True,
                    help="a local Hugging Face BERT directory (config.json, vocab.txt, model.safetensors or "
                         "pytorch_model.bin), e.g. bert-base-cased for PromptASR's config.model.bert_dir")
  bert.add_argument("--out", required=True, help="model directory to write")
  bert.add_argument("--force", action="store_true", help="replace the model directory already at --out")
  bert.set_defaults(fn=_bert)

  enc = families.add_parser("encodec", help="facebookresearch/encodec's 24 kHz model (encodec_24khz-d7cc33bc.th)")
  enc.add_argument("--torch-checkpoint", required=True, help=".th/.pt (read with weights_only) or .safetensors")
  enc.add_argument("--out", required=True, help="model directory to write (use it as --checkpoint of codec)")
  enc.add_argument("--force", action="store_true", help="replace the model directory already at --out")
  enc.set_defaults(fn=_encodec)


