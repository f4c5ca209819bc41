"""FD, KID, classifier score; the domain classifier; `kerasgen evaluate`."""

import numpy as np
import pytest

from kerasgen import cli, evaluation, features, training
from kerasgen.data import load_arrays, to_float
from kerasgen.metrics import (ClassifierScore, FrechetDistance, KernelInceptionDistance,
                              frechet_distance, kernel_mmd2, polynomial_kernel)
from kerasgen.models.classifier import build_classifier, compile_classifier


def test_frechet_distance_closed_form_for_gaussians():
    mean_a, mean_b = np.zeros(4), np.array([1.0, 0.0, 0.0, 2.0])
    var_a, var_b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 2.0, 1.0, 4.0])
    # Diagonal covariances: FD = |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
    expected = 5.0 + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert frechet_distance(mean_a, np.diag(var_a), mean_b, np.diag(var_b)) == pytest.approx(expected)
    # A full covariance against a direct eigen-decomposition square root.
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    cov_a, cov_b = a @ a.T + np.eye(4), b @ b.T + np.eye(4)
    values, vectors = np.linalg.eigh(cov_a)
    root_a = vectors @ np.diag(np.sqrt(values)) @ vectors.T
    # Tr((A B)^(1/2)) = Tr((A^(1/2) B A^(1/2))^(1/2)), a symmetric PSD root.
    inner_values = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    direct = np.trace(cov_a) + np.trace(cov_b) - 2 * np.sum(np.sqrt(inner_values))
    assert frechet_distance(np.zeros(4), cov_a, np.zeros(4), cov_b) == pytest.approx(direct, rel=1e-6)
    assert frechet_distance(np.ones(4), cov_a, np.ones(4), cov_a) == pytest.approx(0.0, abs=1e-6)


def test_streaming_frechet_distance_matches_batch_and_samples():
    rng = np.random.default_rng(1)
    real = rng.normal([0, 0, 0], [1, 2, 3], (60000, 3))
    fake = rng.normal([1, 0, 0], [1, 1, 3], (60000, 3))
    metric = FrechetDistance(num_features=3)
    for start in range(0, 60000, 7000):  # uneven batches
        metric.update_state(real=real[start:start + 7000], fake=fake[start:start + 7000])
    direct = frechet_distance(real.mean(0), np.cov(real, rowvar=False),
                              fake.mean(0), np.cov(fake, rowvar=False))
    assert float(metric.result()) == pytest.approx(direct, rel=1e-5)
    assert float(metric.result()) == pytest.approx(1.0 + 1.0, rel=0.03)  # closed form: 1 + (2-1)^2
    metric.reset_state()
    with pytest.raises(ValueError, match="at least 2 real samples"):
        metric.result()


def test_kid_against_direct_computation():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(40, 5)), rng.normal(0.5, 1.0, size=(30, 5))
    # The unbiased estimator written out with loops.
    def k(x, y):
        return (x @ y / 5 + 1) ** 3
    xx = sum(k(real[i], real[j]) for i in range(40) for j in range(40) if i != j) / (40 * 39)
    yy = sum(k(fake[i], fake[j]) for i in range(30) for j in range(30) if i != j) / (30 * 29)
    xy = sum(k(x, y) for x in real for y in fake) / (40 * 30)
    assert kernel_mmd2(real, fake) == pytest.approx(xx + yy - 2 * xy, rel=1e-9)
    assert polynomial_kernel(real[:2], fake[:3]).shape == (2, 3)
    metric = KernelInceptionDistance(subset_size=30, num_subsets=1)
    metric.update_state(real=real[:30], fake=fake)
    assert float(metric.result()) == pytest.approx(kernel_mmd2(real[:30], fake), rel=1e-9)
    same = KernelInceptionDistance(subset_size=500, num_subsets=20)
    samples = rng.normal(size=(4000, 5))
    same.update_state(real=samples[:2000], fake=samples[2000:])
    assert abs(float(same.result())) < 0.05 < kernel_mmd2(real, fake)


