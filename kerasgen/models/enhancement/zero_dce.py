"""Zero-DCE (Guo et al. 2020, arXiv:2001.06826): a small network estimates per-pixel
light-enhancement curves, trained on dark images alone with four no-reference losses.

The curve is `LE(x) = x + alpha * (x**2 - x)` applied 8 times, each with its own per-pixel,
per-channel alpha in [-1, 1] (the released code's form of the paper's eq. 2). The losses and
their weights are the released code's (github.com/Li-Chongyi/Zero-DCE, `Myloss.py` and
`lowlight_train.py`): 200 x illumination smoothness (TV of the curve maps) + spatial
consistency + 5 x colour constancy + 10 x exposure control (16x16 regions towards 0.6).
"""

import dataclasses

import keras
import tensorflow as tf
from keras import layers

from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.metrics import unit_psnr
from kerasgen.models.enhancement.trainer import LowLightEnhancer

ITERATIONS = 8
EXPOSURE_LEVEL = 0.6  # the well-exposedness level E
SPATIAL_REGION = 4
EXPOSURE_REGION = 16


def build_dce_net(num_filters: int = 32, iterations: int = ITERATIONS, seed=None,
                  name="dce_net"):
    """DCE-Net: seven 3x3 convolutions (ReLU), the last three fed the concatenation of a
    mirrored earlier layer (symmetric skips), a tanh head of `3 * iterations` curve maps.

    Args:
        num_filters: int. Filters per layer (the paper's 32).
        iterations: int. Curve iterations (the paper's 8).
        seed: int. Weight initialisation seed.

    Returns:
        A functional `keras.Model`: RGB images in [0, 1] `[N, H, W, 3]` (any size) -> curve
        maps `[N, H, W, 3 * iterations]` in [-1, 1].
    """
    if int(num_filters) < 1 or int(iterations) < 1:
        raise ValueError(f"num_filters and iterations must be positive, got {num_filters}, "
                         f"{iterations}.")
    images = keras.Input((None, None, 3), name="images")

    def conv(filters, activation, index):
        # N(0, 0.02) as the released code: the curves start near the identity (He's start
        # them saturated, and the 200x smoothness loss then pins them at 0; measured).
        return layers.Conv2D(filters, 3, padding="same", activation=activation,
                             kernel_initializer=keras.initializers.RandomNormal(
                                 stddev=0.02, seed=None if seed is None else seed * 1000 + index),
                             name=f"conv{index}")

    curves = _dce_layers(images, conv, num_filters, 3 * int(iterations))
    return keras.Model(images, curves, name=name)


def _dce_layers(images, conv, num_filters, num_maps):
    """DCE-Net's seven layers on `images`: four convolutions, then three fed the concatenation
    of the previous output and a mirrored earlier one; `conv(filters, activation, index)` makes
    each layer (plain or depthwise separable)."""
    outputs = [images]
    for index in range(1, 5):
        outputs.append(conv(num_filters, "relu", index)(outputs[-1]))
    for index, skip in ((5, 3), (6, 2)):
        outputs.append(conv(num_filters, "relu", index)(
            layers.Concatenate(name=f"skip{index}")([outputs[skip], outputs[-1]])))
    return conv(num_maps, "tanh", 7)(layers.Concatenate(name="skip7")([outputs[1], outputs[-1]]))


