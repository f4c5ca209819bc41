"""The supervised low-light network: a small U-Net in the style of SID's (Chen et al. 2018,
"Learning to See in the Dark", arXiv:1805.01934), on RGB images in [0, 1].

Per level two 3x3 convolutions with LeakyReLU(0.2) and a 2x2 max-pool; on the way up a
sub-pixel up-sampling (a 3x3 convolution to 4x the channels and a pixel shuffle, as ESPCN's,
which TFLite runs with builtin ops at any size) and the skip concatenated; a 1x1 head to RGB
added to the input (global residual; zero-initialised, so training starts at the identity).
"""

import keras
from keras import layers

from kerasgen.layers import PixelShuffle


def unet_receptive_field(depth):
    """Receptive field (pixels) of `build_lowlight_unet(depth=depth)`: two 3x3 convolutions
    per level and a 2x2 pool down, a 3x3 up-sampling convolution and two 3x3 convolutions up."""
    field, jump = 1, 1
    for _ in range(depth):
        field += 4 * jump + jump  # two convolutions, then the pool
        jump *= 2
    field += 4 * jump  # the bottom's two convolutions
    for _ in range(depth):
        field += 2 * jump  # the up-sampling convolution, before the shuffle
        jump //= 2
        field += 4 * jump
    return field


def build_lowlight_unet(num_filters: int = 16, depth: int = 3, seed=None,
                        name="lowlight_unet"):
    """The U-Net above: `num_filters * 2**level` filters at each level, `depth` pools.

    Args:
        num_filters: int. Filters at full resolution (SID: 32). Defaults to 16.
        depth: int. Number of 2x down-samplings; inputs are padded to a multiple of
            `2**depth`. Defaults to 3.
        seed: int. Weight initialisation seed (each layer its own).

    Returns:
        A functional `keras.Model`: dark RGB `[N, H, W, 3]` in [0, 1], H and W multiples of
        `2**depth` -> enhanced RGB (unclamped).
    """
    if int(num_filters) < 1 or int(depth) < 1:
        raise ValueError(f"num_filters and depth must be positive, got {num_filters}, {depth}.")
    counter = iter(range(1000))

    def conv(x, filters, label, size=3, initializer=None):
        index = next(counter)
        initializer = initializer or keras.initializers.HeNormal(
            None if seed is None else seed * 1000 + index)
        return layers.Conv2D(filters, size, padding="same", kernel_initializer=initializer,
                             name=label)(x)

    def block(x, filters, label):
        for part in (1, 2):
            x = layers.LeakyReLU(0.2, name=f"{label}_act{part}")(
                conv(x, filters, f"{label}_conv{part}"))
        return x

    images = keras.Input((None, None, 3), name="images")
    skips, x = [], images
    for level in range(depth):
        x = block(x, num_filters * 2 ** level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = block(x, num_filters * 2 ** depth, "bottom")
    for level in reversed(range(depth)):
        filters = num_filters * 2 ** level
        x = PixelShuffle(2, name=f"shuffle{level}")(conv(x, 4 * filters, f"upsample{level}"))
        x = block(layers.Concatenate(name=f"skip{level}")([skips[level], x]), filters,
                  f"up{level}")
    residual = conv(x, 3, "head", size=1, initializer="zeros")
    return keras.Model(images, layers.Add(name="global_residual")([images, residual]), name=name)
