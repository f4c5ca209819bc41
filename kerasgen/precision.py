"""Training precision: float32, or bfloat16 compute with float32 weights (Keras'
`mixed_bfloat16` policy), chosen per machine by `auto`.

`set_precision(model, "bf16")` switches the layers inside a wrapper's networks to compute in
bfloat16. What decides the numbers stays float32: every network's output layers (so losses,
metrics and the GAN/VAE/diffusion math in the wrappers see float32), the weights and optimizer
moments (the policy's variable dtype), batch-norm statistics (Keras computes them in float32)
and layers marked `FullPrecision` (degradations, time embeddings). The policy is part of each
layer's config, so `.keras` checkpoints keep it and a resumed run trains as it started.

Exports are always float32 (`float32_copy`): the same signatures and the same parity as a
float32-trained model.

bf16 can only pay where the hardware computes it natively: CPUs with AVX512-BF16 or AMX-BF16,
NVIDIA GPUs from compute capability 8.0. On AVX2-only CPUs TensorFlow emulates it and it is
slower than float32. The CPU flag is not enough either: one AVX512-BF16 machine ran bf16
convolutions at about 2x float32, another (also AVX512-BF16, with AVX-512 float32 at 280
GFLOP/s) ran every family slower in bf16 (measured; README, Precision). So `auto` (the
default) is float32 without native hardware, bf16 on such GPUs, and on a CPU with the flag it
times one training-shaped convolution step in both precisions and picks bf16 only when it is
at least `BF16_MIN_SPEEDUP` faster. The verdict is cached per CPU and TensorFlow version
(`$KERASGEN_CACHE_DIR`), so the probe runs once per machine.
"""

import json
import os
import statistics
import time
from pathlib import Path

PRECISIONS = ("auto", "float32", "bf16")
POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16"}
# /proc/cpuinfo flags of CPUs with native bfloat16 arithmetic.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# `auto` picks bf16 on a CPU only when the probe's bf16 step is at least this much faster:
# bf16 costs a little accuracy, so a tie goes to float32.
BF16_MIN_SPEEDUP = 1.15
# The probe: a 3x3 convolution of 64 channels on 16 maps of 64x64, as DnCNN and the U-Nets run.
PROBE_SHAPE = (16, 64, 64, 64)


class FullPrecision:
    """Marks a layer that computes in float32 whatever the training precision (random
    degradations, sinusoidal embeddings: values whose precision bf16's 8-bit mantissa
    would lose)."""


def cpu_flags(cpuinfo="/proc/cpuinfo"):
    """The CPU's feature flags (an empty set where /proc/cpuinfo is unreadable)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16_devices(cpuinfo="/proc/cpuinfo"):
    """Names of this machine's devices that compute bfloat16 natively (empty: none)."""
    import tensorflow as tf

    devices = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if capability and tuple(capability) >= (8, 0):
            devices.append(gpu.name)
    if not tf.config.list_physical_devices("GPU"):
        native = sorted(cpu_flags(cpuinfo) & set(NATIVE_BF16_CPU_FLAGS))
        if native:
            devices.append(f"CPU ({', '.join(native)})")
    return devices


def conv_step_seconds(dtype, shape=PROBE_SHAPE, repeats=5):
    """Median seconds of one training-shaped step of a 3x3 'same' convolution in `dtype`: the
    forward convolution and its gradients for the input and the kernel."""
    import tensorflow as tf

    images = tf.random.normal(shape, dtype=dtype)
    kernel = tf.Variable(tf.random.normal((3, 3, shape[-1], shape[-1]), dtype=dtype) * 0.05)

    @tf.function
    def step(images):
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.nn.conv2d(images, kernel, 1, "SAME"))
        return tape.gradient(loss, [images, kernel])

    step(images)[0].numpy()  # trace and warm up
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(images)[0].numpy()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def measured_bf16_speedup():
    """float32 seconds over bfloat16 seconds of the probe step on this machine's CPU (above 1:
    bf16 is faster)."""
    return conv_step_seconds("float32") / conv_step_seconds("bfloat16")


