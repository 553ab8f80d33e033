"""CED conversion: outputs equal the ORIGINAL implementation's (RicherMans/CED), recorded with random weights.

``fixtures/ced_tiny_parity.npz`` holds the original model's outputs (torch 2.13, torchaudio front-end) for CED-tiny
with the weights of ``ced_random_weights.random_state_dict(seed=0)``, regenerated here bit for bit.
"""
import os

import jax
import numpy as np
import pytest
from ced_random_weights import (
  PARITY_CASES,
  checksums,
  parity_wave,
  random_state_dict,
  torch_state_dict_shapes,
)

from audiojax.convert import ced as convert_ced
from audiojax.errors import UserError
from audiojax.inference import load
from audiojax.models import ced
from audiojax.tasks import registry
from audiojax.train import export

FIXTURE = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "ced_tiny_parity.npz"))


@pytest.fixture(scope="module")
def original_state_dict():
  shapes = torch_state_dict_shapes(192, 12, 527)
  sd = random_state_dict(shapes, seed=0)
  assert list(FIXTURE["keys"]) == [k for k, _ in shapes]
  np.testing.assert_array_equal(checksums(sd), FIXTURE["checksums"])  # the very weights the original ran with
  sd["front_end.0.mel_scale.fb"] = FIXTURE["fb"]
  sd["front_end.0.spectrogram.window"] = FIXTURE["window"]
  sd["init_bn.1.num_batches_tracked"] = np.array(0)
  return sd


@pytest.fixture(scope="module")
def converted(original_state_dict):
  model, variables = convert_ced.to_variables(original_state_dict, "tiny")
  assert ced.count_params(variables["params"]) == 5_503_183
  return model, jax.jit(lambda v, w: model.apply(v, w)), variables


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_converted_model_reproduces_the_original(converted, case):
  _, apply, variables = converted
  with jax.default_matmul_precision("highest"):
    out = jax.device_get(apply(variables, parity_wave(case)))
  if f"{case}/logits" in FIXTURE:  # one chunk (≤ 1012 frames)
    np.testing.assert_allclose(out["logits"], FIXTURE[f"{case}/logits"], atol=1e-4, rtol=0)
    # the original's 'dm' pooling = mean over 160 ms patches of sigmoid(frame logits)
    np.testing.assert_allclose(jax.nn.sigmoid(out["frame_logits"]).mean(1), FIXTURE[f"{case}/dm"], atol=2e-5)
  if case == "exact_2024_frames":  # the original drops the last full chunk here; audiojax uses every frame
    np.testing.assert_allclose(out["probs"], FIXTURE[f"{case}/all_frames_probs"], atol=2e-5, rtol=0)
    assert np.abs(out["probs"] - FIXTURE[f"{case}/probs"]).max() > 1e-3
  else:
    np.testing.assert_allclose(out["probs"], FIXTURE[f"{case}/probs"], atol=2e-5, rtol=0)
  assert FIXTURE[f"{case}/probs"].std() > 0.05  # the random network's outputs are not saturated


def test_hugging_face_layout_converts_to_the_same_variables(original_state_dict, converted):
  hf = {}
  for name, value in original_state_dict.items():
    if name.startswith("front_end."):
      continue
    name = name.replace("init_bn.1.", "init_bn.")
    hf[name if name.startswith("outputlayer.") else "encoder." + name] = value
  _, variables = convert_ced.to_variables(hf)
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(converted[2])):
    np.testing.assert_array_equal(a, b)


def test_bad_checkpoints_are_clear_errors(original_state_dict):
  with pytest.raises(UserError, match="holds a CED-tiny .* pass --variant tiny"):
    convert_ced.to_variables(original_state_dict, "mini")
  missing = {k: v for k, v in original_state_dict.items() if k != "blocks.3.mlp.fc1.bias"}
  with pytest.raises(UserError, match="lacks 'blocks.3.mlp.fc1.bias'"):
    convert_ced.to_variables(missing)
  extra = {**original_state_dict, "cls_token": np.zeros((1, 1, 192), np.float32)}
  with pytest.raises(UserError, match="does not use \\(cls_token\\)"):
    convert_ced.to_variables(extra)
  other_front_end = {**original_state_dict, "front_end.0.mel_scale.fb": original_state_dict[
      "front_end.0.mel_scale.fb"] * 2}
  with pytest.raises(UserError, match="different front-end"):
    convert_ced.to_variables(other_front_end)


