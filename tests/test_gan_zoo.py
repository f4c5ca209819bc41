"""Conditional GAN, WGAN-GP and the EMA generator."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import export
from kerasgen.data import load_dataset, to_uint8
from kerasgen.models.conditional_gan import ConditionalGAN, build_conditional_gan
from kerasgen.models.wgan_gp import WGANGP, build_wgan_gp
from tests.conftest import random_images
from tests.helpers import assert_mirrored_step_equal


def tiny_cgan(seed=0, ema=False, r1_weight=0.0):
    gan = build_conditional_gan((16, 16, 1), num_classes=10, latent_dim=8, base_filters=8,
                                seed=seed, ema=ema, r1_weight=r1_weight)
    gan.compile()
    return gan


def tiny_wgan(seed=0, critic_steps=3):
    gan = build_wgan_gp((16, 16, 1), latent_dim=8, base_filters=8, critic_steps=critic_steps,
                        seed=seed)
    gan.compile()
    return gan


def labelled(count=32, seed=0):
    return random_images(count, seed=seed), np.arange(count) % 10


def _weights(network):
    return [w.numpy().copy() for w in network.trainable_weights]


def _moved(before, network):
    return all(not np.allclose(a, b.numpy()) for a, b in zip(before, network.trainable_weights))


def test_conditional_gan_fit_reload_and_label_errors(tmp_path):
    gan = tiny_cgan()
    images, labels = labelled()
    before_g, before_d = _weights(gan.generator), _weights(gan.discriminator)
    history = gan.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"]).all() and np.isfinite(history.history["g_loss"]).all()
    assert _moved(before_g, gan.generator) and _moved(before_d, gan.discriminator)
    with pytest.raises(ValueError, match=r"\(images, labels\) batches"):
        gan.fit(images, batch_size=8, epochs=1, verbose=0)

    gan.save(tmp_path / "cgan.keras")
    loaded = keras.models.load_model(tmp_path / "cgan.keras")
    assert isinstance(loaded, ConditionalGAN) and loaded.num_classes == 10
    assert int(loaded.g_optimizer.iterations) == 4
    for a, b in zip(gan.g_optimizer.variables, loaded.g_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    latents, sample_labels = loaded.sample_inputs(10)
    np.testing.assert_array_equal(sample_labels, np.arange(10))
    np.testing.assert_allclose(gan.generate((latents, sample_labels)),
                               loaded.generate((latents, sample_labels)), atol=1e-6)
    loaded.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    assert int(loaded.g_optimizer.iterations) == 8

    with pytest.raises(ValueError, match=r"Labels must be in \[0, 9\], got values from 0 to 12"):
        gan.generate((latents[:2], [0, 12]))
    with pytest.raises(ValueError, match=r"Latent vectors must have shape \[batch, 8\]"):
        gan.generate((tf.zeros((2, 5)), [0, 1]))
    with pytest.raises(ValueError, match="2 latent vectors but 3 labels"):
        gan.generate((latents[:2], [0, 1, 2]))


def test_conditional_gan_export_takes_labels(tmp_path):
    gan = tiny_cgan(seed=2)
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-3, 0.5),
                g_optimizer=keras.optimizers.Adam(2e-3, 0.5))
    gan.fit(load_dataset("digits", batch_size=32, image_size=16, repeat=True), epochs=1,
            steps_per_epoch=60, verbose=0)
    path = export.export_saved_model(gan, tmp_path, "cgan")
    summary = export.signature_summary(path)
    assert summary["generate"]["inputs"] == {"latent": ("float32", [None, 8]),
                                             "label": ("int32", [None])}
    assert summary["generate_from_seed"]["inputs"] == {"seeds": ("int32", [None]),
                                                       "label": ("int32", [None])}
    latents = gan.sample_inputs(4, seed=0)[0].numpy()
    expected = to_uint8(gan.generate((latents, [3, 3, 7, 7]))).numpy()
    body = {"signature_name": "generate_from_seed",
            "instances": [{"seeds": seed, "label": label} for seed, label in
                          zip(range(4), [3, 3, 7, 7])]}
    answer = export.predict_rest(path, json.dumps(body))
    np.testing.assert_array_equal(np.array(answer["predictions"], np.uint8), expected)
    # The label changes the image.
    other = export.predict_rest(path, {**body, "instances": [{"seeds": 0, "label": 5}]})
    assert not np.array_equal(np.array(other["predictions"][0]), expected[0])
    with pytest.raises(tf.errors.InvalidArgumentError):  # a label the embedding lacks
        export.predict_rest(path, {"instances": [{"latent": [0.0] * 8, "label": 12}]})
    for quantize, (max_bound, mean_bound) in {"none": (1, 0.01), "int8": (24, 2.0)}.items():
        tflite = export.export_tflite(gan, tmp_path / f"cgan_{quantize}.tflite", quantize,
                                      saved_model_path=path)
        report = export.tflite_parity(tflite, gan)
        assert report["max_abs_diff"] <= max_bound and report["mean_abs_diff"] <= mean_bound, report
        assert not report["has_nan"]
    assert float(np.std(expected)) > 5  # parity on varied images


def test_wgan_gp_defaults_and_critic_steps():
    gan = tiny_wgan(critic_steps=3)
    assert gan.loss_name == "wasserstein" and gan.gp_weight == 10.0
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        config = optimizer.get_config()
        assert (config["beta_1"], config["beta_2"]) == (0.0, 0.9)
        assert config["learning_rate"] == pytest.approx(1e-4)
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in gan.discriminator.layers)
    before_g, before_d = _weights(gan.generator), _weights(gan.discriminator)
    history = gan.fit(random_images(32), batch_size=8, epochs=1, verbose=0)
    assert int(gan.d_optimizer.iterations) == 12 and int(gan.g_optimizer.iterations) == 4
    assert _moved(before_g, gan.generator)
    # D(fake) - D(real) cancels the critic's output bias, and the penalty ignores it.
    *critic_weights, output_bias = gan.discriminator.trainable_weights
    assert output_bias.path == "logit/bias" and np.all(output_bias.numpy() == before_d[-1])
    assert all(not np.allclose(a, b.numpy()) for a, b in zip(before_d, critic_weights))
    assert np.isfinite(history.history["gradient_penalty"]).all()
    with pytest.raises(ValueError, match="critic_steps must be at least 1"):
        build_wgan_gp((16, 16, 1), critic_steps=0)


def test_gradient_penalty_against_closed_form():
    """For a linear critic D(x) = <w, x>, grad D = w everywhere: GP = (||w|| - 1)^2."""
    gan = tiny_wgan()
    image_shape = (16, 16, 1)
    critic_input = keras.Input(image_shape)
    critic = keras.Model(critic_input, keras.layers.Dense(1, use_bias=False)(
        keras.layers.Flatten()(critic_input)))
    w = np.random.default_rng(0).normal(size=(256, 1)).astype("float32") * 0.2
    critic.layers[-1].set_weights([w])
    gan_linear = WGANGP(gan.generator, critic, seed=0)
    from kerasgen.distribute import ReplicaBatch

    real, fake = random_images(4, seed=1), random_images(4, seed=2)
    penalty = gan_linear._gradient_penalty(tf.constant(real), tf.constant(fake), None,
                                           ReplicaBatch(4))
    np.testing.assert_allclose(penalty, [(np.linalg.norm(w) - 1.0) ** 2] * 4, rtol=1e-4)


def test_r1_penalty_against_closed_form_and_in_the_discriminator_step(tmp_path,
                                                                      mirrored_strategy):
    """For a linear D(x, y) = <w, x>, grad_x D = w: R1 = gamma / 2 * ||w||^2 per image."""
    gan = tiny_cgan(r1_weight=4.0)
    images = keras.Input((16, 16, 1))
    labels = keras.Input((), dtype="int32")
    logit = keras.layers.Dense(1, use_bias=False)(keras.layers.Flatten()(images))
    linear = keras.Model([images, labels], logit)
    w = np.random.default_rng(0).normal(size=(256, 1)).astype("float32") * 0.2
    linear.layers[-1].set_weights([w])
    gan_linear = ConditionalGAN(gan.generator, linear, r1_weight=4.0)
    logits, penalty = gan_linear._real_logits_and_r1(tf.constant(random_images(3)),
                                                     tf.constant([0, 1, 2]))
    np.testing.assert_allclose(penalty, [2.0 * np.sum(w ** 2)] * 3, rtol=1e-5)
    assert logits.shape == (3, 1)
    assert ConditionalGAN(gan.generator, linear)._real_logits_and_r1(
        tf.constant(random_images(3)), tf.constant([0, 1, 2]))[1] == 0.0
    with pytest.raises(ValueError, match="r1_weight must be 0 .no penalty. or positive"):
        tiny_cgan(r1_weight=-1.0)

    # In the step: the discriminator moves differently with the penalty; reload keeps it.
    data = labelled(16, seed=3)
    plain, penalised = tiny_cgan(seed=2), tiny_cgan(seed=2, r1_weight=10.0)
    for gan in (plain, penalised):
        gan.fit(*data, batch_size=16, epochs=1, verbose=0)
    assert not np.allclose(_weights(plain.discriminator)[0], _weights(penalised.discriminator)[0])
    penalised.save(tmp_path / "r1.keras")
    assert keras.models.load_model(tmp_path / "r1.keras").r1_weight == 10.0
    assert_mirrored_step_equal(lambda: tiny_cgan(seed=6, ema=True, r1_weight=10.0),
                               tf.data.Dataset.from_tensor_slices(data).batch(16),
                               mirrored_strategy)


def test_cgan_r1_preset_trains_with_its_penalty_and_decays_both_rates(tmp_path, data_dir):
    from kerasgen import training

    result = training.train("cgan_r1", epochs=4, steps_per_epoch=1, batch_size=8,
                            data_dir=data_dir, out_dir=tmp_path / "run", export_formats=(),
                            verbose=0, model_options={"latent_dim": 8, "base_filters": 8})
    gan = result.model
    assert gan.r1_weight == 1.0 and gan.ema_generator is not None
    assert gan.image_shape == (28, 28, 1) and gan.num_classes == 10
    # LinearDecay over 4 epochs, constant for 2: the last epoch trains at 2e-4 * (1 - 2 / 3).
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        assert float(optimizer.learning_rate) == pytest.approx(2e-4 / 3)


def test_wgan_gp_round_trip_and_mirrored_step(tmp_path, mirrored_strategy):
    gan = tiny_wgan(seed=4)
    gan.fit(random_images(16), batch_size=8, epochs=1, verbose=0)
    gan.save(tmp_path / "w.keras")
    loaded = keras.models.load_model(tmp_path / "w.keras")
    assert isinstance(loaded, WGANGP) and loaded.critic_steps == 3
    assert int(loaded.d_optimizer.iterations) == 6

    images = random_images(16, seed=9)
    assert_mirrored_step_equal(lambda: tiny_wgan(seed=5, critic_steps=2),
                               tf.data.Dataset.from_tensor_slices(images).batch(16),
                               mirrored_strategy, metrics=("d_loss", "g_loss", "gradient_penalty"),
                               rel=1e-4, abs_metric=1e-6)


def test_conditional_gan_mirrored_step_equals_single_device(mirrored_strategy):
    images, labels = labelled(16, seed=3)
    # With the EMA generator: its update is correct under the strategy too.
    assert_mirrored_step_equal(lambda: tiny_cgan(seed=6, ema=True),
                               tf.data.Dataset.from_tensor_slices((images, labels)).batch(16),
                               mirrored_strategy)


def test_generator_ema_is_kept_by_training_and_exported(tmp_path):
    from kerasgen.models.dcgan import DCGAN, build_dcgan

    gan = build_dcgan((16, 16, 1), latent_dim=8, base_filters=8, seed=0, ema=True)
    gan.compile()
    start = [w.numpy().copy() for w in gan.generator.weights]
    np.testing.assert_array_equal(start[0], gan.ema_generator.weights[0].numpy())
    gan.fit(random_images(8), batch_size=8, epochs=1, verbose=0)
    # One step (n = 1): ema = d * start + (1 - d) * new weights, d = min(0.999, 2 / 11).
    decay = 2.0 / 11.0
    for begin, weight, average in zip(start, gan.generator.weights, gan.ema_generator.weights):
        np.testing.assert_allclose(average.numpy(), decay * begin + (1 - decay) * weight.numpy(),
                                   rtol=1e-5, atol=1e-7)
    # Sampling and export use the EMA generator; it survives save/load.
    latents = gan.sample_inputs(2)
    np.testing.assert_allclose(gan.generate(latents), gan.ema_generator(latents), atol=1e-6)
    gan.save(tmp_path / "ema.keras")
    loaded = keras.models.load_model(tmp_path / "ema.keras")
    assert loaded.ema_decay == 0.999
    np.testing.assert_allclose(loaded.generate(latents), gan.generate(latents), atol=1e-6)
    path = export.export_saved_model(loaded, tmp_path, "ema")
    served = export.predict_rest(path, {"instances": latents.numpy().tolist()})
    np.testing.assert_array_equal(np.array(served["predictions"], np.uint8),
                                  to_uint8(gan.ema_generator(latents)).numpy())
    with pytest.raises(ValueError, match="ema_decay must be in \\[0, 1\\), got 1.5"):
        DCGAN(gan.generator, gan.discriminator, ema_decay=1.5)



def test_shipped_generator_samples_by_name_and_lists_its_fd(tmp_path, monkeypatch, capsys):
    from kerasgen import cli, store

    gan = tiny_cgan(seed=3, ema=True)
    gan.fit(tf.data.Dataset.from_tensor_slices(labelled(32)).batch(16).repeat(), epochs=1,
            steps_per_epoch=2, verbose=0)
    row = {"model": "cgan", "dataset": "mnist", "fd": 3.0, "fd_floor": 1.5}
    store.ship_model(gan, "cgan_tiny", "# cgan_tiny\n", {"rows": [row]}, folder=tmp_path / "sm",
                     train_data="mnist")
    monkeypatch.setenv(store.SAVED_MODELS_ENV, str(tmp_path / "sm"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sample", "cgan_tiny", "--num", "20"]) == 0  # a name, not a folder
    grid = tf.io.decode_png(tf.io.read_file("cgan_tiny_sample.png")).numpy()
    shipped = store.load_model("cgan_tiny")
    expected = to_uint8(shipped.generate(shipped.sample_inputs(20))).numpy()
    assert grid.shape[0] > 10 * expected.shape[1]  # one labelled row per class
    assert cli.main(["list", "--pretrained"]) == 0
    assert "mnist domain FD 3.00 (2.0x the real floor)" in capsys.readouterr().out
