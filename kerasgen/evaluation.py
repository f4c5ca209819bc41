"""`kerasgen evaluate`: FD, KID or classifier score of a generative run, with the real floor.

The floor is the same figure between two real samples (the train and test splits), i.e. what
a perfect generator would score at this sample size.
"""

import json
from pathlib import Path

import numpy as np

from kerasgen import data as kg_data
from kerasgen import features, metrics
from kerasgen.registry import get_preset
from kerasgen.training import RUN_CONFIG, default_run_dir, load_run

METRICS = ("fd", "kid", "score")  # sample quality; likelihood models add "nll"
LIKELIHOOD_REPORT = "likelihood.json"
FEATURES = ("domain", "inception")


def _run_config(run_dir):
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass a folder written by `kerasgen train`.")
    return json.loads(path.read_text())


def domain_classifier_dir(dataset):
    """Where `kerasgen train classifier --dataset DATASET` puts its run by default."""
    return default_run_dir("classifier", dataset, get_preset("classifier"))


def load_domain_classifier(dataset, image_shape, classifier_dir=None):
    """The trained domain classifier for a dataset, checked against the image shape."""
    folder = Path(classifier_dir) if classifier_dir else domain_classifier_dir(dataset)
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


def generated_batches(model, num_samples, batch_size=250, seed=0):
    """Images in [-1, 1] from `model`, for seeds `seed ..`, in batches."""
    for start in range(0, num_samples, batch_size):
        count = min(batch_size, num_samples - start)
        yield model.generate(model.sample_inputs(count, seed=seed + start))


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
                 classifier_dir=None, data_dir=None, inception_weights="imagenet", seed=0):
    """Score a generative run against real data.

    Args:
        run_dir: str. A generative run folder.
        metric: str. `"fd"` (Frechet distance), `"kid"` or `"score"` (classifier score).
        num_samples: int. Generated samples, and real samples per side of the floor.
        reference: str. Real split compared with: `"train"` or `"test"`.
        feature_set: str. `"domain"` (kerasgen's classifier) or `"inception"` (InceptionV3).
        classifier_dir: str. Domain classifier run. Defaults to `runs/classifier[_<dataset>]`.
        data_dir: str. See `kerasgen.data`.
        inception_weights: see `kerasgen.features.inception_extractor`.
        seed: int. First sample seed.

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
    config = _run_config(run_dir)
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
        return images

    reference_images = real(reference)
    fakes = list(generated_batches(model, num_samples, seed=seed))
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


def evaluate_likelihood(run_dir, num_importance_samples=5000, num_images=None, split="test",
                        data_dir=None, seed=0):
    """Importance-sampled NLL and negative ELBO (nats) of a likelihood model's run.

    The protocol of the IWAE paper's tables: every test image of the run's dataset, binarised
    once with a fixed seed for a Bernoulli decoder, k = 5000 samples. The report is also
    written to `RUN_DIR/likelihood.json`.

    Args:
        run_dir: str. A run of a VAE-family model.
        num_importance_samples: int. k. Defaults to 5000.
        num_images: int. Evaluate the first N images of the split only. Defaults to all.
        split: str. Defaults to `"test"`.
        data_dir: str. See `kerasgen.data`.
        seed: int. Seeds the binarisation and the importance samples. Defaults to 0.
    """
    if num_importance_samples < 1:
        raise ValueError(f"--k must be at least 1, got {num_importance_samples}.")
    config = _run_config(run_dir)
    model = load_run(run_dir)
    if not hasattr(model, "importance_sampled_nll"):
        raise ValueError(f"{run_dir} holds a {model.name!r} model, which has no likelihood; "
                         "--metric nll is for the VAE family (fd, kid or score for GANs).")
    images, labels = kg_data.load_arrays(config["dataset"], split, data_dir, config["image_size"])
    if num_images is not None:
        images, labels = images[:num_images], None if labels is None else labels[:num_images]
    from kerasgen.models.vae import log_likelihood_report

    report = log_likelihood_report(
        model, images, labels if get_preset(config["model"]).uses_labels else None,
        num_samples=num_importance_samples, seed=seed)
    report.update({"metric": "nll", "dataset": config["dataset"], "split": split})
    path = Path(run_dir) / LIKELIHOOD_REPORT
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    return report


# --- restoration: the papers' protocols ------------------------------------------------------

def _rounded(images):
    """float images in [0, 1] -> float64 levels 0..255, clamped and rounded (a uint8 image)."""
    return np.round(np.clip(np.asarray(images, np.float64), 0.0, 1.0) * 255.0)


def denoising_rows(model, images, sigma, seed=0):
    """Per-image `(psnr, ssim)` of a denoiser by the KAIR protocol.

    uint8 -> [0, 1], plus N(0, sigma / 255) noise from `default_rng([seed, index])`, no
    clipping of the noisy input; output clamped and rounded to uint8; full-image PSNR/SSIM.
    """
    network_sigma = float(sigma) if model.takes_sigma else None
    rows = []
    for index, image in enumerate(images):
        clean = image.astype(np.float32) / 255.0
        noise = np.random.default_rng([seed, index]).normal(0.0, sigma / 255.0, clean.shape)
        restored = model.restore_float((clean + noise.astype(np.float32))[None], network_sigma)
        output = _rounded(restored.numpy())
        rows.append((float(metrics.psnr(image[None], output)[0]),
                     float(metrics.ssim(image[None], output)[0])))
    return rows


def super_resolution_rows(model, high, low, scale):
    """Per-image `(psnr, ssim)` of an SR model (or bicubic for `model=None`), SR protocol.

    HR mod-cropped to the scale, LR = the shipped bicubic files, BT.601 Y of the rounded output
    against Y of the HR, `scale` border pixels shaved. Y models super-resolve the LR luma.
    """
    from kerasgen.data import restoration as restoration_data

    rows = []
    for hr, lr in zip(high, low):
        lr = restoration_data.as_channels(lr, 3).astype(np.float32)[None] / 255.0
        if model is None:
            output = restoration_data.bicubic_upscale(lr, scale)
        elif model.color == "y":
            luma = restoration_data.rgb_to_ycbcr(lr)[..., :1]
            output = model.network(luma, training=False)
        else:
            output = model.restore_float(lr)
        output = _rounded(np.asarray(output))
        hr = restoration_data.as_channels(hr, 3)[None]
        rows.append((float(metrics.psnr(hr, output, y_channel=True, crop_border=scale)[0]),
                     float(metrics.ssim(hr, output, y_channel=True, crop_border=scale)[0])))
    return rows


def evaluate_restoration(model, dataset, sigma=None, scale=None, data_dir=None, seed=0):
    """PSNR/SSIM of a restoration model on a benchmark set by the standard protocol.

    Args:
        model: a `Restorer`, or None with an SR set for the bicubic baseline.
        dataset: str. `BSD68`, `Set12`, `CBSD68` (denoising) or `Set5`, `Set14` (SR).
        sigma: float. Noise level (denoising). Defaults to a fixed-sigma model's own.
        scale: int. SR factor. Defaults to the model's.
        data_dir: str. The data directory. Defaults to `$KERASGEN_DATA_DIR`.
        seed: int. Seeds the noise. Defaults to 0.

    Returns:
        dict with `rows` (`[{"image", "psnr", "ssim"}]`), `psnr`, `ssim` (means), `dataset`,
        `sigma`, `scale`, `num_images`.
    """
    from kerasgen.data import restoration as restoration_data

    if dataset not in restoration_data.TEST_SETS:
        raise ValueError(f"Unknown benchmark set {dataset!r}; valid: "
                         f"{sorted(restoration_data.TEST_SETS)}.")
    _, channels, task = restoration_data.TEST_SETS[dataset]
    if model is not None and model.task != task:
        raise ValueError(f"{dataset} is a {task.replace('_', '-')} set and this is a "
                         f"{model.task.replace('_', '-')} model.")
    if task == "denoise":
        if scale is not None:
            raise ValueError("--scale applies to super-resolution sets.")
        sigma = model.sigma if sigma is None else float(sigma)
        if sigma is None:
            raise ValueError("This model denoises a range of levels; pass sigma (--sigma N).")
        if not 0.0 <= sigma <= 75.0:
            raise ValueError(f"sigma={sigma} is out of range [0, 75].")
        if model.image_channels != channels:
            kind = {1: "grey", 3: "colour"}
            raise ValueError(f"{dataset} is a {kind[channels]} set and this model restores "
                             f"{kind[model.image_channels]} images.")
        images = restoration_data.load_images(dataset, data_dir)
        names = restoration_data.image_names(dataset, data_dir)
        rows = denoising_rows(model, images, sigma, seed)
    else:
        if sigma is not None:
            raise ValueError("--sigma applies to denoising sets.")
        if model is None and scale is None:
            raise ValueError("The bicubic baseline needs a scale.")
        scale = int(scale or model.scale)
        restoration_data.check_scale(scale)
        if model is not None and scale != model.scale:
            raise ValueError(f"This model super-resolves x{model.scale}, not x{scale}.")
        high, low, names = restoration_data.load_sr_pairs(dataset, scale, data_dir)
        rows = super_resolution_rows(model, high, low, scale)
    psnrs, ssims = zip(*rows)
    return {
        "dataset": dataset, "sigma": sigma, "scale": scale, "num_images": len(rows),
        "rows": [{"image": name, "psnr": p, "ssim": s} for name, (p, s) in zip(names, rows)],
        "psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)),
    }


def restoration_table(report):
    """Lines of a per-image and mean PSNR/SSIM table of `evaluate_restoration`'s report."""
    setting = (f"sigma={report['sigma']:g}" if report["sigma"] is not None
               else f"x{report['scale']}, Y channel, {report['scale']}-pixel border shaved")
    width = max(len(row["image"]) for row in report["rows"])
    lines = [f"{report['dataset']} ({setting}, {report['num_images']} images)",
             f"{'image':{width}s}  PSNR (dB)  SSIM"]
    lines += [f"{row['image']:{width}s}  {row['psnr']:9.2f}  {row['ssim']:.4f}"
              for row in report["rows"]]
    lines.append(f"{'mean':{width}s}  {report['psnr']:9.2f}  {report['ssim']:.4f}")
    return lines


