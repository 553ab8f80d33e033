"""``codec encode / decode / roundtrip`` on a small 24 kHz model directory with random weights: the codes and the
audio are the model's, files are coded in chunks, and every kind of bad input is a one-line error (exit 2)."""
import numpy as np
import pytest
import soundfile as sf
from encodec_random_weights import random_state_dict, small_model
from test_cli import assert_one_line_error, run_cli

from audiojax.audio.io import load_audio
from audiojax.convert import encodec as convert_encodec
from audiojax.inference import codec as inference_codec
from audiojax.inference.codec import Coder, Codes
from audiojax.models import codec
from audiojax.train import export

RATE = 24000


def _model_dir(path, seed):
  layout = convert_encodec.state_dict_layout(small_model())
  model, variables = convert_encodec.to_variables(random_state_dict([(t.name, t.shape) for t in layout], seed))
  export.save(str(path), codec.FAMILY, codec.to_config(model), variables, None)
  return str(path), model, variables


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return _model_dir(tmp_path_factory.mktemp("models") / "codec", seed=0)


def _speechlike(seconds, rate, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * rate)) / rate
  return (0.3 * np.sin(2 * np.pi * 220 * t) * np.sin(2 * np.pi * 3 * t) + 0.02 * rng.standard_normal(t.size)
          ).astype(np.float32)


def test_encode_decode_roundtrip(model_dir, tmp_path, capsys):
  path, model, variables = model_dir
  clip = tmp_path / "clip.wav"
  sf.write(clip, _speechlike(1.3, 16000), 16000)
  code, out, err = run_cli(["codec", "encode", str(clip), "--checkpoint", path, "--bandwidth", "3.6", "--out",
                            str(tmp_path / "codes.npz")], capsys)
  assert code == 0 and f"'{clip}' is 16000 Hz; resampled to 24000 Hz" in err
  assert "8 codebooks × 98 frames (75 Hz)" in out
  codes = Codes.load(str(tmp_path / "codes.npz"))
  wave = load_audio(clip, RATE).wave
  assert (codes.sample_rate, codes.frame_rate, codes.num_samples, codes.bandwidth) == (RATE, 75, wave.size, 3.6)
  expected = np.asarray(inference_codec._encode(model, variables, wave[None], 8))[0]
  np.testing.assert_array_equal(codes.codes, expected)

  code, out, _ = run_cli(["codec", "decode", str(tmp_path / "codes.npz"), "--checkpoint", path, "--out",
                          str(tmp_path / "decoded.wav")], capsys)
  assert code == 0 and "(1.30 s at 24000 Hz)" in out
  decoded, rate = sf.read(tmp_path / "decoded.wav", dtype="float32")
  reference = np.clip(np.asarray(inference_codec._decode(model, variables, expected[None]))[0, :wave.size], -1, 1)
  assert rate == RATE and decoded.shape == (wave.size,)
  np.testing.assert_allclose(decoded, reference, atol=1 / 32768 + 1e-6)  # 16-bit WAV

  code, _, _ = run_cli(["codec", "roundtrip", str(clip), "--checkpoint", path, "--bandwidth", "3.6", "--out",
                        str(tmp_path / "again.flac")], capsys)
  assert code == 0
  np.testing.assert_allclose(sf.read(tmp_path / "again.flac", dtype="float32")[0], decoded, atol=1.01 / 32768)


def test_long_files_are_coded_chunk_by_chunk(model_dir, tmp_path):
  """A 0.1 s chunk (8 frames, 2,560 samples): the codes are those of each chunk encoded alone, and decoding
  restarts at the same boundaries; a file within one chunk is coded as the model codes it."""
  path, model, variables = model_dir
  coder = Coder(model, variables, chunk_seconds=0.1, chunks_per_batch=2)
  assert coder.chunk_samples == 2560
  clip = tmp_path / "long.wav"
  wave = _speechlike(0.455, RATE)  # 10,920 samples: 4 chunks and a 680-sample rest
  sf.write(clip, wave, RATE, subtype="FLOAT")
  codes, source_rate = coder.encode_file(str(clip), 1.8)
  assert source_rate == RATE and codes.codes.shape == (4, 35) and codes.chunk_frames == 8
  full, rest = wave[:10240].reshape(2, 2, 2560), wave[None, 10240:]  # batches of 2 chunks, as the coder's
  per_chunk = [c for batch in full for c in np.asarray(inference_codec._encode(model, variables, batch, 4))]
  per_chunk.append(np.asarray(inference_codec._encode(model, variables, rest, 4))[0])
  np.testing.assert_array_equal(codes.codes, np.concatenate(per_chunk, axis=1))
  decoded = np.concatenate(list(coder.decode(codes)))
  expected = [w for batch in (np.stack(per_chunk[:2]), np.stack(per_chunk[2:4]), per_chunk[4][None])
              for w in np.asarray(inference_codec._decode(model, variables, batch))]
  np.testing.assert_allclose(decoded, np.concatenate(expected)[:wave.size], atol=1e-6)