def test_convert_cli_writes_a_model_directory_that_tags(original_state_dict, tmp_path, capsys):
  """safetensors in (no torch needed), model directory out; `ced.load` and `audiojax tag` read it."""
  from safetensors.numpy import save_file

  from audiojax import cli
  path = tmp_path / "model.safetensors"
  save_file({k: np.ascontiguousarray(v) for k, v in original_state_dict.items()}, str(path))
  labels = tmp_path / "class_labels_indices.csv"
  labels.write_text("index,mid,display_name\n" + "".join(f'{i},/m/{i},"Class {i}, with comma"\n' for i in range(527)))
  cli.main(["convert", "ced", "--torch-checkpoint", str(path), "--variant", "tiny", "--out", str(tmp_path / "out"),
            "--labels", str(labels)])
  assert "5,503,183 parameters" in capsys.readouterr().out
  model, variables = load.ced(str(tmp_path / "out"))
  wave = parity_wave("short_2s")
  np.testing.assert_allclose(model.apply(variables, wave)["probs"], FIXTURE["short_2s/probs"], atol=2e-5)
  import soundfile as sf
  sf.write(tmp_path / "clip.wav", wave[0], 16000, subtype="FLOAT")
  cli.main(["tag", str(tmp_path / "clip.wav"), "--checkpoint", str(tmp_path / "out"), "--top-k", "2"])
  lines = capsys.readouterr().out.splitlines()
  top = np.argsort(-FIXTURE["short_2s/probs"][0])[:2]
  assert [l.split(None, 1)[1] for l in lines[1:]] == [f"Class {i}, with comma" for i in top]


def test_released_pt_files_load_without_executing_pickled_code(original_state_dict, tmp_path):
  torch = pytest.importorskip("torch")
  from audiojax.convert.torch_io import read_state_dict
  tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in original_state_dict.items()}
  torch.save({"model": tensors, "config": {"lr": 1e-3}}, tmp_path / "audiotransformer_tiny_mAP_4814.pt")  # released
  torch.save(tensors, tmp_path / "bare.pt")
  for name in ("audiotransformer_tiny_mAP_4814.pt", "bare.pt"):
    sd = read_state_dict(tmp_path / name)
    _, variables = convert_ced.to_variables(sd, "tiny")
    np.testing.assert_array_equal(variables["params"]["head"]["kernel"], original_state_dict["outputlayer.1.weight"].T)

  Exploit.target = str(tmp_path / "pwned")
  torch.save({"model": tensors, "payload": Exploit()}, tmp_path / "evil.pt")
  with pytest.raises(UserError, match="cannot read .* as a PyTorch checkpoint"):
    read_state_dict(tmp_path / "evil.pt")
  assert not (tmp_path / "pwned").exists()


class Exploit:
  """Unpickling this would create the file ``target``; weights_only loading must refuse it."""

  target = ""

  def __reduce__(self):
    return (open, (self.target, "w"))


def test_fine_tuning_a_converted_checkpoint_replaces_only_the_head(tiny_data_dir, tmp_path):
  from conftest import smoke_config

  from audiojax.train import loop
  two_layers = random_state_dict(torch_state_dict_shapes(192, 2, 527), seed=1)  # a 2-block CED-tiny release
  model, variables = convert_ced.to_variables(two_layers, "tiny")
  assert model.depth == 2
  export.save(str(tmp_path / "converted"), ced.FAMILY, ced.to_config(model), variables,
              [f"c{i}" for i in range(527)])
  config = smoke_config(tiny_data_dir, train__steps=2)
  config.model.overrides = {"depth": 2}  # the checkpoint's architecture
  config.init.checkpoint = str(tmp_path / "converted")
  trainer = loop.Trainer(registry.build(config))
  state = jax.device_get(trainer.init_state(0))
  np.testing.assert_array_equal(state.params["blocks_1"]["mlp"]["fc1"]["kernel"],
                                variables["params"]["blocks_1"]["mlp"]["fc1"]["kernel"])
  np.testing.assert_array_equal(state.model_state["batch_stats"]["init_bn"]["var"],
                                variables["batch_stats"]["init_bn"]["var"])
  assert state.params["head"]["kernel"].shape == (192, 22)  # gm_instruments' 22 classes, freshly initialised
  result = loop.train(registry.build(config), str(tmp_path / "workdir"))
  assert np.isfinite(result["train"]["loss"]) and "eval/mAP" in result["eval"]

  config.model.variant = "mini"
  with pytest.raises(UserError, match="of shape .* use the same config.model"):
    loop.Trainer(registry.build(config)).init_state(0)