def _probe_cache_path(cpuinfo):
    """Where the probe's verdict for this CPU (model name and flags) and TensorFlow is kept."""
    import hashlib

    import tensorflow as tf

    from kerasgen.model_index import cache_dir

    try:  # every processor repeats its lines: the set keeps one of each
        lines = {line for line in Path(cpuinfo).read_text().splitlines()
                 if line.startswith(("model name", "flags", "Features"))}
    except OSError:
        lines = set()
    key = "\0".join([*sorted(lines), tf.__version__])
    return cache_dir() / f"bf16-probe-{hashlib.sha256(key.encode()).hexdigest()[:20]}.json"


def cpu_bf16_speedup(cpuinfo="/proc/cpuinfo", measure=measured_bf16_speedup):
    """This CPU's bf16 speed-up on the probe step: cached, else measured by `measure()` and
    cached (best effort: an unwritable cache only costs the probe next time)."""
    path = _probe_cache_path(cpuinfo)
    try:
        return float(json.loads(path.read_text())["speedup"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    speedup = float(measure())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps({"speedup": speedup, "probe": list(PROBE_SHAPE)}))
        os.replace(partial, path)
    except OSError:
        pass
    return speedup


def resolve(precision="auto", cpuinfo="/proc/cpuinfo", measure=measured_bf16_speedup):
    """`"float32"` or `"bf16"`. `auto`: bf16 on a GPU that computes it natively; on a CPU with
    native bf16, bf16 only if the probe measured it `BF16_MIN_SPEEDUP` faster than float32
    (`cpu_bf16_speedup`; `measure` is the probe); else float32."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; valid: {', '.join(PRECISIONS)} "
                         "(auto: bf16 where the CPU or GPU computes it natively and faster, "
                         "else float32).")
    if precision != "auto":
        return precision
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):  # the networks run there
        return "bf16" if native_bf16_devices(cpuinfo) else "float32"
    if not cpu_flags(cpuinfo) & set(NATIVE_BF16_CPU_FLAGS):
        return "float32"  # emulated: always slower (measured)
    return "bf16" if cpu_bf16_speedup(cpuinfo, measure) >= BF16_MIN_SPEEDUP else "float32"


def network_layers(model):
    """Every layer below `model` (itself excluded), recursively, each once."""
    return model._flatten_layers(include_self=False, recursive=True)


def marked_layers(networks, marker):
    """The layers below `networks` that are instances of `marker` (a marker class such as
    `FullPrecision`), in order."""
    return [layer for network in networks for layer in network_layers(network)
            if isinstance(layer, marker)]


def _float32_layers(model):
    """The ids of the layers that stay float32 in a reduced-precision model: every network's
    output layers and the `FullPrecision` layers, each with its sublayers."""
    from keras.src.models.functional import Functional  # the class of builder-made networks

    kept = []
    for layer in [model, *network_layers(model)]:
        if isinstance(layer, FullPrecision):
            kept.append(layer)
        if isinstance(layer, Functional):
            kept.extend(tensor._keras_history.operation for tensor in layer.outputs)
    return {id(sublayer) for layer in kept
            for sublayer in layer._flatten_layers(include_self=True, recursive=True)}


def set_precision(model, precision):
    """Make `model`'s networks compute in `precision` (`"float32"` or `"bf16"`), in place.

    Weights stay float32 either way. Call it before `compile` (the optimizer then sees the
    same variables) or on a trained model. Returns `model`.
    """
    import keras

    if precision not in POLICIES:
        raise ValueError(f"Unknown precision {precision!r}; valid: {', '.join(POLICIES)}.")
    keep = _float32_layers(model) if precision != "float32" else set()
    for layer in network_layers(model):
        if isinstance(layer, (keras.Model, keras.layers.InputLayer)):
            continue  # a network's own call only passes its inputs on
        layer.dtype_policy = "float32" if id(layer) in keep else POLICIES[precision]
    return model


def precision_of(model):
    """`"bf16"` if any layer of `model` computes in bfloat16, else `"float32"`."""
    return "bf16" if any(layer.compute_dtype == "bfloat16"
                         for layer in network_layers(model)) else "float32"


def float32_copy(model):
    """`model` itself if it computes in float32; else a float32 copy with its weights (what
    exports, so that a bf16-trained model serves with float32 signatures and parity)."""
    if precision_of(model) == "float32":
        return model
    from kerasgen.tasks import copy_with_weights

    copy = copy_with_weights(model)
    set_precision(copy, "float32")  # the policy only changes how layers compute
    return copy
