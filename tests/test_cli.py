import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, registry, store, training
from kerasgen.callbacks import latest_checkpoint
from tests.conftest import REPO_ROOT

TINY = ["--image-size", "16", "--batch-size", "32", "--steps-per-epoch", "3"]


def _kerasgen(*args, **kwargs):
    """The installed console script, as a user runs it."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    script = os.path.join(os.path.dirname(sys.executable), "kerasgen")
    return subprocess.run([script, *args], capture_output=True, text=True, env=env, **kwargs)


def test_list_and_unknown_model_errors(capsys):
    assert cli.main(["list"]) == 0
    registered, shipped = capsys.readouterr().out.split("\n\n")
    listed = [line.split()[0] for line in registered.splitlines()]
    recorded = json.loads((store.saved_models_dir() / "dncnn_grey_s25" / "metrics.json")
                          .read_text())["rows"][0]
    assert "dncnn_grey_s25" in shipped and f"{recorded['psnr']:.2f} dB" in shipped
    assert listed == ["beta_vae", "cgan", "cgan_r1", "classifier", "context_encoder", "convlstm",
                      "cvae", "cyclegan", "dcgan", "ddpm", "ddpm_conditional", "deepfill_v2",
                      "diagonal_bilstm", "dncnn", "dncnn_blind", "dncnn_color", "draw", "drrn",
                      "edsr", "espcn", "ffdnet", "ffdnet_color", "fsrcnn", "iwae",
                      "lowlight_curve_unet", "lowlight_unet", "pconv_unet", "pix2pix",
                      "pixelcnn", "pixelcnn_conditional", "pixelcnn_grey", "pullpush_unet",
                      "recurrent_denoiser", "row_lstm", "unet_denoiser", "unet_inpainter", "vae",
                      "wgan_gp", "zero_dce", "zero_dce_plus"]
    valid = "Valid models: " + ", ".join(listed)
    assert cli.main(["train", "stylegan9"]) == 2
    assert f"Unknown model 'stylegan9'. {valid}" in capsys.readouterr().err
    with pytest.raises(ValueError, match=valid):
        registry.get_preset("stylegan9")


NO_TENSORFLOW = """
import sys
sys.argv[0] = "kerasgen"  # as the console script: nothing imported before the arguments
from kerasgen import cli
code = cli.main(sys.argv[1:])
print("tensorflow imported:", "tensorflow" in sys.modules, "exit:", code)
"""


def test_list_and_model_names_answer_without_tensorflow(tmp_path, monkeypatch, capsys):
    from kerasgen import model_index

    monkeypatch.setenv(model_index.CACHE_ENV, str(tmp_path))

    def listed(*args):
        run = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, *args], capture_output=True,
                             text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                             timeout=300)
        return run.stdout, run.stderr

    (tmp_path / "models-0123.json").write_text("[]")  # another source's listing: ignored
    assert model_index.read() is None
    cold, _ = listed("list")  # no listing for this source yet: the registry is imported
    assert "tensorflow imported: True exit: 0" in cold
    assert [path.name for path in tmp_path.iterdir()] == [model_index._path().name]
    warm, _ = listed("list")
    assert "tensorflow imported: False exit: 0" in warm
    assert warm == cold.replace("imported: True", "imported: False")
    assert model_index.read() == model_index.entries(registry.MODELS)
    out, err = listed("train", "dcgann", "--out", str(tmp_path / "run"))
    assert "tensorflow imported: False exit: 2" in out
    assert "Unknown model 'dcgann'. Valid models: beta_vae, cgan," in err
    assert not (tmp_path / "run").exists()

    model_index._path().write_text('[{"name": "dcg')  # a torn file: imported again
    assert model_index.read() is None
    assert cli.main(["list"]) == 0 and "dcgan" in capsys.readouterr().out
    assert model_index.read() == model_index.entries(registry.MODELS)  # and rewritten


def test_train_sample_export_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = _kerasgen("train", "dcgan", "--epochs", "2", "--out", str(run_dir), *TINY, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.keras", "samples.png", "dcgan.tflite", "run_config.json",
                 "saved_model/dcgan/1/saved_model.pb", "samples/epoch_0002.png",
                 "checkpoints/epoch_0002.keras"):
        assert (run_dir / name).exists(), name
    for printed in ("model.keras", "samples.png", "saved_model/dcgan/1", "dcgan.tflite"):
        assert str(run_dir / printed) in result.stdout, printed  # it says where they are
    tags = {value.tag for path in (run_dir / "logs").rglob("events.out.tfevents.*")
            for event in tf.compat.v1.train.summary_iterator(str(path))
            for value in event.summary.value}
    assert {"samples", "epoch_d_loss", "epoch_g_loss"} <= tags, tags  # TensorBoard images, scalars
    model = keras.models.load_model(run_dir / "model.keras")
    assert int(model.g_optimizer.iterations) == 6  # 2 epochs x 3 steps

    assert cli.main(["sample", str(run_dir), "--num", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert cli.main(["export", str(run_dir), "--format", "tflite", "--quantize", "int8"]) == 0
    assert (run_dir / "dcgan_int8.tflite").exists()
    assert cli.main(["export", str(run_dir), "--format", "saved_model"]) == 0
    assert (run_dir / "saved_model/dcgan/2/saved_model.pb").exists()  # version 1 kept
    assert (run_dir / "saved_model/dcgan/1/saved_model.pb").exists()


def test_resume_continues_and_refuses_other_settings(tmp_path, capsys):
    run_dir = tmp_path / "run"
    kwargs = dict(out_dir=run_dir, image_size=16, batch_size=32, steps_per_epoch=2,
                  export_formats=(), verbose=0)
    first = training.train("dcgan", epochs=1, **kwargs)
    resumed = training.train("dcgan", epochs=3, **kwargs)
    assert resumed.initial_epoch == 1 and len(resumed.history["d_loss"]) == 2
    assert int(resumed.model.d_optimizer.iterations) == 6
    assert "Resuming" in capsys.readouterr().out
    assert first.keras_path == resumed.keras_path
    with pytest.raises(ValueError, match="other settings .*batch_size: 32 -> 16"):
        training.train("dcgan", epochs=3, **{**kwargs, "batch_size": 16})
    assert json.loads((run_dir / "run_config.json").read_text())["batch_size"] == 32


@pytest.mark.slow  # default-suite time (27 s); the VAE CLI test keeps a resumed run in it
def test_sigkill_mid_run_resumes_from_last_epoch(tmp_path):
    """A run killed by SIGKILL continues from its last checkpoint with the same command."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "kerasgen.cli", "train", "dcgan", "--epochs", "12",
               "--out", str(run_dir), *TINY]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 300
    while latest_checkpoint(run_dir / "checkpoints")[1] < 2:
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.time() < deadline, "no checkpoint written in 300 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    path, killed_at = latest_checkpoint(run_dir / "checkpoints")
    assert 2 <= killed_at < 12
    saved = keras.models.load_model(path)
    saved_weights = [w.numpy() for w in saved.generator.weights]

    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resuming {run_dir} from epoch {killed_at}" in result.stdout
    final = keras.models.load_model(run_dir / "model.keras")
    # The checkpoint held all steps up to its epoch; the rerun trained exactly the rest.
    assert int(saved.g_optimizer.iterations) == killed_at * 3
    assert int(final.g_optimizer.iterations) == 12 * 3
    assert f"Epoch {killed_at + 1}/12" in result.stdout and f"Epoch {killed_at}/12" not in result.stdout
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(saved_weights, final.generator.weights))


