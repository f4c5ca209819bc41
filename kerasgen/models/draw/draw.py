"""DRAW: a recurrent VAE that draws an image in T glimpses (Gregor et al. 2015,
https://arxiv.org/abs/1502.04623), trained with `fit` on the ELBO and judged by NLL in nats.

At every step t the encoder reads (with attention) the image and the error of the canvas so far,
a latent z_t is drawn, and the decoder writes (with attention) onto the canvas; the image is
Bernoulli(sigmoid(c_T)). The T canvases are the animation of how the model draws
(`kerasgen sample` writes them as a GIF).

Data in: batches in [-1, 1] as every kerasgen dataset yields them; `binarize="dynamic"` draws a
fresh binary image at every step (dynamically binarized MNIST, the VAE benchmark's protocol).

Example:
    >>> model = build_draw((28, 28, 1), num_steps=64, seed=0)
    >>> model.compile()
    >>> model.fit(kerasgen.data.load_dataset("mnist", batch_size=64), epochs=5)
    >>> frames = model.animation(model.sample_inputs(16))   # uint8 [T, 16, 28, 28, 1]
"""

import math

import keras
import numpy as np
import tensorflow as tf

from kerasgen import distributions
from kerasgen.data import unit_to_uint8
from kerasgen.export import ServingSpec
from kerasgen.models.base import (ELBOTraining, NestedObjects, SeededModel, SingleOptimizer,
                                  seeded_draws)
from kerasgen.tasks import GenerativeModel

# Encoder/decoder passes (images x importance samples) per call of the NLL estimator.
MAX_IMPORTANCE_BATCH = 2000


