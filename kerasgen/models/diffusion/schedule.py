"""The noise schedule: every diffusion formula, written once, used by training and all samplers.

Notation of Ho et al. 2020 (https://arxiv.org/abs/2006.11239): beta_t the noise added at step
t, alpha_bar_t = prod(1 - beta_s, s <= t), and x_t = sqrt(alpha_bar_t) x_0 +
sqrt(1 - alpha_bar_t) eps. Timesteps are 0-based indices 0 .. T-1 (the paper's 1 .. T); index
-1 stands for the clean image (alpha_bar = 1).

One update, `step`, serves every sampler: the generalised DDIM step of Song et al. 2021
(https://arxiv.org/abs/2010.02502, eq. 12). With eta = 1 between consecutive timesteps it is
DDPM's ancestral step (its sigma_t^2 is then the posterior variance beta~_t and its mean the
posterior mean), with eta = 0 the deterministic DDIM step.

Example:
    >>> schedule = NoiseSchedule("cosine", num_timesteps=1000)
    >>> noisy = schedule.add_noise(images, noise, timesteps)
    >>> previous = schedule.step(prediction, noisy, timesteps, timesteps - 1, eta=1.0,
    ...                          noise=fresh_noise)
"""

import math

import numpy as np
import tensorflow as tf

SCHEDULES = ("linear", "cosine")
PREDICTIONS = ("epsilon", "v")
# Ho et al. 2020, section 4: beta from 1e-4 to 0.02 over T = 1000 steps.
LINEAR_BETA_START, LINEAR_BETA_END = 1e-4, 0.02
# Nichol & Dhariwal 2021 (https://arxiv.org/abs/2102.09672), eq. 17 and its beta clip at 0.999.
COSINE_OFFSET, MAX_BETA = 0.008, 0.999


def betas_for(kind, num_timesteps):
    """beta_t, t = 0 .. T-1 (float64 numpy), for a schedule `kind` of T steps."""
    if kind not in SCHEDULES:
        raise ValueError(f"Unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}.")
    if int(num_timesteps) < 1:
        raise ValueError(f"num_timesteps must be at least 1, got {num_timesteps}.")
    if kind == "linear":
        # Scaled so that any T spans the same noise as the paper's T = 1000 (Nichol &
        # Dhariwal 2021, section 3.2's "scale").
        scale = 1000.0 / num_timesteps
        return np.linspace(scale * LINEAR_BETA_START, min(scale * LINEAR_BETA_END, MAX_BETA),
                           num_timesteps, dtype=np.float64)
    steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
    f = np.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return np.minimum(1.0 - alpha_bar[1:] / alpha_bar[:-1], MAX_BETA)


def check_prediction(prediction):
    if prediction not in PREDICTIONS:
        raise ValueError(f"Unknown prediction {prediction!r}; valid: {', '.join(PREDICTIONS)}.")
    return prediction


