"""Score an inpainting run against the classical inpainters, and ship it only if it wins.

Evaluates RUN on CBSD68 with free-form masks in the four hole-ratio buckets (the README's
protocol), beside OpenCV's Telea and Navier-Stokes and scikit-image's biharmonic inpainting,
writes the table (`--report`, JSON) and the comparison grid, and writes
`saved_models/<name>/` with a model card only when the model beats the best peer in PSNR and
SSIM in every bucket (a shipped model that loses to a classical method is a defect):

    python benchmarks/ship_inpainter.py RUN [--name pconv_unet_free_form] [--report R.json]
        [--grid G.png] [--cpu-minutes M] [--train-data TEXT] [--weight-dtype float16]

Exits 1, shipping nothing, when the model does not win.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen import registry, store, training  # noqa: E402
from kerasgen.models.inpainting.evaluation import (evaluate_inpainting,  # noqa: E402
                                                   inpainting_table)


def wins(report):
    """`{bucket: (PSNR margin, SSIM margin)}` over the best peer (by PSNR), per bucket."""
    margins = {}
    for label, rows in report["buckets"].items():
        peers = {name: row for name, row in rows.items() if name != "model"}
        best = max(peers, key=lambda name: peers[name]["psnr"])
        margins[label] = (rows["model"]["psnr"] - peers[best]["psnr"],
                          rows["model"]["ssim"] - max(row["ssim"] for row in peers.values()))
    return margins


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--name", default="pconv_unet_free_form")
    parser.add_argument("--dataset", default="CBSD68")
    parser.add_argument("--report", default=None)
    parser.add_argument("--grid", default=None)
    parser.add_argument("--cpu-minutes", type=float, default=None)
    parser.add_argument("--train-data", default="t91")
    parser.add_argument("--weight-dtype", choices=store.WEIGHT_DTYPES, default="float32",
                        help="float16 halves the file (a 1 M-weight U-Net is over the 4 MiB "
                             "of a shipped model in float32)")
    args = parser.parse_args()

    model = training.load_run(args.run)
    steps = int(model.optimizer.iterations)
    # Measured on the file that ships: the float32 copy a bf16 run exports, its weights as
    # `ship_model` stores them.
    model = store.as_shipped(model, args.weight_dtype)
    config = training.read_run_config(args.run)
    report = evaluate_inpainting(model, args.dataset, grid=args.grid)
    lines = inpainting_table(report)
    print("\n".join(lines))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2))
    margins = wins(report)
    if not all(psnr > 0 and ssim > 0 for psnr, ssim in margins.values()):
        print("Not shipped: the model does not beat the best classical peer in PSNR and SSIM "
              "in every bucket: " + ", ".join(f"{label} {psnr:+.2f} dB / SSIM {ssim:+.4f}"
                                              for label, (psnr, ssim) in margins.items()))
        raise SystemExit(1)
    budget = "" if args.cpu_minutes is None else f", {args.cpu_minutes:.0f} CPU-minutes"
    rows = [{"model": config["model"], "dataset": args.dataset,
             "setting": f"free-form {label}", **report["buckets"][label]["model"],
             "best_peer_margin_db": margins[label][0], "best_peer_ssim_margin": margins[label][1],
             "peers": {name: row for name, row in report["buckets"][label].items()
                       if name != "model"}}
            for label in report["buckets"]]
    phases = "".join(
        f"\n- Fine-tuned (`benchmarks/finetune_inpainter.py`): {phase['steps']} steps from step "
        f"{phase['start_step']}, learning rate {phase['learning_rate']:g}, SSIM weight "
        f"{phase['ssim_weight']:g}, {phase['cpu_minutes']:.0f} CPU-minutes."
        for phase in config.get("fine_tune", []))
    preset = registry.get_preset(config["model"])
    then = ", then the fine-tuning below" if phases else ""
    card = f"""# {args.name}

Inpainter for colour photos with free-form holes, kerasgen's `{config['model']}` preset:
{preset.description}.
`kerasgen apply {args.name} IMAGE... --mask MASK.png|DIR --out DIR`.

## Training
- Data: {args.train_data}; random {config['model_kwargs'].get('patch_size', 128)}-pixel crops with
  flips and rotations, free-form holes cut on the fly (5-50 %, strokes sized for 400-pixel photos).
- Steps: {steps} at batch {config['batch_size']} in all ({config['epochs']} epochs of
  {config['steps_per_epoch']} by `kerasgen train`{then}){budget}, a 2-core CPU, no GPU, precision
  {config.get('precision', 'float32')} (measured and shipped as float32 computation, weights
  stored as {args.weight_dtype}).{phases}

## Measured (`kerasgen evaluate RUN --dataset {args.dataset}`, the README's protocol)

""" + "\n".join(lines) + "\n"
    folder = store.ship_model(model, args.name, card, metrics={"rows": rows},
                              train_data=args.train_data, weight_dtype=args.weight_dtype)
    print(f"shipped: {folder}")


if __name__ == "__main__":
    main()
