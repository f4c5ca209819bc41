"""Restoration networks: DnCNN, FFDNet and U-Net denoisers, ESPCN / FSRCNN / EDSR super-resolution.

Functional `keras.Model`s from degraded float images in [0, 1] of any height and width to
restored ones (FFDNet also takes the noise level).

References: DnCNN https://arxiv.org/abs/1608.03981, FFDNet https://arxiv.org/abs/1710.04026,
ESPCN https://arxiv.org/abs/1609.05158, FSRCNN https://arxiv.org/abs/1608.00367,
EDSR https://arxiv.org/abs/1707.02921, DRUNet https://arxiv.org/abs/2008.13751.
"""

import dataclasses
from typing import Callable

import keras
from keras import layers

from kerasgen.layers import (BatchNormalization, ConvLSTMCell, NoiseLevelMap, PixelShuffle,
                             PixelUnshuffle, ZeroState)
from kerasgen.layers.degradations import BicubicDownscale, GaussianNoise


def _he(seed, index):
    return keras.initializers.HeNormal(None if seed is None else seed + index)


def _torch_default(seed, index):
    # PyTorch's default convolution initialisation, as the released EDSR and DRUNet code: with
    # He's, 16 unscaled residual blocks start with outputs in the hundreds (EDSR: L1 loss 129
    # after 100 steps; measured) and never recover.
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform",
                                              seed=None if seed is None else seed + index)


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
        x = BatchNormalization(synchronized=True, name=f"bn{index}")(x)
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

    The body predicts the noise of the four sub-images and the output is the input minus it,
    from a zero-initialised last layer (DnCNN's residual learning), where the paper predicts the
    clean sub-images directly. Predicting the image, a 15-layer FFDNet trained 1,400 steps scored
    25.79 dB on BSD68 at sigma 25 against DnCNN-S's 28.52 at the same steps; on small nets the
    direct output reached half the loss reduction of the residual one at equal steps.
    """
    noisy = keras.Input((None, None, channels), name="images")
    sigma = keras.Input((1,), name="sigma")
    x = PixelUnshuffle(2, name="unshuffle")(noisy)
    x = layers.Concatenate(name="with_noise_map")([x, NoiseLevelMap(name="noise_map")(x, sigma)])
    for index in range(depth - 1):
        # conv-ReLU, then (depth - 2) x conv-BN-ReLU: the first layer keeps its bias (no BN).
        x = layers.Conv2D(num_filters, 3, padding="same", use_bias=not index,
                          kernel_initializer=_he(seed, index), name=f"conv{index}")(x)
        if index:
            x = BatchNormalization(synchronized=True, name=f"bn{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(x)
    noise = layers.Conv2D(4 * channels, 3, padding="same", kernel_initializer="zeros",
                          name="to_subimages")(x)
    noise = PixelShuffle(2, name="shuffle")(noise)
    return keras.Model([noisy, sigma], layers.Subtract(name="residual")([noisy, noise]),
                       name=name)


def unet_convolution(seed=None):
    """`conv(x, filters, label, size=3, strides=1, transpose=False, activation=None)`: the
    "same"-padded (transposed) convolutions of a residual U-Net, each with its own seed of
    PyTorch's default initialisation, in the order they are made."""
    counter = iter(range(10_000))

    def conv(x, filters, label, size=3, strides=1, transpose=False, activation=None):
        kind = layers.Conv2DTranspose if transpose else layers.Conv2D
        return kind(filters, size, strides=strides, padding="same", activation=activation,
                    kernel_initializer=_torch_default(seed, next(counter)), name=label)(x)
    return conv


def residual_unet(x, conv, num_filters=16, num_levels=4, num_blocks=2):
    """The body of a U-Net of residual blocks after DRUNet (Zhang et al. 2021,
    arXiv:2008.13751), on `num_filters`-channel features `x`, made with `conv`
    (`unet_convolution`).

    `num_levels` scales of `num_filters * 2**level` channels; on each, `num_blocks` residual
    blocks (conv-ReLU-conv plus the input, no batch norm) on the way down and again on the way
    up (once at the bottom); 2x2 stride-2 convolutions down, 2x2 stride-2 transposed
    convolutions up, skips added. Height and width must be multiples of `2**(num_levels - 1)`.
    """
    num_levels, num_blocks = int(num_levels), int(num_blocks)
    if num_levels < 1 or num_blocks < 1:
        raise ValueError(f"num_levels and num_blocks must be positive, got {num_levels}, "
                         f"{num_blocks}.")

    def blocks(x, level, label):
        width = num_filters * 2**level
        for index in range(num_blocks):
            residual = conv(conv(x, width, f"{label}{index}_conv1", activation="relu"), width,
                            f"{label}{index}_conv2")
            x = layers.Add(name=f"{label}{index}_add")([x, residual])
        return x

    skips = []
    for level in range(num_levels - 1):
        skips.append(blocks(x, level, f"down{level}_block"))
        x = conv(skips[-1], num_filters * 2**(level + 1), f"down{level}", 2, 2)
    x = blocks(x, num_levels - 1, "bottom_block")
    for level in reversed(range(num_levels - 1)):
        x = conv(x, num_filters * 2**level, f"up{level}", 2, 2, transpose=True)
        x = blocks(layers.Add(name=f"up{level}_skip")([x, skips[level]]), level,
                   f"up{level}_block")
    return x


def build_unet_denoiser(channels=1, num_filters=16, num_levels=4, num_blocks=2, seed=None,
                        name="unet_denoiser"):
    """A U-Net of residual blocks after DRUNet (`residual_unet`) that predicts the noise.

    Most of its layers run at the coarse scales: with the defaults (16 to 128 channels) it
    sees 195 pixels for an eighth of DnCNN-S's FLOPs per pixel (0.13 M against 1.1 M). As the
    other denoisers here (DRUNet predicts the image), it predicts the noise from a
    zero-initialised last layer. Height and width must be multiples of `2**(num_levels - 1)`.
    """
    conv = unet_convolution(seed)
    noisy = keras.Input((None, None, channels), name="images")
    x = residual_unet(conv(noisy, num_filters, "head"), conv, num_filters, num_levels,
                      num_blocks)
    noise = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros",
                          name="noise")(x)
    return keras.Model(noisy, layers.Subtract(name="residual")([noisy, noise]), name=name)


