"""Image sources: each returns uint8 NHWC arrays (and int64 labels or None).

Sources are plain functions `name -> (images, labels)` so that tests can check them against
numpy directly; `kerasgen.data.load_dataset` turns them into `tf.data` pipelines.
"""

import gzip
import os
import socket
import struct
from pathlib import Path

import numpy as np

DATA_DIR_ENV = "KERASGEN_DATA_DIR"
SPLITS = ("train", "test", "all")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

# Colour photographs that scikit-image ships inside its wheel (no download needed).
PHOTO_NAMES_TRAIN = (
    "astronaut", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
)
PHOTO_NAMES_TEST = ("coffee",)

# IDX element types (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT").
IDX_DTYPES = {
    0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


class DataError(ValueError):
    """Raised for data that cannot be loaded; the message names the file and the fix."""


def _check_split(split, name):
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r} for dataset {name!r}; use one of {list(SPLITS)}.")


def _deterministic_split(num_examples, split, test_fraction=0.2, seed=1234):
    """Indices of a fixed train/test split for sources that ship without one."""
    order = np.random.default_rng(seed).permutation(num_examples)
    num_test = int(round(num_examples * test_fraction))
    if split == "train":
        return np.sort(order[num_test:])
    if split == "test":
        return np.sort(order[:num_test])
    return np.arange(num_examples)


# --- embedded, offline -----------------------------------------------------------------------

def load_digits(split="train"):
    """scikit-learn's 1,797 8x8 handwritten digits (values 0..16), as uint8 0..255."""
    from sklearn.datasets import load_digits as sklearn_digits

    _check_split(split, "digits")
    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    index = _deterministic_split(len(images), split)
    return images[index], bunch.target[index].astype(np.int64)


def load_faces(split="train"):
    """The 100 face crops (25x25 grey) of scikit-image's bundled `lfw_subset`."""
    from skimage.data import lfw_subset

    _check_split(split, "faces")
    # lfw_subset holds 100 faces followed by 100 non-face patches; keep the faces.
    faces = lfw_subset()[:100]
    images = np.round(faces * 255.0).astype(np.uint8)[..., None]
    return images[_deterministic_split(len(images), split)], None


def load_photos(split="train", crop_size=64, num_crops=None, seed=0):
    """Random `crop_size` crops of scikit-image's bundled colour photographs.

    Train crops come from six photos, test crops from a seventh ("coffee"), so the split
    holds no pixel twice.
    """
    import skimage.data

    _check_split(split, "photos")
    names = {
        "train": PHOTO_NAMES_TRAIN,
        "test": PHOTO_NAMES_TEST,
        "all": PHOTO_NAMES_TRAIN + PHOTO_NAMES_TEST,
    }[split]
    if num_crops is None:
        num_crops = 256 * len(names)
    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)() for name in names]
    crops = np.empty((num_crops, crop_size, crop_size, 3), np.uint8)
    for i in range(num_crops):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - crop_size + 1)
        left = rng.integers(0, photo.shape[1] - crop_size + 1)
        crops[i] = photo[top:top + crop_size, left:left + crop_size, :3]
    return crops, None


# --- IDX files (MNIST, Fashion-MNIST) --------------------------------------------------------

def resolve_data_dir(data_dir=None):
    """The data directory: the argument, else $KERASGEN_DATA_DIR."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV)
    if not data_dir:
        raise DataError(
            f"No data directory: pass data_dir=... (CLI: --data-dir) or set {DATA_DIR_ENV} to "
            "the folder that holds mnist/ and fashion_mnist/ with the original IDX .gz files. "
            "Offline alternatives that need no files: 'digits', 'faces', 'photos'."
        )
    return Path(data_dir)


def read_idx(path, expected_magic=None):
    """Parse an IDX file (optionally gzip-compressed) into a numpy array, checking its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise DataError(f"{path} does not exist.") from None
    except (OSError, EOFError) as error:
        raise DataError(
            f"{path}: cannot be read as {'gzip' if opener is gzip.open else 'a file'} ({error}). "
            "The file is corrupt or truncated; download it again."
        ) from error
    if len(raw) < 4:
        raise DataError(f"{path}: only {len(raw)} bytes, too short for an IDX header; download it again.")
    zero, type_code, num_dims = struct.unpack(">HBB", raw[:4])
    magic = struct.unpack(">I", raw[:4])[0]
    if zero != 0 or type_code not in IDX_DTYPES or num_dims == 0:
        raise DataError(
            f"{path}: wrong IDX magic number 0x{magic:08x}; this is not an IDX file "
            "(expected 2051 for images, 2049 for labels). Check the file name or download it again."
        )
    if expected_magic is not None and magic != expected_magic:
        raise DataError(
            f"{path}: IDX magic {magic}, expected {expected_magic} "
            f"({'images' if expected_magic == IDX_IMAGES_MAGIC else 'labels'}); "
            "the images and labels files may be swapped."
        )
    header_size = 4 + 4 * num_dims
    shape = struct.unpack(f">{num_dims}I", raw[4:header_size])
    dtype = IDX_DTYPES[type_code]
    expected_bytes = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected_bytes:
        raise DataError(
            f"{path}: {len(raw)} bytes but the header {shape} says {expected_bytes}; "
            "the file is truncated or corrupt, download it again."
        )
    return np.frombuffer(raw, dtype, offset=header_size).reshape(shape)


