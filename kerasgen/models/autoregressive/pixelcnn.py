"""PixelCNN: an exact-likelihood autoregressive image model, trained with `fit`.

p(x) = prod_i p(x_i | x_<i) over the pixels in raster order (van den Oord et al. 2016,
https://arxiv.org/abs/1601.06759 and https://arxiv.org/abs/1606.05328): training is one
network pass per batch (every conditional at once, teacher forcing); sampling is one pass per
pixel. The loss is the exact negative log-likelihood in nats per image, so `kerasgen evaluate
--metric nll` reports it directly (no importance sampling).

Data in: batches in [-1, 1] as every kerasgen dataset yields them. With the Bernoulli
likelihood, `binarize="dynamic"` draws a fresh binary image at every step (dynamically
binarized MNIST, the protocol of the VAE benchmark); the categorical likelihood models the 256
levels of 8-bit grey images.

Example:
    >>> model = build_pixelcnn((28, 28, 1), num_layers=12, seed=0)
    >>> model.compile()
    >>> model.fit(kerasgen.data.load_dataset("mnist", batch_size=64), epochs=5)
    >>> images = model.generate(model.sample_inputs(16, seed=0))   # [-1, 1]
"""

import math

import keras
import numpy as np
import tensorflow as tf

from kerasgen import distributions
from kerasgen.data import unit_to_uint8
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec
from kerasgen.models.autoregressive.networks import (LABEL_EMBEDDING, LIKELIHOOD_OUTPUTS,
                                                     row_networks)
from kerasgen.models.base import (NestedObjects, SeededModel, SeedSampling, SingleOptimizer,
                                  check_labels, seeded_draws, unpack_labelled)
from kerasgen.tasks import GenerativeModel

# Images per network pass when scoring a test set.
LOG_PROB_BATCH = 500
SAMPLING_METHODS = ("row_cache", "causal_crop", "whole_canvas")


def check_sampling_method(method):
    if method not in SAMPLING_METHODS:
        raise ValueError(f"Unknown sampling method {method!r}; valid: {list(SAMPLING_METHODS)}.")


