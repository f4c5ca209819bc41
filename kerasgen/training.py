"""Training runs: data -> model -> `fit` with callbacks -> `.keras` -> SavedModel -> TFLite.

A run lives in one folder. Running `train` again on the same folder resumes from its newest
checkpoint (weights, every optimizer's state, the epoch counter and the random stream), so an
interrupted run loses at most the epoch it was in.

Run folder layout:
    run_config.json       settings the run was started with (checked on resume)
    checkpoints/          epoch_NNNN.keras, the resume point
    samples/              epoch_NNNN.png, a grid per epoch from fixed latents
    logs/                 TensorBoard scalars and sample images
    model.keras           the final model (training wrapper, optimizers included)
    samples.png           the final sample grid
    saved_model/<name>/<version>/, <name>[_<quantize>].tflite   exports
"""

import dataclasses
import json
import os
from pathlib import Path

import keras

from kerasgen import data as kg_data
from kerasgen import export
from kerasgen.callbacks import ResumableCheckpoint, SampleGrid, latest_checkpoint
from kerasgen.data import to_uint8
from kerasgen.registry import get_preset
from kerasgen.visualize import save_figures, save_image_grid

RUN_CONFIG = "run_config.json"
SAVED_MODELS_ENV = "KERASGEN_SAVED_MODELS"
FINAL_MODEL = "model.keras"
EXPORT_FORMATS = ("saved_model", "tflite")
# Settings that may change when a run is resumed; any other change means a different run.
RESUMABLE_CHANGES = ("epochs",)


@dataclasses.dataclass
class TrainResult:
    """Where a run's artefacts are, and what it measured."""

    run_dir: Path
    model: keras.Model
    history: dict
    initial_epoch: int
    epochs: int
    keras_path: Path
    samples_png: Path = None
    figures: dict = None
    test_metrics: dict = None
    saved_model: Path = None
    tflite: Path = None
    tflite_report: dict = None

    def summary(self):
        """Human-readable lines naming every artefact."""
        lines = [f"run folder:   {self.run_dir}", f"checkpoint:   {self.keras_path}"]
        if self.samples_png:
            lines.append(f"samples:      {self.samples_png}")
        for name, path in (self.figures or {}).items():
            if name != "samples":
                lines.append(f"{name + ':':14s}{path}")
        if self.test_metrics:
            lines.append("test:         " + ", ".join(
                f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                for key, value in self.test_metrics.items()))
        if self.saved_model:
            lines.append(f"SavedModel:   {self.saved_model}")
        if self.tflite:
            report = self.tflite_report
            lines.append(
                f"TFLite:       {self.tflite} ({report['size_bytes'] / 1e6:.2f} MB, max |diff| vs "
                f"Keras {report['max_abs_diff']:.0f} levels, {report['latency_ms']:.1f} ms/batch)"
            )
        lines.append(f"TensorBoard:  tensorboard --logdir {self.run_dir / 'logs'}")
        return lines


def _write_json(path, value):
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(value, indent=2, sort_keys=True))
    partial.replace(path)


def _check_resumable(run_dir, config):
    path = run_dir / RUN_CONFIG
    if not path.exists():
        return
    previous = json.loads(path.read_text())
    changed = sorted(
        key for key in set(previous) | set(config)
        if key not in RESUMABLE_CHANGES and previous.get(key) != config.get(key)
    )
    if changed:
        details = ", ".join(f"{key}: {previous.get(key)!r} -> {config.get(key)!r}" for key in changed)
        raise ValueError(
            f"{run_dir} holds a run started with other settings ({details}). Resume it with the "
            "same settings, or pass another --out folder; nothing in it was changed."
        )


