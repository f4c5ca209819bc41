"""`kerasgen train --strategy multi_worker`: two worker processes on 127.0.0.1, as in the README's
recipe, take the same step as one device."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerasgen import cli, cluster, training
from kerasgen.models.base import optimizers_of

TINY = {  # `training.train` keyword arguments; the workers get them as flags
    "dcgan": {"image_size": 16, "batch_size": 16},
    "dncnn": {"dataset": "photos", "batch_size": 8,
              "model_options": {"patch_size": 24, "depth": 4, "num_filters": 16}},
}
WORKER_TIMEOUT_S = 420


def run_workers(args, count, scratch):
    """`kerasgen ARGS` in `count` worker processes of one loopback cluster; both are killed
    if they do not stop by themselves within the timeout."""
    workers = [f"127.0.0.1:{port}" for port in cluster.free_loopback_ports(count)]
    script = os.path.join(os.path.dirname(sys.executable), "kerasgen")
    processes = []
    for index in range(count):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        processes.append(subprocess.Popen([script, *args], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    try:
        outputs = [process.communicate(timeout=WORKER_TIMEOUT_S)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    return [(process.returncode, output) for process, output in zip(processes, outputs)]


def flags(settings):
    """`kerasgen train` flags of `training.train` keyword arguments."""
    settings = {**settings, **settings.get("model_options", {})}
    settings.pop("model_options", None)
    return [text for key, value in settings.items()
            for text in ("--" + key.replace("_", "-"), str(value))]


def values(model):
    return [w.numpy() for w in model.weights] + [
        v.numpy() for optimizer in optimizers_of(model) for v in optimizer.variables]


# DnCNN runs in the default suite; DCGAN (two networks, two optimizers) in the slow one.
@pytest.mark.parametrize("model_name", [pytest.param(name, marks=[pytest.mark.slow] * (
    name == "dcgan")) for name in sorted(TINY)])
def test_two_loopback_workers_take_the_single_device_step(model_name, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    run_dir = tmp_path / "run"
    args = ["train", model_name, *flags(TINY[model_name]), "--epochs", "1", "--steps-per-epoch", "1",
            "--strategy", "multi_worker", "--out", str(run_dir)]
    (chief_code, chief), (worker_code, worker) = run_workers(args, 2, scratch)
    assert chief_code == 0, chief[-3000:]
    assert worker_code == 0, worker[-3000:]
    assert f"worker 1: trained in step with the chief, which writes the run folder {run_dir}" \
        in worker
    # The chief wrote the run and its exports; the other worker left nothing behind.
    assert (run_dir / "saved_model" / model_name / "1" / "saved_model.pb").exists()
    assert (run_dir / f"{model_name}.tflite").exists()
    assert list(scratch.iterdir()) == []

    single = training.train(model_name, **TINY[model_name], epochs=1, steps_per_epoch=1,
                            out_dir=tmp_path / "single", export_formats=(), verbose=0)
    distributed = keras.models.load_model(run_dir / "model.keras")
    differences = [float(np.abs(a - b).max())
                   for a, b in zip(values(single.model), values(distributed))]
    assert len(differences) == len(values(distributed))
    assert max(differences) < 1e-5, max(differences)


def test_multi_worker_without_a_cluster_is_an_argument_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    out = tmp_path / "run"
    assert cli.main(["train", "dcgan", "--strategy", "multi_worker", "--out", str(out)]) == 2
    assert "--strategy multi_worker needs the cluster: set TF_CONFIG" in capsys.readouterr().err
    assert not out.exists()
    for bad, message in [("{", "not valid JSON"), ('{"cluster": {}}', "no cluster with workers"),
                         ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
                          '"index": 1}}', "is not in its cluster")]:
        with pytest.raises(ValueError, match=message):
            cluster.read_tf_config({"TF_CONFIG": bad})
    assert cluster.is_chief("worker", 0, {"worker": ["a:1", "b:1"]})
    assert not cluster.is_chief("worker", 0, {"chief": ["c:1"], "worker": ["a:1"]})


def test_workers_compare_their_resume_points(mirrored_strategy, monkeypatch):
    from kerasgen import distribute

    assert distribute.gather_from_replicas(mirrored_strategy, 3) == [3, 3]
    # A second worker that sees no checkpoint where the chief resumes from epoch 2:
    monkeypatch.setattr(training, "gather_from_replicas", lambda strategy, value: [2, 0])
    with pytest.raises(ValueError, match="resume runs/x from different epochs"):
        training._check_same_start(mirrored_strategy, 2, "runs/x")