def test_classifier_score_known_values():
    confident = np.eye(4)[np.arange(400) % 4]
    metric = ClassifierScore(num_classes=4)
    metric.update_state(confident[:150])
    metric.update_state(confident[150:])
    assert float(metric.result()) == pytest.approx(4.0, rel=1e-6)  # K for confident, balanced
    collapsed = ClassifierScore(num_classes=4)
    collapsed.update_state(np.tile([[0.7, 0.1, 0.1, 0.1]], (50, 1)))
    assert float(collapsed.result()) == pytest.approx(1.0, rel=1e-6)  # one class: 1


@pytest.mark.slow
def test_domain_classifier_small_run_accuracy(data_dir):
    """A short run on 12,000 MNIST images already classifies the test set well."""
    images, labels = load_arrays("mnist", "train", data_dir)
    test_images, test_labels = load_arrays("mnist", "test", data_dir)
    classifier = compile_classifier(build_classifier((28, 28, 1), 10, seed=0))
    classifier.fit(to_float(images[:12000]), labels[:12000], batch_size=128, epochs=2, verbose=0)
    _, accuracy = classifier.evaluate(to_float(test_images[:2000]), test_labels[:2000], verbose=0)
    assert accuracy >= 0.93  # 94.5% measured; the full 8-epoch run reaches 99.15%
    extractor = features.domain_extractor(classifier)
    assert extractor(to_float(test_images[:3])).shape == (3, 128)


def test_inception_extractor_shapes_and_offline_error(monkeypatch, tmp_path):
    extractor = features.inception_extractor(weights=None, channels=1)
    assert extractor(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 2048)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delenv(features.INCEPTION_WEIGHTS_ENV, raising=False)
    if features._network_reachable():
        pytest.skip("online: the weights would be downloaded")
    with pytest.raises(FileNotFoundError, match="KERASGEN_INCEPTION_WEIGHTS"):
        features.inception_extractor()


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    common = dict(dataset="digits", image_size=16, batch_size=32, export_formats=(), verbose=0)
    classifier = training.train("classifier", epochs=3, out_dir=root / "classifier", **common)
    gan = training.train("dcgan", epochs=2, out_dir=root / "dcgan", **common)
    return root, classifier, gan


def test_evaluate_run_domain_metrics(tiny_runs, capsys):
    root, classifier, gan = tiny_runs
    assert classifier.test_metrics["test_accuracy"] > 0.5 and classifier.samples_png is None
    args = dict(num_samples=300, classifier_dir=root / "classifier")
    fd = evaluation.evaluate_run(root / "dcgan", metric="fd", **args)
    assert 0 <= fd["floor"] < fd["value"] and np.isfinite(fd["value"])
    kid = evaluation.evaluate_run(root / "dcgan", metric="kid", **args)
    assert kid["floor"] < kid["value"]
    score = evaluation.evaluate_run(root / "dcgan", metric="score", **args)
    assert 1.0 <= score["value"] <= 10.0 and score["floor"] > 1.0
    assert cli.main(["evaluate", str(root / "dcgan"), "--metric", "fd", "--num-samples", "200",
                     "--classifier", str(root / "classifier")]) == 0
    out = capsys.readouterr().out
    assert "Frechet distance" in out and "floor (real train vs test)" in out


def test_evaluate_errors(tiny_runs, tmp_path, capsys):
    root, _, _ = tiny_runs
    with pytest.raises(FileNotFoundError, match="No domain classifier for dataset 'digits'"):
        evaluation.evaluate_run(root / "dcgan", classifier_dir=tmp_path / "none")
    with pytest.raises(ValueError, match="Unknown metric"):
        evaluation.evaluate_run(root / "dcgan", metric="is")
    with pytest.raises(ValueError, match="needs the domain classifier"):
        evaluation.evaluate_run(root / "dcgan", metric="score", feature_set="inception")
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "run_config.json does not exist" in capsys.readouterr().err