@pytest.fixture(scope="module")
def encoded(model_dir, tmp_path_factory):
  folder = tmp_path_factory.mktemp("encoded")
  clip = folder / "clip.wav"
  sf.write(clip, _speechlike(0.2, RATE), RATE)
  coder = Coder.from_checkpoint(model_dir[0])
  codes, _ = coder.encode_file(str(clip), 0.9)
  codes.save(str(folder / "codes.npz"))
  return str(folder / "codes.npz"), codes


def _bad_audio(kind, path):
  if kind == "empty":
    sf.write(path, np.zeros(0, np.float32), RATE)
  elif kind == "nan":
    wave = _speechlike(0.2, RATE)
    wave[10] = np.nan
    sf.write(path, wave, RATE, subtype="FLOAT")
  elif kind == "not_audio":
    path.write_text("not a recording")
  return path


@pytest.mark.parametrize("kind,fragments", [
    ("missing", ["does not exist"]),
    ("empty", ["is empty"]),
    ("nan", ["NaN"]),
    ("not_audio", ["cannot read audio file"]),
])
def test_bad_audio_is_a_one_line_error(model_dir, kind, fragments, tmp_path, capsys):
  clip = _bad_audio(kind, tmp_path / "clip.wav")
  for command in ("encode", "roundtrip"):
    out = tmp_path / ("codes.npz" if command == "encode" else "out.wav")
    code, _, err = run_cli(["codec", command, str(clip), "--checkpoint", model_dir[0], "--bandwidth", "0.9",
                            "--out", str(out)], capsys)
    assert_one_line_error(code, err, str(clip), *fragments)
    assert not out.exists()


def test_unknown_bandwidth_and_output_format_are_one_line_errors(model_dir, tmp_path, capsys):
  clip = tmp_path / "clip.wav"
  sf.write(clip, _speechlike(0.2, RATE), RATE)
  code, _, err = run_cli(["codec", "encode", str(clip), "--checkpoint", model_dir[0], "--bandwidth", "6", "--out",
                          str(tmp_path / "codes.npz")], capsys)
  assert_one_line_error(code, err, "bandwidth 6 kbps is not one of this codec's (0.45, 0.9, 1.8, 3.6 kbps)")
  code, _, err = run_cli(["codec", "roundtrip", str(clip), "--checkpoint", model_dir[0], "--bandwidth", "0.9",
                          "--out", str(tmp_path / "out.mp3")], capsys)
  assert_one_line_error(code, err, "out.mp3", "--out ending in .wav, .flac, .ogg")
  code, _, err = run_cli(["codec", "encode", str(clip), "--checkpoint", str(tmp_path), "--bandwidth", "0.9",
                          "--out", str(tmp_path / "codes.npz")], capsys)
  assert_one_line_error(code, err, "is neither a codec model directory", "convert encodec")


def test_decoding_needs_the_model_that_encoded(model_dir, encoded, tmp_path, capsys):
  other, _, _ = _model_dir(tmp_path / "other", seed=1)  # the same architecture, other weights
  codes_file, codes = encoded
  code, _, err = run_cli(["codec", "decode", codes_file, "--checkpoint", other, "--out", str(tmp_path / "o.wav")],
                         capsys)
  assert_one_line_error(code, err, codes_file, "encoded by another codec", "the --checkpoint that encoded it")
  assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize("damage,fragments", [
    (lambda f, c: f.write_text("text"), ["not a codes file (not an .npz archive)"]),
    (lambda f, c: np.savez(f, codes=c.codes), ["not a codes file (it lacks model_id"]),
    (lambda f, c: Codes(c.codes[:, :-1], c.model_id, c.bandwidth, c.sample_rate, c.frame_rate, c.num_samples,
                        c.chunk_frames).save(str(f)), ["frames for", "encode the audio again"]),
    (lambda f, c: Codes(c.codes + 64, c.model_id, c.bandwidth, c.sample_rate, c.frame_rate, c.num_samples,
                        c.chunk_frames).save(str(f)), ["codes outside 0..63"]),
    (lambda f, c: Codes(c.codes, c.model_id, 1.0, c.sample_rate, c.frame_rate, c.num_samples,
                        c.chunk_frames).save(str(f)), ["bandwidth 1 kbps is not one of"]),
])
def test_damaged_codes_files_are_one_line_errors(model_dir, encoded, damage, fragments, tmp_path, capsys):
  bad = tmp_path / "bad.npz"
  damage(bad, encoded[1])
  code, _, err = run_cli(["codec", "decode", str(bad), "--checkpoint", model_dir[0], "--out",
                          str(tmp_path / "o.wav")], capsys)
  assert_one_line_error(code, err, *fragments)