# --- image-to-image translation --------------------------------------------------------------

def train_domain_classifier(images_a, images_b, image_size=64, epochs=20, batch_size=32,
                            seed=0):
    """A two-way classifier (0: domain A, 1: domain B) trained on real images.

    It judges translations (`evaluate_translation`): a horse->zebra translation succeeds when
    it labels the output a zebra. Horizontal flips double the training images.
    """
    from kerasgen.data.translation import resized_arrays
    from kerasgen.models.classifier import build_classifier, compile_classifier

    images = np.concatenate([resized_arrays(images_a, image_size),
                             resized_arrays(images_b, image_size)])
    labels = np.array([0] * len(images_a) + [1] * len(images_b), np.int64)
    images = np.concatenate([images, images[:, :, ::-1]])
    labels = np.concatenate([labels, labels])
    classifier = compile_classifier(build_classifier((image_size, image_size, 3), 2, seed=seed))
    train_data = kg_data.dataset_from_arrays(images, labels, batch_size=batch_size, seed=seed)
    classifier.fit(train_data, epochs=epochs, verbose=0)
    return classifier


def domain_b_probability(classifier, images, batch_size=32):
    """P(domain B) per uint8 RGB image, from a `train_domain_classifier` model."""
    import tensorflow as tf

    size = classifier.input_shape[1:3]
    probabilities = []
    for start in range(0, len(images), batch_size):
        batch = kg_data.resize_uint8(np.asarray(images[start:start + batch_size]), size)
        logits = classifier(kg_data.to_float(batch), training=False)
        probabilities.append(tf.nn.softmax(logits)[:, 1].numpy())
    return np.concatenate(probabilities)


