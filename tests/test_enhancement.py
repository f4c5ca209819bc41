import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, export, precision, store
from kerasgen.data import restoration as rdata
from kerasgen.distribute import ReplicaBatch
from kerasgen.data.sources import DataError
from kerasgen.models.enhancement import (Darken, GlobalGamma, LowLightEnhancer, ZeroDCE,
                                         apply_curves, build_lowlight_enhancer,
                                         build_zero_dce, build_zero_dce_plus)
from kerasgen.models.enhancement import evaluation, zero_dce
from tests.helpers import (assert_export_parity, assert_fit_moves_weights,
                           assert_mirrored_step_equal, assert_round_trip)

TINY = {"num_filters": 8, "patch_size": 32}


def tiny(seed=0, **overrides):
    model = build_zero_dce(seed=seed, **{**TINY, **overrides})
    model.compile()
    return model


def photo(height, width, index=2):
    return rdata.load_images("photos")[index][:height, :width]


def _png(path, array):
    tf.io.write_file(str(path), tf.io.encode_png(array))
    return str(path)


# --- the darkening and the curves ----------------------------------------------------------

def test_darkening_draws_gamma_in_its_range_and_repeats_by_seed():
    clean = tf.random.uniform([6, 16, 16, 3], 0.05, 1.0, seed=1)
    quiet = Darken((2.0, 3.5), max_shot=0.0, max_read=0.0)
    dark, condition = quiet.degrade(clean, ReplicaBatch(6), keras.random.SeedGenerator(3))
    assert condition is None
    gammas = np.log(dark.numpy()) / np.log(clean.numpy())  # noise off: dark = clean ** gamma
    per_image = gammas.reshape(6, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1),
                               rtol=1e-3)  # one gamma per image
    assert (2.0 - 1e-3 <= per_image).all() and (per_image <= 3.5 + 1e-3).all()
    noisy = Darken()
    first = noisy.degrade(clean, ReplicaBatch(6), keras.random.SeedGenerator(5))[0].numpy()
    again = noisy.degrade(clean, ReplicaBatch(6), keras.random.SeedGenerator(5))[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert 0.0 <= first.min() and first.max() <= 1.0 and first.mean() < clean.numpy().mean()
    # luminance_share 1: one factor Y ** (gamma - 1) per pixel for all three channels.
    luminance_only = Darken((3.0, 3.0), max_shot=0.0, max_read=0.0, luminance_share=1.0)
    dark = luminance_only.degrade(clean, ReplicaBatch(6), keras.random.SeedGenerator(3))[0]
    luma = (clean.numpy() * [0.299, 0.587, 0.114]).sum(-1, keepdims=True)
    kept = clean.numpy() * luma ** 2
    np.testing.assert_allclose(dark.numpy(), kept, rtol=1e-4, atol=1e-6)
    assert Darken.from_config(luminance_only.get_config()).luminance_share == 1.0
    # A share in between picks per image, and share 0 draws the protocol's stream unchanged.
    mixed = Darken((3.0, 3.0), max_shot=0.0, max_read=0.0, luminance_share=0.5).degrade(
        clean, ReplicaBatch(6), keras.random.SeedGenerator(3))[0].numpy()
    kept_colour = [np.allclose(image, kept[i], rtol=1e-4, atol=1e-6)
                   for i, image in enumerate(mixed)]
    per_channel = [np.allclose(image, clean.numpy()[i] ** 3, rtol=1e-4, atol=1e-6)
                   for i, image in enumerate(mixed)]
    assert all(a != b for a, b in zip(kept_colour, per_channel)) and 0 < sum(kept_colour) < 6
    np.testing.assert_array_equal(
        Darken(luminance_share=0.0).degrade(clean, ReplicaBatch(6),
                                            keras.random.SeedGenerator(5))[0].numpy(), first)
    with pytest.raises(ValueError, match="luminance_share is a share"):
        Darken(luminance_share=1.5)
    # exposure_share: those images scaled by ratio ** (1 / 2.2), one ratio per image in the
    # range; the others keep their gamma; share 0 draws the protocol's stream unchanged.
    shorter = Darken((3.0, 3.0), max_shot=0.0, max_read=0.0, exposure_share=0.5,
                     exposure_range=(0.01, 0.1))
    mixed = shorter.degrade(clean, ReplicaBatch(6), keras.random.SeedGenerator(4))[0].numpy()
    factors = (mixed / clean.numpy()).reshape(6, -1)
    scaled = np.ptp(factors, axis=1) < 1e-4
    gamma_images = [np.allclose(image, clean.numpy()[i] ** 3, rtol=1e-4, atol=1e-6)
                    for i, image in enumerate(mixed)]
    assert all(a != b for a, b in zip(scaled, gamma_images)) and 0 < scaled.sum() < 6
    np.testing.assert_array_less(0.01 ** (1 / 2.2) - 1e-4, factors[scaled, 0])
    np.testing.assert_array_less(factors[scaled, 0], 0.1 ** (1 / 2.2) + 1e-4)
    np.testing.assert_array_equal(
        Darken(exposure_share=0.0).degrade(clean, ReplicaBatch(6),
                                           keras.random.SeedGenerator(5))[0].numpy(), first)
    assert Darken.from_config(shorter.get_config()).exposure_range == (0.01, 0.1)
    with pytest.raises(ValueError, match="exposure_share is a share"):
        Darken(exposure_share=-0.5)
    for bad in ((0.0, 0.1), (0.2, 0.1), (0.5, 2.0)):
        with pytest.raises(ValueError, match="exposure_range is the linear light kept"):
            Darken(exposure_range=bad)
    with pytest.raises(ValueError, match="gamma > 1 darkens"):
        Darken((0.5, 2.0))
    with pytest.raises(ValueError, match="Noise levels must be >= 0"):
        Darken(max_read=-0.1)


def test_curves_and_losses_against_hand_computations():
    x = tf.constant([[[[0.2, 0.5, 0.8]]]])
    np.testing.assert_allclose(apply_curves(x, tf.zeros([1, 1, 1, 24])).numpy(), x.numpy())
    # alpha = -1 once: x - (x^2 - x) = 2x - x^2 (brightens); 0 for the other seven.
    curves = tf.concat([-tf.ones([1, 1, 1, 3]), tf.zeros([1, 1, 1, 21])], axis=-1)
    np.testing.assert_allclose(apply_curves(x, curves).numpy(),
                               [[[[0.36, 0.75, 0.96]]]], rtol=1e-6)
    flat = tf.fill([2, 32, 32, 3], 0.6)
    np.testing.assert_allclose(zero_dce.exposure_control(flat).numpy(), [0, 0], atol=1e-12)
    np.testing.assert_allclose(zero_dce.exposure_control(flat * 0.5).numpy(), [0.09] * 2,
                               rtol=1e-5)
    np.testing.assert_allclose(zero_dce.colour_constancy(flat).numpy(), [0, 0], atol=1e-5)
    red = tf.concat([tf.fill([1, 4, 4, 1], 0.5), tf.zeros([1, 4, 4, 2])], axis=-1)
    # D = squared mean differences: 0.25 for R-G and R-B, 0 for G-B; sqrt(2 * 0.25^2)
    np.testing.assert_allclose(zero_dce.colour_constancy(red).numpy(), [0.25 * 2 ** 0.5],
                               rtol=1e-5)
    image = tf.random.uniform([2, 16, 16, 3], seed=2)
    np.testing.assert_allclose(zero_dce.spatial_consistency(image, image).numpy(), [0, 0])
    assert (zero_dce.spatial_consistency(image * 0.2, image).numpy() > 0).all()
    ramp = tf.reshape(tf.range(4, dtype=tf.float32), [1, 4, 1, 1]) * tf.ones([1, 4, 3, 2])
    # Vertical steps of 1 on 3 * 3 pairs of each of 2 maps, / ((4 - 1) * 3); none across.
    np.testing.assert_allclose(zero_dce.illumination_smoothness(ramp).numpy(),
                               [2.0 * (18.0 / 9.0)], rtol=1e-6)


# --- training, reload, distribution, export ------------------------------------------------

def test_fit_moves_every_weight_and_reload_takes_the_same_next_step(tmp_path):
    model = tiny(seed=1)
    data = model.training_data("photos", 4, seed=0)
    history = assert_fit_moves_weights(model, data, steps=2)
    assert set(history) == {"loss", "psnr", "exposure"}
    assert_round_trip(model, tmp_path / "zero_dce.keras",
                      lambda m: m.fit(data, epochs=1, steps_per_epoch=1, verbose=0))
    reloaded = keras.models.load_model(tmp_path / "zero_dce.keras", safe_mode=True)
    assert isinstance(reloaded, ZeroDCE) and reloaded.degradation.gamma_range == (2.0, 3.5)


def test_training_lifts_the_exposure_of_dark_images():
    model = tiny(seed=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2, global_clipnorm=0.1))
    data = model.training_data("photos", 8, seed=0)
    history = model.fit(data, epochs=4, steps_per_epoch=15, verbose=0).history
    assert history["exposure"][-1] < 0.7 * history["exposure"][0], history["exposure"]
    # Gamma 3 on the luminance, colour ratios kept: how the preset darkens its crops.
    clean = photo(40, 56, index=0).astype(np.float32) / 255.0
    dark = clean * ((clean * [0.299, 0.587, 0.114]).sum(-1, keepdims=True)) ** 2
    dark = np.round(dark * 255).astype(np.uint8)
    enhanced = model.apply(dark).numpy()[0]
    assert enhanced.mean() > dark.mean() + 20, (enhanced.mean(), dark.mean())


