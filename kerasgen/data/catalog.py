"""One namespace of dataset names for every family, and the one resolver over it.

Every name means one thing whatever the model: a *kind* of data and where it comes from. A task
asks for the kind it trains on (`resolve(name, kind)`) and is refused, with the valid names of
that kind, when the name is data of another kind.

Kinds:
    "images"    same-size images (and labels, where the source has them): generation and
                classification. Folders and image sets qualify when resized (`image_size`).
    "image_set" images of any size, cut into patches or evaluated whole: restoration.
    "unpaired"  two domains of images: CycleGAN.
    "paired"    aligned (input, target) images: pix2pix.

Besides the names below: `tfds:<name>` (tensorflow-datasets, online; "images", or "unpaired"
for `tfds:cycle_gan/<name>`), a folder (any kind: its files, a trainA/trainB/testA/testB root,
or side-by-side AB pairs), and `dirA,dirB` (two folders: "unpaired" or "paired" by file name).
"""

import dataclasses
from pathlib import Path

from kerasgen.data.sources import DataError

KINDS = ("images", "image_set", "unpaired", "paired")
TFDS_PREFIX = "tfds:"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A named dataset: its kind (see `KINDS`) and a one-line description."""

    kind: str
    description: str
    offline: bool = True


DATASETS = {
    # "images": equal-size arrays, with labels where the source has them.
    "digits": Entry("images", "scikit-learn's 1,797 8x8 handwritten digits, labelled"),
    "faces": Entry("images", "scikit-image's 100 lfw_subset face crops (25x25 grey)"),
    "photo_crops": Entry("images", "64x64 random crops of scikit-image's bundled photographs"),
    "mnist": Entry("images", "MNIST IDX files in $KERASGEN_DATA_DIR/mnist, labelled"),
    "fashion_mnist": Entry("images", "Fashion-MNIST IDX files in $KERASGEN_DATA_DIR/"
                                     "fashion_mnist, labelled"),
    # "image_set": whole images of any size.
    "photos": Entry("image_set", "scikit-image's bundled colour photographs, whole"),
    "train400": Entry("image_set", "Train400 (grey, 180x180), $KERASGEN_DATA_DIR/train/Train400"),
    "t91": Entry("image_set", "T91 (colour), $KERASGEN_DATA_DIR/train/T91"),
    "BSD68": Entry("image_set", "BSD68 grey denoising benchmark"),
    "Set12": Entry("image_set", "Set12 grey denoising benchmark"),
    "CBSD68": Entry("image_set", "CBSD68 colour denoising benchmark"),
    "Set5": Entry("image_set", "Set5 super-resolution benchmark (HR + MATLAB bicubic LR)"),
    "Set14": Entry("image_set", "Set14 super-resolution benchmark (HR + MATLAB bicubic LR)"),
    # Two domains or pairs.
    "chelsea2coffee": Entry("unpaired", "crops of scikit-image's cat photo vs its coffee photo"),
    "horse2zebra": Entry("unpaired", "$KERASGEN_DATA_DIR/cyclegan/horse2zebra, else tfds "
                                     "(online)"),
    "grey2color": Entry("paired", "grey renderings -> colour crops of the bundled photographs"),
}


def is_path(name):
    """Whether `name` names a folder (or two) rather than a dataset."""
    name = str(name)
    return "/" in name or name.startswith(".") or Path(name).is_dir()


def names_of(kind):
    """The dataset names of one kind, sorted."""
    return sorted(name for name, entry in DATASETS.items() if entry.kind == kind)


def resolve(name, kind):
    """The kind of `name` checked against the `kind` a model trains on.

    Returns:
        `"named"` for a name in `DATASETS`, `"tfds"`, `"folder"` or `"folders"` (`dirA,dirB`),
        so that the loader of `kind` knows where to read.

    Raises:
        DataError naming the valid names of `kind` when `name` is unknown or of another kind.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown data kind {kind!r}; valid: {list(KINDS)}.")
    name = str(name)
    valid = (f"valid {kind} names: {', '.join(names_of(kind))}, 'tfds:<name>' "
             "(tensorflow-datasets, online), or a folder")
    if name in DATASETS:
        entry = DATASETS[name]
        if entry.kind != kind and not (kind == "images" and entry.kind == "image_set"):
            raise DataError(f"Dataset {name!r} is {entry.kind} data ({entry.description}); "
                            f"this model trains on {kind} data: {valid}.")
        return "named"
    if name.startswith(TFDS_PREFIX):
        return "tfds"
    if "," in name and kind in ("unpaired", "paired"):
        return "folders"
    if is_path(name):
        return "folder"
    raise DataError(f"Unknown dataset {name!r}; {valid}.")
