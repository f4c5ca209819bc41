"""Export: SavedModels for TF Serving and TFLite files for LiteRT, with parity checks.

A training wrapper describes what to export with `serving_spec()` (a `ServingSpec`): the inner
networks and the named endpoints. The wrapper itself (optimizers, discriminator) is never
exported. Exports compute in float32 whatever the training precision (a bf16-trained model
exports its float32 copy, `kerasgen.precision.float32_copy`), so signatures and parity do not
depend on how the model was trained.

Example:
    >>> path = export_saved_model(gan, "exports", name="dcgan")   # exports/dcgan/1/
    >>> tflite = export_tflite(gan, "dcgan_int8.tflite", quantize="int8")
    >>> report = tflite_parity(tflite, gan)                      # max abs diff, latency
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasgen.precision import float32_copy, marked_layers

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
EXPORT_FORMATS = ("saved_model", "tflite")
# Ops that would need the TF-Select (Flex) runtime or resource variables on device.
FORBIDDEN_TFLITE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE")


class NoFullInt8:
    """Marks a layer that int8 TFLite computes wrongly (measured): a model holding one does
    not offer `quantize="int8"` (`quantizations_of`)."""


class FloatInInt8:
    """Marks a layer whose ops an int8 TFLite file keeps in float32 (selective quantization):
    `int8_float_ops` names their TFLite op types, which stay float wherever they occur in the
    graph; the convolutions around them stay int8 (`int8_float_ops_of`)."""

    int8_float_ops = ()


def quantizations_of(networks, supported=QUANTIZATIONS):
    """`supported`, less "int8" where one of `networks` holds a `NoFullInt8` layer."""
    broken = bool(marked_layers(networks, NoFullInt8))
    return tuple(kind for kind in supported if not (broken and kind == "int8"))


def int8_float_ops_of(networks):
    """The TFLite op types the `FloatInInt8` layers of `networks` keep in float, sorted."""
    return tuple(sorted({op for layer in marked_layers(networks, FloatInInt8)
                         for op in layer.int8_float_ops}))


@dataclasses.dataclass
class ServingSpec:
    """What a model exports.

    Args:
        networks: list of `keras.Model`. The networks whose weights the endpoints use.
        endpoints: dict. Signature name -> `(function, [tf.TensorSpec, ...])`; each function
            returns a dict of named outputs, each spec carries the input's name.
        default: str. The endpoint that is also `serving_default` (and that TFLite converts
            unless `tflite` names another).
        quantizations: tuple. The TFLite variants this model's graph converts to and runs
            in LiteRT. Defaults to all of `QUANTIZATIONS`.
        tflite: str. The endpoint TFLite files convert (e.g. a diffusion model's one-step
            `denoise`, whose loop the app runs). Defaults to `default`.
        int8_float_ops: tuple. TFLite op types an int8 file keeps in float32
            (`int8_float_ops_of`). Defaults to none: every op int8.
    """

    networks: list
    endpoints: dict
    default: str
    quantizations: tuple = QUANTIZATIONS
    tflite: str = None
    int8_float_ops: tuple = ()


def check_quantization(model, quantize):
    """Refuse a TFLite variant the model's graph does not support, naming the ones it does."""
    supported = model.serving_spec().quantizations
    if quantize not in supported:
        raise ValueError(f"A {model.name!r} model does not export quantize={quantize!r} TFLite "
                         f"files; it exports {', '.join(supported)}.")


