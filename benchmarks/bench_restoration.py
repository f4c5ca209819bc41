"""Restoration benchmark: train at a stated CPU budget, evaluate by the papers' protocols.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_restoration.py \
        [--out benchmarks/results/restoration] [--runs dncnn fsrcnn_x3] [--ship] \
        [--epochs N] [--seed S] [--init SHIPPED|RUN]

Each model trains with `kerasgen train` for `--epochs` x 200 steps (a run folder that is
already complete is evaluated as it is), then `kerasgen evaluate` measures PSNR/SSIM on the
standard sets (denoising: KAIR protocol, full image; SR: Y channel, scale-pixel border shaved,
shipped MATLAB LR files), and LiteRT runs the fp32 / int8 TFLite export on one test image per
set for the latency per image. Bicubic rows need no training. BM3D (the `bm3d` package:
`pip install -e ".[peers]"`) denoises the very same noisy images as every denoising row, on the
first `--bm3d-images` images of each set (all by default; about 10 s per 481x321 image on two
cores), and the model is scored on those images beside it (cached in OUT/bm3d.json). `--ship` copies the trained
models into `saved_models/` with a model card each. `--init` fine-tunes: the runs start from
the weights of a shipped model (or a run), and the card adds that model's own training budget
(from its `metrics.json`) to the fine-tuning's. Prints a Markdown table and writes it to
OUT/restoration.md (and OUT/restoration.json). Not part of the test suite.

Anchors (dB): BSD68 sigma 25: BM3D 28.57, DnCNN-S 29.23; Set12 sigma 25: BM3D 29.97, DnCNN-S
30.44; x3 Set5/Set14: bicubic 30.39/27.55, FSRCNN 33.18/29.37, EDSR 34.65/30.52.
"""

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kerasgen import export, registry, store, training  # noqa: E402
from kerasgen.data import restoration as rdata  # noqa: E402
from kerasgen.models.restoration import evaluation  # noqa: E402

STEPS_PER_EPOCH = 200
# run name -> (registered model, model options, epochs of 200 steps, shipped name, benchmark
# sets as (dataset, sigma, scale)).
PLAN = {
    "dncnn": ("dncnn", {}, 7, "dncnn_grey_s25", [("BSD68", 25.0, None), ("Set12", 25.0, None)]),
    "ffdnet": ("ffdnet", {}, 7, "ffdnet_grey", [(name, sigma, None) for sigma in (15.0, 25.0, 50.0)
                                                for name in ("BSD68", "Set12")]),
    # x3 got the longer budget (the issue's target); x2 and x4 a shorter one.
    **{f"fsrcnn_x{scale}": ("fsrcnn", {"scale": scale}, 100 if scale == 3 else 30,
                            f"fsrcnn_x{scale}", [("Set5", None, scale), ("Set14", None, scale)])
       for scale in (2, 3, 4)},
    # DRRN B1U9 costs about 400x FSRCNN's CPU per step (its FLOPs are at the HR size).
    "drrn_x3": ("drrn", {}, 5, "drrn_x3", [("Set5", None, 3), ("Set14", None, 3)]),
}
# Published tables (DnCNN paper table 2/3, FFDNet, FSRCNN table 3, EDSR), in dB.
ANCHORS = {("BSD68", 15.0, None): "BM3D 31.07, DnCNN-S 31.73",
           ("BSD68", 25.0, None): "BM3D 28.57, DnCNN-S 29.23",
           ("BSD68", 50.0, None): "BM3D 25.62, DnCNN-S 26.23",
           ("Set12", 15.0, None): "BM3D 32.37, DnCNN-S 32.86",
           ("Set12", 25.0, None): "BM3D 29.97, DnCNN-S 30.44",
           ("Set12", 50.0, None): "BM3D 26.72, DnCNN-S 27.18",
           ("CBSD68", 25.0, None): "CBM3D 30.71, CDnCNN-B 31.23",
           ("Set5", None, 2): "bicubic 33.66, FSRCNN 37.00, EDSR-baseline 37.99",
           ("Set14", None, 2): "bicubic 30.24, FSRCNN 32.63",
           ("Set5", None, 3): "bicubic 30.39, FSRCNN 33.18, EDSR 34.65",
           ("Set14", None, 3): "bicubic 27.55, FSRCNN 29.37, EDSR 30.52",
           ("Set5", None, 4): "bicubic 28.42, FSRCNN 30.71, EDSR-baseline 32.09",
           ("Set14", None, 4): "bicubic 26.00, FSRCNN 27.59"}
