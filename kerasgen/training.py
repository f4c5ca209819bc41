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

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import keras

from kerasgen import export, precision as precisions
from kerasgen.distribute import gather_from_replicas, worker_role
from kerasgen.callbacks import (CorruptFileError, ResumableCheckpoint, StopOnNonFinite,
                                latest_checkpoint, load_keras_file, load_latest_checkpoint)
from kerasgen.export import EXPORT_FORMATS, export_model
from kerasgen.files import FINAL_MODEL, RUN_CONFIG, write_json  # noqa: F401 (training's API)
from kerasgen.registry import get_preset
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
    worker: str = None  # "worker 1" on a multi-worker run's other workers, which write nothing
    precision: str = "float32"  # what the networks computed in (`kerasgen.precision`)

    def summary(self):
        """Human-readable lines naming every artefact."""
        if self.worker:
            return [f"{self.worker}: trained in step with the chief, which writes the run "
                    f"folder {self.run_dir}."]
        lines = [f"run folder:   {self.run_dir}", f"checkpoint:   {self.keras_path}",
                 f"precision:    {self.precision}"]
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


def _check_resumable(run_dir, config):
    if not (run_dir / RUN_CONFIG).exists():
        return
    previous = _previous_config(run_dir)
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
    strategy=None,
    precision="auto",
    init_from=None,
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
        strategy: a `tf.distribute.Strategy` to train under (see
            `kerasgen.distribute.make_strategy`), created before TensorFlow runs any op.
            Under `MultiWorkerMirroredStrategy` every worker runs this same call; the chief
            writes `out_dir`, the others read it (to resume; it must be on storage they all
            see) and write into a scratch folder they delete. Defaults to None (one device).
        precision: str. `"float32"`, `"bf16"` (bfloat16 compute, float32 weights; see
            `kerasgen.precision`) or `"auto"`: bf16 where the CPU or GPU computes it natively
            and, on a CPU, a one-off probe finds it faster (`precision.resolve`), else
            float32; a resumed run keeps the precision it started with. Exports are
            float32 either way. Defaults to `"auto"`.
        init_from: str. Fine-tuning: a new run starts from the weights of this shipped model
            or run folder (see `_start_from`); a resumed run from its own checkpoint.
            Defaults to None (the builder's initialisation).

    Returns:
        A `TrainResult`.
    """
    preset = get_preset(model_name)
    task = preset.task
    model_kwargs = {**preset.model_kwargs, **preset.check_options(model_options)}
    dataset = str(dataset or preset.dataset)
    run_dir = Path(out_dir or default_run_dir(model_name, dataset, preset))
    config = {
        "model": model_name,
        "dataset": dataset,
        # The preset's size is for its own data (e.g. 8x8 digits -> 32x32); others keep theirs.
        "image_size": _unset_or_positive("image_size", image_size) or (
            preset.image_size if dataset == preset.dataset else None),
        "batch_size": _unset_or_positive("batch_size", batch_size) or preset.batch_size,
        "steps_per_epoch": (_unset_or_positive("steps_per_epoch", steps_per_epoch)
                            or preset.steps_per_epoch),
        "seed": seed,
        "epochs": _unset_or_positive("epochs", epochs) or preset.epochs,
        "model_kwargs": model_kwargs,
        "precision": _run_precision(precision, run_dir),
        **({"init_from": str(init_from)} if init_from is not None else {}),
    }
    config = json.loads(json.dumps(config))  # as the run folder will hold it (tuples -> lists)
    export.check_export(export_formats, quantize)
    if image_size is not None:
        task.check_config(preset, config)
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"--out {run_dir} is a file; pass a folder (new or a run's).")
    _check_resumable(run_dir, config)

    # Everything that can refuse the run (data, options, a checkpoint) before anything is
    # written into the run folder.
    source = task.load(preset, config, data_dir)
    chief, task_type, task_index = worker_role(strategy)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model, initial_epoch, checkpoint = load_latest_checkpoint(run_dir / "checkpoints")
        if model is None:
            model = task.build(preset, config, source, model_kwargs, seed)
            _start_from(task, model, init_from)
            precisions.set_precision(model, config["precision"])
            if preset.compile is not None:
                preset.compile(model)
            else:
                model.compile()
    if task.exports and "tflite" in (export_formats or ()):
        export.check_quantization(model, quantize)  # before training, not after
    if task_type is not None:
        _check_same_start(strategy, initial_epoch, run_dir)
    train_data, steps_per_epoch = task.training_data(model, config, source, data_dir,
                                                     initial_epoch)
    if chief:
        result = _train_into(run_dir, model, initial_epoch, checkpoint, preset, config, source,
                             data_dir, train_data, steps_per_epoch, verbose, callbacks,
                             export_formats, quantize)
    else:
        # The other workers run the same callbacks (saving reads synchronised variables,
        # which is collective, so every worker saves) into a scratch folder; no exports.
        scratch = Path(tempfile.mkdtemp(prefix=f"kerasgen-{task_type}{task_index}-"))
        try:
            result = _train_into(scratch, model, initial_epoch, checkpoint, preset, config,
                                 source, data_dir, train_data, steps_per_epoch, verbose,
                                 callbacks, (), quantize)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        result = dataclasses.replace(result, run_dir=run_dir, keras_path=None,
                                     worker=f"{task_type} {task_index}")
    if task_type is not None:  # no worker leaves while the chief still exports
        gather_from_replicas(strategy, 0)
    return result


def _start_from(task, model, init_from):
    """Set a new run's networks to those of a shipped model or run (`init_from`, if any),
    which must match by name and shape (`Task.start_from`); the optimizer starts afresh."""
    if init_from is not None:
        from kerasgen.store import load_model

        task.start_from(model, load_model(init_from), f"--init {init_from}")


def _check_same_start(strategy, initial_epoch, run_dir):
    """Refuse a multi-worker run whose workers found different resume points (a collective)."""
    starts = sorted(set(gather_from_replicas(strategy, initial_epoch)))
    if len(starts) > 1:
        raise ValueError(
            f"The workers would resume {run_dir} from different epochs ({starts}): each worker "
            "reads the run folder, so put --out on storage every worker sees (or remove the "
            "checkpoints on all of them to start afresh).")


def _train_into(run_dir, model, initial_epoch, checkpoint, preset, config, source, data_dir,
                train_data, steps_per_epoch, verbose, callbacks, export_formats, quantize):
    """`fit` with the run's callbacks, writing into `run_dir`; then the final model, the
    task's figures and metrics, and the exports."""
    task = preset.task
    with RunLock(run_dir):
        write_json(run_dir / RUN_CONFIG, config)
        if checkpoint is not None:
            print(f"Resuming {run_dir} from epoch {initial_epoch} ({checkpoint}).")
        guard = StopOnNonFinite()
        checkpoints = ResumableCheckpoint(run_dir / "checkpoints")
        callbacks = [
            guard,
            *task.callbacks(model, run_dir, config, source, data_dir),
            keras.callbacks.TensorBoard(run_dir / "logs", write_graph=False),
            checkpoints,
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
                steps_per_epoch=steps_per_epoch,
                shuffle=False,  # the dataset orders itself, per (seed, pass)
                verbose=verbose,
                callbacks=callbacks,
            ).history
        if guard.failure is not None:
            last, last_epoch = latest_checkpoint(run_dir / "checkpoints")
            raise TrainingDiverged(
                f"Training diverged at {guard.describe()}: a non-finite loss. Nothing of that "
                f"epoch was saved; the run resumes from epoch {last_epoch} "
                f"({last or 'the start'}). Lower the learning rate or check the data for NaN "
                "or inf values, then run the same command again.")
        keras_path = write_final_model(model, run_dir, checkpoints, config["epochs"])
        result = TrainResult(run_dir, model, history, initial_epoch, config["epochs"],
                             keras_path, precision=config["precision"])
        task.finish(result, config, source, data_dir)
        if task.exports and export_formats:
            result.saved_model, result.tflite, result.tflite_report = export_model(
                model, run_dir, preset.name, export_formats, quantize)
    return result


class TrainingDiverged(ValueError):
    """A run stopped at a non-finite loss; its last finite checkpoint was kept."""


def _run_precision(precision, run_dir):
    """The run's precision: `auto` resolved on this machine, or, resuming, the run's own."""
    if precision == "auto" and (run_dir / RUN_CONFIG).is_file():
        return _previous_config(run_dir)["precision"]  # no probe: the run already chose
    return precisions.resolve(precision)  # refuses unknown names


def _previous_config(run_dir):
    """The settings a run folder was started with; runs from before `precision` existed
    trained in float32."""
    return {"precision": "float32", **json.loads((run_dir / RUN_CONFIG).read_text())}


def _unset_or_positive(name, value):
    """`value` if None (unset: the preset's) or a positive int; 0 and negatives are refused."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or value < 1):
        raise ValueError(f"{name} must be a positive whole number, got {value!r}; leave it "
                         "out for the preset's.")
    return value


def write_final_model(model, run_dir, checkpoints, epochs):
    """`model.keras`: a hard link to the final epoch's checkpoint when there is one (the same
    bytes, so no second full copy on disk), else a fresh save; written atomically."""
    keras_path = Path(run_dir) / FINAL_MODEL
    partial = Path(run_dir) / f".partial_{FINAL_MODEL}"
    partial.unlink(missing_ok=True)
    final_checkpoint = Path(checkpoints.directory) / f"epoch_{epochs:04d}.keras"
    try:
        os.link(final_checkpoint, partial)
    except OSError:  # no such checkpoint (e.g. nothing trained), or no hard links here
        model.save(partial)
    partial.replace(keras_path)
    return keras_path


class RunLock:
    """`<run>/.lock` holding the owner's pid, so two `train` processes never share a folder.

    A lock whose pid is no longer running (a killed run) is taken over.
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / ".lock"

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _running(owner):
                    raise RunInUse(
                        f"{self.path.parent} is being trained by process {owner}; wait for it, "
                        "stop it, or pass another --out folder.") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(descriptor, "w") as handle:
                handle.write(str(os.getpid()))
            return self
        raise RunInUse(f"Could not take {self.path}; another process keeps taking it.")

    def _owner(self):
        try:
            return int(self.path.read_text().strip() or -1)
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc):
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


class RunInUse(ValueError):
    """Another live process holds the run folder's lock."""


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


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
    """The model of a run folder: its final `model.keras`, else its newest good checkpoint.

    A corrupt `model.keras` is reported as corrupt (not as missing), naming the fix.
    """
    run_dir = Path(run_dir)
    path = run_dir / FINAL_MODEL
    if path.exists():
        try:
            return load_keras_file(path)
        except CorruptFileError as error:
            raise CorruptFileError(f"{error} Delete it and run `kerasgen train` with the same "
                                   "settings: it resumes from the newest good checkpoint and "
                                   "writes it again.") from None
    model, _, _ = load_latest_checkpoint(run_dir / "checkpoints")
    if model is None:
        raise FileNotFoundError(
            f"{run_dir} holds no {FINAL_MODEL} and no checkpoints/epoch_*.keras; pass the folder "
            "that `kerasgen train ... --out DIR` wrote."
        )
    return model
