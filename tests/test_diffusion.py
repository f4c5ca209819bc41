import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, export
from kerasgen.models.diffusion import DDPM, NoiseSchedule, betas_for, build_ddpm, build_unet
from tests.conftest import random_images
from tests.helpers import assert_fit_moves_weights, assert_mirrored_step_equal, assert_round_trip

SHAPE = (8, 8, 1)
# One level (the middle block's attention only): a U-Net's graph is slow to trace (about 0.1 s
# per weight for the optimizer's update ops here), so the tests' networks have few layers.
TINY = {"num_filters": 8, "depth": 0, "num_res_blocks": 1, "attention_levels": 0,
        "num_timesteps": 50, "sampling_steps": 4}


def tiny_ddpm(seed=0, num_classes=None, **options):
    model = build_ddpm(SHAPE, num_classes=num_classes, seed=seed, **{**TINY, **options})
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def batches(count=16, labelled=False, seed=0):
    images = random_images(count, size=SHAPE[0], seed=seed)
    if labelled:
        labels = np.arange(count) % 3
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(8).repeat()
    return tf.data.Dataset.from_tensor_slices(images).batch(8).repeat()


# --- the schedule against closed forms --------------------------------------------------------


def test_schedules_match_closed_forms():
    linear = NoiseSchedule("linear", 1000)
    np.testing.assert_allclose(linear.betas[[0, -1]], [1e-4, 0.02])
    np.testing.assert_allclose(linear.alpha_bars, np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)))
    cosine = NoiseSchedule("cosine", 1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):  # alpha_bar_t = f(t + 1) / f(0), 1-based t of the paper
        assert cosine.alpha_bars[t] == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert cosine.betas.max() == pytest.approx(0.999)  # the clip at the end
    for schedule in (linear, cosine):
        betas, bars = schedule.betas, schedule.alpha_bars
        t = np.arange(1, 1000)
        np.testing.assert_allclose(schedule.posterior_variances[t],
                                   betas[t] * (1 - bars[t - 1]) / (1 - bars[t]), rtol=1e-12)
        assert schedule.posterior_variances[0] == 0.0
        np.testing.assert_allclose(schedule.alpha_bar(tf.constant([-1, 0, 999]))[:, 0, 0, 0],
                                   [1.0, bars[0], bars[999]], rtol=1e-6)
    # A T of 100 spans the same noise as 1000 (betas scaled by 10).
    assert betas_for("linear", 100)[-1] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="Unknown schedule 'sigmoid'; valid: linear, cosine"):
        NoiseSchedule("sigmoid")
    with pytest.raises(ValueError, match="num_timesteps must be at least 1, got 0"):
        NoiseSchedule("cosine", 0)
    with pytest.raises(ValueError, match="Unknown prediction 'x0'"):
        NoiseSchedule(prediction="x0")


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_the_exact_target_recovers_the_clean_image(prediction):
    schedule = NoiseSchedule("linear", 1000, prediction)
    rng = np.random.default_rng(0)
    clean = tf.constant(rng.uniform(-1, 1, (6, 4, 4, 1)), tf.float32)
    noise = tf.constant(rng.standard_normal((6, 4, 4, 1)), tf.float32)
    timesteps = tf.constant([0, 1, 100, 500, 900, 999])
    noisy = schedule.add_noise(clean, noise, timesteps)
    recovered, recovered_noise = schedule.split_prediction(
        schedule.target(clean, noise, timesteps), noisy, timesteps, clip=False)
    np.testing.assert_allclose(recovered[:5], clean[:5], atol=2e-3)  # t=999: 1/sqrt(a) ~ 200
    np.testing.assert_allclose(recovered_noise[1:], noise[1:], atol=2e-3)


def test_sampler_timesteps():
    schedule = NoiseSchedule("cosine", 1000)
    np.testing.assert_array_equal(schedule.timesteps(1000), np.arange(999, -1, -1))
    np.testing.assert_array_equal(schedule.timesteps(4), [999, 749, 499, 249])
    for steps in (3, 7, 50, 999):
        sequence = schedule.timesteps(steps)
        assert len(sequence) == steps and sequence[0] == 999 and np.all(np.diff(sequence) < 0)
    for steps in (0, -5, 1001):
        with pytest.raises(ValueError, match=r"must be in \[1, 1000\]"):
            schedule.timesteps(steps)


