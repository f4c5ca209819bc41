"""`Darken`: the synthetic low-light degradation (seeded, as a layer).

LLNet's protocol (Lore et al. 2017, "LLNet: A deep autoencoder approach to natural low-light
image enhancement", Pattern Recognition 61): a random gamma darkening `x ** gamma`, gamma in
[2, 3.5] here, then sensor noise. The noise is Poisson-Gaussian in its usual heteroscedastic
Gaussian form (Foi et al. 2008): standard deviation `sqrt(shot * y + read ** 2)` of the dark
intensity `y`, with per-image `shot` and `read` levels; the result is clipped to [0, 1] like a
sensor's.

`luminance_share` of the images (drawn per image) get the gamma on their luminance alone: each
pixel's RGB is scaled by `Y ** gamma / Y`, keeping its colour ratios, as a shorter exposure
does (RetinexNet's synthetic pairs adjust the Y channel: Wei et al. 2018, arXiv:1808.04560,
section 4.1). Per-channel gamma
exaggerates every colour cast (blue 0.38 against red 0.45 becomes 0.055 against 0.091 at gamma
3), which Zero-DCE's Gray-World loss then learns to undo on every image, balanced or not.

`exposure_share` of the images (drawn per image) get a shorter exposure instead of the gamma:
the linear light (the sRGB display gamma 2.2 undone) scaled by an exposure ratio drawn
log-uniformly in `exposure_range`, then the display gamma again, i.e. the stored values scaled
by `ratio ** (1 / 2.2)`, as a camera that keeps its tone curve and shortens the exposure
writes them (exposure scaling in linear light: Brooks et al. 2019, "Unprocessing Images for
Learned Raw Denoising", arXiv:1811.11127; SID's short exposures, Chen et al. 2018,
arXiv:1805.01934). A gamma darkens shadows far more than highlights; a shorter exposure darkens
every level by the same factor, keeping the highlights' share of the range.
"""

import math

import keras
import tensorflow as tf

from kerasgen.layers.degradations import Degradation

LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # Rec. 601 luma
DISPLAY_GAMMA = 2.2  # sRGB's, approximately: stored value = linear light ** (1 / 2.2)


