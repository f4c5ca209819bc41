"""Diffusion benchmark of a trained run: the DDIM steps table (domain FD at 10 / 20 / 50 / 100
steps, as in table 1 of Song et al. 2021), sampling speed (float32 and the bf16 policy, 20 and
50 steps), for class-conditional runs the guidance table (FD and the share of samples that the
domain classifier labels as asked, per guidance scale), and for unconditional runs inpainting
on test digits beside the classical inpainters.

    KERASGEN_DATA_DIR=../shared/data python benchmarks/bench_diffusion.py RUN_DIR \
        [--num-samples 2000] [--steps 10 20 50 100] [--guidance 0 1 2 4] \
        [--inpaint-images 100] [--out FILE.json]

FD uses kerasgen's domain classifier of the run's dataset (the shipped one when no
`runs/classifier_<dataset>` exists) against the real test split, with the real floor (train
vs test) at the same sample count. Inpainting: the first N test images of the run's dataset,
one fixed seeded mask per image and bucket (`inpainting.masks.mask_set`, the inpainting
benchmark's protocol), the model's RePaint-style sampler (`DDPM.inpaint`) against OpenCV
Telea / Navier-Stokes and scikit-image biharmonic. Not part of the test suite.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasgen import data as kg_data  # noqa: E402
from kerasgen import evaluation, training  # noqa: E402
from kerasgen.data import to_uint8  # noqa: E402


def steps_table(run_dir, steps, num_samples, seed=0):
    rows = []
    for count in steps:
        start = time.perf_counter()
        result = evaluation.evaluate_run(run_dir, "fd", num_samples=num_samples, seed=seed,
                                         generate_options={"num_steps": count})
        rows.append({"steps": count, "fd": result["value"], "floor": result["floor"],
                     "ratio": result["value"] / result["floor"],
                     "seconds": time.perf_counter() - start})
        print(f"DDIM {count} steps: FD {result['value']:.3f} (floor {result['floor']:.3f}, "
              f"{rows[-1]['ratio']:.2f}x)", file=sys.stderr, flush=True)
    return rows


def label_accuracy(classifier, inputs, images):
    """Share of a conditional model's samples (`images`, drawn for the `(seeds, labels)`
    batches `inputs`) that the domain classifier assigns to their label."""
    correct = sum(int(np.sum(np.argmax(classifier.predict(batch, verbose=0), axis=-1)
                             == labels.numpy())) for batch, (_, labels) in zip(images, inputs))
    return correct / sum(len(batch) for batch in images)


def guidance_table(run_dir, model, scales, num_samples, num_steps, seed=0):
    """FD (against the test split, with its floor) and label accuracy per guidance scale
    (Ho & Salimans 2022: 0 samples unconditionally, 1 conditionally, above 1 is guided); both
    read the same samples (labels cycling over the classes, as `sample_inputs` gives them)."""
    config = training.read_run_config(run_dir)
    classifier = evaluation.load_domain_classifier(config["dataset"], model.image_shape)
    inputs = list(evaluation.sample_input_batches(model, num_samples, seed=seed))
    rows = []
    for scale in scales:
        options = {"num_steps": num_steps, "guidance_scale": scale}
        images = [model.generate(batch, **options) for batch in inputs]
        result = evaluation.evaluate_run(run_dir, "fd", num_samples=num_samples, seed=seed,
                                         generated=images)
        rows.append({"guidance_scale": scale, "steps": num_steps, "fd": result["value"],
                     "floor": result["floor"], "ratio": result["value"] / result["floor"],
                     "label_accuracy": label_accuracy(classifier, inputs, images)})
        print(f"guidance {scale}: FD {result['value']:.3f} ({rows[-1]['ratio']:.2f}x the floor "
              f"{result['floor']:.3f}), label accuracy {rows[-1]['label_accuracy']:.1%}",
              file=sys.stderr, flush=True)
    return rows


def with_policy(run_dir, model, policy):
    """The run's model rebuilt under a dtype policy, with the sampling network's weights."""
    from kerasgen import registry

    config = training.read_run_config(run_dir)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        extra = {"num_classes": model.num_classes} if model.conditional else {}
        copy = registry.get_preset(config["model"]).build(
            model.image_shape, seed=0, **config["model_kwargs"], **extra)
    finally:
        keras.config.set_dtype_policy(previous)
    weights = model.inference_network.get_weights()
    copy.network.set_weights(weights)
    copy.ema_network.set_weights(weights)
    return copy


def sampling_speed(run_dir, model, steps=(20, 50), batch_size=100, repeats=2):
    rows = []
    for policy in ("float32", "mixed_bfloat16"):
        # Rebuilt under each policy: a run trained in bf16 loads computing in bf16.
        policy_model = with_policy(run_dir, model, policy)
        for count in steps:
            inputs = policy_model.sample_inputs(batch_size)
            policy_model.generate(inputs, num_steps=count)  # trace
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                policy_model.generate(inputs, num_steps=count)
                times.append(time.perf_counter() - start)
            rows.append({"policy": policy, "steps": count,
                         "images_per_second": batch_size / min(times)})
            print(f"{policy}, {count} steps: {rows[-1]['images_per_second']:.1f} images/s",
                  file=sys.stderr, flush=True)
    return rows


class DiffusionInpainter:
    """`apply(image, mask=)` of the inpainting benchmark around `DDPM.inpaint`."""

    def __init__(self, model, num_steps=50, resample=1):
        self.model, self.num_steps, self.resample = model, num_steps, resample
        self.image_channels = model.image_shape[-1]

    def apply(self, image, mask):
        images = kg_data.to_float(np.asarray(image)[None])
        filled = self.model.inpaint(images, np.asarray(mask, np.float32)[None],
                                    num_steps=self.num_steps, resample=self.resample)
        return to_uint8(filled).numpy()


def inpainting(model, dataset, num_images, data_dir=None, num_steps=50, resample=1):
    from kerasgen.models.inpainting.evaluation import evaluate_inpainting, inpainting_table

    images, _ = kg_data.load_arrays(dataset, "test", data_dir)
    with tempfile.TemporaryDirectory() as folder:
        for index, image in enumerate(images[:num_images]):
            tf.io.write_file(f"{folder}/{index:05d}.png", tf.io.encode_png(image))
        report = evaluate_inpainting(DiffusionInpainter(model, num_steps, resample), folder,
                                     kind="freeform",
                                     grid=f"diffusion_inpainting_{dataset}.png")
    print("\n".join(inpainting_table(report)), file=sys.stderr)
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 50, 100])
    parser.add_argument("--guidance", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0],
                        help="guidance scales of the conditional table (at 50 DDIM steps)")
    parser.add_argument("--inpaint-images", type=int, default=100)
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["fd", "speed", "guidance", "inpaint"])
    parser.add_argument("--out", default=None, help="JSON report (default: RUN_DIR/bench.json)")
    args = parser.parse_args()
    model = training.load_run(args.run_dir)
    config = training.read_run_config(args.run_dir)
    report = {"run": str(args.run_dir), "num_samples": args.num_samples}
    if "fd" not in args.skip:
        report["steps_table"] = steps_table(args.run_dir, args.steps, args.num_samples)
    if "guidance" not in args.skip and model.conditional:
        report["guidance_table"] = guidance_table(args.run_dir, model, args.guidance,
                                                  args.num_samples, num_steps=50)
    if "speed" not in args.skip:
        report["sampling_speed"] = sampling_speed(args.run_dir, model)
    if "inpaint" not in args.skip and not model.conditional:
        report["inpainting"] = inpainting(model, config["dataset"], args.inpaint_images)
    out = Path(args.out or Path(args.run_dir) / "bench.json")
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
