"""File names and atomic writes shared by training runs and the model store (no TensorFlow)."""

import json
from pathlib import Path

RUN_CONFIG = "run_config.json"
FINAL_MODEL = "model.keras"


def write_json(path, value):
    """Write JSON atomically (a temporary name, then a rename)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True))
    partial.replace(path)
