"""Data: one entry point, `load_dataset`, for embedded, IDX, folder and tfds sources.

Example:
    >>> dataset = kerasgen.data.load_dataset("digits", batch_size=64, image_size=32)
    >>> images, labels = next(iter(dataset))  # float32 [64, 32, 32, 1] in [-1, 1], int64 [64]
"""

from pathlib import Path

from kerasgen.data import catalog, sources
from kerasgen.data.catalog import DATASETS, TFDS_PREFIX
from kerasgen.data.sources import DATA_DIR_ENV, DataError, read_idx, resize_uint8

# Loaders of the catalog's "images" names (see `kerasgen.data.catalog`).
ARRAY_LOADERS = {
    "digits": lambda split, data_dir: sources.load_digits(split),
    "faces": lambda split, data_dir: sources.load_faces(split),
    "photo_crops": lambda split, data_dir: sources.load_photos(split),
    "mnist": lambda split, data_dir: sources.load_idx_dataset("mnist", split, data_dir),
    "fashion_mnist": lambda split, data_dir: sources.load_idx_dataset(
        "fashion_mnist", split, data_dir),
}

__all__ = ["DATASETS", "DATA_DIR_ENV", "DataError", "dataset_from_arrays", "load_arrays",
           "load_dataset", "read_idx", "to_float", "to_uint8", "unit_to_uint8"]


def load_arrays(name, split="train", data_dir=None, image_size=None):
    """Load a dataset into memory as uint8 NHWC images and int64 labels (or None).

    Args:
        name: str. An "images" (or, resized, "image_set") name of `kerasgen.data.catalog`,
            `"tfds:<name>"`, or a path to a folder of images.
        split: str. `"train"`, `"test"` or `"all"`. Defaults to `"train"`.
        data_dir: str. Folder with `mnist/`, `fashion_mnist/` (IDX files) or the tfds data
            directory for `tfds:` names. Defaults to `$KERASGEN_DATA_DIR`.
        image_size: int or (int, int). Resize every image to this size. Defaults to None
            (native size).

    Returns:
        `(images, labels)`: uint8 `[N, H, W, C]` and int64 `[N]` or None.
    """
    name = str(name)
    image_size = _as_size(image_size)
    where = catalog.resolve(name, "images")
    if where == "tfds":
        images, labels = sources.load_tfds(name[len(TFDS_PREFIX):], split, data_dir)
    elif where == "folder":
        # Folders are resized per file, since their images may differ in size.
        return sources.load_folder(name, split, image_size)
    elif name in ARRAY_LOADERS:
        images, labels = ARRAY_LOADERS[name](split, data_dir)
    else:  # an image set: whole images of any size, resized like a folder's
        from kerasgen.data.restoration import load_images

        return sources.stack_images(load_images(name, data_dir), image_size, name), None
    if image_size is not None and images.shape[1:3] != image_size:
        images = resize_uint8(images, image_size)
    return images, labels


def _as_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    size = tuple(int(value) for value in image_size)
    if len(size) != 2 or min(size) < 1:
        raise DataError(f"image_size must be an int or (height, width), got {image_size!r}.")
    return size


def to_float(images):
    """uint8 images to float32 in [-1, 1], the range of a tanh generator."""
    import tensorflow as tf

    return tf.cast(images, tf.float32) / 127.5 - 1.0


def load_dataset(
    name,
    batch_size=64,
    split="train",
    image_size=None,
    shuffle=True,
    seed=0,
    data_dir=None,
    with_labels=None,
    drop_remainder=True,
    repeat=False,
):
    """A batched, prefetched `tf.data.Dataset` of float32 NHWC images in [-1, 1].

    Args:
        name: str. A dataset name (`digits`, `faces`, `photo_crops`, `mnist`,
            `fashion_mnist`, see `kerasgen.data.catalog`), `"tfds:<name>"`, or a path to a
            folder of PNG/JPEG/BMP images.
        batch_size: int. Defaults to 64.
        split: str. `"train"`, `"test"` or `"all"`. Defaults to `"train"`.
        image_size: int or (int, int). Resize images to this size. Defaults to None.
        shuffle: bool. Reshuffle every epoch. Defaults to True.
        seed: int. Shuffle seed. Defaults to 0.
        data_dir: str. See `load_arrays`. Defaults to `$KERASGEN_DATA_DIR`.
        with_labels: bool. Yield `(images, labels)`. Defaults to None: yes where the source
            has labels.
        drop_remainder: bool. Drop the last partial batch. Defaults to True.
        repeat: bool. Repeat forever (use `steps_per_epoch` in `fit`). Defaults to False.
    """
    images, labels = load_arrays(name, split, data_dir, image_size)
    return dataset_from_arrays(images, labels, batch_size, shuffle, seed, with_labels,
                               drop_remainder, repeat, description=f"Dataset {name!r} ({split})")


