"""Restoration data: training patches, degradations as TF ops, and the benchmark test sets.

Images are uint8 arrays of any size; the `tf.data` pipeline cuts random patches with the eight
flips/rotations and yields clean float32 patches in [0, 1]. The degradations (Gaussian noise,
MATLAB-style bicubic down-scaling) are TensorFlow ops, applied on the fly by the models'
`train_step` so that their randomness comes from the model's resumable random stream.

Example:
    >>> images = load_images("train400")                  # 400 grey 180x180 uint8 arrays
    >>> patches = patch_dataset(images, patch_size=40, batch_size=64)
    >>> noisy = add_noise(next(iter(patches)), sigma=25.0, seed=(0, 0))
"""

from pathlib import Path

import numpy as np

from kerasgen.data import catalog, sources
from kerasgen.data.sources import DataError

# The catalog's image sets (`kerasgen.data.catalog`) and where their files are.
TRAIN_SETS = {"train400": "train/Train400", "t91": "train/T91"}
# Benchmark sets: name -> (folder under the data directory, channels, task).
TEST_SETS = {
    "BSD68": ("denoising/BSD68", 1, "denoise"),
    "Set12": ("denoising/Set12", 1, "denoise"),
    "CBSD68": ("denoising/CBSD68", 3, "denoise"),
    "Set5": ("super_resolution/Set5", 3, "super_resolution"),
    "Set14": ("super_resolution/Set14", 3, "super_resolution"),
}
SCALES = (2, 3, 4)
# BT.601 luma of RGB in [0, 1], as MATLAB's rgb2ycbcr, in [16, 235] / 255.
Y_WEIGHTS = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
Y_OFFSET = 16.0 / 255.0
CBCR_MATRIX = ((-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))


# --- files -----------------------------------------------------------------------------------

