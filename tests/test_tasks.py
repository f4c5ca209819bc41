"""Task contracts, the registry, model options, the dataset namespace, degradation layers, and
the README's "Adding a model" example trained end to end through the shared helpers."""

import inspect
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from examples import tiny_denoiser
from kerasgen import cli, registry, tasks, training
from kerasgen.callbacks import StepDecay
from kerasgen.data import DataError, catalog, load_arrays
from kerasgen.data import restoration as rdata
from kerasgen.distribute import ReplicaBatch
from kerasgen.layers.degradations import BicubicDownscale, GaussianNoise
from kerasgen.models.preset import ModelPreset
from kerasgen.visualize import save_image_grid
from tests.conftest import REPO_ROOT, tiny_dcgan
from tests.helpers import (assert_export_parity, assert_fit_moves_weights,
                           assert_mirrored_step_equal, assert_round_trip)


# --- registry and tasks --------------------------------------------------------------------

def test_every_preset_has_a_task_and_the_registry_refuses_duplicates():
    for name in registry.available_models():
        preset = registry.get_preset(name)
        assert preset.name == name
        assert isinstance(preset.task, tasks.Task), name
    dcgan = registry.get_preset("dcgan")
    with pytest.raises(ValueError, match="'dcgan' is registered twice"):
        registry.register({"dcgan": dcgan}, models=dict(registry.MODELS))
    with pytest.raises(ValueError, match="preset named 'dcgan'"):
        registry.merge_presets({"other": dcgan})


def test_task_of_dispatches_on_the_contract():
    assert tasks.task_of(tiny_dcgan()) is tasks.GENERATION
    denoiser = tiny_denoiser.build_tiny_denoiser(num_filters=4)
    assert tasks.task_of(denoiser) is tasks.IMAGE_TO_IMAGE
    from kerasgen.models.classifier import build_classifier

    assert tasks.task_of(build_classifier((8, 8, 1), 3)) is tasks.CLASSIFICATION
    # The CLI options of a contract method come from its signature.
    assert set(tasks.method_options(denoiser.apply)) == {"sigma", "scale", "tile"}
    assert set(tasks.method_options(denoiser.benchmark)) == {"sigma", "scale"}


def test_model_options_come_from_the_builders():
    dncnn = registry.get_preset("dncnn").options()
    assert dncnn["sigma"].default == 25.0 and dncnn["sigma"].type is float
    assert dncnn["depth"].default == 17 and dncnn["patch_size"].default == 40
    assert "scale" not in dncnn and "channels" not in dncnn
    espcn = registry.get_preset("espcn").options()
    assert espcn["scale"].type is int and "sigma" not in espcn
    assert registry.get_preset("dcgan").options()["latent_dim"].default == 100
    assert registry.get_preset("iwae").options()["num_importance_samples"].default == 5
    # `sigma` is written once: in GaussianNoise, the degradation that uses it.
    assert "sigma" in inspect.signature(GaussianNoise).parameters
    from kerasgen.models.restoration import build_restorer

    assert "sigma" not in inspect.signature(build_restorer).parameters


def test_cli_refuses_inapplicable_options_before_writing(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "dncnn", "--image-size", "64", "--out", str(out)]) == 2
    assert "takes no --image-size; set the patch size with --patch-size" in \
        capsys.readouterr().err
    assert cli.main(["train", "dcgan", "--sigma", "3", "--out", str(out)]) == 2
    assert "dcgan takes no sigma option" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main(["train", "dncnn", "--help"]) == 0
    assert "--sigma FLOAT" in capsys.readouterr().out


def test_dcgan_learning_rate_schedule_sets_both_optimizers():
    gan = tiny_dcgan()
    gan.fit(np.zeros((8, 16, 16, 1), "float32"), batch_size=8, epochs=2, verbose=0,
            callbacks=[StepDecay(1e-3, epochs=2, drop_at=0.5)])
    assert [float(o.learning_rate) for o in (gan.d_optimizer, gan.g_optimizer)] == \
        pytest.approx([1e-4, 1e-4])


# --- one dataset namespace -----------------------------------------------------------------

def test_dataset_names_mean_one_kind_of_data():
    assert catalog.resolve("photos", "image_set") == "named"
    assert catalog.resolve("photo_crops", "images") == "named"
    with pytest.raises(DataError, match="'horse2zebra' is unpaired data.*trains on images"):
        load_arrays("horse2zebra")
    with pytest.raises(DataError, match="'digits' is images data.*image_set"):
        rdata.load_images("digits")
    with pytest.raises(DataError, match="Unknown dataset 'nope'; valid paired names: "
                                        "grey2color"):
        catalog.resolve("nope", "paired")
    # An image set feeds same-size models when resized, like a folder.
    images, labels = load_arrays("photos", image_size=16)
    assert images.shape == (7, 16, 16, 3) and labels is None


# --- degradation layers --------------------------------------------------------------------

