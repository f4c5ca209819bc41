"""Log-densities in nats for likelihood-based models (VAEs; later autoregressive models).

Every function returns one value per example (summed over all other axes), so that a
`train_step` can average it over the global batch (see `kerasgen.distribute`).

Image likelihoods take targets as intensities in [0, 1] and the decoder's output `params`:
- `"bernoulli"`: `params` are logits, one channel per image channel; targets must be binary.
- `"gaussian"`: `params` hold `C` location and `C` log-scale channels; a density on [0, 1]
  (not a probability: its NLL cannot be compared with discrete models).
- `"discretized_logistic"`: same `params`; the probability of each of the 256 uint8 levels
  (Salimans et al. 2017, https://arxiv.org/abs/1701.05517, section 2.1), so the NLL is in
  nats of 8-bit data and comparable with any discrete model's.
"""

import math

import keras
import numpy as np
import tensorflow as tf

LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic")
# How binary-likelihood models see grey data: a fresh binary draw per step, or as it is.
BINARIZATIONS = ("dynamic", "none")
# PixelCNN++'s lower bound on the log scale: keeps the bin probabilities finite.
MIN_LOG_SCALE = -7.0
_LEVELS = 255.0
_HALF_BIN = 0.5 / _LEVELS


def _sum_per_example(values):
    return tf.reduce_sum(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)


def log_normal(values, mean, log_variance):
    """log N(values; mean, exp(log_variance)) summed over the last axis."""
    return -0.5 * tf.reduce_sum(
        math.log(2.0 * math.pi) + log_variance
        + tf.square(values - mean) * tf.exp(-log_variance), axis=-1)


def log_standard_normal(values):
    """log N(values; 0, I) summed over the last axis."""
    return -0.5 * tf.reduce_sum(math.log(2.0 * math.pi) + tf.square(values), axis=-1)


def gaussian_kl(mean, log_variance):
    """KL(N(mean, diag exp(log_variance)) || N(0, I)) in closed form, per example.

    Kingma & Welling 2014, https://arxiv.org/abs/1312.6114, appendix B.
    """
    return 0.5 * tf.reduce_sum(
        tf.square(mean) + tf.exp(log_variance) - 1.0 - log_variance, axis=-1)


def channels_per_image_channel(likelihood):
    """Decoder output channels per image channel: 1 (logits) or 2 (location, log-scale)."""
    check_likelihood(likelihood)
    return 1 if likelihood == "bernoulli" else 2


def check_likelihood(likelihood):
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"Unknown likelihood {likelihood!r}; valid: {list(LIKELIHOODS)}.")


def split_location_scale(params):
    """`(location, log_scale)` from params with 2C channels; the log-scale is bounded below."""
    location, log_scale = tf.split(params, 2, axis=-1)
    return location, tf.maximum(log_scale, MIN_LOG_SCALE)


def bernoulli_log_prob(targets, logits):
    """log p(targets | logits) for binary targets, per example."""
    return -_sum_per_example(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))


def gaussian_log_prob(targets, params):
    """log N(targets; location, exp(log_scale)^2), per example."""
    location, log_scale = split_location_scale(params)
    return _sum_per_example(log_normal(targets[..., None], location[..., None],
                                       2.0 * log_scale[..., None]))


def discretized_logistic_log_prob(targets, params):
    """log P(uint8 level of `targets`) under a logistic discretised into 256 bins, per example.

    The bins are [x - 0.5/255, x + 0.5/255]; the first and last extend to -inf and +inf, so
    the 256 probabilities sum to one (https://arxiv.org/abs/1701.05517, equation 2).
    """
    location, log_scale = split_location_scale(params)
    centered = targets - location
    inverse_scale = tf.exp(-log_scale)
    upper = inverse_scale * (centered + _HALF_BIN)
    lower = inverse_scale * (centered - _HALF_BIN)
    log_cdf_upper = upper - tf.nn.softplus(upper)  # log sigmoid(upper), for the level 0
    log_survival_lower = -tf.nn.softplus(lower)     # log (1 - sigmoid(lower)), for level 255
    bin_probability = tf.sigmoid(upper) - tf.sigmoid(lower)
    # Where the bin probability underflows, the density at the centre times the bin width.
    middle = inverse_scale * centered
    log_density_mid = middle - log_scale - 2.0 * tf.nn.softplus(middle) - math.log(_LEVELS)
    log_bin = tf.where(bin_probability > 1e-5,
                       tf.math.log(tf.maximum(bin_probability, 1e-12)), log_density_mid)
    log_prob = tf.where(targets < _HALF_BIN, log_cdf_upper,
                        tf.where(targets > 1.0 - _HALF_BIN, log_survival_lower, log_bin))
    return _sum_per_example(log_prob)


def categorical_log_prob(levels, logits):
    """log p(levels | logits) of integer levels under a softmax over the last axis of `logits`
    (one class per level: 256 for 8-bit data, van den Oord et al. 2016), per example."""
    return -_sum_per_example(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(levels, tf.int32), logits=logits))


_LOG_PROBS = {
    "bernoulli": bernoulli_log_prob,
    "gaussian": gaussian_log_prob,
    "discretized_logistic": discretized_logistic_log_prob,
}


def image_log_prob(likelihood, targets, params):
    """log p(targets | params) per example for a likelihood named in `LIKELIHOODS`."""
    check_likelihood(likelihood)
    return _LOG_PROBS[likelihood](targets, params)


