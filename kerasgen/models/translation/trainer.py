"""The translation wrappers: `CycleGAN` (unpaired) and `Pix2Pix` (paired), and their builders.

Both implement the image-to-image contract (`kerasgen.tasks.ImageToImageModel`): they train
with `fit` on `(a, b)` batches (`kerasgen.data.translation`), translate uint8 images of any size
(`apply`, the `a2b` / `b2a` / `translate` serving signatures, TFLite with dynamic input shapes
and builtin ops only) and evaluate on a dataset's test split.
"""

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasgen import losses
from kerasgen.data import pad_to_multiple, to_float, to_uint8
from kerasgen.data import translation as data
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec
from kerasgen.layers import ImagePool
from kerasgen.models.base import NestedObjects, NetworkOptimizers, SeededModel
from kerasgen.models.translation.networks import (BETA_1, CHANNELS, DEFAULT_IMAGE_SIZE,
                                                  LEARNING_RATE, MIN_SIDE,
                                                  _image_size, build_patch_discriminator,
                                                  build_resnet_generator, build_unet_generator,
                                                  resnet_blocks_for, unet_depth_for)
from kerasgen.tasks import ImageToImageModel
from kerasgen.visualize import save_image_grid


def _l1(predicted, target):
    """Mean absolute error per example."""
    return tf.reduce_mean(tf.abs(predicted - target), axis=[1, 2, 3])


# --- what both wrappers share: inference and export ------------------------------------------

