"""Streaming metrics as Keras metrics: Frechet distance, KID and classifier score for generative
models; PSNR and SSIM by the restoration papers' protocols (`y_channel`, `crop_border`).

Each metric takes a pluggable feature extractor (any callable from images to `[N, d]`
features, e.g. `kerasgen.features.domain_extractor` or `inception_extractor`), or features
directly when none is given. `update_state(real=..., fake=...)` accepts either side alone.

Example:
    >>> fd = FrechetDistance(feature_extractor=extractor)
    >>> for real, fake in batches:
    ...     fd.update_state(real=real, fake=fake)
    >>> float(fd.result())
"""

import keras
import numpy as np
import scipy.linalg
import tensorflow as tf

from kerasgen.data.restoration import Y_OFFSET, Y_WEIGHTS


def frechet_distance(mean_a, covariance_a, mean_b, covariance_b):
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) of two Gaussians.

    The matrix square root is `scipy.linalg.sqrtm`; a tiny diagonal offset is added when the
    product is singular, and the imaginary round-off of the root is dropped, as in the
    reference implementation of Heusel et al. 2017 (https://arxiv.org/abs/1706.08500).
    """
    mean_a, mean_b = np.asarray(mean_a, np.float64), np.asarray(mean_b, np.float64)
    covariance_a = np.atleast_2d(np.asarray(covariance_a, np.float64))
    covariance_b = np.atleast_2d(np.asarray(covariance_b, np.float64))
    root = scipy.linalg.sqrtm(covariance_a @ covariance_b)
    if not np.isfinite(root).all():
        offset = np.eye(covariance_a.shape[0]) * 1e-6
        root = scipy.linalg.sqrtm((covariance_a + offset) @ (covariance_b + offset))
    root = np.real(root)
    difference = mean_a - mean_b
    return float(difference @ difference
                 + np.trace(covariance_a) + np.trace(covariance_b) - 2.0 * np.trace(root))


def _features(extractor, images):
    features = extractor(images) if extractor is not None else images
    return tf.reshape(tf.cast(features, tf.float64), [tf.shape(features)[0], -1])


def _feature_size(extractor, num_features):
    if isinstance(extractor, keras.Model):
        return int(extractor.output_shape[-1])
    if num_features is None:
        raise ValueError("Pass num_features when the feature extractor is not a keras.Model.")
    return int(num_features)


@keras.saving.register_keras_serializable(package="kerasgen")
class FrechetDistance(keras.metrics.Metric):
    """Streaming Frechet distance between the real and the generated feature distributions.

    Sums and outer-product sums are kept in float64, so the result equals the batch
    computation on all features, whatever the batching.

    Args:
        feature_extractor: callable. Images -> `[N, d]` features. Defaults to None
            (`update_state` receives features).
        num_features: int. `d`, when the extractor does not tell it. Defaults to None.
        name: str. Defaults to `"frechet_distance"`.

    Reference: https://arxiv.org/abs/1706.08500
    """

    def __init__(self, feature_extractor=None, num_features=None, name="frechet_distance",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.feature_extractor = feature_extractor
        self.num_features = _feature_size(feature_extractor, num_features)
        size = self.num_features
        self.stats = {}
        for side in ("real", "fake"):
            self.stats[side] = (
                self.add_variable((size,), "zeros", dtype="float64", name=f"{side}_sum"),
                self.add_variable((size, size), "zeros", dtype="float64", name=f"{side}_outer"),
                self.add_variable((), "zeros", dtype="float64", name=f"{side}_count"),
            )

    def update_state(self, real=None, fake=None, sample_weight=None):
        for side, images in (("real", real), ("fake", fake)):
            if images is None:
                continue
            features = _features(self.feature_extractor, images)
            total, outer, count = self.stats[side]
            total.assign_add(tf.reduce_sum(features, axis=0))
            outer.assign_add(tf.matmul(features, features, transpose_a=True))
            count.assign_add(tf.cast(tf.shape(features)[0], tf.float64))

    def moments(self, side):
        """Mean and unbiased covariance of one side's features so far."""
        total, outer, count = self.stats[side]
        mean = total / count
        covariance = (outer - count * tf.tensordot(mean, mean, axes=0)) / (count - 1.0)
        return mean, covariance

    def result(self):
        for side in ("real", "fake"):
            if float(self.stats[side][2].numpy()) < 2:
                raise ValueError(f"FrechetDistance needs at least 2 {side} samples.")
        return tf.numpy_function(
            frechet_distance, [*self.moments("real"), *self.moments("fake")], tf.float64)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))

    def get_config(self):
        return {**super().get_config(), "num_features": self.num_features}


