"""Shipped trained models: `saved_models/<name>/model.keras` with their model cards.

Example:
    >>> denoiser = kerasgen.store.load_model("dncnn_grey_s25")
    >>> clean = denoiser.apply(noisy_uint8)
"""

import os
from pathlib import Path

from kerasgen.files import FINAL_MODEL, RUN_CONFIG, write_json

SAVED_MODELS_ENV = "KERASGEN_SAVED_MODELS"
# Shipped models live in git: none is larger than this (bytes).
SIZE_LIMIT = 4 * 2**20
WEIGHT_DTYPES = ("float32", "float16")
# The weights inside a `.keras` archive.
WEIGHTS_FILE = "model.weights.h5"


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


def store_weights_as_float16(path):
    """Rewrite a `.keras` archive's float32 weights as float16 (half the bytes); Keras loads
    them back into float32 variables. Values outside float16's range (|x| > 65504) keep their
    float32 array, so nothing overflows. Lossy: a weight moves by at most 2^-11 of itself."""
    import io
    import zipfile

    import h5py
    import numpy as np

    path = Path(path)
    limit = np.finfo(np.float16).max
    with zipfile.ZipFile(path) as source:
        items = {item.filename: source.read(item.filename) for item in source.infolist()}
    packed = io.BytesIO()
    with h5py.File(io.BytesIO(items[WEIGHTS_FILE]), "r") as weights, \
            h5py.File(packed, "w") as halved:
        def copy(name, item):
            if isinstance(item, h5py.Dataset):
                values = item[()]
                if values.dtype == np.float32 and np.all(np.abs(values) <= limit):
                    values = values.astype(np.float16)
                halved.create_dataset(name, data=values)
            else:
                halved.require_group(name)
            halved[name].attrs.update(item.attrs)

        halved.attrs.update(weights.attrs)
        weights.visititems(copy)
    items[WEIGHTS_FILE] = packed.getvalue()
    partial = path.with_name(f".halving_{path.name}")
    with zipfile.ZipFile(partial, "w") as target:
        for name, content in items.items():
            target.writestr(name, content)
    partial.replace(path)
    return path


def ship_model(model, name, card, metrics=None, folder=None, train_data=None,
               weight_dtype="float32", run_config=None, size_limit=SIZE_LIMIT):
    """Write a trained model into `saved_models/<name>/` with its model card.

    The shipped `model.keras` holds what inference needs (`Task.inference_model`: no
    optimizer state, no training-only copies such as a GAN's second generator), its weights
    in `weight_dtype` ("float16" halves the file; see `store_weights_as_float16`) and
    deflate-compressed, beside `MODEL_CARD.md`, `metrics.json` (the given measurements, the
    model's task and its training data, which `kerasgen list --pretrained` shows) and, given
    `run_config` (a generative run's `run_config.json`), that file, so that `kerasgen
    evaluate NAME` measures it on its data. A model over `size_limit` bytes is refused and
    nothing is written. Returns the folder.
    """
    from kerasgen.tasks import task_of

    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weight_dtype must be one of {WEIGHT_DTYPES}, got {weight_dtype!r}.")
    target = Path(folder or saved_models_dir()) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".partial_{name}_{FINAL_MODEL}"
    try:
        task_of(model).inference_model(model).save(partial)
        if weight_dtype == "float16":
            store_weights_as_float16(partial)
        deflate_keras_file(partial)
        size = partial.stat().st_size
        if size > size_limit:
            raise ValueError(
                f"{name}: the shipped model would be {size / 2**20:.2f} MiB, over the "
                f"{size_limit / 2**20:.2f} MiB limit of shipped models; ship its weights as "
                "float16 (weight_dtype='float16') or a smaller model. Nothing was written.")
    except BaseException:
        partial.unlink(missing_ok=True)  # nothing half-written is left beside the models
        raise
    target.mkdir(exist_ok=True)
    partial.replace(target / FINAL_MODEL)
    (target / "MODEL_CARD.md").write_text(card)
    write_json(target / "metrics.json", {**(metrics or {}), "task": task_of(model).name,
                                         "train_data": train_data,
                                         "weight_dtype": weight_dtype})
    if run_config is not None:
        write_json(target / RUN_CONFIG, run_config)
    return target


def as_shipped(model, weight_dtype="float32"):
    """`model` as `ship_model(..., weight_dtype=...)` would store it, to measure what ships:
    its float32 copy (a bf16-trained model's exports compute in float32), its weights
    rounded through `weight_dtype` by a save and a load."""
    import tempfile

    from kerasgen.precision import float32_copy

    model = float32_copy(model)
    if weight_dtype == "float32":
        return model
    with tempfile.TemporaryDirectory() as scratch:
        return load_model(ship_model(model, "candidate", "", folder=scratch,
                                     weight_dtype=weight_dtype))


def describe_shipped(name):
    """`{"name", "model", "task", "data", "figure"}` of a shipped model, from its
    `metrics.json` alone (neither TensorFlow nor the model is loaded)."""
    import json

    path = saved_models_dir() / name / "metrics.json"
    measured = json.loads(path.read_text()) if path.exists() else {}
    rows = measured.get("rows", [])
    row = rows[0] if rows else {}
    if "nll" in row:  # a likelihood model is judged by its likelihood first
        figure = f"{row['dataset']} test NLL {row['nll']:.2f} nats (k = {row['nll_k']})"
    elif "psnr" in row:
        figure = f"{row['dataset']} {row.get('setting', '')}: {row['psnr']:.2f} dB PSNR"
    elif "fd" in row:
        figure = (f"{row['dataset']} domain FD {row['fd']:.2f} "
                  f"({row['fd'] / row['fd_floor']:.1f}x the real floor)")
    elif "mse" in row:
        figure = (f"{row['dataset']} per-frame MSE {row['mse']:.1f}, SSIM {row['ssim']:.3f} "
                  f"(copying the last frame: {row['copy_last_mse']:.1f})")
    elif "test_accuracy" in row:
        figure = f"{row['dataset']} test accuracy {100 * row['test_accuracy']:.2f} %"
    else:
        figure = "see MODEL_CARD.md"
    return {"name": name, "model": row.get("model", "?"), "task": measured.get("task", "?"),
            "data": measured.get("train_data") or "?", "figure": figure}


def model_folder(name_or_run):
    """The folder of a shipped model's name (see `shipped_models`) or a run folder."""
    path = Path(name_or_run)
    if not path.is_dir() and "/" not in str(name_or_run):
        shipped = saved_models_dir() / str(name_or_run)
        if not (shipped / FINAL_MODEL).exists():
            raise FileNotFoundError(
                f"{name_or_run!r} is neither a run folder nor a shipped model; shipped models: "
                f"{', '.join(shipped_models()) or 'none found'} (in {saved_models_dir()}).")
        path = shipped
    return path


def is_shipped(folder):
    """Whether `folder` is a shipped model's (in `saved_models_dir()`)."""
    return Path(folder).resolve().parent == saved_models_dir().resolve()


def load_model(name_or_run):
    """A shipped model by name (see `shipped_models`) or the model of a run folder."""
    from kerasgen.training import load_run

    return load_run(model_folder(name_or_run))