def _idx_file(folder, stem):
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.exists():
            return candidate
    raise DataError(
        f"Missing {folder / (stem + '.gz')}. Put the original IDX files there (the layout of "
        f"$KERASGEN_DATA_DIR/<name>/), use 'tfds:<name>' online, or an embedded dataset "
        "('digits', 'faces', 'photos')."
    )


def load_idx_dataset(name, split="train", data_dir=None):
    """MNIST-layout IDX files under `<data_dir>/<name>/` (train-* and t10k-*)."""
    _check_split(split, name)
    folder = resolve_data_dir(data_dir) / name
    if not folder.is_dir():
        raise DataError(
            f"Dataset folder {folder} does not exist. Point {DATA_DIR_ENV} (or --data-dir) at the "
            f"folder that contains {name}/, or use an embedded dataset ('digits', 'faces', 'photos')."
        )
    parts = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}[split]
    images, labels = [], []
    for prefix in parts:
        image_array = read_idx(_idx_file(folder, f"{prefix}-images-idx3-ubyte"), IDX_IMAGES_MAGIC)
        label_array = read_idx(_idx_file(folder, f"{prefix}-labels-idx1-ubyte"), IDX_LABELS_MAGIC)
        if len(image_array) != len(label_array):
            raise DataError(
                f"{folder}: {len(image_array)} {prefix} images but {len(label_array)} labels; "
                "the files do not belong together."
            )
        images.append(image_array)
        labels.append(label_array)
    return np.concatenate(images)[..., None], np.concatenate(labels).astype(np.int64)


# --- any local folder ------------------------------------------------------------------------

