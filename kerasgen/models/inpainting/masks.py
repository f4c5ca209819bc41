"""Hole masks as seeded TensorFlow ops: free-form strokes, random rectangles, a centre box.

Masks are float32 `[N, H, W, 1]` with 1 where pixels are missing (the holes) and 0 where they
are known; files and the serving signature use uint8 with white (255) = hole.

Free-form strokes follow Yu et al. 2019 (DeepFill v2, arXiv:1806.03589, Algorithm 1): each
stroke starts at a random point and zigzags through a few vertices (random length, a random
angle that flips to 2 pi - angle on every other vertex), drawn with a round brush of a random
width. The hole ratio is controlled the way the partial-convolution paper's evaluation buckets
it (Liu et al. 2018, arXiv:1804.07723: 10-20 %, ..., 40-50 %): strokes (or rectangles) are
drawn one segment at a time and the mask is the shortest prefix whose hole ratio reaches a
target drawn uniformly inside the bucket. One segment covers under 2 % of the image, so the
ratio lands inside the bucket.

Every mask is a function of a stateless seed (a pair of integers), so a test set of masks is
identical across runs and methods (`mask_set`), and training masks come from the trainer's
resumable `SeedGenerator`.
"""

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasgen.layers.degradations import Degradation

KINDS = ("freeform", "box", "center")  # box: random rectangles
# The partial-convolution paper's buckets of hole ratio (fraction of the image missing).
BUCKETS = ((0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5))
TRAINING_RATIOS = (0.05, 0.5)
SEGMENTS = 256  # segments drawn per mask, enough to reach a 50 % hole
VERTICES_PER_STROKE = 8
BRUSH_WIDTH = (0.04, 0.09)  # of the geometric mean side, sqrt(H * W)
SEGMENT_LENGTH = (0.05, 0.18)
MAX_ANGLE = 2 * math.pi / 5
RECTANGLE_SIDE = (0.05, 0.14)
# Every segment or rectangle covers under 2.3 % of the image (0.09 x 0.18 plus the round
# caps; 0.14 squared): targets stay this far below a bucket's top.
MAX_STEP = 0.025


def parse_ratio(text):
    """`"0.3-0.4"` (or a `(low, high)` pair) -> `(0.3, 0.4)`, checked: 0 <= low < high <= 0.9."""
    if isinstance(text, str):
        try:
            low, high = (float(part) for part in text.split("-"))
        except ValueError:
            raise ValueError(f"A hole ratio is written LOW-HIGH, e.g. 0.3-0.4; got {text!r}.") \
                from None
    else:
        low, high = (float(value) for value in text)
    if not 0.0 <= low < high <= 0.9:
        raise ValueError(f"A hole ratio range needs 0 <= low < high <= 0.9, got {low}-{high} "
                         "(the buckets: 0.1-0.2, 0.2-0.3, 0.3-0.4, 0.4-0.5).")
    return low, high


def _uniform(seed, index, shape, low, high):
    return tf.random.stateless_uniform(shape, tf.random.experimental.stateless_fold_in(
        seed, index), low, high)


def _segment_count(height, width, scale):
    """Segments to draw: `SEGMENTS` for holes sized to the image; for a `scale` larger than
    the image, proportionally fewer (each covers more of it), in whole strokes."""
    if not scale:
        return SEGMENTS
    wanted = math.ceil(SEGMENTS * height * width / float(scale) ** 2)
    strokes = math.ceil(min(max(wanted, 4 * VERTICES_PER_STROKE), SEGMENTS)
                        / VERTICES_PER_STROKE)
    return strokes * VERTICES_PER_STROKE


