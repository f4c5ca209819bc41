"""Restoration networks: DnCNN and FFDNet denoisers, ESPCN / FSRCNN / EDSR super-resolution.

Functional `keras.Model`s from degraded float images in [0, 1] of any height and width to
restored ones (FFDNet also takes the noise level).

References: DnCNN https://arxiv.org/abs/1608.03981, FFDNet https://arxiv.org/abs/1710.04026,
ESPCN https://arxiv.org/abs/1609.05158, FSRCNN https://arxiv.org/abs/1608.00367,
EDSR https://arxiv.org/abs/1707.02921.
"""

import dataclasses
from typing import Callable

import keras
from keras import layers

from kerasgen.layers import NoiseLevelMap, PixelShuffle, PixelUnshuffle
from kerasgen.layers.degradations import BicubicDownscale, GaussianNoise


def _he(seed, index):
    return keras.initializers.HeNormal(None if seed is None else seed + index)


# --- networks --------------------------------------------------------------------------------

def build_dncnn(channels=1, depth=17, num_filters=64, seed=None, name="dncnn"):
    """DnCNN: conv-ReLU, (depth - 2) x conv-BN-ReLU, conv; predicts the noise (residual).

    Output = input - predicted noise (residual learning, section III-B of the paper).
    """
    noisy = keras.Input((None, None, channels), name="images")
    x = layers.Conv2D(num_filters, 3, padding="same", activation="relu",
                      kernel_initializer=_he(seed, 0), name="conv0")(noisy)
    for index in range(1, depth - 1):
        x = layers.Conv2D(num_filters, 3, padding="same", use_bias=False,
                          kernel_initializer=_he(seed, index), name=f"conv{index}")(x)
        # synchronized: batch statistics over the global batch under tf.distribute.
        x = layers.BatchNormalization(synchronized=True, name=f"bn{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(x)
    # Zero-initialised, so training starts from the identity (output = noisy input) instead
    # of subtracting a large random "noise" estimate.
    noise = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros",
                          name="noise")(x)
    return keras.Model(noisy, layers.Subtract(name="residual")([noisy, noise]), name=name)


