"""benchmarks/train_on_jax.py: restoration networks packed here, trained by Keras alone (any
backend; here TensorFlow's), their weights loaded back into kerasgen's TensorFlow networks."""

import importlib.util
import json

import numpy as np
import pytest
import tensorflow as tf

from kerasgen import layers as kerasgen_layers
from kerasgen.data import restoration as rdata

from .conftest import REPO_ROOT

_spec = importlib.util.spec_from_file_location(
    "train_on_jax", REPO_ROOT / "benchmarks" / "train_on_jax.py")
train_on_jax = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_on_jax)


def test_portable_layers_compute_what_kerasgens_tensorflow_layers_compute():
    portable = train_on_jax.portable_layers()
    rng = np.random.default_rng(0)
    features = rng.normal(size=(2, 6, 4, 18)).astype("float32")
    for name, block in (("PixelShuffle", 3), ("PixelUnshuffle", 2)):
        ours = getattr(kerasgen_layers, name)(block)
        theirs = portable[f"kerasgen>{name}"](block)
        inputs = features if name == "PixelShuffle" else features[:, :, :, :5]
        np.testing.assert_array_equal(theirs(inputs), ours(inputs))
    sigma = np.array([[0.1], [0.3]], "float32")
    np.testing.assert_array_equal(portable["kerasgen>NoiseLevelMap"]()(features, sigma),
                                  kerasgen_layers.NoiseLevelMap()(features, sigma))
    config = kerasgen_layers.BatchNormalization(synchronized=True, momentum=0.5).get_config()
    ours = kerasgen_layers.BatchNormalization.from_config(config)
    theirs = portable["kerasgen>BatchNormalization"].from_config(config)
    for training in (True, True, False):  # two updates of the moving statistics, then inference
        np.testing.assert_allclose(theirs(features, training=training),
                                   ours(features, training=training), atol=1e-5)
    for mine, other in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(other, mine, atol=1e-6)