def _segments(kind, seed, count, height, width, scale=None):
    """`[count, SEGMENTS, 5]` shapes: (y0, x0, y1, x1, width) of stroke segments, or (top,
    left, bottom, right, 0) of rectangles, in pixels, sized relative to `scale` pixels."""
    # Strokes scale with the area whatever the aspect, or with a fixed side (training crops).
    short = float(scale) if scale else math.sqrt(height * width)
    size = tf.constant([height, width], tf.float32)
    num_segments = _segment_count(height, width, scale)
    if kind == "box":
        centres = _uniform(seed, 0, [count, num_segments, 2], 0.0, 1.0) * size
        halves = _uniform(seed, 1, [count, num_segments, 2], *RECTANGLE_SIDE) * short / 2
        return tf.concat([centres - halves, centres + halves,
                          tf.zeros([count, num_segments, 1])], axis=-1)
    strokes = num_segments // VERTICES_PER_STROKE
    starts = _uniform(seed, 2, [count, strokes, 1, 2], 0.0, 1.0) * size
    angles = _uniform(seed, 3, [count, strokes, VERTICES_PER_STROKE], 0.0, MAX_ANGLE)
    base = _uniform(seed, 4, [count, strokes, 1], 0.0, 2 * math.pi)
    flip = tf.cast(tf.range(VERTICES_PER_STROKE) % 2 == 0, tf.float32)
    angles = base + flip * (2 * math.pi - angles) + (1 - flip) * angles
    lengths = _uniform(seed, 5, [count, strokes, VERTICES_PER_STROKE], *SEGMENT_LENGTH) * short
    steps = tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1) * lengths[..., None]
    vertices = tf.concat([starts, starts + tf.cumsum(steps, axis=2)], axis=2)
    vertices = tf.clip_by_value(vertices, 0.0, size - 1)
    widths = _uniform(seed, 6, [count, strokes, 1], *BRUSH_WIDTH) * short
    segments = tf.concat([vertices[:, :, :-1], vertices[:, :, 1:],
                          tf.repeat(widths, VERTICES_PER_STROKE, axis=2)[..., None]], axis=-1)
    return tf.reshape(segments, [count, strokes * VERTICES_PER_STROKE, 5])


def _coverage(kind, segments, height, width):
    """`[count, SEGMENTS, H, W]` bool: the pixels each segment (or rectangle) covers."""
    ys = tf.range(height, dtype=tf.float32)[:, None] + 0.5
    xs = tf.range(width, dtype=tf.float32)[None, :] + 0.5
    part = [segments[..., index][..., None, None] for index in range(5)]
    if kind == "box":
        top, left, bottom, right, _ = part
        return (ys >= top) & (ys < bottom) & (xs >= left) & (xs < right)
    y0, x0, y1, x1, brush = part
    dy, dx = y1 - y0, x1 - x0
    # Distance from each pixel centre to the segment (round caps: the brush's circles).
    along = tf.clip_by_value(((ys - y0) * dy + (xs - x0) * dx)
                             / tf.maximum(dy * dy + dx * dx, 1e-6), 0.0, 1.0)
    distance = tf.square(ys - y0 - along * dy) + tf.square(xs - x0 - along * dx)
    return distance <= tf.square(brush / 2)