@keras.saving.register_keras_serializable(package="kerasgen")
class BilinearResize(layers.Layer):
    """Bilinear resize of `inputs` to `1 / factor` of their size, or to the size of
    `reference` (Zero-DCE++'s down-sampled curve estimation; TFLite's RESIZE_BILINEAR)."""

    def __init__(self, factor=1, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, inputs, reference=None):
        if reference is not None:
            size = tf.shape(reference)[1:3]
        else:
            size = tf.maximum(tf.shape(inputs)[1:3] // self.factor, 1)
        return tf.image.resize(inputs, size, method="bilinear")

    def compute_output_shape(self, inputs_shape, reference_shape=None):
        return (inputs_shape[0], None, None, inputs_shape[-1])

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def build_dce_net_plus(num_filters: int = 32, downscale: int = 1, seed=None,
                       name="dce_net_plus"):
    """Zero-DCE++'s network (Li et al. 2021, arXiv:2103.00860): DCE-Net with depthwise
    separable convolutions and one set of three curve maps shared by all iterations, estimated
    on the image down-scaled by `downscale` and resized back bilinearly.

    Args:
        num_filters: int. Filters per layer (32 in the paper).
        downscale: int. Curve estimation at 1 / downscale of the input (the released code
            trains at 1 and runs phones' large photos at 12). Defaults to 1.
        seed: int. Weight initialisation seed.

    Returns:
        A functional `keras.Model`: RGB images in [0, 1] `[N, H, W, 3]` (any size) -> curve
        maps `[N, H, W, 3]` in [-1, 1].
    """
    if int(num_filters) < 1 or int(downscale) < 1:
        raise ValueError(f"num_filters and downscale must be positive, got {num_filters}, "
                         f"{downscale}.")
    images = keras.Input((None, None, 3), name="images")

    def conv(filters, activation, index):
        def initializer(offset):
            return keras.initializers.GlorotUniform(
                None if seed is None else seed * 1000 + 10 * index + offset)
        return layers.SeparableConv2D(filters, 3, padding="same", activation=activation,
                                      depthwise_initializer=initializer(0),
                                      pointwise_initializer=initializer(1), name=f"conv{index}")

    small = images if int(downscale) == 1 else BilinearResize(downscale, name="down")(images)
    curves = _dce_layers(small, conv, num_filters, 3)
    if int(downscale) != 1:
        curves = BilinearResize(name="up")(curves, images)
    return keras.Model(images, curves, name=name)


def apply_curves(images, curves, iterations=None):
    """`LE` applied once per group of three curve maps: `x + alpha * (x**2 - x)`; with
    `iterations` and one group (Zero-DCE++), the same maps `iterations` times."""
    groups = tf.split(curves, curves.shape[-1] // 3, axis=-1)
    if iterations is not None:
        if len(groups) != 1:
            raise ValueError(f"Shared curves take 3 maps, got {curves.shape[-1]}.")
        groups = groups * int(iterations)
    for alpha in groups:
        images = images + alpha * (tf.square(images) - images)
    return images


def _grey(images):
    return tf.reduce_mean(images, axis=-1, keepdims=True)


def spatial_consistency(enhanced, dark):
    """Per image: squared change of the 4-neighbour differences of 4x4-region grey means (the
    released code's signed form of eq. 3)."""
    def neighbour_differences(images):
        pooled = tf.nn.avg_pool2d(_grey(images), SPATIAL_REGION, SPATIAL_REGION, "VALID")
        padded = tf.pad(pooled, [[0, 0], [1, 1], [1, 1], [0, 0]])
        return [pooled - padded[:, 1:-1, :-2], pooled - padded[:, 1:-1, 2:],
                pooled - padded[:, :-2, 1:-1], pooled - padded[:, 2:, 1:-1]]

    squares = [tf.square(a - b) for a, b in zip(neighbour_differences(dark),
                                                neighbour_differences(enhanced))]
    return tf.reduce_mean(tf.add_n(squares), axis=[1, 2, 3])


def exposure_control(enhanced):
    """Per image: mean squared distance of 16x16-region grey means to E = 0.6."""
    pooled = tf.nn.avg_pool2d(_grey(enhanced), EXPOSURE_REGION, EXPOSURE_REGION, "VALID")
    return tf.reduce_mean(tf.square(pooled - EXPOSURE_LEVEL), axis=[1, 2, 3])


def colour_constancy(enhanced):
    """Per image: sqrt of the summed squared (squared channel-mean differences), Gray-World."""
    red, green, blue = tf.unstack(tf.reduce_mean(enhanced, axis=[1, 2]), axis=-1)
    pairs = [tf.square(red - green), tf.square(red - blue), tf.square(green - blue)]
    return tf.sqrt(tf.add_n([tf.square(value) for value in pairs]) + 1e-12)


def illumination_smoothness(curves):
    """Per image: total variation of the curve maps (squared, summed over the maps, averaged
    over the pixel pairs), times 2 as in the released code."""
    height, width = tf.shape(curves)[1], tf.shape(curves)[2]
    vertical = tf.reduce_sum(tf.square(curves[:, 1:] - curves[:, :-1]), axis=[1, 2, 3])
    horizontal = tf.reduce_sum(tf.square(curves[:, :, 1:] - curves[:, :, :-1]), axis=[1, 2, 3])
    return 2.0 * (vertical / tf.cast((height - 1) * width, curves.dtype)
                  + horizontal / tf.cast(height * (width - 1), curves.dtype))


@keras.saving.register_keras_serializable(package="kerasgen")
class ZeroDCE(LowLightEnhancer):
    """Trains DCE-Net with `fit` on dark images (clean patches darkened on the fly by a
    `Darken` layer); the losses never see the clean image (its PSNR is only logged).

    Args:
        network: `keras.Model`. Images -> curve maps (`build_dce_net`, or
            `build_dce_net_plus` with `curve_iterations`).
        degradation: `Darken`.
        smoothness_weight, spatial_weight, colour_weight, exposure_weight: float. The loss
            weights (released code: 200, 1, 5, 10; Zero-DCE++: 1600, 1, 5, 10).
        curve_iterations: int. Apply the network's one set of three curve maps this many
            times (Zero-DCE++: 8). Defaults to None (one iteration per set of maps).
        **kwargs: `LowLightEnhancer`'s (`patch_size`, `seed`).

    `fit` also takes `(low, normal)` pairs (a pair folder): the losses then see the real low
    image, and the normal one only feeds the logged PSNR.
    """

    # The released code trains at 1e-4 for about 60k steps; CPU budgets of a few thousand
    # steps need 1e-3 (at 1e-4 the exposure barely moves in 2k steps; measured).
    default_learning_rate = 1e-3
    gradient_clip_norm = 0.1  # the released code clips the global gradient norm to 0.1

    def __init__(self, network, degradation, smoothness_weight=200.0, spatial_weight=1.0,
                 colour_weight=5.0, exposure_weight=10.0, curve_iterations: int = None,
                 **kwargs):
        super().__init__(network, degradation, **kwargs)
        maps = self.network.outputs[0].shape[-1]
        if curve_iterations is not None and (int(curve_iterations) < 1 or maps != 3):
            raise ValueError(f"curve_iterations repeats one set of 3 curve maps a positive "
                             f"number of times; got {curve_iterations} for {maps} maps.")
        self.curve_iterations = None if curve_iterations is None else int(curve_iterations)
        weights = (smoothness_weight, spatial_weight, colour_weight, exposure_weight)
        if min(weights) < 0:
            raise ValueError(f"Loss weights must be >= 0, got {weights}.")
        if self.patch_size < EXPOSURE_REGION:
            raise ValueError(f"patch_size must be at least {EXPOSURE_REGION} (the exposure "
                             f"loss's regions), got {self.patch_size}.")
        self.smoothness_weight, self.spatial_weight, self.colour_weight, \
            self.exposure_weight = (float(weight) for weight in weights)
        self.exposure_tracker = keras.metrics.Mean(name="exposure")

    @property
    def metrics(self):
        return [*super().metrics, self.exposure_tracker]

    def default_optimizer(self):
        return keras.optimizers.Adam(self.default_learning_rate,
                                     global_clipnorm=self.gradient_clip_norm)

    def enhance_float(self, images):
        """Enhanced float images in [0, 1] of float images in [0, 1], any size."""
        images = tf.clip_by_value(tf.cast(images, tf.float32), 0.0, 1.0)
        curves = self.network(images, training=False)
        return tf.clip_by_value(apply_curves(images, curves, self.curve_iterations), 0.0, 1.0)

    def restore_float(self, images, sigma=None):
        del sigma  # no condition
        return self.enhance_float(images)

    def _step(self, data_batch, training):
        batch = ReplicaBatch(tf.shape(tf.nest.flatten(data_batch)[0])[0])
        if isinstance(data_batch, (tuple, list)):
            # 1. Real pairs: the low image as it is.
            dark, clean = (tf.cast(part, tf.float32) for part in data_batch)
        else:
            # 1. Darken clean patches (seeded, for the global batch).
            clean = tf.cast(data_batch, tf.float32)
            dark, _ = self.degradation.degrade(clean, batch, self.seed_generator)
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            # 2. Estimate the curves, apply them; the four no-reference losses (eq. 7).
            curves = self.network(dark, training=training)
            enhanced = apply_curves(dark, curves, self.curve_iterations)
            exposure = exposure_control(enhanced)
            per_image = (self.smoothness_weight * illumination_smoothness(curves)
                         + self.spatial_weight * spatial_consistency(enhanced, dark)
                         + self.colour_weight * colour_constancy(enhanced)
                         + self.exposure_weight * exposure)
            mean_loss = batch.mean(per_image)
        if training:
            gradients = tape.gradient(mean_loss, self.network.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.network.trainable_variables))
        # 3. Per-image trackers; PSNR against the clean image is logged, never trained on.
        self.loss_tracker.update_state(per_image)
        self.psnr_tracker.update_state(unit_psnr(enhanced, clean))
        self.exposure_tracker.update_state(exposure)
        return step_logs(self.metrics)

    def serving_spec(self):
        """`enhance` (see `LowLightEnhancer`), without full-int8 TFLite: eight curve
        iterations compound the activations' 8-bit rounding (Zero-DCE++ on a dark photo: 48
        levels mean error against float32; measured), so float16 and dynamic-range weights
        are the compact variants."""
        return dataclasses.replace(super().serving_spec(),
                                   quantizations=("none", "float16", "dynamic"))

    def get_config(self):
        return {**super().get_config(), "smoothness_weight": self.smoothness_weight,
                "spatial_weight": self.spatial_weight, "colour_weight": self.colour_weight,
                "exposure_weight": self.exposure_weight,
                "curve_iterations": self.curve_iterations}