def test_the_downscale_matrix_is_kerasgens_bicubic_down_scaler():
    patch = np.random.default_rng(1).uniform(size=(2, 24, 24, 1)).astype("float32")
    for scale in (2, 3, 4):
        matrix = train_on_jax.downscale_matrix(24, scale)
        assert matrix.shape == (24 // scale, 24)
        np.testing.assert_allclose(np.einsum("ij,bjkc,lk->bilc", matrix, patch, matrix),
                                   rdata.bicubic_downscale(patch, scale), atol=1e-5)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    """A bundle of FFDNet (noise-level input, batch norm, pixel shuffles) and the shipped
    FSRCNN x3 (SR, started from shipped weights), each fitted for a few steps."""
    root = tmp_path_factory.mktemp("jax")
    bundle, out = root / "bundle", root / "out"
    train_on_jax.bundle(bundle, ["ffdnet", "fsrcnn_x3"], data_dir)
    out.mkdir()
    (out / "summary.txt").write_text(f"machine: {train_on_jax.machine_line()}\n")
    for name in ("ffdnet", "fsrcnn_x3"):
        train_on_jax.train_job(bundle, name, out, seconds=1e-3, steps_per_epoch=2, batch=4)
    return bundle, out


def test_fit_moves_the_weights_and_they_load_into_the_tensorflow_restorer(trained):
    import keras

    bundle, out = trained
    for name in ("ffdnet", "fsrcnn_x3"):
        model = train_on_jax.build_job_model(train_on_jax.JOBS[name])
        train_on_jax.load_layer_weights(model.network, out / f"{name}.npz")
        portable = keras.models.model_from_json((bundle / f"{name}.json").read_text(),
                                                custom_objects=train_on_jax.portable_layers())
        train_on_jax.load_layer_weights(portable, out / f"{name}.npz")
        images = np.random.default_rng(2).uniform(size=(2, 16, 16, 1)).astype("float32")
        inputs = [images, np.array([[0.1], [0.2]], "float32")] if model.conditioned else images
        np.testing.assert_allclose(model.network(inputs), portable(inputs), atol=1e-5)
        record, machine = train_on_jax.training_record(out, name)
        assert record["steps"] == 4 and record["seconds"] >= 0 and record["jobs"] == 2
        assert machine.startswith("Keras") and "CPU cores" in machine
        assert record["cpu_seconds"] > 0
    # From scratch: FFDNet's zero-initialised last layer has learned something.
    ffdnet = train_on_jax.build_job_model(train_on_jax.JOBS["ffdnet"]).network
    train_on_jax.load_layer_weights(ffdnet, out / "ffdnet.npz")
    assert np.abs(ffdnet.get_layer("to_subimages").get_weights()[0]).max() > 0
    with pytest.raises(ValueError, match="no weights for layer .* saved from another network"):
        train_on_jax.load_layer_weights(ffdnet, out / "fsrcnn_x3.npz")
    # Fine-tuned: the shipped FSRCNN moved a little, from where it was.
    with np.load(bundle / "fsrcnn_x3.init.npz") as start, np.load(out / "fsrcnn_x3.npz") as end:
        moved = [np.abs(end[key] - start[key]).max() for key in start]
        assert 0 < max(moved) < 0.1


def test_a_cpu_budget_counts_the_process_cpu_time_from_its_start(trained, tmp_path):
    import time

    bundle, _ = trained
    # Loading and compiling count: a budget this process has already spent stops the run
    # after its first epoch, where a wall budget of fitting would run a second one.
    spent = time.process_time()
    train_on_jax.train_job(bundle, "ffdnet", tmp_path, seconds=spent, steps_per_epoch=2,
                           batch=4, cpu_budget=True)
    record, _ = train_on_jax.training_record(tmp_path, "ffdnet")
    assert record["steps"] == 2 and record["cpu_seconds"] >= spent


def test_batches_degrade_as_the_restorer_does(trained):
    bundle, _ = trained
    jobs = json.loads((bundle / "jobs.json").read_text())["jobs"]
    grey = train_on_jax.load_images(bundle, "grey")
    assert len(grey) == 400 and grey[0].shape == (180, 180, 1) and grey[0].dtype == np.uint8
    batches = train_on_jax.make_batches({**jobs["ffdnet"], "batch": 64}, grey)
    (noisy, sigma), clean = batches[0]
    assert noisy.shape == clean.shape == (64, 64, 64, 1) and sigma.shape == (64, 1)
    assert 0 <= sigma.min() and sigma.max() <= 75 / 255  # the map is in units of 1/255
    noise = (noisy - clean) / sigma[:, :, None, None]
    assert noise.std() == pytest.approx(1.0, abs=0.02)  # unclipped Gaussian noise
    y_images = train_on_jax.load_images(bundle, "y")
    # Y of the grey Train400 images: 16 + 219/255 of the grey level, as rgb_to_ycbcr.
    expected = np.round(16 + grey[0].astype("float64") * 219 / 255)
    np.testing.assert_allclose(y_images[91], expected, atol=1)
    matrix = np.load(bundle / "fsrcnn_x3.downscale.npy")
    low, high = train_on_jax.make_batches(jobs["fsrcnn_x3"], y_images, matrix)[3]
    assert low.shape == (128, 16, 16, 1) and high.shape == (128, 48, 48, 1)
    np.testing.assert_allclose(low * 255, np.round(low * 255), atol=1e-3)  # 8-bit LR
    reference = np.asarray(rdata.bicubic_downscale(tf.constant(high), 3))
    assert np.abs(low - reference).max() <= 0.5 / 255 + 1e-5


def test_bad_budgets_are_refused_naming_the_option(monkeypatch, capsys):
    for option, value in (("--seconds", "0"), ("--steps-per-epoch", "-3")):
        arguments = ["train", "b", "--out", "o", "--seconds", "10", option, value]
        monkeypatch.setattr("sys.argv", ["train_on_jax.py", *arguments])
        with pytest.raises(SystemExit) as stopped:
            train_on_jax.main()
        assert stopped.value.code == 2
        assert f"{option} must be positive, got" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["ffdnet", "fsrcnn_x3", "edsr_x2"])
def test_a_job_model_records_the_patches_it_trains_on(name):
    """The shipped model's config holds the job's patch side (HR pixels for SR), so its batch
    norms' population statistics come from patches of the training size."""
    job = train_on_jax.JOBS[name]
    assert train_on_jax.build_job_model(job).training_patch_side() == job["patch"]
