"""Gated PixelCNN on dynamically binarized MNIST: exact test NLL against training time, and
sampling speed (one network pass per pixel) three ways.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_autoregressive.py train \
        [--model pixelcnn] [--curve-images 1000] [--out benchmarks/results]
    python benchmarks/bench_autoregressive.py speed [--batch-size 16] [--repeats 3]

`train` runs the preset to its end in a resumable run folder (`OUT/<model>_mnist`; run it again
after an interruption), evaluates the exact NLL of the first `--curve-images` test images
after every epoch (`curve.jsonl`: steps, wall seconds, process CPU seconds, NLL) and of all
10,000 at the end, binarised once with seed 0 (the VAE benchmark's test set). Anchors (nats):
PixelCNN 81.30, Row LSTM 80.54, Diagonal BiLSTM 79.20 (van den Oord et al. 2016, table 4),
the VAE / IWAE rows of `bench_vae.py`.

`speed` times sampling at the preset's size: a Python loop calling the network eagerly per
pixel, then the `tf.while_loop`s of `PixelCNN.sample_loop`: the whole network on the whole
canvas, on the rows up to the current one, and the row cache (the vertical stack once per row,
the horizontal stack on one row per pixel; the default). Not part of the test suite.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgen import data as kg_data  # noqa: E402
from kerasgen import evaluation, registry, training  # noqa: E402
from kerasgen.models.autoregressive.pixelcnn import SAMPLING_METHODS  # noqa: E402
from kerasgen.models.base import seeded_draws  # noqa: E402

ANCHORS = {"PixelCNN": 81.30, "Row LSTM": 80.54, "Diagonal BiLSTM": 79.20}


class LikelihoodCurve(keras.callbacks.Callback):
    """Appends `{"epoch", "steps", "wall_s", "cpu_s", "nll"}` to `path` after every epoch:
    the exact NLL of fixed binarised test images. Times count from the first epoch of this
    process, plus what earlier processes of a resumed run logged."""

    def __init__(self, path, images):
        super().__init__()
        self.path = Path(path)
        self.images = images
        earlier = self.read(self.path)
        self.offset_wall = earlier[-1]["wall_s"] if earlier else 0.0
        self.offset_cpu = earlier[-1]["cpu_s"] if earlier else 0.0

    @staticmethod
    def read(path):
        path = Path(path)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
            else []

    def on_train_begin(self, logs=None):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "steps": int(self.model.optimizer.iterations),
               "wall_s": self.offset_wall + time.perf_counter() - self.wall,
               "cpu_s": self.offset_cpu + time.process_time() - self.cpu,
               "train_loss": float(logs["loss"]),
               "nll": self.model.log_likelihood_report(self.images)["nll"]}
        with self.path.open("a") as file:
            file.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def train(args):
    run_dir = Path(args.out) / f"{args.model}_mnist"
    images, _ = kg_data.load_arrays("mnist", "test")
    curve_path = run_dir / "curve.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    curve = LikelihoodCurve(curve_path, images[:args.curve_images])
    training.train(args.model, out_dir=run_dir, verbose=2, callbacks=[curve])
    report = evaluation.evaluate_likelihood(run_dir)
    rows = LikelihoodCurve.read(curve_path)
    config = training.read_run_config(run_dir)
    lines = [
        f"{args.model} on {os.cpu_count()} CPU cores ({platform.machine()}), batch "
        f"{config['batch_size']}, {rows[-1]['steps']} steps; dynamically binarized MNIST; "
        "exact NLL in nats, test images binarised once (seed 0).", "",
        f"| epoch | steps | wall min | CPU min | train loss | NLL (first {args.curve_images}) |",
        "|---|---|---|---|---|---|",
        *(f"| {row['epoch']} | {row['steps']} | {row['wall_s'] / 60:.1f} | "
          f"{row['cpu_s'] / 60:.1f} | {row['train_loss']:.2f} | {row['nll']:.2f} |"
          for row in rows),
        "", f"All {report['num_images']} test images: NLL {report['nll']:.2f} nats "
        f"({report['bits_per_dim']:.4f} bits/dim). Anchors: "
        + ", ".join(f"{name} {value}" for name, value in ANCHORS.items()) + "."]
    text = "\n".join(lines)
    print(text)
    (Path(args.out) / f"{args.model}.md").write_text(text + "\n")


def speed(args):
    preset = registry.get_preset(args.model)
    model = preset.build((28, 28, 1), seed=0, **preset.model_kwargs)
    seeds = tf.range(args.batch_size, dtype=tf.int32)
    height, width, _ = model.image_shape

    def eager_loop():
        noise = seeded_draws(seeds, model.image_shape, distribution="uniform").numpy()
        canvas = np.zeros((args.batch_size, *model.image_shape), np.float32)
        for index in range(height * width):
            row, column = divmod(index, width)
            logits = model.network(canvas, training=False)[:, row, column]
            canvas[:, row, column] = model.draw(logits, noise[:, row, column]).numpy()
        return canvas

    def graph_loop(method):
        @tf.function
        def sample(seeds):
            noise = seeded_draws(seeds, model.image_shape, distribution="uniform")
            return model.sample_loop(noise, None, tf.zeros_like(noise), 0, method=method)
        return lambda: sample(seeds).numpy()

    ways = {"eager Python loop, whole canvas": eager_loop,
            **{f"tf.while_loop, {method}": graph_loop(method)
               for method in reversed(SAMPLING_METHODS)}}
    results, reference = {}, None
    for name, function in ways.items():
        output = function()  # warm-up (traces the graph)
        if reference is None:
            reference = output
        same = bool(np.array_equal(output, reference))
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            function()
            timings.append(time.perf_counter() - start)
        results[name] = (float(np.median(timings)), same)
    base = results["eager Python loop, whole canvas"][0]
    print(f"{args.model}: {model.network.count_params():,} weights, batch {args.batch_size}, "
          f"{height * width} passes per batch, median of {args.repeats} on {os.cpu_count()} "
          "cores\n\n| sampler | s per batch | samples/s | speed-up | same images |\n"
          "|---|---|---|---|---|")
    for name, (seconds, same) in results.items():
        print(f"| {name} | {seconds:.1f} | {args.batch_size / seconds:.2f} | "
              f"{base / seconds:.1f}x | {same} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["train", "speed"])
    parser.add_argument("--model", default="pixelcnn")
    parser.add_argument("--curve-images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    for name in ("curve_images", "batch_size", "repeats"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got "
                             f"{getattr(args, name)}.")
    {"train": train, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