TRAIN_TIME = "train_time.json"


def train(model_name, options, epochs, run_dir, steps_per_epoch=STEPS_PER_EPOCH, seed=0,
          init_from=None):
    """Train (or finish) a run; its wall and CPU seconds are kept in RUN/train_time.json."""
    path = run_dir / TRAIN_TIME
    timing = json.loads(path.read_text()) if path.exists() else {"wall_s": 0.0, "cpu_s": 0.0}
    start, cpu_start = time.perf_counter(), time.process_time()
    result = training.train(model_name, epochs=epochs, steps_per_epoch=steps_per_epoch,
                            out_dir=run_dir, export_formats=("tflite",), verbose=2,
                            model_options=options, seed=seed, init_from=init_from)
    steps = int(result.model.optimizer.iterations)
    if steps != timing.get("steps"):  # a finished run reloaded adds no training time
        timing["wall_s"] += time.perf_counter() - start
        timing["cpu_s"] += time.process_time() - cpu_start
    timing["steps"] = steps
    path.write_text(json.dumps(timing, indent=2))
    return result.model, timing


def latency(model, tflite, dataset, scale, data_dir):
    """LiteRT milliseconds per image on the first image of a benchmark set."""
    if scale:
        _, low, _ = rdata.load_sr_pairs(dataset, scale, data_dir)
        image = rdata.as_channels(low[0], model.image_channels)
    else:
        image = rdata.as_channels(rdata.load_images(dataset, data_dir)[0], model.image_channels)
    inputs = [image[None]] + ([np.array([25.0], "float32")] if model.conditioned else [])
    report = export.tflite_parity(tflite, model, inputs=inputs)
    return report["latency_ms"], report["max_abs_diff"], image.shape[:2]


def bm3d_rows(dataset, sigma, data_dir, num_images, cache_path):
    """BM3D's per-image `(psnr, ssim)` on the first `num_images` images of a denoising set, on
    the noisy images the models get (`evaluation.denoising_rows`); cached per set and level."""
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    images = rdata.load_images(dataset, data_dir)[:num_images]
    key = f"{dataset}/sigma={sigma:g}/{len(images)}"
    if key not in cache:
        try:
            import bm3d
        except ImportError:
            raise SystemExit("BM3D rows need the bm3d package: pip install -e \".[peers]\" "
                             "(or pass --bm3d-images 0 to leave them out).") from None

        def denoise(noisy, level):
            if noisy.shape[-1] == 3:
                return bm3d.bm3d_rgb(noisy, level / 255.0)
            return bm3d.bm3d(noisy[..., 0], level / 255.0)[..., None]

        start = time.process_time()
        rows = evaluation.denoising_rows(None, images, sigma, denoise=denoise)
        cache[key] = {"rows": rows, "cpu_s": time.process_time() - start}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        cache_path.write_text(json.dumps(cache, indent=2))
    return cache[key]["rows"], len(images)


def side_by_side(model_row, report, args, out):
    """Table rows of BM3D on the noisy images of `report` (`bm3d_rows`), and of the model on
    the same images when BM3D ran on a subset."""
    dataset, sigma = report["dataset"], report["sigma"]
    peer, count = bm3d_rows(dataset, sigma, args.data_dir, args.bm3d_images,
                            out / "bm3d.json")
    subset = "" if count == report["num_images"] else f" (first {count} images)"
    scored = [("bm3d" + subset, np.mean(peer, axis=0), 0)]
    if subset:
        ours = [(row["psnr"], row["ssim"]) for row in report["rows"][:count]]
        scored.append((model_row["model"] + subset, np.mean(ours, axis=0), model_row["params"]))
    rows = [{"model": name, "dataset": dataset, "setting": model_row["setting"],
             "psnr": float(psnr), "ssim": float(ssim), "params": params, "budget": "-",
             "latency_ms": float("nan"), "image_size": "-", "int8_latency_ms": float("nan"),
             "anchor": model_row["anchor"]} for name, (psnr, ssim), params in scored]
    for row in rows:
        print(row, flush=True)
    return rows


