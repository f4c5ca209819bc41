import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, export, precision
from kerasgen.data import restoration as rdata
from kerasgen.models.inpainting import (AdversarialInpainter, HoleMask, PartialConv2D,
                                        PullPushFill, SpectralConv2D, build_context_encoder_inpainter,
                                        build_gated_inpainter, build_inpainter,
                                        build_residual_unet_inpainter, draw_masks, mask_set)
from kerasgen.models.inpainting import evaluation, trainer
from kerasgen.models.inpainting import masks as masks_module
from kerasgen.models.inpainting.masks import BUCKETS, KINDS, hole_ratio
from kerasgen.distribute import ReplicaBatch
from tests.helpers import (assert_export_parity, assert_fit_moves_weights,
                           assert_mirrored_step_equal, assert_round_trip)

TINY = {"depth": 3, "num_filters": 8, "patch_size": 32}


def tiny(seed=0, **overrides):
    model = build_inpainter(seed=seed, **{**TINY, **overrides})
    model.compile()
    return model


def photo(height, width, index=2):
    return rdata.load_images("photos")[index][:height, :width]


def stroke_mask(height, width, seed=4):
    return mask_set([(height, width)], "freeform", (0.2, 0.3), seed=seed)[0]


@pytest.fixture(scope="module")
def trained():
    """A small inpainter trained enough to fill holes (parity needs real output)."""
    model = tiny(seed=1)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    model.fit(model.training_data("photos", 8), epochs=1, steps_per_epoch=100, verbose=0)
    return model


# --- masks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_masks_land_in_their_bucket_and_repeat_exactly(kind):
    sizes = [(48, 64), (61, 37), (64, 64), (40, 90)]
    for low, high in BUCKETS:
        masks = mask_set(sizes, kind, (low, high))
        ratios = [float((mask > 0).mean()) for mask in masks]
        assert all(low <= ratio <= high for ratio in ratios), (kind, low, high, ratios)
        assert [mask.shape for mask in masks] == [(*size, 1) for size in sizes]
        assert set(np.unique(np.concatenate([m.ravel() for m in masks]))) == {0, 255}
        again = mask_set(sizes, kind, (low, high))
        assert all(np.array_equal(a, b) for a, b in zip(masks, again))  # identical runs
    other = mask_set(sizes, kind, (0.3, 0.4), seed=7)
    if kind != "center":  # a centre box depends on the ratio alone
        assert not np.array_equal(other[0], mask_set(sizes, kind, (0.3, 0.4))[0])


def test_training_masks_follow_the_seed_generator_and_the_range():
    layer = HoleMask("freeform", (0.1, 0.3))
    clean = tf.ones([16, 32, 32, 3])

    def draw(seed):
        return layer.degrade(clean, ReplicaBatch(16), keras.random.SeedGenerator(seed))

    masked, holes = draw(3)
    np.testing.assert_array_equal(holes.numpy(), draw(3)[1].numpy())
    assert not np.array_equal(holes.numpy(), draw(4)[1].numpy())
    ratios = hole_ratio(holes).numpy()
    assert ratios.min() >= 0.1 and ratios.max() <= 0.3 and ratios.std() > 0.02, ratios
    np.testing.assert_array_equal(masked.numpy(), 1.0 - holes.numpy().repeat(3, -1))
    with pytest.raises(ValueError, match="LOW-HIGH"):
        HoleMask("freeform", "0.3")
    with pytest.raises(ValueError, match="0 <= low < high"):
        draw_masks([0, 0], 1, 8, 8, ratio="0.5-0.2")
    with pytest.raises(ValueError, match="Unknown mask kind 'blobs'"):
        HoleMask("blobs")


def test_stroke_scale_draws_the_holes_of_large_photos_on_small_crops():
    def thick_share(masks):
        # Hole pixels that survive a 7x7 erosion: the share inside strokes over 7 px wide.
        eroded = -tf.nn.max_pool2d(-masks, 7, 1, "SAME")
        return float(tf.reduce_sum(eroded) / tf.reduce_sum(masks))

    own = draw_masks([5, 6], 8, 64, 64, ratio=(0.2, 0.4))
    photo_scale = draw_masks([5, 6], 8, 64, 64, ratio=(0.2, 0.4), scale=400)
    assert thick_share(photo_scale) > 3 * thick_share(own)
    assert float(hole_ratio(photo_scale).numpy().min()) >= 0.2
    layer = HoleMask("freeform", (0.1, 0.3), stroke_scale=400)
    assert keras.layers.deserialize(keras.layers.serialize(layer)).stroke_scale == 400.0
    with pytest.raises(ValueError, match="stroke_scale must be a positive"):
        HoleMask(stroke_scale=0)


