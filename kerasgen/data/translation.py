"""Image-to-image translation data: unpaired domains (CycleGAN) and aligned pairs (pix2pix).

Sources give lists of uint8 RGB arrays; `jitter_dataset` turns them into the papers' training
pipeline (resize to 286/256 of the crop size, random crop, random horizontal flip), stateless in
the element index so a seed always yields the same batches.

Unpaired sources (`load_unpaired`):
    "horse2zebra"           $KERASGEN_DATA_DIR/cyclegan/horse2zebra (trainA[_subset200],
                            trainB[_subset200], testA, testB); online also through tfds
    "tfds:cycle_gan/<name>" tensorflow-datasets (online)
    "chelsea2coffee"        embedded: crops of scikit-image's cat photo vs its coffee photo
    "<root>"                a folder with trainA/ trainB/ testA/ testB/
    "<dirA>,<dirB>"         two folders of images (or a tuple of two paths)

Paired sources (`load_paired`):
    "grey2color"            embedded: grey renderings -> the colour photos (colourisation)
    "<dirA>,<dirB>"         two folders whose files match by name (A is the input)
    "<folder>"              side-by-side AB images, as the pix2pix data sets are distributed;
                            a folder with train/ and test/ (or val/) uses the split's subfolder
"""

import os
from pathlib import Path

import numpy as np

from kerasgen.data import catalog, sources
from kerasgen.data.sources import DataError, decode_image_file, list_image_files, resize_uint8

SPLITS = ("train", "test")
HORSE2ZEBRA = "horse2zebra"
HORSE2ZEBRA_FOLDER = "cyclegan/horse2zebra"
TFDS_PREFIX = "tfds:"
# Domain folders of a CycleGAN root per split; the first that exists is used.
UNPAIRED_FOLDERS = {
    "train": (("trainA", "trainB"), ("trainA_subset200", "trainB_subset200")),
    "test": (("testA", "testB"),),
}
# The papers' jitter: resize 256 -> 286, random 256 crop (CycleGAN section 7.1, pix2pix 6.2).
LOAD_RATIO = 286 / 256
EMBEDDED_CROP = 96
EMBEDDED_CROPS = {"train": 200, "test": 40}
# Share of every embedded photo's width held out for the test split (its right side).
EMBEDDED_TEST_SHARE = 0.25


def _check_split(split):
    if split not in SPLITS:
        raise DataError(f"Unknown split {split!r}; translation data has {list(SPLITS)}.")


def _folder_images(folder):
    return [decode_image_file(path, channels=3) for path in list_image_files(folder)]


def _two_folders(source):
    """`(dirA, dirB)` for a tuple or an "A,B" string, else None."""
    if isinstance(source, (tuple, list)):
        if len(source) != 2:
            raise DataError(f"Give two folders (A, B), got {len(source)}.")
        return Path(source[0]), Path(source[1])
    if isinstance(source, str) and "," in source:
        first, second = (part.strip() for part in source.split(",", 1))
        return Path(first), Path(second)
    return None


def _photo_region(name, split):
    """A scikit-image photo, cut to its train (left) or test (right) part."""
    import skimage.data

    photo = getattr(skimage.data, name)()[..., :3]
    cut = int(round(photo.shape[1] * (1.0 - EMBEDDED_TEST_SHARE)))
    return photo[:, :cut] if split == "train" else photo[:, cut:]


def _crops(photos, count, size, seed):
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        crops.append(photo[top:top + size, left:left + size])
    return crops


def _embedded_unpaired(split):
    count = EMBEDDED_CROPS[split]
    return (_crops([_photo_region("chelsea", split)], count, EMBEDDED_CROP, seed=1),
            _crops([_photo_region("coffee", split)], count, EMBEDDED_CROP, seed=2))


def grey_rgb(image):
    """A uint8 RGB image's BT.601 luma, repeated into three channels."""
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(np.round(luma).astype(np.uint8)[..., None], 3, axis=-1)


def _embedded_paired(split):
    names = sources.PHOTO_NAMES_TRAIN + sources.PHOTO_NAMES_TEST
    photos = [_photo_region(name, split) for name in names]
    targets = _crops(photos, EMBEDDED_CROPS[split], EMBEDDED_CROP, seed=3)
    return [grey_rgb(target) for target in targets], targets


