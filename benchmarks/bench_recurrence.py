"""Does recurrence buy quality per parameter and per CPU-minute? (issue: the RCNN row)

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_recurrence.py \
        [--out benchmarks/results/recurrence] [--steps 600] [--groups sr denoise]

Trains the recurrent networks and their feed-forward peers for the SAME number of steps at the
same batch size (`--steps`; the preset's data, patch size and learning rate), then reports for
each: parameters, FLOPs per output pixel (TensorFlow's profiler on a 96x96 output), training
steps per second and CPU-minutes, LiteRT fp32 latency on the first test image, and PSNR/SSIM
by the papers' protocols (SR: Set5/Set14 x3, Y channel; denoising: BSD68 sigma 25).

Groups:
    sr       DRRN B1U9 (weights shared by 9 units) vs ESPCN, FSRCNN, EDSR-baseline
    denoise  the PReNet-style recurrent denoiser (one stage x4, ConvLSTM state) vs DnCNN-S

Run folders are reused: a finished run is evaluated as it is. Prints a Markdown table and writes
OUT/recurrence.md and OUT/recurrence.json. Not part of the test suite.
"""

import argparse
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import tensorflow as tf  # noqa: E402

from bench_restoration import ANCHORS, latency, train  # noqa: E402
from kerasgen.models.restoration import evaluation  # noqa: E402

GROUPS = {
    "sr": (["drrn", "espcn", "fsrcnn", "edsr"], [("Set5", None, 3), ("Set14", None, 3)]),
    "denoise": (["recurrent_denoiser", "dncnn"], [("BSD68", 25.0, None)]),
}
RECURRENT = {"drrn", "recurrent_denoiser"}
EPOCH = 100  # steps per epoch (one checkpoint each)


def flops_per_pixel(model, side=96):
    """Float operations of one forward pass per output pixel, on a `side` x `side` output."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    size = side // model.scale
    spec = tf.TensorSpec([1, size, size, model.network.inputs[0].shape[-1]], tf.float32)
    function = tf.function(lambda images: model.network(images)).get_concrete_function(spec)
    graph = convert_variables_to_constants_v2(function).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    total = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    return total / (size * model.scale) ** 2


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", default=sorted(GROUPS), choices=sorted(GROUPS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="benchmarks/results/recurrence")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    if args.steps < EPOCH or args.steps % EPOCH:
        parser.error(f"--steps must be a positive multiple of {EPOCH} (one checkpoint per "
                     f"{EPOCH} steps), got {args.steps}.")
    out = Path(args.out)
    rows = []
    for group in args.groups:
        names, sets = GROUPS[group]
        for name in names:
            model, timing = train(name, {}, args.steps // EPOCH, out / name, EPOCH)
            tflite = out / name / f"{model.network.name}.tflite"
            common = {
                "model": name, "recurrent": name in RECURRENT,
                "params": model.network.count_params(), "flops_per_pixel": flops_per_pixel(model),
                "steps": timing["steps"], "steps_per_s": timing["steps"] / timing["wall_s"],
                "cpu_min": timing["cpu_s"] / 60}
            for dataset, sigma, scale in sets:
                report = evaluation.evaluate_restoration(model, dataset, sigma=sigma, scale=scale,
                                                         data_dir=args.data_dir)
                ms, _, size = latency(model, tflite, dataset, scale, args.data_dir)
                rows.append({**common, "dataset": dataset,
                             "setting": f"sigma={sigma:g}" if sigma is not None else f"x{scale}",
                             "psnr": report["psnr"], "ssim": report["ssim"], "latency_ms": ms,
                             "image_size": f"{size[0]}x{size[1]}",
                             "anchor": ANCHORS.get((dataset, sigma, scale), "")})
                print(rows[-1], flush=True)
    hardware = f"{os.cpu_count()} CPU cores ({platform.machine()}), TensorFlow CPU"
    lines = [f"{hardware}; every model {args.steps} steps at its preset's batch size.", "",
             "| model | recurrent | set | params | MFLOPs / px | steps/s | CPU-min | PSNR (dB) | "
             "SSIM | LiteRT fp32 ms (input) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['model']} | {'yes' if row['recurrent'] else 'no'} | {row['dataset']} "
            f"{row['setting']} | {row['params']:,} | {row['flops_per_pixel'] / 1e6:.3f} | "
            f"{row['steps_per_s']:.2f} | {row['cpu_min']:.1f} | {row['psnr']:.2f} | "
            f"{row['ssim']:.4f} | {row['latency_ms']:.1f} ({row['image_size']}) |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recurrence.md").write_text(table + "\n")
    (out / "recurrence.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
