"""VAE family: objectives against closed forms, training, reload, distribution, export, errors."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import multivariate_normal

from kerasgen import distributions, export
from kerasgen.data import load_arrays, load_dataset
from kerasgen.distributions import binarize_fixed
from kerasgen.models.vae import VAE, ConditionalVAE, build_vae
from tests.helpers import assert_mirrored_step_equal, assert_round_trip

SHAPE = (16, 16, 1)


def tiny_vae(seed=0, **kwargs):
    vae = build_vae(SHAPE, latent_dim=kwargs.pop("latent_dim", 4), base_filters=8,
                    hidden_units=32, seed=seed, **kwargs)
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    return vae


def digits(count=256):
    images, labels = load_arrays("digits", "train", image_size=16)
    return images[:count], labels[:count]


def to_model_range(images):
    return images.astype("float32") / 127.5 - 1.0


# --- the objective's pieces against closed forms ----------------------------------------------

def test_gaussian_kl_matches_the_general_closed_form_and_monte_carlo():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(3, 5)).astype("float32")
    log_variance = rng.normal(scale=0.5, size=(3, 5)).astype("float32")
    kl = distributions.gaussian_kl(mean, log_variance).numpy()
    for row in range(3):
        covariance = np.diag(np.exp(log_variance[row]))
        # KL(N(m, S) || N(0, I)) = (tr S + m'm - d - log det S) / 2
        general = 0.5 * (np.trace(covariance) + mean[row] @ mean[row] - 5
                         - np.log(np.linalg.det(covariance)))
        assert kl[row] == pytest.approx(general, rel=1e-5)
    samples = mean[0] + np.exp(0.5 * log_variance[0]) * rng.normal(size=(200_000, 5))
    monte_carlo = np.mean(
        multivariate_normal(mean[0], np.diag(np.exp(log_variance[0]))).logpdf(samples)
        - multivariate_normal(np.zeros(5), np.eye(5)).logpdf(samples))
    assert kl[0] == pytest.approx(monte_carlo, abs=0.02)


def test_discretized_logistic_is_a_distribution_over_the_256_levels():
    levels = np.arange(256, dtype="float32").reshape(256, 1, 1, 1) / 255.0
    for location, log_scale in ((0.5, -3.0), (0.0, -6.5), (1.0, -1.0), (0.3, -9.0)):
        params = np.broadcast_to(np.array([location, log_scale], "float32"), (256, 1, 1, 2))
        log_prob = distributions.discretized_logistic_log_prob(levels, params).numpy()
        assert np.exp(log_prob.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-4)


def test_bernoulli_log_prob_is_the_binary_cross_entropy():
    targets = np.array([[[[1.0], [0.0]]]], "float32")
    logits = np.array([[[[2.0], [-1.0]]]], "float32")
    expected = math.log(1 / (1 + math.exp(-2.0))) + math.log(1 - 1 / (1 + math.exp(1.0)))
    assert float(distributions.bernoulli_log_prob(targets, logits)[0]) == pytest.approx(expected)


def linear_gaussian_vae(weights, bias, noise_scale, posterior_shift=0.0, posterior_scale=1.0):
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), and an encoder that is q = p(z|x) exactly
    (W has orthogonal columns, so the posterior covariance is diagonal), optionally perturbed."""
    dim, latent_dim = weights.shape
    posterior_variance = 1.0 / (1.0 + np.sum(weights ** 2, axis=0) / noise_scale ** 2)
    gain = weights * posterior_variance / noise_scale ** 2  # x -> posterior mean, [dim, latent]
    images = keras.Input((4, 4, 1))
    flat = keras.layers.Flatten()(images)
    mean = keras.layers.Dense(latent_dim, kernel_initializer=keras.initializers.Constant(gain),
                              bias_initializer=keras.initializers.Constant(
                                  -bias @ gain + posterior_shift))(flat)
    log_variance = keras.layers.Dense(
        latent_dim, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(
            np.log(posterior_variance * posterior_scale)))(flat)
    encoder = keras.Model(images, [mean, log_variance])
    latent = keras.Input((latent_dim,))
    location = keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(
        dim, kernel_initializer=keras.initializers.Constant(weights.T),
        bias_initializer=keras.initializers.Constant(bias))(latent))
    log_scale = keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(
        dim, kernel_initializer="zeros",
        bias_initializer=keras.initializers.Constant(math.log(noise_scale)))(latent))
    decoder = keras.Model(latent, keras.layers.Concatenate()([location, log_scale]))
    return VAE(encoder, decoder, likelihood="gaussian", seed=0)