@keras.saving.register_keras_serializable(package="kerasgen")
class PixelCNN(SeedSampling, NestedObjects, SingleOptimizer, GenerativeModel, SeededModel):
    """Trains an autoregressive network (`build_gated_pixelcnn`) on the exact NLL with `fit`.

    Args:
        network: `keras.Model`. Intensities in [0, 1] `[N, H, W, 1]` (and an int label) ->
            per-pixel logits of p(x_i | x_<i): one (Bernoulli) or 256 (categorical).
        image_shape: (int, int, int). The images it models and samples.
        likelihood: str. `"bernoulli"` or `"categorical"`; must match the network's output.
            Defaults to `"bernoulli"`.
        binarize: str. `"dynamic"` (Bernoulli only: a fresh binary draw of every image at
            every step) or `"none"`. Defaults to `"dynamic"` for Bernoulli, else `"none"`.
        sampling: str. How `generate` runs the pixel loop (`SAMPLING_METHODS`, see
            `sample_loop`): `"row_cache"` (the default) needs a gated PixelCNN network; any
            other causal network (the Row LSTM, of fixed height) samples by `"whole_canvas"`.
        seed: int. Seed of the binarisation stream. Defaults to None.

    Trackers: `loss` (the negative log-likelihood, nats per image) and `bits_per_dim`.

    Reference: https://arxiv.org/abs/1606.05328
    """

    has_likelihood = True
    epoch_samples = 16  # 784 network passes per 28x28 batch: about 25 s on 2 cores
    nested = ("network",)

    def __init__(self, network, image_shape, likelihood="bernoulli", binarize=None,
                 sampling="row_cache", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_sampling_method(sampling)
        if likelihood not in LIKELIHOOD_OUTPUTS:
            raise ValueError(f"Unknown likelihood {likelihood!r}; valid: "
                             f"{list(LIKELIHOOD_OUTPUTS)}.")
        outputs = network.output_shape[-1]
        if outputs != LIKELIHOOD_OUTPUTS[likelihood]:
            raise ValueError(f"A {likelihood} PixelCNN needs {LIKELIHOOD_OUTPUTS[likelihood]} "
                             f"logits per pixel; the network outputs {outputs}.")
        self.network = network
        self.image_shape = tuple(int(size) for size in image_shape)
        self.likelihood = likelihood
        self.binarize = distributions.check_binarize(binarize, likelihood)
        self.sampling = sampling
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.bits_tracker = keras.metrics.Mean(name="bits_per_dim")
        self._samplers = {}
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.bits_tracker]

    @property
    def conditional(self):
        return len(self.network.inputs) > 1

    @property
    def num_classes(self):
        return self.network.get_layer(f"{LABEL_EMBEDDING}0").num_classes if \
            self.conditional else None

    @property
    def num_pixels(self):
        return math.prod(self.image_shape)

    def call(self, inputs, training=False):
        """Per-pixel logits of intensities in [0, 1] (and labels for a conditional model)."""
        return self.network(inputs, training=training)

    # --- the objective -------------------------------------------------------------------

    def _network_inputs(self, canvas, labels):
        if not self.conditional:
            return canvas
        return [canvas, tf.cast(tf.convert_to_tensor(labels), tf.int32)]

    def _log_prob(self, targets, labels, training=False):
        """log p(targets) per image in nats; targets are intensities in [0, 1] (binary for
        Bernoulli, level / 255 for categorical). One pass gives every conditional."""
        logits = self.network(self._network_inputs(targets, labels), training=training)
        if self.likelihood == "bernoulli":
            return distributions.bernoulli_log_prob(targets, logits)
        levels = tf.round(targets[..., 0] * 255.0)
        return distributions.categorical_log_prob(levels, logits)

    def _unpack(self, data):
        if self.conditional:
            return unpack_labelled(data, self.name)
        return (data[0] if isinstance(data, (tuple, list)) else data), None

    def _step(self, data, training):
        images, labels = self._unpack(data)
        batch = ReplicaBatch(tf.shape(images)[0])
        # 1. Targets: a fresh binary draw per step (dynamic binarization) or 8-bit levels.
        targets = distributions.training_targets(images, self.likelihood, self.binarize, batch,
                                                 self.seed_generator)
        if self.likelihood == "categorical":  # the network sees exact levels, as in sampling
            targets = tf.round(targets * 255.0) / 255.0
        # 2. The exact NLL: sum over pixels of -log p(x_i | x_<i), averaged over the global
        #    batch (teacher forcing: the network sees the true x_<i at every pixel).
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            nll = -self._log_prob(targets, labels, training=training)
            loss = batch.mean(nll)
        if training:
            gradients = tape.gradient(loss, self.network.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.network.trainable_variables))
        self.loss_tracker.update_state(nll)
        self.bits_tracker.update_state(nll / (self.num_pixels * math.log(2.0)))
        return step_logs(self.metrics)

    def train_step(self, data):
        return self._step(data, training=True)

    def test_step(self, data):
        return self._step(data, training=False)

    # --- likelihood ----------------------------------------------------------------------

    def check_images(self, images, name="images", binary=True):
        """uint8 `[N, H, W, 1]` images of this model's shape, binary (0 / 255) for a Bernoulli
        model unless `binary=False` (grey images that the NLL protocol binarises)."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8 (0-255), got {images.dtype}.")
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"{name} must have shape [N, {', '.join(map(str, self.image_shape))}]"
                             f", got {list(images.shape)}.")
        if binary and self.likelihood == "bernoulli" and not np.isin(images, (0, 255)).all():
            raise ValueError(
                "A Bernoulli PixelCNN scores binary images (every pixel 0 or 255), and these "
                "have grey levels; binarize them first (kerasgen.distributions.binarize_fixed "
                "gives 0/1: multiply by 255) or use a categorical model for grey images.")
        return images

    def _labels_for(self, labels, count):
        if not self.conditional:
            if labels is not None:
                raise ValueError(f"{self.name!r} is not class-conditional; pass no labels.")
            return None
        if labels is None:
            raise ValueError(f"{self.name!r} is class-conditional; pass one label per image.")
        return check_labels(labels, count, self.num_classes)

    def log_prob(self, images, labels=None):
        """Exact log p(x) in nats per image of uint8 images (binary 0/255 for Bernoulli)."""
        images = self.check_images(images)
        return self._log_prob_of_targets(images.astype(np.float32) / 255.0,
                                         self._labels_for(labels, len(images)))

    def _log_prob_of_targets(self, targets, labels):
        if "log_prob" not in self._samplers:
            self._samplers["log_prob"] = tf.function(
                lambda targets, labels: self._log_prob(targets, labels), reduce_retracing=True)
        function = self._samplers["log_prob"]
        values = [function(tf.constant(targets[start:start + LOG_PROB_BATCH]),
                           None if labels is None else labels[start:start + LOG_PROB_BATCH])
                  .numpy() for start in range(0, len(targets), LOG_PROB_BATCH)]
        return np.concatenate(values).astype(np.float64) if values else np.zeros(0)

    def log_likelihood_report(self, images, labels=None, num_samples=None, seed=0):
        """`{"nll", "bits_per_dim", "num_images", "exact"}` in nats on uint8 images,
        binarised once with `seed` for a Bernoulli model (the VAE benchmark's test set).
        The likelihood is exact: `num_samples` (the VAEs' k) does not apply."""
        del num_samples
        images = self.check_images(images, binary=False)
        targets = distributions.evaluation_targets(self.likelihood, images, seed)
        nll = -self._log_prob_of_targets(targets.astype(np.float32),
                                         self._labels_for(labels, len(targets)))
        return {"nll": float(nll.mean()), "exact": True,
                "bits_per_dim": float(nll.mean() / (self.num_pixels * math.log(2.0))),
                "num_images": int(len(nll))}

    # --- sampling ------------------------------------------------------------------------

    def as_samples(self, images, seed=0):
        """Real images as the samples are: binarised once (seed) for a Bernoulli model."""
        if self.likelihood == "bernoulli":
            return (distributions.binarize_fixed(images, seed) * 255).astype(np.uint8)
        return images

    def _split_inputs(self, inputs):
        if self.conditional:
            if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
                raise ValueError("A class-conditional PixelCNN samples from (seeds, labels).")
            seeds, labels = inputs
        else:
            seeds, labels = inputs, None
        seeds = tf.convert_to_tensor(seeds)
        if not seeds.dtype.is_integer or seeds.shape.rank != 1:
            raise ValueError(f"Seeds must be a 1-d integer array, got {seeds.dtype.name} of "
                             f"shape {seeds.shape.as_list()}.")
        return tf.cast(seeds, tf.int32), self._labels_for(labels, int(seeds.shape[0]))

    def draw(self, pixel_logits, uniform):
        """A pixel's value in [0, 1] from its logits `[N, K]` and a uniform draw `[N, 1]`
        (inverse CDF, so the same noise gives the same image in any implementation)."""
        if self.likelihood == "bernoulli":
            return tf.cast(uniform < tf.sigmoid(pixel_logits), tf.float32)
        cdf = tf.cumsum(tf.nn.softmax(pixel_logits), axis=-1)
        level = tf.reduce_sum(tf.cast(cdf < uniform, tf.int32), axis=-1, keepdims=True)
        return tf.cast(tf.minimum(level, 255), tf.float32) / 255.0

    def sample_loop(self, noise, labels, canvas, start, method="row_cache"):
        """Fill `canvas` (intensities `[N, H, W, 1]`) from raster index `start` on, one pixel
        per network pass, inside `tf.while_loop`s (graph mode). Every method draws the same
        image; they differ in what each pass computes.

        Args:
            noise: float `[N, H, W, 1]` uniform draws, one per pixel.
            labels: int32 `[N]` or None.
            canvas: float `[N, H, W, 1]`; the pixels before `start` are kept.
            start: int32 scalar. The first pixel drawn.
            method: str. `"row_cache"` (the default): the vertical stack once per row, then
                the horizontal stack on that one row per pixel (`row_networks`);
                `"causal_crop"`: the whole network on the rows up to the current one (the
                rows below never reach it); `"whole_canvas"`: the whole network on the
                whole canvas per pixel (the naive loop).
        """
        check_sampling_method(method)
        height, width, _ = self.image_shape
        start = tf.cast(start, tf.int32)
        noise = tf.convert_to_tensor(noise, tf.float32)
        canvas = tf.convert_to_tensor(canvas, tf.float32)

        def drawn(canvas, row, column, logits):
            """`canvas` with pixel (row, column) drawn from its logits `[N, K]`."""
            value = self.draw(logits, noise[:, row, column])
            here = tf.reshape(tf.one_hot(row * width + column, height * width),
                              [1, height, width, 1])
            return canvas * (1.0 - here) + here * value[:, None, None, :]

        if method != "row_cache":
            def pixel(index, canvas):
                row, column = index // width, index % width
                visible = canvas[:, :row + 1] if method == "causal_crop" else canvas
                logits = self.network(self._network_inputs(visible, labels), training=False)
                return index + 1, drawn(canvas, row, column, logits[:, row, column])

            return tf.while_loop(lambda index, canvas: index < height * width, pixel,
                                 [start, canvas])[1]

        vertical, row_network = self._row_networks()
        extra = [] if labels is None else [tf.cast(tf.convert_to_tensor(labels), tf.int32)]

        def row_step(row, canvas):
            features = vertical(self._network_inputs(canvas[:, :row + 1], labels),
                                training=False)
            above = [tensor[:, row:row + 1] for tensor in tf.nest.flatten(features)]

            def pixel(column, canvas):
                logits = row_network([canvas[:, row:row + 1], *above, *extra], training=False)
                return column + 1, drawn(canvas, row, column, logits[:, 0, column])

            first = tf.where(row == start // width, start % width, 0)
            return row + 1, tf.while_loop(lambda column, canvas: column < width, pixel,
                                          [first, canvas])[1]

        return tf.while_loop(lambda row, canvas: row < height, row_step,
                             [start // width, canvas])[1]

    def _row_networks(self):
        """`row_networks(self.network)`, built once (kept in a closure, so that Keras does
        not track them as layers of this model: they share the network's weights)."""
        if "row_networks" not in self._samplers:
            pair = row_networks(self.network)
            self._samplers["row_networks"] = lambda: pair
        return self._samplers["row_networks"]()

    def _compiled_sampler(self):
        if "sample" not in self._samplers:
            self._samplers["sample"] = tf.function(self._sample_from_seeds,
                                                   reduce_retracing=True)
        return self._samplers["sample"]

    def _sample_from_seeds(self, seeds, labels, canvas=None, start=0):
        noise = seeded_draws(seeds, self.image_shape, distribution="uniform")
        if canvas is None:
            canvas = tf.zeros_like(noise)
        return self.sample_loop(noise, labels, canvas, start, method=self.sampling)

    def generate(self, inputs):
        """Images in [-1, 1] for what `sample_inputs` returns: pixel i drawn from p(x_i |
        x_<i) with seed-determined uniform noise, so a seed always gives the same image."""
        seeds, labels = self._split_inputs(inputs)
        return self._compiled_sampler()(seeds, labels) * 2.0 - 1.0

    def complete(self, images, num_rows, seeds, labels=None):
        """uint8 images whose first `num_rows` rows are kept and the rest sampled."""
        images = self.check_images(images)
        height = self.image_shape[0]
        if not 0 <= num_rows <= height:
            raise ValueError(f"num_rows must be in [0, {height}], got {num_rows}.")
        seeds, labels = self._split_inputs(
            (seeds, labels) if self.conditional else seeds)
        if int(seeds.shape[0]) != len(images):
            raise ValueError(f"{len(images)} images but {int(seeds.shape[0])} seeds.")
        canvas = tf.constant(images.astype(np.float32) / 255.0)
        completed = self._compiled_sampler()(seeds, labels, canvas,
                                             tf.constant(num_rows * self.image_shape[1]))
        return unit_to_uint8(completed).numpy()

    def figures(self, images, labels=None, seed=0):
        """`completions`: each reference image's top half (first row) above the model's
        completions of its bottom half from two seeds (van den Oord et al. 2016, figure 1)."""
        images = self.as_samples(np.asarray(images)[:8], seed)
        labels = None if labels is None else np.asarray(labels)[:8]
        rows = [images]
        for repeat in range(2):
            seeds = np.arange(len(images), dtype=np.int32) + seed + 1000 * (repeat + 1)
            rows.append(self.complete(images, self.image_shape[0] // 2, seeds, labels))
        return {"completions": (np.concatenate(rows), len(images))}

    # --- export --------------------------------------------------------------------------

    def serving_spec(self):
        """Signatures `sample` (the default: seeds -> uint8 images, the whole pixel loop
        inside the graph), `log_prob` (uint8 images -> exact log p(x) in nats and bits/dim)
        and `conditionals` (uint8 canvas -> p(x_i | x_<i) at every pixel: the one-step network
        that TFLite converts; the app draws pixel i and calls it again).

        Bernoulli models read a canvas pixel as 1 from 128 up in `conditionals`; `log_prob`
        refuses non-binary images (an InvalidArgumentError, as TF Serving reports it).
        """
        image_spec = tf.TensorSpec([None, *self.image_shape], tf.uint8, name="images")
        seeds_spec = tf.TensorSpec([None], tf.int32, name="seeds")
        label_spec = [tf.TensorSpec([None], tf.int32, name="labels")] if self.conditional \
            else []
        bernoulli = self.likelihood == "bernoulli"
        pixels_ln2 = self.num_pixels * math.log(2.0)

        def intensities(images):
            values = tf.cast(images, tf.float32) / 255.0
            return tf.round(values) if bernoulli else values

        def sample(seeds, labels=None):
            return {"images": unit_to_uint8(self._sample_from_seeds(seeds, labels))}

        def log_prob(images, labels=None):
            if bernoulli:
                binary = tf.reduce_all(tf.logical_or(tf.equal(images, 0), tf.equal(images, 255)))
                tf.debugging.Assert(binary, ["A Bernoulli PixelCNN scores binary images (every "
                                             "pixel 0 or 255)."])
            values = self._log_prob(intensities(images), labels)
            return {"log_prob": values, "bits_per_dim": -values / pixels_ln2}

        def conditionals(images, labels=None):
            logits = self.network(self._network_inputs(intensities(images), labels),
                                  training=False)
            return {"probabilities": tf.sigmoid(logits) if bernoulli else tf.nn.softmax(logits)}

        return ServingSpec(
            networks=[self.network],
            endpoints={"sample": (sample, [seeds_spec, *label_spec]),
                       "log_prob": (log_prob, [image_spec, *label_spec]),
                       "conditionals": (conditionals, [image_spec, *label_spec])},
            default="sample", tflite="conditionals",
            quantizations=("none", "float16", "dynamic"))

    def representative_inputs(self, num_batches=32, batch_size=8, seed=0):
        """Inputs of `conditionals`: random canvases (binary for Bernoulli), and labels."""
        rng = np.random.default_rng(seed)
        for _ in range(num_batches):
            images = rng.integers(0, 256, (batch_size, *self.image_shape), dtype=np.uint8)
            if self.likelihood == "bernoulli":
                images = np.where(images >= 128, 255, 0).astype(np.uint8)
            inputs = [images]
            if self.conditional:
                inputs.append(rng.integers(0, self.num_classes, batch_size, dtype=np.int32))
            yield inputs

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": keras.saving.serialize_keras_object(self.network),
            "image_shape": list(self.image_shape),
            "likelihood": self.likelihood,
            "binarize": self.binarize,
            "sampling": self.sampling,
        })
        return config