def _numpy_ddim_step(output, noisy, a_t, a_prev, eta, noise):
    """DDIM, eq. 12 of Song et al. 2021, written out in numpy (eps-prediction, no clip)."""
    clean = (noisy - np.sqrt(1 - a_t) * output) / np.sqrt(a_t)
    sigma = eta * np.sqrt((1 - a_prev) / (1 - a_t)) * np.sqrt(1 - a_t / a_prev)
    return (np.sqrt(a_prev) * clean + np.sqrt(1 - a_prev - sigma ** 2) * output
            + sigma * noise)


def test_one_ddim_step_matches_numpy():
    schedule = NoiseSchedule("linear", 1000)
    rng = np.random.default_rng(1)
    output, noisy, noise = (rng.standard_normal((3, 4, 4, 1)).astype(np.float32)
                            for _ in range(3))
    now, previous = np.array([999, 500, 20]), np.array([979, 480, -1])
    a_t = schedule.alpha_bars[now][:, None, None, None]
    a_prev = np.where(previous >= 0, schedule.alpha_bars[previous], 1.0)[:, None, None, None]
    for eta in (0.0, 0.5):
        expected = _numpy_ddim_step(output, noisy, a_t, a_prev, eta, noise)
        actual = schedule.step(output, noisy, now, previous, eta, noise, clip=False)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
    # The last step (to index -1) returns the predicted clean image.
    np.testing.assert_allclose(
        schedule.step(output, noisy, now, [-1] * 3, 0.0, clip=False),
        (noisy - np.sqrt(1 - a_t) * output) / np.sqrt(a_t), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="eta > 0 needs its noise"):
        schedule.step(output, noisy, now, previous, 1.0)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddim_with_every_step_and_eta_1_is_the_ddpm_posterior_step(kind):
    """With eta = 1 between consecutive timesteps, DDIM's sigma^2 is the posterior variance
    beta~_t and its mean the posterior mean of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eq. 7),
    x_0 clipped as DDPM's sampler does."""
    schedule = NoiseSchedule(kind, 1000)
    rng = np.random.default_rng(2)
    now = np.array([1, 2, 50, 400, 998, 999])
    output, noisy, noise = (rng.standard_normal((6, 4, 4, 1)).astype(np.float32)
                            for _ in range(3))
    betas, bars = schedule.betas[now, None, None, None], schedule.alpha_bars[now, None, None, None]
    previous_bars = schedule.alpha_bars[now - 1, None, None, None]
    clean = np.clip((noisy - np.sqrt(1 - bars) * output) / np.sqrt(bars), -1, 1)
    mean = (betas * np.sqrt(previous_bars) / (1 - bars) * clean
            + (1 - previous_bars) * np.sqrt(1 - betas) / (1 - bars) * noisy)
    expected = mean + np.sqrt(schedule.posterior_variances[now, None, None, None]) * noise
    actual = schedule.step(output, noisy, now, now - 1, 1.0, noise, clip=True)
    np.testing.assert_allclose(actual, expected, rtol=1e-3, atol=1e-4)


def test_min_snr_weights():
    schedule = NoiseSchedule("cosine", 1000)
    timesteps = tf.constant([0, 500, 999])
    snr = schedule.alpha_bars[[0, 500, 999]] / (1 - schedule.alpha_bars[[0, 500, 999]])
    np.testing.assert_allclose(schedule.loss_weights(timesteps, 5.0),
                               np.minimum(snr, 5.0) / snr, rtol=1e-4)
    np.testing.assert_allclose(schedule.loss_weights(timesteps), [1, 1, 1])
    v = NoiseSchedule("cosine", 1000, "v")
    np.testing.assert_allclose(v.loss_weights(timesteps, 5.0), np.minimum(snr, 5.0) / (snr + 1),
                               rtol=1e-4)


