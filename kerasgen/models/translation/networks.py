"""Translation networks: CycleGAN's ResNet generator, pix2pix's U-Net, 70x70 PatchGANs.

Fully convolutional functional models on images in [-1, 1] of any height and width.

References: CycleGAN https://arxiv.org/abs/1703.10593, pix2pix https://arxiv.org/abs/1611.07004.
"""

import keras
from keras import layers

from kerasgen.layers import InstanceNormalization, ReflectionPadding2D

# Both papers: Adam(2e-4, beta_1=0.5), weights from N(0, 0.02), LeakyReLU 0.2.
LEARNING_RATE = 2e-4
BETA_1 = 0.5
INIT_STDDEV = 0.02
LEAKY_SLOPE = 0.2
DEFAULT_IMAGE_SIZE = 256
CHANNELS = 3
MIN_SIDE = 2  # reflection padding needs two pixels per side


def _init(seed, index):
    return keras.initializers.RandomNormal(stddev=INIT_STDDEV,
                                           seed=None if seed is None else seed + index)


def _image_size(image_shape):
    """The square training crop side from a registry `image_shape` (None: the paper's 256)."""
    if image_shape is None:
        return DEFAULT_IMAGE_SIZE
    height, width = image_shape[:2]
    if height != width:
        raise ValueError(f"Translation trains on square crops; got {height}x{width}.")
    return int(height)


# --- networks --------------------------------------------------------------------------------

def resnet_blocks_for(image_size):
    """CycleGAN section 7.2: 6 residual blocks for 128x128 training images, 9 from 256x256."""
    return 6 if image_size < 256 else 9


def build_resnet_generator(channels=CHANNELS, num_filters=64, num_blocks=9,
                           num_downsamplings=2, seed=None, name="generator"):
    """CycleGAN's generator: c7s1-64, d128, d256, R256 x num_blocks, u128, u64, c7s1-3.

    Reflection padding and instance normalisation throughout (Zhu et al. 2017, section 7.2,
    after Johnson et al. 2016). Images in [-1, 1] of any size that is a multiple of
    `2 ** num_downsamplings`.
    """
    counter = iter(range(10_000))
    images = keras.Input((None, None, channels), name="images")
    x = ReflectionPadding2D(3, name="stem_pad")(images)
    x = layers.Conv2D(num_filters, 7, kernel_initializer=_init(seed, next(counter)),
                      name="stem_conv")(x)
    x = layers.ReLU(name="stem_relu")(InstanceNormalization(name="stem_norm")(x))
    filters = num_filters
    for step in range(num_downsamplings):
        filters *= 2
        x = layers.Conv2D(filters, 3, strides=2, padding="same",
                          kernel_initializer=_init(seed, next(counter)), name=f"down{step}")(x)
        x = layers.ReLU(name=f"down{step}_relu")(InstanceNormalization(name=f"down{step}_norm")(x))
    for block in range(num_blocks):
        residual = x
        for conv in range(2):
            residual = ReflectionPadding2D(1, name=f"block{block}_pad{conv}")(residual)
            residual = layers.Conv2D(filters, 3, kernel_initializer=_init(seed, next(counter)),
                                     name=f"block{block}_conv{conv}")(residual)
            residual = InstanceNormalization(name=f"block{block}_norm{conv}")(residual)
            if conv == 0:
                residual = layers.ReLU(name=f"block{block}_relu")(residual)
        x = layers.Add(name=f"block{block}_add")([x, residual])
    for step in range(num_downsamplings):
        filters //= 2
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                                   kernel_initializer=_init(seed, next(counter)),
                                   name=f"up{step}")(x)
        x = layers.ReLU(name=f"up{step}_relu")(InstanceNormalization(name=f"up{step}_norm")(x))
    x = ReflectionPadding2D(3, name="head_pad")(x)
    x = layers.Conv2D(channels, 7, kernel_initializer=_init(seed, next(counter)),
                      name="head_conv")(x)
    return keras.Model(images, layers.Activation("tanh", dtype="float32", name="tanh")(x),
                       name=name)


