"""GAN zoo quality at a fixed CPU budget: DCGAN, conditional GAN and WGAN-GP on MNIST and
Fashion-MNIST, scored with kerasgen's domain classifier (FD, KID, classifier score) against the
real-data floor.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_gan_zoo.py \
        [--budget-minutes 10] [--num-samples 10000] [--out benchmarks/results]

Trains the domain classifiers first when their run folders are missing. Prints a Markdown
table and writes it to OUT/gan_zoo.md. Not part of the test suite.
"""

import argparse
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kerasgen import evaluation, training  # noqa: E402
from kerasgen.callbacks import TimeLimit  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--num-samples", type=int, default=10000)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion_mnist"])
    parser.add_argument("--models", nargs="+", default=["dcgan", "cgan", "wgan_gp"])
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    for dataset in args.datasets:
        classifier_dir = out / f"classifier_{dataset}"
        if not (classifier_dir / "model.keras").exists():
            epochs = 12 if dataset == "fashion_mnist" else 8
            training.train("classifier", dataset=dataset, epochs=epochs, out_dir=classifier_dir,
                           verbose=2)
        for model in args.models:
            run_dir = out / f"{model}_{dataset}"
            limit = TimeLimit(args.budget_minutes * 60)
            start = time.perf_counter()
            training.train(model, dataset=dataset, epochs=10_000, steps_per_epoch=100,
                           out_dir=run_dir, export_formats=(), verbose=0, callbacks=[limit])
            trained = time.perf_counter() - start
            scores = {metric: evaluation.evaluate_run(
                run_dir, metric=metric, num_samples=args.num_samples,
                classifier_dir=classifier_dir) for metric in ("fd", "kid", "score")}
            rows.append((dataset, model, limit.steps, trained, scores))
            print(f"{dataset} {model}: {limit.steps} steps in {trained:.0f} s, "
                  f"FD {scores['fd']['value']:.2f} (floor {scores['fd']['floor']:.2f})", flush=True)
    lines = [
        f"Budget {args.budget_minutes:g} min per model on {os.cpu_count()} CPU cores "
        f"({platform.machine()}), batch 64, 28x28; {args.num_samples} samples vs the real test "
        "split; domain-classifier features.",
        "",
        "| data | model | steps | domain FD | FD floor | FD / floor | KID | KID floor "
        "| classifier score | real score |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, model, steps, _, scores in rows:
        fd, kid, score = scores["fd"], scores["kid"], scores["score"]
        lines.append(
            f"| {dataset} | {model} | {steps} | {fd['value']:.2f} | {fd['floor']:.2f} | "
            f"{fd['value'] / fd['floor']:.1f}x | {kid['value']:.3f} | {kid['floor']:.3f} | "
            f"{score['value']:.2f} | {score['floor']:.2f} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gan_zoo.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
