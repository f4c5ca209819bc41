"""DCGAN: Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", https://arxiv.org/abs/1511.06434.

Builders return functional `keras.Model`s sized from the image shape; `DCGAN` trains them with
`fit` and is the pattern the other GAN families follow: `ConditionalGAN` and `WGANGP` reuse its
trunks, its `train_step` (through the `_unpack`/`_generator_call`/`_discriminator_call` hooks)
and its export.

Example:
    >>> gan = build_dcgan(image_shape=(32, 32, 1), latent_dim=100, seed=0)
    >>> gan.compile()
    >>> gan.fit(kerasgen.data.load_dataset("digits", image_size=32), epochs=1)
    >>> images = gan.generate(gan.sample_inputs(16, seed=0))  # float32 in [-1, 1]
"""

import keras
import tensorflow as tf
from keras import layers

from kerasgen import losses
from kerasgen.data import to_uint8
from kerasgen.layers import BatchNormalization
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec
from kerasgen.models.base import (LatentSampling, NetworkOptimizers, SeededModel,
                                  ema_folded_copy, ema_unfolded_start, latents_from_seeds,
                                  update_moving_average, warmed_up_decay)
from kerasgen.models.preset import ModelPreset
from kerasgen.tasks import Generation, GenerativeModel

KERNEL_SIZE = 4
MAX_UPSAMPLINGS = 4
# Section 4 of the paper: weights from N(0, 0.02), Adam(lr=2e-4, beta_1=0.5), LeakyReLU 0.2.
INIT_STDDEV = 0.02
LEARNING_RATE = 2e-4
BETA_1 = 0.5
LEAKY_SLOPE = 0.2
NORMALIZATIONS = ("batch", "layer", "none")


def num_upsamplings(image_shape):
    """How many stride-2 steps lead from a >=3-pixel seed map to `image_shape` (H, W, C)."""
    height, width = image_shape[0], image_shape[1]
    steps = 0
    while (
        steps < MAX_UPSAMPLINGS
        and height % 2 ** (steps + 1) == 0
        and width % 2 ** (steps + 1) == 0
        and min(height, width) // 2 ** (steps + 1) >= 3
    ):
        steps += 1
    if steps == 0:
        raise ValueError(
            f"Image shape {tuple(image_shape)} cannot be reached by stride-2 upsampling: height "
            "and width must be even and at least 6. Resize the data, e.g. image_size=32 "
            "(CLI: --image-size 32)."
        )
    return steps


def _initializer(seed):
    return keras.initializers.RandomNormal(stddev=INIT_STDDEV, seed=seed)


def _normalization(kind, name):
    if kind == "batch":
        # synchronized=True: batch statistics over the global batch under tf.distribute, so a
        # step on N replicas equals the step on one device. momentum=0.9 is PyTorch's 0.1, as
        # in the reference implementation: Keras' 0.99 lags far behind a changing generator.
        return BatchNormalization(momentum=0.9, synchronized=True, name=name)
    if kind == "layer":
        # Per-example normalisation, as a gradient penalty needs (WGAN-GP, section 4).
        return layers.LayerNormalization(axis=[1, 2, 3], name=name)
    raise ValueError(f"Unknown normalization {kind!r}; valid: {list(NORMALIZATIONS)}.")


