"""Reliability: exact resume, non-finite losses, corrupt checkpoints, run locks, safe loading,
and argument validation before anything is written."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, export, training
from kerasgen.callbacks import ResumableCheckpoint, StopOnNonFinite, list_checkpoints
from kerasgen.models.base import optimizers_of

# Tiny runs of four families: (model, settings, model options).
TINY_RUNS = {
    "dcgan": (dict(image_size=16, batch_size=16, steps_per_epoch=2),
              {"latent_dim": 8, "base_filters": 8}),
    "vae": (dict(dataset="digits", image_size=16, batch_size=32, steps_per_epoch=2),
            {"latent_dim": 4, "base_filters": 4, "hidden_units": 16}),
    "dncnn_blind": (dict(dataset="photos", batch_size=4, steps_per_epoch=2),
                    {"depth": 3, "num_filters": 8, "patch_size": 16}),
    "cyclegan": (dict(image_size=32, batch_size=1, steps_per_epoch=2),
                 {"num_filters": 4, "num_blocks": 1, "discriminator_filters": 4,
                  "pool_size": 2}),
    "pconv_unet": (dict(dataset="photos", batch_size=4, steps_per_epoch=2),
                   {"depth": 3, "num_filters": 8, "patch_size": 32}),
    "deepfill_v2": (dict(dataset="photos", batch_size=4, steps_per_epoch=2),
                    {"num_filters": 4, "discriminator_filters": 4, "discriminator_layers": 3,
                     "patch_size": 32}),
}


def _train(name, out, epochs, **overrides):
    settings, options = TINY_RUNS[name]
    return training.train(name, epochs=epochs, out_dir=out, export_formats=(), verbose=0,
                          model_options=options, **{**settings, **overrides})


def _state(model):
    return [w.numpy() for w in model.weights] + [
        v.numpy() for o in optimizers_of(model) for v in o.variables]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TINY_RUNS))
def test_resumed_run_is_bit_identical_to_the_uninterrupted_run(name, tmp_path):
    class StopAfterTwo(keras.callbacks.Callback):
        """An interruption at the end of epoch 2 (the checkpoint is already written)."""

        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    whole = _train(name, tmp_path / "whole", epochs=3).model
    _train(name, tmp_path / "resumed", epochs=3, callbacks=[StopAfterTwo()])
    resumed = _train(name, tmp_path / "resumed", epochs=3)
    assert resumed.initial_epoch == 2
    for a, b, weight in zip(_state(whole), _state(resumed.model),
                            resumed.model.weights + [None] * 1000):
        np.testing.assert_array_equal(a, b, err_msg=getattr(weight, "path", "optimizer"))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    class Poison(keras.callbacks.Callback):
        """Makes the data yield NaN from epoch 2 on (as a NaN pixel in the data would)."""

        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                weight = self.model.discriminator.weights[0]
                weight.assign(np.full(weight.shape, np.nan, "float32"))

    run = tmp_path / "run"
    settings, options = TINY_RUNS["dcgan"]
    with pytest.raises(training.TrainingDiverged,
                       match=r"diverged at epoch 2, step 1 \(d_loss=nan.*resumes from epoch 1"):
        training.train("dcgan", epochs=3, out_dir=run, export_formats=(), verbose=0,
                       model_options=options, callbacks=[Poison()], **settings)
    assert [epoch for _, epoch in list_checkpoints(run / "checkpoints")] == [1]
    assert not (run / "model.keras").exists()
    good = keras.models.load_model(run / "checkpoints" / "epoch_0001.keras")
    assert all(np.isfinite(w.numpy()).all() for w in good.weights if "float" in str(w.dtype))

    # The Python API: NaN data through fit never overwrites the good checkpoint.
    model = good
    folder = tmp_path / "api"
    images = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 1)).astype("float32")
    model.fit(images, batch_size=8, epochs=1, verbose=0,
              callbacks=[ResumableCheckpoint(folder)])
    images[3, 4, 5, 0] = np.nan
    guard = StopOnNonFinite()
    model.fit(images, batch_size=16, epochs=3, initial_epoch=1, verbose=0,
              callbacks=[guard, ResumableCheckpoint(folder)])
    assert guard.failure[:2] == (2, 1)
    assert [epoch for _, epoch in list_checkpoints(folder)] == [1]


def test_truncated_checkpoint_falls_back_and_corrupt_model_is_named(tmp_path, capsys):
    run = tmp_path / "run"
    _train("dcgan", run, epochs=2)
    assert [epoch for _, epoch in list_checkpoints(run / "checkpoints")] == [1, 2]
    newest = run / "checkpoints" / "epoch_0002.keras"
    newest.write_bytes(newest.read_bytes()[:1000])
    with pytest.warns(UserWarning, match="epoch_0002.keras is corrupt"):
        resumed = _train("dcgan", run, epochs=3)
    assert resumed.initial_epoch == 1
    assert int(resumed.model.g_optimizer.iterations) == 3 * 2

    final = run / "model.keras"
    final.unlink()  # a hard link to the last checkpoint: truncate a copy of it
    final.write_bytes((run / "checkpoints" / "epoch_0003.keras").read_bytes()[:500])
    assert cli.main(["sample", str(run)]) == 2
    error = capsys.readouterr().err
    assert "model.keras is corrupt" in error and "Delete it" in error


def test_a_second_trainer_on_the_same_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(str(os.getppid()))  # a live process holds it
    with pytest.raises(training.RunInUse, match=f"being trained by process {os.getppid()}"):
        _train("dcgan", run, epochs=1)
    assert sorted(path.name for path in run.iterdir()) == [".lock"]  # nothing written
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (run / ".lock").write_text(dead)  # a stale lock of a process that is gone
    _train("dcgan", run, epochs=1)
    assert not (run / ".lock").exists() and (run / "model.keras").exists()


def test_final_model_is_a_link_to_the_last_checkpoint_not_a_second_copy(tmp_path):
    run = tmp_path / "run"
    _train("dcgan", run, epochs=2)
    assert os.path.samefile(run / "model.keras", run / "checkpoints" / "epoch_0002.keras")


# DeepFill's tiny run takes half a minute (its figures), CycleGAN's 15 s: the slow suite checks
# them (default-suite time).
@pytest.mark.parametrize("name", [pytest.param(name, marks=[pytest.mark.slow] * (
    name in ("deepfill_v2", "cyclegan"))) for name in sorted(TINY_RUNS)])
def test_every_family_loads_in_keras_safe_mode(name, tmp_path):
    settings, options = TINY_RUNS[name]
    result = _train(name, tmp_path / "run", epochs=1, steps_per_epoch=1)
    loaded = keras.models.load_model(result.keras_path, safe_mode=True)
    assert type(loaded) is type(result.model)


def test_exports_leave_no_partial_files(tmp_path, trained_tiny_dcgan):
    saved = export.export_saved_model(trained_tiny_dcgan, tmp_path, "dcgan")
    tflite = export.export_tflite(trained_tiny_dcgan, tmp_path / "dcgan.tflite",
                                  saved_model_path=saved)
    assert (saved / "variables").is_dir() and tflite.stat().st_size > 1000
    assert not [path for path in tmp_path.rglob(".partial*")]
    # A leftover of a killed export is neither served nor in the way.
    shutil.copytree(saved, tmp_path / "dcgan" / ".partial_2")
    assert export.next_version(tmp_path, "dcgan") == 2
    assert export.export_saved_model(trained_tiny_dcgan, tmp_path, "dcgan", 2).name == "2"


BAD_ARGUMENTS = [
    (["train", "dcgan", "--epochs", "0"], "--epochs: must be at least 1, got 0"),
    (["train", "dcgan", "--epochs", "-1"], "--epochs: must be at least 1, got -1"),
    (["train", "dcgan", "--batch-size", "0"], "--batch-size: must be at least 1"),
    (["train", "dcgan", "--steps-per-epoch", "0"], "--steps-per-epoch: must be at least 1"),
    (["train", "dcgan", "--image-size", "0"], "--image-size: must be at least 1"),
    (["train", "dcgan", "--epochs", "two"], "expected a whole number, got 'two'"),
    (["train", "dcgan", "--seed", "-3"], "--seed: must be at least 0, got -3"),
    (["train", "dcgan", "--quantize", "bogus"], "invalid choice: 'bogus'"),
    (["sample", "RUN", "--num", "0"], "--num: must be at least 1"),
    (["evaluate", "RUN", "--num-samples", "0"], "--num-samples: must be at least 1"),
    (["evaluate", "RUN", "--metric", "is"], "invalid choice: 'is'"),
    (["export", "RUN", "--format", "onnx"], "invalid choice: 'onnx'"),
    (["export", "RUN", "--format", "tflite", "--quantize", "int4"], "invalid choice: 'int4'"),
    # `sample`, `apply` and `evaluate` take the model's own options, checked once it is
    # loaded (test_diffusion, test_cli); the other verbs refuse unknown flags at once.
    (["export", "RUN", "--format", "tflite", "--bogus", "1"], "unrecognized arguments: --bogus 1"),
]


@pytest.mark.parametrize("args, message", BAD_ARGUMENTS)
def test_bad_arguments_exit_2_naming_the_problem_before_writing(args, message, tmp_path,
                                                                capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    args = [str(run) if arg == "RUN" else arg for arg in args] + (
        ["--out", str(run)] if args[0] == "train" else [])
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert sorted(path.name for path in run.iterdir()) == ["keep.txt"]


BAD_RUNS = [
    (["train", "stylegan9"], "Unknown model 'stylegan9'"),
    (["train", "dcgan", "--dataset", "mnsit"], "Unknown dataset 'mnsit'"),
    (["train", "dcgan", "--dataset", "horse2zebra"], "'horse2zebra' is unpaired data"),
    (["train", "dncnn", "--image-size", "64"], "takes no --image-size"),
    (["train", "dcgan", "--sigma", "25"], "dcgan takes no sigma option"),
    (["train", "espcn", "--scale", "5"], "Unsupported scale 5"),
    (["train", "dncnn", "--sigma", "500"], "lie in [0, 75]"),
    (["train", "dcgan", "--batch-size", "5000", "--image-size", "8"],
     "fewer than one batch of 5000"),
]


@pytest.mark.parametrize("args, message", BAD_RUNS)
def test_refused_runs_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(args + ["--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "existing_file.txt"
    target.write_text("mine")
    assert cli.main(["train", "dcgan", "--out", str(target)]) == 2
    assert "is a file; pass a folder" in capsys.readouterr().err
    assert target.read_text() == "mine"
    assert cli.main(["restore", "dncnn_grey_s25", str(target), "--out", str(target)]) == 2
    assert target.read_text() == "mine"


def test_cli_quantizations_match_the_export_module():
    assert cli.QUANTIZATIONS == export.QUANTIZATIONS
    assert tf.__version__  # the suite runs on TensorFlow


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("gan") / "run"
    _train("dcgan", run, epochs=1, steps_per_epoch=1)
    return run


def _bad_files(folder):
    """Files that apply must refuse, by what is wrong with them."""
    import PIL.Image

    folder.mkdir()
    paths = {}
    paths["16-bit PNG"] = folder / "deep.png"
    PIL.Image.fromarray(np.full((40, 40), 30000, np.uint16)).save(paths["16-bit PNG"])
    paths["alpha channel"] = folder / "alpha.png"
    PIL.Image.fromarray(np.zeros((40, 40, 4), np.uint8), "RGBA").save(paths["alpha channel"])
    paths["smaller than this network's receptive field"] = folder / "tiny.png"
    PIL.Image.fromarray(np.zeros((1, 1), np.uint8)).save(paths[
        "smaller than this network's receptive field"])
    good = folder / "good.png"
    PIL.Image.fromarray(np.zeros((60, 60), np.uint8)).save(good)
    paths["cannot be decoded"] = folder / "truncated.png"
    paths["cannot be decoded"].write_bytes(good.read_bytes()[:60])
    paths["not an image"] = folder / "notes.png"
    paths["not an image"].write_text("hello")
    paths["no such file"] = folder / "missing.png"
    return paths


@pytest.mark.parametrize("problem", ["16-bit PNG", "alpha channel", "cannot be decoded",
                                     "not an image", "no such file",
                                     "smaller than this network's receptive field"])
def test_apply_refuses_bad_files_and_writes_nothing(problem, tmp_path, capsys):
    path = _bad_files(tmp_path / "in")[problem]
    out = tmp_path / "out"
    assert cli.main(["restore", "dncnn_grey_s25", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert str(path.name) in error or problem in error, error
    assert not out.exists()


def test_verbs_refuse_the_wrong_kind_of_model_and_other_settings(gan_run, tmp_path, capsys):
    image = tmp_path / "x.png"
    tf.io.write_file(str(image), tf.io.encode_png(np.zeros((40, 40, 1), np.uint8)))
    cases = [
        (["apply", str(gan_run), str(image), "--out", str(tmp_path / "o")],
         "which does not apply (generation task); use `kerasgen sample`"),
        (["sample", "dncnn_grey_s25"], "which does not sample (image-to-image task)"),
        (["evaluate", "dncnn_grey_s25"], "pass --dataset"),
        (["evaluate", str(gan_run), "--dataset", "BSD68"], "--dataset names an image-to-image"),
        (["evaluate", "dncnn_grey_s25", "--dataset", "Set5"], "is a super-resolution set"),
        (["evaluate", "dncnn_grey_s25", "--dataset", "BSD68", "--direction", "a2b"],
         "takes no direction option"),
        (["train", "dcgan", "--out", str(gan_run), "--batch-size", "8", "--image-size", "16",
          "--steps-per-epoch", "1", "--epochs", "2"], "a run started with other settings"),
    ]
    before = sorted(path.name for path in gan_run.rglob("*"))
    for args, message in cases:
        assert cli.main(args) == 2, args
        assert message in capsys.readouterr().err, args
    assert sorted(path.name for path in gan_run.rglob("*")) == before
    assert not (tmp_path / "o").exists()
