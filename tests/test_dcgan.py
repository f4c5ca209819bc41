import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import losses
from kerasgen.models.dcgan import DCGAN, build_dcgan, build_discriminator, build_generator
from tests.conftest import random_images, tiny_dcgan
from tests.helpers import assert_fit_moves_weights, assert_mirrored_step_equal, assert_round_trip


@pytest.mark.parametrize("image_shape, start", [((28, 28, 1), 7), ((32, 32, 3), 4), ((64, 48, 3), 4)])
def test_builders_size_from_image_shape(image_shape, start):
    generator = build_generator(16, image_shape, base_filters=8)
    discriminator = build_discriminator(image_shape, base_filters=8)
    assert generator.output_shape == (None, *image_shape)
    assert generator.get_layer("to_map").output.shape[1] == start
    assert discriminator.output_shape == (None, 1)
    assert generator.name == "generator" and discriminator.name == "discriminator"


def test_builder_rejects_unreachable_shapes():
    with pytest.raises(ValueError, match="image_size=32"):
        build_generator(16, (25, 25, 1))


def test_losses_known_values():
    zero = tf.zeros((4, 1))
    np.testing.assert_allclose(losses.non_saturating_discriminator(zero, zero), [2 * math.log(2)] * 4,
                               rtol=1e-6)
    np.testing.assert_allclose(losses.non_saturating_generator(zero), [math.log(2)] * 4, rtol=1e-6)
    real, fake = tf.constant([[2.0], [0.5]]), tf.constant([[-2.0], [0.5]])
    np.testing.assert_allclose(losses.hinge_discriminator(real, fake), [0.0, 2.0])
    np.testing.assert_allclose(losses.least_squares_discriminator(real, fake), [2.5, 0.25])
    np.testing.assert_allclose(losses.wasserstein_discriminator(real, fake), [-4.0, 0.0])
    # Patch logits average to one value per example.
    assert losses.hinge_generator(tf.ones((3, 4, 4, 1))).shape == (3,)
    with pytest.raises(ValueError, match="Valid losses: .*hinge.*non_saturating"):
        losses.get_gan_loss("minimax")
    with pytest.raises(ValueError, match="Unknown GAN loss"):
        tiny_dcgan().compile(loss="minimax")


def test_fit_changes_both_networks_with_finite_losses():
    gan = tiny_dcgan()
    history = assert_fit_moves_weights(gan, random_images(32), steps=None, epochs=2,
                                       batch_size=8)  # both networks, finite losses
    for name in ("d_loss", "g_loss"):
        assert len(history[name]) == 2
    assert int(gan.d_optimizer.iterations) == int(gan.g_optimizer.iterations) == 8


def test_keras_round_trip_keeps_optimizer_state_and_resumes(tmp_path):
    gan = tiny_dcgan(seed=3)
    gan.compile(loss="hinge",
                d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.0),
                g_optimizer=keras.optimizers.Adam(5e-4, beta_1=0.5))
    images = random_images(32)
    gan.fit(images, batch_size=8, epochs=1, verbose=0)
    latents = gan.sample_inputs(4)
    before = gan.generate(latents)

    def train_more(model):
        if model is not gan:  # the reloaded model, before training on
            np.testing.assert_allclose(before, model.generate(latents), atol=1e-6)
        model.fit(images, batch_size=8, epochs=1, verbose=0, shuffle=False)

    loaded = assert_round_trip(gan, tmp_path / "gan.keras", train_more, atol=1e-5)
    assert isinstance(loaded, DCGAN) and loaded.loss_name == "hinge" and loaded.seed == 3
    assert float(loaded.d_optimizer.learning_rate) == pytest.approx(1e-3)
    assert loaded.restored_iterations == [4, 4]
    assert int(loaded.g_optimizer.iterations) == 8


def test_mirrored_strategy_step_equals_single_device_step(mirrored_strategy):
    """One step on two replicas gives the update and the metrics of one device."""
    images = random_images(16, seed=5)
    assert_mirrored_step_equal(lambda: tiny_dcgan(seed=7),
                               tf.data.Dataset.from_tensor_slices(images).batch(16),
                               mirrored_strategy, metrics=("d_loss", "g_loss"))


def test_sample_inputs_are_deterministic_per_seed():
    gan = tiny_dcgan()
    batch = gan.sample_inputs(4, seed=10).numpy()
    np.testing.assert_array_equal(batch[2], gan.sample_inputs(1, seed=12).numpy()[0])
    assert not np.allclose(batch[0], batch[1])


def test_config_round_trip():
    gan = build_dcgan((16, 16, 1), latent_dim=8, base_filters=8, seed=4)
    clone = DCGAN.from_config(gan.get_config())
    assert clone.seed == 4 and clone.latent_dim == 8 and clone.image_shape == (16, 16, 1)