def polynomial_kernel(features_a, features_b):
    """k(x, y) = (x . y / d + 1)^3, the kernel of KID."""
    return (features_a @ features_b.T / features_a.shape[1] + 1.0) ** 3


def kernel_mmd2(features_a, features_b):
    """Unbiased squared MMD with the KID polynomial kernel."""
    m, n = len(features_a), len(features_b)
    k_aa = polynomial_kernel(features_a, features_a)
    k_bb = polynomial_kernel(features_b, features_b)
    k_ab = polynomial_kernel(features_a, features_b)
    return ((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
            + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
            - 2.0 * k_ab.mean())


@keras.saving.register_keras_serializable(package="kerasgen")
class KernelInceptionDistance(keras.metrics.Metric):
    """Kernel Inception Distance: unbiased MMD^2 (cubic polynomial kernel), averaged over subsets.

    Features are kept (in memory, eagerly) up to `max_samples` per side; `result()` averages
    the estimate over `num_subsets` random subsets of `subset_size`, as Binkowski et al.
    2018 do. The standard deviation over subsets is `result_std()`.

    Args:
        feature_extractor: callable. Images -> `[N, d]` features. Defaults to None.
        subset_size: int. Defaults to 1000.
        num_subsets: int. Defaults to 100.
        max_samples: int. Features kept per side. Defaults to 50000.
        seed: int. Subset sampling seed. Defaults to 0.
        name: str. Defaults to `"kernel_inception_distance"`.

    Reference: https://arxiv.org/abs/1801.01401 (section 4).
    """

    def __init__(self, feature_extractor=None, subset_size=1000, num_subsets=100,
                 max_samples=50000, seed=0, name="kernel_inception_distance", **kwargs):
        super().__init__(name=name, **kwargs)
        self.feature_extractor = feature_extractor
        self.subset_size = subset_size
        self.num_subsets = num_subsets
        self.max_samples = max_samples
        self.seed = seed
        self._features = {"real": [], "fake": []}

    def update_state(self, real=None, fake=None, sample_weight=None):
        if not tf.executing_eagerly():
            raise RuntimeError("KernelInceptionDistance keeps features in memory: update it "
                               "eagerly (outside tf.function / compiled evaluate).")
        for side, images in (("real", real), ("fake", fake)):
            if images is not None:
                kept = sum(len(f) for f in self._features[side])
                features = _features(self.feature_extractor, images).numpy()
                self._features[side].append(features[:max(0, self.max_samples - kept)])

    def _subset_estimates(self):
        real = np.concatenate(self._features["real"])
        fake = np.concatenate(self._features["fake"])
        size = min(self.subset_size, len(real), len(fake))
        if size < 2:
            raise ValueError("KernelInceptionDistance needs at least 2 samples per side.")
        rng = np.random.default_rng(self.seed)
        return np.array([
            kernel_mmd2(real[rng.choice(len(real), size, replace=False)],
                        fake[rng.choice(len(fake), size, replace=False)])
            for _ in range(self.num_subsets)
        ])

    def result(self):
        return tf.constant(self._subset_estimates().mean(), tf.float64)

    def result_std(self):
        return float(self._subset_estimates().std())

    def reset_state(self):
        self._features = {"real": [], "fake": []}

    def get_config(self):
        return {**super().get_config(), "subset_size": self.subset_size,
                "num_subsets": self.num_subsets, "max_samples": self.max_samples,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasgen")
class ClassifierScore(keras.metrics.Metric):
    """exp(E_x KL(p(y|x) || p(y))): the Inception score computed with any classifier.

    Streaming and exact over everything seen: E_x sum_y p log p and the marginal p(y) are
    sums. (Salimans et al. 2016 average the score over 10 splits; this is one split.)

    Args:
        classifier: callable. Images -> class probabilities `[N, K]`. Defaults to None
            (`update_state` receives probabilities).
        num_classes: int. `K`, when the classifier does not tell it. Defaults to None.
        name: str. Defaults to `"classifier_score"`.

    Reference: https://arxiv.org/abs/1606.03498 (section 4).
    """

    def __init__(self, classifier=None, num_classes=None, name="classifier_score", **kwargs):
        super().__init__(name=name, **kwargs)
        self.classifier = classifier
        self.num_classes = _feature_size(classifier, num_classes)
        self.probability_sum = self.add_variable((self.num_classes,), "zeros", dtype="float64",
                                                 name="probability_sum")
        self.negative_entropy_sum = self.add_variable((), "zeros", dtype="float64",
                                                      name="negative_entropy_sum")
        self.count = self.add_variable((), "zeros", dtype="float64", name="count")

    def update_state(self, images, sample_weight=None):
        probabilities = _features(self.classifier, images)
        self.probability_sum.assign_add(tf.reduce_sum(probabilities, axis=0))
        self.negative_entropy_sum.assign_add(
            tf.reduce_sum(probabilities * tf.math.log(probabilities + 1e-12)))
        self.count.assign_add(tf.cast(tf.shape(probabilities)[0], tf.float64))

    def result(self):
        marginal = self.probability_sum / self.count
        marginal_entropy = -tf.reduce_sum(marginal * tf.math.log(marginal + 1e-12))
        return tf.exp(self.negative_entropy_sum / self.count + marginal_entropy)

    def reset_state(self):
        for variable in self.variables:
            variable.assign(tf.zeros_like(variable))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


# --- restoration metrics: the papers' protocols ----------------------------------------------

SSIM_WINDOW = 11


def rgb_to_y(images):
    """BT.601 luma (MATLAB `rgb2ycbcr`'s Y, in [16, 235]) of RGB images in [0, 255]."""
    images = tf.cast(images, tf.float64)
    if images.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs RGB images (3 channels), got {images.shape[-1]}.")
    weights = tf.constant(Y_WEIGHTS, tf.float64)
    return tf.reduce_sum(images * weights, axis=-1, keepdims=True) + 255.0 * Y_OFFSET


def _protocol_images(images, y_channel, crop_border):
    """float64 NHWC images in [0, 255], as a restoration protocol compares them."""
    images = tf.convert_to_tensor(images)
    if images.shape.rank == 3:
        images = images[None]
    images = tf.cast(images, tf.float64)
    if y_channel and images.shape[-1] == 3:
        images = rgb_to_y(images)
    if crop_border:
        height, width = images.shape[1], images.shape[2]
        if height is not None and min(height, width) <= 2 * crop_border:
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {height}x{width} image.")
        images = images[:, crop_border:-crop_border, crop_border:-crop_border]
    return images


def _check_pair(y_true, y_pred):
    if tuple(y_true.shape) != tuple(y_pred.shape):
        raise ValueError(f"Images to compare differ in shape: {tuple(y_true.shape)} and "
                         f"{tuple(y_pred.shape)}; crop or pad them to the same size first.")


# Identical images have an infinite PSNR, and one of them makes a set's mean infinite (an
# inpainter that filled a hole on flat black background exactly did). Capped as x264 caps its
# PSNR; 100 dB is one level off at one pixel of a 154k-pixel image.
PSNR_CAP_DB = 100.0


def psnr(y_true, y_pred, y_channel=False, crop_border=0):
    """Per-image PSNR in dB of images in the uint8 range [0, 255] (peak 255), float64,
    capped at `PSNR_CAP_DB` (identical images), so that means over images stay finite.

    Args:
        y_true, y_pred: `[N, H, W, C]` (or `[H, W, C]`) images, uint8 or float in [0, 255].
        y_channel: bool. Compare the BT.601 luma of RGB images (the SR protocol).
        crop_border: int. Shave this many pixels off each side first (SR: the scale).
    """
    y_true = _protocol_images(y_true, y_channel, crop_border)
    y_pred = _protocol_images(y_pred, y_channel, crop_border)
    _check_pair(y_true, y_pred)
    mse = tf.reduce_mean(tf.square(y_true - y_pred), axis=[1, 2, 3])
    decibels = 10.0 * tf.math.log(255.0 ** 2 / mse) / tf.math.log(tf.constant(10.0, tf.float64))
    return tf.minimum(decibels, PSNR_CAP_DB)


def unit_psnr(images, targets):
    """Per-image PSNR in dB of float images in [0, 1] (clamped) against their targets: the
    training trackers' figure (the protocols' uint8 figure is `psnr`)."""
    mse = tf.reduce_mean(tf.square(tf.clip_by_value(images, 0.0, 1.0) - targets), axis=[1, 2, 3])
    return -10.0 * tf.math.log(tf.maximum(mse, 1e-10)) / np.log(10.0)


def _gaussian_window(size=11, sigma=1.5):
    coordinates = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    profile = np.exp(-coordinates ** 2 / (2.0 * sigma ** 2))
    window = np.outer(profile, profile)
    return window / window.sum()


def ssim(y_true, y_pred, y_channel=False, crop_border=0):
    """Per-image SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03,
    peak 255, 'valid' windows only), in float64 as the reference MATLAB code and KAIR's
    `calculate_ssim` compute it (`tf.image.ssim` works in float32 and is off by ~1e-4);
    arguments as `psnr`. Colour images: the mean over channels."""
    y_true = _protocol_images(y_true, y_channel, crop_border)
    y_pred = _protocol_images(y_pred, y_channel, crop_border)
    _check_pair(y_true, y_pred)
    if min(y_true.shape[1], y_true.shape[2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (after "
                         f"crop_border), got {y_true.shape[1]}x{y_true.shape[2]}.")
    channels = y_true.shape[-1]
    window = tf.constant(np.tile(_gaussian_window(SSIM_WINDOW)[:, :, None, None],
                                 (1, 1, channels, 1)))

    def local_mean(images):
        return tf.nn.depthwise_conv2d(images, window, [1, 1, 1, 1], "VALID")

    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mean_true, mean_pred = local_mean(y_true), local_mean(y_pred)
    variance_true = local_mean(y_true * y_true) - mean_true ** 2
    variance_pred = local_mean(y_pred * y_pred) - mean_pred ** 2
    covariance = local_mean(y_true * y_pred) - mean_true * mean_pred
    ssim_map = ((2.0 * mean_true * mean_pred + c1) * (2.0 * covariance + c2)
                / ((mean_true ** 2 + mean_pred ** 2 + c1) * (variance_true + variance_pred + c2)))
    return tf.reduce_mean(ssim_map, axis=[1, 2, 3])


class _MeanOverImages(keras.metrics.Metric):
    """Mean of a per-image figure over every image seen (the protocols' mean PSNR / SSIM)."""

    per_image = None

    def __init__(self, y_channel=False, crop_border=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.y_channel = y_channel
        self.crop_border = int(crop_border)
        self.total = self.add_variable((), initializer="zeros", name="total", dtype="float64")
        self.count = self.add_variable((), initializer="zeros", name="count", dtype="float64")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = type(self).per_image(y_true, y_pred, self.y_channel, self.crop_border)
        self.total.assign_add(tf.reduce_sum(tf.cast(values, tf.float64)))
        self.count.assign_add(tf.cast(tf.size(values), tf.float64))

    def result(self):
        return self.total / tf.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "y_channel": self.y_channel,
                "crop_border": self.crop_border}


@keras.saving.register_keras_serializable(package="kerasgen")
class PSNR(_MeanOverImages):
    """Mean per-image PSNR (dB) of images in [0, 255]; see `psnr`.

    Example:
        >>> metric = PSNR(y_channel=True, crop_border=3)   # SR x3 protocol
        >>> metric.update_state(high_resolution, restored)
    """

    per_image = staticmethod(psnr)

    def __init__(self, y_channel=False, crop_border=0, name="psnr", **kwargs):
        super().__init__(y_channel, crop_border, name=name, **kwargs)


@keras.saving.register_keras_serializable(package="kerasgen")
class SSIM(_MeanOverImages):
    """Mean per-image SSIM of images in [0, 255]; see `ssim`."""

    per_image = staticmethod(ssim)

    def __init__(self, y_channel=False, crop_border=0, name="ssim", **kwargs):
        super().__init__(y_channel, crop_border, name=name, **kwargs)