class NoiseSchedule:
    """The forward process q(x_t | x_0) of a diffusion model and its reverse steps.

    Args:
        kind: str. `"linear"` (Ho et al. 2020) or `"cosine"` (Nichol & Dhariwal 2021).
            Defaults to `"cosine"`.
        num_timesteps: int. T. Defaults to 1000.
        prediction: str. What the network predicts: `"epsilon"` (the noise, Ho et al. 2020)
            or `"v"` (v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x_0, Salimans & Ho 2022,
            https://arxiv.org/abs/2202.00512). Defaults to `"epsilon"`.

    Reference: https://arxiv.org/abs/2006.11239, https://arxiv.org/abs/2010.02502
    """

    def __init__(self, kind="cosine", num_timesteps=1000, prediction="epsilon"):
        self.kind = kind
        self.num_timesteps = int(num_timesteps)
        self.prediction = check_prediction(prediction)
        self.betas = betas_for(kind, self.num_timesteps)
        self.alpha_bars = np.cumprod(1.0 - self.betas)
        # alpha_bar of index t - 1; index -1 is the clean image.
        self.previous_alpha_bars = np.concatenate([[1.0], self.alpha_bars[:-1]])
        self.posterior_variances = (self.betas * (1.0 - self.previous_alpha_bars)
                                    / (1.0 - self.alpha_bars))
        # Looked up at index t + 1, so that t = -1 (the clean image) reads alpha_bar = 1; 1 -
        # alpha_bar has its own table, exact near t = 0 where float32 would cancel.
        self._alpha_bar_table = tf.constant(np.concatenate([[1.0], self.alpha_bars]), tf.float32)
        self._noise_variance_table = tf.constant(np.concatenate([[0.0], 1.0 - self.alpha_bars]),
                                                 tf.float32)

    def get_config(self):
        return {"kind": self.kind, "num_timesteps": self.num_timesteps,
                "prediction": self.prediction}

    @staticmethod
    def _lookup(table, timesteps):
        indices = tf.cast(tf.reshape(timesteps, [-1]), tf.int32) + 1
        return tf.reshape(tf.gather(table, indices), [-1, 1, 1, 1])

    def alpha_bar(self, timesteps):
        """alpha_bar at int `timesteps` `[N]` (-1: 1), shaped `[N, 1, 1, 1]`."""
        return self._lookup(self._alpha_bar_table, timesteps)

    def noise_variance(self, timesteps):
        """1 - alpha_bar at int `timesteps` `[N]` (-1: 0), shaped `[N, 1, 1, 1]`."""
        return self._lookup(self._noise_variance_table, timesteps)

    def snr(self, timesteps):
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar), `[N]`."""
        return tf.reshape(self.alpha_bar(timesteps) / self.noise_variance(timesteps), [-1])

    # --- the forward process -----------------------------------------------------------------

    def add_noise(self, clean, noise, timesteps):
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4)."""
        return (tf.sqrt(self.alpha_bar(timesteps)) * clean
                + tf.sqrt(self.noise_variance(timesteps)) * noise)

    def renoise(self, images, from_timesteps, to_timesteps, noise):
        """q(x_to | x_from) for to > from: the forward jump RePaint's resampling takes."""
        ratio = self.alpha_bar(to_timesteps) / self.alpha_bar(from_timesteps)
        return tf.sqrt(ratio) * images + tf.sqrt(1.0 - ratio) * noise

    def target(self, clean, noise, timesteps):
        """What the network learns to output: eps, or v."""
        if self.prediction == "epsilon":
            return noise
        return (tf.sqrt(self.alpha_bar(timesteps)) * noise
                - tf.sqrt(self.noise_variance(timesteps)) * clean)

    def loss_weights(self, timesteps, min_snr_gamma=0.0):
        """Per-example weights of the MSE on the network's target: 1, or the min-SNR-gamma
        weights (Hang et al. 2023, https://arxiv.org/abs/2303.09556, eq. 8 and its v form)."""
        if not min_snr_gamma:
            return tf.ones(tf.shape(tf.reshape(timesteps, [-1])), tf.float32)
        snr = self.snr(timesteps)
        clipped = tf.minimum(snr, float(min_snr_gamma))
        return clipped / snr if self.prediction == "epsilon" else clipped / (snr + 1.0)

    # --- the reverse process -----------------------------------------------------------------

    def split_prediction(self, output, noisy, timesteps, clip=True):
        """`(x_0, eps)` that a network output at `timesteps` implies. With `clip`, x_0 is
        clipped to [-1, 1] and eps recomputed from it, so that the pair stays consistent
        with x_t (as DDPM's sampler clips, https://github.com/hojonathanho/diffusion)."""
        signal = tf.sqrt(self.alpha_bar(timesteps))
        sigma = tf.sqrt(self.noise_variance(timesteps))
        if self.prediction == "epsilon":
            clean = (noisy - sigma * output) / signal
            noise = output
        else:
            clean = signal * noisy - sigma * output
            noise = signal * output + sigma * noisy
        if clip:
            clean = tf.clip_by_value(clean, -1.0, 1.0)
            noise = (noisy - signal * clean) / sigma
        return clean, noise

    def step(self, output, noisy, timesteps, previous_timesteps, eta=0.0, noise=None,
             clip=True):
        """x_prev from x_t and the network's output: the generalised DDIM step (Song et al.
        2021, eq. 12), `previous_timesteps` < `timesteps` (-1: the clean image).

        sigma^2 = eta^2 (1 - a_prev) / (1 - a_t) (1 - a_t / a_prev); `noise` (needed when
        eta > 0) is the fresh N(0, I) draw.
        """
        clean, predicted_noise = self.split_prediction(output, noisy, timesteps, clip)
        alpha_bar, previous = self.alpha_bar(timesteps), self.alpha_bar(previous_timesteps)
        previous_variance = self.noise_variance(previous_timesteps)
        variance = ((eta ** 2) * previous_variance / self.noise_variance(timesteps)
                    * (1.0 - alpha_bar / previous))
        direction = tf.sqrt(tf.maximum(previous_variance - variance, 0.0)) * predicted_noise
        images = tf.sqrt(previous) * clean + direction
        if eta:
            if noise is None:
                raise ValueError("A step with eta > 0 needs its noise draw.")
            images = images + tf.sqrt(variance) * noise
        return images

    def timesteps(self, num_steps):
        """The descending timesteps of a `num_steps` sampler, int32 numpy, "trailing"
        spacing (Lin et al. 2024, https://arxiv.org/abs/2305.08891, table 2): it starts at
        T-1, so the first step sees pure noise, and `num_steps` = T gives T-1 .. 0."""
        num_steps = int(num_steps)
        if not 1 <= num_steps <= self.num_timesteps:
            raise ValueError(f"The number of sampling steps must be in [1, "
                             f"{self.num_timesteps}] (the model's timesteps), got {num_steps}.")
        spacing = self.num_timesteps / num_steps
        steps = np.round(self.num_timesteps - np.arange(num_steps) * spacing) - 1
        return steps.astype(np.int32)
