"""Training speed of every family: images/s in float32 and bf16, share of the CPU's peak.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_speed.py \
        [--models dcgan dncnn ...] [--steps 20] [--warmup 5] [--repeats 3] \
        [--precisions float32 bf16] [--out benchmarks/results]

For each model (its preset as shipped: size, batch, data pipeline), `kerasgen.training.train`
runs `--warmup` + `--steps` steps per repeat; the repeats interleave the precisions (float32,
bf16, float32, bf16, ...) so that a change in the machine's load hits both alike, and the
median is reported. Images/s counts the training images one step consumes.

Share of peak: the FLOPs of one training step (TensorFlow's op statistics of the traced
`train_step`: convolutions, their two backward products, matrix products, element-wise ops),
per second, over the peak: the float32 GFLOP/s of the best of a few
large 3x3 convolutions on this CPU, measured first.

`--profile MODEL ...` first traces those models' float32 steps with TensorFlow's profiler and
reads the trace: the share of op time in convolutions, batch norm, matrix products and the rest,
how busy the ops keep the cores (the remainder is per-step Python and waiting), and the input
pipeline's own rate beside the rate training consumes (OUT/profile.md). `--models` with no
names skips the table.

Writes OUT/speed.md and prints it. Not part of the test suite; the figures are in the README.
"""

import argparse
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgen import precision, training  # noqa: E402
from kerasgen.registry import get_preset  # noqa: E402

# Tiny data where a preset's own data is not in the package (the speed does not depend on
# which images are used).
DEFAULT_MODELS = ("dcgan", "cgan", "wgan_gp", "vae", "dncnn", "ffdnet", "fsrcnn", "edsr",
                  "cyclegan", "pix2pix", "pconv_unet", "zero_dce", "lowlight_unet", "ddpm",
                  "pixelcnn", "draw")
# 3x3 convolutions (batch, height, width, channels in = out) as DnCNN and the U-Nets run them.
PEAK_SHAPES = ((64, 40, 40, 64), (16, 64, 64, 64), (8, 32, 32, 128))


def conv_gflops(shape, dtype="float32", repeats=20):
    """GFLOP/s of one 3x3 'same' convolution of `shape` (median of `repeats` timed calls)."""
    batch, height, width, channels = shape
    images = tf.random.normal(shape, dtype=dtype)
    kernel = tf.random.normal((3, 3, channels, channels), dtype=dtype)
    convolve = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
    convolve(images, kernel).numpy()  # trace and warm up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        convolve(images, kernel).numpy()
        timings.append(time.perf_counter() - start)
    return 2 * 9 * channels * channels * height * width * batch / statistics.median(timings) / 1e9


class StepTimer(keras.callbacks.Callback):
    """Times the batches after the first `warmup` (tracing, caches)."""

    def __init__(self, warmup):
        super().__init__()
        self.warmup = warmup
        self.times = []

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter())

    def seconds_per_step(self):
        timed = self.times[self.warmup:]
        return (timed[-1] - timed[0]) / (len(timed) - 1)


def training_flops(model, batch):
    """FLOPs of one traced `train_step` on `batch`: TensorFlow's op statistics count the
    forward products and their backward ones (Conv2DBackpropInput/Filter)."""
    from tensorflow.python.profiler import model_analyzer, option_builder

    concrete = tf.function(model.train_step).get_concrete_function(batch)
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()).with_empty_output().build()
    return model_analyzer.profile(concrete.graph, options=options).total_float_ops


def batch_images(batch):
    """Training images in one batch (the first tensor's leading size)."""
    first = tf.nest.flatten(batch)[0]
    return int(first.shape[0])


def trained_model(name, run_precision, steps, data_dir, callbacks=()):
    """A preset's model after `steps` training steps (`kerasgen.training.train`)."""
    with tempfile.TemporaryDirectory() as scratch:
        return training.train(
            name, epochs=1, steps_per_epoch=steps, out_dir=Path(scratch) / "run",
            export_formats=(), verbose=0, callbacks=list(callbacks), precision=run_precision,
            data_dir=data_dir).model


def training_batches(name, model, data_dir):
    """The preset's (endless) training data for `model`, as `train` makes it."""
    preset = get_preset(name)
    config = {"model": name, "dataset": preset.dataset, "image_size": preset.image_size,
              "batch_size": preset.batch_size, "steps_per_epoch": 1, "seed": 0, "epochs": 1}
    source = preset.task.load(preset, config, data_dir)
    return preset.task.training_data(model, config, source, data_dir)[0]


