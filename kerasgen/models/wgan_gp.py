"""WGAN-GP: Gulrajani et al. 2017, "Improved Training of Wasserstein GANs",
https://arxiv.org/abs/1704.00028. DCGAN trunks; the critic uses layer norm (a gradient penalty
is per example, so batch norm is out, section 4).

Example:
    >>> gan = build_wgan_gp((32, 32, 1), seed=0)
    >>> gan.compile()  # Adam(1e-4, beta_1=0, beta_2=0.9), Wasserstein loss, the paper's
    >>> gan.fit(kerasgen.data.load_dataset("digits", image_size=32), epochs=1)
"""

import keras
import tensorflow as tf

from kerasgen import losses
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.models.dcgan import DCGAN, build_discriminator, build_generator, ema_copy
from kerasgen.models.preset import ModelPreset
from kerasgen.tasks import Generation

# Algorithm 1 of the paper: lambda = 10, n_critic = 5, Adam(1e-4, beta_1=0, beta_2=0.9).
GP_WEIGHT = 10.0
CRITIC_STEPS = 5
LEARNING_RATE = 1e-4


@keras.saving.register_keras_serializable(package="kerasgen")
class WGANGP(DCGAN):
    """Trains a generator against a critic with a gradient penalty, with `fit`.

    Args:
        generator: `keras.Model`. Latent vectors -> images in [-1, 1].
        discriminator: `keras.Model`. The critic: images -> scores (no batch norm).
        critic_steps: int. Critic updates per generator update. Defaults to 5.
        gp_weight: float. Gradient-penalty weight lambda. Defaults to 10.
        seed: int. Seed of the latent and interpolation streams. Defaults to None.
        ema_generator: `keras.Model`. See `DCGAN`. Defaults to None.

    Every critic step of a `train_step` reuses the step's real batch with fresh z and epsilon
    (the paper draws a new real batch per critic step; `fit` hands one batch per step).

    Reference: https://arxiv.org/abs/1704.00028 (Algorithm 1).
    """

    default_loss = "wasserstein"

    def __init__(self, generator, discriminator, critic_steps=CRITIC_STEPS, gp_weight=GP_WEIGHT,
                 seed=None, ema_generator=None, **kwargs):
        super().__init__(generator, discriminator, seed=seed, ema_generator=ema_generator,
                         **kwargs)
        if critic_steps < 1:
            raise ValueError(f"critic_steps must be at least 1, got {critic_steps}.")
        self.critic_steps = critic_steps
        self.gp_weight = gp_weight
        self.gp_tracker = keras.metrics.Mean(name="gradient_penalty")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.gp_tracker]

    def default_optimizer(self, network):
        """Algorithm 1's Adam(1e-4, beta = (0, 0.9)) for both networks."""
        return keras.optimizers.Adam(LEARNING_RATE, beta_1=0.0, beta_2=0.9)

    def _gradient_penalty(self, real_images, fake_images, labels, batch):
        """Per-example (||grad_x D(x_hat)||_2 - 1)^2 on random interpolates x_hat."""
        epsilon = batch.slice(keras.random.uniform(
            (batch.global_batch_size, 1, 1, 1), seed=self.seed_generator))
        interpolates = epsilon * real_images + (1.0 - epsilon) * fake_images
        with tf.GradientTape() as tape:
            tape.watch(interpolates)
            scores = self._discriminator_call(interpolates, labels, training=True)
        gradients = tape.gradient(scores, interpolates)
        norms = tf.sqrt(tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]) + 1e-12)
        return tf.square(norms - 1.0)

    def train_step(self, data):
        real_images, labels = self._unpack(data)
        batch = ReplicaBatch(tf.shape(real_images)[0])
        d_loss_fn, g_loss_fn = losses.get_gan_loss(self.loss_name)

        # 1. n_critic times: sample z and epsilon, and update the critic on
        #    D(G(z)) - D(x) + lambda * (||grad D(x_hat)|| - 1)^2.
        for _ in range(self.critic_steps):
            fake_images = self._generator_call(
                self.generator, self._draw_latents(batch), labels, training=True)
            with tf.GradientTape() as d_tape:
                real_scores = self._discriminator_call(real_images, labels, training=True)
                fake_scores = self._discriminator_call(fake_images, labels, training=True)
                penalty = self._gradient_penalty(real_images, fake_images, labels, batch)
                d_per_example = d_loss_fn(real_scores, fake_scores)
                d_loss = batch.mean(d_per_example + self.gp_weight * penalty)
            d_gradients = d_tape.gradient(d_loss, self.discriminator.trainable_variables)
            self.d_optimizer.apply_gradients(
                zip(d_gradients, self.discriminator.trainable_variables))

        # 2. Sample z and update the generator on -D(G(z)).
        with tf.GradientTape() as g_tape:
            fake_images = self._generator_call(
                self.generator, self._draw_latents(batch), labels, training=True)
            g_per_example = g_loss_fn(
                self._discriminator_call(fake_images, labels, training=True))
            g_loss = batch.mean(g_per_example)
        g_gradients = g_tape.gradient(g_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(g_gradients, self.generator.trainable_variables))
        self._update_ema()

        # 3. Track the last critic step's losses per example (global means, see DCGAN).
        self.d_loss_tracker.update_state(d_per_example)
        self.g_loss_tracker.update_state(g_per_example)
        self.gp_tracker.update_state(penalty)
        return step_logs(self.metrics)

    def get_config(self):
        config = super().get_config()
        config.update({"critic_steps": self.critic_steps, "gp_weight": self.gp_weight})
        return config


def build_wgan_gp(image_shape, latent_dim=128, base_filters=64, critic_steps=CRITIC_STEPS,
                  gp_weight=GP_WEIGHT, seed=None, ema=False):
    """A `WGANGP` with a DCGAN generator and a layer-norm DCGAN critic.

    Args:
        image_shape: (int, int, int). Training image (height, width, channels).
        latent_dim: int. Defaults to 128 (the paper's).
        base_filters: int. Defaults to 64.
        critic_steps: int. Defaults to 5.
        gp_weight: float. Defaults to 10.
        seed: int. Defaults to None.
        ema: bool. Add an EMA copy of the generator, which training keeps (see `DCGAN`).
            Defaults to False.
    """
    generator = build_generator(latent_dim, image_shape, base_filters, seed=seed)
    return WGANGP(
        generator,
        build_discriminator(image_shape, base_filters, seed=seed, normalization="layer",
                            name="critic"),
        critic_steps=critic_steps,
        gp_weight=gp_weight,
        seed=seed,
        ema_generator=ema_copy(generator, ema),
        name="wgan_gp",
    )


PRESETS = {
    "wgan_gp": ModelPreset(
        name="wgan_gp",
        description="WGAN-GP (Gulrajani et al. 2017), 5 critic steps, lambda=10; digits",
        task=Generation(),
        build=build_wgan_gp,
        dataset="digits",
        image_size=32,
        epochs=60,
        batch_size=64,
    ),
}
