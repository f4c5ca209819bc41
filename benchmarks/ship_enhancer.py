"""Score a low-light run beside the classical enhancers, and ship it only if it wins.

Evaluates RUN on LOL-v1 eval15 (real pairs) and on synthetic-dark CBSD68 (the README's
protocol), beside CLAHE, global histogram equalisation and the oracle gamma, writes the tables
(`--report`, JSON) and a comparison grid per set, and writes `saved_models/<name>/` with a model
card only when the model beats every classical enhancer one can run (CLAHE, histogram
equalisation) in PSNR and SSIM on both sets (a shipped model that loses to a classical method
is a defect). The oracle gamma reads the truth; its margin is reported, not required.

    python benchmarks/ship_enhancer.py RUN --name NAME [--report R.json]
        [--grid-prefix P] [--cpu-minutes M] [--wall-minutes M] [--weight-dtype float16]

Exits 1, shipping nothing, when the model does not win.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen import registry, store, training  # noqa: E402
from kerasgen.data import restoration as restoration_data  # noqa: E402
from kerasgen.models.enhancement.evaluation import (enhancement_table,  # noqa: E402
                                                    evaluate_enhancement)

SETS = ("LOL", "CBSD68")
RUNNABLE_PEERS = ("clahe", "histogram_eq")


def margins(report):
    """`(PSNR, SSIM)` margins of the model over the best runnable peer in each."""
    rows = report["methods"]
    return (rows["model"]["psnr"] - max(rows[name]["psnr"] for name in RUNNABLE_PEERS),
            rows["model"]["ssim"] - max(rows[name]["ssim"] for name in RUNNABLE_PEERS))


def training_data_line(model, config, described=None):
    """What the run trained on: a pair folder's real pairs, or clean images darkened on the fly
    (the run's own `Darken` settings). `described` names a local folder for the card."""
    dataset = config["dataset"]
    if restoration_data.pair_folder(dataset) is not None:
        return f"`{dataset}`: real (low, normal-light) pairs, random crops."
    darken = model.degradation.get_config()
    low, high = darken["gamma_range"]
    share = darken["luminance_share"]
    gamma = ("on the luminance, colour ratios kept" if share == 1 else "per channel"
             if share == 0 else f"on the luminance for {share:.0%} of the images, per channel "
             "for the others")
    exposure, shorter = darken.get("exposure_share", 0.0), ""  # runs from before the option
    if exposure:
        shortest, longest = darken["exposure_range"]
        shorter = (f"; {exposure:.0%} of the images instead get a shorter exposure (linear "
                   f"light times a ratio in [{shortest:g}, {longest:g}], log-uniform)")
    rounded = ", rounded to 8 bits" if darken.get("eight_bit") else ""
    source = described or f"`{dataset}`"
    return (f"{source} (clean colour images) darkened on the fly by `Darken`: gamma in "
            f"[{low:g}, {high:g}] {gamma}{shorter}, then Poisson-Gaussian sensor noise (shot "
            f"level up to {darken['max_shot']:g}, read noise up to {darken['max_read']:g}; LLNet's "
            f"protocol){rounded}, per image; random crops with flips and rotations. It never "
            "saw a LOL image: LOL's training pairs are not in the shared data.")


def model_card(name, model, config, table, budget, weight_dtype="float32", train_data=None,
               note=""):
    """The model card: the preset's description, the run's data, budget and size, and the
    measured table. `note` is a line on how the run was trained that its folder does not
    record (a schedule set by a script, the machine shared with other runs)."""
    preset = registry.get_preset(config["model"])
    optimizer = model.optimizer
    final_rate = float(optimizer.learning_rate)
    # A fine-tuning run's schedule may be its script's, not the preset's: say only its end.
    rate = (f"{final_rate:g}" if preset.learning_rate_schedule is None else
            f"ending at {final_rate:g}" if "init_from" in config else
            f"the preset's schedule (ending at {final_rate:g})")
    start = (f", fine-tuned from `{config['init_from']}` (its own steps not counted)"
             if "init_from" in config else "")
    steps = (f"{int(optimizer.iterations)} at batch {config['batch_size']} "
             f"({config['epochs']} epochs of {config['steps_per_epoch']}){start}, "
             f"{config.get('precision', 'float32')} compute")  # runs from before the option
    stored = ("" if weight_dtype == "float32" else
              f"; shipped with {weight_dtype} weights, float32 computation, measured so")
    size = (f"{model.network.count_params():,}; receptive field {model.min_size} px (smaller "
            "images are refused)")
    return f"""# {name}

{preset.description} (kerasgen's `{config['model']}` preset).
`kerasgen apply {name} DARK.png... --out DIR`; SavedModel signature `enhance`.

## Training
- Data: {training_data_line(model, config, train_data)}
- Steps: {steps}, {type(optimizer).__name__} {rate}{budget}, on a 2-core CPU, no GPU.
- Parameters: {size}{stored}.{f"{chr(10)}- {note}" if note else ""}

## Measured (`kerasgen evaluate RUN --dataset LOL|CBSD68`, the README's protocol)

""" + "\n".join(table) + f"""

Shipped because it beats the classical enhancers one can run (CLAHE, histogram equalisation)
in PSNR and SSIM on both sets. The oracle gamma picks each image's best global curve by
reading the truth: an upper bound for any single curve, not a method one can run. Comparison
grids (dark input | CLAHE | oracle gamma | model | truth): `kerasgen evaluate {name}
--dataset LOL --grid lol.png`.
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--name", required=True, help="the shipped model's name")
    parser.add_argument("--report", default=None)
    parser.add_argument("--grid-prefix", default="enhancement")
    parser.add_argument("--cpu-minutes", type=float, default=None)
    parser.add_argument("--wall-minutes", type=float, default=None)
    parser.add_argument("--weight-dtype", choices=store.WEIGHT_DTYPES, default="float32",
                        help="float16 halves the file")
    parser.add_argument("--train-data", default=None,
                        help="what the run's --dataset folder holds, for the card")
    parser.add_argument("--card-note", default="",
                        help="a line for the card's training section: what the run folder "
                             "does not record (a script's schedule, shared cores)")
    args = parser.parse_args()

    trained = training.load_run(args.run)
    # Measured on the file that ships (the float32 copy of a bf16 run, its weights as stored).
    model = store.as_shipped(trained, args.weight_dtype)
    config = training.read_run_config(args.run)
    reports = {dataset: evaluate_enhancement(model, dataset,
                                             grid=f"{args.grid_prefix}_{dataset}.png")
               for dataset in SETS}
    lines = [line for report in reports.values() for line in enhancement_table(report)]
    print("\n".join(lines))
    table = [line for line in lines if "grid (" not in line]  # the grids stay on this machine
    if args.report:
        Path(args.report).write_text(json.dumps(reports, indent=2))
    wins = {dataset: margins(report) for dataset, report in reports.items()}
    if not all(psnr > 0 and ssim > 0 for psnr, ssim in wins.values()):
        print("Not shipped: the model does not beat CLAHE and histogram equalisation in PSNR and "
              "SSIM on both sets: " + ", ".join(f"{dataset} {psnr:+.2f} dB / SSIM {ssim:+.4f}"
                                                for dataset, (psnr, ssim) in wins.items()))
        raise SystemExit(1)
    budget = "".join(f", {value:.1f} {unit}" for value, unit in (
        (args.wall_minutes, "min wall"), (args.cpu_minutes, "CPU-minutes")) if value is not None)
    rows = [{"model": config["model"], "dataset": dataset, "setting": report["kind"],
             **report["methods"]["model"], "peers": report["methods"],
             "best_runnable_peer_margin_db": wins[dataset][0]}
            for dataset, report in reports.items()]
    card = model_card(args.name, trained, config, table, budget, args.weight_dtype,
                      args.train_data, args.card_note)
    folder = store.ship_model(model, args.name, card, metrics={"rows": rows},
                              train_data=args.train_data or config["dataset"],
                              weight_dtype=args.weight_dtype)
    print(f"shipped: {folder}")


if __name__ == "__main__":
    main()
