"""Ship the MNIST and Fashion-MNIST domain classifiers into saved_models/ (FD, KID and the
classifier score use them when no `runs/classifier[_<dataset>]` exists).

Trains them with `kerasgen train classifier` into RUNS (or takes the runs already there), then
writes `saved_models/classifier_<dataset>/` with the model card and the measured accuracy:

    python benchmarks/ship_classifiers.py [--runs runs/ship] [--datasets mnist fashion_mnist]
"""

import argparse
import json
import os
import platform
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen import store, training  # noqa: E402
from kerasgen.evaluation import shipped_classifier_name  # noqa: E402

EPOCHS = {"mnist": 8, "fashion_mnist": 12}  # the README benchmark's classifiers


def ship(dataset, runs, wall_minutes=None):
    run = Path(runs) / shipped_classifier_name(dataset)
    result = training.train("classifier", dataset=dataset, epochs=EPOCHS[dataset], out_dir=run)
    config = training.read_run_config(run)
    metrics = json.loads((run / "metrics.json").read_text())
    steps = int(result.model.optimizer.iterations)
    row = {"model": "classifier", "dataset": dataset, "train_data": dataset,
           "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"],
           "test_examples": metrics["test_examples"], "epochs": config["epochs"],
           "batch_size": config["batch_size"], "steps": steps,
           "wall_minutes": wall_minutes}
    wall = "an unrecorded number of" if wall_minutes is None else f"{wall_minutes:g}"
    card = f"""# {shipped_classifier_name(dataset)}

Domain classifier for {dataset} (kerasgen's `classifier` preset: a small VGG-style CNN with a
128-d `features` layer): the feature extractor of `kerasgen evaluate --metric fd|kid` and the
class probabilities of `--metric score` for runs on {dataset}, when no
`runs/classifier[_<dataset>]` exists. Load it with
`kerasgen.store.load_model('{shipped_classifier_name(dataset)}')`.

## Training
- Data: the {dataset} training split (60,000 images, 28x28 grey), `kerasgen train classifier
  --dataset {dataset} --epochs {config['epochs']}`.
- Steps: {steps} at batch {config['batch_size']} ({config['epochs']} epochs), Adam 1e-3.
- Hardware: the 2-core CI CPU ({platform.machine()}, no GPU); {wall} minutes of wall time,
  sharing the two cores with test runs (alone about 70 s per epoch).

## Measured
- Test accuracy: {100 * metrics['test_accuracy']:.2f} % on the {metrics['test_examples']:,}
  test images (loss {metrics['test_loss']:.4f}).
"""
    print("shipped:", store.ship_model(result.model, shipped_classifier_name(dataset), card,
                                       {"rows": [row]}, train_data=dataset))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="runs/ship")
    parser.add_argument("--datasets", nargs="+", default=list(EPOCHS), choices=list(EPOCHS))
    parser.add_argument("--wall-minutes", nargs="+", type=float, default=[],
                        help="measured training wall time per dataset, for the model cards")
    args = parser.parse_args()
    for index, dataset in enumerate(args.datasets):
        minutes = args.wall_minutes[index] if index < len(args.wall_minutes) else None
        ship(dataset, args.runs, minutes)


if __name__ == "__main__":
    main()
