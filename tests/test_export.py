import json

import numpy as np
import pytest
import tensorflow as tf

from kerasgen import export
from kerasgen.data import to_uint8


@pytest.fixture(scope="module")
def saved_model(trained_tiny_dcgan, tmp_path_factory):
    return export.export_saved_model(trained_tiny_dcgan, tmp_path_factory.mktemp("serving"), "dcgan")


def test_saved_model_layout_and_signatures(saved_model, trained_tiny_dcgan):
    assert saved_model.name == "1" and saved_model.parent.name == "dcgan"
    assert (saved_model / "saved_model.pb").exists() and (saved_model / "variables").is_dir()
    summary = export.signature_summary(saved_model)
    assert set(summary) == {"serving_default", "generate", "generate_from_seed"}
    assert summary["generate"]["inputs"] == {"latent": ("float32", [None, 8])}
    assert summary["generate"]["outputs"] == {"images": ("uint8", [None, 16, 16, 1])}
    assert summary["generate_from_seed"]["inputs"] == {"seeds": ("int32", [None])}
    assert summary["serving_default"] == summary["generate"]
    # The export holds the generator only, not the training wrapper's discriminator.
    loaded = tf.saved_model.load(str(saved_model))
    num_weights = sum(int(np.prod(v.shape)) for v in loaded.variables)
    assert num_weights == sum(int(np.prod(v.shape)) for v in trained_tiny_dcgan.generator.weights)


def test_rest_instances_payloads_match_keras(saved_model, trained_tiny_dcgan):
    gan = trained_tiny_dcgan
    latents = gan.sample_inputs(3, seed=0).numpy()
    expected = to_uint8(gan.generate(latents)).numpy()
    # Row format with named inputs, as a client would POST it to /v1/models/dcgan:predict.
    body = json.dumps({"signature_name": "generate",
                       "instances": [{"latent": row.tolist()} for row in latents]})
    answer = export.predict_rest(saved_model, body)
    np.testing.assert_array_equal(np.array(answer["predictions"], np.uint8), expected)
    # No signature name: serving_default; bare rows for the single input.
    default = export.predict_rest(saved_model, {"instances": latents.tolist()})
    assert default == answer
    # Seeds give the same images as the matching latents, whatever the batch around them.
    by_seed = export.predict_rest(saved_model, {"signature_name": "generate_from_seed",
                                                "instances": [2, 0, 1]})
    np.testing.assert_array_equal(np.array(by_seed["predictions"], np.uint8), expected[[2, 0, 1]])
    columnar = export.predict_rest(saved_model, {"signature_name": "generate_from_seed",
                                                 "inputs": {"seeds": [1]}})
    np.testing.assert_array_equal(np.array(columnar["outputs"], np.uint8), expected[[1]])


def test_rest_payload_errors(saved_model):
    with pytest.raises(ValueError, match="serves .*generate_from_seed"):
        export.predict_rest(saved_model, {"signature_name": "nope", "instances": [[0.0] * 8]})
    with pytest.raises(ValueError, match="exactly one of"):
        export.predict_rest(saved_model, {})
    with pytest.raises(tf.errors.InvalidArgumentError):  # wrong latent size
        export.predict_rest(saved_model, {"instances": [[0.0] * 5]})


def test_existing_version_is_never_overwritten(saved_model, trained_tiny_dcgan):
    with pytest.raises(FileExistsError, match="higher version"):
        export.export_saved_model(trained_tiny_dcgan, saved_model.parents[1], "dcgan", version=1)


# Bounds in uint8 levels against the Keras generator, on latents the int8 calibration never saw.
PARITY_BOUNDS = {"none": (1, 0.01), "float16": (2, 0.05), "dynamic": (4, 0.5), "int8": (16, 2.0)}


@pytest.mark.parametrize("quantize", export.QUANTIZATIONS)
def test_tflite_variants_run_in_litert_close_to_keras(quantize, trained_tiny_dcgan, saved_model,
                                                     tmp_path):
    path = export.export_tflite(trained_tiny_dcgan, tmp_path / f"g_{quantize}.tflite", quantize,
                                saved_model_path=saved_model)
    report = export.tflite_parity(path, trained_tiny_dcgan)
    # Parity means something only if the images vary.
    reference = to_uint8(trained_tiny_dcgan.generate(trained_tiny_dcgan.sample_inputs(8, 10_000)))
    assert float(tf.math.reduce_std(tf.cast(reference, tf.float32))) > 5
    max_bound, mean_bound = PARITY_BOUNDS[quantize]
    assert report["max_abs_diff"] <= max_bound and report["mean_abs_diff"] <= mean_bound, report
    assert not report["has_nan"]
    assert not any(op.startswith("Flex") or op in export.FORBIDDEN_TFLITE_OPS for op in report["ops"])
    if quantize == "int8":
        assert "QUANTIZE" in report["ops"]
    interpreter = export.interpreter(path)
    runner = interpreter.get_signature_runner("generate")
    images = runner(latent=np.zeros((2, 8), np.float32))["images"]
    assert images.dtype == np.uint8 and images.shape == (2, 16, 16, 1)


def test_quantize_errors(trained_tiny_dcgan, saved_model):
    with pytest.raises(ValueError, match="valid values"):
        export.convert_tflite(saved_model, "generate", quantize="int4")
    with pytest.raises(ValueError, match="representative_data"):
        export.convert_tflite(saved_model, "generate", quantize="int8")


def test_dynamic_range_file_gives_the_same_images_on_every_call(trained_tiny_dcgan, saved_model,
                                                                 tmp_path):
    """XNNPACK returned wrong images (up to 255 levels off) from the second call on for this
    dynamic-range file; `export.interpreter` runs such files without it."""
    gan = trained_tiny_dcgan
    path = export.export_tflite(gan, tmp_path / "g_dynamic.tflite", "dynamic",
                                saved_model_path=saved_model)
    runner = export.interpreter(path)
    assert export.is_dynamic_range(runner)
    latents = gan.sample_inputs(8, seed=10_000).numpy()
    expected = to_uint8(gan.generate(latents)).numpy().astype(int)
    generate = runner.get_signature_runner("generate")
    for _ in range(6):
        images = generate(latent=latents)["images"].astype(int)
        assert np.abs(images - expected).max() <= PARITY_BOUNDS["dynamic"][0]
    int8 = export.export_tflite(gan, tmp_path / "g_int8.tflite", "int8",
                                saved_model_path=saved_model)
    assert not export.is_dynamic_range(export.interpreter(int8))
