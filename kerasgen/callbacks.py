"""Training callbacks: sample grids (PNG and TensorBoard) and resumable checkpoints."""

import re
from pathlib import Path

import keras
import tensorflow as tf

from kerasgen.data import to_uint8
from kerasgen.visualize import save_image_grid

CHECKPOINT_PATTERN = re.compile(r"^epoch_(\d+)\.keras$")


class SampleGrid(keras.callbacks.Callback):
    """Saves a grid of samples from fixed inputs after every epoch.

    Args:
        out_dir: str. Folder for `epoch_0001.png`, ... Defaults to None (no PNG).
        num_images: int. Defaults to 64.
        seed: int. The fixed inputs are `model.sample_inputs(num_images, seed)`. Defaults to 0.
        log_dir: str. Also write the grid as a TensorBoard image summary. Defaults to None.

    Example:
        >>> gan.fit(dataset, epochs=10, callbacks=[SampleGrid("samples", log_dir="logs")])
    """

    def __init__(self, out_dir=None, num_images=64, seed=0, log_dir=None):
        super().__init__()
        self.out_dir = out_dir
        self.num_images = num_images
        self.seed = seed
        self.log_dir = log_dir
        self._writer = tf.summary.create_file_writer(str(Path(log_dir) / "samples")) \
            if log_dir else None

    def on_epoch_end(self, epoch, logs=None):
        images = to_uint8(self.model.generate(self.model.sample_inputs(self.num_images, self.seed)))
        if self.out_dir:
            save_image_grid(images.numpy(), Path(self.out_dir) / f"epoch_{epoch + 1:04d}.png",
                            title=f"epoch {epoch + 1}")
        if self._writer:
            with self._writer.as_default():
                tf.summary.image("samples", images, step=epoch + 1, max_outputs=16)
            self._writer.flush()


class ResumableCheckpoint(keras.callbacks.Callback):
    """Saves the whole model (weights, every optimizer's state, RNG state) after each epoch.

    Files are `epoch_NNNN.keras`, written under a temporary name and renamed, so a run killed
    at any moment (even by SIGKILL) leaves the previous epoch's checkpoint intact. Only the
    newest `keep` checkpoints are kept. `latest_checkpoint` finds the one to resume from.

    Args:
        directory: str. Checkpoint folder.
        keep: int. Checkpoints kept. Defaults to 1.
    """

    def __init__(self, directory, keep=1):
        super().__init__()
        self.directory = Path(directory)
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
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
