"""`AdversarialInpainter`: an `Inpainter` whose fills are also judged by a discriminator.

Two members of the family train this way:
- DeepFill v2 (Yu et al. 2019, arXiv:1806.03589): a gated-convolution generator against an
  SN-PatchGAN that sees the image and the holes, hinge loss, L1 reconstruction (both weighted
  1 in the released code).
- The Context Encoder (Pathak et al. 2016, arXiv:1604.07379): an encoder-decoder against a
  discriminator, non-saturating loss, L2 reconstruction weighted 0.999 and the adversarial
  term 0.001.

The discriminator scores composites (known pixels kept) against the clean images, with the
hole mask beside them (Yu et al. section 3.2), so it judges the fill and its seams.
"""

import keras
import tensorflow as tf

from kerasgen import losses
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.models.inpainting.trainer import Inpainter


@keras.saving.register_keras_serializable(package="kerasgen")
class AdversarialInpainter(Inpainter):
    """`Inpainter` plus a discriminator, trained alternately (one step each per batch).

    `fit` data: clean float images in [0, 1], as `Inpainter`.

    Args:
        network: `keras.Model`. The generator, as `Inpainter`'s.
        masks: `HoleMask`.
        discriminator: `keras.Model`. `[image in [0, 1], holes]` -> logits (a map or one).
        gan_loss: str. A `kerasgen.losses` pair: "hinge" (SN-PatchGAN) or "non_saturating"
            (Context Encoder). Defaults to "hinge".
        adversarial_weight: float. Weight of the generator's adversarial term. Defaults to 1.
        **kwargs: `Inpainter`'s (reconstruction loss and weights, patch size, seed).
    """

    nested = ("network", "masks", "discriminator")
    optimized_networks = ("network", "discriminator")
    # The GAN papers' Adam: beta_1 0.5 (Yu et al.'s released code, Pathak et al.'s train.lua).
    adam_betas = (0.5, 0.999)

    def __init__(self, network, masks, discriminator, gan_loss="hinge", adversarial_weight=1.0,
                 **kwargs):
        super().__init__(network, masks, **kwargs)
        losses.get_gan_loss(gan_loss)  # refuses unknown names
        if float(adversarial_weight) < 0:
            raise ValueError(f"adversarial_weight must be >= 0, got {adversarial_weight}.")
        self.discriminator = discriminator
        self.gan_loss = gan_loss
        self.adversarial_weight = float(adversarial_weight)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_gan_loss_tracker = keras.metrics.Mean(name="g_gan_loss")

    @property
    def metrics(self):
        return [*super().metrics, self.d_loss_tracker, self.g_gan_loss_tracker]

    def default_optimizer(self, network):
        return keras.optimizers.Adam(self.learning_rate, *self.adam_betas)

    def train_step(self, data_batch):
        clean = tf.cast(data_batch, tf.float32)
        batch = ReplicaBatch(tf.shape(clean)[0])
        d_loss_fn, g_loss_fn = losses.get_gan_loss(self.gan_loss)
        # 1. Cut holes (seeded, drawn for the global batch).
        masked, holes, known = self.cut_holes(clean, batch)
        with tf.GradientTape() as g_tape:
            # 2. Fill them.
            output = self.network([masked, known], training=True)
            per_image, hole_error, composite = self.reconstruction_loss(output, clean, holes)

            # 3. Update D: clean images against composites, each beside the holes.
            with g_tape.stop_recording(), tf.GradientTape() as d_tape:
                d_per_example = d_loss_fn(
                    self.discriminator([clean, holes], training=True),
                    self.discriminator([tf.stop_gradient(composite), holes], training=True))
                d_loss = batch.mean(d_per_example)
            variables = self.discriminator.trainable_variables
            self.discriminator_optimizer.apply_gradients(
                zip(d_tape.gradient(d_loss, variables), variables))

            # 4. Update G: reconstruct, and fool the updated D.
            gan_per_example = g_loss_fn(self.discriminator([composite, holes], training=True))
            g_per_example = per_image + self.adversarial_weight * gan_per_example
            g_loss = batch.mean(g_per_example)
        variables = self.network.trainable_variables
        self.optimizer.apply_gradients(zip(g_tape.gradient(g_loss, variables), variables))

        # 5. Per-image trackers; PSNR of the clamped composite.
        self.track(g_per_example, hole_error, composite, clean)
        self.d_loss_tracker.update_state(d_per_example)
        self.g_gan_loss_tracker.update_state(gan_per_example)
        return step_logs(self.metrics)

    def get_config(self):
        return {**super().get_config(),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "gan_loss": self.gan_loss, "adversarial_weight": self.adversarial_weight}