def test_mirrored_step_equals_single_device_step(mirrored_strategy):
    def build():
        model = tiny(seed=4)
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        return model

    batch = tiny().training_data("photos", 8, seed=3).take(1)
    assert_mirrored_step_equal(build, batch, mirrored_strategy, atol=5e-5,
                               metrics=("loss", "psnr", "exposure"))


def test_enhance_signature_and_tflite_on_odd_sizes(tmp_path):
    model = tiny(seed=5)
    model.fit(model.training_data("photos", 4), epochs=1, steps_per_epoch=5, verbose=0)
    image = (photo(45, 61, index=0) // 4)[None]
    assert_export_parity(model, tmp_path, [image])
    assert export.signature_summary(tmp_path / model.name / "1")["enhance"] == {
        "inputs": {"images": ("uint8", [None, None, None, 3])},
        "outputs": {"images": ("uint8", [None, None, None, 3])}}


# --- the classical peers and the CLI -------------------------------------------------------

def test_evaluation_scores_real_pairs_and_synthetic_darkening_with_the_peers(tmp_path):
    model = tiny(seed=6)
    pairs = tmp_path / "pairs"
    for part in ("low", "high"):
        (pairs / part).mkdir(parents=True)
    for index in (1, 2):
        high = photo(40, 48, index=index)
        _png(pairs / "high" / f"{index}.png", high)
        _png(pairs / "low" / f"{index}.png", (high // 5).astype(np.uint8))
    report = evaluation.evaluate_enhancement(model, str(pairs), grid=str(tmp_path / "grid.png"))
    rows = report["methods"]
    grid = tf.io.decode_png(tf.io.read_file(report["grid"])).numpy()
    assert grid.shape == (2 * 40 + 4, 5 * 48 + 4 * 4, 3)  # 2 rows of input, 2 peers, model, truth
    np.testing.assert_array_equal(grid[:40, :48], (photo(40, 48, index=1) // 5))
    assert report["kind"] == "real pairs" and report["num_images"] == 2
    assert list(rows) == ["model", "input", "clahe", "histogram_eq", "oracle_gamma"]
    assert rows["oracle_gamma"]["psnr"] > rows["input"]["psnr"] + 3  # a gamma undoes / 5 well
    assert any("model - best peer" in line for line in evaluation.enhancement_table(report))
    clean = tmp_path / "clean"
    clean.mkdir()
    _png(clean / "a.png", photo(40, 48))
    dark, truth, kind = evaluation.load_pairs(str(clean))
    again, _, _ = evaluation.load_pairs(str(clean))
    assert kind.startswith("synthetic") and np.array_equal(dark[0], again[0])
    assert dark[0].mean() < truth[0].mean() - 30
    (pairs / "high" / "2.png").unlink()
    with pytest.raises(DataError, match="Pairs must match by file name"):
        evaluation.load_pairs(str(pairs))


def test_cli_train_apply_on_odd_sized_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "zero_dce", "--dataset", "photos", "--epochs", "1",
                     "--steps-per-epoch", "2", "--batch-size", "4", "--num-filters", "4",
                     "--patch-size", "32", "--out", str(run)]) == 0
    assert (run / "zero_dce.tflite").exists()
    image = _png(tmp_path / "dark.png", (photo(37, 51) // 4).astype(np.uint8))
    out = tmp_path / "out"
    assert cli.main(["apply", str(run), image, "--out", str(out)]) == 0
    enhanced = tf.io.decode_png(tf.io.read_file(str(out / "dark.png"))).numpy()
    assert enhanced.shape == (37, 51, 3)
    assert cli.main(["train", "zero_dce", "--patch-size", "8", "--out",
                     str(tmp_path / "bad")]) == 2
    assert "patch_size must be at least 16" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# --- Zero-DCE++ ----------------------------------------------------------------------------

def test_zero_dce_plus_applies_one_separable_curve_set_eight_times(tmp_path):
    model = build_zero_dce_plus(num_filters=8, patch_size=32, downscale=2, seed=3)
    model.compile()
    convolutions = [layer for layer in model.network.layers if "conv" in layer.name]
    assert len(convolutions) == 7 and all(isinstance(layer, keras.layers.SeparableConv2D)
                                          for layer in convolutions)
    # The paper's 10k weights (its depthwise convolutions also carry 291 biases).
    assert build_zero_dce_plus().network.count_params() + 291 == 10_561
    data = model.training_data("photos", 4, seed=1)
    assert_fit_moves_weights(model, data, steps=2)
    model = assert_round_trip(model, tmp_path / "plus.keras",
                              lambda m: m.fit(data, epochs=1, steps_per_epoch=1, verbose=0))
    assert model.curve_iterations == 8 and model.network.get_layer("down").factor == 2
    images = tf.random.uniform([1, 20, 28, 3], 0.0, 0.3, seed=4)
    alpha = model.network(images).numpy()
    assert alpha.shape == (1, 20, 28, 3)
    expected = images.numpy()
    for _ in range(8):  # the same maps at every iteration
        expected = expected + alpha * (expected ** 2 - expected)
    np.testing.assert_allclose(model.enhance_float(images).numpy(), np.clip(expected, 0, 1),
                               atol=1e-5)
    assert_export_parity(model, tmp_path, [(photo(45, 61, index=0) // 4)[None]])
    with pytest.raises(ValueError, match="does not export quantize='int8'"):
        export.export_tflite(model, tmp_path / "int8.tflite", "int8")


# --- the supervised enhancer ---------------------------------------------------------------

UNET = {"num_filters": 8, "depth": 2, "patch_size": 32}


def tiny_unet(seed=0, **overrides):
    model = build_lowlight_enhancer(seed=seed, **{**UNET, **overrides})
    model.compile()
    return model


def write_pairs(folder, sizes=((64, 72), (70, 66))):
    """A pair folder: photo crops in high/, their gamma-3 darkening in low/."""
    for part in ("low", "high"):
        (folder / part).mkdir(parents=True)
    for index, (height, width) in enumerate(sizes):
        high = photo(height, width, index=index + 1)
        low = np.round((high / 255.0) ** 3 * 255.0).astype(np.uint8)
        _png(folder / "high" / f"{index}.png", high)
        _png(folder / "low" / f"{index}.png", low)
    return folder


def test_unet_trains_on_real_pairs_reloads_and_exports_on_odd_sizes(tmp_path):
    model = tiny_unet(seed=1)
    pairs = model.training_data(str(write_pairs(tmp_path / "pairs")), 4, seed=0)
    low, high = next(iter(pairs))
    assert low.shape == high.shape == (4, 32, 32, 3)
    np.testing.assert_allclose(low.numpy(), np.round(high.numpy() ** 3 * 255) / 255, atol=1e-6)
    assert_fit_moves_weights(model, pairs, steps=2)
    assert_round_trip(model, tmp_path / "unet.keras",
                      lambda m: m.fit(pairs, epochs=1, steps_per_epoch=1, verbose=0))
    image = (photo(61, 67, index=0) // 5)[None]
    assert_export_parity(model, tmp_path, [image])
    assert "enhance" in export.signature_summary(tmp_path / model.name / "1")
    int8 = export.export_tflite(model, tmp_path / "int8.tflite", "int8")
    assert export.tflite_parity(int8, model, inputs=[image])["mean_abs_diff"] <= 3.0


def test_supervised_loss_is_l1_plus_weighted_ssim_and_mirrors(mirrored_strategy):
    model = tiny_unet(ssim_weight=0.5)
    restored = tf.random.uniform([2, 32, 32, 3], -0.1, 1.1, seed=5)
    targets = tf.random.uniform([2, 32, 32, 3], seed=6)
    expected = (np.abs(restored.numpy() - targets.numpy()).mean(axis=(1, 2, 3))
                + 0.5 * (1 - tf.image.ssim(tf.clip_by_value(restored, 0, 1), targets, 1.0)))
    np.testing.assert_allclose(model.per_image_loss(restored, targets).numpy(), expected,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="ssim_weight must be >= 0"):
        tiny_unet(ssim_weight=-1.0)
    with pytest.raises(ValueError, match="at least 11 pixels"):
        tiny_unet(patch_size=8)
    batch = model.training_data("photos", 8, seed=2).take(1)
    assert_mirrored_step_equal(lambda: tiny_unet(seed=3), batch, mirrored_strategy,
                               metrics=("loss", "psnr"), atol=5e-5, rel=1e-4)


def test_pair_folders_refuse_mismatched_sizes_16_bit_and_unpaired_files(tmp_path):
    model = tiny_unet()
    sizes = write_pairs(tmp_path / "sizes")
    _png(sizes / "high" / "1.png", photo(60, 60))
    with pytest.raises(DataError, match="aligned pixel for pixel"):
        model.training_data(str(sizes), 2)
    deep = write_pairs(tmp_path / "deep")
    tf.io.write_file(str(deep / "low" / "0.png"),
                     tf.io.encode_png(np.zeros((64, 72, 3), np.uint16)))
    with pytest.raises(DataError, match="16-bit PNG"):
        model.training_data(str(deep), 2)
    unpaired = write_pairs(tmp_path / "unpaired")
    (unpaired / "low" / "1.png").rename(unpaired / "low" / "9.png")
    with pytest.raises(DataError, match="Pairs must match by file name"):
        model.training_data(str(unpaired), 2)
    # LOL's download root: training reads our485/, the benchmark eval15/.
    root = tmp_path / "LOL"
    write_pairs(root / "our485")
    write_pairs(root / "eval15", sizes=((40, 48),))
    assert next(iter(model.training_data(str(root), 2)))[0].shape == (2, 32, 32, 3)
    assert len(evaluation.load_pairs(str(root))[0]) == 1
    # Zero-DCE on real pairs: its losses see the real low image (the high one is only logged).
    zero = tiny()
    history = zero.fit(zero.training_data(str(root), 2), epochs=1, steps_per_epoch=2,
                       verbose=0).history
    assert np.isfinite(history["loss"]).all() and history["psnr"][0] > 0


def test_cli_trains_the_unet_on_pairs_and_refuses_images_below_its_receptive_field(
        tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs")
    run = tmp_path / "run"
    assert cli.main(["train", "lowlight_unet", "--dataset", str(pairs), "--epochs", "1",
                     "--steps-per-epoch", "2", "--batch-size", "2", "--num-filters", "4",
                     "--depth", "2", "--patch-size", "32", "--out", str(run)]) == 0
    assert isinstance(keras.models.load_model(run / "model.keras"), LowLightEnhancer)
    image = _png(tmp_path / "dark.png", (photo(61, 67) // 4).astype(np.uint8))
    small = _png(tmp_path / "small.png", (photo(40, 40) // 4).astype(np.uint8))
    out = tmp_path / "out"
    assert cli.main(["apply", str(run), image, "--out", str(out)]) == 0
    assert tf.io.decode_png(tf.io.read_file(str(out / "dark.png"))).shape == (61, 67, 3)
    capsys.readouterr()
    assert cli.main(["apply", str(run), image, small, "--out", str(tmp_path / "none")]) == 2
    assert "smaller than this network's receptive field (56 px)" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


# The supervised U-Net and the phone-size Zero-DCE++.
SHIPPED = ("lowlight_unet_synthetic", "zero_dce_plus_synthetic",
           "lowlight_curve_unet_synthetic")


@pytest.mark.parametrize("shipped", SHIPPED)
def test_shipped_enhancer_loads_by_name_beats_the_peers_on_its_card_and_applies(shipped,
                                                                               tmp_path):
    model = store.load_model(shipped)
    assert isinstance(model, LowLightEnhancer) and getattr(model, "optimizer", None) is None
    recorded = json.loads((store.saved_models_dir() / shipped / "metrics.json").read_text())
    for row in recorded["rows"]:  # LOL and synthetic CBSD68: above CLAHE and histogram eq.
        for peer in ("clahe", "histogram_eq"):
            assert row["psnr"] > row["peers"][peer]["psnr"] and \
                row["ssim"] > row["peers"][peer]["ssim"], (row["dataset"], peer)
    image = _png(tmp_path / "dark.png", (photo(61, 67) // 4).astype(np.uint8))
    assert cli.main(["apply", shipped, image, "--out", str(tmp_path / "out")]) == 0
    enhanced = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / "dark.png"))).numpy()
    assert enhanced.shape == (61, 67, 3) and enhanced.mean() > (photo(61, 67) // 4).mean() + 20


@pytest.mark.slow
@pytest.mark.parametrize("shipped", SHIPPED)
def test_shipped_enhancer_measures_what_its_card_says(shipped, data_dir, tmp_path):
    model = store.load_model(shipped)
    recorded = json.loads((store.saved_models_dir() / shipped / "metrics.json").read_text())
    row = next(row for row in recorded["rows"] if row["dataset"] == "LOL")
    report = evaluation.evaluate_enhancement(model, "LOL", data_dir=data_dir, peers={},
                                             grid=str(tmp_path / "grid.png"))
    assert report["methods"]["model"]["psnr"] == pytest.approx(row["psnr"], abs=0.01)
    assert report["methods"]["model"]["ssim"] == pytest.approx(row["ssim"], abs=1e-4)


# --- the global curve ------------------------------------------------------------------------

def test_global_gamma_is_the_auto_gamma_curve_scaled_by_its_correction():
    images = np.stack([photo(24, 30, index=1), photo(24, 30, index=2) // 9]) / 255.0
    images[1, :3, :3] = 0.0  # black pixels
    curve = GlobalGamma(0.4)
    luminance = (images * [0.299, 0.587, 0.114]).sum(-1)
    log_mean = np.log(luminance + 1 / 255).mean(axis=(1, 2))
    share = np.clip((np.log(0.4) / log_mean - 0.05) / 0.95, 1e-3, 1 - 1e-3)
    auto = 0.05 + 0.95 * share
    assert auto[0] > 0.99 and 0.05 < auto[1] < 0.9  # the bright photo is kept, the dark lifted
    np.testing.assert_allclose(curve(images.astype("float32")).numpy(),
                               images ** auto[:, None, None, None], rtol=2e-5, atol=2e-6)
    correction = np.array([[0.0], [-1.0]], "float32")  # one step down the logistic scale
    scaled = curve([images.astype("float32"), correction]).numpy()
    lowered = 0.05 + 0.95 / (1 + np.exp(-(np.log(share[1] / (1 - share[1])) - 1.0)))
    np.testing.assert_allclose(scaled[1], images[1] ** lowered, rtol=2e-5, atol=2e-6)
    assert lowered < auto[1] and (scaled[1, :3, :3] == 0).all()  # black stays black
    lowest = curve([images.astype("float32"), np.full((2, 1), -20.0, "float32")]).numpy()
    np.testing.assert_allclose(lowest, images ** 0.05, rtol=2e-5, atol=2e-6)  # g > 0.05
    # Finite gradients (black pixels give no NaN), and never zero: no exponent gets stuck.
    for offset in (0.0, 8.0, -8.0):
        gradient = _correction_gradient(curve, images.astype("float32"), offset)
        assert np.isfinite(gradient).all() and (gradient != 0).all(), (offset, gradient)
    assert GlobalGamma.from_config(curve.get_config()).target_mean == 0.4
    with pytest.raises(ValueError, match=r"target_mean must be in \(0, 1\)"):
        GlobalGamma(0.0)


def _correction_gradient(curve, images, offset):
    correction = tf.Variable(tf.fill([len(images), 1], offset))
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(curve([images, correction]))
    return tape.gradient(total, correction).numpy()[:, 0]


def test_darkening_rounds_to_eight_bits_when_asked():
    clean = tf.random.uniform([3, 16, 16, 3], 0.05, 1.0, seed=2)
    rounded = Darken(eight_bit=True)
    dark = rounded.degrade(clean, ReplicaBatch(3), keras.random.SeedGenerator(5))[0].numpy()
    np.testing.assert_allclose(dark * 255, np.round(dark * 255), atol=1e-4)
    unrounded = Darken().degrade(clean, ReplicaBatch(3), keras.random.SeedGenerator(5))[0]
    np.testing.assert_allclose(dark, np.round(unrounded.numpy() * 255) / 255, atol=1e-6)
    assert Darken.from_config(rounded.get_config()).eight_bit


def test_curve_weight_adds_the_global_curves_own_l1_error(mirrored_strategy):
    model = tiny_unet(seed=4, global_curve=True, curve_weight=0.5)
    plain = tiny_unet(seed=4, global_curve=True)
    dark = tf.constant((photo(32, 32, index=1)[None] // 7).astype("float32") / 255.0)
    targets = tf.constant(photo(32, 32, index=1)[None].astype("float32") / 255.0)
    restored, loss = model.objective(dark, targets, training=False)
    _, plain_loss = plain.objective(dark, targets, training=False)
    curve = GlobalGamma(0.4)(dark).numpy()  # untrained: no correction
    np.testing.assert_allclose(loss - plain_loss, 0.5 * np.abs(curve - targets).mean(),
                               rtol=1e-4)
    np.testing.assert_allclose(restored.numpy(), curve, atol=1e-6)
    assert LowLightEnhancer.from_config(model.get_config()).curve_weight == 0.5
    # The supervised curve is the last one, the corrected one (the builder's order).
    assert precision.marked_layers([model.network], GlobalGamma)[-1].name == "global_gamma"
    with pytest.raises(ValueError, match="has none; build it with global_curve=True"):
        tiny_unet(curve_weight=1.0)
    with pytest.raises(ValueError, match="curve_weight must be >= 0"):
        tiny_unet(global_curve=True, curve_weight=-1.0)
    batch = model.training_data("photos", 8, seed=2).take(1)
    assert_mirrored_step_equal(lambda: tiny_unet(seed=3, global_curve=True, curve_weight=1.0),
                               batch, mirrored_strategy, metrics=("loss", "psnr"), atol=5e-5,
                               rel=1e-4)


def test_curve_unet_starts_at_the_auto_gamma_trains_reloads_and_exports(tmp_path):
    model = tiny_unet(seed=2, global_curve=True, eight_bit=True, curve_weight=1.0)
    image = (photo(61, 67, index=0) // 6)[None]
    classical = GlobalGamma(0.4)(image.astype("float32") / 255.0).numpy()
    # One curve for the whole image, even where the memory budget would cut tiles.
    model.default_tile = lambda: 32
    np.testing.assert_allclose(model.apply(image).numpy(), np.round(classical * 255), atol=1)
    with pytest.raises(ValueError, match="from the whole image"):
        model.apply(image, tile=32)
    del model.default_tile
    batches = model.training_data("photos", 4, seed=0)
    assert_fit_moves_weights(model, batches, steps=2)
    assert model.network.get_layer("curve_correction").get_weights()[0].any()
    assert_round_trip(model, tmp_path / "curve.keras",
                      lambda m: m.fit(batches, epochs=1, steps_per_epoch=1, verbose=0))
    assert_export_parity(model, tmp_path, [image])
    int8 = export.export_tflite(model, tmp_path / "int8.tflite", "int8")
    assert export.tflite_parity(int8, model, inputs=[image])["mean_abs_diff"] <= 3.0
    # bf16 training keeps the curve in float32.
    bf16 = tiny_unet(seed=2, global_curve=True)
    precision.set_precision(bf16, "bf16")
    assert bf16.network.get_layer("global_gamma").compute_dtype == "float32"
    assert bf16.network.get_layer("curve_conv0").compute_dtype == "bfloat16"
