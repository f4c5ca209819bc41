"""The generation task's evaluators: FD, KID or classifier score of a generative run, with the
real floor, and the test NLL of a likelihood model.

The floor is the same figure between two real samples (the train and test splits), i.e. what
a perfect generator would score at this sample size. Image-to-image models evaluate themselves
(`ImageToImageModel.evaluate`, e.g. `kerasgen.models.restoration.evaluation`).
"""

import json
from pathlib import Path

import numpy as np

from kerasgen import data as kg_data
from kerasgen import features, metrics, store
from kerasgen.registry import get_preset
from kerasgen.training import default_run_dir, load_run, read_run_config

METRICS = ("fd", "kid", "score")  # sample quality; likelihood models add "nll"
LIKELIHOOD_REPORT = "likelihood.json"
FEATURES = ("domain", "inception")


def domain_classifier_dir(dataset):
    """Where `kerasgen train classifier --dataset DATASET` puts its run by default."""
    return default_run_dir("classifier", dataset, get_preset("classifier"))


def shipped_classifier_name(dataset):
    """The name of the shipped domain classifier of a dataset (`saved_models/`)."""
    return f"classifier_{dataset}"


def load_domain_classifier(dataset, image_shape, classifier_dir=None):
    """The trained domain classifier for a dataset, checked against the image shape.

    Looked up in `classifier_dir`, else the default run folder of `kerasgen train classifier
    --dataset DATASET`, else the shipped one (`saved_models/classifier_<dataset>`).
    """
    from kerasgen import store

    folder = Path(classifier_dir) if classifier_dir else domain_classifier_dir(dataset)
    shipped = store.saved_models_dir() / shipped_classifier_name(dataset)
    if not classifier_dir and not (folder / "model.keras").exists() and \
            (shipped / "model.keras").exists():
        folder = shipped
    if not (folder / "model.keras").exists():
        raise FileNotFoundError(
            f"No domain classifier for dataset {dataset!r} at {folder}. Train one with "
            f"`kerasgen train classifier --dataset {dataset}`, pass --classifier DIR, or use "
            "--features inception.")
    classifier = load_run(folder)
    if tuple(classifier.input_shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"The classifier at {folder} takes images of shape {classifier.input_shape[1:]}, the "
            f"run makes {tuple(image_shape)}; train one at that size (--image-size).")
    return classifier


def sample_input_batches(model, num_samples, batch_size=250, seed=0):
    """`model.sample_inputs` for seeds `seed ..`, in batches: what `generated_batches` draws
    from (a conditional model's inputs hold the labels its samples were asked for)."""
    for start in range(0, num_samples, batch_size):
        yield model.sample_inputs(min(batch_size, num_samples - start), seed=seed + start)


def generated_batches(model, num_samples, batch_size=250, seed=0, **generate_options):
    """Images in [-1, 1] from `model`, for seeds `seed ..`, in batches (`generate_options`:
    the model's sampling options, e.g. a diffusion model's `num_steps`)."""
    for inputs in sample_input_batches(model, num_samples, batch_size, seed):
        yield model.generate(inputs, **generate_options)


def _batches(images, batch_size=250):
    for start in range(0, len(images), batch_size):
        yield kg_data.to_float(images[start:start + batch_size])


def _make_metric(name, extractor, probabilities):
    if name == "fd":
        return metrics.FrechetDistance(feature_extractor=extractor)
    if name == "kid":
        return metrics.KernelInceptionDistance(feature_extractor=extractor)
    return metrics.ClassifierScore(classifier=probabilities)


def _measure(name, metric, real_batches, other_batches):
    for batch in real_batches:
        if name == "score":
            metric.update_state(batch)
        else:
            metric.update_state(real=batch)
    for batch in other_batches:
        if name != "score":
            metric.update_state(fake=batch)
    return float(metric.result())