@keras.saving.register_keras_serializable(package="kerasgen")
class Darken(Degradation):
    """Clean float images in [0, 1] -> dark, noisy ones (no condition).

    Args:
        gamma_range: (float, float). Per-image gamma, uniform. Defaults to (2, 3.5).
        max_shot: float. Per-image shot-noise level, uniform in [0, max_shot] (variance per
            unit of intensity). Defaults to 0.01.
        max_read: float. Per-image read-noise level (std), uniform in [0, max_read].
            Defaults to 0.02 (about 5 levels of 255).
        luminance_share: float in [0, 1]. Share of the images darkened on their luminance
            (Rec. 601 weights), keeping each pixel's colour ratios; the others get the gamma on
            every channel. Defaults to 0 (the protocol's per-channel gamma).
        eight_bit: bool. Round the dark image to 8 bits, as the file a camera writes and as
            the benchmark's inputs are (`kerasgen.models.enhancement.evaluation`): at gamma
            3.5 a mid-grey 0.2 darkens to 0.9 of a level, so an enhancer trained on
            unrounded inputs never sees the banding it must undo. Defaults to False.
    """

    def __init__(self, gamma_range=(2.0, 3.5), max_shot: float = 0.01, max_read: float = 0.02,
                 luminance_share: float = 0.0, eight_bit: bool = False,
                 exposure_share: float = 0.0, exposure_range=(0.01, 0.1), **kwargs):
        kwargs.setdefault("name", "darken")
        super().__init__(**kwargs)
        low, high = (float(value) for value in gamma_range)
        if not 1.0 <= low <= high:
            raise ValueError(f"gamma_range must satisfy 1 <= low <= high (gamma > 1 darkens), "
                             f"got {gamma_range}.")
        if float(max_shot) < 0 or float(max_read) < 0:
            raise ValueError(f"Noise levels must be >= 0, got max_shot={max_shot}, "
                             f"max_read={max_read}.")
        if not 0.0 <= float(luminance_share) <= 1.0:
            raise ValueError(f"luminance_share is a share of the images, in [0, 1]; got "
                             f"{luminance_share}.")
        if not 0.0 <= float(exposure_share) <= 1.0:
            raise ValueError(f"exposure_share is a share of the images, in [0, 1]; got "
                             f"{exposure_share}.")
        shortest, longest = (float(value) for value in exposure_range)
        if not 0.0 < shortest <= longest <= 1.0:
            raise ValueError(f"exposure_range is the linear light kept, 0 < low <= high <= 1 "
                             f"(0.1 = 10 times shorter); got {exposure_range}.")
        self.exposure_share, self.exposure_range = float(exposure_share), (shortest, longest)
        self.gamma_range = (low, high)
        self.max_shot, self.max_read = float(max_shot), float(max_read)
        self.luminance_share = float(luminance_share)
        self.eight_bit = bool(eight_bit)

    def degrade(self, clean, batch, seed):
        clean = tf.cast(clean, tf.float32)  # numpy float64 arrays too
        # 1. Per image: gamma, shot and read levels, drawn for the global batch.
        count = batch.global_batch_size

        def per_image(values):  # this replica's rows of global per-image draws, broadcastable
            return tf.reshape(batch.slice(values), [-1, 1, 1, 1])

        levels = keras.random.uniform((count, 3), seed=seed)
        low, high = self.gamma_range
        gamma = low + (high - low) * levels[:, 0]
        shot, read = self.max_shot * levels[:, 1], self.max_read * levels[:, 2]
        gamma, shot, read = (per_image(value) for value in (gamma, shot, read))
        # 2. Darken, then heteroscedastic sensor noise, clipped like a sensor's output.
        clean = tf.clip_by_value(clean, 0.0, 1.0)
        dark = tf.pow(clean, gamma)
        if self.luminance_share > 0 and clean.shape[-1] == 3:
            luminance = tf.reduce_sum(clean * LUMA_WEIGHTS, axis=-1, keepdims=True)
            # Y ** gamma / Y <= 1 for Y in [0, 1]: no channel leaves [0, 1]; black stays black.
            kept_colour = clean * tf.math.divide_no_nan(tf.pow(luminance, gamma), luminance)
            if self.luminance_share < 1:
                # Drawn after the levels and only here: share 0 keeps the protocol's stream.
                chosen = keras.random.uniform((count,), seed=seed) < self.luminance_share
                kept_colour = tf.where(per_image(chosen), kept_colour, dark)
            dark = kept_colour
        if self.exposure_share > 0:
            # Drawn after the gamma's draws and only here: share 0 keeps the protocol's stream.
            draws = keras.random.uniform((count, 2), seed=seed)
            log_low, log_high = (math.log(value) for value in self.exposure_range)
            ratio = tf.exp(log_low + (log_high - log_low) * draws[:, 0])
            shorter = clean * per_image(ratio ** (1.0 / DISPLAY_GAMMA))
            dark = tf.where(per_image(draws[:, 1] < self.exposure_share), shorter, dark)
        shape = tf.concat([[count], tf.shape(clean)[1:]], axis=0)
        noise = batch.slice(keras.random.normal(shape, seed=seed))
        dark = tf.clip_by_value(dark + noise * tf.sqrt(shot * dark + read ** 2), 0.0, 1.0)
        if self.eight_bit:
            dark = tf.round(dark * 255.0) / 255.0
        return dark, None

    def check_options(self, conditioned, scale=None, **options):
        super().check_options(conditioned, scale=scale, **options)
        return None

    def get_config(self):
        return {**super().get_config(), "gamma_range": list(self.gamma_range),
                "max_shot": self.max_shot, "max_read": self.max_read,
                "luminance_share": self.luminance_share, "eight_bit": self.eight_bit,
                "exposure_share": self.exposure_share,
                "exposure_range": list(self.exposure_range)}
