"""GAN losses as pure functions returning one value per example.

Per-example values (not batch means) let a `train_step` divide by the *global* batch size,
which is what makes it correct under `tf.distribute` (see `kerasgen.models.dcgan`).
Each loss is a pair: `discriminator(real_logits, fake_logits)` and `generator(fake_logits)`.
"""

from keras import ops


def _per_example(values):
    """Mean over every axis but the batch axis (patch discriminators give maps)."""
    return ops.mean(ops.reshape(ops.cast(values, "float32"), (ops.shape(values)[0], -1)), axis=1)


def non_saturating_discriminator(real_logits, fake_logits):
    # -log D(x) - log(1 - D(G(z))), with log sigmoid(l) = -softplus(-l).
    return _per_example(ops.softplus(-real_logits)) + _per_example(ops.softplus(fake_logits))


def non_saturating_generator(fake_logits):
    # -log D(G(z)): the non-saturating generator loss of Goodfellow et al. 2014, section 3.
    return _per_example(ops.softplus(-fake_logits))


def hinge_discriminator(real_logits, fake_logits):
    return _per_example(ops.relu(1.0 - real_logits)) + _per_example(ops.relu(1.0 + fake_logits))


def hinge_generator(fake_logits):
    return _per_example(-fake_logits)


def least_squares_discriminator(real_logits, fake_logits):
    # Mao et al. 2017 (arXiv:1611.04076), a=0, b=c=1, with the 1/2 factors.
    return 0.5 * (_per_example(ops.square(real_logits - 1.0)) + _per_example(ops.square(fake_logits)))


def least_squares_generator(fake_logits):
    return 0.5 * _per_example(ops.square(fake_logits - 1.0))


def wasserstein_discriminator(real_logits, fake_logits):
    return _per_example(fake_logits) - _per_example(real_logits)


def wasserstein_generator(fake_logits):
    return _per_example(-fake_logits)


GAN_LOSSES = {
    "non_saturating": (non_saturating_discriminator, non_saturating_generator),
    "hinge": (hinge_discriminator, hinge_generator),
    "least_squares": (least_squares_discriminator, least_squares_generator),
    "wasserstein": (wasserstein_discriminator, wasserstein_generator),
}


def get_gan_loss(name):
    """The `(discriminator_loss, generator_loss)` pair registered under `name`."""
    if name not in GAN_LOSSES:
        raise ValueError(f"Unknown GAN loss {name!r}. Valid losses: {sorted(GAN_LOSSES)}.")
    return GAN_LOSSES[name]
