"""The accelerator extras resolve against the package index: `pip install -e '.[cuda12]'` pulls the CUDA 12 jax
plugin and `'.[tpu]'` libtpu (a dry run: nothing is downloaded beyond metadata, nothing installed)."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("extra,package", [("cuda12", "jax-cuda12-plugin"), ("tpu", "libtpu")])
def test_accelerator_extras_resolve(extra, package, tmp_path):
  report = tmp_path / "report.json"
  proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                         "-e", f"{ROOT}[{extra}]"], capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  names = {item["metadata"]["name"].lower() for item in json.loads(report.read_text())["install"]}
  assert package in names, sorted(names)