def train(
    model_name="dcgan",
    dataset=None,
    epochs=None,
    batch_size=None,
    steps_per_epoch=None,
    seed=0,
    out_dir=None,
    image_size=None,
    data_dir=None,
    export_formats=EXPORT_FORMATS,
    quantize="none",
    verbose="auto",
    callbacks=(),
    model_options=None,
):
    """Train a registered model, resuming its run folder if it holds a checkpoint.

    Args:
        model_name: str. A name in `kerasgen.registry.MODELS`. Defaults to `"dcgan"`.
        dataset: str. Dataset name or folder (see `kerasgen.data.load_dataset`). Defaults to
            the preset's.
        epochs: int. Total epochs of the run (a resumed run trains the rest). Defaults to the
            preset's.
        batch_size: int. Defaults to the preset's.
        steps_per_epoch: int. Batches per epoch (the data repeats). Defaults to one pass.
        seed: int. Seeds weights, latent stream and shuffling. Defaults to 0.
        out_dir: str. The run folder. Defaults to `runs/<model_name>`.
        image_size: int. Resize images to this size. Defaults to the preset's for the
            preset's dataset, else the native size.
        data_dir: str. See `kerasgen.data.load_arrays`.
        export_formats: tuple. Any of `"saved_model"`, `"tflite"`. Defaults to both.
        quantize: str. TFLite quantization (see `kerasgen.export.QUANTIZATIONS`).
        verbose: `"auto"`, 0, 1 or 2. Passed to `fit`.
        callbacks: list of extra `keras.callbacks.Callback`.
        model_options: dict. Overrides of the preset's `options` (e.g. `{"sigma": 50}` for
            `dncnn`, `{"scale": 4}` for `espcn`). Defaults to None.

    Returns:
        A `TrainResult`.
    """
    preset = get_preset(model_name)
    model_kwargs = {**preset.model_kwargs, **_check_options(preset, model_options)}
    dataset = str(dataset or preset.dataset)
    config = {
        "model": model_name,
        "dataset": dataset,
        # The preset's size is for its own data (e.g. 8x8 digits -> 32x32); others keep theirs.
        "image_size": image_size or (preset.image_size if dataset == preset.dataset else None),
        "batch_size": batch_size or preset.batch_size,
        "steps_per_epoch": steps_per_epoch or preset.steps_per_epoch,
        "seed": seed,
        "epochs": epochs or preset.epochs,
        "model_kwargs": model_kwargs,
    }
    config = json.loads(json.dumps(config))  # as the run folder will hold it (tuples -> lists)
    steps_per_epoch = config["steps_per_epoch"]
    run_dir = Path(out_dir or default_run_dir(model_name, config["dataset"], preset))
    _check_resumable(run_dir, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / RUN_CONFIG, config)

    images = labels = None
    if preset.make_data is None:
        images, labels = kg_data.load_arrays(config["dataset"], "train", data_dir,
                                             config["image_size"])
        if preset.uses_labels and labels is None:
            raise ValueError(
                f"{model_name} trains on labelled data, and {config['dataset']!r} has no labels; "
                "use 'digits', 'mnist', 'fashion_mnist' or a labelled 'tfds:<name>'.")
    checkpoint, initial_epoch = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is not None:
        model = keras.models.load_model(checkpoint)
        print(f"Resuming {run_dir} from epoch {initial_epoch} ({checkpoint}).")
    else:
        build_kwargs = dict(model_kwargs)
        if preset.uses_labels:
            build_kwargs["num_classes"] = int(labels.max()) + 1
        if images is not None:
            image_shape = images.shape[1:]
        else:  # make_data families: the run's crop size, if it has one
            image_shape = None if config["image_size"] is None else (config["image_size"],) * 2
        model = preset.build(image_shape, seed=seed, **build_kwargs)
        if preset.compile is not None:
            preset.compile(model)
        else:
            model.compile()
    if preset.make_data is None:
        train_data = kg_data.dataset_from_arrays(
            images, labels if preset.uses_labels else None, batch_size=config["batch_size"],
            seed=seed, repeat=steps_per_epoch is not None,
            description=f"Dataset {config['dataset']!r}")
    else:
        train_data = preset.make_data(model, config["dataset"], config["batch_size"], seed=seed,
                                      data_dir=data_dir)

    callbacks = [
        keras.callbacks.TensorBoard(run_dir / "logs", write_graph=False),
        ResumableCheckpoint(run_dir / "checkpoints"),
        *callbacks,
    ]
    if preset.learning_rate_schedule is not None:
        callbacks.append(preset.learning_rate_schedule(epochs=config["epochs"]))
    if preset.generative:
        reference = figure_reference(images, labels if preset.uses_labels else None)
        callbacks.insert(0, SampleGrid(run_dir / "samples", seed=seed, log_dir=run_dir / "logs",
                                       reference=reference if hasattr(model, "figures") else None))
    history = {}
    if initial_epoch < config["epochs"]:
        fit_history = model.fit(
            train_data,
            epochs=config["epochs"],
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            shuffle=False,  # the dataset shuffles itself
            verbose=verbose,
            callbacks=callbacks,
        )
        history = fit_history.history

    keras_path = run_dir / FINAL_MODEL
    partial = run_dir / f".partial_{FINAL_MODEL}"
    model.save(partial)
    partial.replace(keras_path)
    result = TrainResult(run_dir, model, history, initial_epoch, config["epochs"], keras_path)
    if not preset.generative and preset.make_data is None:  # classifiers
        result.test_metrics = evaluate_classifier(model, config, data_dir)
        _write_json(run_dir / "metrics.json", result.test_metrics)
        return result
    if preset.generative:
        result.samples_png = write_samples(model, run_dir / "samples.png", seed=seed,
                                           title=f"{model_name}, epoch {config['epochs']}")
    if preset.after_training is not None:
        result.figures = preset.after_training(model, run_dir, config, data_dir)
    if hasattr(model, "figures"):
        result.figures = save_model_figures(
            model, images, labels if preset.uses_labels else None, run_dir, seed=seed,
            title=f"{model_name}, epoch {config['epochs']}")
    if export_formats:
        result.saved_model, result.tflite, result.tflite_report = export_model(
            model, run_dir, model_name, export_formats, quantize)
    return result


