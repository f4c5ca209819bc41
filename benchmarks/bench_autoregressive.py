"""Autoregressive and recurrent generative models on dynamically binarized MNIST (gated
PixelCNN, Row LSTM, Diagonal BiLSTM, DRAW): test NLL against training time, and PixelCNN
sampling speed three ways.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_autoregressive.py train \
        [--model pixelcnn|row_lstm|diagonal_bilstm|draw] [--curve-images 1000] \
        [--curve-k 1] [--final-k K] [--epochs N] [--batch-size B] \
        [--out benchmarks/results]
    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_autoregressive.py checkpoints \
        RUN_DIR [--curve-images 1000] [--curve-k 1] [--every 1]
    python benchmarks/bench_autoregressive.py speed [--batch-size 16] [--repeats 3]

`train` runs the preset to its end (or to `--epochs`, its learning-rate schedule stretched to
them; `--batch-size` replaces the preset's batch) in a resumable run folder
(`OUT/<model>_mnist`; run it again after an interruption),
evaluates the NLL of the first `--curve-images` test images after every epoch (`curve.jsonl`:
steps, wall seconds, process CPU seconds, NLL) and of all 10,000 at the end, binarised once with
seed 0 (the VAE benchmark's test set). The PixelCNN's NLL is exact; DRAW's is
importance-sampled, k = `--curve-k` per epoch (1: the negative ELBO, the DRAW paper's bound) and
`--final-k` at the end (default: the model's, 100). `checkpoints` makes the same curve
afterwards from the epoch checkpoints of a run trained with `kerasgen train`, its times read
from the checkpoints' modification times (wall clock only). Anchors (nats): PixelCNN 81.30, Row
LSTM 80.54, Diagonal BiLSTM 79.20 (van den Oord et al. 2016, table 4); DRAW <= 80.97, without
attention <= 87.40 (Gregor et al. 2015, table 2); the VAE / IWAE rows of `bench_vae.py`.

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

ANCHORS = {"PixelCNN": 81.30, "Row LSTM": 80.54, "Diagonal BiLSTM": 79.20, "DRAW": 80.97,
           "DRAW without attention": 87.40}


class LikelihoodCurve(keras.callbacks.Callback):
    """Appends `{"epoch", "steps", "wall_s", "cpu_s", "nll"}` to `path` after every epoch:
    the NLL of fixed binarised test images (k = `num_samples` importance samples for latent
    variable models; exact models ignore it). Times count from the first epoch of this
    process, plus what earlier processes of a resumed run logged."""

    def __init__(self, path, images, num_samples=1):
        super().__init__()
        self.path = Path(path)
        self.images = images
        self.num_samples = num_samples
        earlier = self.read(self.path)
        self.offset_wall = earlier[-1]["wall_s"] if earlier else 0.0
        self.offset_cpu = earlier[-1]["cpu_s"] if earlier else 0.0

    @staticmethod
    def read(path):
        path = Path(path)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() \
            else []

    def estimate(self):
        report = self.model.log_likelihood_report(self.images, num_samples=self.num_samples)
        return {"nll": report["nll"], "exact": bool(report.get("exact"))}

    def on_train_begin(self, logs=None):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, "steps": int(self.model.optimizer.iterations),
               "wall_s": self.offset_wall + time.perf_counter() - self.wall,
               "cpu_s": self.offset_cpu + time.process_time() - self.cpu,
               "train_loss": float(logs["loss"]),
               **self.estimate()}
        with self.path.open("a") as file:
            file.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)


def train(args):
    run_dir = Path(args.out) / f"{args.model}_mnist"
    images, _ = kg_data.load_arrays("mnist", "test")
    curve_path = run_dir / "curve.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    curve = LikelihoodCurve(curve_path, images[:args.curve_images], args.curve_k)
    training.train(args.model, out_dir=run_dir, epochs=args.epochs,
                   batch_size=args.batch_size, verbose=2, callbacks=[curve])
    report = evaluation.evaluate_likelihood(run_dir, num_importance_samples=args.final_k)
    write_table(args, run_dir, LikelihoodCurve.read(curve_path), report,
                Path(args.out) / f"{args.model}.md")


def checkpoints(args):
    """The curve of a finished `kerasgen train` run, from its epoch checkpoints."""
    run_dir = Path(args.run_dir)
    images, _ = kg_data.load_arrays("mnist", "test")
    start = (run_dir / training.RUN_CONFIG).stat().st_mtime  # written when the run began
    steps_per_epoch = training.read_run_config(run_dir)["steps_per_epoch"]
    rows, model = [], None
    for path in sorted((run_dir / "checkpoints").glob("epoch_*.keras"))[::args.every]:
        # One model, its weights replaced: its compiled functions are traced once.
        if model is None:
            model = keras.models.load_model(path)
        else:
            model.load_weights(path)
        epoch = int(path.stem.split("_")[1])
        curve_report = model.log_likelihood_report(images[:args.curve_images],
                                                   num_samples=args.curve_k)
        rows.append({"epoch": epoch, "steps": epoch * steps_per_epoch,
                     "wall_s": path.stat().st_mtime - start, "cpu_s": None, "train_loss": None,
                     "nll": curve_report["nll"], "exact": bool(curve_report.get("exact"))})
        print(json.dumps(rows[-1]), flush=True)
    report = json.loads((run_dir / evaluation.LIKELIHOOD_REPORT).read_text()) if \
        (run_dir / evaluation.LIKELIHOOD_REPORT).exists() else None
    write_table(args, run_dir, rows, report, run_dir / "curve.md")


def write_table(args, run_dir, rows, report, path):
    config = training.read_run_config(run_dir)
    number = lambda value, digits: "-" if value is None else f"{value:.{digits}f}"  # noqa: E731
    estimate = "exact NLL" if rows[-1].get("exact", True) else (
        f"NLL k={args.curve_k} per epoch" + (" (the negative ELBO)" if args.curve_k == 1 else ""))
    lines = [
        f"{config['model']} on {os.cpu_count()} CPU cores ({platform.machine()}), batch "
        f"{config['batch_size']}, {rows[-1]['steps']} steps; dynamically binarized MNIST; "
        f"{estimate} in nats, test images binarised once (seed 0).", "",
        f"| epoch | steps | wall min | CPU min | train loss | NLL (first {args.curve_images}) |",
        "|---|---|---|---|---|---|",
        *(f"| {row['epoch']} | {row['steps']} | {row['wall_s'] / 60:.1f} | "
          f"{number(row['cpu_s'] and row['cpu_s'] / 60, 1)} | {number(row['train_loss'], 2)} | "
          f"{row['nll']:.2f} |" for row in rows), ""]
    if report is not None:
        bound = "" if report.get("exact") else (
            f", k={report['num_samples']}; negative ELBO {report['negative_elbo']:.2f}")
        lines.append(f"{report['num_images']} test images: NLL {report['nll']:.2f} nats "
                     f"({report['bits_per_dim']:.4f} bits/dim{bound}).")
    lines.append("Anchors: " + ", ".join(f"{name} {value}" for name, value in ANCHORS.items())
                 + ".")
    text = "\n".join(lines)
    print(text)
    path.write_text(text + "\n")


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
    parser.add_argument("command", choices=["train", "checkpoints", "speed"])
    parser.add_argument("run_dir", nargs="?", help="checkpoints: a finished run folder")
    parser.add_argument("--model", default="pixelcnn")
    parser.add_argument("--curve-images", type=int, default=1000)
    parser.add_argument("--epochs", type=int,
                        help="train: total epochs (default: the preset's)")
    parser.add_argument("--curve-k", type=int, default=1,
                        help="importance samples per epoch (latent-variable models)")
    parser.add_argument("--every", type=int, default=1,
                        help="checkpoints: evaluate every N-th epoch checkpoint")
    parser.add_argument("--final-k", type=int,
                        help="importance samples at the end (default: the model's)")
    parser.add_argument("--batch-size", type=int,
                        help="train: the batch (default: the preset's); speed: images sampled "
                             "at once (default: 16)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    if (args.command == "checkpoints") != (args.run_dir is not None):
        raise SystemExit("A run folder is what `checkpoints` takes, and only it.")
    if args.command == "speed" and args.batch_size is None:
        args.batch_size = 16
    for name in ("curve_images", "curve_k", "every", "batch_size", "repeats"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
    {"train": train, "checkpoints": checkpoints, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