def earlier_training(init_from):
    """`{"from", "steps", "wall_s", "cpu_s"}` of the training behind `--init` (a shipped
    model's `metrics.json`; a run's `train_time.json`), None without `--init`."""
    if init_from is None:
        return None
    folder = store.model_folder(init_from)
    if (folder / TRAIN_TIME).exists():
        timing = json.loads((folder / TRAIN_TIME).read_text())
    else:
        timing = json.loads((folder / "metrics.json").read_text())["training"]
    # A model fine-tuned before carries its whole history in its own figures.
    return {"from": str(init_from), **{key: timing[key] for key in ("steps", "wall_s", "cpu_s")}}


def model_card(name, model_name, epochs, model, timing, rows, hardware, earlier=None):
    preset = registry.get_preset(model_name)
    description = preset.description
    schedule = preset.learning_rate_schedule(epochs=epochs)
    learning_rate = schedule.rate(0)
    if model.scale > 1:
        description = description.replace("x3", f"x{model.scale}")
    lines = [
        f"# {name}", "",
        f"{description}. Load it with `kerasgen.store.load_model({name!r})` or "
        f"`kerasgen restore {name} INPUT... --out DIR`.", "",
        "## Training",
        f"- Data: `{preset.dataset}` (under KERASGEN_DATA_DIR), random patches with flips and "
        "rotations, degraded on the fly.",
        f"- Steps: {timing['steps']} at batch {preset.batch_size} ({epochs} epochs of "
        f"{STEPS_PER_EPOCH}), Adam {learning_rate:g}, {schedule.rate(epochs - 1):g} from epoch "
        f"{math.ceil(schedule.drop_at * epochs) + 1}.",
        f"- Hardware and budget: {hardware}; {timing['wall_s'] / 60:.1f} min wall, "
        f"{timing['cpu_s'] / 60:.1f} CPU-min. No GPU was available: this is a CPU-budget "
        "model, not the paper's full training.",
        *([f"- Fine-tuned: those steps started from the weights of `{earlier['from']}` "
           f"(`--init`; a fresh optimizer), itself trained {earlier['steps']} steps in "
           f"{earlier['cpu_s'] / 60:.1f} CPU-min: {earlier['steps'] + timing['steps']} steps "
           f"and {(earlier['cpu_s'] + timing['cpu_s']) / 60:.1f} CPU-min in all."]
          if earlier else []),
        f"- Parameters: {model.network.count_params():,}; receptive field {model.min_size} px.",
        "- Latencies were measured while other training runs shared the two cores; see the "
        "README's benchmark section for uncontended figures.",
        "", *measured_table(rows)]
    return "\n".join(lines) + "\n"


def measured_table(rows):
    """The model card's "Measured" section: one line per row of `measure`."""
    lines = ["## Measured (kerasgen evaluate, standard protocols)", "",
             "| set | setting | PSNR (dB) | SSIM | LiteRT ms/image fp32 / int8 (input) | int8 max "
             "diff (levels) | anchors |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['dataset']} | {row['setting']} | {row['psnr']:.2f} | "
                     f"{row['ssim']:.4f} | {row['latency_ms']:.1f} / {row['int8_latency_ms']:.1f} "
                     f"({row['image_size']}) | {row['int8_max_diff']:.0f} | {row['anchor']} |")
    return lines


