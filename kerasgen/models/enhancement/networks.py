"""The supervised low-light network: a small U-Net in the style of SID's (Chen et al. 2018,
"Learning to See in the Dark", arXiv:1805.01934), on RGB images in [0, 1].

Per level two 3x3 convolutions with LeakyReLU(0.2) and a 2x2 max-pool; on the way up a
sub-pixel up-sampling (a 3x3 convolution to 4x the channels and a pixel shuffle, as ESPCN's,
which TFLite runs with builtin ops at any size) and the skip concatenated; a 1x1 head to RGB
added to the input (global residual; zero-initialised, so training starts at the identity).
"""

import math

import keras
from keras import layers, ops

from kerasgen.layers import PixelShuffle, WholeImage
from kerasgen.models.enhancement.darkening import LUMA_WEIGHTS
from kerasgen.precision import FullPrecision


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


@keras.saving.register_keras_serializable(package="kerasgen")
class GlobalGamma(FullPrecision, WholeImage, layers.Layer):
    """Dark RGB (or `[dark RGB, correction]`) -> `dark ** g`, one exponent `g` per image: the
    classical global curve a network can refine.

    The uncorrected exponent is the "auto gamma" `log(target_mean) / log(m)`, where `m` is
    the geometric mean of the image's Rec. 601 luminance (offset by one level): it maps the
    image's log-average brightness to `target_mean`. The network's correction moves it on a
    logistic scale inside (0.05, 1) (brighten only, the oracle gamma's grid): `g = 0.05 +
    0.95 sigmoid(logit((auto - 0.05) / 0.95) + correction)`; zero correction is the
    classical answer. A hard clip there instead stopped a training run for good: one step
    pushed every exponent past 1, where the clip passes no gradient (measured). Black stays
    black. Computed in float32 (bf16's 8-bit mantissa would band a curve this steep near
    black); builtin TFLite ops only. The exponent comes from the whole image, so an
    enhancer holding this layer is not tiled (`WholeImage`).

    Args:
        target_mean: float in (0, 1). The log-average luminance the uncorrected curve maps
            the image to.
    """

    def __init__(self, target_mean=0.4, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(target_mean) < 1.0:
            raise ValueError(f"target_mean must be in (0, 1), got {target_mean}.")
        self.target_mean = float(target_mean)

    def exponent(self, images, correction):
        """The per-image exponent `g`, `[N, 1, 1, 1]`."""
        luminance = ops.sum(images * ops.convert_to_tensor(LUMA_WEIGHTS, "float32"), axis=-1)
        log_mean = ops.mean(ops.log(luminance + 1.0 / 255.0), axis=(1, 2))
        # log m < 0 always (m < 1 + 1/255 would allow 0: keep it strictly negative).
        auto = math.log(self.target_mean) / ops.minimum(log_mean, -1e-3)
        share = ops.clip((auto - 0.05) / 0.95, 1e-3, 1.0 - 1e-3)
        logit = ops.log(share) - ops.log(1.0 - share) + ops.reshape(correction, (-1,))
        return ops.reshape(0.05 + 0.95 * ops.sigmoid(logit), (-1, 1, 1, 1))

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs, ops.zeros_like(inputs[:, 0, 0, :1])]
        images, correction = (ops.cast(tensor, "float32") for tensor in inputs)
        images = ops.clip(images, 0.0, 1.0)
        curve = ops.exp(self.exponent(images, correction) * ops.log(ops.maximum(images, 1e-6)))
        return ops.where(images > 0.0, curve, 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape[0] if isinstance(input_shape, list) else input_shape

    def get_config(self):
        return {**super().get_config(), "target_mean": self.target_mean}


def build_lowlight_unet(num_filters: int = 16, depth: int = 3, global_curve: bool = False,
                        curve_target: float = 0.4, seed=None, name="lowlight_unet"):
    """The U-Net above: `num_filters * 2**level` filters at each level, `depth` pools.

    Args:
        num_filters: int. Filters at full resolution (SID: 32). Defaults to 16.
        depth: int. Number of 2x down-samplings; inputs are padded to a multiple of
            `2**depth`. Defaults to 3.
        global_curve: bool. Start from a global gamma curve (`GlobalGamma`): a small branch
            (three stride-2 convolutions, a global average, two dense layers, the last
            zero-initialised) corrects the classical auto-gamma exponent from the whole
            input; the U-Net sees the dark image and its curved version and predicts what to
            add to the curve. An untrained network returns the auto-gamma image. A U-Net's
            56-pixel view cannot tell a dark scene from a darker exposure; the global
            branch sees the whole image. Defaults to False (the residual is added to the
            input).
        curve_target: float. `GlobalGamma`'s `target_mean`.
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
    base = x = images
    if global_curve:
        auto = GlobalGamma(curve_target, name="auto_gamma")(images)
        features = layers.Concatenate(name="curve_input")([images, auto])
        for index, filters in enumerate((16, 32, 32)):
            features = layers.LeakyReLU(0.2, name=f"curve_act{index}")(layers.Conv2D(
                filters, 3, strides=2, padding="same", name=f"curve_conv{index}",
                kernel_initializer=keras.initializers.HeNormal(
                    None if seed is None else seed * 1000 + 900 + index))(features))
        features = layers.GlobalAveragePooling2D(name="curve_pool")(features)
        features = layers.LeakyReLU(0.2, name="curve_dense_act")(layers.Dense(
            32, name="curve_dense", kernel_initializer=keras.initializers.HeNormal(
                None if seed is None else seed * 1000 + 990))(features))
        correction = layers.Dense(1, kernel_initializer="zeros", name="curve_correction")(
            features)
        # The last `GlobalGamma` of the network: the curve `LowLightEnhancer`'s curve_weight
        # supervises.
        base = GlobalGamma(curve_target, name="global_gamma")([images, correction])
        x = layers.Concatenate(name="unet_input")([images, base])
    skips = []
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
    return keras.Model(images, layers.Add(name="global_residual")([base, residual]), name=name)