def test_cli_reports_bad_input(tmp_path, capsys):
    assert cli.main(["train", "dcgan", "--dataset", "nope", "--out", str(tmp_path / "r")]) == 2
    assert "Unknown dataset 'nope'" in capsys.readouterr().err
    assert cli.main(["sample", str(tmp_path / "missing")]) == 2
    assert "holds no model.keras" in capsys.readouterr().err


def test_help_after_a_model_lists_its_own_options(tmp_path, monkeypatch, capsys):
    """`sample`, `apply` and `evaluate` take the loaded model's options; `--help` after a
    model or run lists them (without writing anything), and without one the command's own."""
    monkeypatch.chdir(tmp_path)
    assert cli.main(["apply", "ffdnet_grey", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--out" in out and "--sigma FLOAT" in out and "--tile INT" in out
    assert cli.main(["evaluate", "ffdnet_grey", "-h"]) == 0
    out = capsys.readouterr().out
    assert "--metric" in out and "--sigma FLOAT" in out and "--tile" not in out
    assert cli.main(["sample", "vae_mnist", "--help"]) == 0
    assert "kerasgen sample vae_mnist` (its model's own):\n  none" in capsys.readouterr().out
    assert cli.main(["sample", "--help"]) == 0
    assert "--num" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    # Without --help, what the command needs is still required.
    assert cli.main(["sample"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["apply", "ffdnet_grey", "in.png"])
    assert exit_info.value.code == 2
    assert "required: --out" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["apply", "ffdnet_grey", "--out", "x"])
    assert "required: INPUT" in capsys.readouterr().err
    # A model that does not apply says which verb it has, --help or not.
    assert cli.main(["apply", "vae_mnist", "--help"]) == 2
    assert "use `kerasgen sample`" in capsys.readouterr().err


def test_vae_train_resume_evaluate_nll_and_figures(tmp_path, data_dir, capsys):
    run_dir = tmp_path / "vae"
    common = ["--out", str(run_dir), "--batch-size", "32", "--steps-per-epoch", "3",
              "--data-dir", str(data_dir)]
    assert cli.main(["train", "iwae", "--epochs", "1", *common]) == 0
    assert cli.main(["train", "iwae", "--epochs", "2", *common]) == 0  # resumes epoch 2
    out = capsys.readouterr().out
    assert "Resuming" in out and str(run_dir / "reconstructions.png") in out
    model = keras.models.load_model(run_dir / "model.keras")
    assert int(model.optimizer.iterations) == 6 and model.num_importance_samples == 5
    for name in ("samples/epoch_0002.png", "samples/epoch_0002_reconstructions.png",
                 "samples/epoch_0002_interpolation.png", "saved_model/iwae/1/saved_model.pb",
                 "iwae.tflite"):
        assert (run_dir / name).exists(), name

    assert cli.main(["evaluate", str(run_dir), "--metric", "nll", "--k", "20",
                     "--num-images", "8", "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    report = json.loads((run_dir / "likelihood.json").read_text())
    assert report["num_images"] == 8 and report["num_samples"] == 20
    assert 0 < report["nll"] <= report["negative_elbo"] < 8 * 784  # untrained, yet a bound
    assert f"test NLL (k=20, 8 mnist test images): {report['nll']:.2f} nats" in out

    assert cli.main(["sample", str(run_dir), "--out", str(tmp_path / "figs" / "s.png"),
                     "--data-dir", str(data_dir)]) == 0
    for name in ("s.png", "reconstructions.png", "interpolation.png"):
        assert (tmp_path / "figs" / name).stat().st_size > 1000, name
    assert cli.main(["evaluate", str(run_dir), "--metric", "nll", "--k", "0"]) == 2
    assert "--k must be at least 1" in capsys.readouterr().err


def test_tensorflow_comes_from_an_extra_so_an_existing_one_is_kept():
    import re
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
                for requirement in requirements}

    tensorflows = {"tensorflow", "tensorflow-cpu"}
    assert not names(project["dependencies"]) & tensorflows  # GPU tensorflow stays the only one
    extras = project["optional-dependencies"]
    assert names(extras["cpu"]) == tensorflows  # tensorflow-cpu on x86_64, tensorflow elsewhere
    assert extras["gpu"] == ["tensorflow[and-cuda]>=2.16"]


def test_without_tensorflow_the_cli_names_the_extras(tmp_path, monkeypatch, capsys):
    import importlib.util

    import kerasgen

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "tensorflow"
                        else real_find_spec(name, *args))
    with pytest.raises(kerasgen.MissingTensorFlow, match=r"pip install 'kerasgen\[cpu\]'"):
        kerasgen._require_tensorflow()
    assert cli.main(["train", "dcgan", "--out", str(tmp_path / "run")]) == 1
    assert "kerasgen[gpu]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
