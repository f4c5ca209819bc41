"""DCGAN: Radford, Metz & Chintala 2015, "Unsupervised Representation Learning with Deep
Convolutional Generative Adversarial Networks", https://arxiv.org/abs/1511.06434.

Builders return functional `keras.Model`s sized from the image shape; `DCGAN` trains them with
`fit` and is the pattern the other GAN families follow.

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
from kerasgen.distribute import ReplicaBatch
from kerasgen.export import ServingSpec
from kerasgen.models.base import SeededModel
from kerasgen.models.preset import ModelPreset

KERNEL_SIZE = 4
MAX_UPSAMPLINGS = 4
# Section 4 of the paper: weights from N(0, 0.02), Adam(lr=2e-4, beta_1=0.5), LeakyReLU 0.2.
INIT_STDDEV = 0.02
LEARNING_RATE = 2e-4
BETA_1 = 0.5
LEAKY_SLOPE = 0.2


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


def _batch_norm(name):
    # synchronized=True: batch statistics over the global batch under tf.distribute, so a step
    # on N replicas equals the step on one device; it is plain batch norm on one device.
    # momentum=0.9 is PyTorch's 0.1, as in the reference implementation: Keras' default 0.99
    # lags far behind a generator that changes every step.
    return layers.BatchNormalization(momentum=0.9, synchronized=True, name=name)


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
    height, width, channels = image_shape
    steps = num_upsamplings(image_shape)
    start_height, start_width = height // 2 ** steps, width // 2 ** steps
    filters = base_filters * 2 ** (steps - 1)

    latent = keras.Input((latent_dim,), name="latent")
    x = layers.Dense(start_height * start_width * filters, use_bias=False,
                     kernel_initializer=_initializer(seed), name="project")(latent)
    x = _batch_norm("project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((start_height, start_width, filters), name="to_map")(x)
    for step in range(steps - 1):
        filters //= 2
        x = layers.Conv2DTranspose(filters, KERNEL_SIZE, strides=2, padding="same",
                                   use_bias=False, kernel_initializer=_initializer(seed),
                                   name=f"up{step}")(x)
        x = _batch_norm(f"up{step}_bn")(x)
        x = layers.ReLU(name=f"up{step}_relu")(x)
    # No batch norm on the output layer (section 3 of the paper).
    x = layers.Conv2DTranspose(channels, KERNEL_SIZE, strides=2, padding="same",
                               kernel_initializer=_initializer(seed), name="to_image")(x)
    images = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(latent, images, name=name)


def build_discriminator(image_shape, base_filters=64, seed=None, name="discriminator"):
    """DCGAN discriminator: image in [-1, 1] -> one logit per image.

    Args:
        image_shape: (int, int, int). Input (height, width, channels).
        base_filters: int. Filters of the first layer; each later layer doubles them.
            Defaults to 64.
        seed: int. Seed of the weight initialisers. Defaults to None.
        name: str. Defaults to `"discriminator"`.

    Reference: https://arxiv.org/abs/1511.06434 (section 3).
    """
    steps = num_upsamplings(image_shape)
    images = keras.Input(tuple(image_shape), name="images")
    x = images
    filters = base_filters
    for step in range(steps):
        x = layers.Conv2D(filters, KERNEL_SIZE, strides=2, padding="same", use_bias=step == 0,
                          kernel_initializer=_initializer(seed), name=f"down{step}")(x)
        if step > 0:  # no batch norm on the input layer (section 3)
            x = _batch_norm(f"down{step}_bn")(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"down{step}_lrelu")(x)
        filters *= 2
    x = layers.Flatten(name="flatten")(x)
    logits = layers.Dense(1, dtype="float32", kernel_initializer=_initializer(seed),
                          name="logit")(x)
    return keras.Model(images, logits, name=name)


def latents_from_seeds(seeds, latent_dim):
    """One deterministic N(0, 1) latent vector per int32 seed, whatever the batch around it."""
    seeds = tf.cast(tf.reshape(seeds, [-1]), tf.int32)
    return tf.map_fn(
        lambda seed: tf.random.stateless_normal([latent_dim], seed=tf.stack([seed, 0])),
        seeds,
        fn_output_signature=tf.TensorSpec([latent_dim], tf.float32),
    )


@keras.saving.register_keras_serializable(package="kerasgen")
class DCGAN(SeededModel):
    """Trains a generator against a discriminator with `fit`.

    Args:
        generator: `keras.Model`. Latent vectors `[batch, latent_dim]` -> images in [-1, 1].
        discriminator: `keras.Model`. Images -> logits.
        seed: int. Seed of the latent-vector stream. Defaults to None (random).

    Example:
        >>> gan = DCGAN(build_generator(100, (32, 32, 1)), build_discriminator((32, 32, 1)))
        >>> gan.compile(loss="non_saturating")
        >>> gan.fit(dataset, epochs=5)

    Reference: https://arxiv.org/abs/1511.06434
    """

    def __init__(self, generator, discriminator, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        # Both networks are functional models, built on construction.
        self.built = True

    @property
    def latent_dim(self):
        return self.generator.input_shape[-1]

    @property
    def image_shape(self):
        return tuple(self.generator.output_shape[1:])

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def call(self, latents, training=False):
        return self.generator(latents, training=training)

    def compile(self, d_optimizer=None, g_optimizer=None, loss="non_saturating", **kwargs):
        """Configure training.

        Args:
            d_optimizer: `keras.optimizers.Optimizer` for the discriminator. Defaults to
                Adam(2e-4, beta_1=0.5), the paper's.
            g_optimizer: `keras.optimizers.Optimizer` for the generator. Defaults likewise.
            loss: str. A name in `kerasgen.losses.GAN_LOSSES`. Defaults to
                `"non_saturating"`, the paper's.
        """
        losses.get_gan_loss(loss)  # fail early on an unknown name
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = d_optimizer or keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)
        self.g_optimizer = g_optimizer or keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)
        self.loss_name = loss
        # Built now so that `.keras` loading finds their slots and restores their moments.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "loss": self.loss_name,
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            loss=config["loss"],
        )

    def train_step(self, data):
        real_images = data[0] if isinstance(data, (tuple, list)) else data
        batch = ReplicaBatch(tf.shape(real_images)[0])
        d_loss_fn, g_loss_fn = losses.get_gan_loss(self.loss_name)

        # 1. Sample a minibatch of noise z ~ N(0, I), drawn for the global batch so that each
        #    replica trains on different z (kerasgen.distribute explains why).
        latents = batch.slice(keras.random.normal(
            (batch.global_batch_size, self.latent_dim), seed=self.seed_generator))

        with tf.GradientTape() as g_tape:
            fake_images = self.generator(latents, training=True)

            # 2. Update D on the real minibatch and on G(z) (G held fixed).
            with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                real_logits = self.discriminator(real_images, training=True)
                fake_logits = self.discriminator(tf.stop_gradient(fake_images), training=True)
                d_per_example = d_loss_fn(real_logits, fake_logits)
                d_loss = batch.mean(d_per_example)
            d_gradients = d_tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(
                zip(d_gradients, self.discriminator.trainable_variables))

            # 3. Update G through the updated D on the same G(z), as the reference
            #    implementation does (github.com/pytorch/examples/blob/main/dcgan/main.py):
            #    one generator forward pass per step instead of two.
            g_per_example = g_loss_fn(self.discriminator(fake_images, training=True))
            g_loss = batch.mean(g_per_example)
        g_gradients = g_tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(g_gradients, self.generator.trainable_variables))

        # 4. Track per-example losses: the trackers' SUM-on-read totals give global means.
        self.d_loss_tracker.update_state(d_per_example)
        self.g_loss_tracker.update_state(g_per_example)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self):
        config = super().get_config()
        config.update({
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)

    # --- inference, used by callbacks, the CLI and export -----------------------------------

    def sample_inputs(self, num_images, seed=0):
        """Latent vectors for seeds `seed .. seed + num_images - 1` (as the export signature)."""
        return latents_from_seeds(tf.range(seed, seed + num_images), self.latent_dim)

    def generate(self, latents):
        """Images in [-1, 1] for latent vectors, in inference mode."""
        return self.generator(latents, training=False)

    def serving_spec(self):
        """The exported generator and its signatures (see `kerasgen.export`)."""
        latent_dim = self.latent_dim
        generator = self.generator

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

    def representative_inputs(self, num_batches=32, batch_size=8, seed=0):
        """Calibration inputs for full-int8 TFLite: the generator's training inputs, z ~ N(0, I)."""
        for index in range(num_batches):
            yield [self.sample_inputs(batch_size, seed=seed + index * batch_size).numpy()]


def build_dcgan(image_shape, latent_dim=100, base_filters=64, seed=None):
    """A `DCGAN` with paper-default networks sized from `image_shape`.

    Args:
        image_shape: (int, int, int). Training image (height, width, channels).
        latent_dim: int. Size of z. Defaults to 100 (the paper's).
        base_filters: int. Width of both networks. Defaults to 64.
        seed: int. Seeds the initialisers and the latent stream. Defaults to None.
    """
    return DCGAN(
        build_generator(latent_dim, image_shape, base_filters, seed=seed),
        build_discriminator(image_shape, base_filters, seed=seed),
        seed=seed,
        name="dcgan",
    )


PRESETS = {
    # 1,437 scikit-learn digits upscaled to 32x32: recognisable digits in about 3 CPU-minutes.
    "dcgan": ModelPreset(
        name="dcgan",
        description="DCGAN (Radford et al. 2015) on 32x32 images; default data: embedded digits",
        build=build_dcgan,
        model_kwargs={"latent_dim": 100, "base_filters": 64},
        dataset="digits",
        image_size=32,
        epochs=60,
        batch_size=64,
    ),
}