def read_image(path):
    """An 8-bit grey or RGB file as a uint8 HxWxC array; 16-bit and alpha files are refused.

    Restoration works on the pixel values themselves, so silently converting a 16-bit file
    to 8 bits or compositing its alpha channel would change what is measured.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    header = path.read_bytes()[:26]
    if header[:8] == b"\x89PNG\r\n\x1a\n" and len(header) == 26:
        bit_depth, color_type = header[24], header[25]
        if bit_depth == 16:
            raise DataError(
                f"{path}: a 16-bit PNG; restoration models take 8-bit images. Convert it, e.g. "
                "with PIL: Image.open(p).point(lambda v: v / 257).convert('L' or 'RGB').")
        if color_type in (4, 6):
            raise DataError(
                f"{path}: has an alpha channel; restoration models take grey or RGB images. "
                "Flatten it onto a background first (e.g. PIL: Image.open(p).convert('RGB')).")
    image = sources.decode_image_file(path)
    if image.shape[-1] in (2, 4):
        raise DataError(f"{path}: has an alpha channel; save it as grey or RGB first.")
    return image


def as_channels(image, channels):
    """A uint8 HxWxC image with 1 (BT.601 luma, rounded) or 3 channels."""
    if image.shape[-1] == channels:
        return image
    if channels == 3:
        return np.repeat(image, 3, axis=-1)
    luma = image[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]


def _data_folder(relative, data_dir):
    folder = sources.resolve_data_dir(data_dir) / relative
    if not folder.is_dir():
        raise DataError(
            f"{folder} does not exist; the data directory must hold {relative}/ (see "
            "shared/data/MANIFEST.md), or use 'photos' (embedded) or a folder of images.")
    return folder


def load_images(name, data_dir=None, channels=None):
    """Images of a training set, test set or folder as a list of uint8 HxWxC arrays.

    Args:
        name: str. An "image_set" name of `kerasgen.data.catalog` (`"train400"`, `"t91"`,
            `"photos"` (scikit-image's bundled photographs, offline), a name in `TEST_SETS`:
            the HR images for SR sets), a folder of images, or `"tfds:<name>"` (its first
            `sources.TFDS_IMAGE_LIMIT` training images, e.g. `tfds:places365_small`).
        data_dir: str. The data directory. Defaults to `$KERASGEN_DATA_DIR`.
        channels: int. 1 or 3 to convert every image; None keeps each file's own.
    """
    name = str(name)
    if catalog.resolve(name, "image_set") == "tfds":
        images = sources.load_tfds_images(name[len(catalog.TFDS_PREFIX):], data_dir)
    elif name == "photos":
        import skimage.data

        images = [getattr(skimage.data, photo)()[..., :3]
                  for photo in sources.PHOTO_NAMES_TRAIN + sources.PHOTO_NAMES_TEST]
    else:
        if name in TRAIN_SETS:
            folder = _data_folder(TRAIN_SETS[name], data_dir)
        elif name in TEST_SETS:
            folder = _data_folder(TEST_SETS[name][0], data_dir)
            if TEST_SETS[name][2] == "super_resolution":
                folder = folder / "HR"
        else:
            folder = Path(name)
            if not folder.is_dir():
                raise DataError(f"{folder}: no such folder of images.")
        images = [read_image(path) for path in sources.list_image_files(folder)]
    return images if channels is None else [as_channels(image, channels) for image in images]


def image_names(name, data_dir=None):
    """File stems of a test set, in `load_images` order."""
    folder = _data_folder(TEST_SETS[name][0], data_dir)
    if TEST_SETS[name][2] == "super_resolution":
        folder = folder / "HR"
    return [path.stem for path in sources.list_image_files(folder)]


def mod_crop(image, scale):
    """Crop an HxWxC image to multiples of `scale` (the SR protocol's HR)."""
    height, width = image.shape[0] - image.shape[0] % scale, image.shape[1] - image.shape[1] % scale
    return image[:height, :width]


def load_sr_pairs(name, scale, data_dir=None):
    """`(hr, lr, names)` of an SR test set: mod-cropped HR and the shipped bicubic LR files."""
    check_scale(scale)
    if name not in TEST_SETS or TEST_SETS[name][2] != "super_resolution":
        valid = [key for key, value in TEST_SETS.items() if value[2] == "super_resolution"]
        raise DataError(f"{name!r} is not a super-resolution test set; valid: {valid}.")
    folder = _data_folder(TEST_SETS[name][0], data_dir)
    hr_files = sources.list_image_files(folder / "HR")
    hr, lr = [], []
    for path in hr_files:
        lr_path = folder / "LR_bicubic" / f"X{scale}" / f"{path.stem}x{scale}{path.suffix}"
        low = read_image(lr_path)
        high = mod_crop(read_image(path), scale)
        if high.shape[:2] != (low.shape[0] * scale, low.shape[1] * scale):
            raise DataError(f"{lr_path} is {low.shape[:2]}, not HR {high.shape[:2]} / {scale}.")
        hr.append(high)
        lr.append(low)
    return hr, lr, [path.stem for path in hr_files]


def check_scale(scale):
    if scale not in SCALES:
        raise ValueError(f"Unsupported scale {scale!r}; kerasgen's SR models take {list(SCALES)}.")


# --- degradations as TensorFlow ops ----------------------------------------------------------

def add_noise(images, sigma, seed):
    """Additive white Gaussian noise of `sigma` grey levels (of 255), not clipped.

    Args:
        images: float tensor in [0, 1], `[batch, H, W, C]`.
        sigma: float or `[batch]` tensor, in levels of 255 (one sigma per image).
        seed: a stateless seed (shape `[2]` int tensor) or a `keras.random.SeedGenerator`.
    """
    import keras
    import tensorflow as tf

    images = tf.convert_to_tensor(images, tf.float32)
    sigma = tf.reshape(tf.cast(sigma, tf.float32), [-1, 1, 1, 1]) / 255.0
    if isinstance(seed, keras.random.SeedGenerator):
        noise = keras.random.normal(tf.shape(images), seed=seed)
    else:
        noise = tf.random.stateless_normal(tf.shape(images), seed=seed)
    return images + sigma * noise


def cubic(x):
    """Keys' cubic convolution kernel with a = -0.5, as MATLAB's `imresize`."""
    x = np.abs(x)
    return np.where(x <= 1, 1.5 * x**3 - 2.5 * x**2 + 1,
                    np.where(x <= 2, -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2, 0.0))


def bicubic_taps(scale):
    """The 1-d antialiased bicubic kernel of MATLAB's `imresize(x, 1/scale)` and its padding.

    For an integer factor every output pixel sees the same taps: output pixel o (0-based)
    centres on input coordinate scale * o + (scale - 1) / 2, and the cubic is stretched by
    `scale` to antialias. Returns `(weights, pad)`: the normalised taps of one output pixel,
    starting `pad` pixels left of scale * o.
    """
    pad = (3 * scale) // 2
    centre = (scale - 1) / 2.0
    # 4 * scale taps; odd scales centre on a pixel, and their last tap would weigh 0.
    offsets = np.arange(-pad, -pad + 4 * scale - scale % 2) - centre
    weights = cubic(offsets / scale) / scale
    return (weights / weights.sum()).astype(np.float32), pad


def bicubic_downscale(images, scale, uint8_passes=False):
    """MATLAB-style bicubic down-scaling by an integer factor, as a strided convolution.

    `imresize(img, 1/scale, 'bicubic')`: antialiased, symmetric borders, rows then columns.
    Height and width must be multiples of `scale` (see `mod_crop`).

    Args:
        images: float tensor `[batch, H, W, C]`.
        scale: int. 2, 3 or 4.
        uint8_passes: bool. Images are in [0, 255] and, as MATLAB does for uint8 input, the
            row pass is rounded and clipped to uint8 before the column pass; round the result
            to get MATLAB's LR file. Defaults to False (float throughout, for training).
    """
    import tensorflow as tf

    check_scale(scale)
    weights, pad = bicubic_taps(scale)
    images = tf.convert_to_tensor(images, tf.float32)
    channels = images.shape[-1]
    # MATLAB mirrors borders including the edge pixel ('symmetric').
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="SYMMETRIC")
    kernel = tf.constant(weights)
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
    columns = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, channels, 1])
    # Unit strides, then every scale-th row (column): TensorFlow's reference kernels (no
    # oneDNN, e.g. AMD CPUs by default) only take equal strides in both directions.
    out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")[:, ::scale]
    if uint8_passes:
        out = tf.clip_by_value(tf.round(out), 0.0, 255.0)
    return tf.nn.depthwise_conv2d(out, columns, [1, 1, 1, 1], "VALID")[:, :, ::scale]


