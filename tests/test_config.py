"""Config files and command-line overrides."""
import ml_collections
import pytest

from audiojax.config import loader as config_lib
from audiojax.config import prompt_asr as prompt_asr_config
from audiojax.errors import UserError
from audiojax.tasks import registry

DEMO = "experiments/ced/demo.py"


def test_experiment_configs_load_and_name_the_fields_tools_rely_on():
  import glob
  paths = sorted(glob.glob("experiments/*/*.py"))
  assert DEMO in paths
  for path in paths:
    c = config_lib.load(path)
    for key in ("seed", "train.steps", "train.batch_size", "checkpoint.every_steps", "mesh.data", "mesh.fsdp",
                "mesh.tensor"):
      node = c
      for part in key.split("."):
        node = node[part]
    doc = open(path).read().split('"""')[1]
    for word in ("Command", "Hardware", "Runtime", "Expected"):
      assert word in doc, f"{path} docstring lacks '{word}'"


def test_overrides_parse_by_field_type():
  c = config_lib.load(DEMO)
  config_lib.override(c, ["--config.optim.lr=3e-4", "--config.train.steps", "7", "--config.train.progress_bar=false",
                          "--config.data.name=audioset/balanced", "--config.model.overrides={'depth': 2}",
                          "--config.optim.warmup_steps=5"])
  assert c.optim.lr == 3e-4 and c.train.steps == 7 and c.train.progress_bar is False
  assert c.data.name == "audioset/balanced" and c.model.overrides.depth == 2


@pytest.mark.parametrize("arg,message", [
    ("--config.optim.lrr=1", "unknown config key 'optim.lrr'"),
    ("--config.nope.x=1", "unknown config key 'nope.x'"),
    ("--config.train.steps=ten", "cannot parse as int"),
    ("--config.train.steps=1.5", "expected int"),
    ("--config.train=3", "is a group"),
    ("--steps=3", "unexpected argument"),
])
def test_bad_overrides_are_one_line_errors(arg, message):
  with pytest.raises(UserError, match=message) as info:
    config_lib.override(config_lib.load(DEMO), [arg])
  assert "\n" not in str(info.value)


def test_config_round_trips_through_json(tmp_path):
  c = config_lib.load(DEMO)
  config_lib.save(c, tmp_path / "config.json")
  restored = config_lib.restore(str(tmp_path / "config.json"))
  assert isinstance(restored, ml_collections.ConfigDict)
  assert restored.train.steps == c.train.steps and restored.mesh.data == c.mesh.data
  assert [list(map(lambda a: list(a) if isinstance(a, tuple) else a, r)) for r in c.sharding.rules] == \
      [list(r) for r in restored.sharding.rules]


def test_old_workdir_configs_gain_new_fields_and_keep_their_values(tmp_path):
  """A config.json written before a field existed still takes overrides of that field; dict values stay whole."""
  old = prompt_asr_config.asr()
  old.prompts.style_weights = {"lower-punc": 1.0}
  old.optim.lr = 7e-4
  del old.eval["decoder"]  # a field added after this workdir was written
  config_lib.save(old, tmp_path / "config.json")
  restored = config_lib.restore(str(tmp_path / "config.json"))
  with pytest.raises(UserError):
    config_lib.override(restored, ["--config.eval.decoder=ctc"])
  completed = config_lib.override(registry.with_current_defaults(restored), ["--config.eval.decoder=ctc"])
  assert completed.eval.decoder == "ctc" and completed.optim.lr == 7e-4
  assert completed.eval.batch_size == old.eval.batch_size and completed.loss.prune_range == old.loss.prune_range
  assert dict(completed.prompts.style_weights) == {"lower-punc": 1.0}
  assert "clip_seconds" not in completed.data  # the ASR base, not the tagging one