def export_saved_model(model, export_dir, name, version=1):
    """Write a SavedModel in TF Serving's layout, `<export_dir>/<name>/<version>/`.

    Args:
        model: a kerasgen training wrapper (anything with `serving_spec()`).
        export_dir: str. The model base path given to TF Serving.
        name: str. The model name (TF Serving's `--model_name`).
        version: int. The version folder. Defaults to 1. An existing version is never
            overwritten.

    Returns:
        The `Path` of the version folder.
    """
    spec = float32_copy(model).serving_spec()
    path = Path(export_dir) / name / str(int(version))
    if path.exists():
        raise FileExistsError(
            f"{path} already exists; TF Serving versions are immutable. Pass a higher version "
            "or another export directory (`export_model` picks the next free version)."
        )
    archive = keras.export.ExportArchive()
    for network in spec.networks:
        archive.track(network)
    for endpoint_name, (function, input_signature) in spec.endpoints.items():
        archive.add_endpoint(endpoint_name, function, input_signature=input_signature)
    # TF Serving serves `serving_default` when a request names no signature.
    default_function, default_signature = spec.endpoints[spec.default]
    archive.add_endpoint("serving_default", default_function, input_signature=default_signature)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a hidden name and renamed when complete: TF Serving never sees (and a
    # killed export never leaves) a version folder without its variables.
    partial = path.parent / f".partial_{path.name}"
    if partial.exists():
        shutil.rmtree(partial)
    archive.write_out(str(partial), verbose=False)
    partial.rename(path)
    return path


def signature_summary(saved_model_path):
    """`{signature: {"inputs": {name: (dtype, shape)}, "outputs": {...}}}` of a SavedModel."""
    loaded = tf.saved_model.load(str(saved_model_path))
    summary = {}
    for name, function in loaded.signatures.items():
        inputs = function.structured_input_signature[1]
        summary[name] = {
            "inputs": {key: (spec.dtype.name, spec.shape.as_list()) for key, spec in inputs.items()},
            "outputs": {key: (spec.dtype.name, spec.shape.as_list())
                        for key, spec in function.structured_outputs.items()},
        }
    return summary


def predict_rest(saved_model_path, request):
    """Answer a TF Serving REST `:predict` request body the way the server would.

    Supports the row format (`{"instances": [...]}`) and the columnar format
    (`{"inputs": ...}`), with an optional `"signature_name"`. Use it to try payloads before
    deploying; the JSON answer has TF Serving's `predictions` / `outputs` shape.

    Args:
        saved_model_path: str. A version folder written by `export_saved_model`.
        request: dict or JSON str. The request body.
    """
    if isinstance(request, (str, bytes)):
        request = json.loads(request)
    loaded = tf.saved_model.load(str(saved_model_path))
    signature_name = request.get("signature_name", "serving_default")
    if signature_name not in loaded.signatures:
        raise ValueError(
            f"Unknown signature_name {signature_name!r}; this model serves "
            f"{sorted(loaded.signatures)}."
        )
    function = loaded.signatures[signature_name]
    input_specs = function.structured_input_signature[1]
    if ("instances" in request) == ("inputs" in request):
        raise ValueError('A request body needs exactly one of "instances" or "inputs".')
    if "instances" in request:
        instances = request["instances"]
        if all(isinstance(row, dict) for row in instances):
            columns = {key: [row[key] for row in instances] for key in input_specs}
        elif len(input_specs) == 1:
            columns = {next(iter(input_specs)): instances}
        else:
            raise ValueError(f"Each instance must name the inputs {sorted(input_specs)}.")
    else:
        inputs = request["inputs"]
        columns = inputs if isinstance(inputs, dict) else {next(iter(input_specs)): inputs}
    missing = set(input_specs) - set(columns)
    if missing:
        raise ValueError(f"Missing inputs {sorted(missing)} for signature {signature_name!r}.")
    tensors = {key: tf.constant(columns[key], dtype=spec.dtype)
               for key, spec in input_specs.items()}
    outputs = {key: value.numpy().tolist() for key, value in function(**tensors).items()}
    if "inputs" in request:
        return {"outputs": outputs[next(iter(outputs))] if len(outputs) == 1 else outputs}
    if len(outputs) == 1:
        return {"predictions": outputs[next(iter(outputs))]}
    count = len(next(iter(outputs.values())))
    return {"predictions": [{key: value[i] for key, value in outputs.items()}
                            for i in range(count)]}


def convert_tflite(saved_model_path, signature, quantize="none", representative_data=None,
                   float_ops=()):
    """Convert one signature of a SavedModel into TFLite flatbuffer bytes, builtin ops only.

    Args:
        saved_model_path: str. A SavedModel folder.
        signature: str. The signature to convert.
        quantize: str. `"none"` (float32), `"float16"` (float16 weights), `"dynamic"` (int8
            weights, float activations) or `"int8"` (int8 weights and activations, calibrated
            on `representative_data`). Defaults to `"none"`.
        representative_data: callable returning an iterable of input lists. Needed for int8.
        float_ops: tuple. For int8: TFLite op types kept in float32 (selective quantization,
            `tf.lite.experimental.QuantizationDebugger`'s deny list); the rest is int8.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantize {quantize!r}; valid values: {list(QUANTIZATIONS)}.")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_path), signature_keys=[signature])
    # Builtin ops only: a file that needs the TF-Select (Flex) delegate will not run in LiteRT.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative_data is None:
            raise ValueError("quantize='int8' needs representative_data to calibrate activations.")
        converter.representative_dataset = representative_data
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if float_ops:
            # The float ops are builtins too; everything else still calibrates to int8.
            converter.target_spec.supported_ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)

            def as_lists():  # the debugger feeds inputs by position
                for inputs in representative_data():
                    yield list(inputs.values()) if isinstance(inputs, dict) else list(inputs)

            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=as_lists,
                debug_options=tf.lite.experimental.QuantizationDebugOptions(
                    denylisted_ops=list(float_ops)))
            return debugger.get_nondebug_quantized_model()
    return converter.convert()


def _endpoint(spec, signature):
    """The name and `(function, input_signature)` of an endpoint; None: the one TFLite
    converts (`spec.tflite`, else the default)."""
    signature = signature or spec.tflite or spec.default
    if signature not in spec.endpoints:
        raise ValueError(f"Unknown signature {signature!r}; this model exports "
                         f"{sorted(spec.endpoints)}.")
    return signature, spec.endpoints[signature]


def export_tflite(model, path, quantize="none", saved_model_path=None, signature=None):
    """Convert one endpoint of a model into a `.tflite` file and check its ops.

    Args:
        model: a kerasgen training wrapper (with `serving_spec()` and, for int8,
            `representative_inputs()`).
        path: str. The `.tflite` file to write.
        quantize: str. See `convert_tflite`. Defaults to `"none"`.
        saved_model_path: str. Convert this SavedModel instead of exporting a temporary one.
        signature: str. The endpoint to convert (e.g. CycleGAN's `"b2a"`). Defaults to the
            model's TFLite endpoint (`ServingSpec.tflite`, else its default).
    """
    path = Path(path)
    check_quantization(model, quantize)
    model = float32_copy(model)
    spec = model.serving_spec()
    signature, (_, input_signature) = _endpoint(spec, signature)
    names = [tensor_spec.name for tensor_spec in input_signature]

    def calibration_inputs():
        # Keyed by input name: the converter may order a signature's inputs otherwise.
        for inputs in model.representative_inputs():
            yield dict(zip(names, inputs))

    representative = calibration_inputs if quantize == "int8" else None
    with tempfile.TemporaryDirectory() as scratch:
        if saved_model_path is None:
            saved_model_path = export_saved_model(model, scratch, "model")
        flatbuffer = convert_tflite(saved_model_path, signature, quantize, representative,
                                    float_ops=spec.int8_float_ops)
    check_tflite_ops(flatbuffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".partial_{path.name}")
    partial.write_bytes(flatbuffer)
    partial.replace(path)  # complete files only, even if killed mid-write
    return path


def interpreter(model_content_or_path, num_threads=None):
    """A LiteRT interpreter for a `.tflite` path or flatbuffer bytes.

    Dynamic-range (`quantize="dynamic"`) files run without LiteRT's default XNNPACK delegate:
    with it, every call after the first returned wrong images here (up to 255 levels off, on
    the DCGAN generator; ai-edge-litert with XNNPACK, 1 or 2 threads), and without it every
    call matched Keras. Apps running such a file should do the same
    (`experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES`).

    Args:
        num_threads: int. CPU threads. Defaults to the cores this process may use (LiteRT's
            own default is one; two threads ran DnCNN 1.95x faster here).
    """
    from ai_edge_litert.interpreter import Interpreter

    if num_threads is None:
        num_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else os.cpu_count() or 1
    plain = _plain_interpreter(model_content_or_path, num_threads)
    if is_dynamic_range(plain):
        return plain
    return Interpreter(**_model_source(model_content_or_path), num_threads=num_threads)


def _model_source(model_content_or_path):
    if isinstance(model_content_or_path, (bytes, bytearray)):
        return {"model_content": bytes(model_content_or_path)}
    return {"model_path": str(model_content_or_path)}


def _plain_interpreter(model_content_or_path, num_threads=1):
    """An interpreter without LiteRT's default delegates (also enough to inspect a model)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(**_model_source(model_content_or_path), num_threads=num_threads,
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def _op_names(runner):
    return {op["op_name"] for op in runner._get_ops_details()}


def is_dynamic_range(runner):
    """Whether an interpreter's model is dynamic-range quantized: int8 weights, float
    activations (no QUANTIZE op, which full-int8 models have)."""
    int8 = any(tensor["dtype"] == np.int8 for tensor in runner.get_tensor_details())
    return int8 and "QUANTIZE" not in _op_names(runner)


def tflite_ops(model_content_or_path):
    """Names of the ops in a TFLite model."""
    return sorted(_op_names(_plain_interpreter(model_content_or_path)))


def check_tflite_ops(model_content_or_path):
    """Raise if the model needs TF-Select (Flex) ops or resource variables."""
    bad = [name for name in tflite_ops(model_content_or_path)
           if name.startswith("Flex") or name in FORBIDDEN_TFLITE_OPS]
    if bad:
        raise ValueError(f"The TFLite model uses ops that LiteRT builtins lack: {bad}.")


def tflite_parity(tflite_path, model, inputs=None, repeats=5, signature=None):
    """Run a `.tflite` file with LiteRT and compare it with the Keras model's endpoint.

    Args:
        tflite_path: str. The file written by `export_tflite`.
        model: the kerasgen training wrapper it was exported from.
        inputs: list of numpy arrays for the endpoint. Defaults to the first batch of
            `model.representative_inputs(seed=10_000)` (data the int8 calibration never saw).
        repeats: int. Timed runs; the median is reported. Defaults to 5.
        signature: str. The endpoint the file was converted from. Defaults to the model's
            TFLite endpoint.

    Returns:
        dict with `max_abs_diff`, `mean_abs_diff` (output units: uint8 levels for images),
        `latency_ms` (per call), `size_bytes`, `has_nan` and `ops`.
    """
    model = float32_copy(model)  # what was exported
    signature, (function, input_signature) = _endpoint(model.serving_spec(), signature)
    if inputs is None:
        inputs = next(iter(model.representative_inputs(num_batches=1, seed=10_000)))
    feed = {tensor_spec.name: np.asarray(value, tensor_spec.dtype.as_numpy_dtype)
            for tensor_spec, value in zip(input_signature, inputs)}
    expected = {key: np.asarray(value) for key, value in function(**feed).items()}
    runner = interpreter(tflite_path)
    signature_runner = runner.get_signature_runner(signature)
    # One warm-up call, then the timed ones.
    actual = signature_runner(**feed)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        actual = signature_runner(**feed)
        timings.append(time.perf_counter() - start)
    differences = [np.abs(actual[key].astype(np.float64) - expected[key].astype(np.float64))
                   for key in expected]
    return {
        "max_abs_diff": float(max(diff.max() for diff in differences)),
        "mean_abs_diff": float(np.mean([diff.mean() for diff in differences])),
        "latency_ms": 1000.0 * float(np.median(timings)),
        "size_bytes": Path(tflite_path).stat().st_size,
        "has_nan": bool(any(np.isnan(actual[key].astype(np.float64)).any() for key in actual)),
        "ops": tflite_ops(tflite_path),
    }


def check_export(formats, quantize):
    """Refuse unknown export formats or quantizations (before anything is trained)."""
    unknown = set(formats or ()) - set(EXPORT_FORMATS)
    if unknown:
        raise ValueError(f"Unknown export format(s) {sorted(unknown)}; valid: {list(EXPORT_FORMATS)}.")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"Unknown quantize {quantize!r}; valid: {list(QUANTIZATIONS)}.")


def next_version(export_dir, name):
    """The version after the highest existing `<export_dir>/<name>/<N>/` (1 for none)."""
    versions = [int(path.name) for path in (Path(export_dir) / name).glob("*")
                if path.name.isdigit()]
    return max(versions, default=0) + 1


def export_model(model, run_dir, name, formats=EXPORT_FORMATS, quantize="none"):
    """Export a model into its run folder; returns `(saved_model, tflite, tflite_report)`.

    The SavedModel goes to a new version folder, `saved_model/<name>/<N+1>/`, so earlier
    versions (which TF Serving may be serving) are kept.
    """
    check_export(formats, quantize)
    run_dir = Path(run_dir)
    model = float32_copy(model)  # once, for all three steps
    saved_model = tflite = report = None
    if "saved_model" in formats:
        base = run_dir / "saved_model"
        saved_model = export_saved_model(model, base, name, version=next_version(base, name))
    if "tflite" in formats:
        suffix = "" if quantize == "none" else f"_{quantize}"
        tflite = export_tflite(model, run_dir / f"{name}{suffix}.tflite", quantize,
                               saved_model_path=saved_model)
        report = tflite_parity(tflite, model)
    return saved_model, tflite, report