def test_psnr_of_known_noise_y_conversion_and_shave():
    from kerasgen.metrics import PSNR, SSIM, psnr, rgb_to_y, ssim

    clean = np.full((2, 8, 8, 1), 100, np.uint8)
    noisy = clean.astype(np.float64) + np.where(np.indices((8, 8)).sum(0) % 2, 5.0, -5.0)[..., None]
    # MSE 25 everywhere: PSNR = 10 log10(255^2 / 25) = 34.1514 dB.
    np.testing.assert_allclose(psnr(clean, noisy), [10 * np.log10(255 ** 2 / 25)] * 2, atol=1e-9)
    # A shaved border: the errors on it do not count.
    framed = noisy.copy()
    framed[:, :2], framed[:, -2:], framed[:, :, :2], framed[:, :, -2:] = 0, 0, 0, 0
    assert float(psnr(clean, framed, crop_border=2)[0]) == pytest.approx(34.1514, abs=1e-4)
    assert float(psnr(clean, framed)[0]) < 15
    # BT.601 luma (MATLAB rgb2ycbcr): white 235, black 16, pure red 81.481.
    rgb = np.array([[[[255, 255, 255], [0, 0, 0], [255, 0, 0]]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(rgb).numpy()[0, 0, :, 0], [235.0, 16.0, 81.481], atol=1e-9)
    # A pure-blue error of 10 levels moves Y by 24.966 * 10 / 255.
    base = np.full((1, 6, 6, 3), 120, np.uint8)
    shifted = base.astype(np.float64) + [0, 0, 10]
    expected = 10 * np.log10(255 ** 2 / (24.966 * 10 / 255) ** 2)
    assert float(psnr(base, shifted, y_channel=True)[0]) == pytest.approx(expected, abs=1e-9)

    metric = PSNR(crop_border=2)
    metric.update_state(clean, framed)
    metric.update_state(clean[:1], clean[:1].astype(np.float64) + 1.0)  # MSE 1: 48.13 dB
    assert float(metric.result()) == pytest.approx((2 * 34.1514 + 48.1308) / 3, abs=1e-3)
    assert PSNR.from_config(metric.get_config()).crop_border == 2
    # Identical images: capped, so a mean with one of them in it stays finite.
    np.testing.assert_array_equal(psnr(clean, clean), [100.0, 100.0])
    metric.update_state(clean[:1], clean[:1])
    assert float(metric.result()) == pytest.approx((2 * 34.1514 + 48.1308 + 100) / 4, abs=1e-3)

    with pytest.raises(ValueError, match="SSIM needs images of at least 11x11"):
        ssim(clean, clean)
    # Flat images: the contrast-structure term is 1, SSIM = (2 ab + C1) / (a^2 + b^2 + C1).
    constant_c1 = (0.01 * 255) ** 2
    flat_a, flat_b = np.full((1, 16, 16, 1), 100.0), np.full((1, 16, 16, 1), 110.0)
    assert float(ssim(flat_a, flat_b)[0]) == pytest.approx(
        (2 * 100 * 110 + constant_c1) / (100 ** 2 + 110 ** 2 + constant_c1), abs=1e-6)
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 1)).astype(np.float64)
    # Against scikit-image's implementation with the paper's settings.
    from skimage.metrics import structural_similarity

    blurred = np.clip(image + np.random.default_rng(1).normal(0, 30, image.shape), 0, 255)
    reference = structural_similarity(image[0, ..., 0], blurred[0, ..., 0], data_range=255,
                                      gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
    assert float(ssim(image, blurred)[0]) == pytest.approx(reference, abs=1e-6)
    ssim_metric = SSIM()
    ssim_metric.update_state(image, image)
    assert float(ssim_metric.result()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(clean, clean[:, :7])
    with pytest.raises(ValueError, match="crop_border=4 leaves nothing"):
        psnr(clean, clean, crop_border=4)


def test_fd_on_a_fresh_checkout_uses_the_shipped_classifier(tmp_path, data_dir, monkeypatch,
                                                           capsys):
    """No `runs/classifier` here: FD/KID/score use saved_models/classifier_mnist."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "gan"
    training.train("dcgan", dataset="mnist", epochs=1, steps_per_epoch=2, batch_size=16,
                   out_dir=run, data_dir=data_dir, export_formats=(), verbose=0,
                   model_options={"latent_dim": 8, "base_filters": 8})
    assert not (tmp_path / "runs").exists()
    assert cli.main(["evaluate", str(run), "--metric", "fd", "--num-samples", "300",
                     "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Frechet distance (domain features, 300 samples, mnist test)")
    value, floor = (float(part.split(":")[-1]) for part in out.split("   "))
    assert value > floor > 0
