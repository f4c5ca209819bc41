"""Checks every family's test module shares: fit moves weights, `.keras` round trip with the
next step equal, SavedModel / TFLite parity, MirroredStrategy step equality."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerasgen import export, precision
from kerasgen.models.base import SeededModel, optimizers_of


def assert_fit_moves_weights(model, data, steps=3, epochs=1, **fit_kwargs):
    """`fit` trains every trainable weight and logs finite losses; returns the history."""
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    history = model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0,
                        **fit_kwargs).history
    for name, values in history.items():
        assert np.all(np.isfinite(values)), (name, values)
    moved = [not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]
    return history


def assert_round_trip(model, path, train_more, atol=1e-6):
    """`.keras` keeps the weights, every optimizer's state and the random stream: after
    `train_more(model)` and `train_more(reloaded)` all weights agree. Returns the reloaded
    model (before its extra training, its optimizers' iterations are the original's)."""
    model.save(path)
    loaded = keras.models.load_model(path)
    originals, restored = optimizers_of(model), optimizers_of(loaded)
    assert len(originals) == len(restored) > 0
    for original, copy in zip(originals, restored):
        assert len(copy.variables) == len(original.variables) > 2
        for a, b in zip(original.variables, copy.variables):  # iterations, moments
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    if isinstance(model, SeededModel):
        np.testing.assert_array_equal(model.seed_generator.state.numpy(),
                                      loaded.seed_generator.state.numpy())
    iterations = [int(o.iterations) for o in restored]
    # Training continues from the restored state exactly as the original would.
    train_more(model)
    train_more(loaded)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=atol, err_msg=a.path)
    loaded.restored_iterations = iterations
    return loaded


def layer_policies(model):
    """`{(layer path, dtype policy name)}` of every layer below `model`: a reload must bring back
    each layer's precision, sublayers included. A set of pairs, not a dict: paths repeat (an EMA
    copy's layers have its network's names), and a reload may name a copy differently
    (`ema_generator`), so compare with `<=`."""
    return {(layer.path, layer.dtype_policy.name) for layer in precision.network_layers(model)}


def assert_export_parity(model, folder, inputs, tolerance=1):
    """SavedModel output equals Keras's (uint8), and the float32 TFLite file is within
    `tolerance` levels of it, with builtin ops only. Returns the TFLite report.

    A bf16 model (`--precision auto` picks bf16 on CPUs where it measures faster) exports its
    float32 copy, so the SavedModel is compared with that copy's endpoint."""
    path = export.export_saved_model(model, folder, model.name)
    spec = precision.float32_copy(model).serving_spec()
    function, specs = spec.endpoints[spec.default]
    feed = {s.name: tf.constant(value) for s, value in zip(specs, inputs)}
    expected = function(**feed)
    served = tf.saved_model.load(str(path)).signatures[spec.default](**feed)
    for key, value in expected.items():
        np.testing.assert_array_equal(served[key].numpy(), np.asarray(value))
    tflite = export.export_tflite(model, folder / f"{model.name}.tflite", saved_model_path=path)
    report = export.tflite_parity(tflite, model, inputs=list(inputs))
    assert report["max_abs_diff"] <= tolerance and not report["has_nan"], report
    assert not any(op.startswith("Flex") for op in report["ops"]), report["ops"]
    return report


def assert_mirrored_step_equal(build, data, strategy, metrics=(), atol=1e-5, rel=1e-5,
                               abs_metric=None):
    """One epoch of `fit(data)` under `strategy` equals it on one device: weights (pools and
    batch-norm statistics included), every optimizer's variables and the `metrics` logged.

    Args:
        build: callable returning a compiled model (called inside each strategy's scope).
        data: a `tf.data.Dataset` of one global batch.

    Returns:
        `(single-device model, mirrored model)` after their step.
    """
    def run(scope):
        with scope.scope():
            model = build()
        history = model.fit(data, epochs=1, verbose=0).history
        values = [w.numpy() for w in model.weights] + [
            v.numpy() for o in optimizers_of(model) for v in o.variables]
        return values, history, model

    single, single_history, single_model = run(tf.distribute.get_strategy())
    mirrored, mirrored_history, mirrored_model = run(strategy)
    assert len(single) == len(mirrored)
    differences = [float(np.abs(a - b).max()) for a, b in zip(single, mirrored)]
    assert max(differences) < atol, differences
    for name in metrics:
        assert mirrored_history[name][0] == pytest.approx(single_history[name][0], rel=rel,
                                                          abs=abs_metric)
    return single_model, mirrored_model