def unet_depth_for(image_size, max_depth=8):
    """Down-samplings of the U-Net: down to 1x1 for powers of two (8 for 256, the paper's)."""
    depth = 0
    while depth < max_depth and image_size % 2 ** (depth + 1) == 0:
        depth += 1
    if depth < 2:
        raise ValueError(f"pix2pix needs training crops divisible by 4; got {image_size}. "
                         "Pass an image size such as 64, 128 or 256 (CLI: --image-size).")
    return depth


def build_unet_generator(channels=CHANNELS, num_downs=8, num_filters=64, dropout=0.5,
                         seed=None, name="generator"):
    """pix2pix's U-Net: encoder C64-C128-C256-C512-..., decoder CD512 x 3 -C512-...-C64, with
    skip connections between mirrored layers (Isola et al. 2017, section 6.1.1).

    Instance normalisation stands for the paper's batch norm: at the paper's batch size of 1,
    with test-time batch statistics, the two are the same operation. Dropout acts in the first
    three decoder layers while training; inference is deterministic.
    """
    counter = iter(range(10_000))

    def filters_at(level):
        return num_filters * min(2 ** level, 8)

    images = keras.Input((None, None, channels), name="images")
    # Encoder: no normalisation on the first layer; none at the 1x1 bottleneck either, where
    # per-image statistics of a single pixel would erase it.
    x = layers.Conv2D(filters_at(0), 4, strides=2, padding="same",
                      kernel_initializer=_init(seed, next(counter)), name="down0")(images)
    skips = [x]
    for level in range(1, num_downs):
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"down{level}_lrelu")(x)
        x = layers.Conv2D(filters_at(level), 4, strides=2, padding="same",
                          kernel_initializer=_init(seed, next(counter)), name=f"down{level}")(x)
        if level < num_downs - 1:
            x = InstanceNormalization(name=f"down{level}_norm")(x)
            skips.append(x)
    for index, level in enumerate(range(num_downs - 2, -1, -1)):
        x = layers.ReLU(name=f"up{level}_relu")(x)
        x = layers.Conv2DTranspose(filters_at(level), 4, strides=2, padding="same",
                                   kernel_initializer=_init(seed, next(counter)),
                                   name=f"up{level}")(x)
        x = InstanceNormalization(name=f"up{level}_norm")(x)
        if index < 3 and dropout:
            x = layers.Dropout(dropout, seed=None if seed is None else seed + 100 + index,
                               name=f"up{level}_dropout")(x)
        x = layers.Concatenate(name=f"skip{level}")([skips[level], x])
    x = layers.ReLU(name="head_relu")(x)
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same",
                               kernel_initializer=_init(seed, next(counter)), name="head")(x)
    return keras.Model(images, layers.Activation("tanh", dtype="float32", name="tanh")(x),
                       name=name)


def build_patch_discriminator(channels=CHANNELS, num_filters=64, num_layers=3,
                              condition_channels=0, seed=None, name="discriminator"):
    """The 70x70 PatchGAN: C64-C128-C256-C512, then a 1-channel map of real/fake logits.

    Each output judges one 70x70 patch (with `num_layers=3`; pix2pix section 3.2.2). With
    `condition_channels`, it takes `[condition, image]` and judges the pair (pix2pix's
    conditional discriminator).
    """
    counter = iter(range(10_000))
    images = keras.Input((None, None, channels), name="images")
    inputs = [images]
    x = images
    if condition_channels:
        condition = keras.Input((None, None, condition_channels), name="condition")
        inputs = [condition, images]
        x = layers.Concatenate(name="pair")([condition, images])
    filters = num_filters
    for index in range(num_layers + 1):
        last = index == num_layers  # the C512 layer keeps stride 1
        x = layers.Conv2D(filters, 4, strides=1 if last else 2, padding="same",
                          kernel_initializer=_init(seed, next(counter)), name=f"conv{index}")(x)
        if index:  # none on the first layer
            x = InstanceNormalization(name=f"conv{index}_norm")(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"conv{index}_lrelu")(x)
        filters = min(filters * 2, num_filters * 8)
    logits = layers.Conv2D(1, 4, padding="same", dtype="float32",
                           kernel_initializer=_init(seed, next(counter)), name="logits")(x)
    return keras.Model(inputs if condition_channels else images, logits, name=name)