def evaluate_run(run_dir, metric="fd", num_samples=10000, reference="test", feature_set="domain",
                 classifier_dir=None, data_dir=None, inception_weights="imagenet", seed=0,
                 generate_options=None, generated=None):
    """Score a generative run against real data.

    Args:
        run_dir: str. A generative run folder, or a shipped generative model's name.
        metric: str. `"fd"` (Frechet distance), `"kid"` or `"score"` (classifier score).
        num_samples: int. Generated samples, and real samples per side of the floor.
        reference: str. Real split compared with: `"train"` or `"test"`.
        feature_set: str. `"domain"` (kerasgen's classifier) or `"inception"` (InceptionV3).
        classifier_dir: str. Domain classifier run. Defaults to `runs/classifier[_<dataset>]`.
        data_dir: str. See `kerasgen.data`.
        inception_weights: see `kerasgen.features.inception_extractor`.
        seed: int. First sample seed.
        generate_options: dict. Keyword options of the model's `generate` (e.g. a diffusion
            model's `num_steps`, `guidance_scale`). Defaults to none.
        generated: list of image batches in [-1, 1] already drawn from the run's model (e.g.
            `generated_batches`' for these seeds and options), scored instead of sampling
            again: for a caller that also reads the samples. Defaults to None (sample).

    Returns:
        dict with `metric`, `value`, `floor` (the real train-vs-test figure; for the score,
        the real test images' score), `num_samples`, `features`.
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; valid: {list(METRICS)}.")
    if feature_set not in FEATURES:
        raise ValueError(f"Unknown features {feature_set!r}; valid: {list(FEATURES)}.")
    if reference not in ("train", "test"):
        raise ValueError(f"reference must be 'train' or 'test', got {reference!r}.")
    if metric == "score" and feature_set != "domain":
        raise ValueError("The classifier score needs the domain classifier (--features domain).")
    run_dir = store.model_folder(run_dir)
    config = read_run_config(run_dir)
    model = load_run(run_dir)
    image_shape = model.image_shape
    if feature_set == "domain":
        classifier = load_domain_classifier(config["dataset"], image_shape, classifier_dir)
        extractor = features.domain_extractor(classifier)
        probabilities = features.domain_probabilities(classifier)
    else:
        extractor = features.inception_extractor(inception_weights, channels=image_shape[-1])
        probabilities = None

    def real(split):
        images, _ = kg_data.load_arrays(config["dataset"], split, data_dir, config["image_size"])
        if len(images) > num_samples:
            images = images[np.random.default_rng(seed).choice(len(images), num_samples,
                                                               replace=False)]
        # Like with like: binary samples are compared with binarised real images.
        return model.as_samples(images, seed)

    reference_images = real(reference)
    fakes = generated if generated is not None else list(
        generated_batches(model, num_samples, seed=seed, **(generate_options or {})))
    if metric == "score":
        value = _measure(metric, _make_metric(metric, extractor, probabilities), fakes, [])
        floor = _measure(metric, _make_metric(metric, extractor, probabilities),
                         _batches(reference_images), [])
    else:
        value = _measure(metric, _make_metric(metric, extractor, probabilities),
                         _batches(reference_images), fakes)
        floor = _measure(metric, _make_metric(metric, extractor, probabilities),
                         _batches(real("train")), _batches(real("test")))
    return {"metric": metric, "value": value, "floor": floor, "num_samples": num_samples,
            "reference": reference, "features": feature_set, "dataset": config["dataset"]}


def evaluate_likelihood(run_dir, num_importance_samples=None, num_images=None, split="test",
                        data_dir=None, seed=0):
    """The test NLL (nats) of a likelihood model's run: importance-sampled with the negative
    ELBO for VAEs, exact for autoregressive models (`report["exact"]`).

    The protocol of the IWAE paper's tables: every test image of the run's dataset, binarised
    once with a fixed seed for a Bernoulli decoder, k = 5000 samples. The report is also
    written to `RUN_DIR/likelihood.json` (not into a shipped model's folder).

    Args:
        run_dir: str. A run of a likelihood model, or a shipped one's name.
        num_importance_samples: int. k. Defaults to the model's (5000 for VAEs, 100 for
            DRAW, whose every sample is a T-glimpse pass).
        num_images: int. Evaluate the first N images of the split only. Defaults to all.
        split: str. Defaults to `"test"`.
        data_dir: str. See `kerasgen.data`.
        seed: int. Seeds the binarisation and the importance samples. Defaults to 0.
    """
    if num_importance_samples is not None and num_importance_samples < 1:
        raise ValueError(f"--k must be at least 1, got {num_importance_samples}.")
    run_dir = store.model_folder(run_dir)
    config = read_run_config(run_dir)
    model = load_run(run_dir)
    if not model.has_likelihood:
        raise ValueError(f"{run_dir} holds a {model.name!r} model, which has no likelihood; "
                         "--metric nll is for likelihood models (the VAE family, PixelCNN); "
                         "use fd, kid or score.")
    images, labels = kg_data.load_arrays(config["dataset"], split, data_dir, config["image_size"])
    if num_images is not None:
        images, labels = images[:num_images], None if labels is None else labels[:num_images]
    report = model.log_likelihood_report(images, labels if model.conditional else None,
                                         num_samples=num_importance_samples, seed=seed)
    report.update({"metric": "nll", "dataset": config["dataset"], "split": split})
    if not store.is_shipped(run_dir):  # the checkout's shipped models stay as they are
        (run_dir / LIKELIHOOD_REPORT).write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


# --- the forecasting task's evaluator ---------------------------------------------------------

FORECAST_CHUNK = 100  # sequences per forecast call (bounds the SSIM maps' memory)


def frame_errors(predicted, truth):
    """Per frame `(MSE, SSIM)`, each `[N, T]`, of uint8 sequences `[N, T, H, W, C]`: the squared
    error summed over the frame with intensities in [0, 1] (the Moving MNIST papers' per-frame
    MSE) and SSIM (Wang et al.'s Gaussian window, `kerasgen.metrics.ssim`)."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise ValueError(f"Forecast {list(predicted.shape)} and truth {list(truth.shape)} differ "
                         "in shape.")
    count, frames = truth.shape[:2]
    error = (predicted.astype(np.float64) / 255.0 - truth.astype(np.float64) / 255.0) ** 2
    mse = error.reshape(count, frames, -1).sum(axis=-1)
    ssim = metrics.ssim(truth.reshape(-1, *truth.shape[2:]),
                        predicted.reshape(-1, *truth.shape[2:])).numpy().reshape(count, frames)
    return mse, ssim