def generator_trunk(inputs, image_shape, base_filters=64, seed=None):
    """The DCGAN generator stack from a flat input tensor to an image tensor in [-1, 1]."""
    height, width, channels = image_shape
    steps = num_upsamplings(image_shape)
    start_height, start_width = height // 2 ** steps, width // 2 ** steps
    filters = base_filters * 2 ** (steps - 1)
    x = layers.Dense(start_height * start_width * filters, use_bias=False,
                     kernel_initializer=_initializer(seed), name="project")(inputs)
    x = _normalization("batch", "project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((start_height, start_width, filters), name="to_map")(x)
    for step in range(steps - 1):
        filters //= 2
        x = layers.Conv2DTranspose(filters, KERNEL_SIZE, strides=2, padding="same",
                                   use_bias=False, kernel_initializer=_initializer(seed),
                                   name=f"up{step}")(x)
        x = _normalization("batch", f"up{step}_bn")(x)
        x = layers.ReLU(name=f"up{step}_relu")(x)
    # No batch norm on the output layer (section 3 of the paper).
    x = layers.Conv2DTranspose(channels, KERNEL_SIZE, strides=2, padding="same",
                               kernel_initializer=_initializer(seed), name="to_image")(x)
    return layers.Activation("tanh", dtype="float32", name="tanh")(x)


def discriminator_trunk(images, image_shape, base_filters=64, seed=None, normalization="batch"):
    """The DCGAN discriminator stack from images to flat features."""
    x = images
    filters = base_filters
    for step in range(num_upsamplings(image_shape)):
        x = layers.Conv2D(filters, KERNEL_SIZE, strides=2, padding="same",
                          use_bias=step == 0 or normalization == "none",
                          kernel_initializer=_initializer(seed), name=f"down{step}")(x)
        if step > 0 and normalization != "none":  # none on the input layer (section 3)
            x = _normalization(normalization, f"down{step}_norm")(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"down{step}_lrelu")(x)
        filters *= 2
    return layers.Flatten(name="flatten")(x)


def build_generator(latent_dim, image_shape, base_filters=64, seed=None, name="generator"):
    """DCGAN generator: latent vector -> image in [-1, 1] (tanh).

    Args:
        latent_dim: int. Size of the latent vector z.
        image_shape: (int, int, int). Output (height, width, channels).
        base_filters: int. Filters of the last hidden layer; each earlier layer doubles them.
            Defaults to 64.
        seed: int. Seed of the weight initialisers. Defaults to None.
        name: str. Defaults to `"generator"`.

    Reference: https://arxiv.org/abs/1511.06434 (Figure 1).
    """
    latent = keras.Input((latent_dim,), name="latent")
    return keras.Model(latent, generator_trunk(latent, image_shape, base_filters, seed), name=name)


def build_discriminator(image_shape, base_filters=64, seed=None, normalization="batch",
                        name="discriminator"):
    """DCGAN discriminator: image in [-1, 1] -> one logit per image.

    Args:
        image_shape: (int, int, int). Input (height, width, channels).
        base_filters: int. Filters of the first layer; each later layer doubles them.
            Defaults to 64.
        seed: int. Seed of the weight initialisers. Defaults to None.
        normalization: str. `"batch"` (the paper's), `"layer"` or `"none"` (for a critic with
            a gradient penalty). Defaults to `"batch"`.
        name: str. Defaults to `"discriminator"`.

    Reference: https://arxiv.org/abs/1511.06434 (section 3).
    """
    images = keras.Input(tuple(image_shape), name="images")
    features = discriminator_trunk(images, image_shape, base_filters, seed, normalization)
    logits = layers.Dense(1, dtype="float32", kernel_initializer=_initializer(seed),
                          name="logit")(features)
    return keras.Model(images, logits, name=name)


def clone_network(network, name=None):
    """A copy of a functional network with the same weights (e.g. an EMA generator)."""
    copy = keras.models.clone_model(network)
    copy.set_weights(network.get_weights())
    if name:
        copy.name = name
    return copy


def ema_copy(generator, ema):
    """The EMA generator a builder passes on: a copy of `generator` if `ema`, else None."""
    return clone_network(generator, "ema_generator") if ema else None


@keras.saving.register_keras_serializable(package="kerasgen")
class DCGAN(NetworkOptimizers, LatentSampling, GenerativeModel, SeededModel):
    """Trains a generator against a discriminator with `fit`.

    Args:
        generator: `keras.Model`. Latent vectors `[batch, latent_dim]` -> images in [-1, 1].
        discriminator: `keras.Model`. Images -> logits.
        seed: int. Seed of the latent-vector stream. Defaults to None (random).
        ema_generator: `keras.Model`. A copy of the generator that every `train_step` keeps as
            an exponential moving average of its weights (Yazici et al. 2019,
            https://arxiv.org/abs/1806.04498); sampled and exported instead of the generator
            when present. Defaults to None.
        ema_decay: float. Decay of that average, warmed up as min(decay, (1 + n) / (10 + n))
            at optimizer step n. Defaults to 0.999.
        r1_weight: float. gamma of the R1 penalty, gamma / 2 * ||grad_x D(x)||^2 on real
            images, added to the discriminator's loss (Mescheder et al. 2018,
            https://arxiv.org/abs/1801.04406, eq. 9): it keeps the discriminator from
            sharpening without bound, which lets a long run converge instead of drifting.
            The `d_loss` metric stays the adversarial term alone. Defaults to 0 (none, the
            DCGAN paper's).

    Example:
        >>> gan = DCGAN(build_generator(100, (32, 32, 1)), build_discriminator((32, 32, 1)))
        >>> gan.compile(loss="non_saturating")
        >>> gan.fit(dataset, epochs=5)

    Reference: https://arxiv.org/abs/1511.06434
    """

    def __init__(self, generator, discriminator, seed=None, ema_generator=None, ema_decay=0.999,
                 r1_weight=0.0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}.")
        if not r1_weight >= 0.0:
            raise ValueError(f"r1_weight must be 0 (no penalty) or positive, got {r1_weight}.")
        self.r1_weight = float(r1_weight)
        self.generator = generator
        self.discriminator = discriminator
        self.ema_generator = ema_generator
        self.ema_decay = float(ema_decay)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        # The networks are functional models, built on construction.
        self.built = True

    @property
    def latent_dim(self):
        return self.generator.input_shape[-1] if not isinstance(self.generator.input_shape, list) \
            else self.generator.input_shape[0][-1]

    @property
    def image_shape(self):
        return tuple(self.generator.output_shape[1:])

    @property
    def inference_generator(self):
        """The EMA generator when there is one, else the generator."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    optimized_networks = ("discriminator", "generator")
    optimizer_names = {"discriminator": "d_optimizer", "generator": "g_optimizer"}
    default_loss = "non_saturating"

    def default_optimizer(self, network):
        """The paper's optimizer for both networks: Adam(2e-4, beta_1=0.5)."""
        return keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)

    def compile(self, d_optimizer=None, g_optimizer=None, loss=None):
        """Configure training.

        Args:
            d_optimizer: `keras.optimizers.Optimizer` for the discriminator. Defaults to the
                family's (`default_optimizer`).
            g_optimizer: `keras.optimizers.Optimizer` for the generator. Defaults likewise.
            loss: str. A name in `kerasgen.losses.GAN_LOSSES`. Defaults to the family's
                (`"non_saturating"` for DCGAN, the paper's).
        """
        loss = loss or self.default_loss
        losses.get_gan_loss(loss)  # fail early on an unknown name
        super().compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer)
        self.loss_name = loss

    def get_compile_config(self):
        config = super().get_compile_config()
        return None if config is None else {**config, "loss": self.loss_name}

    def compile_from_config(self, config):
        config = dict(config)
        loss = config.pop("loss")
        self.compile(**{name: keras.saving.deserialize_keras_object(value)
                        for name, value in config.items()}, loss=loss)

    # --- hooks that conditional subclasses override -----------------------------------------

    def _unpack(self, data):
        """`(images, labels or None)` from a batch of `fit` data."""
        return (data[0] if isinstance(data, (tuple, list)) else data), None

    def _generator_call(self, network, latents, labels, training):
        return network(latents, training=training)

    def _discriminator_call(self, images, labels, training):
        return self.discriminator(images, training=training)

    def _draw_latents(self, batch):
        """z ~ N(0, I) drawn for the global batch, this replica's rows (see kerasgen.distribute)."""
        return batch.slice(keras.random.normal(
            (batch.global_batch_size, self.latent_dim), seed=self.seed_generator))

    # --- training ---------------------------------------------------------------------------

    def train_step(self, data):
        real_images, labels = self._unpack(data)
        batch = ReplicaBatch(tf.shape(real_images)[0])
        d_loss_fn, g_loss_fn = losses.get_gan_loss(self.loss_name)

        # 1. Sample a minibatch of noise z ~ N(0, I) (conditional models reuse the real labels).
        latents = self._draw_latents(batch)

        with tf.GradientTape() as g_tape:
            fake_images = self._generator_call(self.generator, latents, labels, training=True)

            # 2. Update D on the real minibatch and on G(z) (G held fixed).
            with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                real_logits, penalty = self._real_logits_and_r1(real_images, labels)
                fake_logits = self._discriminator_call(
                    tf.stop_gradient(fake_images), labels, training=True)
                d_per_example = d_loss_fn(real_logits, fake_logits)
                d_loss = batch.mean(d_per_example + penalty)
            d_gradients = d_tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(
                zip(d_gradients, self.discriminator.trainable_variables))

            # 3. Update G through the updated D on the same G(z), as the reference
            #    implementation does (github.com/pytorch/examples/blob/main/dcgan/main.py):
            #    one generator forward pass per step instead of two.
            g_per_example = g_loss_fn(
                self._discriminator_call(fake_images, labels, training=True))
            g_loss = batch.mean(g_per_example)
        g_gradients = g_tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(g_gradients, self.generator.trainable_variables))
        self._update_ema()

        # 4. Track per-example losses: the trackers' SUM-on-read totals give global means.
        self.d_loss_tracker.update_state(d_per_example)
        self.g_loss_tracker.update_state(g_per_example)
        return step_logs(self.metrics)

    def _real_logits_and_r1(self, real_images, labels):
        """D's logits on the real batch, and the per-example R1 penalty (0 without one)."""
        if not self.r1_weight:
            return self._discriminator_call(real_images, labels, training=True), 0.0
        with tf.GradientTape() as tape:
            tape.watch(real_images)
            logits = self._discriminator_call(real_images, labels, training=True)
        gradients = tf.cast(tape.gradient(logits, real_images), tf.float32)
        return logits, 0.5 * self.r1_weight * tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3])

    def _update_ema(self):
        """After the generator's step: its EMA copy, if any, moves towards it."""
        if self.ema_generator is not None:
            update_moving_average(zip(self.ema_generator.weights, self.generator.weights),
                                  warmed_up_decay(self.ema_decay, self.g_optimizer.iterations))

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "ema_generator": (keras.saving.serialize_keras_object(self.ema_generator)
                              if self.ema_generator is not None else None),
            "ema_decay": self.ema_decay,
            "r1_weight": self.r1_weight,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator", "ema_generator"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

    # --- inference, used by callbacks, the CLI and export -----------------------------------

    def inference_model(self):
        """A copy whose generator holds the weights sampling uses (the EMA copy's, when there
        is one) and that keeps no EMA copy: a shipped GAN carries one generator, not two."""
        return ema_folded_copy(self, "generator", "ema_generator")

    def start_from(self, source, description):
        """Fine-tuning from a run or a shipped model (whose generator holds the EMA weights)."""
        ema_unfolded_start(self, source, "generator", "ema_generator", description)

    def generate(self, inputs):
        """Images in [-1, 1] for what `sample_inputs` returns, in inference mode."""
        latents = tf.convert_to_tensor(inputs, tf.float32)
        self._check_latents(latents)
        return self.inference_generator(latents, training=False)

    def serving_spec(self):
        """The exported generator and its signatures (see `kerasgen.export`)."""
        latent_dim = self.latent_dim
        generator = self.inference_generator

        def generate(latent):
            return {"images": to_uint8(generator(latent, training=False))}

        def generate_from_seed(seeds):
            return generate(latents_from_seeds(seeds, latent_dim))

        return ServingSpec(
            networks=[generator],
            endpoints={
                "generate": (
                    generate, [tf.TensorSpec([None, latent_dim], tf.float32, name="latent")]),
                "generate_from_seed": (
                    generate_from_seed, [tf.TensorSpec([None], tf.int32, name="seeds")]),
            },
            default="generate",
        )


