"""EnCodec conversion: the converted model reproduces the ORIGINAL implementation (facebookresearch/encodec 0.1.1).

``fixtures/encodec_small_parity.npz`` was recorded once, outside the suite, with PyPI ``encodec`` 0.1.1 on torch
2.13.0+cpu (``pip install --no-deps --target DIR encodec==0.1.1``; its ``utils.py`` imports torchaudio for file IO
only, so a stub module stood in for it). The recording script built EnCodec's own classes at a reduced width,
``SEANetEncoder/SEANetDecoder(channels=1, dimension=16, n_filters=4, ratios=[8, 5, 4, 2], norm="weight_norm",
causal=True)`` and ``ResidualVectorQuantizer(dimension=16, n_q=8, bins=64)``, wrapped them in
``EncodecModel(..., target_bandwidths=[0.45, 0.9, 1.8, 3.6], sample_rate=24000, channels=1)`` (so the state-dict
names are the released file's), checked that its state dict has exactly the names and shapes of
``audiojax.convert.encodec.state_dict_layout``, loaded ``encodec_random_weights.random_state_dict(layout, seed=0)``
(regenerated here bit for bit: the fixture keeps the names and per-tensor checksums) and stored, for the inputs of
``encodec_random_weights.parity_wave`` ((2, 5000) and (1, 100) samples, neither a multiple of the 320-sample hop):
``model.encoder(x)`` (as ``latents (B, T, 16)``) and, at 0.9 and 3.6 kbps (``set_target_bandwidth``: 2 and 8
codebooks), the codes of ``model.encode(x)`` and ``model.decode(frames)``.

Measured (float32, matmul precision "highest"): latents within 1.2e-6 (of values up to 1.65), decoded waves within
3.5e-7, codes identical. With ``encodec`` importable (``PYTHONPATH=DIR``), the full-size 24 kHz model is compared too
(torch's initialisation, codebooks seeded around the latents, 1 s of audio): latents within 3.1e-7, decoded waves
within 1.3e-7, 98.7 % of the codes identical at 6 kbps; the others follow one frame whose two nearest codes were
2e-7 apart (relative to the squared norm), a tie that float32 rounding decides.
"""
import os

import jax
import numpy as np
import pytest
from encodec_random_weights import PARITY_CASES, checksums, parity_wave, random_state_dict, small_model

from audiojax.convert import encodec as convert_encodec
from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.models import codec
from audiojax.tasks import registry

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "encodec_small_parity.npz"))
CODEBOOKS = (2, 8)


@pytest.fixture(scope="module")
def original_state_dict():
  layout = convert_encodec.state_dict_layout(small_model())
  assert list(FIXTURE["keys"]) == [t.name for t in layout]  # EnCodec's names, in EnCodec's order
  sd = random_state_dict([(t.name, t.shape) for t in layout], seed=0)
  np.testing.assert_array_equal(checksums(sd), FIXTURE["checksums"])  # the very weights the original ran with
  return sd


@pytest.fixture(scope="module")
def converted(original_state_dict):
  model, variables = convert_encodec.to_variables(original_state_dict)
  assert model == small_model()
  apply = {
      "latents": jax.jit(lambda v, w: model.apply(v, w, method="latents")),
      "encode": jax.jit(lambda v, w, n_q: model.apply(v, w, n_q, method="encode"), static_argnums=2),
      "decode": jax.jit(lambda v, c: model.apply(v, c, method="decode")),
  }
  return model, variables, apply


def clear_margins(latents, embed, codes, margin=1e-5):
  """``(B, K, T)`` True where, along the original's residual path (its ``codes``), every codebook up to k had its
  nearest code ahead of the second by more than ``margin`` times the residual's squared norm (float64): float32
  rounding of EnCodec's ``|x|² - 2·x·e + |e|²`` reaches about 1e-7 of that, so closer calls may go either way."""
  residual = latents.astype(np.float64)
  clear = []
  for k in range(codes.shape[1]):
    distances = np.sum((residual[:, :, None, :] - embed[k][None, None].astype(np.float64)) ** 2, axis=-1)
    best_two = np.sort(distances, axis=-1)[..., :2]
    clear.append(best_two[..., 1] - best_two[..., 0] > margin * np.sum(residual ** 2, axis=-1))
    residual = residual - embed[k][codes[:, k]]
  return np.logical_and.accumulate(np.stack(clear, axis=1), axis=1)


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_converted_model_reproduces_the_original(converted, case):
  model, variables, apply = converted
  wave = parity_wave(case)
  np.testing.assert_array_equal(wave, FIXTURE[f"{case}/wave"])
  latents = np.asarray(apply["latents"](variables, wave))
  np.testing.assert_allclose(latents, FIXTURE[f"{case}/latents"], atol=1e-4, rtol=0)
  embed = np.asarray(variables["codebooks"]["quantizer"]["embed"])
  for k in CODEBOOKS:
    want_codes, want_wave = FIXTURE[f"{case}/codes_{k}"], FIXTURE[f"{case}/decoded_{k}"]
    codes = np.asarray(apply["encode"](variables, wave, k))
    clear = clear_margins(latents, embed, want_codes)
    assert clear.mean() > 0.9  # the comparison is not vacuous
    np.testing.assert_array_equal(codes[clear], want_codes[clear])
    # decoding the original's codes: the waveform within 1e-4 (its last frame padded: T · hop samples)
    decoded = np.asarray(apply["decode"](variables, want_codes))
    assert decoded.shape == want_wave.shape == (wave.shape[0], want_codes.shape[2] * 320)
    np.testing.assert_allclose(decoded, want_wave, atol=1e-4, rtol=0)
  assert FIXTURE[f"{case}/decoded_8"].std() > 0.01 and len(np.unique(FIXTURE[f"{case}/codes_8"])) > 1