def test_importance_sampled_nll_recovers_a_closed_form_likelihood():
    rng = np.random.default_rng(1)
    orthonormal, _ = np.linalg.qr(rng.normal(size=(16, 3)))
    weights = (orthonormal * np.array([0.4, 0.3, 0.2])).astype("float32")
    bias = np.full(16, 0.5, "float32")
    noise_scale = 0.2
    targets = rng.uniform(0.1, 0.9, size=(6, 4, 4, 1)).astype("float32")
    exact = -multivariate_normal(bias, weights @ weights.T + noise_scale ** 2 * np.eye(16)).logpdf(
        targets.reshape(6, 16))

    # q is the true posterior: every importance weight is p(x), so the estimate is exact.
    nll, negative_elbo = linear_gaussian_vae(weights, bias, noise_scale).importance_sampled_nll(
        targets, num_samples=50)
    np.testing.assert_allclose(nll, exact, atol=2e-3)
    np.testing.assert_allclose(negative_elbo, exact, atol=2e-3)

    # A wrong q: the ELBO is loose, the k=5000 estimate still recovers log p(x).
    wrong = linear_gaussian_vae(weights, bias, noise_scale, posterior_shift=0.15,
                                posterior_scale=1.2)
    nll, negative_elbo = wrong.importance_sampled_nll(targets, num_samples=5000,
                                                      max_decoder_batch=2500)
    np.testing.assert_allclose(nll, exact, atol=0.03)
    assert (negative_elbo > exact + 0.1).all() and (nll <= negative_elbo).all()
    # Batching does not change the estimate (one noise stream per image).
    again, _ = wrong.importance_sampled_nll(targets, num_samples=5000, max_decoder_batch=999)
    np.testing.assert_allclose(again, nll, atol=1e-4)


# --- training ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [{}, {"num_importance_samples": 4},
                                    {"beta": 4.0, "kl_warmup_steps": 10},
                                    {"likelihood": "discretized_logistic"}],
                         ids=["vae", "iwae", "beta_vae", "discretized_logistic"])
def test_fit_decreases_finite_losses(kwargs):
    vae = tiny_vae(**kwargs)
    history = vae.fit(load_dataset("digits", batch_size=32, image_size=16), epochs=6,
                      verbose=0).history
    for name in ("loss", "reconstruction", "kl"):
        assert np.isfinite(history[name]).all()
    assert history["loss"][-1] < 0.9 * history["loss"][0]
    assert all(later < earlier + 1.0 for earlier, later in zip(history["loss"], history["loss"][1:]))
    if "kl_warmup_steps" in kwargs:
        assert float(vae.beta_now()) == 4.0  # 6 epochs x 44 steps > 10 warm-up steps


def test_kl_warmup_schedule():
    vae = tiny_vae(beta=2.0, kl_warmup_steps=100)
    for step, expected in ((0, 0.0), (25, 0.5), (100, 2.0), (400, 2.0)):
        vae.optimizer.iterations.assign(step)
        assert float(vae.beta_now()) == pytest.approx(expected)


def test_iwae_bound_is_tighter_than_the_elbo_and_nll_below_negative_elbo():
    vae = tiny_vae(seed=3)
    vae.fit(load_dataset("digits", batch_size=32, image_size=16), epochs=3, verbose=0)
    images, _ = digits(40)
    nll, negative_elbo = vae.importance_sampled_nll(binarize_fixed(images), num_samples=200)
    assert (nll <= negative_elbo + 1e-6).all() and nll.mean() < negative_elbo.mean() - 0.1


