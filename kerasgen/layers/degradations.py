"""Degradations: seeded layers that turn clean images into what a restoration network sees.

A `Degradation` is part of an image-to-image trainer's configuration (`Restorer(network,
degradation)`): the trainer degrades every clean batch on the fly with its own resumable
random stream, and the degradation also says which options inference takes (`sigma` for a
noise-level network, `scale` to check an SR factor) and what the network gets beside the
image (the noise level for FFDNet; next: the mask for inpainting).

Adding a degradation (masks, darkening) means one subclass here, not a branch in a trainer.
"""

import keras
import tensorflow as tf

from kerasgen.data import restoration as data
from kerasgen.precision import FullPrecision

MAX_SIGMA = 75.0


class Degradation(FullPrecision, keras.layers.Layer):
    """Base class: clean float images in [0, 1] -> `(degraded, condition)`.

    Subclasses implement `degrade` and may override `scale` (restored / degraded size),
    `condition_input` (what a two-input network gets beside the image), `check_options`
    (inference options) and `conditioned_endpoint` (the serving signature's extra input).
    """

    scale = 1

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # No weights: built as made (Keras would otherwise call the model on data to build it).
        self.built = True

    def degrade(self, clean, batch, seed):
        """`(degraded, condition)` for a clean batch; `condition` is None or a per-image
        tensor (e.g. the noise levels). Draws for `batch.global_batch_size` and slices this
        replica's rows (see `kerasgen.distribute`), from the `SeedGenerator` `seed`."""
        raise NotImplementedError

    def condition_input(self, condition):
        """What a two-input network takes for `condition` (None: nothing)."""
        return condition

    def check_options(self, conditioned, scale=None, **options):
        """The condition inference runs at, from the user's options (checked); None if none.

        Args:
            conditioned: bool. Whether the network takes a condition input.
            scale: int. The factor the caller expects; must be the model's.
            **options: the other keyword options of `Restorer.apply` (e.g. `sigma`).
        """
        if scale is not None and scale != self.scale:
            done = f"super-resolves x{self.scale}" if self.scale > 1 else "keeps the size (x1)"
            raise ValueError(f"Unsupported scale {scale}: this model {done}; train or pick a "
                             f"model for x{scale}.")
        for name, value in options.items():
            if value is not None:
                raise ValueError(f"{name} does not apply to a {self.name} model.")
        return None

    def conditioned_endpoint(self, restore, image_spec):
        """`(function, input specs)` of the serving signature of a conditioned network:
        `restore(images, condition)` with the condition as the signature's named input."""
        raise ValueError(f"A {self.name} degradation gives a network no condition input.")


@keras.saving.register_keras_serializable(package="kerasgen")
class GaussianNoise(Degradation):
    """Additive white Gaussian noise of a fixed or per-image random level, not clipped.

    The condition is the per-image level in grey levels of 255 (FFDNet takes level / 255).

    Args:
        sigma: float. A fixed noise level (DnCNN-S), in [0, 75]. Defaults to None.
        sigma_range: (float, float). Draw one level per image uniformly from this range
            (DnCNN-B, FFDNet). Defaults to None. Exactly one of the two is set.
    """

    def __init__(self, sigma: float = None, sigma_range=None, **kwargs):
        kwargs.setdefault("name", "gaussian_noise")
        super().__init__(**kwargs)
        if (sigma is None) == (sigma_range is None):
            raise ValueError("A denoiser needs exactly one of sigma= (fixed) or sigma_range=.")
        levels = [sigma] if sigma is not None else list(sigma_range)
        if any(not 0.0 <= float(level) <= MAX_SIGMA for level in levels) or (
                sigma_range is not None and sigma_range[0] > sigma_range[1]):
            raise ValueError(f"Noise levels must lie in [0, {MAX_SIGMA:g}], got sigma={sigma}, "
                             f"sigma_range={sigma_range}.")
        self.sigma = None if sigma is None else float(sigma)
        self.sigma_range = None if sigma_range is None else tuple(float(v) for v in sigma_range)

    def degrade(self, clean, batch, seed):
        if self.sigma is not None:
            levels = tf.fill([tf.shape(clean)[0]], self.sigma)
        else:
            # 1. Blind training: one sigma per patch, uniform in the range (DnCNN-B, FFDNet).
            low, high = self.sigma_range
            levels = batch.slice(keras.random.uniform(
                (batch.global_batch_size,), low, high, seed=seed))
        # 2. AWGN drawn for the global batch, sliced per replica; not clipped (KAIR protocol).
        shape = tf.concat([[batch.global_batch_size], tf.shape(clean)[1:]], axis=0)
        noise = batch.slice(keras.random.normal(shape, seed=seed))
        return clean + noise * tf.reshape(levels, [-1, 1, 1, 1]) / 255.0, levels

    def condition_input(self, condition):
        return tf.reshape(tf.cast(condition, tf.float32), [-1, 1]) / 255.0

    def check_options(self, conditioned, sigma=None, scale=None, **options):
        """The level a noise-level network runs at; fixed and blind networks take none."""
        super().check_options(conditioned, scale=scale, **options)
        if sigma is not None and not 0.0 <= float(sigma) <= MAX_SIGMA:
            raise ValueError(f"sigma={sigma} is out of range; noise levels lie in "
                             f"[0, {MAX_SIGMA:g}] (of 255).")
        if self.sigma is not None:
            if sigma is not None and float(sigma) != self.sigma:
                raise ValueError(
                    f"This denoiser was trained for sigma={self.sigma:g} only; use a blind or "
                    "noise-level model (dncnn_blind, ffdnet) for other levels.")
            return self.sigma if conditioned else None
        low, high = self.sigma_range
        if sigma is not None and not low <= float(sigma) <= high:
            raise ValueError(f"sigma={sigma} is outside the range [{low:g}, {high:g}] this model "
                             "was trained on.")
        if conditioned and sigma is None:
            raise ValueError("This model takes the noise level as an input: pass sigma= "
                             f"(CLI: --sigma N, in [{low:g}, {high:g}]).")
        return None if sigma is None or not conditioned else float(sigma)

    def conditioned_endpoint(self, restore, image_spec):
        """FFDNet's signature: `images` and `sigma`, float32 grey levels, one per image."""
        return (lambda images, sigma: restore(images, sigma),
                [image_spec, tf.TensorSpec([None], tf.float32, name="sigma")])

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma, "sigma_range": self.sigma_range}


@keras.saving.register_keras_serializable(package="kerasgen")
class BicubicDownscale(Degradation):
    """MATLAB-style antialiased bicubic down-scaling by `scale` (the SR protocol's LR).

    Args:
        scale: int. 2, 3 or 4.
    """

    def __init__(self, scale: int = 3, **kwargs):
        kwargs.setdefault("name", "bicubic_downscale")
        super().__init__(**kwargs)
        data.check_scale(scale)
        self.scale = int(scale)

    def degrade(self, clean, batch, seed):
        if clean.shape[1] is not None and (clean.shape[1] % self.scale
                                           or clean.shape[2] % self.scale):
            raise ValueError(f"HR patches of {clean.shape[1]}x{clean.shape[2]} are not "
                             f"multiples of the scale {self.scale}.")
        # Float passes (no uint8 rounding in between): the training-time LR of the protocol.
        return data.bicubic_downscale(clean, self.scale), None

    def check_options(self, conditioned, sigma=None, scale=None, **options):
        super().check_options(conditioned, scale=scale, **options)
        if sigma is not None:
            raise ValueError("sigma applies to denoisers; this is a super-resolution model.")
        return None

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
