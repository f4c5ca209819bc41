"""The ConvLSTM forecaster on Moving MNIST generated from the MNIST digits: per-frame MSE and
SSIM against training time, beside the copy-the-last-frame baseline.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_video.py \
        [--epochs N] [--steps-per-epoch S] [--curve-sequences 200] [--final-sequences 1000] \
        [--out benchmarks/results] [--ship NAME]

Runs the `convlstm` preset (for `--epochs`, default the preset's) in a resumable run folder
(`OUT/convlstm_mnist`; run it again after an interruption), scores the first
`--curve-sequences` generated test sequences after every epoch (`curve.jsonl`: steps, wall
seconds, process CPU seconds, MSE, SSIM) and `--final-sequences` at the end, and writes
`OUT/convlstm.md`. Test sequences: seed 0 from the MNIST test digits, 10 frames in, 10 out
(`FrameForecaster.benchmark`); not the published file. Anchors (per-frame MSE / SSIM on the
published set): ConvLSTM 103.3 / 0.707, PredRNN 56.8 / 0.867 (Wang et al. 2017, table 1).
`--ship NAME` writes the model into `saved_models/NAME` (float16 weights, with its card) if it
beats copying the last frame in MSE and SSIM. Not part of the test suite.
"""

import argparse
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_autoregressive import LikelihoodCurve  # noqa: E402
from kerasgen import store, training  # noqa: E402

ANCHORS = "ConvLSTM 103.3 / 0.707, PredRNN 56.8 / 0.867 (the published test set)"


class ForecastCurve(LikelihoodCurve):
    """`LikelihoodCurve`'s rows with the forecast's per-frame MSE and SSIM instead of an NLL."""

    def __init__(self, path, num_sequences):
        super().__init__(path, images=None)
        self.num_sequences = num_sequences

    def estimate(self):
        report = self.model.benchmark("mnist", num_sequences=self.num_sequences)
        return {"mse": report["model"]["mse"], "ssim": report["model"]["ssim"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int)
    parser.add_argument("--curve-sequences", type=int, default=200)
    parser.add_argument("--final-sequences", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--ship", metavar="NAME", help="ship the model as NAME if it beats "
                                                       "copying the last frame")
    parser.add_argument("--card-note", default="",
                        help="a sentence the model card adds to its training line (what a resumed "
                             "run did differently, how it shared the machine)")
    args = parser.parse_args()
    for name in ("epochs", "steps_per_epoch", "curve_sequences", "final_sequences"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}.")
    run_dir = Path(args.out) / "convlstm_mnist"
    run_dir.mkdir(parents=True, exist_ok=True)
    curve = ForecastCurve(run_dir / "curve.jsonl", args.curve_sequences)
    result = training.train("convlstm", out_dir=run_dir, epochs=args.epochs,
                            steps_per_epoch=args.steps_per_epoch, verbose=2, callbacks=[curve])
    rows = ForecastCurve.read(run_dir / "curve.jsonl")
    # The final table measures what `--ship` writes: float32 compute, float16 weights.
    shipped = store.as_shipped(result.model, weight_dtype="float16")
    report = shipped.benchmark("mnist", num_sequences=args.final_sequences)
    config = training.read_run_config(run_dir)
    lines = [
        f"convlstm on {os.cpu_count()} CPU cores ({platform.machine()}), batch "
        f"{config['batch_size']}, {rows[-1]['steps']} steps, "
        f"{result.model.count_params():,} weights; Moving MNIST generated from the MNIST digits.",
        "", f"| epoch | steps | wall min | CPU min | train loss | MSE / SSIM (first "
            f"{args.curve_sequences}) |", "|---|---|---|---|---|---|",
        *(f"| {row['epoch']} | {row['steps']} | {row['wall_s'] / 60:.1f} | "
          f"{row['cpu_s'] / 60:.1f} | {row['train_loss']:.1f} | {row['mse']:.1f} / "
          f"{row['ssim']:.4f} |" for row in rows), "",
        "As shipped (float32 compute, float16 weights):", *report["lines"],
        f"Anchors (per-frame MSE / SSIM): {ANCHORS}."]
    text = "\n".join(lines)
    print(text)
    (Path(args.out) / "convlstm.md").write_text(text + "\n")
    if args.ship:
        ship(args.ship, shipped, report, rows[-1], config, note=args.card_note)


# The shipped model's figures on the first N test sequences too, which the test suite
# re-measures (the full set takes about a minute).
CHECK_SEQUENCES = 50


def ship(name, model, report, last, config, note=""):
    """`saved_models/NAME` with the model's card, if it beats copying the last frame."""
    ours, baseline = report["model"], report["copy_last"]
    if not (ours["mse"] < baseline["mse"] and ours["ssim"] > baseline["ssim"]):
        print(f"not shipped: copying the last frame scores {baseline['mse']:.2f} / "
              f"{baseline['ssim']:.4f}, the model {ours['mse']:.2f} / {ours['ssim']:.4f}.")
        return
    card = "\n".join([
        f"# {name}", "",
        "ConvLSTM encoder-forecaster (Shi et al. 2015, `kerasgen train convlstm`): 10 frames of "
        "Moving MNIST in, the next 10 out (uint8 `[N, 10, 64, 64, 1]`).", "",
        f"- Data: Moving MNIST generated on the fly from the MNIST training digits "
        f"(`kerasgen.data.moving_mnist`), batch {config['batch_size']}, seed {config['seed']}.",
        f"- Training: `kerasgen train convlstm --epochs {config['epochs']} --steps-per-epoch "
        f"{config['steps_per_epoch']} --precision {config['precision']}` (the preset's Adam "
        "schedule: 1e-3, then linearly down over the last 40 % of the epochs)." +
        (f" {note}" if note else ""),
        f"- Budget: {last['steps']} steps, {last['wall_s'] / 60:.0f} min wall, "
        # This process's CPU affinity says nothing of the training's (`--ship` may run after
        # it, unpinned): how the run shared the machine goes in `--card-note`.
        f"{last['cpu_s'] / 60:.0f} CPU-min of training and per-epoch evaluation on a "
        f"{os.cpu_count()}-core machine ({platform.machine()}).",
        f"- Weights: {model.count_params():,}, stored as float16.", "",
        *report["lines"], "",
        "Anchors (per-frame MSE / SSIM): " + ANCHORS + ".", ""])
    folder = store.ship_model(model, name, card, weight_dtype="float16", run_config=config,
                              train_data="Moving MNIST (generated from mnist)", metrics={
                                  "rows": [{**forecast_row(report),
                                            "copy_last_mse": baseline["mse"],
                                            "copy_last_ssim": baseline["ssim"]},
                                           forecast_row(model.benchmark(
                                               "mnist", num_sequences=CHECK_SEQUENCES))],
                                  "steps": last["steps"], "wall_s": last["wall_s"],
                                  "cpu_s": last["cpu_s"]})
    print(f"shipped: {folder}")


def forecast_row(report):
    """A `metrics.json` row of a `benchmark` report."""
    return {"model": "convlstm", "dataset": "Moving MNIST", "mse": report["model"]["mse"],
            "ssim": report["model"]["ssim"], "num_sequences": report["num_sequences"]}


if __name__ == "__main__":
    main()
