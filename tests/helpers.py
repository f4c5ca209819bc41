"""Checks every family's test module shares: fit moves weights, `.keras` round trip with the
next step equal, SavedModel / TFLite parity, MirroredStrategy step equality."""

import keras
import numpy as np
import tensorflow as tf

from kerasgen import export


def assert_fit_moves_weights(model, data, steps=3, epochs=1):
    """`fit` trains every trainable weight and logs finite losses; returns the history."""
    before = [weight.numpy().copy() for weight in model.trainable_weights]
    history = model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0).history
    for name, values in history.items():
        assert np.all(np.isfinite(values)), (name, values)
    moved = [not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights)]
    assert all(moved), [w.path for w, m in zip(model.trainable_weights, moved) if not m]
    return history


def assert_round_trip(model, path, batch):
    """`.keras` keeps weights, every optimizer's state and the random stream: the reloaded
    model's next step equals the original's. Returns the reloaded model."""
    model.save(path)
    loaded = keras.models.load_model(path)
    optimizer_variables = [v for o in _optimizers(model) for v in o.variables]
    loaded_variables = [v for o in _optimizers(loaded) for v in o.variables]
    assert len(optimizer_variables) == len(loaded_variables) > 0
    for a, b in zip(optimizer_variables, loaded_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for which in (model, loaded):
        which.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)
    return loaded


def _optimizers(model):
    from kerasgen.models.base import optimizers_of

    return optimizers_of(model)


def assert_export_parity(model, folder, inputs, tolerance=1):
    """SavedModel output equals Keras's (uint8), and the float32 TFLite file is within
    `tolerance` levels of it, with builtin ops only. Returns the TFLite report."""
    path = export.export_saved_model(model, folder, model.name)
    spec = model.serving_spec()
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


def assert_mirrored_step_equal(build, batch, strategy, tolerance=1e-5):
    """One `fit` step under `strategy` equals the same step on one device."""
    def one_step(scope):
        with scope.scope():
            model = build()
        model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
        return [w.numpy() for w in model.weights] + [
            v.numpy() for o in _optimizers(model) for v in o.variables]

    single, mirrored = one_step(tf.distribute.get_strategy()), one_step(strategy)
    assert max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)) < tolerance