def bicubic_upscale(images, scale, uint8_passes=False):
    """MATLAB-style bicubic up-scaling by an integer factor (`imresize(img, scale)`).

    Output pixel o = k * scale + p centres on input coordinate k + (p + 0.5) / scale - 0.5,
    so each phase p is a 5-tap convolution of the input; the phases are then interleaved.

    Args:
        images: float tensor `[batch, H, W, C]`.
        scale: int. 2, 3 or 4.
        uint8_passes: bool. Round and clip the row pass to uint8 as MATLAB does for uint8
            images in [0, 255]. Defaults to False.
    """
    import tensorflow as tf

    check_scale(scale)
    taps = np.arange(-2, 3)
    phases = [cubic((phase + 0.5) / scale - 0.5 - taps) for phase in range(scale)]
    weights = np.stack([phase / phase.sum() for phase in phases], axis=-1).astype(np.float32)
    images = tf.convert_to_tensor(images, tf.float32)
    channels = images.shape[-1]
    kernel = tf.tile(tf.constant(weights)[:, None, :], [1, channels, 1])  # [5, C, scale]
    padded = tf.pad(images, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="SYMMETRIC")

    def upscale_rows(x):  # [B, H + 4, W, C] -> [B, H * scale, W, C]
        out = tf.nn.depthwise_conv2d(x, kernel[:, None], [1, 1, 1, 1], "VALID")
        shape = tf.shape(out)
        out = tf.reshape(out, [shape[0], shape[1], shape[2], channels, scale])
        out = tf.transpose(out, [0, 1, 4, 2, 3])
        return tf.reshape(out, [shape[0], shape[1] * scale, shape[2], channels])

    rows = upscale_rows(padded)
    if uint8_passes:
        rows = tf.clip_by_value(tf.round(rows), 0.0, 255.0)
    # Columns: the same on the transposed image (the border columns are still padded).
    return tf.transpose(upscale_rows(tf.transpose(rows, [0, 2, 1, 3])), [0, 2, 1, 3])


def rgb_to_ycbcr(images):
    """RGB in [0, 1] to BT.601 YCbCr in [0, 1] (Y in [16, 235] / 255), as MATLAB."""
    import tensorflow as tf

    matrix = tf.constant([Y_WEIGHTS, *[[v / 255.0 for v in row] for row in CBCR_MATRIX]],
                         tf.float32)
    offset = tf.constant([Y_OFFSET, 128.0 / 255.0, 128.0 / 255.0], tf.float32)
    return tf.einsum("...c,kc->...k", images, matrix) + offset


def ycbcr_to_rgb(images):
    """The inverse of `rgb_to_ycbcr`."""
    import tensorflow as tf

    forward = np.array([Y_WEIGHTS, *[[v / 255.0 for v in row] for row in CBCR_MATRIX]])
    inverse = tf.constant(np.linalg.inv(forward), tf.float32)
    offset = tf.constant([Y_OFFSET, 128.0 / 255.0, 128.0 / 255.0], tf.float32)
    return tf.einsum("...c,kc->...k", images - offset, inverse)


# --- training patches ------------------------------------------------------------------------