def build_ffdnet(channels=1, depth=15, num_filters=64, seed=None, name="ffdnet"):
    """FFDNet: pixel-unshuffle by 2, concatenate a noise-level map, conv body, pixel-shuffle.

    Takes `[images, sigma]` with sigma = noise level / 255 per image, so one network serves a
    range of levels (Zhang et al. 2018, section III-A). Height and width must be even.
    """
    noisy = keras.Input((None, None, channels), name="images")
    sigma = keras.Input((1,), name="sigma")
    x = PixelUnshuffle(2, name="unshuffle")(noisy)
    x = layers.Concatenate(name="with_noise_map")([x, NoiseLevelMap(name="noise_map")(x, sigma)])
    for index in range(depth - 1):
        x = layers.Conv2D(num_filters, 3, padding="same", use_bias=False,
                          kernel_initializer=_he(seed, index), name=f"conv{index}")(x)
        if index:
            x = layers.BatchNormalization(synchronized=True, name=f"bn{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(x)
    x = layers.Conv2D(4 * channels, 3, padding="same", kernel_initializer=_he(seed, depth),
                      name="to_subimages")(x)
    return keras.Model([noisy, sigma], PixelShuffle(2, name="shuffle")(x), name=name)


def build_espcn(scale=3, channels=1, num_filters=(64, 32), seed=None, name="espcn"):
    """ESPCN: two tanh convolutions on the LR image, then a sub-pixel convolution."""
    low = keras.Input((None, None, channels), name="images")
    x = layers.Conv2D(num_filters[0], 5, padding="same", activation="tanh",
                      kernel_initializer=keras.initializers.GlorotUniform(seed), name="conv1")(low)
    x = layers.Conv2D(num_filters[1], 3, padding="same", activation="tanh",
                      kernel_initializer=keras.initializers.GlorotUniform(
                          None if seed is None else seed + 1), name="conv2")(x)
    x = layers.Conv2D(channels * scale**2, 3, padding="same",
                      kernel_initializer=keras.initializers.GlorotUniform(
                          None if seed is None else seed + 2), name="subpixel")(x)
    return keras.Model(low, PixelShuffle(scale, name="shuffle")(x), name=name)


def build_fsrcnn(scale=3, channels=1, d=56, s=12, m=4, seed=None, name="fsrcnn"):
    """FSRCNN(d, s, m): feature extraction, shrinking, m mappings, expanding, deconvolution."""

    def conv(x, filters, size, index, label):
        x = layers.Conv2D(filters, size, padding="same", kernel_initializer=_he(seed, index),
                          name=label)(x)
        return layers.PReLU(shared_axes=[1, 2], name=f"{label}_prelu")(x)

    low = keras.Input((None, None, channels), name="images")
    x = conv(low, d, 5, 0, "extract")
    x = conv(x, s, 1, 1, "shrink")
    for index in range(m):
        x = conv(x, s, 3, 2 + index, f"map{index}")
    x = conv(x, d, 1, 2 + m, "expand")
    # The paper's 9x9 deconvolution, initialised N(0, 0.001) (section 3.2).
    high = layers.Conv2DTranspose(
        channels, 9, strides=scale, padding="same", name="deconv",
        kernel_initializer=keras.initializers.RandomNormal(
            stddev=1e-3, seed=None if seed is None else seed + 3 + m))(x)
    return keras.Model(low, high, name=name)


def build_edsr(scale=3, channels=3, num_blocks=16, num_filters=64, residual_scale=1.0,
               seed=None, name="edsr"):
    """EDSR-baseline: residual blocks without batch norm, global skip, sub-pixel upsampler."""
    counter = iter(range(10_000))

    def conv(x, filters, label, activation=None):
        return layers.Conv2D(filters, 3, padding="same", activation=activation,
                             kernel_initializer=_he(seed, next(counter)), name=label)(x)

    low = keras.Input((None, None, channels), name="images")
    # Centre the data (the paper subtracts the DIV2K mean).
    head = conv(layers.Rescaling(1.0, offset=-0.5, name="centre")(low), num_filters, "head")
    x = head
    for block in range(num_blocks):
        residual = conv(conv(x, num_filters, f"block{block}_conv1", "relu"), num_filters,
                        f"block{block}_conv2")
        if residual_scale != 1.0:
            residual = layers.Rescaling(residual_scale, name=f"block{block}_scale")(residual)
        x = layers.Add(name=f"block{block}_add")([x, residual])
    x = layers.Add(name="global_skip")([head, conv(x, num_filters, "body_end")])
    steps = [2, 2] if scale == 4 else [scale]
    for index, step in enumerate(steps):
        x = PixelShuffle(step, name=f"shuffle{index}")(
            conv(x, num_filters * step**2, f"upsample{index}"))
    out = conv(x, channels, "tail")
    return keras.Model(low, layers.Rescaling(1.0, offset=0.5, name="uncentre")(out), name=name)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A restoration network builder and what the trainer must know about it.

    Args:
        build: callable. The builder; SR builders take `scale`.
        degradation: the `Degradation` class it is trained against.
        receptive_field: callable. `f(**network_kwargs)` -> the receptive field in input
            pixels (the smallest input side).
        size_multiple: int. Inputs are reflect-padded to a multiple of this.
    """

    build: Callable
    degradation: type
    receptive_field: Callable
    size_multiple: int = 1


ARCHITECTURES = {
    "dncnn": Architecture(build_dncnn, GaussianNoise, lambda depth=17, **_: 2 * depth + 1),
    "ffdnet": Architecture(build_ffdnet, GaussianNoise,
                           lambda depth=15, **_: 2 * (2 * depth + 1), 2),
    "espcn": Architecture(build_espcn, BicubicDownscale, lambda **_: 9),
    "fsrcnn": Architecture(build_fsrcnn, BicubicDownscale, lambda m=4, **_: 5 + 2 * m + 4),
    "edsr": Architecture(build_edsr, BicubicDownscale,
                         lambda num_blocks=16, **_: 2 * (2 * num_blocks + 3) + 1),
}
