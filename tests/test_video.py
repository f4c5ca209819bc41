"""The ConvLSTM forecaster: the cell against the LSTM equations in numpy, shared weights over
any number of frames, the per-frame MSE convention, seeded and resumable moving-digit batches,
training, reload, distribution, export (SavedModel, REST, TFLite), CLI (PNG and GIF written,
evaluate's figures) and bad inputs."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgen import cli, evaluation, export, precision, store
from kerasgen.data.moving_mnist import load_digits, moving_mnist_batches
from kerasgen.layers import ConvLSTMCell
from kerasgen.models.video import build_convlstm, build_convlstm_forecaster
from tests.helpers import (assert_export_parity, assert_fit_moves_weights,
                           assert_mirrored_step_equal, assert_round_trip, layer_policies)

TINY = {"frame_size": 16, "num_input_frames": 3, "num_output_frames": 2, "patch_size": 2,
        "num_filters": 8}


def tiny_forecaster(seed=0, learning_rate=3e-3, **options):
    model = build_convlstm(seed=seed, **{**TINY, **options})
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    return model


@pytest.fixture(scope="module")
def digits():
    return load_digits("digits", "train")  # the embedded 8x8 digits: offline


def batches(digits, model, batch_size=4, seed=0, start_batch=0):
    return moving_mnist_batches(digits, batch_size, model.num_frames, model.frame_size,
                                seed=seed, start_batch=start_batch)


# --- the cell and the network -----------------------------------------------------------------


def test_cell_step_matches_the_lstm_equations():
    rng = np.random.default_rng(0)
    cell = ConvLSTMCell(3, kernel_size=1)  # 1x1 gates: per pixel, a dense LSTM step
    x, h, c = (rng.normal(size=(2, 4, 5, channels)).astype("float32") for channels in (2, 3, 3))
    new_h, new_c = (value.numpy() for value in cell([x, h, c]))
    kernel, bias = (weight.numpy() for weight in cell.gates.weights)
    gates = np.concatenate([x, h], axis=-1) @ kernel[0, 0] + bias
    i, f, g, o = np.split(gates, 4, axis=-1)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    expected_c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)  # eq. 3 of Shi et al., no peepholes
    np.testing.assert_allclose(new_c, expected_c, atol=1e-5)
    np.testing.assert_allclose(new_h, sigmoid(o) * np.tanh(expected_c), atol=1e-5)


def test_weights_are_shared_over_steps_and_the_forecast_reads_every_input_frame():
    short = build_convlstm_forecaster(**TINY, seed=1)
    long = build_convlstm_forecaster(**{**TINY, "num_input_frames": 6, "num_output_frames": 5},
                                     seed=1)
    assert short.count_params() == long.count_params()  # one cell per layer, any frame count
    for a, b in zip(short.weights, long.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    frames = np.random.default_rng(1).uniform(size=(2, 6, 16, 16, 1)).astype("float32")
    assert tuple(long(frames).shape) == (2, 5, 16, 16, 1)
    # The forecast depends on every input frame (the encoder reads them all).
    with tf.GradientTape() as tape:
        inputs = tf.constant(frames[:, :3])
        tape.watch(inputs)
        last = short(inputs)[:, -1]
    gradient = tape.gradient(last, inputs).numpy()
    assert all(np.abs(gradient[:, step]).sum() > 0 for step in range(3))


def test_per_frame_mse_is_summed_over_the_frame_in_unit_intensities():
    truth = np.zeros((1, 2, 16, 16, 1), np.uint8)
    predicted = truth.copy()
    predicted[0, 0, 3, 4] = 255  # one wrong pixel in frame 1: MSE 1.0 there
    predicted[0, 1, :2, :2] = 51  # four pixels off by 0.2: MSE 4 * 0.04 = 0.16
    mse, ssim = evaluation.frame_errors(predicted, truth)
    np.testing.assert_allclose(mse, [[1.0, 0.16]])
    assert ssim.shape == (1, 2) and np.all(ssim < 1)
    np.testing.assert_allclose(evaluation.frame_errors(truth, truth)[1], 1.0)


def test_moving_digit_batches_are_seeded_and_resume_exactly(digits):
    first = [batch.numpy() for batch in moving_mnist_batches(digits, 3, 5, 16, seed=2).take(3)]
    resumed = next(iter(moving_mnist_batches(digits, 3, 5, 16, seed=2, start_batch=2))).numpy()
    np.testing.assert_array_equal(resumed, first[2])
    assert first[0].shape == (3, 5, 16, 16, 1) and first[0].dtype == np.uint8
    assert not np.array_equal(first[0], first[1])
    other = next(iter(moving_mnist_batches(digits, 3, 5, 16, seed=3))).numpy()
    assert not np.array_equal(other, first[0])


# --- training, reload, distribution -----------------------------------------------------------


def test_fit_learns_to_forecast(digits):
    model = tiny_forecaster(seed=2)
    data = batches(digits, model, batch_size=8)
    first = model.evaluate(data, steps=4, verbose=0, return_dict=True)
    assert_fit_moves_weights(model, data, steps=60)
    after = model.evaluate(data, steps=4, verbose=0, return_dict=True)
    # The initial forecast is grey everywhere; 60 steps learn the black background at least.
    assert after["loss"] < 0.6 * first["loss"] and after["frame_mse"] < 0.5 * first["frame_mse"]


def test_reload_continues_exactly(tmp_path, digits):
    model = tiny_forecaster(seed=3)
    data = batches(digits, model)
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)
    assert_round_trip(model, tmp_path / "forecaster.keras",
                      lambda m: m.fit(batches(digits, m, start_batch=2), epochs=1,
                                      steps_per_epoch=2, verbose=0))


def test_a_reloaded_bf16_forecaster_keeps_every_layer_policy_and_forecasts(tmp_path):
    # The cell's gate convolution is a sublayer, whose policy `.keras` does not save: it came
    # back float32 under a bf16 cell, and the reloaded model failed on c (bf16) * gate (float32).
    model = precision.set_precision(tiny_forecaster(seed=5), "bf16")
    frames = np.random.default_rng(5).integers(0, 256, (2, 3, 16, 16, 1), dtype=np.uint8)
    expected = model.forecast(frames)
    model.save(tmp_path / "bf16.keras")
    loaded = keras.models.load_model(tmp_path / "bf16.keras")
    policies = layer_policies(model)
    assert layer_policies(loaded) == policies
    assert ("encoder1/gates", "mixed_bfloat16") in policies
    np.testing.assert_array_equal(loaded.forecast(frames), expected)


def test_mirrored_step_equals_single_device(mirrored_strategy, digits):
    data = tf.data.Dataset.from_tensors(next(iter(moving_mnist_batches(digits, 8, 5, 16))))
    assert_mirrored_step_equal(lambda: tiny_forecaster(seed=4), data, mirrored_strategy,
                               metrics=("loss", "frame_mse"))


# --- export -----------------------------------------------------------------------------------


@pytest.mark.slow  # default-suite time; the CLI test's run exports and checks TFLite parity too
def test_export_signature_rest_and_tflite_parity(tmp_path, digits):
    model = tiny_forecaster(seed=5)
    model.fit(batches(digits, model), epochs=1, steps_per_epoch=3, verbose=0)
    frames = next(iter(batches(digits, model, seed=9))).numpy()[:2, :3]
    assert_export_parity(model, tmp_path, [frames])
    int8 = export.export_tflite(model, tmp_path / "int8.tflite", quantize="int8",
                                saved_model_path=tmp_path / model.name / "1")
    report = export.tflite_parity(int8, model, inputs=[frames])
    assert report["max_abs_diff"] <= 8 and not report["has_nan"], report  # 2 levels here
    assert not any(op.startswith("Flex") for op in report["ops"]), report["ops"]
    path = tmp_path / model.name / "1"
    summary = export.signature_summary(path)
    assert summary["predict"]["inputs"] == {"frames": ("uint8", [None, 3, 16, 16, 1])}
    assert summary["serving_default"]["outputs"]["frames"] == ("uint8", [None, 2, 16, 16, 1])
    answer = export.predict_rest(path, json.dumps({"instances": [{"frames": frames[0].tolist()}]}))
    np.testing.assert_array_equal(np.array(answer["predictions"][0]),
                                  model.forecast(frames[:1])[0])


# --- CLI and bad inputs -----------------------------------------------------------------------


def test_cli_train_sample_gif_evaluate_and_ship(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert cli.main(["train", "convlstm", "--dataset", "digits", "--epochs", "1",
                     "--steps-per-epoch", "3", "--batch-size", "4", "--out", str(run),
                     *[f"--{key.replace('_', '-')}={value}" for key, value in TINY.items()]]) == 0
    assert (run / "convlstm.tflite").exists() and (run / "forecast.gif").stat().st_size > 0
    out = tmp_path / "s.png"
    assert cli.main(["sample", str(run), "--num", "3", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    with Image.open(tmp_path / "s.gif") as gif:  # per frame: 3 rows of truth | model
        assert gif.n_frames == 5 and gif.size == (2 * (2 * 16 + 2), 2 * (3 * 16 + 4))
    capsys.readouterr()
    assert cli.main(["evaluate", str(run), "--num-sequences", "20"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Moving digits (20 sequences generated from the test digits")
    model = keras.models.load_model(run / "model.keras")
    report = model.benchmark("digits", num_sequences=20)
    assert f"per-frame MSE {report['model']['mse']:8.2f}" in lines[1]
    assert report["copy_last"]["mse"] > 0 and len(report["model"]["mse_per_frame"]) == 2
    # Shipped, it is listed with its figure and samples and evaluates by name on its data.
    monkeypatch.setenv(store.SAVED_MODELS_ENV, str(tmp_path / "shipped"))
    store.ship_model(model, "tiny_forecaster", "card", weight_dtype="float16",
                     run_config=json.loads((run / "run_config.json").read_text()),
                     metrics={"rows": [{"dataset": "Moving digits", "mse": 12.5, "ssim": 0.5,
                                        "copy_last_mse": 20.0}]})
    assert cli.main(["list", "--pretrained"]) == 0
    assert "Moving digits per-frame MSE 12.5, SSIM 0.500 (copying the last frame: 20.0)" in \
        capsys.readouterr().out
    assert cli.main(["sample", "tiny_forecaster", "--num", "2", "--out",
                     str(tmp_path / "by_name.png")]) == 0
    assert (tmp_path / "by_name.gif").exists()
    assert cli.main(["evaluate", "tiny_forecaster", "--num-sequences", "20"]) == 0
    assert capsys.readouterr().out.splitlines()[-4].startswith("Moving digits (20 sequences")


def test_bad_inputs_are_refused_with_the_fix(tmp_path, digits):
    model = tiny_forecaster()
    frames = np.zeros((1, 4, 16, 16, 1), np.uint8)
    with pytest.raises(ValueError, match=r"reads 3 frames .* got \[1, 4, 16, 16, 1\]; pass the "
                                         "last 3 frames"):
        model.forecast(frames)
    with pytest.raises(ValueError, match="resize or crop them"):
        model.forecast(np.zeros((1, 3, 20, 20, 1), np.uint8))
    with pytest.raises(ValueError, match="uint8 frames"):
        model.forecast(frames[:, :3].astype("float32"))
    with pytest.raises(ValueError, match=r"sequences \[batch, T >= 5"):
        model.fit(np.zeros((2, 4, 16, 16, 1), np.uint8), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        build_convlstm(frame_size=18, patch_size=4)
    with pytest.raises(ValueError, match="num_filters must be at least 1, got 0"):
        build_convlstm(num_filters=0)
    with pytest.raises(ValueError, match="num_sequences must be at least 1, got 0"):
        model.benchmark("digits", num_sequences=0)
    with pytest.raises(ValueError, match="size must be at least 28"):  # MNIST digits, 16 px
        moving_mnist_batches(np.zeros((2, 28, 28), np.uint8), 2, 5, 16)
    assert cli.main(["train", "convlstm", "--image-size", "32", "--out",
                     str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


# --- the shipped forecaster -------------------------------------------------------------------

SHIPPED_FORECASTER = "convlstm_moving_mnist"


@pytest.mark.skipif(SHIPPED_FORECASTER not in store.shipped_models(),
                    reason="the checkout ships no ConvLSTM forecaster")
def test_shipped_forecaster_measures_its_card_and_beats_copying_the_last_frame(
        data_dir, tmp_path, capsys):
    model = store.load_model(SHIPPED_FORECASTER)
    assert getattr(model, "optimizer", None) is None
    measured = json.loads((store.saved_models_dir() / SHIPPED_FORECASTER /
                           "metrics.json").read_text())
    full, check = measured["rows"]
    assert full["mse"] < full["copy_last_mse"] and full["ssim"] > full["copy_last_ssim"]
    # The card's figures on its first test sequences, re-measured (the full set takes minutes).
    report = model.benchmark("mnist", num_sequences=check["num_sequences"], data_dir=data_dir)
    assert report["model"]["mse"] == pytest.approx(check["mse"], abs=0.01)
    assert report["model"]["ssim"] == pytest.approx(check["ssim"], abs=1e-4)
    assert report["model"]["mse"] < report["copy_last"]["mse"]
    card = (store.saved_models_dir() / SHIPPED_FORECASTER / "MODEL_CARD.md").read_text()
    assert f"{full['mse']:.2f}" in card and "generated" in card
    out = tmp_path / "by_name.png"
    assert cli.main(["sample", SHIPPED_FORECASTER, "--num", "2", "--out", str(out),
                     "--data-dir", str(data_dir)]) == 0
    with Image.open(tmp_path / "by_name.gif") as gif:
        assert gif.n_frames == model.num_input_frames + model.num_output_frames
