"""The Colab tutorials execute top to bottom (CPU-sized settings)."""
import glob
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = {  # per notebook: what its printed output must contain
    "01_quickstart.ipynb": ("held-out mAP", "true labels"),
    "05_codec.ipynb": ("codes (K, T) = (8, ", "the same codes as Coder: True", "log-mel distance to the input"),
}
NEEDS_ESPEAK = {"05_codec.ipynb"}  # builds espeak_prompt/tiny


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb"))))
def test_notebook_runs(path, tiny_data_dir, tmp_path, monkeypatch):
  name = os.path.basename(path)
  if name in NEEDS_ESPEAK and shutil.which("espeak-ng") is None and shutil.which("apt-get") is None:
    pytest.skip("neither espeak-ng nor apt-get is installed, so espeak-ng cannot be fetched")
  monkeypatch.setenv("AUDIOJAX_NOTEBOOK_FAST", "1")
  monkeypatch.setenv("AUDIOJAX_DATA_DIR", tiny_data_dir)
  monkeypatch.setenv("AUDIOJAX_NOTEBOOK_WORKDIR", str(tmp_path / "workdir"))
  monkeypatch.delenv("AUDIOJAX_CODEC_MODEL", raising=False)
  notebook = nbformat.read(path, as_version=4)
  NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
  outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
  assert name in EXPECTED, f"add {name}'s expected output to EXPECTED"
  for text in EXPECTED[name]:
    assert text in outputs, text
