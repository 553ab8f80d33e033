"""Codec speed: the EnCodec 24 kHz model encoding and decoding in JAX, next to the original PyTorch ``encodec``
package running the same weights on the same input, in one run.

``python -m audiojax bench codec [--seconds 10]`` times, for 1.5 / 6 / 24 kbps (2 / 8 / 32 codebooks), the jitted
``encode`` (``wave (1, L)`` → ``codes (1, K, T)``) and ``decode`` (``codes`` → ``wave (1, T · 320)``) of
``codec.Model("encodec_24khz")`` on ``seconds`` of audio (batch 1), the best of ``repeats`` calls after one that
compiles (:func:`audiojax.bench.timing.best_seconds`), and prints real-time factors: seconds of compute per second of
audio (below 1 is faster than real time).

Weights are random but the same on both sides: a state dict in EnCodec's layout (names and shapes from
:func:`audiojax.convert.encodec.state_dict_layout`, values drawn as ``tests/encodec_random_weights.py`` draws them),
its codebooks seeded around the encoder's latents of the benchmark input (codebook k with spread ``std / (k + 1)``,
as ``tests/test_convert_encodec.py`` seeds the full-size model) so that frames spread over the codes. JAX reads it
through :func:`audiojax.convert.encodec.to_variables`; where ``encodec`` (PyPI 0.1.1) and ``torch`` import,
``EncodecModel.encodec_model_24khz(pretrained=False)`` loads it with ``load_state_dict`` and is timed with
``torch.set_num_threads`` set to the cores this process may use (XLA's CPU thread pool takes all of them too). A
sanity line compares the two decoders on the same codes (they agree within about 1e-7 on a CPU); elsewhere the
torch column says it is absent.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from audiojax.bench.timing import best_seconds
from audiojax.convert import encodec as convert_encodec
from audiojax.models import codec

BANDWIDTHS = (1.5, 6.0, 24.0)
AGREEMENT = 1e-4  # decoded waves of the same codes, JAX against torch, on CPU in float32


def random_state_dict(model: codec.Codec, seed: int = 0) -> dict[str, np.ndarray]:
  """Random float32 weights in EnCodec's state-dict layout for ``model``, as ``tests/encodec_random_weights.py``
  draws them: convolution ``weight_v ~ N(0, 1/fan_in)`` (rows of about unit norm), ``weight_g ~ U[0.5, 1.5]``,
  biases ``N(0, 0.1²)``, LSTM parameters ``U(±1/√H)``; codebooks are placeholders (see :func:`seed_codebooks`)."""
  out = {}
  for i, tensor in enumerate(convert_encodec.state_dict_layout(model)):
    rng = np.random.default_rng([seed, i])
    name, shape = tensor.name, tensor.shape
    if ".lstm." in name:
      x = rng.uniform(-(shape[0] // 4) ** -0.5, (shape[0] // 4) ** -0.5, shape)
    elif "._codebook." in name:
      x = np.ones(shape)
    elif name.endswith("weight_g"):
      x = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("bias"):
      x = rng.normal(0, 0.1, shape)
    else:
      x = rng.normal(0, int(np.prod(shape[1:])) ** -0.5, shape)
    out[name] = x.astype(np.float32)
  return out


def seed_codebooks(state_dict: dict[str, np.ndarray], latents: np.ndarray, seed: int = 0) -> None:
  """Fills the codebooks of ``state_dict`` in place from ``latents (B, T, dim)``: codebook k is ``N(0, std²) / (k +
  1)`` per dimension (the first around the latents' mean), so that the residual quantiser spreads frames over its
  codes; ``embed_avg = embed``, cluster sizes 1, ``inited`` 1."""
  flat = latents.reshape(-1, latents.shape[-1]).astype(np.float64)
  mean, spread = flat.mean(0), flat.std(0)
  rng = np.random.default_rng([seed, 1])
  k = 0
  while f"quantizer.vq.layers.{k}._codebook.embed" in state_dict:
    prefix = f"quantizer.vq.layers.{k}._codebook"
    shape = state_dict[f"{prefix}.embed"].shape
    embed = (rng.standard_normal(shape) * spread / (k + 1) + (mean if k == 0 else 0)).astype(np.float32)
    state_dict[f"{prefix}.embed"], state_dict[f"{prefix}.embed_avg"] = embed, embed.copy()
    state_dict[f"{prefix}.cluster_size"] = np.ones(shape[:1], np.float32)
    state_dict[f"{prefix}.inited"] = np.ones(1, np.float32)
    k += 1


def bench_wave(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
  """``(1, seconds · sample_rate)`` float32: three gliding tones under a little noise, peaks about 0.6."""
  t = np.arange(max(1, int(round(seconds * sample_rate)))) / sample_rate
  rng = np.random.default_rng(seed)
  tones = sum(0.2 * np.sin(2 * np.pi * f * t * (1 + 0.1 * np.sin(2 * np.pi * 0.5 * t))) for f in (220.0, 660.0, 1900.0))
  return (tones + 0.02 * rng.standard_normal(t.shape))[None].astype(np.float32)


def _torch_modules() -> tuple[Any, Any] | str:
  """``(torch, encodec)`` modules, or why they are absent."""
  try:
    import encodec
    import torch
  except ImportError as e:
    return f"'{e.name}' is not importable"
  return torch, encodec


def cpu_threads() -> int:
  """The cores this process may run on (XLA's CPU thread pool uses all of them)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(seconds: float = 10.0, bandwidths: tuple[float, ...] = BANDWIDTHS, repeats: int = 5) -> dict[str, Any]:
  """Times both implementations and prints the table; returns ``rows`` (per bandwidth: ``bandwidth``, ``codebooks``,
  ``jax_encode_rtf``, ``jax_decode_rtf`` and, with torch, ``torch_encode_rtf``, ``torch_decode_rtf``), ``torch``
  (None or the reason it is absent), ``max_abs_diff`` (decoded waves of torch's codes at the last bandwidth, JAX
  against torch; None without torch) and ``codes_agree`` (the fraction of equal codes there)."""
  model = codec.Model("encodec_24khz")
  wave = bench_wave(seconds, model.sample_rate)
  audio_seconds = wave.shape[1] / model.sample_rate
  threads = cpu_threads()

  state_dict = random_state_dict(model)
  _, variables = convert_encodec.to_variables(state_dict, source="random weights")
  latents_fn = jax.jit(lambda v, w: model.apply(v, w, method="latents"))
  seed_codebooks(state_dict, np.asarray(latents_fn(variables, wave)))
  converted, variables = convert_encodec.to_variables(state_dict, source="random weights")
  assert converted == model
  variables = jax.device_put(variables)
  device_wave = jax.device_put(wave)

  torch_modules = _torch_modules()
  torch_absent = torch_modules if isinstance(torch_modules, str) else None
  torch_device = None
  if torch_absent is None:
    torch, encodec = torch_modules
    on_gpu = jax.default_backend() == "gpu" and torch.cuda.is_available()
    torch_device = "cuda" if on_gpu else "cpu"
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    original = encodec.EncodecModel.encodec_model_24khz(pretrained=False)
    original.load_state_dict({k: torch.from_numpy(v) for k, v in state_dict.items()})
    original.to(torch_device)
    torch_wave = torch.from_numpy(wave)[:, None].to(torch_device)  # (1, 1, L)
    synced = lambda fn: (lambda: (fn(), torch.cuda.synchronize() if on_gpu else None)[0])

  encode = jax.jit(lambda v, w, n_q: model.apply(v, w, n_q, method="encode"), static_argnums=2)
  decode = jax.jit(lambda v, c: model.apply(v, c, method="decode"))
  rtf = lambda fn: best_seconds(fn, repeats) / audio_seconds

  rows, result = [], {"torch": torch_absent, "torch_device": torch_device, "max_abs_diff": None, "codes_agree": None}
  try:
    for bandwidth in bandwidths:
      n_q = model.bandwidth_to_n_q(bandwidth)
      codes = encode(variables, device_wave, n_q)
      row = {"bandwidth": bandwidth, "codebooks": n_q,
             "jax_encode_rtf": rtf(lambda: encode(variables, device_wave, n_q)),
             "jax_decode_rtf": rtf(lambda: decode(variables, codes))}
      if torch_absent is None:
        with torch.inference_mode():
          original.set_target_bandwidth(bandwidth)
          frames = original.encode(torch_wave)
          row["torch_encode_rtf"] = rtf(synced(lambda: original.encode(torch_wave)))
          row["torch_decode_rtf"] = rtf(synced(lambda: original.decode(frames)))
          if bandwidth == bandwidths[-1]:  # the sanity line: both decoders on torch's codes
            torch_codes = frames[0][0].cpu().numpy()
            want = original.decode(frames)[:, 0].cpu().numpy()
            got = np.asarray(decode(variables, torch_codes))
            result.update(max_abs_diff=float(np.max(np.abs(got - want))), decoded_peak=float(np.max(np.abs(want))),
                          codes_agree=float(np.mean(np.asarray(codes) == torch_codes)))
      rows.append(row)
  finally:
    if torch_absent is None:
      torch.set_num_threads(old_threads)
  result["rows"] = rows
  _print(result, audio_seconds, threads)
  return result


def _print(result: dict[str, Any], audio_seconds: float, threads: int) -> None:
  backend = jax.default_backend()
  torch_on = f"torch on {result['torch_device']}" if result["torch"] is None else "no torch"
  print(f"EnCodec 24 kHz (random weights, seeded codebooks), {audio_seconds:g} s of audio, batch 1, float32; JAX on "
        f"{backend} ({jax.devices()[0].device_kind}), {torch_on}; {threads} CPU threads (XLA's CPU pool; "
        "torch.set_num_threads)")
  print("RTF = seconds of compute per second of audio (lower is faster); torch/JAX > 1: JAX is faster")
  have_torch = result["torch"] is None
  print(f"{'kbps':>5} {'K':>3} | {'encode RTF JAX':>14} {'torch':>8} {'torch/JAX':>9} | {'decode RTF JAX':>14} "
        f"{'torch':>8} {'torch/JAX':>9}")
  cell = lambda row, key: f"{row[key]:8.4f}" if key in row else f"{'—':>8}"
  ratio = lambda row, step: (f"{row[f'torch_{step}_rtf'] / row[f'jax_{step}_rtf']:8.2f}×" if have_torch
                             else f"{'—':>9}")
  for row in result["rows"]:
    print(f"{row['bandwidth']:>5g} {row['codebooks']:>3} | {row['jax_encode_rtf']:14.4f} "
          f"{cell(row, 'torch_encode_rtf')} {ratio(row, 'encode')} | {row['jax_decode_rtf']:14.4f} "
          f"{cell(row, 'torch_decode_rtf')} {ratio(row, 'decode')}")
  if not have_torch:
    print(f"torch column absent: {result['torch']} (pip install torch and encodec==0.1.1 to time the original "
          "next to JAX)")
    return
  diff, peak = result["max_abs_diff"], result["decoded_peak"]
  verdict = "agree" if diff <= AGREEMENT * max(1.0, peak) else "DISAGREE"
  print(f"sanity: the same codes ({result['rows'][-1]['codebooks']} codebooks) decoded by JAX and torch {verdict}: "
        f"max |difference| {diff:.2e} (peak {peak:.2f}); codes equal {result['codes_agree']:.1%} "
        "(near ties may differ)")
