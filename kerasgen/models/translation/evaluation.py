"""Translation evaluation: domain success of a CycleGAN (a classifier trained on real images
labels its translations), cycle error, and PSNR/SSIM of pix2pix outputs against targets."""

import numpy as np

from kerasgen import data as kg_data
from kerasgen import metrics


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


def translation_lines(report):
    """Lines that print an `evaluate_translation` or `evaluate_paired` report."""
    return [f"{key:22s} {value:.4f}" if isinstance(value, float) else f"{key:22s} {value}"
            for key, value in report.items() if key != "lines"]


def evaluate_paired(model, inputs, targets):
    """Mean PSNR/SSIM (RGB, 8-bit) of a pix2pix model's outputs against the test targets."""
    psnrs, ssims = [], []
    for image_in, image_out in zip(inputs, targets):
        output = model.apply(image_in).numpy().astype(np.float64)
        target = image_out[None].astype(np.float64)
        psnrs.append(float(metrics.psnr(target, output)[0]))
        ssims.append(float(metrics.ssim(target, output)[0]))
    return {"test_pairs": len(psnrs), "psnr": float(np.mean(psnrs)),
            "ssim": float(np.mean(ssims))}
