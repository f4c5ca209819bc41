"""Ship a trained generative run into saved_models/ so that `kerasgen sample NAME` works at once,
offline: its domain FD, KID and classifier score are measured first and written into the model
card and `metrics.json`.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/ship_generator.py RUN NAME \
        [--num-samples 10000] [--weight-dtype float16] [--nll-k K] [--wall-minutes M] \
        [--cpu-minutes M] [--note TEXT]

What is measured is the shipped model itself (`kerasgen.store.ship_model`: the EMA weights of
a GAN, weights rounded to float16 with `--weight-dtype float16`), written to a temporary folder
and loaded back, not the run's model.

e.g. `kerasgen train cgan_r1 --precision bf16 --seed 1 --out runs/cgan_r1` then
`python benchmarks/ship_generator.py runs/cgan_r1 cgan_mnist --weight-dtype float16`.
"""

import argparse
import os
import platform
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen import evaluation, store, training  # noqa: E402
from kerasgen.models.base import optimizers_of  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("name")
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--wall-minutes", type=float)
    parser.add_argument("--cpu-minutes", type=float)
    parser.add_argument("--note", default="", help="a line on how the run shared the machine")
    parser.add_argument("--nll-k", type=int,
                        help="also the test NLL of a likelihood model with this many importance "
                             "samples (all test images)")
    parser.add_argument("--weight-dtype", default="float32", choices=store.WEIGHT_DTYPES,
                        help="how the shipped weights are stored (float16 halves the file)")
    args = parser.parse_args()
    config = training.read_run_config(args.run)
    model = training.load_run(args.run)
    with tempfile.TemporaryDirectory() as scratch:
        shipped = store.ship_model(model, args.name, "", weight_dtype=args.weight_dtype,
                                   run_config=config, folder=scratch)
        scores = {metric: evaluation.evaluate_run(shipped, metric=metric,
                                                  num_samples=args.num_samples)
                  for metric in ("fd", "kid", "score")}
        nll_report = (evaluation.evaluate_likelihood(shipped, num_importance_samples=args.nll_k)
                      if args.nll_k else None)
    steps = int(optimizers_of(model)[0].iterations)
    fd, kid, score = scores["fd"], scores["kid"], scores["score"]
    row = {"model": config["model"], "dataset": config["dataset"], "fd": fd["value"],
           "fd_floor": fd["floor"], "kid": kid["value"], "kid_floor": kid["floor"],
           "classifier_score": score["value"], "real_score": score["floor"],
           "num_samples": args.num_samples, "steps": steps, "epochs": config["epochs"],
           "batch_size": config["batch_size"], "wall_minutes": args.wall_minutes,
           "cpu_minutes": args.cpu_minutes, "precision": config.get("precision", "float32"),
           "weight_dtype": args.weight_dtype}
    nll_line = ""
    if nll_report:
        row.update(nll=nll_report["nll"], nll_k=args.nll_k, nll_images=nll_report["num_images"])
        nll_line = (f"\nTest NLL (`kerasgen evaluate {args.name} --metric nll --k {args.nll_k}`: "
                    "dynamically binarised MNIST test images, binarised once, seed 0): "
                    f"{nll_report['nll']:.2f} nats with k = {args.nll_k} importance samples on "
                    f"all {nll_report['num_images']:,} images.\n")
    budget = ", ".join(f"{value:g} {what}" for value, what in (
        (args.wall_minutes, "min wall"), (args.cpu_minutes, "CPU-min"))
        if value is not None) or "not recorded"
    options = ", ".join(f"{key}={value}" for key, value in config["model_kwargs"].items())
    flags = (f" --steps-per-epoch {config['steps_per_epoch']}"
             if config["steps_per_epoch"] else "")
    flags += f" --seed {config['seed']}" if config["seed"] else ""
    flags += f" --precision {row['precision']}" if row["precision"] != "float32" else ""
    storage = ("float16 (rounded from the float32 it trained in; the figures below are\n  "
               "the shipped model's)" if args.weight_dtype == "float16" else "float32")
    card = f"""# {args.name}

`{config['model']}` trained on `{config['dataset']}` ({options or 'preset defaults'}). Sample
it with `kerasgen sample {args.name} [--num N] [--seed S]` (a labelled row per class for
class-conditional models) or `kerasgen.store.load_model('{args.name}')`.

## Training
- `kerasgen train {config['model']} --dataset {config['dataset']} --epochs {config['epochs']}{flags}`:
  {steps} steps at batch {config['batch_size']}, seed {config['seed']}, precision
  {row['precision']}.
- Shipped weights: {storage}; what sampling needs, no optimizer state (a GAN's
  generator holds its EMA weights, beside the discriminator).
- Hardware and budget: {os.cpu_count()} CPU cores ({platform.machine()}), no GPU; {budget}.
  {args.note}

## Measured
`kerasgen evaluate {args.name} --metric fd|kid|score`: {args.num_samples:,} samples against the real
test split, features of the shipped domain classifier; the floor is the same figure between
the real train and test splits.

| domain FD | real floor | FD / floor | KID | KID floor | classifier score | real score |
|---|---|---|---|---|---|---|
| {fd['value']:.2f} | {fd['floor']:.2f} | {fd['value'] / fd['floor']:.1f}x | {kid['value']:.3f} | {kid['floor']:.3f} | {score['value']:.2f} | {score['floor']:.2f} |
{nll_line}"""
    print(card)
    print("shipped:", store.ship_model(model, args.name, card, {"rows": [row]},
                                       train_data=config["dataset"], run_config=config,
                                       weight_dtype=args.weight_dtype))


if __name__ == "__main__":
    main()
