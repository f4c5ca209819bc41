"""Class-conditional GAN: a generator fed a label embedding (Mirza & Osindero 2014,
https://arxiv.org/abs/1411.1784) against a projection discriminator (Miyato & Koyama 2018,
https://arxiv.org/abs/1802.05637), on DCGAN trunks and DCGAN's `train_step`.

Example:
    >>> gan = build_conditional_gan((32, 32, 1), num_classes=10, seed=0)
    >>> gan.compile()
    >>> gan.fit(kerasgen.data.load_dataset("digits", image_size=32), epochs=1)
    >>> sevens = gan.generate((gan.sample_inputs(8)[0], tf.fill([8], 7)))
"""

import dataclasses
import functools

import keras
import tensorflow as tf
from keras import layers

from kerasgen.callbacks import LinearDecay
from kerasgen.data import to_uint8
from kerasgen.export import ServingSpec
from kerasgen.layers import LabelEmbedding
from kerasgen.models.base import latents_from_seeds, unpack_labelled
from kerasgen.models.dcgan import (LEARNING_RATE, DCGAN, discriminator_trunk, ema_copy,
                                   generator_trunk)
from kerasgen.models.preset import ModelPreset
from kerasgen.tasks import Generation

LABEL_EMBEDDING = "label_embedding"


def build_conditional_generator(latent_dim, num_classes, image_shape, base_filters=64, seed=None,
                                name="generator"):
    """Generator `(latent, label) -> image`: z concatenated with a learned label embedding.

    Args:
        latent_dim: int. Size of z; also the size of the label embedding.
        num_classes: int. Number of labels, `0 .. num_classes - 1`.
        image_shape: (int, int, int). Output (height, width, channels).
        base_filters: int. Defaults to 64.
        seed: int. Seed of the weight initialisers. Defaults to None.
        name: str. Defaults to `"generator"`.

    Reference: https://arxiv.org/abs/1411.1784
    """
    latent = keras.Input((latent_dim,), name="latent")
    label = keras.Input((), dtype="int32", name="label")
    embedded = LabelEmbedding(num_classes, latent_dim, seed=seed, name=LABEL_EMBEDDING)(label)
    inputs = layers.Concatenate(name="latent_and_label")([latent, embedded])
    images = generator_trunk(inputs, image_shape, base_filters, seed)
    return keras.Model([latent, label], images, name=name)


def build_projection_discriminator(num_classes, image_shape, base_filters=64, seed=None,
                                   normalization="layer", name="discriminator"):
    """Discriminator `(image, label) -> logit`: psi(phi(x)) + <embed(y), phi(x)>.

    Args:
        num_classes: int. Number of labels.
        image_shape: (int, int, int). Input (height, width, channels).
        base_filters: int. Defaults to 64.
        seed: int. Defaults to None.
        normalization: str. See `kerasgen.models.dcgan.build_discriminator`. Defaults to
            `"layer"`: the paper's discriminator has no batch norm (it uses spectral norm), and
            per-example normalisation keeps the real and fake batches independent.
        name: str. Defaults to `"discriminator"`.

    Reference: https://arxiv.org/abs/1802.05637 (equation 3).
    """
    images = keras.Input(tuple(image_shape), name="images")
    label = keras.Input((), dtype="int32", name="label")
    features = discriminator_trunk(images, image_shape, base_filters, seed, normalization)
    unconditional = layers.Dense(1, dtype="float32", name="logit",
                                 kernel_initializer=keras.initializers.RandomNormal(
                                     stddev=0.02, seed=seed))(features)
    # Named apart from the generator's embedding, so that every variable path is unique.
    embedded = LabelEmbedding(num_classes, features.shape[-1], seed=seed,
                              name="label_projection")(label)
    projection = layers.Dot(axes=1, name="projection")([embedded, features])
    logits = layers.Add(name="conditional_logit", dtype="float32")([unconditional, projection])
    return keras.Model([images, label], logits, name=name)


