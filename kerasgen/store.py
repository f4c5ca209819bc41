"""Shipped trained models: `saved_models/<name>/model.keras` with their model cards.

Example:
    >>> denoiser = kerasgen.store.load_model("dncnn_grey_s25")
    >>> clean = denoiser.apply(noisy_uint8)
"""

import os
from pathlib import Path

from kerasgen.files import FINAL_MODEL, write_json

SAVED_MODELS_ENV = "KERASGEN_SAVED_MODELS"


def saved_models_dir():
    """The folder of shipped trained models: `$KERASGEN_SAVED_MODELS`, else the checkout's
    `saved_models/`."""
    return Path(os.environ.get(SAVED_MODELS_ENV) or Path(__file__).resolve().parents[1] /
                "saved_models")


def shipped_models():
    """Names of the trained models in `saved_models_dir()`."""
    folder = saved_models_dir()
    return sorted(path.parent.name for path in folder.glob(f"*/{FINAL_MODEL}"))


def deflate_keras_file(path):
    """Recompress a `.keras` archive (Keras stores it uncompressed); it loads as before.

    Trained float32 weights shrink by about 15 %, which keeps shipped models small in git.
    """
    import zipfile

    path = Path(path)
    packed = path.with_name(f".deflating_{path.name}")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(
            packed, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for item in source.infolist():
            target.writestr(item.filename, source.read(item.filename))
    packed.replace(path)
    return path


def ship_model(model, name, card, metrics=None, folder=None, train_data=None):
    """Write a trained model into `saved_models/<name>/` with its model card.

    The shipped `model.keras` holds the weights and configuration only (no optimizer state,
    deflate-compressed), beside `MODEL_CARD.md` and `metrics.json` (the given measurements,
    the model's task and its training data, which `kerasgen list --pretrained` shows).
    Returns the folder.
    """
    from kerasgen.tasks import task_of

    target = Path(folder or saved_models_dir()) / name
    target.mkdir(parents=True, exist_ok=True)
    inference = model.__class__.from_config(model.get_config())
    inference.set_weights(model.get_weights())
    partial = target / f".partial_{FINAL_MODEL}"
    inference.save(partial)
    deflate_keras_file(partial)
    partial.replace(target / FINAL_MODEL)
    (target / "MODEL_CARD.md").write_text(card)
    write_json(target / "metrics.json", {**(metrics or {}), "task": task_of(model).name,
                                         "train_data": train_data})
    return target


def describe_shipped(name):
    """`{"name", "model", "task", "data", "figure"}` of a shipped model, from its
    `metrics.json` alone (neither TensorFlow nor the model is loaded)."""
    import json

    path = saved_models_dir() / name / "metrics.json"
    measured = json.loads(path.read_text()) if path.exists() else {}
    rows = measured.get("rows", [])
    row = rows[0] if rows else {}
    if "psnr" in row:
        figure = f"{row['dataset']} {row.get('setting', '')}: {row['psnr']:.2f} dB PSNR"
    elif "fd" in row:
        figure = (f"{row['dataset']} domain FD {row['fd']:.2f} "
                  f"({row['fd'] / row['fd_floor']:.1f}x the real floor)")
    elif "test_accuracy" in row:
        figure = f"{row['dataset']} test accuracy {100 * row['test_accuracy']:.2f} %"
    else:
        figure = "see MODEL_CARD.md"
    return {"name": name, "model": row.get("model", "?"), "task": measured.get("task", "?"),
            "data": measured.get("train_data", "?"), "figure": figure}


def load_model(name_or_run):
    """A shipped model by name (see `shipped_models`) or the model of a run folder."""
    path = Path(name_or_run)
    if not path.is_dir() and "/" not in str(name_or_run):
        shipped = saved_models_dir() / str(name_or_run)
        if not (shipped / FINAL_MODEL).exists():
            raise FileNotFoundError(
                f"{name_or_run!r} is neither a run folder nor a shipped model; shipped models: "
                f"{', '.join(shipped_models()) or 'none found'} (in {saved_models_dir()}).")
        path = shipped
    from kerasgen.training import load_run

    return load_run(path)
