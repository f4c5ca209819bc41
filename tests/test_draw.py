"""DRAW: the attention filterbank against the paper's equations in numpy, the read/write
glimpses, the ELBO and importance weights, seeded sampling and its animation, training,
reload, distribution, export, CLI (GIF written) and bad inputs."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgen import cli, distributions, export
from kerasgen.data import load_arrays
from kerasgen.models.draw import (AttentionWindow, ReadGlimpse, WriteGlimpse,
                                  build_draw, build_draw_decoder_step)
from kerasgen.visualize import save_animation
from tests.helpers import (assert_fit_moves_weights, assert_mirrored_step_equal,
                           assert_round_trip)

SHAPE = (8, 8, 1)
TINY = {"num_steps": 4, "units": 16, "latent_dim": 4, "read_size": 2, "write_size": 3}


def tiny_draw(seed=0, **options):
    model = build_draw(SHAPE, seed=seed, **{**TINY, **options})
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    return model


def digit_batches(count=64, batch_size=16):
    images, _ = load_arrays("digits", "train")
    values = images[:count].astype("float32") / 127.5 - 1.0
    return tf.data.Dataset.from_tensor_slices(values).batch(batch_size).repeat()


# --- the attention filterbank -----------------------------------------------------------------


def numpy_filterbank(parameters, height, width, patch):
    """Equations 19-22 of Gregor et al. 2015, written out per filter and pixel."""
    g_x, g_y, log_variance, log_delta, log_gamma = parameters
    centre_x, centre_y = (width + 1) / 2 * (g_x + 1), (height + 1) / 2 * (g_y + 1)
    delta = (max(height, width) - 1) / (patch - 1) * math.exp(log_delta)
    variance = math.exp(log_variance)

    def bank(centre, size):
        filters = np.zeros((patch, size))
        for i in range(1, patch + 1):
            mean = centre + (i - patch / 2 - 0.5) * delta
            for a in range(1, size + 1):
                filters[i - 1, a - 1] = math.exp(-(a - mean) ** 2 / (2 * variance))
        return filters / filters.sum(axis=1, keepdims=True)

    return bank(centre_y, height), bank(centre_x, width), math.exp(log_gamma)


def test_filterbank_read_and_write_match_the_papers_equations():
    height, width, patch = 7, 9, 3
    parameters = np.random.default_rng(0).normal(0, 0.5, (4, 5)).astype("float32")
    filters_y, filters_x, gamma = AttentionWindow((height, width), patch)(parameters)
    images = np.random.default_rng(1).uniform(0, 1, (4, height, width, 2)).astype("float32")
    patches = np.random.default_rng(2).normal(0, 1, (4, patch * patch * 2)).astype("float32")
    read = ReadGlimpse()([images, filters_y, filters_x, gamma]).numpy()
    written = WriteGlimpse(2)([patches, filters_y, filters_x, gamma]).numpy()
    for row in range(4):
        f_y, f_x, g = numpy_filterbank(parameters[row].astype(np.float64), height, width, patch)
        np.testing.assert_allclose(filters_y[row], f_y, atol=1e-5)
        np.testing.assert_allclose(filters_x[row], f_x, atol=1e-5)
        assert float(gamma[row]) == pytest.approx(g, rel=1e-5)
        for channel in range(2):
            expected_read = g * f_y @ images[row, ..., channel] @ f_x.T  # equation 27
            np.testing.assert_allclose(read[row].reshape(patch, patch, 2)[..., channel],
                                       expected_read, atol=1e-5)
            w = patches[row].reshape(patch, patch, 2)[..., channel]
            np.testing.assert_allclose(written[row, ..., channel], f_y.T @ w @ f_x / g,
                                       atol=1e-5)  # equation 29


def test_a_sharp_unit_stride_window_reads_and_writes_pixels():
    # N = H = W, centred (g~ = 0), stride 1 (delta~ = 1), sigma^2 = e^-12, gamma = 1: the
    # filters are the identity, so read returns the image and write places the patch as is.
    image = np.arange(25, dtype="float32").reshape(1, 5, 5, 1)
    window = AttentionWindow((5, 5), 5)(np.array([[0.0, 0.0, -12.0, 0.0, 0.0]], "float32"))
    np.testing.assert_allclose(ReadGlimpse()([image, *window]).numpy().reshape(5, 5),
                               image[0, ..., 0], atol=1e-4)
    np.testing.assert_allclose(WriteGlimpse(1)([image.reshape(1, 25), *window]).numpy(), image,
                               atol=1e-4)
    # Moved one pixel right (g~_X = 2/6): the window reads columns 2..6 (1-based), and the
    # column past the edge has no weight to normalise, so it reads 0.
    shifted = AttentionWindow((5, 5), 5)(np.array([[1 / 3, 0.0, -12.0, 0.0, 0.0]], "float32"))
    read = ReadGlimpse()([image, *shifted]).numpy().reshape(5, 5)
    np.testing.assert_allclose(read[:, :4], image[0, :, 1:, 0], atol=1e-4)
    np.testing.assert_allclose(read[:, 4], 0.0, atol=1e-4)


# --- the objective and the likelihood ---------------------------------------------------------


def test_loss_is_reconstruction_plus_kl_and_importance_weights_agree():
    model = tiny_draw(seed=1)
    data = digit_batches(64)
    history = assert_fit_moves_weights(model, data, steps=30)
    assert set(history) == {"loss", "reconstruction", "kl"}
    logs = model.evaluate(data.take(4), verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(logs["reconstruction"] + logs["kl"], rel=1e-5)
    assert logs["kl"] > 0.1  # the latents carry information after training
    # E_q[log p(z) - log q(z)] over the glimpses is minus the closed-form KL summed over them.
    images, _ = load_arrays("digits", "test")
    targets = tf.constant(distributions.binarize_fixed(images[:8]))
    repeated = tf.repeat(targets, 2000, axis=0)
    noise = tf.random.stateless_normal([8 * 2000, 4, 4], seed=[3, 4])
    _, kl, log_ratio = model._infer(repeated, noise, False)
    np.testing.assert_allclose(tf.reshape(-log_ratio, [8, -1]).numpy().mean(1),
                               tf.reshape(kl, [8, -1]).numpy().mean(1), rtol=0.05, atol=0.05)
    # The importance-sampled NLL tightens with k and never exceeds the negative ELBO.
    report_1 = model.log_likelihood_report(images[:16], num_samples=1)
    report_50 = model.log_likelihood_report(images[:16], num_samples=50)
    assert report_1["nll"] == pytest.approx(report_1["negative_elbo"], rel=1e-6)
    assert report_50["nll"] < report_50["negative_elbo"]
    assert report_50["nll"] < report_1["nll"]
    assert report_50["bits_per_dim"] == pytest.approx(report_50["nll"] / (64 * math.log(2)))
    assert model.log_likelihood_report(images[:16], num_samples=50) == report_50  # seeded


# --- sampling ---------------------------------------------------------------------------------


def test_samples_are_seeded_and_the_animation_ends_on_them():
    model = tiny_draw(seed=2)
    noise = model.sample_inputs(3, seed=5)
    assert tuple(noise.shape) == (3, 4, 4)
    np.testing.assert_array_equal(model.sample_inputs(1, seed=6).numpy()[0], noise.numpy()[1])
    images = model.generate(noise).numpy()
    frames = model.animation(noise)
    assert frames.shape == (4, 3, *SHAPE) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[-1], np.round((images + 1) * 127.5).astype(np.uint8))
    # The canvas is the sum of the writes: step by step with the decoder network by hand.
    decoder = model.decoder_step
    state = tf.zeros([3, 16])
    h, c, canvas = state, state, tf.zeros([3, *SHAPE])
    for step in range(4):
        h, c, canvas = decoder([noise[:, step], h, c, canvas])
        np.testing.assert_allclose(frames[step], np.round(tf.sigmoid(canvas).numpy() * 255),
                                   atol=1)
    assert not np.array_equal(frames[0], frames[-1])
    figures = model.figures(load_arrays("digits", "train")[0][:4])
    assert figures["reconstructions"][0].shape == (8, *SHAPE)
    assert figures["glimpses"][0].shape == (64, *SHAPE) and figures["glimpses"][1] == 8


# --- training, reload, distribution -----------------------------------------------------------


def test_reload_continues_exactly(tmp_path):
    model = tiny_draw(seed=3, attention=False)
    data = digit_batches(32)
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    loaded = assert_round_trip(model, tmp_path / "draw.keras",
                               lambda m: m.fit(data.take(2), epochs=1, verbose=0))
    assert loaded.num_steps == 4 and loaded.binarize == "dynamic"
    assert loaded.encoder_step.get_layer("read").__class__.__name__ == "Concatenate"


def test_mirrored_step_equals_single_device(mirrored_strategy):
    images, _ = load_arrays("digits", "train")
    data = tf.data.Dataset.from_tensor_slices(images[:16].astype("float32") / 127.5 - 1).batch(16)
    # The first step's KL is about 1e-7 nats (small initial weights): compared in absolute terms.
    assert_mirrored_step_equal(lambda: tiny_draw(seed=4, num_steps=2), data, mirrored_strategy,
                               metrics=("loss", "reconstruction", "kl"), abs_metric=1e-6)


# --- export -----------------------------------------------------------------------------------


def test_export_signatures_rest_and_tflite_parity(tmp_path):
    model = tiny_draw(seed=5)
    path = export.export_saved_model(model, tmp_path, "draw")
    summary = export.signature_summary(path)
    assert summary["generate"]["inputs"] == {"seeds": ("int32", [None])}
    assert summary["canvases"]["outputs"]["canvases"] == ("uint8", [None, 4, 8, 8, 1])
    assert summary["decode"]["inputs"] == {"noise": ("float32", [None, 4, 4])}
    assert summary["serving_default"]["outputs"]["images"] == ("uint8", [None, 8, 8, 1])
    expected = np.round(model.generate(model.sample_inputs(2, seed=7)).numpy() * 127.5 + 127.5)
    answer = export.predict_rest(path, json.dumps({"instances": [{"seeds": 7}, {"seeds": 8}]}))
    np.testing.assert_array_equal(np.array([row["images"] for row in answer["predictions"]]),
                                  expected)
    canvases = tf.saved_model.load(str(path)).signatures["canvases"](seeds=tf.constant([7]))
    np.testing.assert_array_equal(canvases["canvases"].numpy()[0, -1], expected[0])
    tflite = export.export_tflite(model, tmp_path / "draw.tflite", saved_model_path=path)
    report = export.tflite_parity(tflite, model)
    assert report["max_abs_diff"] <= 1 and not report["has_nan"], report
    assert not any(op.startswith("Flex") for op in report["ops"]), report["ops"]
    with pytest.raises(ValueError, match="does not export quantize='int8'"):
        export.export_tflite(model, tmp_path / "int8.tflite", quantize="int8")


# --- CLI and bad inputs -----------------------------------------------------------------------


@pytest.mark.slow  # default-suite time; the slow suite runs it
def test_cli_train_sample_gif_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "draw", "--dataset", "digits", "--epochs", "1",
                     "--steps-per-epoch", "3", "--batch-size", "16", "--out", str(run),
                     "--num-steps", "3", "--units", "16", "--latent-dim", "4"]) == 0
    assert (run / "draw.tflite").exists() and (run / "glimpses.png").stat().st_size > 0
    out = tmp_path / "s.png"
    assert cli.main(["sample", str(run), "--num", "4", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    with Image.open(tmp_path / "s.gif") as gif:
        assert gif.n_frames == 3 and gif.size == (2 * 18, 2 * 18)  # 2x2 grid of 8x8, gap 2
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--metric", "nll", "--k", "5",
                     "--num-images", "20"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("test NLL (k=5, 20 digits test images):") and "-ELBO" in line
    report = json.loads((run / "likelihood.json").read_text())
    assert report["num_samples"] == 5 and 0 < report["nll"] <= report["negative_elbo"]


def test_bad_inputs_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="num_steps must be at least 1 glimpse, got 0"):
        build_draw(SHAPE, num_steps=0)
    with pytest.raises(ValueError, match="read_size must be at least 1"):
        build_draw(SHAPE, read_size=0)
    with pytest.raises(ValueError, match="units must be at least 1, got -1"):
        build_draw(SHAPE, units=-1)
    with pytest.raises(ValueError, match="binarize='dynamic' needs|Unknown binarize"):
        build_draw(SHAPE, binarize="sometimes")
    model = tiny_draw(binarize="none")
    with pytest.raises(ValueError, match="does not match the decoder step"):
        type(model)(model.encoder_step, build_draw_decoder_step(SHAPE, units=8, latent_dim=4))
    with pytest.raises(ValueError, match="noise of shape \\[batch, 4 steps, 4\\], got \\[2, 4\\]"):
        model.generate(tf.zeros([2, 4]))
    with pytest.raises(ValueError, match="not class-conditional"):
        model.log_likelihood_report(np.zeros((1, *SHAPE), np.uint8), labels=[0])
    with pytest.raises(ValueError, match="must have shape \\[N, 8, 8, 1\\], got \\[1, 8, 7, 1\\]"):
        model.log_likelihood_report(np.zeros((1, 8, 7, 1), np.uint8))
    with pytest.raises(ValueError, match="importance samples k must be at least 1, got 0"):
        model.log_likelihood_report(np.zeros((1, *SHAPE), np.uint8), num_samples=0)
    with pytest.raises(ValueError, match="frames must be uint8 \\[T, N, H, W, C\\] with T >= 1"):
        save_animation(np.zeros((3, 8, 8, 1)), tmp_path / "a.gif")
    with pytest.raises(ValueError, match="Frame times must be positive, got 0 and 1500 ms"):
        save_animation(np.zeros((1, 1, 8, 8, 1), np.uint8), tmp_path / "a.gif", frame_ms=0)
    assert not list(tmp_path.iterdir())
    grey = np.full((16, *SHAPE), 0.2, "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs binary images"):
        model.fit(tf.data.Dataset.from_tensor_slices(grey).batch(16), verbose=0)
