"""Variational autoencoders: VAE (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114),
beta-VAE (Higgins et al. 2017, https://openreview.net/forum?id=Sy2fzU9gl), conditional VAE
(Sohn et al. 2015, https://papers.nips.cc/paper/5775) and the IWAE objective (Burda et al. 2016,
https://arxiv.org/abs/1509.00519), trained with `fit` and judged by log-likelihood in nats.

Data in: batches in [-1, 1] as every kerasgen dataset yields them; the model works on
intensities x in [0, 1]. With the Bernoulli likelihood, `binarize="dynamic"` draws a fresh
binary image x ~ Bernoulli(intensity) at every step (dynamically binarized MNIST, the protocol of
the IWAE paper's tables).

Example:
    >>> vae = build_vae((28, 28, 1), latent_dim=50, seed=0)
    >>> vae.compile()
    >>> vae.fit(kerasgen.data.load_dataset("mnist", batch_size=128), epochs=10)
    >>> nll, neg_elbo = vae.importance_sampled_nll(test_targets, num_samples=5000)
"""

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from kerasgen import distributions
from kerasgen.data import unit_to_uint8
from kerasgen.export import ServingSpec
from kerasgen.layers import LabelEmbedding
from kerasgen.models.base import (ELBOTraining, LatentSampling, SeededModel, SingleOptimizer,
                                  check_labels, latents_from_seeds, unpack_labelled)
from kerasgen.models.dcgan import num_upsamplings
from kerasgen.models.preset import ModelPreset
from kerasgen.tasks import Generation, GenerativeModel

KERNEL_SIZE = 4
LABEL_EMBEDDING = "label_embedding"
# Most decoder passes one call of the NLL estimator makes (images x importance samples).
MAX_DECODER_BATCH = 4096


def _initializer(seed):
    return keras.initializers.HeNormal(seed=seed)


def _with_label(features, inputs, num_classes, size, seed, name):
    """`features`, joined with a learned `size`-d embedding of a new int label input if
    `num_classes` (the label `Input` is appended to `inputs`)."""
    if not num_classes:
        return features
    label = keras.Input((), dtype="int32", name="label")
    inputs.append(label)
    embedded = LabelEmbedding(num_classes, size, seed=seed, name=LABEL_EMBEDDING)(label)
    return layers.Concatenate(name=name)([features, embedded])


def build_encoder(image_shape, latent_dim, base_filters=32, hidden_units=256, num_classes=None,
                  seed=None, name="encoder"):
    """q(z | x): intensities in [0, 1] -> `[mean, log_variance]` of a diagonal Gaussian.

    Args:
        image_shape: (int, int, int). Input (height, width, channels).
        latent_dim: int. Size of z.
        base_filters: int. Filters of the first stride-2 convolution; each next one doubles.
            Defaults to 32.
        hidden_units: int. Width of the dense layer before the Gaussian's parameters.
            Defaults to 256.
        num_classes: int. If set, the encoder also takes an int label (conditional VAE).
        seed: int. Seed of the weight initialisers. Defaults to None.
        name: str. Defaults to `"encoder"`.
    """
    images = keras.Input(tuple(image_shape), name="images")
    x = images
    filters = base_filters
    for step in range(num_upsamplings(image_shape)):
        x = layers.Conv2D(filters, KERNEL_SIZE, strides=2, padding="same", activation="relu",
                          kernel_initializer=_initializer(seed), name=f"down{step}")(x)
        filters *= 2
    x = layers.Flatten(name="flatten")(x)
    inputs = [images]
    x = _with_label(x, inputs, num_classes, hidden_units, seed, "features_and_label")
    x = layers.Dense(hidden_units, activation="relu", kernel_initializer=_initializer(seed),
                     name="hidden")(x)
    # Small initial weights: q starts near N(0, I), so the first steps' KL stays small.
    small = keras.initializers.RandomNormal(stddev=1e-3, seed=seed)
    mean = layers.Dense(latent_dim, kernel_initializer=small, dtype="float32", name="mean")(x)
    log_variance = layers.Dense(latent_dim, kernel_initializer=small, dtype="float32",
                                name="log_variance")(x)
    return keras.Model(inputs if num_classes else images, [mean, log_variance], name=name)