def list_image_files(folder):
    """Image files (PNG/JPEG/BMP) under `folder`, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder of images.")
    files = sorted(
        path for path in folder.rglob("*")
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise DataError(
            f"{folder} holds no {'/'.join(e[1:].upper() for e in IMAGE_EXTENSIONS)} images; "
            "point to a folder that does."
        )
    return files


def matched_files(folder_a, folder_b):
    """`[(file in folder_a, file in folder_b)]` of two folders whose images pair by file stem,
    sorted; a file without a partner is refused, with examples from each side."""
    files_a = {path.stem: path for path in list_image_files(folder_a)}
    files_b = {path.stem: path for path in list_image_files(folder_b)}
    only_a, only_b = sorted(set(files_a) - set(files_b)), sorted(set(files_b) - set(files_a))
    if only_a or only_b:
        raise DataError(
            f"Pairs must match by file name: {len(only_a)} in {folder_a} without a partner "
            f"(e.g. {only_a[:3]}), {len(only_b)} in {folder_b} (e.g. {only_b[:3]}). Remove or "
            "rename them.")
    return [(files_a[stem], files_b[stem]) for stem in sorted(files_a)]


def decode_image_file(path, channels=0):
    """Decode one PNG/JPEG/BMP file into a uint8 HxWxC array; corrupt files name themselves."""
    import tensorflow as tf

    try:
        image = tf.io.decode_image(
            tf.io.read_file(str(path)), channels=channels, dtype=tf.uint8, expand_animations=False
        )
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
        message = error.message.splitlines()[0] if error.message else type(error).__name__
        raise DataError(
            f"{path}: not a readable PNG/JPEG/BMP image ({message}). Remove or replace the file."
        ) from None
    return image.numpy()


def resize_uint8(images, image_size):
    """Antialiased bicubic resize of uint8 HWC or NHWC images, rounded back to uint8."""
    import tensorflow as tf

    resized = tf.image.resize(images, image_size, method="bicubic", antialias=True)
    return tf.cast(tf.round(tf.clip_by_value(resized, 0.0, 255.0)), tf.uint8).numpy()


def load_folder(folder, split="all", image_size=None):
    """All images of a folder as one uint8 array (grey, or RGB if any file is in colour)."""
    _check_split(split, str(folder))
    files = list_image_files(folder)
    decoded = [decode_image_file(path) for path in files]
    channels = 3 if any(image.shape[-1] >= 3 for image in decoded) else 1
    images = [
        # Grey files in a colour folder become RGB; alpha channels are dropped.
        decode_image_file(path, channels=channels) if image.shape[-1] != channels else image
        for path, image in zip(files, decoded)]
    return stack_images(images, image_size, str(folder), split), None


def stack_images(images, image_size=None, description="The data", split="all"):
    """Images of one channel count as one uint8 array, resized to `image_size` if given;
    images of different sizes without `image_size` are refused. `split` takes a fixed share."""
    _check_split(split, description)
    if image_size is not None:
        image_size = (image_size,) * 2 if isinstance(image_size, int) else tuple(image_size)
        images = [image if image.shape[:2] == image_size else resize_uint8(image, image_size)
                  for image in images]
    sizes = sorted({image.shape[:2] for image in images})
    if len(sizes) > 1:
        raise DataError(
            f"{description}: images have different sizes {sizes[:4]}"
            f"{'...' if len(sizes) > 4 else ''}; pass image_size=(H, W) (CLI: --image-size N) "
            "to resize them to one size."
        )
    images = np.stack(images)
    return images[_deterministic_split(len(images), split)]


# --- TensorFlow Datasets (online) ------------------------------------------------------------

def _network_reachable(host="storage.googleapis.com", port=443, timeout=3.0):
    """One short TCP connect, so that an offline machine fails in seconds, not minutes."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _prepared_tfds(name, data_dir, alternatives):
    """The `tensorflow_datasets` module, once `tfds:name` can be loaded; refused fast, naming
    `alternatives`, when tensorflow-datasets is not installed (an optional extra: its wheel is
    not in every offline package mirror) or when the data is not prepared and this machine is
    offline."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError(f"tfds:{name} needs tensorflow-datasets, which is not installed: "
                        f"pip install \"kerasgen[tfds]\" (online). Offline alternatives: "
                        f"{alternatives}.") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError
        raise DataError(f"tfds:{name}: {error}") from None
    if not builder.is_prepared() and not _network_reachable():
        raise DataError(
            f"tfds:{name} is not prepared in {builder.data_dir} and this machine is offline, so "
            f"tensorflow-datasets cannot download it. Offline alternatives: {alternatives}.")
    return tfds


def load_tfds(name, split="train", data_dir=None, tfds_split=None):
    """A tensorflow-datasets image dataset (downloads when not already prepared).

    `tfds_split` names the data set's own split (e.g. "trainA" of cycle_gan/horse2zebra) in
    place of the one `split` maps to.
    """
    if tfds_split is None:
        _check_split(split, f"tfds:{name}")
    tfds = _prepared_tfds(
        name, data_dir, f"'mnist' or 'fashion_mnist' from IDX files under ${DATA_DIR_ENV}, a "
        "local folder of images, or the embedded 'digits', 'faces', 'photos'")
    tfds_split = tfds_split or {"train": "train", "test": "test", "all": "train+test"}[split]
    dataset = tfds.load(name, split=tfds_split, data_dir=data_dir, batch_size=-1)
    arrays = tfds.as_numpy(dataset)
    images = arrays["image"].astype(np.uint8)
    labels = arrays.get("label")
    return images, (labels.astype(np.int64) if labels is not None else None)


TFDS_IMAGE_LIMIT = 4096  # images of any size are held in memory for random crops


def load_tfds_images(name, data_dir=None, limit=TFDS_IMAGE_LIMIT):
    """The first `limit` training images of a tensorflow-datasets image set (e.g.
    `places365_small`, `celeb_a`: photos for inpainting), as uint8 HxWxC arrays (downloads
    when not already prepared)."""
    tfds = _prepared_tfds(
        name, data_dir, f"'t91' or 'train400' under ${DATA_DIR_ENV}, the embedded 'photos', or "
        "a local folder of images")
    dataset = tfds.load(name, split=f"train[:{int(limit)}]", data_dir=data_dir)
    return [example["image"] for example in tfds.as_numpy(dataset)]
