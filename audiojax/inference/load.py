"""A model and its variables from a model directory (converted or exported: ``model.json`` + ``variables/``) or a
training workdir (``config.json`` + checkpoints), reading only the parameters and model state: no optimiser state,
no dataset, no task (:func:`audiojax.train.checkpoint.restore_variables`)."""
from __future__ import annotations

import os
from typing import Any

import flax.linen as nn
import jax

from audiojax import paths
from audiojax.config import loader
from audiojax.data.token_store import TokenStore
from audiojax.errors import UserError
from audiojax.models import ced as ced_model
from audiojax.models import codec as codec_model
from audiojax.models import prompt_asr as prompt_asr_model
from audiojax.models import valle as valle_model
from audiojax.nn.quantize import CODEBOOKS
from audiojax.tasks import asr, codec_lm, registry, tagging
from audiojax.tasks import codec as codec_task
from audiojax.text import prompts
from audiojax.text.phonemes import PhonemeVocabulary
from audiojax.text.tokenizer import Tokenizer
from audiojax.train import checkpoint, export


def require_dir(path: str) -> str:
  """The folder of ``path``: a local one made absolute; for ``hf://org/name[@revision]`` the Hugging Face Hub
  snapshot (downloaded, or with ``HF_HUB_OFFLINE=1`` read from the local hub cache; needs ``audiojax[hub]``); a
  model directory in a bucket (``gs://...``) copied into the local cache; a training workdir in a bucket as it is
  (its checkpoints are read in place). A missing directory is a UserError."""
  if path.startswith(HUB_PREFIX):
    return hub_snapshot(path)
  folder = paths.resolve(path)
  if folder.is_file():
    raise UserError(f"checkpoint '{folder}' is a file; give a training workdir or a model directory (a folder)")
  if not folder.is_dir():
    raise UserError(f"checkpoint '{folder}' does not exist; give a training workdir or a converted model directory")
  if paths.is_uri(folder) and export.is_model_dir(str(folder)):
    return paths.local_copy(folder)
  return str(folder)


HUB_PREFIX = "hf://"


def hub_snapshot(reference: str) -> str:
  """The local snapshot folder of ``hf://org/name[@revision]``."""
  repo, _, revision = reference[len(HUB_PREFIX):].partition("@")
  try:
    from huggingface_hub import snapshot_download
  except ImportError:
    raise UserError(f"'{reference}' needs the huggingface_hub package: pip install 'audiojax[hub]'") from None
  try:  # the hub's own environment variables, read at each call (huggingface_hub reads them once, at import)
    return snapshot_download(repo_id=repo, revision=revision or None, cache_dir=os.environ.get("HF_HUB_CACHE"),
                             local_files_only=os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"))
  except Exception as e:  # noqa: BLE001 (not found, offline without a cached copy, bad name)
    raise UserError(f"cannot get '{reference}' from the Hugging Face Hub ({str(e).strip().splitlines()[0]}); check the "
                    f"name, or with HF_HUB_OFFLINE=1 put the model in the local hub cache first") from None


def workdir_config(path: str) -> Any | None:
  """The completed config of a training workdir, or None when ``path`` is none."""
  file = paths.resolve(path) / "config.json"
  if not file.is_file():
    return None
  return registry.with_current_defaults(loader.restore(file))


def variables(path: str, model: nn.Module, *inputs: Any) -> dict[str, Any]:
  """The variables of ``model`` (whose ``init(rng, *inputs)`` gives their shapes) stored in ``path``."""
  abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *inputs))
  return checkpoint.restore_variables(path, nn.meta.unbox(abstract))


def ced(path: str, **runtime: Any) -> tuple[ced_model.CED, dict[str, Any]]:
  """``(model, variables)`` of a CED model directory or tagging workdir; ``model.apply(variables, wave)`` gives the
  outputs. ``runtime`` sets fields such as ``attention_impl`` or ``dtype``."""
  path = require_dir(path)
  if export.is_model_dir(path):
    model = ced_model.from_config(export.read_meta(path, ced_model.FAMILY), **runtime)
  else:
    config = workdir_config(path)
    if config is None:
      raise UserError(f"'{path}' is neither a model directory (model.json) nor a training workdir (config.json); "
                      f"convert a checkpoint with 'python -m audiojax convert ced' or train one")
    if registry.get(config.task).model is not ced_model:
      raise UserError(f"'{path}' holds a {config.task} run, not a CED tagger")
    head = checkpoint.saved_shapes(path)["params"]["head"]["bias"]  # the checkpoint's classes, whatever the names
    model = tagging.model_from_config(config.model, head.shape[-1])
    model = model.clone(**runtime) if runtime else model
  return model, variables(path, model, *ced_model.example_inputs(model))