@keras.saving.register_keras_serializable(package="kerasgen")
class DRAW(ELBOTraining, NestedObjects, SingleOptimizer, GenerativeModel, SeededModel):
    """Trains DRAW's encoder and decoder glimpses, unrolled `num_steps` times, on the ELBO.

    Args:
        encoder_step: `keras.Model` from `build_draw_encoder_step`.
        decoder_step: `keras.Model` from `build_draw_decoder_step`.
        num_steps: int. T, the glimpses per image. Defaults to 64 (the paper's MNIST models).
        binarize: str. `"dynamic"` (a fresh binary draw of every image at every step) or
            `"none"` (the data must be binary). Defaults to `"dynamic"`.
        seed: int. Seed of the latent noise and binarisation stream. Defaults to None.

    Trackers: `loss` (the negative ELBO, nats per image), `reconstruction` (-log D(x | c_T))
    and `kl` (sum over the steps of KL(Q(z_t | h_enc_t) || N(0, I))).

    Reference: https://arxiv.org/abs/1502.04623
    """

    has_likelihood = True
    animates = True
    nested = ("encoder_step", "decoder_step")
    likelihood = "bernoulli"

    def __init__(self, encoder_step, decoder_step, num_steps=64, binarize=None, seed=None,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        if int(num_steps) < 1:
            raise ValueError(f"num_steps must be at least 1 glimpse, got {num_steps}.")
        self.encoder_step = encoder_step
        self.decoder_step = decoder_step
        self.num_steps = int(num_steps)
        self.binarize = distributions.check_binarize(binarize, self.likelihood)
        self._check_networks()
        self._create_trackers()
        self._functions = {}
        self.built = True

    def _check_networks(self):
        encoder_units = self.encoder_step.input_shape[2][-1]
        encoder_latent = self.encoder_step.output_shape[2][-1]
        if (self.units, self.latent_dim) != (encoder_units, encoder_latent) or \
                tuple(self.encoder_step.input_shape[0][1:]) != self.image_shape:
            raise ValueError(
                f"The encoder step (images {tuple(self.encoder_step.input_shape[0][1:])}, "
                f"{encoder_units} units, {encoder_latent}-d latents) does not match the "
                f"decoder step (canvas {self.image_shape}, {self.units} units, "
                f"{self.latent_dim}-d latents); build both with the same sizes.")

    @property
    def image_shape(self):
        return tuple(self.decoder_step.input_shape[3][1:])

    @property
    def units(self):
        return self.decoder_step.input_shape[1][-1]

    @property
    def latent_dim(self):
        return self.decoder_step.input_shape[0][-1]

    def call(self, inputs, training=False):
        """Reconstructions sigmoid(c_T) of intensities in [0, 1], with z_t = the mean of Q."""
        count = tf.shape(inputs)[0]
        noise = tf.zeros([count, self.num_steps, self.latent_dim])
        canvas = self._infer(inputs, noise, training)[0]
        return tf.sigmoid(canvas)

    def _compiled(self, name, function):
        """`function` as one cached `tf.function` (T glimpses run eagerly cost seconds)."""
        if name not in self._functions:
            self._functions[name] = tf.function(function, reduce_retracing=True)
        return self._functions[name]

    # --- the recurrence ------------------------------------------------------------------

    def _zeros(self, count):
        return tf.zeros([count, self.units]), tf.zeros([count, *self.image_shape])

    def _infer(self, targets, noise, training):
        """Run the inference and generative networks over T glimpses for `noise` `[N, T,
        latent_dim]` (z_t = mean + sigma * noise_t). Returns `(canvas c_T, kl [N], log prior
        ratio sum_t log N(z_t; 0, I) - log Q(z_t) [N])`."""
        state, canvas = self._zeros(tf.shape(targets)[0])
        h_encoder = c_encoder = h_decoder = c_decoder = state
        kl = log_ratio = 0.0
        for step in range(self.num_steps):
            # 1. read the image and its error under the canvas; the encoder LSTM (eq. 3-5).
            h_encoder, c_encoder, mean, log_variance = self.encoder_step(
                [targets, canvas, h_decoder, h_encoder, c_encoder], training=training)
            # 2. z_t ~ Q(z_t | h_enc_t), reparameterised (eq. 6).
            latent = mean + tf.exp(0.5 * log_variance) * noise[:, step]
            kl += distributions.gaussian_kl(mean, log_variance)
            log_ratio += (distributions.log_standard_normal(latent)
                          - distributions.log_normal(latent, mean, log_variance))
            # 3. the decoder LSTM and the write onto the canvas (eq. 7-8).
            h_decoder, c_decoder, canvas = self.decoder_step(
                [latent, h_decoder, c_decoder, canvas], training=training)
        return canvas, kl, log_ratio

    def _draw(self, noise):
        """Canvases `[N, T, H, W, C]` (logits) of the generative network alone, z_t = noise_t
        ~ N(0, I) (section 2.3)."""
        noise = tf.convert_to_tensor(noise, tf.float32)
        state, canvas = self._zeros(tf.shape(noise)[0])
        h_decoder = c_decoder = state
        canvases = []
        for step in range(self.num_steps):
            h_decoder, c_decoder, canvas = self.decoder_step(
                [noise[:, step], h_decoder, c_decoder, canvas], training=False)
            canvases.append(canvas)
        return tf.stack(canvases, axis=1)

    # --- the objective -------------------------------------------------------------------

    def _unpack(self, data):
        return (data[0] if isinstance(data, (tuple, list)) else data), None

    def _targets(self, images, batch):
        # 1. A fresh binary draw of every image at every step (dynamic binarization).
        return distributions.training_targets(images, self.likelihood, self.binarize, batch,
                                              self.seed_generator)

    def _objective(self, targets, labels, batch, training):
        """Per-example `(loss, reconstruction, kl)` in nats (`ELBOTraining` takes the step)."""
        del labels
        # 2. The reparameterisation noise, drawn for the global batch and sliced per replica.
        noise = batch.slice(keras.random.normal(
            (batch.global_batch_size, self.num_steps, self.latent_dim),
            seed=self.seed_generator))
        canvas, kl, _ = self._infer(targets, noise, training)
        # 3. L = L^x + L^z: -log D(x | c_T) plus the KL of every step (eq. 9-12).
        reconstruction = -distributions.bernoulli_log_prob(targets, canvas)
        return reconstruction + kl, reconstruction, kl

    # --- likelihood ----------------------------------------------------------------------

    def _log_weights(self, targets, noise):
        """log p(x, z_1..T) - log Q(z_1..T | x) `[N, k]` for noise `[N, k, T, latent_dim]`."""
        num_samples = tf.shape(noise)[1]
        repeated = tf.repeat(targets, num_samples, axis=0)
        canvas, _, log_ratio = self._infer(
            repeated, tf.reshape(noise, [-1, self.num_steps, self.latent_dim]), False)
        log_weights = distributions.bernoulli_log_prob(repeated, canvas) + log_ratio
        return tf.reshape(log_weights, [-1, num_samples])

    def log_likelihood_report(self, images, labels=None, num_samples=None, seed=0):
        """`{"nll", "negative_elbo", "bits_per_dim", "num_images", "num_samples"}` (nats) on
        uint8 images, binarised once with `seed`: the importance-sampled NLL with k =
        `num_samples` (default 100; each sample is a T-glimpse pass) and the negative ELBO
        (the DRAW paper's bound) from the same samples."""
        if labels is not None:
            raise ValueError(f"{self.name!r} is not class-conditional; pass no labels.")
        num_samples = 100 if num_samples is None else num_samples
        targets = distributions.evaluation_targets(self.likelihood, images, seed)
        if tuple(targets.shape[1:]) != self.image_shape:
            raise ValueError(f"images must have shape [N, {', '.join(map(str, self.image_shape))}]"
                             f", got {list(targets.shape)}.")
        log_weights_of = self._compiled(
            "log_weights", lambda targets, labels, noise: self._log_weights(targets, noise))
        nll, negative_elbo = distributions.importance_sampled_nll(
            log_weights_of, targets, None, (self.num_steps, self.latent_dim),
            num_samples=num_samples, seed=seed, max_batch=MAX_IMPORTANCE_BATCH)
        return {"nll": float(nll.mean()), "negative_elbo": float(negative_elbo.mean()),
                "bits_per_dim": float(nll.mean() / (math.prod(self.image_shape) * math.log(2.0))),
                "num_images": int(len(nll)), "num_samples": int(num_samples)}

    # --- sampling ------------------------------------------------------------------------

    def _check_noise(self, noise):
        noise = tf.convert_to_tensor(noise, tf.float32)
        expected = (self.num_steps, self.latent_dim)
        if noise.shape.rank != 3 or tuple(noise.shape[1:]) != expected:
            raise ValueError(f"DRAW samples from noise of shape [batch, {expected[0]} steps, "
                             f"{expected[1]}], got {noise.shape.as_list()}; "
                             "sample_inputs(num_images, seed) makes it.")
        return noise

    def sample_inputs(self, num_images, seed=0):
        """z_1..T ~ N(0, I) `[num_images, T, latent_dim]` for seeds `seed ..` (a seed gives the
        same noise in any batch, as in the `generate` signature)."""
        return seeded_draws(tf.range(seed, seed + num_images), (self.num_steps, self.latent_dim))

    def canvases(self, noise):
        """sigmoid(c_t) for every glimpse: intensities in [0, 1], `[N, T, H, W, C]`."""
        return tf.sigmoid(self._compiled("draw", self._draw)(self._check_noise(noise)))

    def generate(self, inputs):
        """Images in [-1, 1]: the final canvas' mean sigmoid(c_T) for `sample_inputs` noise."""
        return self.canvases(inputs)[:, -1] * 2.0 - 1.0

    def animation(self, inputs):
        """uint8 frames `[T, N, H, W, C]`: the canvas after each glimpse."""
        return tf.transpose(unit_to_uint8(self.canvases(inputs)), (1, 0, 2, 3, 4)).numpy()

    def figures(self, images, labels=None, seed=0):
        """`reconstructions` (inputs above sigmoid(c_T) at the posterior means) and `glimpses`
        (8 samples, one row each, at 8 evenly spaced steps)."""
        del labels
        images = np.asarray(images)
        reconstructed = unit_to_uint8(self._compiled("reconstruct", self.call)(tf.constant(
            distributions.binarize_fixed(images, seed), tf.float32))).numpy()
        frames = self.animation(self.sample_inputs(8, seed))
        steps = np.linspace(0, self.num_steps - 1, 8).round().astype(int)
        glimpses = frames[steps].transpose(1, 0, 2, 3, 4).reshape(-1, *self.image_shape)
        return {"reconstructions": (np.concatenate([images, reconstructed]), len(images)),
                "glimpses": (glimpses, len(steps))}

    # --- export --------------------------------------------------------------------------

    def serving_spec(self):
        """Signatures `generate(seeds)` (the default), `canvases(seeds)` and `decode(noise)`
        (what TFLite converts: LiteRT has no stateless random op, so the app draws z ~ N(0, I)).
        """
        steps_and_latent = (self.num_steps, self.latent_dim)
        seeds_spec = tf.TensorSpec([None], tf.int32, name="seeds")
        noise_spec = tf.TensorSpec([None, *steps_and_latent], tf.float32, name="noise")

        def decode(noise):
            canvases = tf.sigmoid(self._draw(noise))
            return {"images": unit_to_uint8(canvases[:, -1]), "probabilities": canvases[:, -1],
                    "canvases": unit_to_uint8(canvases)}

        def generate(seeds):
            outputs = decode(seeded_draws(seeds, steps_and_latent))
            return {"images": outputs["images"], "probabilities": outputs["probabilities"]}

        def canvases(seeds):
            return {"canvases": decode(seeded_draws(seeds, steps_and_latent))["canvases"]}

        return ServingSpec(
            networks=[self.encoder_step, self.decoder_step],
            endpoints={"generate": (generate, [seeds_spec]),
                       "canvases": (canvases, [seeds_spec]),
                       "decode": (decode, [noise_spec])},
            default="generate", tflite="decode", quantizations=("none", "float16", "dynamic"))

    def get_config(self):
        config = super().get_config()
        config.update({
            "encoder_step": keras.saving.serialize_keras_object(self.encoder_step),
            "decoder_step": keras.saving.serialize_keras_object(self.decoder_step),
            "num_steps": self.num_steps,
            "binarize": self.binarize,
        })
        return config