def measure(model, model_name, dataset, sigma, scale, tflite_files, budget, data_dir=None):
    """One benchmark row: `kerasgen evaluate`'s PSNR/SSIM and the LiteRT fp32 and int8
    latencies (`tflite_files`); returns `(row, evaluation report)`."""
    report = evaluation.evaluate_restoration(model, dataset, sigma=sigma, scale=scale,
                                             data_dir=data_dir)
    ms, diff, size = latency(model, tflite_files[0], dataset, scale, data_dir)
    int8_ms, int8_diff, _ = latency(model, tflite_files[1], dataset, scale, data_dir)
    row = {"model": model_name, "dataset": dataset,
           "setting": f"sigma={sigma:g}" if sigma is not None else f"x{scale}",
           "psnr": report["psnr"], "ssim": report["ssim"],
           "params": model.network.count_params(), "budget": budget,
           "latency_ms": ms, "tflite_max_diff": diff, "image_size": f"{size[0]}x{size[1]}",
           "int8_latency_ms": int8_ms, "int8_max_diff": int8_diff,
           "anchor": ANCHORS.get((dataset, sigma, scale), "")}
    return row, report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=["dncnn", "fsrcnn_x3"], choices=sorted(PLAN))
    parser.add_argument("--out", default="benchmarks/results/restoration")
    parser.add_argument("--data-dir")
    parser.add_argument("--ship", action="store_true", help="copy models into saved_models/")
    parser.add_argument("--bm3d-images", type=int, default=None, metavar="N",
                        help="run BM3D on the first N images of each denoising set (default: "
                             "all; 0: no BM3D rows)")
    parser.add_argument("--epochs", type=int, help="epochs of 200 steps for every run "
                        "(default: each run's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", metavar="SHIPPED|RUN",
                        help="fine-tune: start the runs from these weights (see kerasgen train "
                             "--init)")
    args = parser.parse_args()
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be a positive number of epochs, got {args.epochs}.")
    earlier = earlier_training(args.init)  # read before --ship may replace that model
    if args.bm3d_images is not None and args.bm3d_images < 0:
        parser.error(f"--bm3d-images must be 0 (no BM3D rows) or a positive number of images, "
                     f"got {args.bm3d_images}.")
    out = Path(args.out)
    hardware = f"{os.cpu_count()} CPU cores ({platform.machine()}), TensorFlow CPU"
    rows = []
    for scale in rdata.SCALES:
        for dataset in ("Set5", "Set14"):
            report = evaluation.evaluate_restoration(None, dataset, scale=scale,
                                                     data_dir=args.data_dir)
            rows.append({"model": "bicubic", "dataset": dataset, "setting": f"x{scale}",
                         "psnr": report["psnr"], "ssim": report["ssim"], "params": 0,
                         "budget": "-", "latency_ms": float("nan"), "image_size": "-",
                         "int8_latency_ms": float("nan"),
                         "anchor": ANCHORS.get((dataset, None, scale), "")})
    for run_name in args.runs:
        model_name, options, epochs, shipped_name, sets = PLAN[run_name]
        epochs = args.epochs or epochs
        run_dir = out / run_name
        model, timing = train(model_name, options, epochs, run_dir, seed=args.seed,
                              init_from=args.init)
        tflite = run_dir / f"{model.network.name}.tflite"
        int8 = export.export_model(model, run_dir, model.network.name, ("tflite",), "int8")[1]
        model_rows, peer_rows = [], []
        budget = f"{timing['steps']} steps, {timing['wall_s'] / 60:.0f} min" + (
            f" after {earlier['steps']} (--init {earlier['from']})" if earlier else "")
        for dataset, sigma, scale in sets:
            row, report = measure(model, model_name, dataset, sigma, scale, (tflite, int8),
                                  budget, args.data_dir)
            model_rows.append(row)
            print(model_rows[-1], flush=True)
            if sigma is not None and args.bm3d_images != 0:
                peer_rows += side_by_side(model_rows[-1], report, args, out)
        rows += model_rows + peer_rows
        if args.ship:
            card = model_card(shipped_name, model_name, epochs, model, timing, model_rows,
                              hardware, earlier)
            training_budget = timing if earlier is None else {
                "steps": earlier["steps"] + timing["steps"],
                "wall_s": earlier["wall_s"] + timing["wall_s"],
                "cpu_s": earlier["cpu_s"] + timing["cpu_s"], "fine_tuning": timing,
                "init_from": earlier}
            print("shipped:", store.ship_model(
                model, shipped_name, card, {"rows": model_rows, "training": training_budget},
                train_data=registry.get_preset(model_name).dataset))
    lines = [f"{hardware}; budgets as stated per row (200 steps per epoch).", "",
             "| model | set | setting | params | training | PSNR (dB) | SSIM | LiteRT fp32 / int8 "
             "ms per image (input) | anchors (dB) |", "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['dataset']} | {row['setting']} | "
                     f"{row['params']:,} | {row['budget']} | {row['psnr']:.2f} | "
                     f"{row['ssim']:.4f} | {row['latency_ms']:.1f} / {row['int8_latency_ms']:.1f} "
                     f"({row['image_size']}) | {row['anchor']} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "restoration.md").write_text(table + "\n")
    (out / "restoration.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