def evaluate_translation(model, images_a, images_b, classifier, batch_size=8):
    """Translation success and cycle error of a CycleGAN on test images of both domains.

    Args:
        model: a `CycleGAN`.
        images_a, images_b: uint8 RGB arrays `[N, H, W, 3]` (test splits, any one size).
        classifier: a `train_domain_classifier` model.

    Returns:
        dict: `a2b_success` (share of G(a) the classifier labels B), `b2a_success`, their
        floors on untranslated images (`real_a_as_b`, `real_b_as_a`), the classifier's
        accuracy on the real images, and `cycle_l1_a` / `cycle_l1_b`, the mean absolute
        difference between an image and its translation back, in 8-bit levels.
    """
    def translate(images, direction):
        return np.concatenate([model.translate(images[start:start + batch_size],
                                               direction).numpy()
                               for start in range(0, len(images), batch_size)])

    report = {"test_images_a": int(len(images_a)), "test_images_b": int(len(images_b))}
    real_a, real_b = (domain_b_probability(classifier, images) for images in (images_a,
                                                                              images_b))
    report["classifier_accuracy"] = float(np.mean(np.concatenate([real_a < 0.5,
                                                                   real_b >= 0.5])))
    report["real_a_as_b"], report["real_b_as_a"] = float(np.mean(real_a >= 0.5)), float(
        np.mean(real_b < 0.5))
    fake_b, fake_a = translate(images_a, "a2b"), translate(images_b, "b2a")
    report["a2b_success"] = float(np.mean(domain_b_probability(classifier, fake_b) >= 0.5))
    report["b2a_success"] = float(np.mean(domain_b_probability(classifier, fake_a) < 0.5))
    for name, real, fake, back in (("a", images_a, fake_b, "b2a"),
                                   ("b", images_b, fake_a, "a2b")):
        cycled = translate(fake, back)
        report[f"cycle_l1_{name}"] = float(np.mean(np.abs(cycled.astype(np.float64) - real)))
    return report