class Translator(NetworkOptimizers, ImageToImageModel, NestedObjects):
    """Inference, data, figures, export and configuration of a translation wrapper.

    Subclasses define `translators()` (direction name -> generator), `paired`, `benchmark`,
    hold `size_multiple` and `image_size`, and list their other constructor arguments in
    `config_attributes` (the networks are those of `optimized_networks`).
    """

    config_attributes = ()

    def get_config(self):
        config = super().get_config()
        config.update({name: keras.saving.serialize_keras_object(getattr(self, name))
                       for name in self.optimized_networks})
        config.update({name: getattr(self, name) for name in self.config_attributes})
        return config

    def default_optimizer(self, network):
        """Both papers' optimizer for every network: Adam(2e-4, beta_1=0.5)."""
        return keras.optimizers.Adam(LEARNING_RATE, beta_1=BETA_1)

    @property
    def min_padded_size(self):
        """Smallest side the generator runs on (1 pixel at its bottleneck)."""
        return self.size_multiple

    @property
    def directions(self):
        return list(self.translators())

    def check_direction(self, direction):
        """The direction name to use; None means the first (a2b or translate)."""
        if direction is None:
            return self.directions[0]
        if direction not in self.translators():
            raise ValueError(f"Unknown direction {direction!r}; this model translates "
                             f"{self.directions}.")
        return direction

    def check_images(self, images):
        """uint8 `[N, H, W, 3]` (or HWC) images this model can translate, as a tensor."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank == 3:
            images = images[None]
        if images.dtype != tf.uint8:
            raise ValueError(f"translate takes uint8 images (0..255), got {images.dtype.name}; "
                             "for float data in [-1, 1] use translate_float.")
        if images.shape.rank != 4 or images.shape[-1] != CHANNELS:
            raise ValueError(f"translate takes RGB images [batch, H, W, 3] or [H, W, 3], got "
                             f"shape {images.shape}; convert grey images to RGB first.")
        if min(images.shape[1], images.shape[2]) < MIN_SIDE:
            raise ValueError(f"A {images.shape[1]}x{images.shape[2]} image is too small; "
                             f"translate images of at least {MIN_SIDE}x{MIN_SIDE} pixels.")
        return images

    def translate_float(self, images, direction=None):
        """Translate float images in [-1, 1] of any size: reflect-padded to the network's
        multiple, cropped back afterwards."""
        network = self.translators()[self.check_direction(direction)]
        images = tf.cast(images, tf.float32)
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        padded = pad_to_multiple(images, self.size_multiple, self.min_padded_size)
        translated = network(padded, training=False)
        return translated[:, :height, :width]

    def apply(self, images, direction: str = None):
        """Translate uint8 RGB images of any size (`[N, H, W, 3]` or HWC); returns uint8 NHWC.

        Args:
            images: uint8 images of the direction's source domain.
            direction: str. `"a2b"` or `"b2a"` (CycleGAN); pix2pix has `"translate"` only.
                Defaults to the first.
        """
        direction = self.check_direction(direction)
        return to_uint8(self.translate_float(to_float(self.check_images(images)), direction))

    translate = apply

    def check_apply_options(self, direction=None):
        return {"direction": self.check_direction(direction)}

    def read_image(self, path):
        """A file as uint8 RGB (grey files are read as RGB), checked."""
        from kerasgen.data.sources import decode_image_file

        return self.check_images(decode_image_file(path, channels=CHANNELS))[0]

    def load_pairs(self, dataset, split, data_dir=None):
        """`(images_a, images_b)` of a dataset split: aligned pairs or two domains."""
        load = data.load_paired if self.paired else data.load_unpaired
        return load(dataset, split, data_dir)

    def training_data(self, dataset, batch_size, seed=0, data_dir=None, start_batch=0):
        """Endless jittered `(a, b)` batches from a translation data name or folders."""
        images_a, images_b = self.load_pairs(dataset, "train", data_dir)
        return data.jitter_dataset(images_a, images_b, self.image_size, batch_size, seed=seed,
                                   paired=self.paired, start_batch=start_batch)

    def training_figures(self, run_dir, dataset, data_dir=None, count=8):
        """`translations.png` in the run folder: the first test images of the run's data,
        translated (and, for CycleGAN, translated back). Returns `{"translations": path}`."""
        images_a, images_b = self.load_pairs(dataset, "test", data_dir)
        images_a = data.resized_arrays(images_a[:count], self.image_size)
        images_b = data.resized_arrays(images_b[:count], self.image_size)
        grid = translation_figure(self, images_a, images_b)
        path = save_image_grid(grid, Path(run_dir) / "translations.png", columns=len(images_a),
                               title=("rows: input, output, target" if self.paired else
                                      "rows: A, G(A), F(G(A)), B, F(B), G(F(B))"))
        return {"translations": path}

    def serving_spec(self):
        """One signature per direction: uint8 images of any size -> uint8 images."""
        spec = tf.TensorSpec([None, None, None, CHANNELS], tf.uint8, name="images")

        def endpoint(direction):
            return lambda images: {"images": to_uint8(self.translate_float(to_float(images),
                                                                           direction))}

        return ServingSpec(
            networks=list(self.translators().values()),
            endpoints={direction: (endpoint(direction), [spec]) for direction in self.directions},
            default=self.directions[0])

    def representative_inputs(self, num_batches=8, batch_size=2, size=64, seed=0):
        """Calibration inputs for full-int8 TFLite: crops of the embedded photos."""
        from kerasgen.data.sources import load_photos

        photos, _ = load_photos("all", crop_size=size, num_crops=num_batches * batch_size,
                                seed=seed)
        for index in range(num_batches):
            yield [photos[index * batch_size:(index + 1) * batch_size]]

    def _check_crops(self, *batches):
        for images in batches:
            if images.shape[1] is not None and tuple(images.shape[1:]) != (
                    self.image_size, self.image_size, CHANNELS):
                raise ValueError(
                    f"Training crops of shape {tuple(images.shape[1:])} do not match this "
                    f"model's image_size={self.image_size} (RGB); build the model for the crop "
                    "size or crop the data to it.")


def _unpack_pair(data_batch, model_name):
    if not isinstance(data_batch, (tuple, list)) or len(data_batch) != 2:
        raise ValueError(f"{model_name} trains on (a, b) image batches; build them with "
                         "kerasgen.data.translation.jitter_dataset.")
    return tuple(tf.cast(part, tf.float32) for part in data_batch)


# --- CycleGAN --------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kerasgen")
class CycleGAN(Translator, SeededModel):
    """Unpaired translation between domains A and B with two generators and two
    discriminators, each trained by its own optimizer.

    `fit` data: `(images_a, images_b)` batches in [-1, 1], unaligned (`jitter_dataset`).

    Args:
        generator_a2b: `keras.Model`. G: A -> B.
        generator_b2a: `keras.Model`. F: B -> A.
        discriminator_a: `keras.Model`. Real A vs F(B), a map of logits.
        discriminator_b: `keras.Model`. Real B vs G(A).
        image_size: int. Side of the square training crops (the pools store such images).
            Defaults to 256.
        lambda_cycle: float. Weight of the cycle-consistency loss. Defaults to 10 (the paper's).
        lambda_identity: float. Weight of the identity loss relative to `lambda_cycle`.
            Defaults to 0.5 (the paper's, section 5.2).
        pool_size: int. Generated images each discriminator's history pool holds.
            Defaults to 50.
        size_multiple: int. Inputs are reflect-padded to a multiple of this (the generators'
            total down-sampling). Defaults to 4.
        seed: int. Seed of the pools' random stream. Defaults to None.

    Reference: https://arxiv.org/abs/1703.10593
    """

    optimized_networks = ("generator_a2b", "generator_b2a", "discriminator_a", "discriminator_b")
    nested = optimized_networks
    config_attributes = ("image_size", "lambda_cycle", "lambda_identity", "pool_size",
                         "size_multiple")
    paired = False

    def __init__(self, generator_a2b, generator_b2a, discriminator_a, discriminator_b,
                 image_size=DEFAULT_IMAGE_SIZE, lambda_cycle=10.0, lambda_identity=0.5,
                 pool_size=50, size_multiple=4, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator_a2b = generator_a2b
        self.generator_b2a = generator_b2a
        self.discriminator_a = discriminator_a
        self.discriminator_b = discriminator_b
        self.image_size = int(image_size)
        self.lambda_cycle = float(lambda_cycle)
        self.lambda_identity = float(lambda_identity)
        self.pool_size = int(pool_size)
        self.size_multiple = int(size_multiple)
        image_shape = (self.image_size, self.image_size, CHANNELS)
        # Fakes of domain A (for D_A) and of domain B (for D_B).
        self.pool_a = ImagePool(pool_size, image_shape, name="pool_a")
        self.pool_b = ImagePool(pool_size, image_shape, name="pool_b")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.cycle_loss_tracker = keras.metrics.Mean(name="cycle_loss")
        self.identity_loss_tracker = keras.metrics.Mean(name="identity_loss")
        self.d_a_loss_tracker = keras.metrics.Mean(name="d_a_loss")
        self.d_b_loss_tracker = keras.metrics.Mean(name="d_b_loss")
        self.built = True

    @property
    def metrics(self):
        return [self.g_loss_tracker, self.cycle_loss_tracker, self.identity_loss_tracker,
                self.d_a_loss_tracker, self.d_b_loss_tracker]

    def benchmark(self, dataset, data_dir=None, seed=0, classifier_epochs: int = 20):
        """Domain success and cycle error on the dataset's test split; the judge is a
        two-domain classifier trained on its train split (`evaluate_translation`)."""
        from kerasgen.models.translation import evaluation

        if classifier_epochs < 1:
            raise ValueError(f"classifier_epochs must be at least 1, got {classifier_epochs}.")
        train_a, train_b = self.load_pairs(dataset, "train", data_dir)
        test_a, test_b = (data.resized_arrays(images, self.image_size)
                          for images in self.load_pairs(dataset, "test", data_dir))
        classifier = evaluation.train_domain_classifier(train_a, train_b,
                                                        epochs=classifier_epochs, seed=seed)
        report = evaluation.evaluate_translation(self, test_a, test_b, classifier)
        return {**report, "lines": evaluation.translation_lines(report)}

    def translators(self):
        return {"a2b": self.generator_a2b, "b2a": self.generator_b2a}

    @property
    def min_padded_size(self):
        # The residual blocks reflect-pad by one pixel, which needs 2 at the bottleneck.
        return 2 * self.size_multiple

    def call(self, inputs, training=False):
        return self.generator_a2b(inputs, training=training)

    def train_step(self, data_batch):
        real_a, real_b = _unpack_pair(data_batch, "CycleGAN")
        self._check_crops(real_a, real_b)
        batch = ReplicaBatch(tf.shape(real_a)[0])
        generators = self.generator_a2b.trainable_variables + \
            self.generator_b2a.trainable_variables
        d_gan_loss, g_gan_loss = losses.get_gan_loss("least_squares")

        with tf.GradientTape() as g_tape:
            # 1. Translate both ways and back: G(a), F(b), F(G(a)), G(F(b)) (section 3).
            fake_b = self.generator_a2b(real_a, training=True)
            fake_a = self.generator_b2a(real_b, training=True)
            cycled_a = self.generator_b2a(fake_b, training=True)
            cycled_b = self.generator_a2b(fake_a, training=True)
            # 2. Least-squares adversarial loss (section 4): (D(G(a)) - 1)^2, the reference
            #    implementation's MSE, i.e. twice the LSGAN generator loss with its 1/2.
            adversarial = 2.0 * (
                g_gan_loss(self.discriminator_b(fake_b, training=True))
                + g_gan_loss(self.discriminator_a(fake_a, training=True)))
            # 3. Cycle consistency, L1, weighted lambda (eq. 2-3).
            cycle = _l1(cycled_a, real_a) + _l1(cycled_b, real_b)
            g_per_example = adversarial + self.lambda_cycle * cycle
            # 4. Identity loss, G(b) ~ b and F(a) ~ a, weighted 0.5 lambda (section 5.2, after
            #    Taigman et al. 2017, https://arxiv.org/abs/1611.02200): keeps colours.
            identity = tf.zeros_like(cycle)
            if self.lambda_identity:
                identity = _l1(self.generator_a2b(real_b, training=True), real_b) + \
                    _l1(self.generator_b2a(real_a, training=True), real_a)
                g_per_example += self.lambda_cycle * self.lambda_identity * identity
            g_loss = batch.mean(g_per_example)
        gradients = g_tape.gradient(g_loss, generators)
        split = len(self.generator_a2b.trainable_variables)
        self.generator_a2b_optimizer.apply_gradients(
            zip(gradients[:split], self.generator_a2b.trainable_variables))
        self.generator_b2a_optimizer.apply_gradients(
            zip(gradients[split:], self.generator_b2a.trainable_variables))

        # 5. Discriminators: real images vs fakes drawn from the history pools (section 4),
        #    the loss halved "to slow down the rate at which D learns" (section 7.1).
        pooled_a = self.pool_a.query(tf.stop_gradient(fake_a), self.seed_generator)
        pooled_b = self.pool_b.query(tf.stop_gradient(fake_b), self.seed_generator)
        with tf.GradientTape(persistent=True) as d_tape:
            d_a_per_example = d_gan_loss(self.discriminator_a(real_a, training=True),
                                         self.discriminator_a(pooled_a, training=True))
            d_b_per_example = d_gan_loss(self.discriminator_b(real_b, training=True),
                                         self.discriminator_b(pooled_b, training=True))
            d_a_loss = batch.mean(d_a_per_example)
            d_b_loss = batch.mean(d_b_per_example)
        for network, loss, optimizer in (
                (self.discriminator_a, d_a_loss, self.discriminator_a_optimizer),
                (self.discriminator_b, d_b_loss, self.discriminator_b_optimizer)):
            variables = network.trainable_variables
            optimizer.apply_gradients(zip(d_tape.gradient(loss, variables), variables))
        del d_tape

        # 6. Per-example trackers: their SUM-on-read totals give global means.
        self.g_loss_tracker.update_state(g_per_example)
        self.cycle_loss_tracker.update_state(cycle)
        self.identity_loss_tracker.update_state(identity)
        self.d_a_loss_tracker.update_state(d_a_per_example)
        self.d_b_loss_tracker.update_state(d_b_per_example)
        return step_logs(self.metrics)



def build_cyclegan(image_shape=None, seed=0, num_filters=64, num_blocks=None,
                   discriminator_filters=64, lambda_cycle=10.0, lambda_identity=0.5,
                   pool_size=50):
    """A `CycleGAN` with the paper's networks for square training crops of `image_shape`.

    Args:
        image_shape: (int, int[, int]). Training crop size. Defaults to None (256, the paper's).
        seed: int. Seeds the initialisers and the pools' stream.
        num_filters: int. Width of the generators' first layer. Defaults to 64.
        num_blocks: int. Residual blocks. Defaults to the paper's for the size (6 below 256,
            else 9).
        discriminator_filters: int. Width of the PatchGANs' first layer. Defaults to 64.
        lambda_cycle, lambda_identity, pool_size: see `CycleGAN`.
    """
    image_size = _image_size(image_shape)
    if image_size % 4:
        raise ValueError(f"CycleGAN's generators down-sample by 4; the crop size {image_size} "
                         "must be a multiple of 4 (CLI: --image-size).")
    num_blocks = num_blocks or resnet_blocks_for(image_size)
    networks = {
        "generator_a2b": build_resnet_generator(
            num_filters=num_filters, num_blocks=num_blocks, seed=seed, name="generator_a2b"),
        "generator_b2a": build_resnet_generator(
            num_filters=num_filters, num_blocks=num_blocks,
            seed=None if seed is None else seed + 1000, name="generator_b2a"),
        "discriminator_a": build_patch_discriminator(
            num_filters=discriminator_filters, seed=None if seed is None else seed + 2000,
            name="discriminator_a"),
        "discriminator_b": build_patch_discriminator(
            num_filters=discriminator_filters, seed=None if seed is None else seed + 3000,
            name="discriminator_b"),
    }
    return CycleGAN(**networks, image_size=image_size, lambda_cycle=lambda_cycle,
                    lambda_identity=lambda_identity, pool_size=pool_size, size_multiple=4,
                    seed=seed, name="cyclegan")


# --- pix2pix ---------------------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kerasgen")
class Pix2Pix(Translator, SeededModel):
    """Paired translation: a U-Net generator against a conditional PatchGAN, plus L1.

    `fit` data: aligned `(inputs, targets)` batches in [-1, 1] (`jitter_dataset(paired=True)`).

    Args:
        generator: `keras.Model`. Input images -> output images.
        discriminator: `keras.Model`. `[input, image]` -> a map of logits.
        l1_weight: float. Weight of the L1 loss against the target. Defaults to 100 (the
            paper's lambda).
        image_size: int. Side of the square training crops. Defaults to 256.
        size_multiple: int. Inputs are reflect-padded to a multiple of this (2 ** the U-Net's
            down-samplings). Defaults to 256.
        seed: int. Defaults to None.

    Reference: https://arxiv.org/abs/1611.07004
    """

    optimized_networks = ("generator", "discriminator")
    nested = optimized_networks
    config_attributes = ("l1_weight", "image_size", "size_multiple")
    paired = True

    def __init__(self, generator, discriminator, l1_weight=100.0, image_size=DEFAULT_IMAGE_SIZE,
                 size_multiple=256, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = float(l1_weight)
        self.image_size = int(image_size)
        self.size_multiple = int(size_multiple)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_gan_loss_tracker = keras.metrics.Mean(name="g_gan_loss")
        self.l1_loss_tracker = keras.metrics.Mean(name="l1_loss")
        self.built = True

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_gan_loss_tracker, self.l1_loss_tracker]

    def benchmark(self, dataset, data_dir=None, seed=0):
        """PSNR/SSIM of the outputs against the targets of the dataset's test pairs."""
        from kerasgen.models.translation import evaluation

        del seed  # inference is deterministic
        inputs, targets = self.load_pairs(dataset, "test", data_dir)
        report = evaluation.evaluate_paired(self, inputs, targets)
        return {**report, "lines": evaluation.translation_lines(report)}

    def translators(self):
        return {"translate": self.generator}

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def train_step(self, data_batch):
        inputs, targets = _unpack_pair(data_batch, "pix2pix")
        self._check_crops(inputs, targets)
        batch = ReplicaBatch(tf.shape(inputs)[0])
        d_gan_loss, g_gan_loss = losses.get_gan_loss("non_saturating")

        with tf.GradientTape() as g_tape:
            # 1. G(x), with dropout as the noise source (section 2.2).
            outputs = self.generator(inputs, training=True)

            # 2. Update D on (x, y) vs (x, G(x)), the objective halved (section 3.3).
            with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                d_per_example = 0.5 * d_gan_loss(
                    self.discriminator([inputs, targets], training=True),
                    self.discriminator([inputs, tf.stop_gradient(outputs)], training=True))
                d_loss = batch.mean(d_per_example)
            variables = self.discriminator.trainable_variables
            self.discriminator_optimizer.apply_gradients(
                zip(d_tape.gradient(d_loss, variables), variables))

            # 3. Update G: fool the updated D (non-saturating) and stay near y in L1 (eq. 4).
            gan_per_example = g_gan_loss(
                self.discriminator([inputs, outputs], training=True))
            l1 = _l1(outputs, targets)
            g_loss = batch.mean(gan_per_example + self.l1_weight * l1)
        variables = self.generator.trainable_variables
        self.generator_optimizer.apply_gradients(zip(g_tape.gradient(g_loss, variables),
                                                     variables))

        # 4. Per-example trackers.
        self.d_loss_tracker.update_state(d_per_example)
        self.g_gan_loss_tracker.update_state(gan_per_example)
        self.l1_loss_tracker.update_state(l1)
        return step_logs(self.metrics)



def build_pix2pix(image_shape=None, seed=0, num_filters=64, num_downs=None,
                  discriminator_filters=64, l1_weight=100.0, dropout=0.5):
    """A `Pix2Pix` with the paper's U-Net and 70x70 conditional PatchGAN.

    Args:
        image_shape: (int, int[, int]). Training crop size. Defaults to None (256).
        seed: int. Seeds the initialisers.
        num_filters: int. Width of the U-Net's first layer. Defaults to 64.
        num_downs: int. U-Net down-samplings. Defaults to down to 1x1 (8 for 256).
        discriminator_filters: int. Defaults to 64.
        l1_weight: float. Defaults to 100.
        dropout: float. Decoder dropout rate. Defaults to 0.5.
    """
    image_size = _image_size(image_shape)
    num_downs = num_downs or unet_depth_for(image_size)
    if image_size % 2 ** num_downs:
        raise ValueError(f"A {num_downs}-level U-Net needs crops divisible by {2 ** num_downs}; "
                         f"got {image_size}.")
    generator = build_unet_generator(num_downs=num_downs, num_filters=num_filters,
                                     dropout=dropout, seed=seed)
    discriminator = build_patch_discriminator(
        num_filters=discriminator_filters, condition_channels=CHANNELS,
        seed=None if seed is None else seed + 1000)
    return Pix2Pix(generator, discriminator, l1_weight=l1_weight, image_size=image_size,
                   size_multiple=2 ** num_downs, seed=seed, name="pix2pix")


# --- figures -------------------------------------------------------------------------------

def translation_figure(model, images_a, images_b=None):
    """Rows of uint8 images for a figure: CycleGAN `a | G(a) | F(G(a))` then `b | F(b) |
    G(F(b))`; pix2pix `input | output | target` (`images_b` the targets)."""
    if model.paired:
        outputs = model.translate(images_a).numpy()
        rows = [images_a, outputs] + ([images_b] if images_b is not None else [])
    else:
        fake_b = model.translate(images_a, "a2b").numpy()
        fake_a = model.translate(images_b, "b2a").numpy()
        rows = [images_a, fake_b, model.translate(fake_b, "b2a").numpy(),
                images_b, fake_a, model.translate(fake_a, "a2b").numpy()]
    return np.concatenate(rows)