def measure(name, run_precision, steps, warmup, data_dir, flops_cache):
    """`(images/s, training GFLOP/s or None)` of one short run."""
    timer = StepTimer(warmup)
    model = trained_model(name, run_precision, warmup + steps + 1, data_dir, [timer])
    seconds = timer.seconds_per_step()
    if name not in flops_cache:  # the data is loaded again only for the first run's FLOPs
        batch = next(iter(training_batches(name, model, data_dir)))
        flops_cache[name] = (training_flops(model, batch), batch_images(batch))
    flops, images = flops_cache[name]
    return images / seconds, (flops / seconds / 1e9 if flops else None)


CONVOLUTIONS = ("Conv2D", "_FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
                "DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput",
                "DepthwiseConv2dNativeBackpropFilter", "Conv2DTranspose")
MATRIX_PRODUCTS = ("MatMul", "BatchMatMulV2", "Einsum")


def op_times(xplane_path):
    """`{(op name, op type): seconds}` summed over TensorFlow's compute threads, and the
    seconds of the tf.data threads, from a profiler trace (`.xplane.pb`)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(xplane_path).read_bytes())
    ops, pipeline = {}, 0.0
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                seconds = event.duration_ps / 1e12
                if line.name.startswith("tf_data"):
                    pipeline += seconds
                elif line.name.startswith("tf_Compute") and ":" in name and "::" not in name:
                    # "scope/op_name:OpType"; the executor's own events have no type.
                    op_name, op_type = name.rsplit(":", 1)
                    ops[op_name, op_type] = ops.get((op_name, op_type), 0.0) + seconds
    return ops, pipeline


def normalization_layers(model):
    """Names of the model's normalization layers (batch, instance, group, layer norm)."""
    from kerasgen.layers import InstanceNormalization

    kinds = (keras.layers.BatchNormalization, keras.layers.GroupNormalization,
             keras.layers.LayerNormalization, InstanceNormalization)
    return {layer.name for layer in model._flatten_layers(recursive=True)
            if isinstance(layer, kinds)}


def profile(name, steps, data_dir):
    """Where one training step's time goes: a profiler trace of `steps` steps (after a
    warm-up run), the data pipeline alone, and the FLOP rate. Returns a dict."""
    model = trained_model(name, "float32", 3, data_dir)
    data = training_batches(name, model, data_dir)
    iterator = iter(data)
    next(iterator)
    start = time.perf_counter()
    images = sum(batch_images(next(iterator)) for _ in range(steps))
    pipeline_rate = images / (time.perf_counter() - start)
    batch = next(iterator)
    flops = training_flops(model, batch)
    model.fit(data, epochs=1, steps_per_epoch=2, verbose=0)  # trace the fit function
    timer = StepTimer(1)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(data, epochs=1, steps_per_epoch=steps + 1, verbose=0, callbacks=[timer])
        tf.profiler.experimental.stop()
        ops, pipeline_seconds = op_times(next(Path(logdir).rglob("*.xplane.pb")))
    seconds = timer.seconds_per_step()
    total = sum(ops.values())
    norms = normalization_layers(model)

    def group(op_name, op_type):
        if op_type in CONVOLUTIONS:
            return "convolutions (forward and backward)"
        if op_type in MATRIX_PRODUCTS:
            return "matrix products"
        # Scopes are layer names, suffixed "_1" where a network is called again.
        if {re.sub(r"_\d+$", "", part) for part in op_name.split("/")} & norms:
            return "normalization layers (forward and backward)"
        if "Adam" in op_name or "/optimizer" in op_name.lower():
            return "optimizer updates"
        return "other ops (activations, losses, noise, metrics)"

    shares = {}
    by_type = {}
    for (op_name, op_type), op_seconds in ops.items():
        key = group(op_name, op_type)
        shares[key] = shares.get(key, 0.0) + op_seconds / total
        by_type[op_type] = by_type.get(op_type, 0.0) + op_seconds
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    return {
        "model": name, "batch": batch_images(batch), "seconds_per_step": seconds,
        "images_per_second": batch_images(batch) / seconds,
        "pipeline_images_per_second": pipeline_rate,
        "gflops_per_second": flops / seconds / 1e9,
        # Op time over the cores' time: the rest is per-step Python, host syncs and idle.
        "busy": total / (threads * seconds * (steps + 1)),
        "shares": shares,
        "top_ops": [(op, op_seconds / (steps + 1))
                    for op, op_seconds in sorted(by_type.items(), key=lambda item: -item[1])[:8]],
        "op_seconds_per_step": total / (steps + 1),
        "pipeline_thread_seconds_per_step": pipeline_seconds / (steps + 1),
    }