def image_mean(likelihood, params):
    """The decoder's expected image, intensities in [0, 1]."""
    check_likelihood(likelihood)
    if likelihood == "bernoulli":
        return tf.sigmoid(params)
    return tf.clip_by_value(split_location_scale(params)[0], 0.0, 1.0)


# --- the data a likelihood model is trained and evaluated on ----------------------------------


def check_binarize(binarize, likelihood):
    """The binarisation a model with `likelihood` uses (`None`: dynamic for Bernoulli, else
    none); refused where unknown or where the likelihood is not Bernoulli."""
    binarize = binarize or ("dynamic" if likelihood == "bernoulli" else "none")
    if binarize not in BINARIZATIONS:
        raise ValueError(f"Unknown binarize {binarize!r}; valid: {list(BINARIZATIONS)}.")
    if binarize == "dynamic" and likelihood != "bernoulli":
        raise ValueError(f"binarize='dynamic' needs likelihood='bernoulli', got {likelihood!r}.")
    return binarize


def training_targets(images, likelihood, binarize, batch, seed_generator):
    """Intensities in [0, 1] from a batch in [-1, 1], binarised as configured.

    `binarize="dynamic"` draws x ~ Bernoulli(intensity) afresh at every step (Salakhutdinov &
    Murray 2008; the IWAE paper's protocol), the noise drawn for the global batch and sliced
    per replica (`batch`, a `kerasgen.distribute.ReplicaBatch`). A Bernoulli model given grey
    levels without it stops with an error naming the fix.
    """
    intensities = tf.clip_by_value((tf.cast(images, tf.float32) + 1.0) * 0.5, 0.0, 1.0)
    if binarize == "dynamic":
        noise = batch.slice(keras.random.uniform(
            (batch.global_batch_size, *intensities.shape[1:]), seed=seed_generator))
        return tf.cast(noise < intensities, tf.float32)
    if likelihood == "bernoulli":
        binary = tf.reduce_all(tf.logical_or(intensities < 1e-3, intensities > 1.0 - 1e-3))
        tf.debugging.Assert(binary, [
            "A Bernoulli model needs binary images (all pixels 0 or 255), and this batch "
            "has grey levels. Use binarize='dynamic', or a likelihood of grey levels "
            "(discretized_logistic for VAEs, categorical for PixelCNN)."])
        return tf.round(intensities)
    return intensities


def binarize_fixed(images, seed=0):
    """A fixed stochastic binarisation of uint8 images (the test set of the NLL protocol)."""
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"binarize_fixed takes uint8 images, got {images.dtype}.")
    noise = np.random.default_rng(seed).random(images.shape, dtype=np.float32)
    return (noise < images / np.float32(255.0)).astype(np.float32)


def evaluation_targets(likelihood, images, seed=0):
    """The targets a likelihood is evaluated on, from uint8 images: binarised once (fixed
    seed) for Bernoulli, else intensities value / 255."""
    if likelihood == "bernoulli":
        return binarize_fixed(images, seed)
    return np.asarray(images, np.float32) / 255.0


def importance_sampled_nll(log_weights_of, targets, labels, noise_shape, num_samples, seed=0,
                           max_batch=4096):
    """Per-image NLL estimate and negative ELBO in nats from importance weights (Burda et al.
    2016, https://arxiv.org/abs/1509.00519, section 5).

    NLL = -log (1/k) sum_i w_i and -ELBO = -(1/k) sum_i log w_i, with w_i = p(x, z_i) /
    q(z_i | x) from the same k samples; the estimate is an upper bound of the true NLL that
    tightens as k grows and never exceeds the negative ELBO.

    Args:
        log_weights_of: callable `(targets, labels, noise [n, chunk, *noise_shape])` ->
            log w `[n, chunk]` (a model's reparameterised pass).
        targets: float array `[N, ...]` the model scores.
        labels: int array `[N]` or None.
        noise_shape: tuple. One sample's standard normal noise.
        num_samples: int. k.
        seed: int. The noise is a function of (seed, image index) alone, so the estimate does
            not depend on how images are batched.
        max_batch: int. Most model passes (images x samples) per call.

    Returns:
        `(nll, negative_elbo)`: float64 arrays `[N]`.
    """
    if int(num_samples) < 1:
        raise ValueError(f"The number of importance samples k must be at least 1, got "
                         f"{num_samples}.")
    chunk = int(min(num_samples, max_batch))
    images_per_call = max(1, max_batch // chunk)
    nll, negative_elbo = [], []
    for start in range(0, len(targets), images_per_call):
        batch_targets = tf.constant(targets[start:start + images_per_call])
        batch_labels = None if labels is None else tf.constant(
            np.asarray(labels[start:start + images_per_call], np.int32))
        count = int(batch_targets.shape[0])
        noise = np.stack([
            np.random.default_rng([seed, start + row]).standard_normal(
                (num_samples, *noise_shape), dtype=np.float32) for row in range(count)])
        log_weights = [
            log_weights_of(batch_targets, batch_labels,
                           tf.constant(noise[:, offset:offset + chunk])).numpy()
            for offset in range(0, num_samples, chunk)]
        log_weights = np.concatenate(log_weights, axis=1).astype(np.float64)
        peak = log_weights.max(axis=1, keepdims=True)
        nll.append(-(np.log(np.mean(np.exp(log_weights - peak), axis=1)) + peak[:, 0]))
        negative_elbo.append(-log_weights.mean(axis=1))
    return np.concatenate(nll), np.concatenate(negative_elbo)
