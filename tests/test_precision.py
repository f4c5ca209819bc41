"""Training speed and precision: `--precision float32|bf16|auto` (`auto` follows the hardware,
every family trains in bf16 with float32 outputs and exports float32 with the float32 parity, a
run keeps the precision it started with) and the fused batch norm."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import cli, export, precision, training
from kerasgen.layers import BatchNormalization
from tests.helpers import layer_policies

# One tiny run per training wrapper: (model, settings, model options).
TINY_BF16_RUNS = {
    "dcgan": (dict(image_size=16, batch_size=16), {"latent_dim": 8, "base_filters": 8}),
    "cgan": (dict(image_size=16, batch_size=16), {"latent_dim": 8, "base_filters": 8}),
    "wgan_gp": (dict(image_size=16, batch_size=16),
                {"latent_dim": 8, "base_filters": 8, "critic_steps": 2}),
    "classifier": (dict(dataset="digits", image_size=16, batch_size=16),
                   {"base_filters": 4, "feature_dim": 16}),
    "vae": (dict(dataset="digits", image_size=16, batch_size=16),
            {"latent_dim": 4, "base_filters": 4, "hidden_units": 16}),
    "dncnn_blind": (dict(dataset="photos", batch_size=4),
                    {"depth": 3, "num_filters": 8, "patch_size": 16}),
    "ffdnet": (dict(dataset="photos", batch_size=4),
               {"depth": 3, "num_filters": 8, "patch_size": 16}),
    "edsr": (dict(dataset="photos", batch_size=4),
             {"num_blocks": 1, "num_filters": 8, "patch_size": 16}),
    "recurrent_denoiser": (dict(dataset="photos", batch_size=4),
                           {"num_stages": 2, "num_filters": 8, "patch_size": 16}),
    "cyclegan": (dict(image_size=32, batch_size=1),
                 {"num_filters": 4, "num_blocks": 1, "discriminator_filters": 4, "pool_size": 2}),
    "pix2pix": (dict(image_size=32, batch_size=1),
                {"num_filters": 4, "num_downs": 5, "discriminator_filters": 4}),
    "pconv_unet": (dict(dataset="photos", batch_size=4),
                   {"depth": 3, "num_filters": 8, "patch_size": 32}),
    "deepfill_v2": (dict(dataset="photos", batch_size=4),
                    {"num_filters": 4, "discriminator_filters": 4, "discriminator_layers": 3,
                     "patch_size": 32}),
    "zero_dce": (dict(dataset="photos", batch_size=4), {"num_filters": 4, "patch_size": 32}),
    "ddpm": (dict(dataset="digits", image_size=16, batch_size=16),
             {"num_filters": 8, "depth": 0, "attention_levels": 0, "sampling_steps": 2}),
    "pixelcnn": (dict(dataset="digits", batch_size=16), {"num_layers": 2, "num_filters": 8}),
    "draw": (dict(dataset="digits", batch_size=16),
             {"num_steps": 3, "units": 16, "latent_dim": 4}),
    "row_lstm": (dict(dataset="digits", batch_size=16), {"num_layers": 1, "num_filters": 4}),
    "diagonal_bilstm": (dict(dataset="digits", batch_size=16),
                        {"num_layers": 1, "num_filters": 4}),
    "convlstm": (dict(dataset="digits", batch_size=4),
                 {"frame_size": 16, "num_input_frames": 3, "num_output_frames": 2,
                  "patch_size": 2, "num_filters": 8}),
}
# The two whose bf16 runs the default suite keeps; the others run with `pytest -m slow`.
DEFAULT_SUITE = ("dcgan", "dncnn_blind")


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
    return path


def _never_measured():
    raise AssertionError("the probe ran where no measurement was needed")


def test_auto_picks_bf16_only_where_the_cpu_computes_it_natively_and_faster(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("KERASGEN_CACHE_DIR", str(tmp_path / "cache"))
    assert precision.resolve("auto", _cpuinfo(tmp_path, "avx avx2 fma"),
                             measure=_never_measured) == "float32"
    assert precision.resolve("auto", tmp_path / "missing", measure=_never_measured) == "float32"
    assert precision.resolve("bf16", _cpuinfo(tmp_path, "avx2")) == "bf16"  # asked: given
    assert precision.resolve("float32", _cpuinfo(tmp_path, "avx512_bf16"),
                             measure=_never_measured) == "float32"
    # Native flags: the probe decides (one machine ran bf16 at 2x float32, another at 0.6x).
    faster = _cpuinfo(tmp_path, "avx2 avx512f avx512_bf16")
    assert precision.resolve("auto", faster, measure=lambda: 1.9) == "bf16"
    (tmp_path / "amx").mkdir()
    slower = _cpuinfo(tmp_path / "amx", "avx2 amx_bf16 amx_tile")
    assert precision.resolve("auto", slower, measure=lambda: 0.6) == "float32"
    # A tie goes to float32.
    (tmp_path / "tie").mkdir()
    assert precision.resolve("auto", _cpuinfo(tmp_path / "tie", "avx512_bf16 vnni"),
                             measure=lambda: precision.BF16_MIN_SPEEDUP - 0.01) == "float32"
    for bad in ("fp16", "mixed_bfloat16", "", None):
        with pytest.raises(ValueError, match="valid: auto, float32, bf16"):
            precision.resolve(bad)


def test_the_bf16_probe_runs_once_per_cpu_and_survives_an_unwritable_cache(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("KERASGEN_CACHE_DIR", str(tmp_path / "cache"))
    cpuinfo = _cpuinfo(tmp_path, "avx512_bf16")
    assert precision.cpu_bf16_speedup(cpuinfo, lambda: 1.7) == 1.7
    assert precision.cpu_bf16_speedup(cpuinfo, _never_measured) == 1.7  # cached
    assert [path.suffix for path in (tmp_path / "cache").iterdir()] == [".json"]
    (tmp_path / "other").mkdir()  # another CPU: measured anew
    assert precision.cpu_bf16_speedup(_cpuinfo(tmp_path / "other", "amx_bf16"),
                                      lambda: 0.5) == 0.5
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("KERASGEN_CACHE_DIR", str(blocked))
    assert precision.cpu_bf16_speedup(cpuinfo, lambda: 1.2) == 1.2  # nothing cached, no error


def test_the_bf16_probe_times_a_real_convolution_step():
    seconds = precision.conv_step_seconds("float32", shape=(2, 16, 16, 8), repeats=2)
    assert 0 < seconds < 5
    assert precision.conv_step_seconds("bfloat16", shape=(2, 16, 16, 8), repeats=2) > 0


def _bf16_run(name, folder, **overrides):
    settings, options = TINY_BF16_RUNS[name]
    settings = {"epochs": 1, "steps_per_epoch": 2, **settings, **overrides}
    return training.train(name, out_dir=folder, export_formats=("tflite",), verbose=0,
                          model_options=options, precision="bf16", **settings)


def _network_outputs(model):
    """(layer, compute dtype) of every output layer of every network in `model`."""
    from keras.src.models.functional import Functional

    return [(tensor._keras_history.operation.name,
             tensor._keras_history.operation.compute_dtype)
            for network in model._flatten_layers(recursive=True)
            if isinstance(network, Functional) for tensor in network.outputs]


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=[] if name in DEFAULT_SUITE else [pytest.mark.slow])
    for name in sorted(TINY_BF16_RUNS)])
def test_every_family_trains_in_bf16_and_exports_float32(name, tmp_path):
    result = _bf16_run(name, tmp_path / "run")
    model = result.model
    # 1. The networks compute in bfloat16; their outputs, the weights and the optimizer
    #    moments stay float32.
    computed = {layer.compute_dtype for layer in model._flatten_layers(recursive=True)}
    assert "bfloat16" in computed and precision.precision_of(model) == "bf16"
    assert {dtype for _, dtype in _network_outputs(model)} == {"float32"}
    assert {weight.dtype for weight in model.weights} <= {"float32", "int32", "int64", "uint32"}
    # 2. The steps are finite and recorded as bf16.
    assert result.history and all(np.isfinite(values).all()
                                  for values in result.history.values()), result.history
    assert json.loads((tmp_path / "run/run_config.json").read_text())["precision"] == "bf16"
    assert "precision:    bf16" in result.summary()
    # 3. The export is the float32 copy: same weights, float32 everywhere, and LiteRT matches it
    #    as it matches a float32-trained model (1 level; tiny networks).
    copy = precision.float32_copy(model)
    assert precision.precision_of(copy) == "float32" and copy is not model
    for a, b in zip(model.weights, copy.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    # 5. `.keras` keeps the policy of every layer, sublayers included: the reloaded model
    #    still trains in bf16.
    reloaded = keras.models.load_model(result.keras_path)
    assert precision.precision_of(reloaded) == "bf16"
    assert layer_policies(model) <= layer_policies(reloaded)
    if not training.get_preset(name).task.exports:
        return  # classifiers: used in-process only
    report = result.tflite_report
    assert report["max_abs_diff"] <= 1 and not report["has_nan"], report
    # 6. bf16 inference computes the same function as the float32 copy, to bf16's precision.
    spec, copy_spec = model.serving_spec(), copy.serving_spec()
    function, specs = spec.endpoints[spec.default]
    inputs = next(iter(copy.representative_inputs(num_batches=1, seed=10_000)))
    feed = {s.name: np.asarray(value, s.dtype.as_numpy_dtype) for s, value in zip(specs, inputs)}
    reduced = function(**feed)
    full = copy_spec.endpoints[copy_spec.default][0](**feed)
    for key, value in full.items():
        value, other = np.asarray(value, np.float64), np.asarray(reduced[key], np.float64)
        scale = max(1.0, float(np.abs(value).max()))
        assert np.abs(value - other).mean() <= 0.05 * scale, (key, np.abs(value - other).mean())


def test_a_run_keeps_its_precision_and_refuses_another(tmp_path, capsys):
    run = tmp_path / "run"
    _bf16_run("dncnn_blind", run, steps_per_epoch=1)
    # `auto` resumes in the run's own precision, on any machine.
    settings, options = TINY_BF16_RUNS["dncnn_blind"]
    resumed = training.train("dncnn_blind", out_dir=run, epochs=2, steps_per_epoch=1,
                             export_formats=(), verbose=0, model_options=options,
                             dataset=settings["dataset"], batch_size=settings["batch_size"])
    assert resumed.initial_epoch == 1 and precision.precision_of(resumed.model) == "bf16"
    before = sorted(path.name for path in run.rglob("*"))
    flags = ["--dataset", "photos", "--batch-size", "4", "--steps-per-epoch", "1",
             "--depth", "3", "--num-filters", "8", "--patch-size", "16", "--out", str(run)]
    assert cli.main(["train", "dncnn_blind", "--epochs", "3", "--precision", "float32",
                     *flags]) == 2
    assert "precision: 'bf16' -> 'float32'" in capsys.readouterr().err
    assert sorted(path.name for path in run.rglob("*")) == before  # nothing written
    with pytest.raises(SystemExit) as parser_exit:
        cli.main(["train", "dncnn_blind", "--precision", "fp16", *flags])
    assert parser_exit.value.code == 2
    assert "invalid choice: 'fp16'" in capsys.readouterr().err


def test_runs_from_before_precision_resume_in_float32(tmp_path):
    run = tmp_path / "run"
    settings, options = TINY_BF16_RUNS["dcgan"]
    common = dict(out_dir=run, steps_per_epoch=1, export_formats=(), verbose=0,
                  model_options=options, **settings)
    training.train("dcgan", epochs=1, precision="float32", **common)
    config_path = run / "run_config.json"
    config = json.loads(config_path.read_text())
    del config["precision"]  # as written before the option existed
    config_path.write_text(json.dumps(config))
    resumed = training.train("dcgan", epochs=2, **common)  # auto: the run's float32
    assert resumed.initial_epoch == 1 and precision.precision_of(resumed.model) == "float32"


def test_export_functions_take_a_bf16_model_and_write_float32(tmp_path, trained_tiny_dcgan):
    gan = trained_tiny_dcgan.__class__.from_config(trained_tiny_dcgan.get_config())
    gan.set_weights(trained_tiny_dcgan.get_weights())
    precision.set_precision(gan, "bf16")
    assert precision.precision_of(gan) == "bf16"
    saved = export.export_saved_model(gan, tmp_path, "dcgan")
    reference = export.export_saved_model(trained_tiny_dcgan, tmp_path, "reference")
    seeds = np.arange(4, dtype=np.int32)
    served = tf.saved_model.load(str(saved)).signatures["generate_from_seed"]
    expected = tf.saved_model.load(str(reference)).signatures["generate_from_seed"]
    np.testing.assert_array_equal(served(seeds=seeds)["images"].numpy(),
                                  expected(seeds=seeds)["images"].numpy())
    assert precision.precision_of(gan) == "bf16"  # the model itself is left as it was


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_fused_batch_norm_computes_what_keras_batch_norm_does(compute_dtype, mirrored_strategy):
    images = np.random.default_rng(0).normal(2, 3, (8, 10, 12, 5)).astype("float32")
    weights = np.random.default_rng(1).normal(size=images.shape).astype("float32")
    policy = {"float32": "float32", "bfloat16": "mixed_bfloat16"}[compute_dtype]
    keras_layer = keras.layers.BatchNormalization(momentum=0.9, dtype=policy)
    fused = BatchNormalization(momentum=0.9, dtype=policy)
    for layer in (keras_layer, fused):
        layer.build(images.shape)
        layer.gamma.assign(np.linspace(0.5, 2, 5))
        layer.beta.assign(np.linspace(-1, 1, 5))
    tolerance = {"float32": 1e-5, "bfloat16": 0.05}[compute_dtype]
    for training_mode in (True, False):
        results = []
        for layer in (keras_layer, fused):
            inputs = tf.constant(images)
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                outputs = layer(inputs, training=training_mode)
                loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * weights)
            assert outputs.dtype == compute_dtype
            results.append((outputs, *tape.gradient(loss, [inputs, layer.gamma, layer.beta])))
        for expected, actual in zip(*results):
            np.testing.assert_allclose(np.asarray(actual, np.float64),
                                       np.asarray(expected, np.float64),
                                       atol=tolerance * max(1.0, float(np.abs(expected).max())))
        # The moving statistics are Keras' (the biased batch variance).
        np.testing.assert_allclose(fused.moving_mean, keras_layer.moving_mean, atol=1e-6)
        np.testing.assert_allclose(fused.moving_variance, keras_layer.moving_variance,
                                   rtol=0.1 * tolerance)
        np.testing.assert_allclose(fused.moving_variance,
                                   0.9 * 1.0 + 0.1 * images.var(axis=(0, 1, 2)),
                                   rtol=0.1 * tolerance)
    # Synchronized over replicas, it runs Keras' own (all-reduced) statistics.
    synced = BatchNormalization(synchronized=True)
    assert synced._fusable(images, None) and fused._fusable(images, None)
    with mirrored_strategy.scope():
        assert not synced._fusable(images, None) and fused._fusable(images, None)