@keras.saving.register_keras_serializable(package="kerasgen")
class ConditionalGAN(DCGAN):
    """Trains a class-conditional generator with `fit` on `(images, labels)` batches.

    The fake batch of each step uses the real batch's labels, so the label distribution of
    the fakes is the data's. Args are `DCGAN`'s; both networks take `[x, label]`.

    Example:
        >>> gan = ConditionalGAN(build_conditional_generator(100, 10, (32, 32, 1)),
        ...                      build_projection_discriminator(10, (32, 32, 1)))

    Reference: https://arxiv.org/abs/1411.1784, https://arxiv.org/abs/1802.05637
    """

    conditional = True

    @property
    def num_classes(self):
        return self.generator.get_layer(LABEL_EMBEDDING).num_classes

    def _unpack(self, data):
        return unpack_labelled(data, "ConditionalGAN")

    def _generator_call(self, network, latents, labels, training):
        return network([latents, labels], training=training)

    def _discriminator_call(self, images, labels, training):
        return self.discriminator([images, labels], training=training)

    def _check_labels(self, labels):
        labels = tf.convert_to_tensor(labels)
        if not labels.dtype.is_integer:
            raise ValueError(f"Labels must be integers, got {labels.dtype.name}.")
        if tf.size(labels) and (int(tf.reduce_min(labels)) < 0
                                or int(tf.reduce_max(labels)) >= self.num_classes):
            raise ValueError(
                f"Labels must be in [0, {self.num_classes - 1}], got values from "
                f"{int(tf.reduce_min(labels))} to {int(tf.reduce_max(labels))}.")
        return tf.cast(labels, tf.int32)

    def sample_inputs(self, num_images, seed=0):
        """`(latents, labels)`: latents for seeds `seed ..`, labels cycling through the classes."""
        latents = latents_from_seeds(tf.range(seed, seed + num_images), self.latent_dim)
        return latents, tf.range(num_images, dtype=tf.int32) % self.num_classes

    def generate(self, inputs):
        """Images in [-1, 1] for `(latents, labels)`, in inference mode."""
        latents, labels = inputs
        latents = tf.convert_to_tensor(latents, tf.float32)
        self._check_latents(latents)
        labels = self._check_labels(labels)
        if labels.shape[0] != latents.shape[0]:
            raise ValueError(f"{latents.shape[0]} latent vectors but {labels.shape[0]} labels.")
        return self.inference_generator([latents, labels], training=False)

    def serving_spec(self):
        """Signatures taking labels next to latents or seeds (see `kerasgen.export`)."""
        latent_dim = self.latent_dim
        generator = self.inference_generator

        def generate(latent, label):
            return {"images": to_uint8(generator([latent, label], training=False))}

        def generate_from_seed(seeds, label):
            return generate(latents_from_seeds(seeds, latent_dim), label)

        label_spec = tf.TensorSpec([None], tf.int32, name="label")
        return ServingSpec(
            networks=[generator],
            endpoints={
                "generate": (generate, [
                    tf.TensorSpec([None, latent_dim], tf.float32, name="latent"), label_spec]),
                "generate_from_seed": (generate_from_seed, [
                    tf.TensorSpec([None], tf.int32, name="seeds"), label_spec]),
            },
            default="generate",
        )

    def representative_inputs(self, num_batches=32, batch_size=8, seed=0):
        """Calibration inputs for full-int8 TFLite: z ~ N(0, I) and every class."""
        for index in range(num_batches):
            latents, labels = self.sample_inputs(batch_size, seed=seed + index * batch_size)
            yield [latents.numpy(), ((labels + index) % self.num_classes).numpy()]


def build_conditional_gan(image_shape, num_classes, latent_dim=100, base_filters=64, seed=None,
                          ema=False, r1_weight=0.0):
    """A `ConditionalGAN` with DCGAN-sized networks.

    Args:
        image_shape: (int, int, int). Training image (height, width, channels).
        num_classes: int. Number of labels in the data.
        latent_dim: int. Defaults to 100.
        base_filters: int. Defaults to 64.
        seed: int. Defaults to None.
        ema: bool. Add an EMA copy of the generator, which training keeps (see `DCGAN`).
            Defaults to False.
        r1_weight: float. The R1 penalty's gamma (see `DCGAN`). Defaults to 0 (none).
    """
    generator = build_conditional_generator(latent_dim, num_classes, image_shape, base_filters,
                                            seed=seed)
    return ConditionalGAN(
        generator,
        build_projection_discriminator(num_classes, image_shape, base_filters, seed=seed),
        seed=seed,
        ema_generator=ema_copy(generator, ema),
        r1_weight=r1_weight,
        name="cgan",
    )


CGAN = ModelPreset(
    name="cgan",
    description="Conditional GAN (label embedding + projection discriminator), EMA "
                "generator; digits",
    task=Generation(labelled=True),
    build=build_conditional_gan,
    model_kwargs={"ema": True},
    dataset="digits",
    image_size=32,
    # 30 epochs (660 steps) of the EMA generator draw clear digits in each labelled row,
    # within README command 1's 5-minute budget on 2 cores.
    epochs=30,
    batch_size=64,
)

PRESETS = {
    "cgan": CGAN,
    # The long-run recipe. Without a penalty the domain FD on MNIST is best after about 5,000
    # steps and then drifts up as the discriminator sharpens (12.3 -> 15.7 by 11,000 steps even
    # while the learning rate decays); R1 (gamma 1) keeps it falling.
    "cgan_r1": dataclasses.replace(
        CGAN,
        name="cgan_r1",
        description="Conditional GAN with the R1 penalty and a linear decay, EMA generator; "
                    "MNIST, 30,000 steps",
        model_kwargs={"ema": True, "r1_weight": 1.0},
        dataset="mnist",
        image_size=None,
        steps_per_epoch=1000,
        learning_rate_schedule=functools.partial(LinearDecay, LEARNING_RATE, constant_share=0.5),
    ),
}
