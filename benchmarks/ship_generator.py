"""Ship a trained generative run into saved_models/ so that `kerasgen sample NAME` works at once,
offline: its domain FD, KID and classifier score are measured first and written into the model
card and `metrics.json`.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/ship_generator.py RUN NAME \
        [--num-samples 10000] [--wall-minutes M] [--cpu-minutes M] [--note TEXT]

e.g. `kerasgen train cgan --dataset mnist --epochs 40 --steps-per-epoch 500 --out runs/cgan_mnist`
then `python benchmarks/ship_generator.py runs/cgan_mnist cgan_mnist`.
"""

import argparse
import os
import platform

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
    args = parser.parse_args()
    config = training.read_run_config(args.run)
    model = training.load_run(args.run)
    scores = {metric: evaluation.evaluate_run(args.run, metric=metric,
                                              num_samples=args.num_samples)
              for metric in ("fd", "kid", "score")}
    steps = int(optimizers_of(model)[0].iterations)
    fd, kid, score = scores["fd"], scores["kid"], scores["score"]
    row = {"model": config["model"], "dataset": config["dataset"], "fd": fd["value"],
           "fd_floor": fd["floor"], "kid": kid["value"], "kid_floor": kid["floor"],
           "classifier_score": score["value"], "real_score": score["floor"],
           "num_samples": args.num_samples, "steps": steps, "epochs": config["epochs"],
           "batch_size": config["batch_size"], "wall_minutes": args.wall_minutes,
           "cpu_minutes": args.cpu_minutes, "precision": config.get("precision", "float32")}
    nll_line = ""
    if args.nll_k:
        report = evaluation.evaluate_likelihood(args.run, num_importance_samples=args.nll_k)
        row.update(nll=report["nll"], nll_k=args.nll_k, nll_images=report["num_images"])
        nll_line = (f"\nTest NLL (dynamically binarised MNIST test images, binarised once, seed "
                    f"0): {report['nll']:.2f} nats with k = {args.nll_k} importance samples on "
                    f"all {report['num_images']:,} images.\n")
    budget = ", ".join(f"{value:g} {what}" for value, what in (
        (args.wall_minutes, "min wall"), (args.cpu_minutes, "CPU-min"))
        if value is not None) or "not recorded"
    options = ", ".join(f"{key}={value}" for key, value in config["model_kwargs"].items())
    card = f"""# {args.name}

`{config['model']}` trained on `{config['dataset']}` ({options or 'preset defaults'}). Sample
it with `kerasgen sample {args.name} [--num N] [--seed S]` (a labelled row per class for
class-conditional models) or `kerasgen.store.load_model('{args.name}')`.

## Training
- `kerasgen train {config['model']} --dataset {config['dataset']} --epochs {config['epochs']}
  --steps-per-epoch {config['steps_per_epoch']}`: {steps} steps at batch
  {config['batch_size']}, seed {config['seed']}, precision {row['precision']}.
- Hardware and budget: {os.cpu_count()} CPU cores ({platform.machine()}), no GPU; {budget}.
  {args.note}

## Measured
`kerasgen evaluate RUN --metric fd|kid|score`: {args.num_samples:,} samples against the real
test split, features of the shipped domain classifier; the floor is the same figure between
the real train and test splits.

| domain FD | real floor | FD / floor | KID | KID floor | classifier score | real score |
|---|---|---|---|---|---|---|
| {fd['value']:.2f} | {fd['floor']:.2f} | {fd['value'] / fd['floor']:.1f}x | {kid['value']:.3f} | {kid['floor']:.3f} | {score['value']:.2f} | {score['floor']:.2f} |
{nll_line}"""
    print(card)
    print("shipped:", store.ship_model(model, args.name, card, {"rows": [row]},
                                       train_data=config["dataset"]))


if __name__ == "__main__":
    main()