def codec(path: str, **runtime: Any) -> tuple[codec_model.Codec, dict[str, Any]]:
  """``(model, variables)`` of a codec model directory (``convert encodec``, ``export``) or codec training workdir
  (its newest checkpoint, the EMA weights when kept): ``variables`` holds ``params`` and the ``codebooks``;
  ``model.apply(variables, wave, n_q, method="encode")`` gives codes. ``runtime`` sets ``dtype``."""
  path = require_dir(path)
  if export.is_model_dir(path):
    model = codec_model.from_config(export.read_meta(path, codec_model.FAMILY), **runtime)
    return model, variables(path, model, *codec_model.example_inputs(model))
  config = workdir_config(path)
  if config is None:
    raise UserError(f"'{path}' is neither a codec model directory (model.json) nor a training workdir (config.json); "
                    f"convert a checkpoint with 'python -m audiojax convert encodec' or train one")
  if registry.get(config.task).model is not codec_model:
    raise UserError(f"'{path}' holds a {config.task} run, not a codec")
  model = codec_task.model_from_config(config.model)
  model = model.clone(**runtime) if runtime else model
  stored = checkpoint.restore_variables(path)
  return model, {"params": stored["params"]["generator"], CODEBOOKS: stored[CODEBOOKS]}


def prompt_encoding(settings: dict[str, Any]) -> prompts.PromptEncoding:
  """The prompt encoding a Prompt-ASR model was trained with: UTF-8 bytes, or WordPiece of its BERT
  (``vocab_dir``)."""
  if settings.get("vocab_dir"):
    return prompts.PromptEncoding(int(settings["max_prompt_tokens"]), settings["vocab_dir"])
  return prompts.PromptEncoding(int(settings["max_prompt_bytes"]))


def prompt_asr(path: str) -> tuple[prompt_asr_model.PromptASR, dict[str, Any], Tokenizer, dict[str, Any]]:
  """``(model, variables, tokenizer, settings)`` of a Prompt-ASR model directory or training workdir; ``settings``
  holds ``max_seconds`` (the window), ``max_prompt_bytes`` and, with a BERT prompt encoder, ``vocab_dir`` and
  ``max_prompt_tokens``."""
  path = require_dir(path)
  tokenizer_file = paths.resolve(path) / asr.TOKENIZER_FILE
  if not tokenizer_file.is_file():
    raise UserError(f"'{path}' has no {asr.TOKENIZER_FILE}; point --checkpoint at a PromptASR training workdir or "
                    f"model directory")
  tokenizer = Tokenizer(paths.local_copy(tokenizer_file))
  if export.is_model_dir(path):
    meta = export.read_meta(path, prompt_asr_model.FAMILY)
    settings = {"max_seconds": meta["max_seconds"], "max_prompt_bytes": meta["max_prompt_bytes"]}
    if meta.get("text_encoder") == "bert":
      settings.update(vocab_dir=os.path.join(path, asr.BERT_VOCAB_DIR), max_prompt_tokens=meta["max_prompt_tokens"])
    model = prompt_asr_model.from_config(meta, tokenizer.vocab_size)
  else:
    config = workdir_config(path)
    if config is None:
      raise UserError(f"'{path}' is neither a model directory nor a training workdir (no model.json or config.json)")
    config = asr.AsrTask.workdir_config(config, path)
    model = asr.model_from_config(config.model, tokenizer.vocab_size)
    settings = {"max_seconds": float(config.data.max_seconds), "max_prompt_bytes": int(config.data.max_prompt_bytes)}
    if asr.bert_dir(config.model):
      settings.update(vocab_dir=config.model.bert_dir,
                      max_prompt_tokens=int(config.data.get("max_prompt_tokens", 128)))
  samples = int(settings["max_seconds"] * prompt_asr_model.SAMPLE_RATE)
  inputs = prompt_asr_model.example_inputs(model, samples, prompt_encoding(settings).max_length)
  return model, variables(path, model, *inputs), tokenizer, settings


def valle(path: str) -> tuple[valle_model.Valle, dict[str, Any], PhonemeVocabulary, dict[str, Any]]:
  """``(model, variables, vocabulary, settings)`` of a VALL-E model directory or codec-LM training workdir;
  ``settings`` holds ``codec_dir`` (the codec whose tokens the model speaks), ``max_positions`` and ``n_q``."""
  path = require_dir(path)
  if not (paths.resolve(path) / PhonemeVocabulary.FILE).is_file():
    raise UserError(f"'{path}' has no {PhonemeVocabulary.FILE}; point --checkpoint at a VALL-E training workdir or "
                    "model directory")
  vocabulary = PhonemeVocabulary.load(path)
  if export.is_model_dir(path):
    meta = export.read_meta(path, valle_model.FAMILY)
    model = valle_model.from_config(meta["model"])
    settings = {"codec_dir": os.path.join(path, codec_lm.CODEC_DIR), "max_positions": int(meta["max_positions"]),
                "n_q": int(meta["n_q"])}
  else:
    config = workdir_config(path)
    if config is None or config.get("task") != "codec_lm":
      raise UserError(f"'{path}' is neither a VALL-E model directory nor a codec-LM training workdir")
    store = TokenStore(config.data.train_store).meta
    model = valle_model.Model(config.model.variant, text_vocab=len(vocabulary),
                              num_languages=max(1, len(vocabulary.languages)), n_q=store.n_q, bins=store.bins,
                              **dict(config.model.get("overrides", {}) or {}))
    settings = {"codec_dir": store.codec_dir, "max_positions": int(config.data.max_positions), "n_q": store.n_q}
  return model, variables(path, model, *valle_model.example_inputs(model)), vocabulary, settings
