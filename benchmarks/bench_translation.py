"""CycleGAN on horse2zebra at 128x128 for a stated CPU budget: time, cycle error, success.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_translation.py \
        [--epochs 12] [--steps-per-epoch 200] [--out benchmarks/results/translation]

Trains `kerasgen train cyclegan --dataset horse2zebra --image-size 128` (ResNet generators with
6 residual blocks at this size, the paper's choice for 128x128; batch 1; Adam 2e-4 constant for
half the epochs, then linearly decaying), a run folder that is already complete is evaluated as
it is. Then a horse-vs-zebra classifier (`evaluation.train_domain_classifier`, trained on the
real train images at 64x64, its test accuracy reported) labels the translated test images:
translation success is the share of translated horses it calls zebras, and vice versa, beside
the same share for untranslated images (the floor). Cycle L1 is |F(G(a)) - a| in 8-bit levels
on the test split. FID (InceptionV3 pool features) is computed when the ImageNet weights are
on the machine. Writes OUT/translation.md and OUT/translation.json. Not part of the tests.

Anchor (orientation only, 256x256 and the full 1,067 + 1,334 training images for 200 epochs):
CycleGAN FID 77.2 on horse->zebra (as reported by CUT, Park et al. 2020, which reaches 45.5).
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from kerasgen import features, metrics, training  # noqa: E402
from kerasgen.data import to_float  # noqa: E402
from kerasgen.data import translation as tdata  # noqa: E402
from kerasgen.models.translation import evaluation  # noqa: E402

IMAGE_SIZE = 128
CLASSIFIER_SIZE = 64


def fid_or_reason(model, images_a, images_b):
    """FID of G(test horses) against the real test zebras, or why it was not computed."""
    try:
        extractor = features.inception_extractor()
    except FileNotFoundError as error:
        return None, f"not computed: {str(error).split('.')[0]}"
    distance = metrics.FrechetDistance(extractor)
    for start in range(0, len(images_a), 8):
        fake = model.translate(images_a[start:start + 8], "a2b")
        distance.update_state(fake=to_float(fake))
    for start in range(0, len(images_b), 8):
        distance.update_state(real=to_float(images_b[start:start + 8]))
    return float(distance.result()), "InceptionV3 pool features, 120 fakes vs 140 real"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps-per-epoch", type=int, default=200)
    parser.add_argument("--classifier-epochs", type=int, default=25)
    parser.add_argument("--out", default="benchmarks/results/translation")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    train_a, train_b = tdata.load_unpaired("horse2zebra", "train")
    test_a, test_b = tdata.load_unpaired("horse2zebra", "test")
    test_a = tdata.resized_arrays(test_a, IMAGE_SIZE)
    test_b = tdata.resized_arrays(test_b, IMAGE_SIZE)

    classifier_path = out / "horse_zebra_classifier.keras"
    if classifier_path.exists():
        classifier = keras.models.load_model(classifier_path)
    else:
        classifier = evaluation.train_domain_classifier(
            train_a, train_b, CLASSIFIER_SIZE, epochs=args.classifier_epochs)
        classifier.save(classifier_path)

    run_dir = out / "cyclegan_horse2zebra_128"
    start, cpu_start = time.perf_counter(), time.process_time()
    result = training.train("cyclegan", dataset="horse2zebra", image_size=IMAGE_SIZE,
                            epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                            out_dir=run_dir, verbose=2)
    trained_epochs = result.epochs - result.initial_epoch
    timing_path = run_dir / "train_time.json"
    if trained_epochs:
        timing = {"wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu_start,
                  "epochs": trained_epochs}
        timing_path.write_text(json.dumps(timing))
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    model = result.model

    report = evaluation.evaluate_translation(model, test_a, test_b, classifier)
    report["fid_a2b"], report["fid_note"] = fid_or_reason(model, test_a, test_b)
    report.update({
        "image_size": IMAGE_SIZE, "residual_blocks": sum(
            1 for layer in model.generator_a2b.layers if layer.name.endswith("_add")),
        "generator_params": model.generator_a2b.count_params(),
        "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": 1,
        "seconds_per_epoch": timing["wall_s"] / timing["epochs"] if timing else None,
        "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "translations_png": str(run_dir / "translations.png"),
    })
    (out / "translation.json").write_text(json.dumps(report, indent=2))
    fid = "n/a" if report["fid_a2b"] is None else f"{report['fid_a2b']:.1f}"
    lines = [
        "| model | data | size | G blocks | training | s/epoch | cycle L1 A / B (levels) | "
        "success h→z / z→h | floor (untranslated) | classifier acc. | FID h→z |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| cyclegan | horse2zebra (200+200 train) | {IMAGE_SIZE}² | {report['residual_blocks']} | "
        f"{args.epochs} epochs × {args.steps_per_epoch} steps, batch 1 | "
        f"{report['seconds_per_epoch'] or float('nan'):.0f} | {report['cycle_l1_a']:.1f} / "
        f"{report['cycle_l1_b']:.1f} | {report['a2b_success']:.1%} / {report['b2a_success']:.1%} | "
        f"{report['real_a_as_b']:.1%} / {report['real_b_as_a']:.1%} | "
        f"{report['classifier_accuracy']:.1%} | {fid} |",
        "", f"FID: {report['fid_note']}. Samples: {report['translations_png']}. "
        f"CPU: {report['cpu']}. Anchor: CycleGAN FID 77.2 at 256² (CUT 45.5).",
    ]
    (out / "translation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