def build_decoder(latent_dim, image_shape, likelihood="bernoulli", base_filters=32,
                  hidden_units=256, num_classes=None, seed=None, name="decoder"):
    """p(x | z): latent -> the likelihood's parameters per pixel (see `kerasgen.distributions`).

    Args:
        latent_dim: int. Size of z.
        image_shape: (int, int, int). Output (height, width, channels).
        likelihood: str. A name in `kerasgen.distributions.LIKELIHOODS`. Defaults to
            `"bernoulli"` (C logit channels); the others output 2C channels.
        base_filters, hidden_units, num_classes, seed: as in `build_encoder` (mirrored).
        name: str. Defaults to `"decoder"`.
    """
    height, width, channels = image_shape
    steps = num_upsamplings(image_shape)
    out_channels = channels * distributions.channels_per_image_channel(likelihood)
    latent = keras.Input((latent_dim,), name="latent")
    inputs = [latent]
    x = _with_label(latent, inputs, num_classes, latent_dim, seed, "latent_and_label")
    x = layers.Dense(hidden_units, activation="relu", kernel_initializer=_initializer(seed),
                     name="hidden")(x)
    filters = base_filters * 2 ** (steps - 1)
    start_height, start_width = height // 2 ** steps, width // 2 ** steps
    x = layers.Dense(start_height * start_width * filters, activation="relu",
                     kernel_initializer=_initializer(seed), name="project")(x)
    x = layers.Reshape((start_height, start_width, filters), name="to_map")(x)
    for step in range(steps - 1):
        filters //= 2
        x = layers.Conv2DTranspose(filters, KERNEL_SIZE, strides=2, padding="same",
                                   activation="relu", kernel_initializer=_initializer(seed),
                                   name=f"up{step}")(x)
    params = layers.Conv2DTranspose(
        out_channels, KERNEL_SIZE, strides=2, padding="same", dtype="float32",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed), name="params")(x)
    return keras.Model(inputs if num_classes else latent, params, name=name)


