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
from pathlib import Path

import keras

from kerasgen.callbacks import ResumableCheckpoint, latest_checkpoint
from kerasgen.export import EXPORT_FORMATS, export_model  # noqa: F401 (the API users call)
from kerasgen.registry import get_preset

RUN_CONFIG = "run_config.json"
FINAL_MODEL = "model.keras"
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


def write_json(path, value):
    """Write JSON atomically (a temporary name, then a rename)."""
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

    What is trained on, which figures and metrics are written and whether the run exports
    follow from the preset's task (`kerasgen.tasks`).

    Args:
        model_name: str. A name in `kerasgen.registry.MODELS`. Defaults to `"dcgan"`.
        dataset: str. Dataset name or folder (see `kerasgen.data.catalog`). Defaults to the
            preset's.
        epochs: int. Total epochs of the run (a resumed run trains the rest). Defaults to the
            preset's.
        batch_size: int. Defaults to the preset's.
        steps_per_epoch: int. Batches per epoch (the data repeats). Defaults to the preset's,
            else one pass.
        seed: int. Seeds weights, random streams and shuffling. Defaults to 0.
        out_dir: str. The run folder. Defaults to `runs/<model_name>`.
        image_size: int. Resize (or crop) images to this size, for models sized from their
            training images. Defaults to the preset's for the preset's dataset, else native.
        data_dir: str. See `kerasgen.data.load_arrays`.
        export_formats: tuple. Any of `"saved_model"`, `"tflite"`. Defaults to both.
        quantize: str. TFLite quantization (see `kerasgen.export.QUANTIZATIONS`).
        verbose: `"auto"`, 0, 1 or 2. Passed to `fit`.
        callbacks: list of extra `keras.callbacks.Callback`.
        model_options: dict. Overrides of the builder's options (`ModelPreset.options()`, e.g.
            `{"sigma": 50}` for `dncnn`, `{"scale": 4}` for `espcn`). Defaults to None.

    Returns:
        A `TrainResult`.
    """
    preset = get_preset(model_name)
    task = preset.task
    model_kwargs = {**preset.model_kwargs, **preset.check_options(model_options)}
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
    if image_size is not None:
        task.check_config(preset, config)
    run_dir = Path(out_dir or default_run_dir(model_name, config["dataset"], preset))
    _check_resumable(run_dir, config)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / RUN_CONFIG, config)

    source = task.load(preset, config, data_dir)
    checkpoint, initial_epoch = latest_checkpoint(run_dir / "checkpoints")
    if checkpoint is not None:
        model = keras.models.load_model(checkpoint)
        print(f"Resuming {run_dir} from epoch {initial_epoch} ({checkpoint}).")
    else:
        model = task.build(preset, config, source, model_kwargs, seed)
        if preset.compile is not None:
            preset.compile(model)
        else:
            model.compile()
    train_data = task.training_data(model, config, source, data_dir)
    callbacks = [
        *task.callbacks(model, run_dir, config, source),
        keras.callbacks.TensorBoard(run_dir / "logs", write_graph=False),
        ResumableCheckpoint(run_dir / "checkpoints"),
        *callbacks,
    ]
    if preset.learning_rate_schedule is not None:
        callbacks.append(preset.learning_rate_schedule(epochs=config["epochs"]))
    history = {}
    if initial_epoch < config["epochs"]:
        history = model.fit(
            train_data,
            epochs=config["epochs"],
            initial_epoch=initial_epoch,
            steps_per_epoch=config["steps_per_epoch"],
            shuffle=False,  # the dataset shuffles itself
            verbose=verbose,
            callbacks=callbacks,
        ).history

    keras_path = run_dir / FINAL_MODEL
    partial = run_dir / f".partial_{FINAL_MODEL}"
    model.save(partial)
    partial.replace(keras_path)
    result = TrainResult(run_dir, model, history, initial_epoch, config["epochs"], keras_path)
    task.finish(result, config, source, data_dir)
    if task.exports and export_formats:
        result.saved_model, result.tflite, result.tflite_report = export_model(
            model, run_dir, model_name, export_formats, quantize)
    return result


def default_run_dir(model_name, dataset, preset):
    """`runs/<model>`, or `runs/<model>_<dataset>` for data other than the preset's."""
    if dataset == preset.dataset:
        return Path("runs") / model_name
    label = Path(dataset).name if "/" in dataset else dataset.replace(":", "_")
    return Path("runs") / f"{model_name}_{label}"


def read_run_config(run_dir):
    """The settings a run folder was started with."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a folder written by `kerasgen train`.")
    return json.loads(path.read_text())


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
