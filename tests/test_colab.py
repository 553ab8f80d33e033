"""The Colab tutorials execute top to bottom (CPU-sized settings)."""
import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb"))))
def test_notebook_runs(path, tiny_data_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("AUDIOJAX_NOTEBOOK_FAST", "1")
  monkeypatch.setenv("AUDIOJAX_DATA_DIR", tiny_data_dir)
  monkeypatch.setenv("AUDIOJAX_NOTEBOOK_WORKDIR", str(tmp_path / "workdir"))
  notebook = nbformat.read(path, as_version=4)
  NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
  outputs = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
  assert "held-out mAP" in outputs and "true labels" in outputs