EMBEDDED_UNPAIRED = {"chelsea2coffee": _embedded_unpaired}
EMBEDDED_PAIRED = {"grey2color": _embedded_paired}


def _unpaired_root(root, split):
    root = Path(root)
    for folder_a, folder_b in UNPAIRED_FOLDERS[split]:
        if (root / folder_a).is_dir() and (root / folder_b).is_dir():
            return _folder_images(root / folder_a), _folder_images(root / folder_b)
    expected = " or ".join(f"{a}/ + {b}/" for a, b in UNPAIRED_FOLDERS[split])
    raise DataError(f"{root} has no {split} domains: expected {expected} inside it.")


def _tfds_unpaired(name, split, data_dir=None):
    parts = []
    for domain in "AB":
        try:
            images, _ = sources.load_tfds(name, data_dir=data_dir, tfds_split=f"{split}{domain}")
        except DataError as error:
            raise DataError(
                f"{error} For CycleGAN data offline, put the domain folders under "
                f"${sources.DATA_DIR_ENV}/{HORSE2ZEBRA_FOLDER} (trainA/, trainB/, testA/, testB/), "
                "pass a folder root or two folders, or use the embedded 'chelsea2coffee'.") from None
        parts.append(list(images))
    return tuple(parts)


def load_unpaired(source, split="train", data_dir=None):
    """Images of two domains, `(images_a, images_b)`: lists of uint8 RGB arrays.

    Args:
        source: str or (str, str). See the module docstring.
        split: str. `"train"` or `"test"`.
        data_dir: str. Defaults to `$KERASGEN_DATA_DIR` (for "horse2zebra").
    """
    _check_split(split)
    folders = _two_folders(source)
    if folders is None:
        catalog.resolve(source, "unpaired")
    if folders is not None:
        images = _folder_images(folders[0]), _folder_images(folders[1])
    elif source in EMBEDDED_UNPAIRED:
        images = EMBEDDED_UNPAIRED[source](split)
    elif source.startswith(TFDS_PREFIX):
        images = _tfds_unpaired(source[len(TFDS_PREFIX):], split, data_dir)
    elif source == HORSE2ZEBRA:
        local = None
        if data_dir or os.environ.get(sources.DATA_DIR_ENV):
            local = sources.resolve_data_dir(data_dir) / HORSE2ZEBRA_FOLDER
        if local is not None and local.is_dir():
            images = _unpaired_root(local, split)
        else:
            images = _tfds_unpaired(f"cycle_gan/{HORSE2ZEBRA}", split)
    elif Path(source).is_dir():
        images = _unpaired_root(source, split)
    else:
        raise DataError(
            f"Unknown unpaired data {source!r}. Valid: {sorted(EMBEDDED_UNPAIRED)} (embedded), "
            f"'{HORSE2ZEBRA}', 'tfds:cycle_gan/<name>', a folder with trainA/ trainB/ testA/ "
            "testB/, or two folders 'dirA,dirB'.")
    return images


def _split_side_by_side(path):
    image = decode_image_file(path, channels=3)
    if image.shape[1] % 2:
        raise DataError(
            f"{path}: {image.shape[1]} pixels wide; side-by-side AB images hold the input and "
            "the target as two halves of equal width. Pass two folders 'dirA,dirB' for "
            "separate files.")
    half = image.shape[1] // 2
    return image[:, :half], image[:, half:]


def _paired_folders(folder_a, folder_b):
    pairs = sources.matched_files(folder_a, folder_b)
    return ([decode_image_file(path_a, channels=3) for path_a, _ in pairs],
            [decode_image_file(path_b, channels=3) for _, path_b in pairs],
            [path_a for path_a, _ in pairs])