# --- the network and the wrapper --------------------------------------------------------------


def test_unet_shapes_and_refusals():
    network = build_unet((28, 28, 1), num_filters=8, depth=1, num_res_blocks=1, patch_size=2,
                         num_classes=10)
    assert network.output_shape == (None, 28, 28, 1) and network.name == "unet"
    assert [tensor.name for tensor in network.inputs] == ["noisy_images", "timesteps", "labels"]
    assert network.get_layer("label_embedding").input_dim == 11  # 10 labels + "no label"
    with pytest.raises(ValueError, match="halved 3 times.*--depth, --patch-size"):
        build_unet((28, 28, 1), depth=3)
    with pytest.raises(ValueError, match="depth and attention_levels must be >= 0"):
        build_unet(SHAPE, depth=-1)
    with pytest.raises(ValueError, match="patch_size must be at least 1, got 0"):
        build_unet(SHAPE, patch_size=0)
    with pytest.raises(ValueError, match=r"sampling steps must be in \[1, 50\].*got 0"):
        tiny_ddpm(sampling_steps=0)
    with pytest.raises(ValueError, match="ema_decay must be in"):
        tiny_ddpm(ema_decay=1.0)


@pytest.fixture(scope="module")
def trained():
    """A tiny unconditional model after `fit` checked that every weight moved, and the EMA's
    weights before it (shared: each sampler setting and each fit is a slow trace)."""
    model = tiny_ddpm(seed=3, min_snr_gamma=5.0)
    initial = [weight.numpy() for weight in model.ema_network.weights]
    assert_fit_moves_weights(model, batches(), steps=4)
    return model, initial


def test_fit_moves_weights_and_the_ema_lags(trained):
    model, initial = trained
    assert model.ema_network.trainable_weights == []  # not the optimizer's
    # iterations, learning rate, two moments per network weight: no slots for the EMA.
    assert len(model.optimizer.variables) == 2 + 2 * len(model.network.trainable_weights)
    lags = []
    for before, average, weight in zip(initial, model.ema_network.weights, model.network.weights):
        average, weight = average.numpy(), weight.numpy()
        if not np.allclose(before, weight):
            # Between where it started and where the weights are.
            assert not np.allclose(average, weight) and not np.allclose(average, before)
            lags.append(np.abs(average - weight).mean() < np.abs(before - weight).mean())
    assert lags and all(lags)


def test_the_inference_model_holds_the_ema_weights_as_its_one_network(trained):
    model, _ = trained
    shipped = model.inference_model()
    assert shipped.ema_network is None and shipped.inference_network is shipped.network
    for got, want in zip(shipped.network.weights, model.ema_network.weights):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(shipped.seed_generator.state.numpy(),
                                  model.seed_generator.state.numpy())
    seeds = model.sample_inputs(2, seed=4)
    np.testing.assert_allclose(shipped.generate(seeds, num_steps=2),
                               model.generate(seeds, num_steps=2), atol=1e-5)


@pytest.fixture(scope="module")
def trained_conditional():
    """A tiny class-conditional model (v-prediction, linear schedule) after a few steps."""
    model = tiny_ddpm(num_classes=3, label_dropout=0.5, seed=8, prediction="v",
                      schedule="linear")
    model.fit(batches(labelled=True), epochs=1, steps_per_epoch=4, verbose=0)
    return model


def test_generation_is_a_function_of_the_seed_and_batch_independent(trained):
    model = trained[0]
    images = model.generate(model.sample_inputs(3, seed=5)).numpy()
    assert images.shape == (3, *SHAPE) and np.abs(images).max() <= 1.0
    np.testing.assert_allclose(model.generate(tf.constant([6]))[0], images[1], atol=1e-5)
    assert not np.allclose(images[0], images[1])
    ancestral = model.generate(tf.constant([6, 6]), sampler="ddpm").numpy()  # 50 steps, eta 1
    np.testing.assert_allclose(ancestral[0], ancestral[1], atol=1e-5)
    assert not np.allclose(ancestral[0], images[1], atol=1e-3)
    with pytest.raises(ValueError, match="sampler='ddpm' takes all T steps"):
        model.generate(tf.constant([6]), sampler="ddpm", num_steps=4)
    with pytest.raises(ValueError, match="Unknown sampler 'euler'"):
        model.generate(tf.constant([6]), sampler="euler")
    with pytest.raises(ValueError, match="unconditional; it takes no labels"):
        model._labels_and_guidance(1, labels=[0])