def _check_options(preset, options):
    """The user's overrides of a preset's model options, refused where the preset has none."""
    options = {key: value for key, value in (options or {}).items() if value is not None}
    unknown = sorted(set(options) - set(preset.options))
    if unknown:
        valid = ", ".join(preset.options) or "none"
        raise ValueError(f"{preset.name} takes no {', '.join(unknown)} option; its options: "
                         f"{valid}.")
    return options


def default_run_dir(model_name, dataset, preset):
    """`runs/<model>`, or `runs/<model>_<dataset>` for data other than the preset's."""
    if dataset == preset.dataset:
        return Path("runs") / model_name
    label = Path(dataset).name if "/" in dataset else dataset.replace(":", "_")
    return Path("runs") / f"{model_name}_{label}"


def evaluate_classifier(model, config, data_dir=None):
    """Test-split loss and accuracy of a classifier run."""
    images, labels = kg_data.load_arrays(config["dataset"], "test", data_dir, config["image_size"])
    test_data = kg_data.dataset_from_arrays(images, labels, batch_size=500, shuffle=False,
                                            drop_remainder=False)
    values = model.evaluate(test_data, verbose=0, return_dict=True)
    return {f"test_{key}": float(value) for key, value in values.items()} | {
        "test_examples": int(len(images))}


def figure_reference(images, labels=None, count=16):
    """The first `count` images (and labels) whose reconstructions figures show."""
    images = images[:count]
    return images, None if labels is None else labels[:count]


def write_run_figures(run_dir, model, out_dir, data_dir=None, seed=0, split="test"):
    """`model.figures` but samples (see `write_samples`) on the first images of the run's
    dataset, saved as PNGs in `out_dir`."""
    config = json.loads((Path(run_dir) / RUN_CONFIG).read_text())
    images, labels = kg_data.load_arrays(config["dataset"], split, data_dir, config["image_size"])
    labelled = get_preset(config["model"]).uses_labels
    return save_model_figures(model, images, labels if labelled else None, out_dir, seed=seed)