def load_paired(source, split="train", data_dir=None):
    """Aligned `(inputs, targets)`: lists of uint8 RGB arrays, pair by pair the same size.

    Args:
        source: str or (str, str). See the module docstring.
        split: str. `"train"` or `"test"`.
        data_dir: str. Unused by the built-in sources; accepted for symmetry.
    """
    del data_dir
    _check_split(split)
    folders = _two_folders(source)
    if folders is None:
        catalog.resolve(source, "paired")
    if folders is not None:
        inputs, targets, names = _paired_folders(*folders)
    elif source in EMBEDDED_PAIRED:
        return EMBEDDED_PAIRED[source](split)
    elif Path(source).is_dir():
        folder = Path(source)
        candidates = ("train",) if split == "train" else ("test", "val")
        folder = next((folder / name for name in candidates if (folder / name).is_dir()), folder)
        names = list_image_files(folder)
        inputs, targets = zip(*(_split_side_by_side(path) for path in names))
    else:
        raise DataError(
            f"Unknown paired data {source!r}. Valid: {sorted(EMBEDDED_PAIRED)} (embedded), a "
            "folder of side-by-side AB images (with train/ and test/ or val/ inside, or flat), "
            "or two folders 'dirA,dirB' whose files match by name.")
    for name, image_in, image_out in zip(names, inputs, targets):
        if image_in.shape != image_out.shape:
            raise DataError(
                f"{name}: input {image_in.shape[:2]} and target {image_out.shape[:2]} differ in "
                "size; a pair must be aligned pixel for pixel.")
    return list(inputs), list(targets)


def _resized_stack(images, size, description):
    if not images:
        raise DataError(f"{description} holds no images.")
    return np.stack([image if image.shape[:2] == (size, size) else resize_uint8(image, (size, size))
                     for image in images])


def jitter_dataset(images_a, images_b, image_size, batch_size, seed=0, paired=False,
                   jitter=True, start_batch=0):
    """An endless batched `tf.data.Dataset` of `(a, b)` float32 images in [-1, 1].

    Every element draws an image of each domain (the same index when `paired`), resized to
    286/256 of `image_size`, a random `image_size` crop and a random horizontal flip, shared by
    the two images of a pair. Without `jitter`, images are resized to `image_size` only.

    Args:
        images_a, images_b: lists of uint8 RGB arrays (any sizes).
        image_size: int. Side of the training crops.
        batch_size: int.
        seed: int. Defaults to 0.
        paired: bool. Draw aligned pairs (pix2pix). Defaults to False.
        start_batch: int. Start the stream at this batch (a resumed run). Defaults to 0.
        jitter: bool. Defaults to True.
    """
    import tensorflow as tf

    from kerasgen.data import to_float

    if paired and len(images_a) != len(images_b):
        raise DataError(f"{len(images_a)} inputs but {len(images_b)} targets; pairs must match.")
    load_size = int(round(image_size * LOAD_RATIO)) if jitter else image_size
    stacks = [tf.constant(_resized_stack(images, load_size, f"Domain {name}"))
              for name, images in (("A", images_a), ("B", images_b))]
    counts = [len(images_a), len(images_b)]

    def make_pair(index):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([seed, tf.cast(index, tf.int32)]), 5)
        choice_a = tf.random.stateless_uniform([], seeds[0], 0, counts[0], tf.int32)
        choice_b = choice_a if paired else tf.random.stateless_uniform(
            [], seeds[1], 0, counts[1], tf.int32)

        def crop(image, crop_seeds):
            top = tf.random.stateless_uniform([], crop_seeds[0], 0, load_size - image_size + 1,
                                              tf.int32)
            left = tf.random.stateless_uniform([], crop_seeds[1], 0,
                                               load_size - image_size + 1, tf.int32)
            image = image[top:top + image_size, left:left + image_size]
            flip = tf.random.stateless_uniform([], crop_seeds[2]) < 0.5
            image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
            return to_float(tf.ensure_shape(image, [image_size, image_size, 3]))

        # Pairs share their crop and flip; unpaired domains draw their own.
        seeds_b = seeds[2:] if paired else tf.random.experimental.stateless_split(seeds[4], 3)
        return crop(stacks[0][choice_a], seeds[2:]), crop(stacks[1][choice_b], seeds_b)

    dataset = tf.data.Dataset.counter(start_batch * batch_size).map(
        make_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def resized_arrays(images, image_size, description="The images"):
    """Images resized to `image_size` x `image_size` (no jitter), as one uint8 array."""
    return _resized_stack(images, image_size, description)