@pytest.mark.slow  # the conditional fixture's traces: suite time
def test_guidance_scales_zero_and_one_and_bad_labels(trained_conditional):
    model = trained_conditional
    rng = np.random.default_rng(0)
    noisy = tf.constant(rng.standard_normal((2, *SHAPE)), tf.float32)
    timesteps, labels = tf.constant([10, 40]), tf.constant([0, 2])
    network = model.inference_network
    conditional = network([noisy, timesteps, labels]).numpy()
    unconditional = network([noisy, timesteps, tf.constant([3, 3])]).numpy()
    assert not np.allclose(conditional, unconditional)
    for scale, expected in ((1.0, conditional), (0.0, unconditional)):
        guided = model._guided_output(network, noisy, timesteps, labels, tf.fill([2], scale))
        np.testing.assert_allclose(guided, expected, atol=1e-6)
    guided = model._guided_output(network, noisy, timesteps, labels, tf.fill([2], 3.0))
    np.testing.assert_allclose(guided, unconditional + 3 * (conditional - unconditional),
                               atol=1e-5)
    seeds, sample_labels = model.sample_inputs(4)
    np.testing.assert_array_equal(sample_labels, [0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"Labels must be in \[0, 2\], got values from 0 to 3"):
        model.generate((seeds, [0, 1, 2, 3]))
    with pytest.raises(ValueError, match="class-conditional: pass labels"):
        model._labels_and_guidance(2)


def test_inpainting_keeps_the_known_pixels(trained):
    images = random_images(3, size=SHAPE[0], seed=9)
    masks = np.zeros((3, *SHAPE), np.float32)
    masks[:, 2:6, 2:6] = 1.0
    model = trained[0]
    filled = model.inpaint(images, masks, resample=2).numpy()  # RePaint's re-noising too
    np.testing.assert_array_equal(filled[masks == 0], images[masks == 0])
    assert not np.allclose(filled[masks == 1], images[masks == 1])
    with pytest.raises(ValueError, match="Masks must be"):
        model.inpaint(images, masks[:2])
    with pytest.raises(ValueError, match="resample must be at least 1"):
        model.inpaint(images, masks, resample=0)


@pytest.mark.slow  # the conditional fixture's traces: suite time
def test_round_trip_keeps_ema_optimizer_and_stream(tmp_path, trained_conditional):
    model, data = trained_conditional, batches(labelled=True, seed=1)
    iterations = int(model.optimizer.iterations)
    # Every weight (the EMA's too), the optimizer and the stream: the next steps agree.
    loaded = assert_round_trip(
        model, tmp_path / "ddpm.keras",
        lambda trained: trained.fit(data, epochs=1, steps_per_epoch=2, verbose=0))
    assert isinstance(loaded, DDPM) and loaded.noise_schedule.prediction == "v"
    assert loaded.noise_schedule.kind == "linear" and loaded.num_classes == 3
    assert loaded.label_dropout == 0.5 and loaded.sampling_steps == 4
    assert loaded.ema_network.trainable_weights == []
    assert loaded.restored_iterations == [iterations]


@pytest.mark.slow
def test_mirrored_step_equals_single_device(mirrored_strategy):
    images = random_images(8, size=SHAPE[0], seed=6)
    data = tf.data.Dataset.from_tensor_slices((images, np.arange(8) % 3)).batch(8)
    single, mirrored = assert_mirrored_step_equal(
        lambda: tiny_ddpm(num_classes=3, seed=7, min_snr_gamma=5.0), data, mirrored_strategy,
        metrics=("loss",))
    # One step moves the zero-initialised output layer first; the EMA lags it.
    assert not np.allclose(single.ema_network.get_layer("prediction").kernel.numpy(),
                           single.network.get_layer("prediction").kernel.numpy())


@pytest.mark.slow  # the conditional fixture's traces: suite time
def test_export_signatures_rest_and_tflite_parity(tmp_path, trained_conditional):
    model = trained_conditional
    path = export.export_saved_model(model, tmp_path, "ddpm")
    summary = export.signature_summary(path)
    assert summary["generate"]["inputs"] == {"seeds": ("int32", [None]),
                                             "labels": ("int32", [None]),
                                             "guidance": ("float32", [None])}
    assert summary["generate"]["outputs"]["images"] == ("uint8", [None, 8, 8, 1])
    assert set(summary["denoise"]["inputs"]) == {"noisy_images", "timesteps", "labels"}
    expected = tf.cast(tf.round(model.generate(
        (tf.constant([3, 4]), tf.constant([1, 2])), guidance_scale=1.5) * 127.5 + 127.5),
        tf.int32).numpy()
    answer = export.predict_rest(path, json.dumps({"signature_name": "generate", "instances": [
        {"seeds": 3, "labels": 1, "guidance": 1.5}, {"seeds": 4, "labels": 2, "guidance": 1.5}]}))
    served = np.array([row["images"] for row in answer["predictions"]])
    assert np.abs(served - expected).max() <= 1
    assert [row["sampling_steps"] for row in answer["predictions"]] == [4, 4]
    tflite = export.export_tflite(model, tmp_path / "denoise.tflite", saved_model_path=path)
    report = export.tflite_parity(tflite, model)
    assert report["max_abs_diff"] < 1e-4 and not report["has_nan"], report
    assert not any(op.startswith("Flex") for op in report["ops"])
    with pytest.raises(ValueError, match="does not export quantize='int8'"):
        export.export_tflite(model, tmp_path / "int8.tflite", quantize="int8")


@pytest.mark.slow
def test_cli_train_sample_evaluate(tmp_path, data_dir, capsys):
    run = tmp_path / "run"
    options = ["--num-filters", "8", "--depth", "0", "--attention-levels", "0",
               "--sampling-steps", "2"]
    assert cli.main(["train", "ddpm", "--epochs", "1", "--steps-per-epoch", "2",
                     "--batch-size", "16", "--out", str(run), "--data-dir", str(data_dir),
                     *options]) == 0
    assert (run / "ddpm.tflite").exists() and (run / "saved_model/ddpm/1").is_dir()
    assert cli.main(["sample", str(run), "--num", "4", "--num-steps", "3", "--eta", "1",
                     "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--metric", "fd", "--num-samples", "40",
                     "--num-steps", "2", "--data-dir", str(data_dir)]) == 0
    line = capsys.readouterr().out
    value, floor = (float(part.split(":")[-1]) for part in line.split("floor"))
    assert value > floor > 0
    assert cli.main(["evaluate", str(run), "--metric", "fd", "--steps", "2"]) == 2
    assert "takes no steps option; its options: --num-steps INT" in capsys.readouterr().err


@pytest.mark.slow  # the conditional fixture's traces: suite time
def test_cli_sample_takes_the_generate_options(tmp_path, trained_conditional, capsys):
    """`kerasgen sample` (and `evaluate`) flags come from the model's `generate` options."""
    run = tmp_path / "run"
    run.mkdir()
    trained_conditional.save(run / "model.keras")
    out = tmp_path / "grid.png"
    assert cli.main(["sample", str(run), "--num", "6", "--num-steps", "3", "--guidance-scale",
                     "2.5", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert cli.main(["sample", str(run), "--steps", "3", "--out", str(out)]) == 2
    assert ("takes no steps option; its options: --num-steps INT --eta FLOAT --guidance-scale "
            "FLOAT --sampler STR") in capsys.readouterr().err
    assert cli.main(["sample", str(run), "--help"]) == 0
    assert "--guidance-scale FLOAT" in capsys.readouterr().out
