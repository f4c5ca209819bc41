"""Autoregressive family (gated PixelCNN, PixelRNN's Row LSTM and Diagonal BiLSTM): causality by
gradients, the
exact likelihood against hand computations, the sampler against step-by-step draws, training,
reload, distribution, export, CLI and bad inputs."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, distributions, export
from kerasgen.data import load_arrays
from kerasgen.layers import lstm_update
from kerasgen.models.autoregressive import (DiagonalLSTM, RowLSTMStep, build_diagonal_bilstm,
                                            build_gated_pixelcnn, build_pixelcnn, build_pixelrnn,
                                            build_row_lstm)
from kerasgen.models.autoregressive.pixelrnn import skew, unskew
from kerasgen.models.base import seeded_draws
from tests.helpers import (assert_fit_moves_weights, assert_mirrored_step_equal,
                           assert_round_trip)

SHAPE = (8, 8, 1)
TINY = {"num_layers": 3, "num_filters": 8, "kernel_size": 5}


def tiny_pixelcnn(seed=0, **options):
    model = build_pixelcnn(SHAPE, seed=seed, **{**TINY, **options})
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    return model


def digits(count=64):
    """The embedded 8x8 digits (uint8) and labels."""
    images, labels = load_arrays("digits", "train")
    return images[:count], labels[:count]


def batches(images, labels=None, batch_size=16):
    values = images.astype("float32") / 127.5 - 1.0
    data = values if labels is None else (values, labels.astype("int32"))
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size).repeat()


# --- causality: the masks by gradients --------------------------------------------------------


def dependence(network, shape, labels=None, count=4):
    """`[H*W, H*W]` booleans: output pixel i (rows) changes with input pixel j (columns),
    over `count` random inputs (a single input can hide a path behind a dead ReLU)."""
    height, width, _ = shape
    inputs = tf.Variable(np.random.default_rng(0).uniform(0, 1, (count, *shape)), dtype="float32")
    with tf.GradientTape() as tape:
        logits = network(inputs if labels is None else [inputs, labels])
        # Images do not mix in a batch: the sum over it keeps each image's own gradients.
        per_pixel = tf.reshape(tf.reduce_sum(logits, axis=[0, 3]), [-1])
    jacobian = tape.jacobian(per_pixel, inputs).numpy()  # [H*W, N, H, W, 1]
    return np.abs(jacobian).sum(axis=(1, 4)).reshape(height * width, -1) > 0


def test_each_output_sees_every_earlier_pixel_and_nothing_else():
    # Kernel 5, four layers: the reach (two rows up and two columns each way per layer) covers
    # all of an 8x8 image, so any earlier pixel the output cannot see is a blind spot.
    network = build_gated_pixelcnn(SHAPE, "categorical", num_layers=4, num_filters=8,
                                   kernel_size=5, num_classes=3, seed=1)
    seen = dependence(network, SHAPE, labels=tf.constant([0, 1, 2, 0]))
    earlier = np.tril(np.ones_like(seen), k=-1)  # pixel j < i in raster order
    np.testing.assert_array_equal(seen, earlier)


def test_a_shallow_network_sees_its_reach_only():
    # One layer of kernel 3: the vertical 2x3 step, shifted down a row, covers the two rows
    # above (three columns around); the horizontal stack the one pixel to the left.
    network = build_gated_pixelcnn((4, 4, 1), num_layers=1, num_filters=8, kernel_size=3,
                                   seed=0)
    seen = dependence(network, (4, 4, 1))[2 * 4 + 1].reshape(4, 4)  # pixel (2, 1)
    expected = np.zeros((4, 4), bool)
    expected[0:2, 0:3] = expected[2, 0] = True
    np.testing.assert_array_equal(seen, expected)


# --- PixelRNN: the Row LSTM -------------------------------------------------------------------


def test_row_lstm_sees_the_triangle_above_and_the_pixels_left_never_later_ones():
    # Mask A reaches three pixels left and three rows up (seven columns); every Row LSTM layer
    # adds a column each way per row up (its 1 x 3 state-to-state convolution) and, by its
    # mask B input-to-state step, one pixel to the left.
    network = build_row_lstm((6, 6, 1), "categorical", num_layers=2, num_filters=4, seed=2)
    seen = dependence(network, (6, 6, 1))
    assert not np.triu(seen).any()  # nothing at or after the pixel in raster order
    pixel = seen[4 * 6 + 2].reshape(6, 6)  # row 4, column 2
    expected = np.zeros((6, 6), bool)
    expected[:4] = True  # every earlier row: the triangle is 8 columns wide from 4 rows up
    expected[4, :2] = True
    np.testing.assert_array_equal(pixel, expected)


# --- PixelRNN: the Diagonal BiLSTM -------------------------------------------------------------


def test_skew_shifts_each_row_by_its_index_and_unskew_inverts_it():
    images = np.arange(1, 2 * 3 * 4 + 1, dtype="float32").reshape(2, 3, 4, 1)
    skewed = keras.ops.convert_to_numpy(skew(images))
    expected = np.zeros((2, 3, 6, 1), "float32")
    for row in range(3):
        expected[:, row, row:row + 4] = images[:, row]
    np.testing.assert_array_equal(skewed, expected)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(unskew(skewed, 4)), images)


def test_diagonal_bilstm_sees_every_earlier_pixel_but_the_last_of_the_row_above():
    # Every layer sees the whole past (the Row LSTM's triangle misses the corners): the
    # left-to-right LSTM everything above and to the left, the right-to-left one (shifted down
    # a row) everything in the rows above from the pixel's column on. The one gap is the
    # shift's: the last pixel of the row above reaches a row only through mask A's features
    # three columns left of it, so the first W - 4 pixels of the row never see it, in a second
    # layer too. Nothing at or after the pixel is ever seen.
    network = build_diagonal_bilstm((6, 6, 1), "categorical", num_layers=2, num_filters=4,
                                    seed=2)
    seen = dependence(network, (6, 6, 1))
    expected = np.tril(np.ones_like(seen), k=-1)
    for row in range(1, 6):
        expected[row * 6:row * 6 + 2, row * 6 - 1] = False  # columns 0, 1 of row `row`
    np.testing.assert_array_equal(seen, expected)


def test_diagonal_lstm_runs_the_lstm_down_the_diagonals():
    # One direction against a numpy loop over the skewed map's columns: the state of a cell
    # comes from the previous column's cell above and cell itself (the 2 x 1 kernel).
    layer = build_diagonal_bilstm((3, 4, 1), num_layers=1, num_filters=2, seed=0).get_layer(
        "layer0_left_to_right")
    gates = np.random.default_rng(1).normal(size=(1, 3, 4, 8)).astype("float32")
    kernel = layer.state_to_state.kernel.numpy()  # [2, 1, h, 4h]: the cell above, the cell
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    skewed = np.zeros((3, 6, 8), "float32")
    for row in range(3):
        skewed[row, row:row + 4] = gates[0, row]
    h = c = np.zeros((3, 2), "float32")
    hidden = np.zeros((3, 6, 2), "float32")
    for column in range(6):
        above = np.vstack([np.zeros((1, 2), "float32"), h[:-1]])
        i, f, g, o = np.split(skewed[:, column] + above @ kernel[0, 0] + h @ kernel[1, 0], 4,
                              axis=-1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = hidden[:, column] = sigmoid(o) * np.tanh(c)
    expected = np.stack([hidden[row, row:row + 4] for row in range(3)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(gates))[0], expected, atol=1e-5)


def test_row_step_is_an_lstm_over_the_row_state():
    step = RowLSTMStep(2, kernel_size=3)
    rng = np.random.default_rng(0)
    gates, h, c = (rng.normal(size=(2, 1, 5, channels)).astype("float32")
                   for channels in (8, 2, 2))
    new_h, new_c = (value.numpy() for value in step([gates, h, c]))
    kernel = step.state_to_state.kernel.numpy()[0]  # [3, 2, 8]: the row convolution
    padded = np.pad(h, ((0, 0), (0, 0), (1, 1), (0, 0)))
    from_state = sum(padded[:, :, offset:offset + 5] @ kernel[offset] for offset in range(3))
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    i, f, g, o = np.split(gates + from_state, 4, axis=-1)  # equation 3 of the paper
    expected_c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    np.testing.assert_allclose(new_c, expected_c, atol=1e-5)
    np.testing.assert_allclose(new_h, sigmoid(o) * np.tanh(expected_c), atol=1e-5)
    assert [value.shape for value in lstm_update(tf.zeros((1, 8)), tf.zeros((1, 2)))] == \
        [(1, 2), (1, 2)]


PIXELRNNS = ["row_lstm", "diagonal_bilstm"]
# Default-suite time: the wrapper is the gated PixelCNN's; one recurrent network trains there.
ONE_PIXELRNN = [pytest.param("row_lstm", marks=pytest.mark.slow), "diagonal_bilstm"]


def tiny_pixelrnn(network="row_lstm", seed=3):
    model = build_pixelrnn(SHAPE, network=network, num_layers=2, num_filters=8, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    return model


@pytest.mark.parametrize("network", ONE_PIXELRNN)
def test_pixelrnn_trains_samples_step_by_step_and_reloads(tmp_path, network):
    images, _ = digits(256)
    model = tiny_pixelrnn(network)
    before = model.log_likelihood_report(images[:64])["nll"]
    assert_fit_moves_weights(model, batches(images), steps=20)
    assert model.log_likelihood_report(images[:64])["nll"] < before - 5
    # The sampler (the whole network per pixel: the height is fixed) draws what a loop over
    # the pixels draws from the same uniform noise.
    seeds = tf.constant([3, 8])
    sampled = model.generate(seeds).numpy()
    noise = seeded_draws(seeds, SHAPE, distribution="uniform").numpy()
    conditionals = tf.function(model.network)
    canvas = np.zeros((2, *SHAPE), "float32")
    for index in range(64):
        row, column = divmod(index, 8)
        logit = conditionals(tf.constant(canvas)).numpy()[:, row, column, 0]
        canvas[:, row, column, 0] = noise[:, row, column, 0] < 1.0 / (1.0 + np.exp(-logit))
    np.testing.assert_allclose(sampled, canvas * 2.0 - 1.0, atol=1e-6)
    loaded = assert_round_trip(model, tmp_path / f"{network}.keras",
                               lambda m: m.fit(batches(images).take(2), epochs=1, verbose=0))
    assert loaded.sampling == "whole_canvas" and loaded.name == network


@pytest.mark.slow  # default-suite time (the unrolled recurrences make tracing the exports slow)
@pytest.mark.parametrize("network", PIXELRNNS)
def test_pixelrnn_exports_its_sampler_and_tflite_conditionals(tmp_path, network):
    model = tiny_pixelrnn(network, seed=4)
    seeds = tf.constant([3, 8])
    path = export.export_saved_model(model, tmp_path, network)
    served = tf.saved_model.load(str(path)).signatures["sample"](seeds=seeds)["images"]
    np.testing.assert_array_equal(served.numpy(),
                                  np.round(model.generate(seeds).numpy() * 127.5 + 127.5))
    tflite = export.export_tflite(model, tmp_path / "conditionals.tflite", saved_model_path=path)
    report = export.tflite_parity(tflite, model)
    assert report["max_abs_diff"] < 1e-5 and not report["has_nan"], report
    assert not any(op.startswith("Flex") for op in report["ops"]), report["ops"]


# --- the likelihood ---------------------------------------------------------------------------


def test_nll_of_constant_conditionals_is_the_hand_sum():
    # Zero output weights and a bias of logit(0.25): every pixel is 1 with p = 0.25.
    model = tiny_pixelcnn(binarize="none")
    logits = model.network.get_layer("logits")
    logits.kernel.assign(np.zeros(logits.kernel.shape, "float32"))
    logits.bias.assign([math.log(0.25 / 0.75)])
    images = np.zeros((2, *SHAPE), np.uint8)
    images[0, 0, :5] = 255
    images[1] = 255
    ones = np.array([5, 64])
    expected = ones * math.log(0.25) + (64 - ones) * math.log(0.75)
    np.testing.assert_allclose(model.log_prob(images), expected, rtol=1e-5)
    report = model.log_likelihood_report(images)
    assert report["exact"] and report["num_images"] == 2
    assert report["nll"] == pytest.approx(-expected.mean(), rel=1e-5)
    assert report["bits_per_dim"] == pytest.approx(-expected.mean() / (64 * math.log(2)), rel=1e-5)


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical"])
def test_nll_is_the_sum_of_the_per_pixel_conditionals(likelihood):
    model = tiny_pixelcnn(likelihood=likelihood, num_classes=3, seed=2)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (3, *SHAPE), dtype=np.uint8)
    if likelihood == "bernoulli":
        images = np.where(images > 127, 255, 0).astype(np.uint8)
    labels = np.array([0, 2, 1])
    targets = images.astype("float32") / 255.0
    # Pixel i's conditional from a canvas holding x_<i only (the rest zeroed): 64 canvases
    # per image, in one batch.
    canvases = np.repeat(targets.reshape(3, 1, 64), 64, axis=1)
    canvases[:, np.triu(np.ones((64, 64), bool))] = 0.0
    logits = model.network([canvases.reshape(3 * 64, *SHAPE), np.repeat(labels, 64)]).numpy()
    logits = logits.reshape(3, 64, 64, -1)[:, np.arange(64), np.arange(64)].astype(np.float64)
    values = images.reshape(3, 64)
    if likelihood == "bernoulli":
        p_one = 1.0 / (1.0 + np.exp(-logits[..., 0]))
        total = np.log(np.where(values == 255, p_one, 1.0 - p_one)).sum(axis=1)
    else:
        log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        total = np.take_along_axis(log_softmax, values[..., None].astype(int), -1).sum(axis=(1, 2))
    np.testing.assert_allclose(model.log_prob(images, labels), total, rtol=1e-4)


# --- sampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical"])
def test_sampler_equals_step_by_step_draws_with_the_same_seeds(likelihood):
    model = tiny_pixelcnn(likelihood=likelihood, num_classes=3, seed=4)
    seeds, labels = tf.constant([5, 9, 11]), tf.constant([2, 0, 1])
    sampled = model.generate((seeds, labels)).numpy()
    # The reference: a Python loop over the pixels, the whole canvas through the network each
    # time, the same uniform draws mapped through the inverse CDF in numpy.
    noise = seeded_draws(seeds, SHAPE, distribution="uniform").numpy()
    canvas = np.zeros((3, *SHAPE), "float32")
    for index in range(64):
        row, column = divmod(index, 8)
        logits = model.network([tf.constant(canvas), labels]).numpy()[:, row, column].astype(
            np.float64)
        uniform = noise[:, row, column, 0]
        if likelihood == "bernoulli":
            canvas[:, row, column, 0] = uniform < 1.0 / (1.0 + np.exp(-logits[:, 0]))
        else:
            probabilities = np.exp(logits - logits.max(-1, keepdims=True))
            cdf = np.cumsum(probabilities / probabilities.sum(-1, keepdims=True), axis=-1)
            canvas[:, row, column, 0] = np.minimum((cdf < uniform[:, None]).sum(-1), 255) / 255
    np.testing.assert_allclose(sampled, canvas * 2.0 - 1.0, atol=1e-6)
    # A seed gives the same image in any batch.
    alone = model.generate((tf.constant([9]), tf.constant([0]))).numpy()
    np.testing.assert_array_equal(alone[0], sampled[1])
    # The other loops, and a start in mid-row (pixel 13) from the reference's first pixels
    # (the loops do not depend on the likelihood: checked once, for suite time).
    if likelihood == "categorical":
        return
    prefix = np.where(np.arange(64).reshape(1, *SHAPE) < 13, canvas, 0.0).astype("float32")
    for method, start, initial in (("causal_crop", 0, np.zeros_like(canvas)),
                                   ("whole_canvas", 0, np.zeros_like(canvas)),
                                   ("row_cache", 13, prefix)):
        loop = tf.function(lambda: model.sample_loop(noise, labels, initial, start, method))
        np.testing.assert_allclose(loop().numpy(), canvas, atol=1e-6, err_msg=method)


def test_completions_keep_the_given_rows():
    model = tiny_pixelcnn(seed=5)
    images, _ = digits(4)
    binary = (distributions.binarize_fixed(images) * 255).astype(np.uint8)
    completed = model.complete(binary, 3, seeds=np.arange(4, dtype=np.int32))
    np.testing.assert_array_equal(completed[:, :3], binary[:, :3])
    assert set(np.unique(completed)) <= {0, 255}
    # Sample-quality metrics compare binary samples with binarised real images.
    as_samples = model.as_samples(images)
    assert set(np.unique(as_samples)) == {0, 255} and as_samples.shape == images.shape
    grey = tiny_pixelcnn(likelihood="categorical")
    np.testing.assert_array_equal(grey.as_samples(images), images)
    figures = model.figures(images)
    grid, columns = figures["completions"]
    assert columns == 4 and grid.shape == (12, *SHAPE)
    with pytest.raises(ValueError, match="num_rows must be in \\[0, 8\\], got 9"):
        model.complete(binary, 9, seeds=np.arange(4, dtype=np.int32))


# --- training, reload, distribution -----------------------------------------------------------


def test_fit_lowers_the_nll_and_reload_continues_exactly(tmp_path):
    images, labels = digits(256)
    model = tiny_pixelcnn(num_classes=10, seed=6)
    data = batches(images, labels)
    before = model.log_likelihood_report(images[:64], labels[:64])["nll"]
    history = assert_fit_moves_weights(model, data, steps=40)
    after = model.log_likelihood_report(images[:64], labels[:64])["nll"]
    assert after < before - 5, (before, after)  # nats per 8x8 image
    assert set(history) == {"loss", "bits_per_dim"}
    loaded = assert_round_trip(
        model, tmp_path / "pixelcnn.keras",
        lambda m: m.fit(data.take(2), epochs=1, verbose=0))
    assert loaded.conditional and loaded.num_classes == 10 and loaded.binarize == "dynamic"


def test_mirrored_step_equals_single_device(mirrored_strategy):
    images, labels = digits(16)
    data = tf.data.Dataset.from_tensor_slices(
        (images.astype("float32") / 127.5 - 1.0, labels.astype("int32"))).batch(16)
    assert_mirrored_step_equal(lambda: tiny_pixelcnn(num_classes=10, seed=7), data,
                               mirrored_strategy, metrics=("loss", "bits_per_dim"))


@pytest.mark.slow  # default-suite time; the wrapper's step is checked above with the gated network
@pytest.mark.parametrize("network", PIXELRNNS)
def test_pixelrnn_mirrored_step_equals_single_device(mirrored_strategy, network):
    # The unrolled recurrences share one step's weights per layer: their gradients sum over
    # the rows (columns) and the replicas alike.
    images, _ = digits(16)
    data = tf.data.Dataset.from_tensor_slices(images.astype("float32") / 127.5 - 1.0).batch(16)
    assert_mirrored_step_equal(lambda: tiny_pixelrnn(network, seed=5), data, mirrored_strategy,
                               metrics=("loss", "bits_per_dim"))


# --- export -----------------------------------------------------------------------------------


def test_export_signatures_rest_and_tflite_parity(tmp_path):
    model = tiny_pixelcnn(num_classes=3, seed=8)
    seeds, labels = np.array([1, 2], np.int32), np.array([0, 2], np.int32)
    path = export.export_saved_model(model, tmp_path, "pixelcnn")
    summary = export.signature_summary(path)
    assert summary["sample"]["inputs"] == {"seeds": ("int32", [None]), "labels": ("int32", [None])}
    assert summary["sample"]["outputs"]["images"] == ("uint8", [None, 8, 8, 1])
    assert summary["conditionals"]["outputs"]["probabilities"] == ("float32", [None, 8, 8, 1])
    served = tf.saved_model.load(str(path)).signatures
    images = served["sample"](seeds=tf.constant(seeds), labels=tf.constant(labels))["images"]
    expected = np.round(model.generate((seeds, labels)).numpy() * 127.5 + 127.5)
    np.testing.assert_array_equal(images.numpy(), expected)
    answer = export.predict_rest(path, json.dumps({"signature_name": "log_prob", "instances": [
        {"images": images.numpy()[0].tolist(), "labels": 0}]}))
    assert answer["predictions"][0]["log_prob"] == pytest.approx(
        float(model.log_prob(images.numpy()[:1], [0])[0]), rel=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="scores binary images"):
        served["log_prob"](images=tf.fill([1, 8, 8, 1], tf.constant(7, tf.uint8)),
                           labels=tf.constant([0]))
    tflite = export.export_tflite(model, tmp_path / "conditionals.tflite", saved_model_path=path)
    report = export.tflite_parity(tflite, model)
    assert report["max_abs_diff"] < 1e-5 and not report["has_nan"], report
    assert not any(op.startswith("Flex") for op in report["ops"]), report["ops"]
    with pytest.raises(ValueError, match="does not export quantize='int8'"):
        export.export_tflite(model, tmp_path / "int8.tflite", quantize="int8")


def test_categorical_model_exports_256_level_conditionals(tmp_path):
    model = tiny_pixelcnn(likelihood="categorical", seed=9)
    path = export.export_saved_model(model, tmp_path, "grey")
    sampled = tf.saved_model.load(str(path)).signatures["sample"](seeds=tf.constant([3, 4]))
    expected = np.round(model.generate(tf.constant([3, 4])).numpy() * 127.5 + 127.5)
    np.testing.assert_array_equal(sampled["images"].numpy(), expected)
    assert len(np.unique(expected)) > 2  # grey levels, not a binary image
    tflite = export.export_tflite(model, tmp_path / "grey.tflite", saved_model_path=path)
    inputs = next(iter(model.representative_inputs(num_batches=1, batch_size=2)))
    assert export.tflite_parity(tflite, model, inputs=inputs)["max_abs_diff"] < 1e-5
    probabilities = export.interpreter(tflite).get_signature_runner("conditionals")(
        images=inputs[0])["probabilities"]
    assert probabilities.shape == (2, 8, 8, 256)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)


# --- CLI and bad inputs -----------------------------------------------------------------------


def test_cli_train_sample_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "pixelcnn", "--dataset", "digits", "--epochs", "1",
                     "--steps-per-epoch", "3", "--batch-size", "16", "--out", str(run),
                     "--num-layers", "2", "--num-filters", "8"]) == 0
    assert (run / "pixelcnn.tflite").exists() and (run / "saved_model/pixelcnn/1").is_dir()
    assert (run / "completions.png").stat().st_size > 0
    out = tmp_path / "s.png"
    assert cli.main(["sample", str(run), "--num", "4", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--metric", "nll", "--num-images", "20"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("test NLL (exact, 20 digits test images):") and "ELBO" not in line
    nll = float(line.split(":")[1].split("nats")[0])
    assert 0 < nll < 64 * math.log(2) * 1.5
    assert json.loads((run / "likelihood.json").read_text())["nll"] == pytest.approx(nll, abs=0.01)


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="one channel .* colour needs"):
        build_pixelcnn((8, 8, 3))
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        build_pixelcnn(SHAPE, kernel_size=4)
    with pytest.raises(ValueError, match="kernel_size must be odd and at least 3"):
        build_pixelcnn(SHAPE, kernel_size=1)
    with pytest.raises(ValueError, match="num_layers must be at least 1, got 0"):
        build_pixelcnn(SHAPE, num_layers=0)
    with pytest.raises(ValueError, match="binarize='dynamic' needs likelihood='bernoulli'"):
        build_pixelcnn(SHAPE, likelihood="categorical", binarize="dynamic")
    with pytest.raises(ValueError, match="Unknown likelihood 'gaussian'"):
        build_pixelcnn(SHAPE, likelihood="gaussian")
    with pytest.raises(ValueError, match="Unknown PixelRNN network 'diagonal'; valid: "):
        build_pixelrnn(SHAPE, network="diagonal")
    with pytest.raises(ValueError, match="num_filters must be at least 1, got 0"):
        build_pixelrnn(SHAPE, network="diagonal_bilstm", num_filters=0)
    with pytest.raises(TypeError, match="kernel_size"):  # its 2 x 1 state kernel is fixed
        build_pixelrnn(SHAPE, network="diagonal_bilstm", kernel_size=5)
    with pytest.raises(ValueError, match="DiagonalLSTM needs a fixed image size"):
        DiagonalLSTM(2)(keras.Input((8, None, 8)))
    model = tiny_pixelcnn(binarize="none")
    grey = np.full((2, *SHAPE), 100, np.uint8)
    with pytest.raises(ValueError, match="scores binary images .* binarize them first"):
        model.log_prob(grey)
    with pytest.raises(ValueError, match="images must be uint8"):
        model.log_prob(grey.astype("float32"))
    with pytest.raises(ValueError, match="must have shape \\[N, 8, 8, 1\\], got \\[2, 8, 7, 1\\]"):
        model.log_prob(np.zeros((2, 8, 7, 1), np.uint8))
    # Grey training data to a Bernoulli model without binarisation stops the step.
    with pytest.raises(tf.errors.InvalidArgumentError, match="needs binary images"):
        model.fit(batches(grey), steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match="Seeds must be a 1-d integer array"):
        model.generate(tf.constant([0.5]))
    with pytest.raises(ValueError, match="not class-conditional; pass no labels"):
        model.log_prob(np.zeros((1, *SHAPE), np.uint8), labels=[0])
    conditional = tiny_pixelcnn(num_classes=3)
    with pytest.raises(ValueError, match="samples from \\(seeds, labels\\)"):
        conditional.generate(tf.constant([1]))
    with pytest.raises(ValueError, match="Labels must be in \\[0, 2\\], got values from 0 to 3"):
        conditional.generate((tf.constant([1, 2]), tf.constant([0, 3])))