def patch_dataset(images, patch_size, batch_size, seed=0, augment=True, start_batch=0):
    """An endless, batched `tf.data.Dataset` of random clean patches, float32 in [0, 1].

    Every element picks an image uniformly, a random `patch_size` crop of it and, with
    `augment`, one of the eight flips/rotations (DnCNN's augmentation). Randomness is
    stateless in the element index, so a given seed always yields the same patches.

    Args:
        images: list of uint8 HxWxC arrays with one channel count; at least `patch_size`
            pixels on each side.
        patch_size: int. Side of the square patches.
        batch_size: int.
        seed: int. Defaults to 0.
        augment: bool. Defaults to True.
        start_batch: int. Start the stream at this batch (a resumed run). Defaults to 0.
    """
    import tensorflow as tf

    if not images:
        raise DataError("No training images.")
    channels = {image.shape[-1] for image in images}
    if len(channels) > 1:
        raise DataError(f"Training images mix channel counts {sorted(channels)}; pass channels=.")
    small = [image.shape[:2] for image in images if min(image.shape[:2]) < patch_size]
    if small:
        raise DataError(
            f"{len(small)} training image(s) are smaller than the {patch_size}x{patch_size} "
            f"patches (e.g. {small[0]}); use a smaller patch size or larger images.")
    # One zero-padded array plus true sizes: images of any size in one tensor.
    max_height = max(image.shape[0] for image in images)
    max_width = max(image.shape[1] for image in images)
    stack = np.zeros((len(images), max_height, max_width, channels.pop()), np.uint8)
    for index, image in enumerate(images):
        stack[index, :image.shape[0], :image.shape[1]] = image
    sizes = tf.constant([image.shape[:2] for image in images], tf.int32)
    patch_shape = [patch_size, patch_size, stack.shape[-1]]
    stack = tf.constant(stack)
    count = len(images)

    def make_patch(index):
        seeds = tf.random.experimental.stateless_split(tf.stack([seed, tf.cast(index, tf.int32)]), 4)
        choice = tf.random.stateless_uniform([], seeds[0], 0, count, tf.int32)
        size = sizes[choice]
        top = tf.random.stateless_uniform([], seeds[1], 0, size[0] - patch_size + 1, tf.int32)
        left = tf.random.stateless_uniform([], seeds[2], 0, size[1] - patch_size + 1, tf.int32)
        patch = stack[choice, top:top + patch_size, left:left + patch_size]
        if augment:
            mode = tf.random.stateless_uniform([], seeds[3], 0, 8, tf.int32)
            patch = tf.image.rot90(patch, mode % 4)
            patch = tf.cond(mode >= 4, lambda: tf.reverse(patch, [1]), lambda: patch)
        return tf.cast(tf.ensure_shape(patch, patch_shape), tf.float32) / 255.0

    # Stateless in the element index: `start_batch` resumes the stream exactly.
    dataset = tf.data.Dataset.counter(start_batch * batch_size).map(
        make_patch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


# --- real (degraded, clean) pairs ---------------------------------------------------------------

# A pair folder holds the degraded images in `low/` and the clean ones in `high/` (files pair
# by name); LOL's download root holds its training pairs in `our485/` and its test pairs in
# `eval15/`.
PAIR_PARTS = ("low", "high")
PAIR_SPLITS = {"train": ("our485",), "test": ("eval15",)}


def pair_folder(name, split="train"):
    """The folder with `low/` and `high/` that `name` points to (itself, or LOL's `our485/`
    for training and `eval15/` for testing), or None when `name` is no pair folder."""
    if catalog.is_path(name):  # a path, or a folder in the working directory
        root = Path(str(name))
        for folder in (root, *(root / child for child in PAIR_SPLITS[split])):
            if all((folder / part).is_dir() for part in PAIR_PARTS):
                return folder
    return None


def load_pair_folder(folder, channels=None):
    """`(degraded, clean, names)` of a pair folder: uint8 HxWxC arrays, pair by pair the same
    size (16-bit and alpha files are refused by `read_image`, as elsewhere)."""
    folder = Path(folder)
    degraded, clean, names = [], [], []
    for low_path, high_path in sources.matched_files(*(folder / part for part in PAIR_PARTS)):
        low, high = read_image(low_path), read_image(high_path)
        if channels is not None:
            low, high = as_channels(low, channels), as_channels(high, channels)
        if low.shape != high.shape:
            raise DataError(
                f"{low_path} is {low.shape[1]}x{low.shape[0]}x{low.shape[2]} and its pair "
                f"{high_path} is {high.shape[1]}x{high.shape[0]}x{high.shape[2]}; a pair must "
                "be aligned pixel for pixel (same size and channels).")
        degraded.append(low)
        clean.append(high)
        names.append(low_path.stem)
    return degraded, clean, names


def pair_patch_dataset(degraded, clean, patch_size, batch_size, seed=0, start_batch=0):
    """`patch_dataset` of aligned pairs: batches of `(degraded, clean)` float32 patches that
    share their crop and flip (each pair is cut as one image of both channel sets)."""
    import tensorflow as tf

    channels = degraded[0].shape[-1]
    stacked = [np.concatenate([low, high], axis=-1) for low, high in zip(degraded, clean)]
    patches = patch_dataset(stacked, patch_size, batch_size, seed=seed, start_batch=start_batch)
    return patches.map(lambda both: (both[..., :channels], both[..., channels:]),
                       num_parallel_calls=tf.data.AUTOTUNE)
