from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
TINY_PARAMETERS = """EPOCHS = 2
BATCH_SIZE = 32
IMAGE_SIZE = 16
STEPS_PER_EPOCH = 3
OUT_DIR = "run"
"""


@pytest.mark.parametrize("name", ["01_dcgan.ipynb"])
def test_notebook_runs_headless(name, tmp_path):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    parameter_cells = [cell for cell in notebook.cells
                       if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameter_cells) == 1, "the notebook needs one cell tagged 'parameters'"
    parameter_cells[0].source = TINY_PARAMETERS
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(output.get("text", "") for cell in notebook.cells
                      for output in cell.get("outputs", []))
    assert "optimizer steps after reload: 6" in outputs
    for quantize in ("none", "float16", "dynamic", "int8"):
        assert (tmp_path / "run" / f"dcgan_{quantize}.tflite").exists()
    assert (tmp_path / "run" / "samples" / "epoch_0002.png").exists()
