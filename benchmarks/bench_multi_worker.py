"""The cost model of data-parallel training, measured: per-family step time, the all-reduce
volume per step, and 1 against 2 loopback workers (`--strategy multi_worker`).

Every synchronous step all-reduces one float32 gradient per trainable weight, so a step moves
`parameters x 4 bytes` per worker (a ring all-reduce sends and receives about twice that over
the cluster). With a step time `t1` on one worker, N workers of the same kind take about
`t1 / N + 2 (N - 1) / N x bytes / bandwidth` per global step; this script measures `t1`, the
bytes, and the 2-worker step on this machine's loopback.

    python benchmarks/bench_multi_worker.py [--models dcgan dncnn ...] [--steps 8]
        [--workers-for dcgan dncnn]

Needs $KERASGEN_DATA_DIR for the presets that train on MNIST / Train400 / T91. Prints a
Markdown table. Not part of the test suite.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen import cluster  # noqa: E402 (no TensorFlow)

FAMILIES = ["dcgan", "cgan", "wgan_gp", "vae", "dncnn", "fsrcnn", "edsr", "cyclegan", "pix2pix"]


def step_times(model_name, steps, strategy=None, batch_size=None):
    """Median seconds per step of the preset's own training (second epoch: traced), and the
    number of trainable parameters."""
    import keras

    from kerasgen import training

    stamps = []

    class Stamp(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            stamps.append(time.perf_counter())

        def on_epoch_begin(self, epoch, logs=None):
            stamps.clear()
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as run_dir:
        result = training.train(model_name, epochs=2, steps_per_epoch=steps, out_dir=run_dir,
                                export_formats=(), verbose=0, callbacks=[Stamp()],
                                strategy=strategy, batch_size=batch_size)
        parameters = sum(int(keras.ops.size(w)) for w in result.model.trainable_weights)
    batch = batch_size or training.get_preset(model_name).batch_size
    return statistics.median(b - a for a, b in zip(stamps, stamps[1:])), parameters, batch


def two_workers(model_name, steps, batch_size):
    """The chief's median step time with 2 loopback workers at the same global batch."""
    workers = [f"127.0.0.1:{port}" for port in cluster.free_loopback_ports(2)]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, __file__, "--worker", model_name, "--steps", str(steps),
             "--batch-size", str(batch_size)],
            env={**os.environ, "TF_CONFIG": json.dumps(config)}, stdout=subprocess.PIPE,
            text=True))
    outputs = [process.communicate(timeout=1800)[0] for process in processes]
    return json.loads(outputs[0].strip().splitlines()[-1])["step_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=FAMILIES)
    parser.add_argument("--workers-for", nargs="*", default=["dcgan", "dncnn"])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # a worker process of two_workers
    parser.add_argument("--batch-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        from kerasgen import distribute

        strategy = distribute.make_strategy("multi_worker")
        seconds, _, _ = step_times(args.worker, args.steps, strategy, args.batch_size)
        print(json.dumps({"step_s": seconds}))
        return
    print(f"{os.cpu_count()} CPUs; {args.steps} timed steps per run (second epoch), median\n")
    print("| model | batch | trainable params | all-reduce per step | step, 1 process | "
          "images/s | step, 2 loopback workers | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        seconds, parameters, batch = step_times(name, args.steps)
        row = (f"| {name} | {batch} | {parameters:,} | {parameters * 4 / 1e6:.2f} MB | "
               f"{seconds * 1000:.0f} ms | {batch / seconds:.0f} |")
        if name in args.workers_for:
            distributed = two_workers(name, args.steps, batch)
            row += f" {distributed * 1000:.0f} ms | {seconds / distributed:.2f}x |"
        else:
            row += " | |"
        print(row, flush=True)


if __name__ == "__main__":
    main()