def profile_lines(report, peak):
    """Markdown lines of a `profile` report."""
    lines = [
        f"**{report['model']}** (batch {report['batch']}): {report['seconds_per_step']:.3f} s "
        f"per step, {report['images_per_second']:.1f} images/s; {report['gflops_per_second']:.1f}"
        f" GFLOP/s = {100 * report['gflops_per_second'] / peak:.0f} % of the float32 peak; the "
        f"input pipeline alone delivers {report['pipeline_images_per_second']:.0f} images/s "
        f"({report['pipeline_images_per_second'] / report['images_per_second']:.0f}x what "
        f"training consumes); ops keep the cores {100 * report['busy']:.0f} % busy.",
        "",
        "| where the op time goes | share |",
        "|---|---|",
    ]
    lines += [f"| {group} | {100 * share:.1f} % |"
              for group, share in sorted(report["shares"].items(), key=lambda item: -item[1])]
    lines += ["", "Top ops (thread-seconds per step): " + ", ".join(
        f"{op} {seconds:.3f}" for op, seconds in report["top_ops"]) + "; tf.data threads "
        f"{report['pipeline_thread_seconds_per_step']:.3f}.", ""]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=["float32", "bf16"],
                        choices=["float32", "bf16"])
    parser.add_argument("--profile", nargs="*", default=[], metavar="MODEL",
                        help="also trace these models' training steps (e.g. dncnn cyclegan) "
                             "and say where the time goes")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    if args.steps < 2 or args.warmup < 1 or args.repeats < 1:
        parser.error("--steps must be at least 2, --warmup and --repeats at least 1")

    peak = max(conv_gflops(shape) for shape in PEAK_SHAPES)
    peak_bf16 = max(conv_gflops(shape, "bfloat16") for shape in PEAK_SHAPES)
    native = ", ".join(precision.native_bf16_devices() or ["none"])
    native += f" (`--precision auto` picks {precision.resolve('auto')})"
    print(f"peak 3x3 convolution: float32 {peak:.1f} GFLOP/s, bfloat16 {peak_bf16:.1f} GFLOP/s; "
          f"native bf16: {native}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        lines = []
        for name in args.profile:
            lines += profile_lines(profile(name, args.steps, args.data_dir), peak)
            print("\n".join(lines), flush=True)
        (out / "profile.md").write_text("\n".join(lines) + "\n")
    if not args.models:
        return
    rows = []
    flops_cache = {}
    for name in args.models:
        samples = {run_precision: [] for run_precision in args.precisions}
        for _ in range(args.repeats):
            for run_precision in args.precisions:
                samples[run_precision].append(measure(name, run_precision, args.steps,
                                                      args.warmup, args.data_dir, flops_cache))
        medians = {key: (statistics.median(s for s, _ in values),
                         statistics.median(g for _, g in values) if values[0][1] else None)
                   for key, values in samples.items()}
        rows.append((name, medians))
        print(name, {key: f"{value[0]:.1f} images/s" for key, value in medians.items()},
              flush=True)

    lines = [
        f"{os.cpu_count()} CPU cores ({platform.machine()}, {platform.processor() or 'cpu'}); "
        f"peak 3x3 convolution float32 {peak:.1f} GFLOP/s, bfloat16 {peak_bf16:.1f} GFLOP/s; "
        f"native bf16: {native}. Median of {args.repeats} interleaved repeats of "
        f"{args.steps} steps after {args.warmup} warm-up steps; presets' sizes and batches.",
        "",
        "| model | " + " | ".join(f"{p} images/s" for p in args.precisions)
        + (" | bf16 / float32" if len(args.precisions) == 2 else "")
        + " | training GFLOP/s (float32) | share of float32 peak |",
        "|---|" + "---|" * (len(args.precisions) + (len(args.precisions) == 2) + 2),
    ]
    for name, medians in rows:
        cells = [f"{medians[p][0]:.1f}" for p in args.precisions]
        if len(args.precisions) == 2:
            cells.append(f"{medians['bf16'][0] / medians['float32'][0]:.2f}x")
        gflops = medians.get("float32", (None, None))[1]
        cells += ([f"{gflops:.1f}", f"{100 * gflops / peak:.0f} %"] if gflops else ["", ""])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    (out / "speed.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