def test_training_holes_from_a_folder_of_user_masks(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    corner = np.zeros((40, 40, 1), np.uint8)
    corner[:10, :20] = 255  # not symmetric under any flip or transpose
    band = np.zeros((30, 50, 1), np.uint8)
    band[:, 20:30] = 255
    _png(folder / "corner.png", corner)
    _png(folder / "band.png", band)
    model = tiny(mask_folder=str(folder))
    assert isinstance(model.masks, masks_module.FolderMasks)
    variants = []
    for mask in (corner, band):
        square = tf.image.resize(mask[None] / 255, [32, 32], "nearest")[0, ..., 0].numpy()
        for turned in (square, square.T):
            variants += [turned, turned[::-1], turned[:, ::-1], turned[::-1, ::-1]]
    clean = tf.ones([16, 32, 32, 3])
    seen = set()
    for _ in range(2):
        masked, holes = model.masks.degrade(clean, ReplicaBatch(16), model.seed_generator)
        for hole in holes.numpy()[..., 0]:
            matches = [index for index, v in enumerate(variants) if np.array_equal(hole, v)]
            assert matches, "a training hole that is no symmetry of a folder mask"
            seen.add(matches[0] // 8)
        np.testing.assert_array_equal(masked.numpy(), 1.0 - holes.numpy().repeat(3, -1))
    assert seen == {0, 1}  # both masks are used
    data = model.training_data("photos", 4)
    assert_fit_moves_weights(model, data, steps=1)
    model.save(tmp_path / "folder.keras")
    assert keras.models.load_model(tmp_path / "folder.keras").masks.folder == str(folder)
    _png(folder / "grey.png", np.full((8, 8, 1), 128, np.uint8))
    with pytest.raises(ValueError, match="grey.png.*must be binary"):
        tiny(mask_folder=str(folder))
    with pytest.raises(ValueError, match="empty holds no PNG"):
        (tmp_path / "empty").mkdir()
        tiny(mask_folder=str(tmp_path / "empty"))
    # Inference needs the model only, not the training masks.
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    reloaded = keras.models.load_model(tmp_path / "folder.keras")
    image = photo(37, 53)
    mask = stroke_mask(37, 53)
    np.testing.assert_array_equal(reloaded.apply(image, mask=mask).numpy()[0][mask[..., 0] == 0],
                                  image[mask[..., 0] == 0])


def test_tfds_photo_sets_fail_fast_offline_naming_the_alternatives(monkeypatch, tmp_path):
    from kerasgen.data import sources
    from kerasgen.data.sources import DataError

    pytest.importorskip("tensorflow_datasets")  # the optional `tfds` extra
    monkeypatch.setattr(sources, "_network_reachable", lambda *args, **kwargs: False)
    with pytest.raises(DataError, match="places365_small is not prepared.*offline.*'t91'"):
        tiny().training_data("tfds:places365_small", 4, data_dir=str(tmp_path))


# --- partial convolution -------------------------------------------------------------------

def partial_conv_reference(x, m, kernel, bias, stride):
    """Liu et al. eq. (1)-(2) by loops, with TensorFlow's SAME padding (zeros = missing)."""
    k = kernel.shape[0]
    height, width = x.shape[:2]
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h = max((out_h - 1) * stride + k - height, 0)
    pad_w = max((out_w - 1) * stride + k - width, 0)
    xp = np.pad(x, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    mp = np.pad(m, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    out = np.zeros((out_h, out_w, kernel.shape[-1]))
    new_mask = np.zeros((out_h, out_w, 1))
    for i in range(out_h):
        for j in range(out_w):
            window_x = xp[i * stride:i * stride + k, j * stride:j * stride + k]
            window_m = mp[i * stride:i * stride + k, j * stride:j * stride + k]
            valid = window_m.sum()
            if valid > 0:
                raw = np.einsum("hwc,hwco->o", window_x * window_m, kernel)
                out[i, j] = raw * (k * k / valid) + bias
                new_mask[i, j] = 1.0
    return out, new_mask


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_convolution_matches_a_direct_computation(stride):
    rng = np.random.default_rng(stride)
    x = rng.normal(size=(7, 9, 2)).astype("float32")
    m = np.ones((7, 9, 1), "float32")
    m[1:6, 2:8] = 0.0  # a hole larger than the window: some outputs see nothing
    layer = PartialConv2D(3, 3, strides=stride)
    out, new_mask = layer([x[None], m[None]])
    layer.bias.assign(rng.normal(size=3).astype("float32"))
    out, new_mask = layer([x[None], m[None]])
    expected, expected_mask = partial_conv_reference(x, m, layer.kernel.numpy(),
                                                     layer.bias.numpy(), stride)
    np.testing.assert_allclose(out.numpy()[0], expected, atol=1e-5)
    np.testing.assert_array_equal(new_mask.numpy()[0], expected_mask)
    assert 0 < expected_mask.mean() < 1  # the hole shrank but did not vanish


# --- training, reload, distribution --------------------------------------------------------

def test_fit_moves_every_weight_and_reload_takes_the_same_next_step(tmp_path):
    model = tiny(seed=2)
    data = model.training_data("photos", 4, seed=0)
    history = assert_fit_moves_weights(model, data, steps=2)
    assert set(history) == {"loss", "hole_l1", "psnr"}
    assert_round_trip(model, tmp_path / "inpainter.keras",
                      lambda m: m.fit(data, epochs=1, steps_per_epoch=1, verbose=0))
    reloaded = keras.models.load_model(tmp_path / "inpainter.keras", safe_mode=True)
    assert isinstance(reloaded.masks, HoleMask) and reloaded.masks.ratio == (0.05, 0.5)


def test_images_smaller_than_the_crops_are_skipped_with_a_warning(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    _png(folder / "large.png", photo(40, 50))
    _png(folder / "small.png", photo(20, 50))
    model = tiny()
    with pytest.warns(UserWarning, match="1 of 2 images .* smaller than the 32-pixel crops"):
        batch = next(iter(model.training_data(str(folder), 2)))
    assert batch.shape == (2, 32, 32, 3)
    with pytest.raises(ValueError, match="Every image .* is smaller"):
        tiny(patch_size=64).training_data(str(folder), 2)


def test_mirrored_step_equals_single_device_step(mirrored_strategy):
    def build():
        model = tiny(seed=4)
        # SGD: Adam's first step is +-lr wherever a gradient is ~0, so reduction-order
        # rounding could flip it; the comparison is about the trainer, not Adam.
        model.compile(optimizer=keras.optimizers.SGD(0.05))
        return model

    batch = tiny().training_data("photos", 8, seed=3).take(1)
    # atol 5e-5: the losses sum over 32x32x3 pixels and two replicas sum in another order
    # (measured: max 1.1e-5 after the step).
    assert_mirrored_step_equal(build, batch, mirrored_strategy, atol=5e-5,
                               metrics=("loss", "hole_l1", "psnr"))


def test_losses_against_a_hand_computation():
    composite = tf.constant([[[[0.5], [1.0]], [[0.0], [0.25]]]])
    # Neighbour differences: vertical |0-0.5|, |0.25-1|; horizontal |1-0.5|, |0.25-0|; each
    # direction's mean is over the image's 4 pixels.
    expected = (0.5 + 0.75) / 4 + (0.5 + 0.25) / 4
    np.testing.assert_allclose(
        trainer.total_variation(composite, tf.ones_like(composite)).numpy(), [expected])
    np.testing.assert_allclose(  # only pairs whose second pixel is in the region count
        trainer.total_variation(composite, tf.constant([[[[0.0], [0.0]], [[0.0], [1.0]]]])
                                ).numpy(), [(0.75 + 0.25) / 4])
    inputs = keras.Input((2, 2, 3))
    conv = keras.layers.Conv2D(2, 1, use_bias=False)(inputs)
    extractor = keras.Model(inputs, [conv, keras.layers.AveragePooling2D(2)(conv)])
    image = tf.random.uniform([2, 2, 2, 3], seed=1)
    perceptual, style = trainer.perceptual_style_losses(extractor, image, image, image)
    np.testing.assert_allclose(perceptual.numpy(), [0, 0])
    np.testing.assert_allclose(style.numpy(), [0, 0])
    perceptual, style = trainer.perceptual_style_losses(extractor, image * 0.5, image, image)
    assert (perceptual.numpy() > 0).all() and (style.numpy() > 0).all()


def test_vgg_losses_fail_fast_offline_naming_the_file(tmp_path, monkeypatch):
    from kerasgen.data import sources

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(sources, "_network_reachable", lambda *args, **kwargs: False)
    with pytest.raises(ValueError, match=str(tmp_path / "models" / trainer.VGG16_WEIGHTS)):
        build_inpainter(**TINY, perceptual_weight=0.05)


# --- the adversarial members: DeepFill v2 (gated convolutions, SN-PatchGAN), Context Encoder

ADVERSARIAL = {
    "deepfill_v2": lambda seed=0: build_gated_inpainter(
        num_filters=4, discriminator_filters=4, discriminator_layers=3, patch_size=32,
        seed=seed),
    "context_encoder": lambda seed=0: build_context_encoder_inpainter(
        network_size=32, num_filters=8, bottleneck=16, discriminator_filters=4, seed=seed),
}


def test_no_two_layers_start_with_the_same_weights():
    # One seeded initialiser reused draws the same values for layers of the same shape (the
    # paper's depth-7 U-Net had three such pairs, DeepFill's gates equalled their features).
    from kerasgen.models.inpainting import (build_gated_generator, build_pconv_unet,
                                            build_unet_inpainter)

    for network in (build_pconv_unet(depth=7, num_filters=2, seed=0),
                    build_gated_generator(num_filters=4, seed=0),
                    build_unet_inpainter(num_filters=2, num_levels=3, seed=0)):
        kernels = [w.numpy() for w in network.weights if w.path.endswith("kernel")]
        for index, kernel in enumerate(kernels):
            assert not any(kernel.shape == other.shape and np.array_equal(kernel, other)
                           for other in kernels[index + 1:]), network.name


def test_spectral_convolution_divides_by_the_largest_singular_value():
    layer = SpectralConv2D(6, 3, kernel_initializer=keras.initializers.RandomNormal(seed=3))
    inputs = tf.random.uniform([2, 9, 7, 4], seed=5)
    for _ in range(40):  # power iterations converge on the top singular vector
        layer(inputs, training=True)
    kernel = layer.kernel.numpy()
    sigma = np.linalg.svd(kernel.reshape(-1, 6), compute_uv=False)[0]
    expected = tf.nn.conv2d(inputs, kernel / sigma, 1, "SAME") + layer.bias.numpy()
    np.testing.assert_allclose(layer(inputs).numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
    # The gradient goes through W / sigma(W): scaling the kernel changes nothing.
    layer.kernel.assign(kernel * 3.0)
    np.testing.assert_allclose(layer(inputs).numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


# DeepFill's case takes 20 s (two-stage generator, SN-PatchGAN): the slow suite runs it, and
# its mirrored step equality.
@pytest.mark.parametrize("member", [pytest.param(member, marks=[pytest.mark.slow] * (
    member == "deepfill_v2")) for member in sorted(ADVERSARIAL)])
def test_adversarial_members_train_reload_and_export_on_odd_sizes(member, tmp_path):
    model = ADVERSARIAL[member]()
    model.compile()
    assert isinstance(model, AdversarialInpainter)
    data = model.training_data("photos", 4, seed=0)
    history = assert_fit_moves_weights(model, data, steps=2)  # generator and discriminator
    assert {"d_loss", "g_gan_loss", "psnr"} <= set(history)
    assert_round_trip(model, tmp_path / f"{member}.keras",
                      lambda m: m.fit(data, epochs=1, steps_per_epoch=1, verbose=0))
    image, mask = photo(45, 61, index=0)[None], stroke_mask(45, 61)[None]
    filled = model.apply(image, mask=mask[0]).numpy()[0]
    known = mask[0, ..., 0] == 0
    np.testing.assert_array_equal(filled[known], image[0][known])
    assert_export_parity(model, tmp_path, [image, mask])
    assert_int8_parity(model, tmp_path, [image, mask], max_levels=16)
    # The discriminator trains, it is not exported.
    assert export.signature_summary(tmp_path / model.name / "1")["inpaint"]["inputs"] == {
        "image": ("uint8", [None, None, None, 3]), "mask": ("uint8", [None, None, None, 1])}


@pytest.mark.slow  # default-suite time; the slow suite runs it
def test_deepfill_mirrored_step_equals_single_device_step(mirrored_strategy):
    def build():
        model = ADVERSARIAL["deepfill_v2"](seed=4)
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      discriminator_optimizer=keras.optimizers.SGD(0.05))
        return model

    batch = tiny().training_data("photos", 8, seed=3).take(1)
    assert_mirrored_step_equal(build, batch, mirrored_strategy, atol=5e-5,
                               metrics=("loss", "d_loss", "psnr"))


def test_adversarial_options_are_checked():
    with pytest.raises(ValueError, match="takes 32-pixel squares only.*patch_size 64"):
        build_context_encoder_inpainter(network_size=32, patch_size=64)
    with pytest.raises(ValueError, match="power of two"):
        build_context_encoder_inpainter(network_size=48)
    with pytest.raises(ValueError, match="Unknown GAN loss"):
        build_gated_inpainter(num_filters=4, patch_size=32, gan_loss="hinged")
    with pytest.raises(ValueError, match="Unknown reconstruction loss 'l3'"):
        build_gated_inpainter(num_filters=4, patch_size=32, reconstruction="l3")
    with pytest.raises(ValueError, match="adversarial_weight must be >= 0"):
        build_gated_inpainter(num_filters=4, patch_size=32, adversarial_weight=-1)


# --- the residual U-Net member -------------------------------------------------------------

def assert_int8_parity(model, folder, inputs, max_levels):
    """The full-int8 TFLite file (builtin ops) is within `max_levels` of Keras, within one
    level on average, and keeps the known pixels within `max_levels`."""
    tflite = export.export_tflite(model, folder / f"{model.name}_int8.tflite", "int8")
    report = export.tflite_parity(tflite, model, inputs=inputs)
    assert report["max_abs_diff"] <= max_levels and report["mean_abs_diff"] <= 1.0, report
    assert not report["has_nan"] and "QUANTIZE" in report["ops"], report
    assert not any(op.startswith("Flex") for op in report["ops"])
    return report


def test_residual_unet_member_trains_reloads_and_exports_on_odd_sizes(tmp_path):
    model = build_residual_unet_inpainter(num_filters=4, num_levels=3, num_blocks=1,
                                          patch_size=32, ssim_weight=3.0, seed=0)
    model.compile()
    assert model.size_multiple == 4
    image, mask = photo(45, 61, index=0)[None], stroke_mask(45, 61)[None]
    # Its last layer starts at zero: before training it returns the masked image.
    start = model.apply(image, mask=mask[0]).numpy()[0]
    holes = mask[0, ..., 0] > 0
    assert (start[holes] == 0).all() and np.array_equal(start[~holes], image[0][~holes])
    data = model.training_data("photos", 4, seed=0)
    history = assert_fit_moves_weights(model, data, steps=2)
    assert set(history) == {"loss", "hole_l1", "psnr"}
    assert_round_trip(model, tmp_path / "unet_inpainter.keras",
                      lambda m: m.fit(data, epochs=1, steps_per_epoch=1, verbose=0))
    filled = model.apply(image, mask=mask[0]).numpy()[0]
    np.testing.assert_array_equal(filled[~holes], image[0][~holes])
    assert filled[holes].any()  # it fills now
    assert_export_parity(model, tmp_path, [image, mask])
    assert_int8_parity(model, tmp_path, [image, mask], max_levels=12)
    with pytest.raises(ValueError, match="num_levels and num_blocks must be positive"):
        build_residual_unet_inpainter(num_levels=0, patch_size=32)
    with pytest.raises(ValueError, match="patch_size must be a positive multiple of 8"):
        build_residual_unet_inpainter(patch_size=36)


def test_int8_is_offered_where_it_computes_right_with_the_pull_push_fill_in_float():
    unet = build_residual_unet_inpainter(num_filters=2, num_levels=2, num_blocks=1,
                                         patch_size=32)
    pull_push = build_residual_unet_inpainter(num_filters=2, num_levels=2, num_blocks=1,
                                              pull_push_levels=3, patch_size=32)
    assert "int8" in unet.serving_spec().quantizations and not unet.serving_spec().int8_float_ops
    spec = pull_push.serving_spec()
    assert "int8" in spec.quantizations and {"DIV", "AVERAGE_POOL_2D"} <= set(spec.int8_float_ops)
    # The partial convolution's int8 file is wrong (59 levels on average): refused up front.
    with pytest.raises(ValueError, match="does not export quantize='int8'"):
        export.check_quantization(tiny(), "int8")


def test_pull_push_fill_keeps_known_pixels_and_interpolates_across_holes():
    # Known pixels exactly, on an odd size; a constant image is filled with its constant.
    rng = np.random.default_rng(0)
    image = rng.random((2, 45, 61, 3)).astype("float32")
    valid = (rng.random((2, 45, 61, 1)) > 0.5).astype("float32")
    filled = PullPushFill(8)([image * valid, valid]).numpy()
    np.testing.assert_array_equal(filled * valid, image * valid)
    constant = np.full((1, 45, 61, 3), 0.3, "float32")
    np.testing.assert_allclose(PullPushFill(8)([constant * valid[:1], valid[:1]]).numpy(),
                               constant, atol=1e-6)
    # A horizontal ramp with a 12-pixel vertical band missing: the fill stays between the
    # band's two edges and rises from left to right (a smooth fill, not a constant).
    ramp = np.tile(np.linspace(0.0, 1.0, 64, dtype="float32")[None, :, None], (48, 1, 3))[None]
    band = np.ones((1, 48, 64, 1), "float32")
    band[:, :, 26:38] = 0.0
    fill = PullPushFill(6)([ramp * band, band]).numpy()[0, 24, 26:38, 0]
    assert ramp[0, 0, 25, 0] - 0.02 <= fill.min() and fill.max() <= ramp[0, 0, 38, 0] + 0.02
    assert fill[-1] - fill[0] > 0.5 * (ramp[0, 0, 37, 0] - ramp[0, 0, 26, 0])
    # One known pixel fills the whole image with its colour (the coarsest level's mean).
    single = np.zeros((1, 20, 30, 1), "float32")
    single[0, 3, 4] = 1.0
    lone = PullPushFill(2)([np.full((1, 20, 30, 3), 0.7, "float32") * single, single]).numpy()
    np.testing.assert_allclose(lone, 0.7, atol=1e-6)
    with pytest.raises(ValueError, match="num_levels must be at least 1"):
        PullPushFill(0)


def test_pull_push_member_starts_as_the_classical_fill_refines_it_and_exports(tmp_path):
    model = build_residual_unet_inpainter(num_filters=4, num_levels=3, num_blocks=1,
                                          pull_push_levels=6, patch_size=32, ssim_weight=3.0,
                                          seed=0)
    model.compile()
    # The U-Net's last layer starts at zero: before training it returns the pull-push fill
    # (on a multiple of 4, which `apply` does not pad).
    image, mask = photo(44, 60, index=0)[None], stroke_mask(44, 60)[None]
    holes = mask[0, ..., 0] > 0
    start = model.apply(image, mask=mask[0]).numpy()[0]
    known = (~holes)[None, ..., None].astype("float32")
    fill = PullPushFill(6)([image / 255.0 * known, known]).numpy()[0]
    expected = np.round(np.clip(fill, 0.0, 1.0) * 255.0)
    assert np.abs(start.astype(int) - expected)[holes].max() <= 1
    np.testing.assert_array_equal(start[~holes], image[0][~holes])
    # Far closer to the truth in the holes than black, the masked input.
    error = np.abs(start[holes].astype(int) - image[0][holes]).mean()
    assert error < 0.5 * image[0][holes].astype(int).mean()
    image, mask = photo(45, 61, index=0)[None], stroke_mask(45, 61)[None]
    holes = mask[0, ..., 0] > 0
    start = model.apply(image, mask=mask[0]).numpy()[0]
    data = model.training_data("photos", 4, seed=0)
    assert_fit_moves_weights(model, data, steps=2)
    assert_round_trip(model, tmp_path / "pullpush.keras",
                      lambda m: m.fit(data, epochs=1, steps_per_epoch=1, verbose=0))
    filled = model.apply(image, mask=mask[0]).numpy()[0]
    np.testing.assert_array_equal(filled[~holes], image[0][~holes])
    assert not np.array_equal(filled, start)  # the refinement moved off the classical fill
    assert_export_parity(model, tmp_path, [image, mask])
    # int8: the U-Net's convolutions in int8, the pull-push ops kept in float32.
    report = assert_int8_parity(model, tmp_path, [image, mask], max_levels=12)
    assert {"DIV", "CONV_2D"} <= set(report["ops"])
    # Under bf16 the fill still computes in float32.
    precision.set_precision(model, "bf16")
    assert model.network.get_layer("pull_push").compute_dtype == "float32"
    assert model.network.get_layer("fill").compute_dtype == "bfloat16"
    with pytest.raises(ValueError, match="pull_push_levels must be 0"):
        build_residual_unet_inpainter(pull_push_levels=-1, patch_size=32)


# --- inference, export ---------------------------------------------------------------------

def test_apply_keeps_known_pixels_exactly_on_odd_sizes(trained):
    image = photo(37, 53)
    mask = stroke_mask(37, 53)
    filled = trained.apply(image, mask=mask).numpy()[0]
    known = mask[..., 0] == 0
    np.testing.assert_array_equal(filled[known], image[known])
    holes = ~known
    masked_error = np.abs(image[holes].astype(int)).mean()  # the hole as black
    assert np.abs(filled[holes].astype(int) - image[holes]).mean() < 0.8 * masked_error
    batch = trained.apply(np.stack([image, image[::-1]]), mask=mask > 0)  # one bool mask
    assert batch.shape == (2, 37, 53, 3)


@pytest.mark.slow  # default-suite time (21 s); the adversarial members' test keeps an export
def test_saved_model_and_tflite_parity_on_odd_sizes(trained, tmp_path):
    image, mask = photo(45, 61, index=0)[None], stroke_mask(45, 61)[None]
    report = assert_export_parity(trained, tmp_path, [image, mask])
    assert report["size_bytes"] > 0
    path = export.export_saved_model(trained, tmp_path / "again", "inpainter")
    assert export.signature_summary(path)["inpaint"] == {
        "inputs": {"image": ("uint8", [None, None, None, 3]),
                   "mask": ("uint8", [None, None, None, 1])},
        "outputs": {"image": ("uint8", [None, None, None, 3])}}
    request = json.dumps({"inputs": {"image": image.tolist(), "mask": mask.tolist()}})
    answer = np.array(export.predict_rest(path, request)["outputs"], np.uint8)
    np.testing.assert_array_equal(answer, trained.apply(image, mask=mask[0]).numpy())
    other = [photo(33, 47, index=5)[None], stroke_mask(33, 47, seed=9)[None]]
    for quantize, tolerance in (("float16", 2), ("dynamic", 12)):
        small = export.export_tflite(trained, tmp_path / f"inpainter_{quantize}.tflite",
                                     quantize, saved_model_path=path)
        report = export.tflite_parity(small, trained, inputs=other)
        assert report["mean_abs_diff"] <= tolerance / 4 and not report["has_nan"], report
        assert not any(op.startswith("Flex") for op in report["ops"])
        known = other[1][0, ..., 0] == 0
        filled = export.interpreter(small).get_signature_runner("inpaint")(
            image=other[0], mask=other[1])["image"][0]
        np.testing.assert_array_equal(filled[known], other[0][0][known])
    with pytest.raises(ValueError, match="does not export quantize='int8'.*none, float16"):
        export.export_tflite(trained, tmp_path / "inpainter_int8.tflite", "int8")


# --- the peers and the CLI -----------------------------------------------------------------

def test_evaluation_scores_the_model_and_the_classical_peers_on_the_same_holes(trained,
                                                                               tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in (1, 2):
        _png(folder / f"{index}.png", photo(72, 96, index=index))
    report = evaluation.evaluate_inpainting(trained, str(folder), hole_ratio="0.3-0.4",
                                            grid=tmp_path / "grid.png")
    rows = report["buckets"]["30%-40%"]
    assert list(rows) == ["model", "telea", "navier_stokes", "biharmonic"]
    for name, row in rows.items():
        assert 10 < row["psnr"] < 60 and 0 < row["ssim"] <= 1 and row["l1"] > 0, (name, row)
    grid = tf.io.decode_png(tf.io.read_file(str(tmp_path / "grid.png"))).numpy()
    assert grid.shape[1] > 4 * grid.shape[0]  # five panels side by side
    lines = evaluation.inpainting_table(report)
    assert any("model - best peer" in line for line in lines)


def _png(path, array):
    tf.io.write_file(str(path), tf.io.encode_png(array))
    return str(path)


def test_cli_train_apply_evaluate_on_odd_sized_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "pconv_unet", "--dataset", "photos", "--epochs", "1",
                     "--steps-per-epoch", "2", "--batch-size", "4", "--depth", "3",
                     "--num-filters", "8", "--patch-size", "32", "--out", str(run)]) == 0
    assert (run / "pconv_unet.tflite").exists()
    capsys.readouterr()
    images = tmp_path / "images"
    images.mkdir()
    masks = tmp_path / "masks"
    masks.mkdir()
    for name, (height, width) in {"a": (37, 51), "b": (50, 29)}.items():
        _png(images / f"{name}.png", photo(height, width))
        _png(masks / f"{name}.png", stroke_mask(height, width))
    out = tmp_path / "out"
    assert cli.main(["apply", str(run), str(images / "a.png"), str(images / "b.png"),
                     "--mask", str(masks), "--out", str(out)]) == 0
    filled = tf.io.decode_png(tf.io.read_file(str(out / "b.png"))).numpy()
    known = stroke_mask(50, 29)[..., 0] == 0
    np.testing.assert_array_equal(filled[known], photo(50, 29)[known])
    assert cli.main(["evaluate", str(run), "--dataset", str(images), "--hole-ratio", "0.1-0.2",
                     "--grid", str(tmp_path / "grid.png")]) == 0
    printed = capsys.readouterr().out
    assert "biharmonic" in printed and "telea" in printed and (tmp_path / "grid.png").exists()


def test_cli_trains_an_adversarial_member_on_a_folder_of_user_masks(tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    for index in range(2):
        _png(masks / f"{index}.png", stroke_mask(40, 60, seed=index))
    run = tmp_path / "run"
    assert cli.main(["train", "context_encoder", "--dataset", "photos", "--epochs", "1",
                     "--steps-per-epoch", "2", "--batch-size", "4", "--network-size", "32",
                     "--num-filters", "8", "--bottleneck", "16", "--discriminator-filters", "4",
                     "--mask-folder", str(masks), "--out", str(run)]) == 0
    config = json.loads((run / "run_config.json").read_text())
    assert config["model_kwargs"]["mask_folder"] == str(masks)
    model = keras.models.load_model(run / "model.keras")
    assert isinstance(model.masks, masks_module.FolderMasks)
    assert int(model.optimizer.iterations) == 2 and (run / "context_encoder.tflite").exists()
    assert cli.main(["train", "deepfill_v2", "--mask-folder", str(tmp_path / "none"),
                     "--out", str(tmp_path / "bad")]) != 0
    assert not (tmp_path / "bad").exists()


BAD_MASKS = {
    "size": (lambda: stroke_mask(20, 20), "must match their images' size"),
    "grey levels": (lambda: np.full((37, 51, 1), 128, np.uint8), "must be binary"),
    "empty": (lambda: np.zeros((37, 51, 1), np.uint8), "no hole"),
    "full": (lambda: np.full((37, 51, 1), 255, np.uint8), "all hole"),
    "alpha": (lambda: np.zeros((37, 51, 4), np.uint8), "alpha"),
    "16-bit": (lambda: np.zeros((37, 51, 1), np.uint16), "16-bit"),
}


@pytest.mark.parametrize("problem", sorted(BAD_MASKS) + ["no mask", "missing in folder"])
def test_bad_masks_are_refused_and_nothing_is_written(problem, trained, tmp_path, capsys):
    image = _png(tmp_path / "a.png", photo(37, 51))
    masks = tmp_path / "masks"
    masks.mkdir()
    if problem in BAD_MASKS:
        make, message = BAD_MASKS[problem]
        array = make()
        if array.dtype == np.uint16:
            tf.io.write_file(str(masks / "a.png"), tf.io.encode_png(tf.constant(array)))
        else:
            _png(masks / "a.png", array)
        mask_args = ["--mask", str(masks / "a.png")]
    elif problem == "no mask":
        mask_args, message = [], "Inpainting needs the holes: pass --mask"
    else:
        mask_args, message = ["--mask", str(masks)], "No mask for"
    run = tmp_path / "run"
    trained.save(tmp_path / "model.keras")
    run.mkdir()
    (tmp_path / "model.keras").rename(run / "model.keras")
    out = tmp_path / "out"
    assert cli.main(["apply", str(run), image, *mask_args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


# --- the shipped inpainter -----------------------------------------------------------------

SHIPPED = "pullpush_unet_freeform"


def test_shipped_inpainter_loads_by_name_beats_the_peers_on_its_card_and_fills(tmp_path):
    from kerasgen import store

    model = store.load_model(SHIPPED)
    assert getattr(model, "optimizer", None) is None
    assert precision.precision_of(model) == "float32"
    recorded = json.loads((store.saved_models_dir() / SHIPPED / "metrics.json").read_text())
    assert [row["setting"] for row in recorded["rows"]] == [
        f"free-form {low:.0%}-{high:.0%}" for low, high in BUCKETS]
    for row in recorded["rows"]:  # CBSD68: above every classical peer in PSNR and in SSIM
        for name, peer in row["peers"].items():
            assert row["psnr"] > peer["psnr"] and row["ssim"] > peer["ssim"], (row, name)
    # The row: at 30-40 % holes, at least 1 dB over the best peer.
    assert recorded["rows"][2]["best_peer_margin_db"] >= 1.0
    image = _png(tmp_path / "a.png", photo(61, 67))
    mask = stroke_mask(61, 67)
    out = tmp_path / "out"
    assert cli.main(["apply", SHIPPED, image, "--mask", _png(tmp_path / "m.png", mask),
                     "--out", str(out)]) == 0
    filled = tf.io.decode_png(tf.io.read_file(str(out / "a.png"))).numpy()
    holes = mask[..., 0] > 0
    np.testing.assert_array_equal(filled[~holes], photo(61, 67)[~holes])
    # One small crop says little against a peer (the card's 68 images do): it fills, closely.
    error = np.abs(filled[holes].astype(int) - photo(61, 67)[holes]).mean()
    assert error < 0.25 * photo(61, 67)[holes].astype(int).mean()  # black: 1.0


@pytest.mark.slow  # all 68 CBSD68 images, one bucket, the model alone (about a minute)
def test_shipped_inpainter_measures_what_its_card_says(data_dir, tmp_path):
    from kerasgen import store

    model = store.load_model(SHIPPED)
    recorded = json.loads((store.saved_models_dir() / SHIPPED / "metrics.json").read_text())
    row = recorded["rows"][2]
    report = evaluation.evaluate_inpainting(model, "CBSD68", hole_ratio="0.3-0.4",
                                            data_dir=data_dir, peers={},
                                            grid=str(tmp_path / "grid.png"))
    measured = report["buckets"]["30%-40%"]["model"]
    assert measured["psnr"] == pytest.approx(row["psnr"], abs=0.01)
    assert measured["ssim"] == pytest.approx(row["ssim"], abs=1e-4)