@keras.saving.register_keras_serializable(package="kerasgen")
class VAE(ELBOTraining, SingleOptimizer, LatentSampling, GenerativeModel, SeededModel):
    """Trains an encoder q(z|x) and a decoder p(x|z) with `fit` on the (beta-)ELBO or IWAE bound.

    Args:
        encoder: `keras.Model`. Intensities in [0, 1] -> `[mean, log_variance]`.
        decoder: `keras.Model`. Latent -> likelihood parameters (`kerasgen.distributions`).
        likelihood: str. `"bernoulli"`, `"gaussian"` or `"discretized_logistic"`. Defaults to
            `"bernoulli"`.
        beta: float. Weight of the KL term (beta-VAE; 1 is the ELBO). Defaults to 1.
        kl_warmup_steps: int. Ramp the KL weight linearly from 0 to `beta` over this many
            optimizer steps (Bowman et al. 2016, https://arxiv.org/abs/1511.06349). Defaults
            to 0 (no warm-up).
        num_importance_samples: int. k of the IWAE bound; 1 trains on the ELBO. Defaults to 1.
        binarize: str. `"dynamic"` (Bernoulli only: a fresh binary sample of every image at
            every step) or `"none"` (the data must already be binary for Bernoulli). Defaults
            to `"dynamic"` for Bernoulli, else `"none"`.
        seed: int. Seed of the noise and binarisation stream. Defaults to None.

    Example:
        >>> vae = VAE(build_encoder((28, 28, 1), 50), build_decoder(50, (28, 28, 1)))
        >>> vae.compile()
        >>> vae.fit(dataset, epochs=10)

    Reference: https://arxiv.org/abs/1312.6114, https://arxiv.org/abs/1509.00519
    """

    has_likelihood = True

    def __init__(self, encoder, decoder, likelihood="bernoulli", beta=1.0, kl_warmup_steps=0,
                 num_importance_samples=1, binarize=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        distributions.check_likelihood(likelihood)
        binarize = distributions.check_binarize(binarize, likelihood)
        if beta < 0 or kl_warmup_steps < 0:
            raise ValueError(f"beta and kl_warmup_steps must be >= 0, got {beta}, {kl_warmup_steps}.")
        if int(num_importance_samples) < 1:
            raise ValueError(f"num_importance_samples must be >= 1, got {num_importance_samples}.")
        if num_importance_samples > 1 and (beta != 1.0 or kl_warmup_steps):
            raise ValueError(
                "beta and kl_warmup_steps weight the ELBO's KL term, which the IWAE bound "
                "(num_importance_samples > 1) does not have; use one or the other.")
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.beta = float(beta)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.num_importance_samples = int(num_importance_samples)
        self.binarize = binarize
        self._create_trackers()
        self.built = True
        self._check_networks()

    def _check_networks(self):
        encoder_shape = self._first(self.encoder.input_shape)
        decoder_out = self.decoder.output_shape
        expected = encoder_shape[-1] * distributions.channels_per_image_channel(self.likelihood)
        if tuple(decoder_out[1:3]) != tuple(encoder_shape[1:3]) or decoder_out[-1] != expected:
            raise ValueError(
                f"The decoder outputs {tuple(decoder_out[1:])}, but images of shape "
                f"{tuple(encoder_shape[1:])} with a {self.likelihood} likelihood need "
                f"{(*encoder_shape[1:3], expected)}.")
        if self._first(self.encoder.output_shape)[-1] != self.latent_dim:
            raise ValueError(
                f"The encoder makes {self._first(self.encoder.output_shape)[-1]}-d latents, the "
                f"decoder takes {self.latent_dim}-d ones.")

    @staticmethod
    def _first(shape):
        return shape[0] if isinstance(shape, list) else shape

    @property
    def latent_dim(self):
        return self._first(self.decoder.input_shape)[-1]

    @property
    def image_shape(self):
        return tuple(self._first(self.encoder.input_shape)[1:])

    def call(self, inputs, training=False):
        """Reconstructions (the decoder's mean image in [0, 1]) of intensities in [0, 1]."""
        mean, _ = self._encode(inputs, None, training)
        return distributions.image_mean(self.likelihood, self._decode(mean, None, training))

    # --- hooks that the conditional subclass overrides --------------------------------------

    def _unpack(self, data):
        """`(images, labels or None)` from a batch of `fit` data."""
        return (data[0] if isinstance(data, (tuple, list)) else data), None

    def _encode(self, targets, labels, training):
        return self.encoder(targets, training=training)

    def _decode(self, latents, labels, training):
        return self.decoder(latents, training=training)

    # --- the objective ----------------------------------------------------------------------

    def _targets(self, images, batch):
        """Intensities in [0, 1] from data in [-1, 1]; binarised as configured."""
        return distributions.training_targets(images, self.likelihood, self.binarize, batch,
                                              self.seed_generator)

    def beta_now(self):
        """The KL weight at the optimizer's current step (after any warm-up)."""
        if not self.kl_warmup_steps:
            return tf.constant(self.beta)
        step = tf.cast(self.optimizer.iterations, tf.float32) if self.optimizer else 0.0
        return self.beta * tf.minimum(1.0, step / float(self.kl_warmup_steps))

    def _log_weights(self, targets, labels, noise, training):
        """log w = log p(x|z) + log p(z) - log q(z|x) for z = mean + sigma * noise.

        noise: `[batch, k, latent_dim]`. Returns `(log_w, log_px, kl)`: `[batch, k]`,
        `[batch, k]`, `[batch]` (closed-form KL of q).
        """
        mean, log_variance = self._encode(targets, labels, training)
        num_samples = tf.shape(noise)[1]
        # 1. Reparameterise: z = mu + sigma * eps (Kingma & Welling 2014, section 2.4).
        latents = mean[:, None] + tf.exp(0.5 * log_variance)[:, None] * noise
        flat_latents = tf.reshape(latents, [-1, self.latent_dim])
        repeated_labels = None if labels is None else tf.repeat(labels, num_samples, axis=0)
        params = self._decode(flat_latents, repeated_labels, training)
        # 2. log p(x | z) under the decoder, one value per (image, sample).
        log_px = distributions.image_log_prob(
            self.likelihood, tf.repeat(targets, num_samples, axis=0), params)
        log_px = tf.reshape(log_px, [-1, num_samples])
        # 3. log p(z) - log q(z | x): the importance weight's prior ratio.
        log_ratio = (distributions.log_standard_normal(latents)
                     - distributions.log_normal(latents, mean[:, None], log_variance[:, None]))
        return log_px + log_ratio, log_px, distributions.gaussian_kl(mean, log_variance)

    def _objective(self, targets, labels, batch, training):
        """Per-example `(loss, reconstruction, kl)` in nats."""
        noise = batch.slice(keras.random.normal(
            (batch.global_batch_size, self.num_importance_samples, self.latent_dim),
            seed=self.seed_generator))
        log_weights, log_px, kl = self._log_weights(targets, labels, noise, training)
        reconstruction = -tf.reduce_mean(log_px, axis=1)
        if self.num_importance_samples == 1:
            # 4a. Negative (beta-)ELBO with the KL in closed form (appendix B of the paper).
            loss = reconstruction + self.beta_now() * kl
        else:
            # 4b. Negative IWAE bound: -log (1/k) sum_i w_i (Burda et al. 2016, equation 8).
            loss = -(tf.reduce_logsumexp(log_weights, axis=1)
                     - tf.math.log(tf.cast(self.num_importance_samples, tf.float32)))
        return loss, reconstruction, kl

    # --- likelihood evaluation --------------------------------------------------------------

    def importance_sampled_nll(self, targets, labels=None, num_samples=5000, seed=0,
                               max_decoder_batch=MAX_DECODER_BATCH):
        """Per-image NLL estimate and negative ELBO, in nats (Burda et al. 2016, section 5).

        NLL = -log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x); it is an upper bound of
        the true NLL that tightens as k grows, and never exceeds the negative ELBO estimated
        from the same samples, -(1/k) sum_i log w_i.

        Args:
            targets: float array `[N, H, W, C]` of intensities in [0, 1] (binary for
                Bernoulli; see `binarize_fixed`).
            labels: int array `[N]` for a conditional VAE. Defaults to None.
            num_samples: int. k. Defaults to 5000 (the paper's).
            seed: int. The samples are a function of (seed, image index, sample index).
            max_decoder_batch: int. Most decoder passes per call (memory bound).

        Returns:
            `(nll, negative_elbo)`: float64 arrays `[N]`.
        """
        targets = np.asarray(targets, np.float32)
        if targets.ndim != 4 or tuple(targets.shape[1:]) != self.image_shape:
            raise ValueError(f"targets must have shape [N, {', '.join(map(str, self.image_shape))}]"
                             f", got {list(targets.shape)}.")
        if targets.min() < 0.0 or targets.max() > 1.0:
            raise ValueError("targets must be intensities in [0, 1] (uint8 / 255).")
        if self.likelihood == "bernoulli" and not np.isin(targets, (0.0, 1.0)).all():
            raise ValueError("A Bernoulli decoder is evaluated on binary images; binarize them "
                             "first, e.g. with kerasgen.distributions.binarize_fixed(images).")
        return distributions.importance_sampled_nll(
            self._compiled_log_weights(), targets, labels, (self.latent_dim,), num_samples,
            seed=seed, max_batch=max_decoder_batch)

    def log_likelihood_report(self, images, labels=None, num_samples=None, seed=0):
        """`{"nll", "negative_elbo", "bits_per_dim", "num_images", "num_samples"}` (nats) on
        uint8 images, binarised once with `seed` for a Bernoulli decoder; k = `num_samples`
        importance samples (default 5000, the IWAE paper's)."""
        num_samples = 5000 if num_samples is None else num_samples
        targets = distributions.evaluation_targets(self.likelihood, images, seed)
        nll, negative_elbo = self.importance_sampled_nll(targets, labels, num_samples=num_samples,
                                                         seed=seed)
        pixels = math.prod(self.image_shape)
        return {"nll": float(nll.mean()), "negative_elbo": float(negative_elbo.mean()),
                "bits_per_dim": float(nll.mean() / (pixels * math.log(2.0))),
                "num_images": int(len(nll)), "num_samples": int(num_samples)}

    def _compiled_log_weights(self):
        @tf.function(reduce_retracing=True)
        def log_weights(targets, labels, noise):
            return self._log_weights(targets, labels, noise, training=False)[0]
        return log_weights

    # --- inference, used by callbacks, the CLI and export -----------------------------------

    def decode_mean(self, inputs):
        """The decoder's mean image, intensities in [0, 1], for `sample_inputs`-style inputs."""
        latents, labels = self._split_inputs(inputs)
        return distributions.image_mean(self.likelihood, self._decode(latents, labels, False))

    def generate(self, inputs):
        """Images in [-1, 1] (the decoder's mean) for what `sample_inputs` returns."""
        return self.decode_mean(inputs) * 2.0 - 1.0

    def _split_inputs(self, inputs):
        latents = tf.convert_to_tensor(inputs, tf.float32)
        self._check_latents(latents)
        return latents, None

    def encode(self, images, labels=None):
        """`(mean, log_variance)` of q(z | x) for uint8 images (intensity = value / 255)."""
        images = np.asarray(images)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images must have shape [N, {', '.join(map(str, self.image_shape))}],"
                             f" got {list(images.shape)}.")
        return self._encode(tf.cast(images, tf.float32) / 255.0, labels, False)

    def figures(self, images, labels=None, seed=0, num_steps=8):
        """uint8 grids that show what the model learned: `{name: (images, columns)}`.

        `samples` (decoded z ~ N(0, I)), `reconstructions` (input above its reconstruction),
        `interpolation` (decoded means between pairs of inputs) and, for 2-d latents,
        `manifold` (decoded Gaussian quantiles, Kingma & Welling 2014, figure 4).

        Args:
            images: uint8 `[N, H, W, C]` reference images (N >= 2).
            labels: int `[N]` for a conditional VAE.
        """
        images = np.asarray(images)
        mean, _ = self.encode(images, labels)
        def decoded(latents, label_rows=None):
            if label_rows is not None:
                label_rows = tf.constant(np.asarray(label_rows), tf.int32)
            params = self._decode(tf.convert_to_tensor(latents, tf.float32), label_rows, False)
            return unit_to_uint8(distributions.image_mean(self.likelihood, params)).numpy()

        count = len(images)
        figures = {
            "samples": (unit_to_uint8(self.decode_mean(self.sample_inputs(64, seed))).numpy(), 8),
            "reconstructions": (np.concatenate([images, decoded(mean, labels)]), count),
        }
        pairs = count // 2
        weights = np.linspace(0.0, 1.0, num_steps, dtype=np.float32)[None, :, None]
        start, end = mean.numpy()[0:2 * pairs:2, None], mean.numpy()[1:2 * pairs:2, None]
        path = ((1.0 - weights) * start + weights * end).reshape(-1, self.latent_dim)
        path_labels = None if labels is None else np.repeat(
            np.asarray(labels)[0:2 * pairs:2], num_steps).astype(np.int32)
        figures["interpolation"] = (decoded(path, path_labels), num_steps)
        if self.latent_dim == 2:
            from scipy.stats import norm

            quantiles = norm.ppf(np.linspace(0.05, 0.95, 15)).astype(np.float32)
            grid = np.stack(np.meshgrid(quantiles, quantiles[::-1]), axis=-1).reshape(-1, 2)
            grid_labels = None if labels is None else np.zeros(len(grid), np.int32)
            figures["manifold"] = (decoded(grid, grid_labels), 15)
        return figures

    def serving_spec(self):
        """Signatures `encode`, `decode` (the default, and what TFLite converts) and `sample`.

        `sample` draws z from int32 seeds with a stateless op; on device, convert `decode` and
        draw z ~ N(0, I) in the app (LiteRT has no stateless random op).
        """
        return self._serving_spec(label_spec=None)

    def _serving_spec(self, label_spec):
        latent_dim, likelihood = self.latent_dim, self.likelihood
        encoder, decoder = self.encoder, self.decoder
        image_spec = tf.TensorSpec([None, *self.image_shape], tf.uint8, name="images")
        latent_spec = tf.TensorSpec([None, latent_dim], tf.float32, name="latent")
        seeds_spec = tf.TensorSpec([None], tf.int32, name="seeds")

        def network_inputs(x, label):
            return x if label is None else [x, label]

        def encode(images, label=None):
            mean, log_variance = encoder(
                network_inputs(tf.cast(images, tf.float32) / 255.0, label), training=False)
            return {"mean": mean, "log_variance": log_variance}

        def decode(latent, label=None):
            mean_image = distributions.image_mean(
                likelihood, decoder(network_inputs(latent, label), training=False))
            outputs = {"images": unit_to_uint8(mean_image)}
            if likelihood == "bernoulli":
                outputs["probabilities"] = mean_image
            return outputs

        def sample(seeds, label=None):
            return decode(latents_from_seeds(seeds, latent_dim), label)

        extra = [] if label_spec is None else [label_spec]
        return ServingSpec(
            networks=[encoder, decoder],
            endpoints={
                "encode": (encode, [image_spec, *extra]),
                "decode": (decode, [latent_spec, *extra]),
                "sample": (sample, [seeds_spec, *extra]),
            },
            default="decode",
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "likelihood": self.likelihood,
            "beta": self.beta,
            "kl_warmup_steps": self.kl_warmup_steps,
            "num_importance_samples": self.num_importance_samples,
            "binarize": self.binarize,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@keras.saving.register_keras_serializable(package="kerasgen")
class ConditionalVAE(VAE):
    """A VAE whose encoder and decoder both take the label: trains on `(images, labels)`.

    Args are `VAE`'s; the networks take `[x, label]` (see `build_encoder(num_classes=...)`).

    Reference: Sohn, Lee & Yan 2015, https://papers.nips.cc/paper/5775
    """

    conditional = True

    @property
    def num_classes(self):
        return self.decoder.get_layer(LABEL_EMBEDDING).num_classes

    def _unpack(self, data):
        return unpack_labelled(data, "ConditionalVAE")

    def _encode(self, targets, labels, training):
        return self.encoder([targets, labels], training=training)

    def _decode(self, latents, labels, training):
        return self.decoder([latents, labels], training=training)

    def call(self, inputs, training=False):
        images, labels = inputs
        mean, _ = self._encode(images, labels, training)
        return distributions.image_mean(self.likelihood, self._decode(mean, labels, training))

    def _check_labels(self, labels, count):
        return check_labels(labels, count, self.num_classes)

    def sample_inputs(self, num_images, seed=0):
        """`(latents, labels)`: z ~ N(0, I) per seed, labels cycling 0 .. num_classes - 1."""
        return (super().sample_inputs(num_images, seed),
                tf.range(num_images, dtype=tf.int32) % self.num_classes)

    def _split_inputs(self, inputs):
        latents, labels = inputs
        latents = tf.convert_to_tensor(latents, tf.float32)
        self._check_latents(latents)
        return latents, self._check_labels(labels, int(latents.shape[0]))

    def encode(self, images, labels=None):
        if labels is None:
            raise ValueError("A ConditionalVAE encodes (images, labels); pass labels.")
        return super().encode(images, self._check_labels(labels, len(images)))

    def serving_spec(self):
        """`VAE`'s signatures, each also taking an int32 `label` per image."""
        return self._serving_spec(tf.TensorSpec([None], tf.int32, name="label"))

    def representative_inputs(self, num_batches=32, batch_size=8, seed=0):
        for index in range(num_batches):
            latents, labels = self.sample_inputs(batch_size, seed=seed + index * batch_size)
            yield [latents.numpy(), labels.numpy()]


def build_vae(image_shape, latent_dim=50, likelihood="bernoulli", base_filters=32,
              hidden_units=256, beta=1.0, kl_warmup_steps=0, num_importance_samples=1,
              binarize=None, num_classes=None, seed=None, name=None):
    """A `VAE` (or `ConditionalVAE` when `num_classes` is set) sized from `image_shape`.

    Args:
        image_shape: (int, int, int). Training image (height, width, channels).
        latent_dim: int. Size of z. Defaults to 50 (the IWAE paper's one-layer models).
        likelihood: str. Defaults to `"bernoulli"`.
        base_filters, hidden_units: int. Network widths (see `build_encoder`).
        beta, kl_warmup_steps, num_importance_samples, binarize: see `VAE`.
        num_classes: int. Condition both networks on a label. Defaults to None.
        seed: int. Seeds initialisers, noise and binarisation. Defaults to None.
        name: str. Defaults to `"vae"`, `"cvae"`, `"beta_vae"` or `"iwae"`.
    """
    encoder = build_encoder(image_shape, latent_dim, base_filters, hidden_units, num_classes,
                            seed=seed)
    decoder = build_decoder(latent_dim, image_shape, likelihood, base_filters, hidden_units,
                            num_classes, seed=seed)
    default_name = ("cvae" if num_classes else "iwae" if num_importance_samples > 1
                    else "beta_vae" if beta != 1.0 else "vae")
    model_class = ConditionalVAE if num_classes else VAE
    return model_class(encoder, decoder, likelihood=likelihood, beta=beta,
                       kl_warmup_steps=kl_warmup_steps,
                       num_importance_samples=num_importance_samples, binarize=binarize, seed=seed,
                       name=name or default_name)


_MNIST = {"dataset": "mnist", "epochs": 100, "batch_size": 128, "task": Generation()}
PRESETS = {
    "vae": ModelPreset(
        name="vae",
        description="Convolutional VAE (Kingma & Welling 2014), Bernoulli decoder, dynamically "
                    "binarized MNIST",
        build=build_vae, **_MNIST),
    "beta_vae": ModelPreset(
        name="beta_vae",
        description="beta-VAE (Higgins et al. 2017), beta=4 with a 5000-step KL warm-up, 10-d "
                    "latent, MNIST",
        build=build_vae,
        model_kwargs={"latent_dim": 10, "beta": 4.0, "kl_warmup_steps": 5000}, **_MNIST),
    "cvae": ModelPreset(
        name="cvae",
        description="Conditional VAE (Sohn et al. 2015), label-conditioned encoder and decoder, "
                    "MNIST",
        build=build_vae, **{**_MNIST, "task": Generation(labelled=True)}),
    "iwae": ModelPreset(
        name="iwae",
        description="IWAE (Burda et al. 2016), k=5 importance samples, dynamically binarized "
                    "MNIST",
        build=build_vae, model_kwargs={"num_importance_samples": 5}, **_MNIST),
}