def save_model_figures(model, images, labels, out_dir, seed=0, title=None):
    """`model.figures` on the first images, but its samples (`write_samples` makes those)."""
    figures = model.figures(*figure_reference(images, labels), seed=seed)
    figures.pop("samples")
    return save_figures(figures, out_dir, title=title)


def write_samples(model, path, num_images=64, seed=0, title=None):
    """Save a grid of `num_images` samples for seeds `seed ..` to `path`."""
    images = to_uint8(model.generate(model.sample_inputs(num_images, seed))).numpy()
    return save_image_grid(images, path, title=title)


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


def ship_model(model, name, card, metrics=None, folder=None):
    """Write a trained model into `saved_models/<name>/` with its model card.

    The shipped `model.keras` holds the weights and configuration only (no optimizer state,
    deflate-compressed), beside `MODEL_CARD.md` and, if given, `metrics.json`. Returns the folder.
    """
    target = Path(folder or saved_models_dir()) / name
    target.mkdir(parents=True, exist_ok=True)
    inference = model.__class__.from_config(model.get_config())
    inference.set_weights(model.get_weights())
    partial = target / f".partial_{FINAL_MODEL}"
    inference.save(partial)
    deflate_keras_file(partial)
    partial.replace(target / FINAL_MODEL)
    (target / "MODEL_CARD.md").write_text(card)
    if metrics is not None:
        _write_json(target / "metrics.json", metrics)
    return target


def load_model(name_or_run):
    """A shipped model by name (see `shipped_models`) or the model of a run folder.

    Example:
        >>> denoiser = kerasgen.training.load_model("dncnn_grey_s25")
        >>> clean = denoiser.restore(noisy_uint8)
    """
    path = Path(name_or_run)
    if not path.is_dir() and "/" not in str(name_or_run):
        shipped = saved_models_dir() / str(name_or_run)
        if not (shipped / FINAL_MODEL).exists():
            raise FileNotFoundError(
                f"{name_or_run!r} is neither a run folder nor a shipped model; shipped models: "
                f"{', '.join(shipped_models()) or 'none found'} (in {saved_models_dir()}).")
        path = shipped
    return load_run(path)


def load_run(run_dir):
    """The model of a run folder: its final `model.keras`, else its newest checkpoint."""
    run_dir = Path(run_dir)
    path = run_dir / FINAL_MODEL
    if not path.exists():
        path, _ = latest_checkpoint(run_dir / "checkpoints")
    if path is None:
        raise FileNotFoundError(
            f"{run_dir} holds no {FINAL_MODEL} and no checkpoints/epoch_*.keras; pass the folder "
            "that `kerasgen train ... --out DIR` wrote."
        )
    return keras.models.load_model(path)


def export_model(model, run_dir, name, formats=EXPORT_FORMATS, quantize="none"):
    """Export a model into its run folder; returns `(saved_model, tflite, tflite_report)`.

    The SavedModel goes to a new version folder, `saved_model/<name>/<N+1>/`, so earlier
    versions (which TF Serving may be serving) are kept.
    """
    unknown = set(formats) - set(EXPORT_FORMATS)
    if unknown:
        raise ValueError(f"Unknown export format(s) {sorted(unknown)}; valid: {list(EXPORT_FORMATS)}.")
    if quantize not in export.QUANTIZATIONS:
        raise ValueError(f"Unknown quantize {quantize!r}; valid: {list(export.QUANTIZATIONS)}.")
    run_dir = Path(run_dir)
    saved_model = tflite = report = None
    if "saved_model" in formats:
        base = run_dir / "saved_model"
        versions = [int(p.name) for p in (base / name).glob("*") if p.name.isdigit()]
        saved_model = export.export_saved_model(model, base, name, version=max(versions, default=0) + 1)
    if "tflite" in formats:
        suffix = "" if quantize == "none" else f"_{quantize}"
        tflite = export.export_tflite(model, run_dir / f"{name}{suffix}.tflite", quantize,
                                      saved_model_path=saved_model)
        report = export.tflite_parity(tflite, model)
    return saved_model, tflite, report
