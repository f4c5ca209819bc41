"""Training callbacks: sample grids (PNG and TensorBoard) and resumable checkpoints."""

import math
import re
import time
import warnings
import zipfile
from pathlib import Path

import keras
import tensorflow as tf

from kerasgen.visualize import save_figures, save_image_grid

CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d+)\.keras$")


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of samples from fixed inputs after every epoch.

    Args:
        out_dir: str. Folder for `epoch_0001.png`, ... Defaults to None (no PNG).
        num_images: int. Defaults to 64.
        seed: int. The fixed inputs are `model.sample_inputs(num_images, seed)`. Defaults to 0.
        log_dir: str. Also write the grid as a TensorBoard image summary. Defaults to None.
        reference: uint8 images, or `(images, labels)`, that `model.figures()` shows (e.g.
            VAE reconstructions, interpolations, manifold), saved as
            `epoch_NNNN_<figure>.png`. Defaults to None.

    Example:
        >>> gan.fit(dataset, epochs=10, callbacks=[SampleGrid("samples", log_dir="logs")])
    """

    def __init__(self, out_dir=None, num_images=64, seed=0, log_dir=None, reference=None):
        super().__init__()
        self.out_dir = out_dir
        self.num_images = num_images
        self.seed = seed
        self.log_dir = log_dir
        self.reference = reference
        self._writer = tf.summary.create_file_writer(str(Path(log_dir) / "samples")) \
            if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        from kerasgen.tasks import sample_grid

        images, columns, row_labels = sample_grid(self.model, self.num_images, self.seed)
        if self.out_dir:
            save_image_grid(images, Path(self.out_dir) / f"epoch_{epoch + 1:04d}.png",
                            title=f"epoch {epoch + 1}", columns=columns, row_labels=row_labels)
            if self.reference is not None:
                reference = self.reference if isinstance(self.reference, tuple) else (
                    self.reference, None)
                figures = self.model.figures(*reference, seed=self.seed)
                figures.pop("samples", None)  # the grid above
                save_figures(figures, self.out_dir, prefix=f"epoch_{epoch + 1:04d}_",
                             title=f"epoch {epoch + 1}")
        if self._writer:
            with self._writer.as_default():
                tf.summary.image("samples", images, step=epoch + 1, max_outputs=16)
            self._writer.flush()


def is_finite_logs(logs):
    """Whether every number in a Keras `logs` dict is finite."""
    return all(math.isfinite(float(value)) for value in (logs or {}).values()
               if isinstance(value, (int, float)) or getattr(value, "shape", None) == ())


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (weights, every optimizer's state, RNG state) after each epoch.

    Files are `epoch_NNNN.keras`, written under a temporary name and renamed, so a run killed
    at any moment (even by SIGKILL) leaves the previous epoch's checkpoint intact. Only the
    newest `keep` checkpoints are kept, so one bad file never strands a run, and an epoch
    whose losses or weights are not finite is never saved (the resume point stays the last
    finite epoch). `load_latest_checkpoint` finds the one to resume from.

    Args:
        directory: str. Checkpoint folder.
        keep: int. Checkpoints kept. Defaults to 2.
    """

    def __init__(self, directory, keep=2):
        super().__init__()
        if keep < 1:
            raise ValueError(f"keep must be at least 1 checkpoint, got {keep}.")
        self.directory = Path(directory)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        if not is_finite_logs(logs) or not all(
                bool(tf.reduce_all(tf.math.is_finite(weight.value)))  # no host copy
                for weight in self.model.weights if "float" in str(weight.dtype)):
            return  # a diverged epoch: the previous checkpoint stays the resume point
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"epoch_{epoch + 1:04d}.keras"
        partial = self.directory / f".partial_epoch_{epoch + 1:04d}.keras"
        self.model.save(partial)
        partial.replace(final)
        for old, _ in list_checkpoints(self.directory)[:-self.keep]:
            old.unlink()


def list_checkpoints(directory):
    """`[(path, epoch), ...]` of complete checkpoints in `directory`, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = CHECKPOINT_PATTERN.match(path.name)
        if match:
            found.append((path, int(match.group(1))))
    return sorted(found, key=lambda item: item[1])


def latest_checkpoint(directory):
    """`(path, epoch)` of the newest complete checkpoint, or `(None, 0)`."""
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1] if checkpoints else (None, 0)


class CorruptFileError(ValueError):
    """A `.keras` file that exists but cannot be read (truncated, overwritten, not a zip)."""


def load_keras_file(path):
    """`keras.models.load_model(path)`, with a truncated or corrupt file reported as such."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    if not zipfile.is_zipfile(path):
        raise CorruptFileError(f"{path} is corrupt ({path.stat().st_size} bytes, not a complete "
                               ".keras archive: truncated or overwritten).")
    try:
        return keras.models.load_model(path)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, ValueError) as error:
        raise CorruptFileError(f"{path} is corrupt and cannot be loaded ({error}).") from None


