"""Translation: CycleGAN and pix2pix training, pool, schedule, reload, export, CLI, data errors."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, export, training
from kerasgen.callbacks import LinearDecay
from kerasgen.data import translation as tdata
from kerasgen.data.sources import DataError
from kerasgen.layers import ImagePool
from kerasgen.models.translation import CycleGAN, build_cyclegan, build_pix2pix, evaluation
from tests.helpers import assert_mirrored_step_equal, assert_round_trip

SIZE = 32


def tiny_cyclegan(seed=0, pool_size=4, learning_rate=None):
    model = build_cyclegan((SIZE, SIZE), seed=seed, num_filters=8, num_blocks=1,
                           discriminator_filters=8, pool_size=pool_size)
    if learning_rate is None:
        model.compile()
    else:
        model.compile(**{name: keras.optimizers.Adam(learning_rate, beta_1=0.5)
                         for name in ("generator_a2b_optimizer", "generator_b2a_optimizer",
                                      "discriminator_a_optimizer", "discriminator_b_optimizer")})
    return model


def tiny_pix2pix(seed=0):
    model = build_pix2pix((SIZE, SIZE), seed=seed, num_filters=8, discriminator_filters=8)
    model.compile()
    return model


def unpaired_batches(batch_size=2, seed=0):
    return tdata.jitter_dataset(*tdata.load_unpaired("chelsea2coffee"), SIZE, batch_size,
                                seed=seed)


def paired_batches(batch_size=2, seed=0):
    return tdata.jitter_dataset(*tdata.load_paired("grey2color"), SIZE, batch_size, seed=seed,
                                paired=True)


def odd_photo(height=37, width=53, index=0):
    images, _ = tdata.load_unpaired("chelsea2coffee", "test")
    return np.ascontiguousarray(images[index][:height, :width])


@pytest.fixture(scope="module")
def trained_cyclegan():
    """A tiny CycleGAN trained at a high rate, so its translations are far from constant."""
    model = tiny_cyclegan(seed=1, learning_rate=2e-3)
    model.fit(unpaired_batches(), epochs=1, steps_per_epoch=40, verbose=0)
    return model


def _weights(network):
    return [weight.numpy().copy() for weight in network.trainable_weights]


def _moved(before, network):
    return all(not np.allclose(old, new.numpy()) for old, new in
               zip(before, network.trainable_weights))


# --- training ----------------------------------------------------------------------------------

def test_cyclegan_fit_moves_all_four_networks_with_their_own_optimizers():
    model = tiny_cyclegan()
    names = model.optimized_networks
    before = {name: _weights(getattr(model, name)) for name in names}
    history = model.fit(unpaired_batches(), epochs=1, steps_per_epoch=3, verbose=0).history
    assert set(history) == {"g_loss", "cycle_loss", "identity_loss", "d_a_loss", "d_b_loss"}
    assert all(np.isfinite(values[-1]) for values in history.values())
    for name in names:
        assert _moved(before[name], getattr(model, name)), name
        assert int(getattr(model, f"{name}_optimizer").iterations) == 3
    optimizers = model.schedule_optimizers()
    assert len({id(optimizer) for optimizer in optimizers}) == 4
    # The generator loss holds lambda * cycle + 0.5 lambda * identity + adversarial terms.
    assert history["g_loss"][-1] > 10 * history["cycle_loss"][-1] + 5 * history[
        "identity_loss"][-1]


def test_pix2pix_fit_moves_both_networks_and_lowers_l1():
    model = tiny_pix2pix()
    before = {name: _weights(getattr(model, name)) for name in model.optimized_networks}
    data = paired_batches(batch_size=4)
    first = model.fit(data, epochs=1, steps_per_epoch=2, verbose=0).history
    later = model.fit(data, epochs=1, steps_per_epoch=30, verbose=0).history
    for name in model.optimized_networks:
        assert _moved(before[name], getattr(model, name)), name
    assert int(model.generator_optimizer.iterations) == 32
    assert later["l1_loss"][-1] < first["l1_loss"][-1]


def test_linear_decay_schedule_values_and_fit_sets_every_optimizer():
    schedule = LinearDecay(2e-4, epochs=200)  # the paper's 100 + 100 epochs
    assert schedule.rate(0) == schedule.rate(99) == pytest.approx(2e-4)
    assert schedule.rate(100) == pytest.approx(2e-4 * (1 - 1 / 101))
    assert schedule.rate(150) == pytest.approx(2e-4 * (1 - 51 / 101))
    assert schedule.rate(199) == pytest.approx(2e-4 / 101)
    rates = [schedule.rate(epoch) for epoch in range(200)]
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))
    assert LinearDecay(1.0, epochs=4, constant_share=0.5).rate(3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="constant_share"):
        LinearDecay(1.0, 10, constant_share=1.5)

    model = tiny_cyclegan()
    callback = LinearDecay(1e-3, epochs=4)
    model.fit(unpaired_batches(), epochs=4, steps_per_epoch=1, verbose=0, callbacks=[callback])
    for optimizer in model.schedule_optimizers():
        assert float(optimizer.learning_rate) == pytest.approx(callback.rate(3))


# --- the image pool ------------------------------------------------------------------------------

def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(pool_size=4, image_shape=(2, 2, 1))
    seeds = keras.random.SeedGenerator(0)
    images = tf.reshape(tf.range(1.0, 7.0), [6, 1, 1, 1]) * tf.ones([6, 2, 2, 1])
    # 1. Filling: every image is returned as it is and stored, in order.
    out = pool.query(images[:3], seeds)
    np.testing.assert_array_equal(out, images[:3])
    assert int(pool.count) == 3
    np.testing.assert_array_equal(pool.images[:3], images[:3])
    # 2. Filling the last slot, then full: a returned image is the new one or a stored one,
    #    and a stored one that is returned is replaced by the new image.
    seen = set()
    history_returns = 0
    for step in range(200):
        value = 10.0 + step
        stored_before = set(np.asarray(pool.images)[:, 0, 0, 0].tolist())
        out = float(pool.query(tf.fill([1, 2, 2, 1], value), seeds)[0, 0, 0, 0])
        stored_after = set(np.asarray(pool.images)[:, 0, 0, 0].tolist())
        if step == 0:
            assert out == value and value in stored_after
            continue
        if out == value:
            assert stored_after == stored_before
        else:
            history_returns += 1
            assert out in stored_before and out not in stored_after and value in stored_after
        seen.add(out)
    assert int(pool.count) == 4
    assert 0.35 < history_returns / 199 < 0.65
    # 3. pool_size=0 passes images through.
    np.testing.assert_array_equal(ImagePool(0, (2, 2, 1)).query(images, seeds), images)


@pytest.mark.slow  # default-suite time; the slow suite runs it
def test_cyclegan_step_under_mirrored_strategy_equals_single_device(mirrored_strategy):
    batch = next(iter(unpaired_batches(batch_size=4)))
    # The weights compared include both image pools (non-trainable weights). Adam's first
    # step is about lr * sign(g) (lr 2e-4): a gradient near zero whose sign the replicas'
    # summation order flips moves its weight by up to 2 lr. Measured on an AVX2-only CPU
    # (before any change here): 6.6e-5 on 8 of 168 variables, the rest below 1e-6.
    _, mirrored = assert_mirrored_step_equal(lambda: tiny_cyclegan(seed=5, pool_size=2),
                                             tf.data.Dataset.from_tensors(batch),
                                             mirrored_strategy, atol=1.5e-4)
    for pool in ("pool_a", "pool_b"):
        assert getattr(mirrored, pool).count.numpy() == 2


# --- reload and resume ----------------------------------------------------------------------------

def test_cyclegan_reload_keeps_optimizers_pools_and_next_step(tmp_path):
    model = tiny_cyclegan(seed=2)
    data = unpaired_batches()
    model.fit(data, epochs=1, steps_per_epoch=3, verbose=0)
    pool_a = model.pool_a.images.numpy()
    batch = next(iter(data))

    def train_more(m):
        if m is not model:  # the reloaded model, before training on
            np.testing.assert_array_equal(pool_a, m.pool_a.images.numpy())
            assert int(m.pool_b.count) == 4  # full: 6 fakes seen by a pool of 4
        m.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)

    # The next step (pool draws included) is the same on both; pools are weights too.
    reloaded = assert_round_trip(model, tmp_path / "cyclegan.keras", train_more)
    assert isinstance(reloaded, CycleGAN)
    assert reloaded.restored_iterations == [3, 3, 3, 3]
    np.testing.assert_array_equal(model.pool_a.images.numpy(), reloaded.pool_a.images.numpy())


def test_pix2pix_reload_keeps_both_optimizers(tmp_path):
    model = tiny_pix2pix(seed=3)
    model.fit(paired_batches(), epochs=1, steps_per_epoch=2, verbose=0)
    model.save(tmp_path / "pix2pix.keras")
    reloaded = keras.models.load_model(tmp_path / "pix2pix.keras")
    for name in ("generator_optimizer", "discriminator_optimizer"):
        assert int(getattr(reloaded, name).iterations) == 2
        for one, two in zip(getattr(model, name).variables, getattr(reloaded, name).variables):
            np.testing.assert_array_equal(one.numpy(), two.numpy())
    image = odd_photo()
    np.testing.assert_array_equal(model.translate(image), reloaded.translate(image))


# --- inference and export -----------------------------------------------------------------------

def test_translate_any_size_keeps_the_size_and_checks_inputs(trained_cyclegan):
    model = trained_cyclegan
    for height, width in ((37, 53), (5, 3), (64, 64), (2, 9)):
        out = model.translate(odd_photo(height, width), "b2a")
        assert out.shape == (1, height, width, 3) and out.dtype == tf.uint8
    image = odd_photo()
    a2b, b2a = model.translate(image, "a2b").numpy(), model.translate(image, "b2a").numpy()
    assert np.abs(a2b.astype(int) - b2a).mean() > 1  # two different generators
    assert a2b.std() > 5  # not a constant image
    with pytest.raises(ValueError, match="uint8"):
        model.translate(image.astype("float32"))
    with pytest.raises(ValueError, match="RGB"):
        model.translate(image[..., :1])
    with pytest.raises(ValueError, match="Unknown direction 'translate'"):
        model.translate(image, "translate")
    with pytest.raises(ValueError, match="at least 2x2"):
        model.translate(image[:1, :5])
    # pix2pix pads small images many times over to its 32-multiple and crops back.
    pix2pix = tiny_pix2pix()
    assert pix2pix.translate(odd_photo(7, 45)).shape == (1, 7, 45, 3)


def test_saved_model_signatures_rest_and_tflite_parity(trained_cyclegan, tmp_path):
    model = trained_cyclegan
    path = export.export_saved_model(model, tmp_path, "cyclegan")
    summary = export.signature_summary(path)
    uint8_images = {"images": ("uint8", [None, None, None, 3])}
    for name in ("a2b", "b2a", "serving_default"):
        assert summary[name] == {"inputs": uint8_images, "outputs": uint8_images}
    image = odd_photo(41, 27)
    loaded = tf.saved_model.load(str(path))
    for direction in ("a2b", "b2a"):
        served = loaded.signatures[direction](images=tf.constant(image[None]))["images"]
        np.testing.assert_array_equal(served, model.translate(image, direction))
    answer = export.predict_rest(path, {"signature_name": "b2a", "instances": [image.tolist()]})
    np.testing.assert_array_equal(answer["predictions"][0], model.translate(image, "b2a")[0])
    for direction in ("a2b", "b2a"):
        tflite = export.export_tflite(model, tmp_path / f"{direction}.tflite",
                                      saved_model_path=path, signature=direction)
        ops = export.tflite_ops(tflite)
        assert "MIRROR_PAD" in ops and not any(op.startswith("Flex") for op in ops)
        for height, width in ((41, 27), (64, 64)):
            report = export.tflite_parity(tflite, model, inputs=[odd_photo(height, width)[None]],
                                          signature=direction)
            assert report["max_abs_diff"] <= 1 and not report["has_nan"], report
    with pytest.raises(ValueError, match="Unknown signature 'translate'"):
        export.export_tflite(model, tmp_path / "x.tflite", signature="translate")


@pytest.mark.slow  # default-suite time; the slow suite runs it
def test_pix2pix_export_and_int8(tmp_path):
    model = tiny_pix2pix(seed=4)
    model.compile(generator_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    model.fit(paired_batches(batch_size=4), epochs=1, steps_per_epoch=20, verbose=0)
    path = export.export_saved_model(model, tmp_path, "pix2pix")
    assert set(export.signature_summary(path)) == {"translate", "serving_default"}
    tflite = export.export_tflite(model, tmp_path / "pix2pix.tflite", saved_model_path=path)
    report = export.tflite_parity(tflite, model, inputs=[odd_photo(33, 50)[None]])
    assert report["max_abs_diff"] <= 1, report
    int8 = export.export_tflite(model, tmp_path / "pix2pix_int8.tflite", quantize="int8",
                                saved_model_path=path)
    report = export.tflite_parity(int8, model)
    assert report["mean_abs_diff"] < 12 and not report["has_nan"], report


# --- data ---------------------------------------------------------------------------------------

def test_jitter_pipeline_is_seeded_and_pairs_share_their_crop():
    inputs, targets = tdata.load_paired("grey2color")
    first = next(iter(tdata.jitter_dataset(inputs, targets, 32, 8, seed=7, paired=True)))
    again = next(iter(tdata.jitter_dataset(inputs, targets, 32, 8, seed=7, paired=True)))
    other = next(iter(tdata.jitter_dataset(inputs, targets, 32, 8, seed=8, paired=True)))
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(first[0], other[0])
    assert first[0].shape == first[1].shape == (8, 32, 32, 3)
    assert -1.0 <= float(tf.reduce_min(first[1])) and float(tf.reduce_max(first[1])) <= 1.0
    # The same crop and flip: the input is the grey version of the target, pixel for pixel.
    luma = tf.reduce_sum((first[1] + 1) * 127.5 * [0.299, 0.587, 0.114], axis=-1)
    np.testing.assert_allclose((first[0][..., 0] + 1) * 127.5, luma, atol=3.0)
    # Unpaired: each domain keeps to its own images.
    cats, coffee = tdata.load_unpaired("chelsea2coffee")
    a, b = next(iter(tdata.jitter_dataset(cats, coffee, 32, 4)))
    assert not np.allclose(a, b)


def test_horse2zebra_from_the_data_dir(data_dir):
    horses, zebras = tdata.load_unpaired("horse2zebra", "train", data_dir)
    assert (len(horses), len(zebras)) == (200, 200)
    horses, zebras = tdata.load_unpaired("horse2zebra", "test", data_dir)
    assert (len(horses), len(zebras)) == (120, 140)
    assert horses[0].shape == (256, 256, 3) and horses[0].dtype == np.uint8
    root = data_dir / "cyclegan" / "horse2zebra"
    horses, zebras = tdata.load_unpaired(f"{root / 'testA'},{root / 'testB'}")
    assert (len(horses), len(zebras)) == (120, 140)


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tf.io.encode_png(image).numpy())


def test_paired_folders_side_by_side_and_their_errors(tmp_path):
    image = odd_photo(20, 30)
    _write(tmp_path / "ab" / "train" / "one.png", np.concatenate([image, image[::-1]], axis=1))
    _write(tmp_path / "ab" / "test" / "two.png", np.concatenate([image[::-1], image], axis=1))
    inputs, targets = tdata.load_paired(str(tmp_path / "ab"))
    np.testing.assert_array_equal(inputs[0], image)
    np.testing.assert_array_equal(targets[0], image[::-1])
    inputs, _ = tdata.load_paired(str(tmp_path / "ab"), "test")
    np.testing.assert_array_equal(inputs[0], image[::-1])

    _write(tmp_path / "odd" / "x.png", image[:, :29])
    with pytest.raises(DataError, match="29 pixels wide"):
        tdata.load_paired(str(tmp_path / "odd"))
    for name in ("a", "b"):
        _write(tmp_path / name / "same.png", image)
    _write(tmp_path / "a" / "only_in_a.png", image)
    with pytest.raises(DataError, match="match by file name.*only_in_a"):
        tdata.load_paired(f"{tmp_path / 'a'},{tmp_path / 'b'}")
    _write(tmp_path / "b" / "only_in_a.png", image[:10])
    with pytest.raises(DataError, match="differ in size"):
        tdata.load_paired((tmp_path / "a", tmp_path / "b"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no"):
        tdata.load_unpaired(f"{tmp_path / 'a'},{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="no train domains"):
        tdata.load_unpaired(str(tmp_path / "a"))
    with pytest.raises(DataError, match="Unknown dataset 'zebras'"):
        tdata.load_unpaired("zebras")
    with pytest.raises(DataError, match="Unknown dataset .facades_missing.; valid paired"):
        tdata.load_paired("facades_missing")
    with pytest.raises(DataError, match="Unknown split"):
        tdata.load_unpaired("chelsea2coffee", "val")


def test_bad_training_inputs_and_settings():
    model = tiny_cyclegan()
    wrong_size = tdata.jitter_dataset(*tdata.load_unpaired("chelsea2coffee"), 48, 2)
    with pytest.raises(ValueError, match="image_size=32"):
        model.fit(wrong_size, epochs=1, steps_per_epoch=1, verbose=0)
    with pytest.raises(ValueError, match=r"\(a, b\) image batches"):
        model.fit(tf.zeros([4, SIZE, SIZE, 3]), epochs=1, batch_size=2, verbose=0)
    with pytest.raises(ValueError, match="Unknown compile arguments.*generator_optimizer"):
        model.compile(generator_optimizer=keras.optimizers.Adam())
    with pytest.raises(ValueError, match="multiple of 4"):
        build_cyclegan((30, 30))
    with pytest.raises(ValueError, match="divisible by 4"):
        build_pix2pix((30, 30))
    with pytest.raises(ValueError, match="square"):
        build_cyclegan((32, 64))


def test_evaluate_translation_against_a_direct_computation(trained_cyclegan):
    cats, coffee = tdata.load_unpaired("chelsea2coffee", "test")
    cats, coffee = tdata.resized_arrays(cats[:6], SIZE), tdata.resized_arrays(coffee[:6], SIZE)
    train_cats, train_coffee = tdata.load_unpaired("chelsea2coffee")
    classifier = evaluation.train_domain_classifier(train_cats[:40], train_coffee[:40], 32,
                                                    epochs=3)
    report = evaluation.evaluate_translation(trained_cyclegan, cats, coffee, classifier,
                                             batch_size=4)
    back = trained_cyclegan.translate(trained_cyclegan.translate(cats, "a2b"), "b2a").numpy()
    assert report["cycle_l1_a"] == pytest.approx(np.abs(back.astype(float) - cats).mean())
    fake = trained_cyclegan.translate(coffee, "b2a").numpy()
    expected = np.mean(evaluation.domain_b_probability(classifier, fake) < 0.5)
    assert report["b2a_success"] == pytest.approx(expected)
    assert 0.0 <= report["classifier_accuracy"] <= 1.0
    assert report["test_images_a"] == report["test_images_b"] == 6


# --- runs and the CLI ---------------------------------------------------------------------------

def test_train_run_then_translate_cli_on_odd_files(tmp_path, capsys):
    result = training.train("cyclegan", epochs=2, steps_per_epoch=2, image_size=SIZE,
                            out_dir=tmp_path / "run", export_formats=(), verbose=0,
                            model_options={"num_filters": 8, "num_blocks": 1,
                                           "discriminator_filters": 8})
    assert (tmp_path / "run" / "translations.png").exists()
    config = json.loads((tmp_path / "run" / "run_config.json").read_text())
    assert config["image_size"] == SIZE and result.model.image_size == SIZE
    # The schedule ran: 2 epochs, one constant and one decaying (1 - 1/2 of 2e-4).
    for optimizer in result.model.schedule_optimizers():
        assert float(optimizer.learning_rate) == pytest.approx(1e-4)
    odd, grey = odd_photo(37, 53), odd_photo(30, 41)[..., :1]
    _write(tmp_path / "in" / "odd.png", odd)
    _write(tmp_path / "in" / "grey.png", grey)
    inputs = [str(tmp_path / "in" / "odd.png"), str(tmp_path / "in" / "grey.png")]
    code = cli.main(["translate", str(tmp_path / "run"), *inputs, "--direction", "b2a",
                     "--out", str(tmp_path / "out")])
    assert code == 0
    written = tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / "odd.png"))).numpy()
    assert written.shape == (37, 53, 3)
    np.testing.assert_array_equal(written, result.model.translate(odd, "b2a")[0])
    assert tf.io.decode_png(tf.io.read_file(str(tmp_path / "out" / "grey.png"))).shape == (
        30, 41, 3)
    capsys.readouterr()
    # Errors: nothing is written or overwritten.
    assert cli.main(["translate", str(tmp_path / "run"), *inputs, "--out",
                     str(tmp_path / "out")]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["translate", str(tmp_path / "run"), inputs[0], "--direction", "x2y",
                     "--out", str(tmp_path / "other")]) == 2
    assert "Unknown direction 'x2y'; this model translates ['a2b', 'b2a']" in \
        capsys.readouterr().err
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    assert cli.main(["translate", str(tmp_path / "run"), inputs[0],
                     str(tmp_path / "in" / "broken.png"), "--out", str(tmp_path / "other")]) == 2
    assert "broken.png: not a readable" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
    assert cli.main(["sample", str(tmp_path / "run")]) == 2
    assert "'cyclegan' model, which does not sample" in capsys.readouterr().err


@pytest.mark.slow  # default-suite time; the slow suite runs it
def test_cli_train_pix2pix_exports_and_translates(tmp_path, capsys):
    code = cli.main(["train", "pix2pix", "--epochs", "1", "--steps-per-epoch", "2",
                     "--image-size", str(SIZE), "--out", str(tmp_path / "run")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "translations:" in printed and "TFLite:" in printed
    summary = export.signature_summary(tmp_path / "run" / "saved_model" / "pix2pix" / "1")
    assert summary["translate"]["inputs"] == {"images": ("uint8", [None, None, None, 3])}
    _write(tmp_path / "in.png", odd_photo(19, 70))
    assert cli.main(["translate", str(tmp_path / "run"), str(tmp_path / "in.png"), "--out",
                     str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "in.png").exists()
    assert cli.main(["translate", str(tmp_path / "run"), str(tmp_path / "in.png"),
                     "--direction", "b2a", "--out", str(tmp_path / "out2")]) == 2
    assert "this model translates ['translate']" in capsys.readouterr().err