def test_reload_keeps_weights_optimizer_and_random_stream(tmp_path):
    vae = tiny_vae(seed=5, num_importance_samples=2)
    data = load_dataset("digits", batch_size=32, image_size=16, repeat=True)
    vae.fit(data, epochs=1, steps_per_epoch=5, verbose=0)
    latents = vae.sample_inputs(4)
    before = vae.generate(latents)
    # The next step is the same step: same weights, same optimizer moments, same noise.
    batch, _ = next(iter(load_dataset("digits", batch_size=32, image_size=16, shuffle=False)))

    def train_more(model):
        if model is not vae:  # the reloaded model, before training on
            np.testing.assert_allclose(before, model.generate(latents), atol=1e-6)
        model.fit(batch, epochs=1, verbose=0, batch_size=32, shuffle=False)

    loaded = assert_round_trip(vae, tmp_path / "vae.keras", train_more)
    assert isinstance(loaded, VAE) and loaded.num_importance_samples == 2
    assert loaded.restored_iterations == [5]


def test_mirrored_strategy_step_equals_single_device_step(mirrored_strategy):
    images = to_model_range(digits(16)[0])
    for conditional in (False, True):
        data = (images, digits(16)[1]) if conditional else images
        assert_mirrored_step_equal(
            lambda: tiny_vae(seed=7, num_classes=10 if conditional else None,
                             num_importance_samples=3),
            tf.data.Dataset.from_tensor_slices(data).batch(16), mirrored_strategy,
            metrics=("loss", "reconstruction", "kl"))


def test_conditional_vae_trains_reloads_and_checks_labels(tmp_path):
    vae = tiny_vae(seed=2, num_classes=10)
    assert isinstance(vae, ConditionalVAE) and vae.name == "cvae"
    images, labels = digits(64)
    history = vae.fit(to_model_range(images), labels, batch_size=16, epochs=2, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    with pytest.raises(ValueError, match=r"\(images, labels\) batches"):
        vae.fit(to_model_range(images), batch_size=16, epochs=1, verbose=0)
    vae.save(tmp_path / "cvae.keras")
    loaded = keras.models.load_model(tmp_path / "cvae.keras")
    latents, sample_labels = loaded.sample_inputs(10)
    np.testing.assert_array_equal(sample_labels, np.arange(10))
    np.testing.assert_allclose(vae.generate((latents, sample_labels)),
                               loaded.generate((latents, sample_labels)), atol=1e-6)
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 9\]"):
        vae.generate((latents[:2], [0, 10]))
    with pytest.raises(ValueError, match="pass labels"):
        vae.encode(images[:2])
    assert set(vae.figures(images[:4], labels[:4])) == {"samples", "reconstructions",
                                                          "interpolation"}
    nll, _ = vae.importance_sampled_nll(binarize_fixed(images[:4]), labels[:4], num_samples=20)
    assert np.isfinite(nll).all()


# --- bad inputs ----------------------------------------------------------------------------------