def test_full_size_24khz_model_matches_encodec():
  """Runs only where the original ``encodec`` package is importable (see the module docstring)."""
  encodec = pytest.importorskip("encodec")
  import torch
  torch.manual_seed(0)
  original = encodec.EncodecModel.encodec_model_24khz(pretrained=False)
  wave = parity_wave("batch")[:1, :4000].repeat(6, axis=1)[:, :24123]  # 1 s and a part of a hop
  x = torch.from_numpy(wave)[:, None]
  with torch.no_grad():
    latents = original.encoder(x)[0]  # seed the codebooks around the latents, so that frames spread over codes
    mean, spread = latents.mean(1), latents.std(1)
    for k, layer in enumerate(original.quantizer.vq.layers):
      layer._codebook.embed.copy_(torch.randn_like(layer._codebook.embed) * spread / (k + 1) + (mean if k == 0 else 0))
      layer._codebook.inited.fill_(1.0)
    original.set_target_bandwidth(6.0)
    frames = original.encode(x)
    want_latents = original.encoder(x).numpy().transpose(0, 2, 1)
    want_wave = original.decode(frames)[:, 0].numpy()
  want_codes = frames[0][0].numpy()
  model, variables = convert_encodec.to_variables({k: v.numpy() for k, v in original.state_dict().items()})
  assert model == codec.Model("encodec_24khz") and model.bandwidth_to_n_q(6.0) == want_codes.shape[1] == 8
  latents = np.asarray(jax.jit(lambda v, w: model.apply(v, w, method="latents"))(variables, wave))
  np.testing.assert_allclose(latents, want_latents, atol=1e-4, rtol=0)
  codes = np.asarray(model.apply(variables, wave, 8, method="encode"))
  clear = clear_margins(latents, np.asarray(variables["codebooks"]["quantizer"]["embed"]), want_codes)
  assert clear.mean() > 0.8  # 1024 random codes crowd: some frames are close calls
  np.testing.assert_array_equal(codes[clear], want_codes[clear])
  decoded = np.asarray(jax.jit(lambda v, c: model.apply(v, c, method="decode"))(variables, want_codes))
  np.testing.assert_allclose(decoded, want_wave, atol=1e-4, rtol=0)


@pytest.mark.parametrize("change,match", [
    (lambda sd: sd.pop("decoder.model.15.conv.conv.bias"), "lacks 'decoder.model.15.conv.conv.bias'"),
    (lambda sd: sd.update({"quantizer.vq.layers.0._codebook.extra": np.zeros(1, np.float32)}),
     "does not use \\(quantizer.vq.layers.0._codebook.extra\\)"),
    (lambda sd: sd.update({"decoder.model.1.lstm.weight_hh_l1": np.zeros((256, 63), np.float32)}),
     "gives decoder.model.1.lstm.weight_hh_l1 the shape \\(256, 63\\) but .* needs \\(256, 64\\)"),
    (lambda sd: sd["encoder.model.3.conv.conv.weight_v"].__setitem__((0, 0, 0), np.nan),
     "NaN or infinite values in encoder.model.3.conv.conv.weight_v"),
    (lambda sd: sd.update({"encoder.model.0.conv.norm.weight": sd.pop("encoder.model.0.conv.conv.weight_v")}),
     "time-group norm"),
    (lambda sd: [sd.pop(k) for k in list(sd) if k.startswith("encoder.")], "not an EnCodec checkpoint"),
])
def test_bad_checkpoints_are_one_line_errors(original_state_dict, change, match):
  sd = {k: v.copy() for k, v in original_state_dict.items()}
  change(sd)
  with pytest.raises(UserError, match=match):
    convert_encodec.to_variables(sd, source="encodec.th")


def test_convert_cli_writes_a_model_directory_that_loads(original_state_dict, converted, tmp_path, capsys):
  from safetensors.numpy import save_file

  from audiojax import cli
  model, variables, apply = converted
  path = tmp_path / "encodec.safetensors"
  save_file(original_state_dict, str(path))
  cli.main(["convert", "encodec", "--torch-checkpoint", str(path), "--out", str(tmp_path / "out")])
  count = codec.count_params(variables["params"])
  assert f"{count:,} parameters, 8 codebooks × 64" in capsys.readouterr().out
  loaded, loaded_variables = load.codec(str(tmp_path / "out"))
  assert loaded == model and registry.model_module(codec.FAMILY) is codec
  for a, b in zip(jax.tree.leaves(loaded_variables), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(UserError, match="already holds a model directory"):
    convert_encodec.convert(str(path), str(tmp_path / "out"))
  with pytest.raises(UserError, match="neither a codec model directory"):
    load.codec(str(tmp_path))


def test_released_th_files_load_through_weights_only(original_state_dict, tmp_path):
  torch = pytest.importorskip("torch")
  from audiojax.convert.torch_io import read_state_dict
  torch.save({k: torch.from_numpy(v) for k, v in original_state_dict.items()}, tmp_path / "encodec_24khz-x.th")
  model, variables = convert_encodec.to_variables(read_state_dict(tmp_path / "encodec_24khz-x.th"))
  np.testing.assert_array_equal(variables["params"]["decoder"]["lstm"]["layer_1"]["bias_hh"],
                                original_state_dict["decoder.model.1.lstm.bias_hh_l1"])
