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

bf16 only pays where the hardware computes it natively: CPUs with AVX512-BF16 or AMX-BF16
(about 2x float32 for convolutions), NVIDIA GPUs from compute capability 8.0. On AVX2-only
CPUs TensorFlow emulates it and it is slower than float32; `auto` (the default) picks bf16
only on native hardware.
"""

from pathlib import Path

PRECISIONS = ("auto", "float32", "bf16")
POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16"}
# /proc/cpuinfo flags of CPUs with native bfloat16 arithmetic.
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


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


def resolve(precision="auto", cpuinfo="/proc/cpuinfo"):
    """`"float32"` or `"bf16"`: `auto` is bf16 where the device computes it natively."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; valid: {', '.join(PRECISIONS)} "
                         "(auto: bf16 where the CPU or GPU computes it natively, else float32).")
    if precision == "auto":
        return "bf16" if native_bf16_devices(cpuinfo) else "float32"
    return precision


def _network_layers(model):
    """Every layer below `model` (itself excluded), recursively, each once."""
    return model._flatten_layers(include_self=False, recursive=True)


def _float32_layers(model):
    """The ids of the layers that stay float32 in a reduced-precision model: every network's
    output layers and the `FullPrecision` layers, each with its sublayers."""
    from keras.src.models.functional import Functional  # the class of builder-made networks

    kept = []
    for layer in [model, *_network_layers(model)]:
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
    for layer in _network_layers(model):
        if isinstance(layer, (keras.Model, keras.layers.InputLayer)):
            continue  # a network's own call only passes its inputs on
        layer.dtype_policy = "float32" if id(layer) in keep else POLICIES[precision]
    return model


def precision_of(model):
    """`"bf16"` if any layer of `model` computes in bfloat16, else `"float32"`."""
    return "bf16" if any(layer.compute_dtype == "bfloat16"
                         for layer in _network_layers(model)) else "float32"


def float32_copy(model):
    """`model` itself if it computes in float32; else a float32 copy with its weights (what
    exports, so that a bf16-trained model serves with float32 signatures and parity)."""
    if precision_of(model) == "float32":
        return model
    from kerasgen.tasks import copy_with_weights

    copy = copy_with_weights(model)
    set_precision(copy, "float32")  # the policy only changes how layers compute
    return copy