def test_bad_inputs_give_clear_errors():
    grey = to_model_range(digits(32)[0])
    strict = tiny_vae(binarize="none")
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs binary images"):
        strict.fit(grey, batch_size=16, epochs=1, verbose=0)
    binary = binarize_fixed(digits(32)[0]) * 2.0 - 1.0
    assert np.isfinite(strict.fit(binary, batch_size=16, epochs=1, verbose=0).history["loss"]).all()
    with pytest.raises(ValueError, match="binarize them first"):
        strict.importance_sampled_nll(digits(2)[0] / 255.0, num_samples=4)
    with pytest.raises(ValueError, match=r"Latent vectors must have shape \[batch, 4\]"):
        strict.generate(tf.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"images must have shape \[N, 16, 16, 1\]"):
        strict.encode(np.zeros((2, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match="needs likelihood='bernoulli'"):
        tiny_vae(likelihood="gaussian", binarize="dynamic")
    with pytest.raises(ValueError, match=r"Unknown likelihood 'poisson'; valid: \['bernoulli'"):
        tiny_vae(likelihood="poisson")
    with pytest.raises(ValueError, match="IWAE bound"):
        tiny_vae(beta=2.0, num_importance_samples=5)
    decoder = build_vae((28, 28, 1), latent_dim=4, base_filters=8, hidden_units=8).decoder
    with pytest.raises(ValueError, match=r"decoder outputs \(28, 28, 1\)"):
        VAE(strict.encoder, decoder)


# --- figures and export --------------------------------------------------------------------------

def test_figures_for_two_dimensional_latents():
    vae = tiny_vae(latent_dim=2)
    figures = vae.figures(digits(8)[0])
    assert set(figures) == {"samples", "reconstructions", "interpolation", "manifold"}
    images, columns = figures["reconstructions"]
    assert images.shape == (16, 16, 16, 1) and images.dtype == np.uint8 and columns == 8
    assert figures["interpolation"][0].shape[0] == 4 * 8 and figures["manifold"][0].shape[0] == 225


@pytest.fixture(scope="module")
def trained_vae():
    vae = tiny_vae(seed=11)
    vae.fit(load_dataset("digits", batch_size=32, image_size=16), epochs=4, verbose=0)
    return vae


def test_export_signatures_rest_and_tflite_parity(trained_vae, tmp_path):
    vae = trained_vae
    path = export.export_saved_model(vae, tmp_path, "vae")
    summary = export.signature_summary(path)
    assert set(summary) == {"serving_default", "encode", "decode", "sample"}
    assert summary["encode"]["inputs"] == {"images": ("uint8", [None, 16, 16, 1])}
    assert summary["encode"]["outputs"] == {"mean": ("float32", [None, 4]),
                                            "log_variance": ("float32", [None, 4])}
    assert summary["decode"]["outputs"] == {"images": ("uint8", [None, 16, 16, 1]),
                                            "probabilities": ("float32", [None, 16, 16, 1])}
    assert summary["sample"]["inputs"] == {"seeds": ("int32", [None])}

    images = digits(3)[0]
    mean, log_variance = vae.encode(images)
    answer = export.predict_rest(path, json.dumps(
        {"signature_name": "encode", "instances": images.tolist()}))
    np.testing.assert_allclose([row["mean"] for row in answer["predictions"]], mean, atol=1e-5)
    expected = np.round(vae.decode_mean(mean).numpy() * 255).astype(np.uint8)
    answer = export.predict_rest(path, {"signature_name": "sample", "inputs": [0, 1, 2]})
    np.testing.assert_array_equal(
        np.array(answer["outputs"]["images"], np.uint8),
        np.round(vae.decode_mean(vae.sample_inputs(3)).numpy() * 255).astype(np.uint8))
    decoded = export.predict_rest(path, {"inputs": mean.numpy().tolist()})["outputs"]["images"]
    np.testing.assert_array_equal(np.array(decoded, np.uint8), expected)

    assert np.ptp(expected) > 100, "a trained decoder makes images that vary"
    for quantize, tolerance in (("none", 1), ("int8", 40)):
        tflite = export.export_tflite(vae, tmp_path / f"vae_{quantize}.tflite", quantize,
                                      saved_model_path=path)
        report = export.tflite_parity(tflite, vae)
        assert report["max_abs_diff"] <= tolerance and not report["has_nan"], report
        assert not any(op.startswith("Flex") or "RANDOM" in op for op in report["ops"])


def test_conditional_export_takes_labels(tmp_path):
    vae = tiny_vae(seed=4, num_classes=10)
    path = export.export_saved_model(vae, tmp_path, "cvae")
    summary = export.signature_summary(path)
    assert summary["decode"]["inputs"] == {"latent": ("float32", [None, 4]),
                                           "label": ("int32", [None])}
    report = export.tflite_parity(export.export_tflite(vae, tmp_path / "cvae.tflite"), vae)
    assert report["max_abs_diff"] <= 1
