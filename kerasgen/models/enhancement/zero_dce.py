"""Zero-DCE (Guo et al. 2020, arXiv:2001.06826): a small network estimates per-pixel
light-enhancement curves, trained on dark images alone with four no-reference losses.

The curve is `LE(x) = x + alpha * (x**2 - x)` applied 8 times, each with its own per-pixel,
per-channel alpha in [-1, 1] (the released code's form of the paper's eq. 2). The losses and
their weights are the released code's (github.com/Li-Chongyi/Zero-DCE, `Myloss.py` and
`lowlight_train.py`): 200 x illumination smoothness (TV of the curve maps) + spatial
consistency + 5 x colour constancy + 10 x exposure control (16x16 regions towards 0.6).
"""

import keras
import tensorflow as tf
from keras import layers

from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec
from kerasgen.metrics import unit_psnr
from kerasgen.models.restoration.trainer import Restorer

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

    outputs = [images]
    for index in range(1, 5):
        outputs.append(conv(num_filters, "relu", index)(outputs[-1]))
    for index, skip in ((5, 3), (6, 2)):
        outputs.append(conv(num_filters, "relu", index)(
            layers.Concatenate(name=f"skip{index}")([outputs[skip], outputs[-1]])))
    curves = conv(3 * int(iterations), "tanh", 7)(
        layers.Concatenate(name="skip7")([outputs[1], outputs[-1]]))
    return keras.Model(images, curves, name=name)


def apply_curves(images, curves):
    """`LE` applied once per group of three curve maps: `x + alpha * (x**2 - x)`."""
    for alpha in tf.split(curves, curves.shape[-1] // 3, axis=-1):
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
class ZeroDCE(Restorer):
    """Trains DCE-Net with `fit` on dark images (clean patches darkened on the fly by a
    `Darken` layer); the losses never see the clean image (its PSNR is only logged).

    Args:
        network: `keras.Model`. Images -> curve maps (`build_dce_net`).
        degradation: `Darken`.
        smoothness_weight, spatial_weight, colour_weight, exposure_weight: float. The loss
            weights (released code: 200, 1, 5, 10).
        **kwargs: `Restorer`'s (`patch_size`, `seed`).
    """

    # The released code trains at 1e-4 for about 60k steps; CPU budgets of a few thousand
    # steps need 1e-3 (at 1e-4 the exposure barely moves in 2k steps; measured).
    default_learning_rate = 1e-3
    gradient_clip_norm = 0.1  # the released code clips the global gradient norm to 0.1

    def __init__(self, network, degradation, smoothness_weight=200.0, spatial_weight=1.0,
                 colour_weight=5.0, exposure_weight=10.0, **kwargs):
        kwargs.setdefault("color", "rgb")
        super().__init__(network, degradation, **kwargs)
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
        return tf.clip_by_value(apply_curves(images, self.network(images, training=False)),
                                0.0, 1.0)

    def restore_float(self, images, sigma=None):
        del sigma  # no condition
        return self.enhance_float(images)

    def _step(self, data_batch, training):
        batch = ReplicaBatch(tf.shape(data_batch)[0])
        clean = tf.cast(data_batch, tf.float32)
        # 1. Darken (seeded, for the global batch).
        dark, _ = self.degradation.degrade(clean, batch, self.seed_generator)
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            # 2. Estimate the curves, apply them; the four no-reference losses (eq. 7).
            curves = self.network(dark, training=training)
            enhanced = apply_curves(dark, curves)
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

    def benchmark(self, dataset, data_dir=None, seed=0):
        """PSNR / SSIM of the model and the classical enhancers (see
        `kerasgen.models.enhancement.evaluation`)."""
        from kerasgen.models.enhancement.evaluation import (enhancement_table,
                                                            evaluate_enhancement)

        report = evaluate_enhancement(self, dataset, data_dir=data_dir, seed=seed)
        return {**report, "lines": enhancement_table(report)}

    def serving_spec(self):
        """Signature `enhance`: uint8 RGB `images` of any height and width -> uint8."""
        spec = super().serving_spec()
        return ServingSpec(networks=spec.networks, endpoints={"enhance": spec.endpoints[
            "restore"]}, default="enhance")

    def get_config(self):
        return {**super().get_config(), "smoothness_weight": self.smoothness_weight,
                "spatial_weight": self.spatial_weight, "colour_weight": self.colour_weight,
                "exposure_weight": self.exposure_weight}