def forecast_report(model, sequences, dataset, seed):
    """A `FrameForecaster`'s per-frame MSE and SSIM on uint8 test `sequences` (its
    `num_frames` long), beside the copy-last-frame baseline (every future frame = the last
    input frame).

    Returns:
        `{"model": {...}, "copy_last": {...}, "num_sequences", "dataset", "seed", "lines"}`,
        each method's `{"mse", "ssim", "mse_per_frame", "ssim_per_frame"}`.
    """
    sequences = np.asarray(sequences)
    inputs, truth = (sequences[:, :model.num_input_frames],
                     sequences[:, model.num_input_frames:model.num_frames])
    errors = {"model": [], "copy_last": []}
    for start in range(0, len(sequences), FORECAST_CHUNK):
        chunk = slice(start, start + FORECAST_CHUNK)
        errors["model"].append(frame_errors(model.forecast(inputs[chunk]), truth[chunk]))
        last = np.repeat(inputs[chunk, -1:], model.num_output_frames, axis=1)
        errors["copy_last"].append(frame_errors(last, truth[chunk]))
    report = {"dataset": dataset, "num_sequences": int(len(sequences)), "seed": int(seed)}
    for method, parts in errors.items():
        mse, ssim = (np.concatenate([part[index] for part in parts]) for index in (0, 1))
        report[method] = {"mse": float(mse.mean()), "ssim": float(ssim.mean()),
                          "mse_per_frame": mse.mean(axis=0).round(2).tolist(),
                          "ssim_per_frame": ssim.mean(axis=0).round(4).tolist()}
    size, name = model.frame_size, "MNIST" if dataset == "mnist" else dataset
    report["lines"] = [
        f"Moving {name} ({len(sequences)} sequences generated from the test digits, seed "
        f"{seed}; not the published file), {model.num_output_frames} frames forecast from "
        f"{model.num_input_frames}, {size}x{size}:",
        *(f"  {label:28s} per-frame MSE {report[method]['mse']:8.2f}   SSIM "
          f"{report[method]['ssim']:.4f}"
          for method, label in (("model", model.name), ("copy_last", "copy the last frame"))),
        "  MSE by frame: " + " ".join(f"{value:.1f}"
                                      for value in report["model"]["mse_per_frame"]),
    ]
    return report