def build_dcgan(image_shape, latent_dim=100, base_filters=64, seed=None, ema=False):
    """A `DCGAN` with paper-default networks sized from `image_shape`.

    Args:
        image_shape: (int, int, int). Training image (height, width, channels).
        latent_dim: int. Size of z. Defaults to 100 (the paper's).
        base_filters: int. Width of both networks. Defaults to 64.
        seed: int. Seeds the initialisers and the latent stream. Defaults to None.
        ema: bool. Add an EMA copy of the generator, which training keeps (see `DCGAN`).
            Defaults to False.
    """
    generator = build_generator(latent_dim, image_shape, base_filters, seed=seed)
    return DCGAN(
        generator,
        build_discriminator(image_shape, base_filters, seed=seed),
        seed=seed,
        ema_generator=ema_copy(generator, ema),
        name="dcgan",
    )


PRESETS = {
    # 1,437 scikit-learn digits upscaled to 32x32: recognisable digits in about 3 CPU-minutes.
    "dcgan": ModelPreset(
        name="dcgan",
        description="DCGAN (Radford et al. 2015) on 32x32 images; default data: embedded digits",
        task=Generation(),
        build=build_dcgan,
        dataset="digits",
        image_size=32,
        epochs=60,
        batch_size=64,
    ),
}