def load_latest_checkpoint(directory):
    """`(model, epoch, path)` of the newest checkpoint that loads, or `(None, 0, None)`.

    A corrupt newer checkpoint (e.g. truncated by a full disk) is skipped with a warning, and
    the run resumes from the previous good one.
    """
    for path, epoch in reversed(list_checkpoints(directory)):
        try:
            return load_keras_file(path), epoch, path
        except CorruptFileError as error:
            warnings.warn(f"{error} Resuming from the previous checkpoint instead.",
                          stacklevel=2)
    return None, 0, None


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose logged loss is not finite (NaN or inf).

    `failure` then says where: `(epoch, step, logs)` (1-based epoch and step). The checkpoint
    callback does not save that epoch, so the run can be resumed from the last finite one.
    """

    def __init__(self):
        super().__init__()
        self.failure = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.failure is None and not is_finite_logs(logs):
            self.failure = (self._epoch + 1, batch + 1, dict(logs))
            self.model.stop_training = True

    def describe(self):
        epoch, step, logs = self.failure
        bad = ", ".join(f"{name}={float(value)}" for name, value in logs.items()
                        if not math.isfinite(float(value)))
        return f"epoch {epoch}, step {step} ({bad})"


class TimeLimit(keras.callbacks.Callback):
    """Stops `fit` once `seconds` of training have passed (checked after each batch).

    Args:
        seconds: float. The wall-clock budget.
    """

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.start = None
        self.steps = 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.start >= self.seconds:
            self.model.stop_training = True


class PreciseBatchNorm(keras.callbacks.Callback):
    """At each epoch's end (before the checkpoint), sets an image-to-image model's batch
    norms to their population statistics on training batches (`model.recompute_batch_norm`):
    checkpoints and the final model then infer with statistics of their own weights, not the
    moving averages of earlier ones. Training is unchanged (it normalises by each batch).

    Args:
        dataset: str. The run's training set (or folder).
        batch_size: int. The run's batch size.
        seed: int. The run's seed; the statistics' batches are drawn from their own stream.
        data_dir: str. Defaults to None (`KERASGEN_DATA_DIR`).
    """

    def __init__(self, dataset, batch_size, seed=0, data_dir=None):
        super().__init__()
        self.arguments = dict(dataset=dataset, batch_size=batch_size, seed=seed,
                              data_dir=data_dir)

    def on_epoch_end(self, epoch, logs=None):
        self.model.recompute_batch_norm(**self.arguments)


class EpochSchedule(keras.callbacks.Callback):
    """Sets the learning rate of every optimizer of the model at the start of each epoch.

    Subclasses define `rate(epoch)`. The rate depends only on the epoch index, so a resumed
    run continues on the same schedule. kerasgen wrappers list their optimizers in
    `schedule_optimizers()` (e.g. CycleGAN's four, a GAN's two); plain models use
    `model.optimizer`.
    """

    def rate(self, epoch):
        raise NotImplementedError

    def on_epoch_begin(self, epoch, logs=None):
        from kerasgen.models.base import optimizers_of

        for optimizer in optimizers_of(self.model):
            optimizer.learning_rate.assign(self.rate(epoch))


class StepDecay(EpochSchedule):
    """Learning rate `initial` for the first `drop_at` share of epochs, then `initial * factor`.

    DnCNN's schedule (1e-3 for 30 of 50 epochs, then 1e-4).

    Args:
        initial: float. The starting learning rate.
        epochs: int. Total epochs of the run.
        drop_at: float. Share of the epochs after which the rate drops. Defaults to 0.6.
        factor: float. Defaults to 0.1.
    """

    def __init__(self, initial, epochs, drop_at=0.6, factor=0.1):
        super().__init__()
        self.initial = float(initial)
        self.epochs = int(epochs)
        self.drop_at = float(drop_at)
        self.factor = float(factor)

    def rate(self, epoch):
        """The learning rate of (0-based) `epoch`."""
        return self.initial * (self.factor if epoch >= self.drop_at * self.epochs else 1.0)


class LinearDecay(EpochSchedule):
    """Learning rate `initial` for the first `constant_share` of epochs, then linearly down.

    CycleGAN's and pix2pix's schedule (Zhu et al. 2017, section 7.1: 2e-4 for 100 epochs, then
    linearly to zero over the next 100), with the reference implementation's exact factors
    (github.com/junyanz/pytorch-CycleGAN-and-pix2pix, `networks.get_scheduler`, "linear"):
    epoch e of n constant and d decaying epochs trains at
    `initial * (1 - max(0, e + 1 - n) / (d + 1))`.

    Args:
        initial: float. The starting learning rate.
        epochs: int. Total epochs of the run (n + d).
        constant_share: float. Share of the epochs at the initial rate. Defaults to 0.5.
    """

    def __init__(self, initial, epochs, constant_share=0.5):
        super().__init__()
        if not 0.0 <= constant_share <= 1.0:
            raise ValueError(f"constant_share must be in [0, 1], got {constant_share}.")
        self.initial = float(initial)
        self.epochs = int(epochs)
        self.constant_share = float(constant_share)

    def rate(self, epoch):
        """The learning rate of (0-based) `epoch`."""
        constant = round(self.constant_share * self.epochs)
        decaying = self.epochs - constant
        return self.initial * (1.0 - max(0, epoch + 1 - constant) / (decaying + 1))
