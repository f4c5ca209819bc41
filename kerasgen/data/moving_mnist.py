"""Moving MNIST, generated from MNIST digits by the standard procedure, not downloaded.

Srivastava, Mansimov & Salakhutdinov 2015 (https://arxiv.org/abs/1502.04681), as in their
released generator: each of `num_digits` digits starts at a uniform position of the free
canvas with a uniform direction, moves `step_length` of the free canvas per frame, and bounces
off the edges (the position is clamped and that velocity component reversed); the frame is the
pixelwise maximum of the placed digits. Two 28x28 digits on 64x64 frames, 20 frames, step 0.1
(3.6 pixels a frame) are the paper's settings and the defaults.

The published test file (10,000 sequences) is one draw of this process; sequences made here
are another draw (fixed by the seed), so figures on them are comparable in kind, not equal.

Example:
    >>> sequences = load_moving_mnist("test", num_sequences=1000, seed=0)
    >>> sequences.shape                     # uint8 [1000, 20, 64, 64, 1]
"""

import numpy as np


def trajectories(num_sequences, num_frames, num_digits, step_length, rng):
    """Top-left corners in units of the free canvas, float `[N, digits, T, 2]` (y, x) in
    [0, 1], of digits bouncing inside it."""
    position = rng.random((num_sequences, num_digits, 2))
    angle = rng.random((num_sequences, num_digits)) * 2.0 * np.pi
    velocity = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    path = np.empty((num_sequences, num_digits, num_frames, 2))
    for frame in range(num_frames):
        position = position + velocity * step_length
        # Bounce: clamp to the edge and reverse the component that crossed it.
        crossed = (position <= 0.0) | (position >= 1.0)
        velocity = np.where(crossed, -velocity, velocity)
        position = np.clip(position, 0.0, 1.0)
        path[:, :, frame] = position
    return path


def moving_mnist(digits, num_sequences, num_frames=20, size=64, num_digits=2, step_length=0.1,
                 seed=0):
    """Sequences of digits bouncing in a frame.

    Args:
        digits: uint8 `[M, h, w]` or `[M, h, w, 1]` digit images to draw from (uniformly).
        num_sequences: int. N.
        num_frames: int. T. Defaults to 20.
        size: int. Frame height and width. Defaults to 64.
        num_digits: int. Digits per sequence. Defaults to 2.
        step_length: float. Movement per frame as a share of the free canvas (size - digit).
            Defaults to 0.1.
        seed: int. The sequences are a function of the seed (and the digit images) alone.

    Returns:
        uint8 `[N, T, size, size, 1]`.
    """
    digits = np.asarray(digits)
    if digits.ndim == 4 and digits.shape[-1] == 1:
        digits = digits[..., 0]
    if digits.ndim != 3 or digits.dtype != np.uint8 or len(digits) == 0:
        raise ValueError(f"digits must be uint8 [M, h, w] images (M >= 1), got {digits.dtype} "
                         f"of shape {list(digits.shape)}.")
    height, width = digits.shape[1:]
    for name, value, least in (("num_sequences", num_sequences, 0), ("num_frames", num_frames, 1),
                               ("num_digits", num_digits, 1), ("size", size, max(height, width))):
        if int(value) < least:
            raise ValueError(f"{name} must be at least {least}, got {value}.")
    if not step_length > 0:
        raise ValueError(f"step_length must be positive, got {step_length}.")
    rng = np.random.default_rng(seed)
    path = trajectories(num_sequences, num_frames, num_digits, step_length, rng)
    corners = np.floor(path * (np.array([size - height, size - width]))).astype(int)
    chosen = rng.integers(0, len(digits), (num_sequences, num_digits))
    frames = np.zeros((num_sequences, num_frames, size, size), np.uint8)
    for sequence in range(num_sequences):
        for digit in range(num_digits):
            image = digits[chosen[sequence, digit]]
            for frame in range(num_frames):
                top, left = corners[sequence, digit, frame]
                window = frames[sequence, frame, top:top + height, left:left + width]
                np.maximum(window, image, out=window)
    return frames[..., None]


def load_moving_mnist(split="test", num_sequences=10_000, data_dir=None, seed=None,
                      dataset="mnist", **options):
    """Moving MNIST from the MNIST digits of `split` (train digits for training sequences,
    test digits for test sequences, so no test digit is seen in training).

    Args:
        split: str. `"train"` or `"test"`.
        num_sequences: int. Defaults to 10,000 (the size of the published test set).
        data_dir: str. Holds `mnist/` (see `kerasgen.data.load_arrays`).
        seed: int. Defaults to 0 for test and 1 for train, so the two never share a draw.
        dataset: str. Where the digits come from: any grey `kerasgen.data.load_arrays` name
            (`"fashion_mnist"`, the embedded 8x8 `"digits"`). Defaults to `"mnist"`.
        **options: `moving_mnist`'s (`num_frames`, `size`, `num_digits`, `step_length`).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    seed = {"test": 0, "train": 1}[split] if seed is None else seed
    return moving_mnist(load_digits(dataset, split, data_dir), num_sequences, seed=seed,
                        **options)


def load_digits(dataset="mnist", split="train", data_dir=None):
    """uint8 `[M, h, w]` grey images to move: a `kerasgen.data.load_arrays` dataset's."""
    from kerasgen.data import load_arrays

    images, _ = load_arrays(dataset, split, data_dir)
    if images.shape[-1] != 1:
        raise ValueError(f"Moving digits are grey; {dataset!r} has {images.shape[-1]} "
                         "channels. Use 'mnist', 'fashion_mnist' or 'digits'.")
    return images[..., 0]


def moving_mnist_batches(digits, batch_size, num_frames=20, size=64, seed=0, start_batch=0,
                         **options):
    """An endless `tf.data.Dataset` of uint8 `[batch_size, num_frames, size, size, 1]` batches
    of fresh sequences (the paper generates its training sequences on the fly): batch b is
    `moving_mnist(digits, ..., seed=(seed, b))`, a function of the seed and its index alone,
    so a resumed run gets exactly the batches it would have had. `options`: `moving_mnist`'s.
    """
    import tensorflow as tf

    digits = np.asarray(digits)
    moving_mnist(digits, 0, num_frames, size, **options)  # refuse bad settings now, not in fit

    def make(index):
        return moving_mnist(digits, batch_size, num_frames, size, seed=(int(seed), int(index)),
                            **options)

    shape = (batch_size, num_frames, size, size, 1)
    batches = tf.data.Dataset.counter(start_batch, dtype=tf.int64).map(
        lambda index: tf.ensure_shape(tf.numpy_function(make, [index], tf.uint8), shape))
    return batches.prefetch(2)