def test_degradations_are_seeded_serializable_layers():
    clean = np.full((4, 24, 24, 1), 0.5, "float32")
    noise = GaussianNoise(sigma_range=(10.0, 50.0))
    first, levels = noise.degrade(clean, ReplicaBatch(4), keras.random.SeedGenerator(1))
    again, _ = noise.degrade(clean, ReplicaBatch(4), keras.random.SeedGenerator(1))
    np.testing.assert_array_equal(first, again)
    stds = np.std((first.numpy() - clean).reshape(4, -1), axis=1) * 255
    np.testing.assert_allclose(stds, levels.numpy(), rtol=0.15)
    assert keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(noise)).sigma_range == (10.0, 50.0)
    down = BicubicDownscale(scale=3)
    low, condition = down.degrade(np.ones((1, 24, 24, 3), "float32"), ReplicaBatch(1), None)
    assert low.shape == (1, 8, 8, 3) and condition is None
    with pytest.raises(ValueError, match="Unsupported scale 2: this model super-resolves x3"):
        down.check_options(False, scale=2)
    with pytest.raises(ValueError, match="Unsupported scale 5"):
        BicubicDownscale(scale=5)


# --- "Adding a model": the README's example, registered from here --------------------------

def _png(path, image):
    tf.io.write_file(str(path), tf.io.encode_png(image))
    return str(path)


def test_adding_a_model_is_one_module_and_one_registry_line(tmp_path, data_dir, monkeypatch,
                                                            capsys, mirrored_strategy):
    first = _compiled(tiny_denoiser.build_tiny_denoiser(num_filters=4))
    assert_mirrored_step_equal(
        lambda: _compiled(tiny_denoiser.build_tiny_denoiser(num_filters=4)),
        first.training_data("photos", 8, seed=1).take(1), mirrored_strategy)
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    registry.register(tiny_denoiser.PRESETS)
    run = tmp_path / "run"
    assert cli.main(["train", "tiny_denoiser", "--sigma", "15", "--num-filters", "8",
                     "--out", str(run)]) == 0
    assert "SavedModel:" in capsys.readouterr().out
    config = json.loads((run / training.RUN_CONFIG).read_text())
    assert config["model_kwargs"] == {"sigma": 15.0, "num_filters": 8}
    model = training.load_run(run)
    assert int(model.optimizer.iterations) == 10 and model.degradation.sigma == 15.0

    source = _png(tmp_path / "odd.png", rdata.as_channels(
        rdata.load_images("photos")[1][:37, :50], 1))
    assert cli.main(["apply", str(run), source, "--out", str(tmp_path / "out")]) == 0
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / "odd.png"))).shape == \
        (37, 50, 1)
    assert cli.main(["sample", str(run)]) == 2
    assert "which does not sample (image-to-image task); use `kerasgen apply`" in \
        capsys.readouterr().err
    assert cli.main(["evaluate", str(run), "--dataset", "Set12", "--data-dir",
                     str(data_dir)]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("Set12 (sigma=15, 12 images)")

    data = model.training_data("photos", 8, seed=1)
    assert_fit_moves_weights(model, data, steps=2)
    batch = next(iter(data))
    assert_round_trip(model, tmp_path / "again.keras",
                      lambda m: m.fit(tf.data.Dataset.from_tensors(batch), verbose=0))
    assert_export_parity(model, tmp_path / "export",
                         [rdata.as_channels(rdata.load_images("photos")[2][:30, :42], 1)[None]])


def _compiled(model):
    # SGD: Adam's first step is +-lr wherever a gradient is ~0 (dead ReLUs), so reduction-order
    # rounding could flip those steps; the comparison is about the trainer, not Adam.
    model.compile(optimizer=keras.optimizers.SGD(0.05))
    return model


def test_readme_shows_the_example_as_it_is():
    readme = (REPO_ROOT / "README.md").read_text()
    code = (REPO_ROOT / "examples" / "tiny_denoiser.py").read_text()
    body = code[code.index("import keras"):]
    assert body in readme, "README's 'Adding a model' must quote examples/tiny_denoiser.py"


def test_training_has_no_family_branches():
    source = inspect.getsource(training.train)
    for word in ("generative", "uses_labels", "make_data", "hasattr", "restoration", "vae"):
        assert word not in source, word
    assert len(source.splitlines()) < 130  # 142 before the task contracts, docstring included
    assert isinstance(registry.get_preset("dncnn"), ModelPreset)


def test_conditional_sample_grids_have_a_labelled_row_per_class(tmp_path):
    class Labelled(tasks.GenerativeModel):
        """Three classes; each sample's pixels hold its label, so the grid's order shows."""

        conditional, num_classes, name = True, 3, "labelled"

        def sample_inputs(self, num_images, seed=0):
            seeds = tf.range(seed, seed + num_images)
            return seeds, tf.range(num_images) % self.num_classes

        def generate(self, inputs):
            labels = tf.cast(inputs[1], tf.float32)
            return tf.ones([len(labels), 4, 4, 1]) * (labels[:, None, None, None] - 1.0)

    images, columns, row_labels = tasks.sample_grid(Labelled(), num_images=7)
    assert columns == 2 and row_labels == ["0", "1", "2"] and len(images) == 6
    np.testing.assert_array_equal(images[:, 0, 0, 0], [0, 0, 128, 128, 255, 255])
    assert len(tasks.sample_grid(Labelled(), num_images=1)[0]) == 3  # one per class at least
    path = tasks.write_samples(Labelled(), tmp_path / "grid.png", num_images=9)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="2 row labels for a grid of 3 rows"):
        save_image_grid(images, tmp_path / "bad.png", columns=2, row_labels=["a", "b"])