def dataset_from_arrays(images, labels=None, batch_size=64, shuffle=True, seed=0,
                        with_labels=None, drop_remainder=True, repeat=False,
                        description="The data", start_batch=0):
    """The `load_dataset` pipeline over in-memory uint8 images (and labels).

    With `repeat`, the order is a function of (seed, pass) alone: pass p over the data is the
    stateless permutation of seed (seed, p), so batch k of the endless stream is always the
    same, and `start_batch` starts the stream there (a run resumed at an epoch boundary sees
    exactly the batches the uninterrupted run would have).
    """
    import tensorflow as tf

    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}.")
    if with_labels and labels is None:
        raise DataError(f"{description} has no labels; use with_labels=False.")
    if drop_remainder and len(images) < batch_size:
        raise DataError(
            f"{description} has {len(images)} images, fewer than one batch of "
            f"{batch_size}; use a smaller batch_size."
        )
    use_labels = labels is not None if with_labels is None else with_labels
    elements = (images, labels) if use_labels else images
    if repeat:
        # Batches of indices, then one gather per batch.
        stored = tf.nest.map_structure(tf.constant, elements)
        dataset = _endless_indices(len(images), shuffle, seed, start_batch * batch_size).batch(
            batch_size, drop_remainder=drop_remainder).map(
            lambda index: tf.nest.map_structure(lambda array: tf.gather(array, index), stored))
    else:
        if start_batch:
            raise DataError("start_batch needs repeat=True (an endless, seeded stream).")
        dataset = tf.data.Dataset.from_tensor_slices(elements)
        if shuffle:
            dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if use_labels:
        dataset = dataset.map(lambda x, y: (to_float(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _endless_indices(count, shuffle, seed, start):
    """Element indices of passes over `count` items from element `start` on; pass p is the
    stateless permutation of seed (seed, p) when `shuffle`."""
    import tensorflow as tf

    first_pass, offset = divmod(int(start), int(count))

    def one_pass(index):
        order = tf.range(count, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.stack([tf.cast(seed, tf.int64), index]))
        return tf.data.Dataset.from_tensor_slices(order)

    passes = tf.data.Dataset.counter(first_pass).flat_map(one_pass)
    return passes.skip(offset)


def to_uint8(images):
    """float images in [-1, 1] to uint8 (rounded, clipped), the inverse of `to_float`."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(images * 127.5 + 127.5), 0.0, 255.0), tf.uint8)


def unit_to_uint8(images):
    """float intensities in [0, 1] to uint8 (rounded, clipped)."""
    import tensorflow as tf

    return tf.cast(tf.clip_by_value(tf.round(images * 255.0), 0.0, 255.0), tf.uint8)


def pad_to_multiple(images, multiple, min_size=1):
    """Reflect-pad `[N, H, W, C]` images at the bottom and right to multiples of `multiple`
    (and to at least `min_size` pixels).

    Pads larger than the image (a 40-pixel image for a 128-multiple U-Net) are made by
    reflecting again, up to log2 of the target size times, so any image of at least 2x2
    pixels fits. Crop the network's output back with `[:, :H * scale, :W * scale]`.
    """
    import math

    import tensorflow as tf

    channels = images.shape[-1]
    largest = max(multiple, min_size)
    passes = max(1, math.ceil(math.log2(largest))) if largest > 1 else 0
    targets = [tf.maximum(size + (-size) % multiple, min_size)
               for size in (tf.shape(images)[1], tf.shape(images)[2])]
    for _ in range(passes):
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        pad_height = tf.minimum(targets[0] - height, height - 1)
        pad_width = tf.minimum(targets[1] - width, width - 1)
        images = tf.pad(images, [[0, 0], [0, pad_height], [0, pad_width], [0, 0]],
                        mode="REFLECT")
    # Padding by computed amounts hides the channel count from TFLite's shape inference;
    # a reshape to [n, h, w, C] with a constant C restores it.
    shape = tf.shape(images)
    return tf.reshape(images, tf.stack([shape[0], shape[1], shape[2], channels]))


def map_image_files(function, paths, out_dir, read, overwrite=False, on_written=None):
    """Write `function(read(path))` for every path into `out_dir` as a PNG with its stem.

    Every input is read (and checked by `read`) before anything is written, and existing
    files are kept unless `overwrite`, so a bad input or a name clash writes nothing.

    Returns:
        The list of written paths.
    """
    import tensorflow as tf

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"--out {out_dir} is a file; pass a folder for the outputs.")
    images = [read(path) for path in paths]
    targets = [out_dir / f"{Path(path).stem}.png" for path in paths]
    clashes = [str(path) for path in targets if path.exists() and not overwrite]
    duplicates = {str(path) for path in targets if targets.count(path) > 1}
    if clashes or duplicates:
        raise FileExistsError(
            f"Would overwrite {sorted(set(clashes) | duplicates)[:3]}; pass another --out folder"
            f"{'' if duplicates else ' or --overwrite'}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    for image, target in zip(images, targets):
        tf.io.write_file(str(target), tf.io.encode_png(function(image)))
        if on_written is not None:
            on_written(target)  # progress, file by file
    return targets