def unet_size_multiple(num_levels=4, **_):
    """What a residual U-Net's input height and width must be multiples of."""
    return 2 ** (int(num_levels) - 1)


def _unet_receptive_field(num_levels=4, num_blocks=2, **_):
    """Twice the reach on each side of a pixel, plus one: the head and last 3x3 layers (1 each),
    every block's two 3x3 layers at level l (2**l each; blocks run down and up, once at the
    bottom) and where the pixel sits in its bottom-level cell (up to 2**(levels - 1) - 1);
    the 2x2 stride-2 layers reach no further than that cell."""
    levels, blocks = int(num_levels), int(num_blocks)
    reach = 2 + 2**(levels - 1) - 1
    for level in range(levels):
        reach += (1 if level == levels - 1 else 2) * blocks * 2 * 2**level
    return 2 * reach + 1


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
                             kernel_initializer=_torch_default(seed, next(counter)),
                             name=label)(x)

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


# --- recurrent networks (the RCNN row) --------------------------------------------------------

@keras.saving.register_keras_serializable(package="kerasgen")
class BicubicUpscale(layers.Layer):
    """MATLAB-style bicubic up-scaling by an integer factor inside a network (DRRN's
    interpolated input), as fixed depthwise convolutions that TFLite runs with builtin ops."""

    def __init__(self, scale=3, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        from kerasgen.data.restoration import bicubic_upscale

        return bicubic_upscale(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(None if side is None else side * self.scale
                                  for side in input_shape[1:3]), input_shape[3])

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def build_drrn(scale=3, channels=1, num_recursions=9, num_filters=128, seed=None,
               name="drrn"):
    """DRRN B1U{num_recursions} (Tai et al. 2017, "Image Super-Resolution via Deep Recursive
    Residual Network"): the LR image up-scaled bicubically, an entry convolution, then
    `num_recursions` residual units `H_u = H_0 + conv2(relu(conv1(relu(H_{u-1}))))` that all
    use ONE pair of convolutions (the recursion shares its weights), an output convolution and
    the global residual to the bicubic image.

    Pre-activation without batch norm: one set of batch statistics cannot serve units whose
    activations differ (as the public PyTorch re-implementations do). The output convolution
    starts at zero, so training starts from bicubic. B1U25 with 128 filters has 297k weights,
    the paper's figure.
    """
    if int(num_recursions) < 1:
        raise ValueError(f"num_recursions must be positive, got {num_recursions}.")
    counter = iter(range(10_000))

    def conv(filters, label, initializer=None):
        return layers.Conv2D(filters, 3, padding="same", name=label,
                             kernel_initializer=initializer or _he(seed, next(counter)))

    low = keras.Input((None, None, channels), name="images")
    upscaled = BicubicUpscale(scale, name="bicubic")(low)
    entry = conv(num_filters, "entry")(upscaled)
    # The recursive block: one pair of convolutions, applied in every unit.
    conv1, conv2 = conv(num_filters, "recursive_conv1"), conv(num_filters, "recursive_conv2")
    x = entry
    for unit in range(1, int(num_recursions) + 1):
        residual = conv2(layers.ReLU(name=f"unit{unit}_relu2")(
            conv1(layers.ReLU(name=f"unit{unit}_relu1")(x))))
        x = layers.Add(name=f"unit{unit}")([entry, residual])
    out = conv(channels, "exit", initializer="zeros")(layers.ReLU(name="exit_relu")(x))
    return keras.Model(low, layers.Add(name="global_residual")([upscaled, out]), name=name)


def build_recurrent_denoiser(channels=1, num_stages=4, num_filters=32, num_blocks=3,
                             seed=None, name="recurrent_denoiser"):
    """A progressive recurrent denoiser in the style of PReNet (Ren et al. 2019, "Progressive
    Image Deraining Networks", arXiv:1901.09221), for Gaussian noise: ONE stage applied
    `num_stages` times, each on `concat(noisy, previous estimate)`: a 3x3 convolution, a
    ConvLSTM cell whose state is carried from stage to stage, `num_blocks` residual blocks,
    and a 3x3 convolution whose output is added to the noisy image (the stage's estimate).

    Stage weights are shared (PReNet's recurrent form); the unrolled stages convert to TFLite
    builtin ops. The output convolution starts at zero (every stage starts at the identity).
    """
    if int(num_stages) < 1 or int(num_blocks) < 0:
        raise ValueError(f"num_stages must be positive and num_blocks >= 0, got {num_stages}, "
                         f"{num_blocks}.")
    counter = iter(range(10_000))

    def conv(filters, label, activation="relu", initializer=None):
        return layers.Conv2D(filters, 3, padding="same", activation=activation, name=label,
                             kernel_initializer=initializer or _he(seed, next(counter)))

    noisy = keras.Input((None, None, channels), name="images")
    stage_in = conv(num_filters, "stage_in")
    cell = ConvLSTMCell(num_filters, kernel_initializer=keras.initializers.GlorotUniform(
        None if seed is None else seed + 5000), name="convlstm")
    blocks = [(conv(num_filters, f"block{index}_conv1"),
               conv(num_filters, f"block{index}_conv2", activation=None))
              for index in range(int(num_blocks))]
    stage_out = conv(channels, "stage_out", activation=None, initializer="zeros")
    hidden = cell_state = ZeroState(num_filters, name="initial_state")(noisy)
    estimate = noisy
    for stage in range(1, int(num_stages) + 1):
        x = stage_in(layers.Concatenate(name=f"stage{stage}_inputs")([noisy, estimate]))
        hidden, cell_state = cell([x, hidden, cell_state])
        x = hidden
        for index, (first, second) in enumerate(blocks):
            x = layers.ReLU(name=f"stage{stage}_block{index}_relu")(
                layers.Add(name=f"stage{stage}_block{index}_add")([x, second(first(x))]))
        estimate = layers.Add(name=f"stage{stage}")([noisy, stage_out(x)])
    return keras.Model(noisy, estimate, name=name)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A restoration network builder and what the trainer must know about it.

    Args:
        build: callable. The builder; SR builders take `scale`.
        degradation: the `Degradation` class it is trained against.
        receptive_field: callable. `f(**network_kwargs)` -> the receptive field in input
            pixels (the smallest input side).
        size_multiple: callable. `f(**network_kwargs)` -> the multiple of which inputs'
            height and width must be (they are reflect-padded to it).
    """

    build: Callable
    degradation: type
    receptive_field: Callable
    size_multiple: Callable = lambda **_: 1


ARCHITECTURES = {
    "dncnn": Architecture(build_dncnn, GaussianNoise, lambda depth=17, **_: 2 * depth + 1),
    "ffdnet": Architecture(build_ffdnet, GaussianNoise,
                           lambda depth=15, **_: 2 * (2 * depth + 1), lambda **_: 2),
    "unet_denoiser": Architecture(build_unet_denoiser, GaussianNoise, _unet_receptive_field,
                                  unet_size_multiple),
    "espcn": Architecture(build_espcn, BicubicDownscale, lambda **_: 9),
    "fsrcnn": Architecture(build_fsrcnn, BicubicDownscale, lambda m=4, **_: 5 + 2 * m + 4),
    "edsr": Architecture(build_edsr, BicubicDownscale,
                         lambda num_blocks=16, **_: 2 * (2 * num_blocks + 3) + 1),
    # 2 * recursions + 2 3x3 layers at HR, in LR pixels, plus the bicubic's 5 taps.
    "drrn": Architecture(build_drrn, BicubicDownscale,
                         lambda num_recursions=9, scale=3, **_:
                         -(-(4 * num_recursions + 5) // scale) + 4),
    # Per stage: input, gates, 2 per block and output 3x3 layers.
    "recurrent_denoiser": Architecture(
        build_recurrent_denoiser, GaussianNoise,
        lambda num_stages=4, num_blocks=3, **_: 2 * num_stages * (3 + 2 * num_blocks) + 1),
}