def draw_masks(seed, count, height, width, kind="freeform", ratio=TRAINING_RATIOS,
               scale=None):
    """`count` float32 masks `[count, H, W, 1]` (1 = hole) from a stateless `seed` (a pair
    of int32), with hole ratios uniform in `ratio` (low, high).

    `scale`: the side (pixels) that brush widths, stroke lengths and rectangles are relative
    to. Defaults to the image's own, sqrt(H * W), which keeps ratios inside `ratio`. Training
    crops of large photos set the photos' scale, so that a 128-pixel crop sees the holes a
    400-pixel image gets; one stroke may then overshoot `ratio`'s top.
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown mask kind {kind!r}; valid: {', '.join(KINDS)}.")
    low, high = parse_ratio(ratio)
    seed = tf.cast(seed, tf.int32)
    # Inside the range, less one segment's worth, so the prefix that reaches it stays below.
    targets = _uniform(seed, 7, [count], low, max(low, high - MAX_STEP))
    if kind == "center":
        # A centred box of (almost exactly) the target's pixel count, the image's aspect.
        box_height = tf.maximum(tf.round(tf.sqrt(targets) * height), 1.0)
        box_width = tf.round(targets * height * width / box_height)
        top, left = (height - box_height) // 2, (width - box_width) // 2
        ys = tf.range(height, dtype=tf.float32)[None, :, None]
        xs = tf.range(width, dtype=tf.float32)[None, None, :]
        holes = ((ys >= top[:, None, None]) & (ys < (top + box_height)[:, None, None])
                 & (xs >= left[:, None, None]) & (xs < (left + box_width)[:, None, None]))
        return tf.cast(holes, tf.float32)[..., None]
    covered = _coverage(kind, _segments(kind, seed, count, height, width, scale), height,
                        width)
    # Union of the first k segments for every k; the mask is the first whose ratio reaches
    # the image's target.
    prefixes = tf.cumsum(tf.cast(covered, tf.float32), axis=1) > 0
    ratios = tf.reduce_mean(tf.cast(prefixes, tf.float32), axis=[2, 3])
    first = tf.argmax(tf.cast(ratios >= targets[:, None], tf.int32), axis=1)
    first = tf.where(tf.reduce_any(ratios >= targets[:, None], axis=1), first,
                     tf.cast(tf.shape(prefixes)[1] - 1, first.dtype))
    chosen = tf.gather(prefixes, first, axis=1, batch_dims=1)
    return tf.cast(chosen, tf.float32)[..., None]


def mask_set(sizes, kind="freeform", ratio=(0.3, 0.4), seed=2018, first_index=0):
    """The fixed test masks of a bucket, one per `(height, width)` in `sizes`: mask `i`
    depends on (seed, kind, bucket, `first_index + i`) only, so every method and every run
    scores the same holes. A list of uint8 `[H, W, 1]` arrays, 255 = hole."""
    low, high = parse_ratio(ratio)
    return [np.asarray(draw_masks([seed, (first_index + index) * 1000 + int(round(low * 100))],
                                  1, int(height), int(width), kind, (low, high))[0]
                       ).astype(np.uint8) * 255
            for index, (height, width) in enumerate(sizes)]


def hole_ratio(masks):
    """The fraction of each mask that is hole, `[N]` (float masks, 1 = hole)."""
    return tf.reduce_mean(tf.cast(masks, tf.float32), axis=[1, 2, 3])


@keras.saving.register_keras_serializable(package="kerasgen")
class HoleMask(Degradation):
    """Cuts holes into clean images: the inpainting degradation.

    `degrade` returns the images with holes set to 0 and, as the condition, the masks
    (float `[N, H, W, 1]`, 1 = hole), drawn for the global batch and sliced per replica.

    Args:
        kind: str. `"freeform"` (Yu et al. 2019 strokes), `"box"` (random rectangles) or `"center"`.
            Defaults to "freeform".
        ratio: (float, float). Hole ratios are drawn uniformly in this range. Defaults to
            (0.05, 0.5).
        stroke_scale: float. The image side (pixels) stroke sizes are relative to (see
            `draw_masks`); set it to the size of the images to inpaint when training on crops
            of them. Defaults to None (each crop's own size).
    """

    def __init__(self, kind: str = "freeform", ratio=TRAINING_RATIOS, stroke_scale=None,
                 **kwargs):
        kwargs.setdefault("name", "hole_mask")
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"Unknown mask kind {kind!r}; valid: {', '.join(KINDS)}.")
        self.kind = kind
        self.ratio = parse_ratio(ratio)
        if stroke_scale is not None and float(stroke_scale) <= 0:
            raise ValueError(f"stroke_scale must be a positive number of pixels, got "
                             f"{stroke_scale}.")
        self.stroke_scale = None if stroke_scale is None else float(stroke_scale)

    def degrade(self, clean, batch, seed):
        # 1. One stateless seed per step from the trainer's resumable stream.
        step_seed = keras.random.randint((2,), 0, 2 ** 31 - 1, seed=seed, dtype="int32")
        height, width = clean.shape[1], clean.shape[2]
        masks = batch.slice(draw_masks(step_seed, batch.global_batch_size, height, width,
                                       self.kind, self.ratio, self.stroke_scale))
        return clean * (1.0 - masks), masks

    def check_options(self, conditioned, scale=None, **options):
        super().check_options(conditioned, scale=scale, **options)
        return None

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "ratio": list(self.ratio),
                "stroke_scale": self.stroke_scale}


def load_mask_folder(folder, mask_size):
    """The masks of a folder (8-bit greyscale images, white = hole), each checked (binary, not
    empty, not full) and resized (nearest) to `mask_size` square: float32 `[M, S, S, 1]`."""
    from kerasgen.data import restoration as data
    from kerasgen.data.sources import list_image_files
    from kerasgen.models.inpainting.trainer import check_masks

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"mask_folder {folder}: no such folder of mask images.")
    masks = []
    for path in list_image_files(folder):  # refuses a folder without images
        try:
            image = data.read_image(path)
            holes = check_masks(image, np.zeros((1, *image.shape[:2], 1), np.uint8))
        except ValueError as error:
            raise ValueError(f"Mask {path}: {error}") from None
        masks.append(tf.image.resize(holes, [mask_size, mask_size], "nearest")[0])
    return tf.stack(masks)


@keras.saving.register_keras_serializable(package="kerasgen")
class FolderMasks(Degradation):
    """Cuts the user's own holes: each training image gets a mask drawn from a folder, flipped,
    transposed (one of the eight symmetries) and resized (nearest) to the crop.

    The folder is read on the first training step (`load`; builders call it at once, so a
    bad folder is refused before a run starts): a reloaded model applies and exports without
    it, and a resumed run reads it again.

    Args:
        folder: str. 8-bit greyscale images, white (255) = hole, black = known, any sizes.
        mask_size: int. Masks are kept at this square side. Defaults to 256.
    """

    def __init__(self, folder, mask_size: int = 256, **kwargs):
        kwargs.setdefault("name", "folder_masks")
        super().__init__(**kwargs)
        if int(mask_size) < 1:
            raise ValueError(f"mask_size must be positive, got {mask_size}.")
        self.folder = str(folder)
        self.mask_size = int(mask_size)
        self._folder_masks = None

    def load(self):
        """The folder's masks, float32 numpy `[M, S, S, 1]`, read and checked once."""
        if self._folder_masks is None:
            with tf.init_scope():  # eagerly, also when first called while tracing a step
                self._folder_masks = load_mask_folder(self.folder, self.mask_size).numpy()
        return self._folder_masks

    def degrade(self, clean, batch, seed):
        # 1. One stateless seed per step from the trainer's resumable stream; per image a mask
        # and a symmetry, drawn for the global batch.
        step_seed = keras.random.randint((2,), 0, 2 ** 31 - 1, seed=seed, dtype="int32")
        count = batch.global_batch_size
        folder_masks = self.load()
        index = tf.random.stateless_uniform([count], step_seed, 0, len(folder_masks),
                                            dtype=tf.int32)
        flips = tf.random.stateless_uniform(
            [count, 3, 1, 1, 1], tf.random.experimental.stateless_fold_in(step_seed, 1), 0, 2,
            dtype=tf.int32) > 0
        masks = tf.gather(tf.constant(folder_masks), index)
        masks = tf.where(flips[:, 0], masks[:, :, ::-1], masks)
        masks = tf.where(flips[:, 1], masks[:, ::-1], masks)
        masks = tf.where(flips[:, 2], tf.transpose(masks, [0, 2, 1, 3]), masks)
        # 2. To the crop's size, and this replica's rows.
        masks = batch.slice(tf.image.resize(masks, tf.shape(clean)[1:3], "nearest"))
        return clean * (1.0 - masks), masks

    def check_options(self, conditioned, scale=None, **options):
        super().check_options(conditioned, scale=scale, **options)
        return None

    def get_config(self):
        return {**super().get_config(), "folder": self.folder, "mask_size": self.mask_size}
