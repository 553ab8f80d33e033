"""Reading PyTorch/Hugging Face weight files into numpy without executing pickled code."""
from __future__ import annotations

import os

import numpy as np

from audiojax.errors import UserError


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """``.safetensors`` (numpy only) or ``.pt/.pth/.bin`` (``torch.load(weights_only=True)``) → name → float32 array.

  A checkpoint dict holding the weights under ``"model"`` or ``"state_dict"`` is unwrapped.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise UserError(f"checkpoint '{path}' does not exist; check the path")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file
    try:
      tensors = load_file(path)
    except Exception as e:  # safetensors raises its own error types for corrupt headers
      raise UserError(f"cannot read '{path}' as safetensors ({e}); give the original model.safetensors") from None
    return {k: np.asarray(v) for k, v in tensors.items()}
  try:
    import torch
  except ImportError:
    raise UserError(f"reading '{path}' needs PyTorch: pip install 'audiojax[convert]' (or give a .safetensors "
                    f"file)") from None
  try:
    dump = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pickle errors, zip errors, refused globals
    if "weights only load failed" in str(e).lower():  # torch's own advice there is to run the pickle: never
      reason = "it holds pickled objects besides tensors, which audiojax never executes"
    else:
      reason = str(e).splitlines()[0]
    raise UserError(f"cannot read '{path}' as a PyTorch checkpoint ({reason}); give the released .pt or "
                    f"pytorch_model.bin, or a .safetensors export of it") from None
  for key in ("model", "state_dict"):
    if isinstance(dump, dict) and key in dump and isinstance(dump[key], dict):
      dump = dump[key]
  if not isinstance(dump, dict):
    raise UserError(f"'{path}' does not hold a state dict (found {type(dump).__name__})")
  return {k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.cpu().numpy()
          for k, v in dump.items() if hasattr(v, "detach")}
