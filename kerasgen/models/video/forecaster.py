"""`ConvLSTMForecaster`: next-frame video prediction trained with `fit` (Shi et al. 2015,
https://arxiv.org/abs/1506.04214), on Moving MNIST generated from the MNIST digits.

Data in: uint8 (or float in [0, 255]) sequences `[N, T, H, W, C]` of at least
`num_input_frames + num_output_frames` frames, as `kerasgen.data.moving_mnist` yields them; the
first frames are the inputs, the next ones the targets.

Example:
    >>> model = build_convlstm(frame_size=64, seed=0)
    >>> model.compile()
    >>> digits = kerasgen.data.moving_mnist.load_digits("mnist")
    >>> model.fit(moving_mnist_batches(digits, 16, model.num_frames), steps_per_epoch=200)
    >>> future = model.forecast(first_ten_frames_uint8)      # uint8 [N, 10, 64, 64, 1]
"""

import keras
import numpy as np
import tensorflow as tf

from kerasgen.data import unit_to_uint8
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec
from kerasgen.models.base import NestedObjects, SingleOptimizer
from kerasgen.tasks import FrameForecaster


@keras.saving.register_keras_serializable(package="kerasgen")
class ConvLSTMForecaster(NestedObjects, SingleOptimizer, FrameForecaster, keras.Model):
    """Trains a frame forecaster network on per-pixel cross-entropy.

    Args:
        network: `keras.Model` from `build_convlstm_forecaster`: frames in [0, 1] -> logits of
            the next frames.

    Trackers: `loss` (binary cross-entropy summed over a frame's pixels, in nats, averaged
    over the forecast frames) and `frame_mse` (squared error summed over a frame, intensities
    in [0, 1]: the papers' per-frame MSE).
    """

    nested = ("network",)

    def __init__(self, network, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        shape = network.input_shape
        if len(shape) != 5 or shape[2] != shape[3] or None in shape[1:]:
            raise ValueError(f"The network must take frames [batch, T, size, size, channels] of "
                             f"fixed sizes; it takes {shape}.")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.mse_tracker = keras.metrics.Mean(name="frame_mse")
        self._functions = {}
        self.built = True

    @property
    def num_input_frames(self):
        return self.network.input_shape[1]

    @property
    def num_output_frames(self):
        return self.network.output_shape[1]

    @property
    def frame_size(self):
        return self.network.input_shape[2]

    @property
    def channels(self):
        return self.network.input_shape[-1]

    @property
    def metrics(self):
        return [self.loss_tracker, self.mse_tracker]

    def call(self, frames, training=False):
        """Probabilities of the next frames for input frames in [0, 1]."""
        return tf.sigmoid(self.network(frames, training=training))

    # --- training --------------------------------------------------------------------------

    def _split(self, data):
        sequences = data[0] if isinstance(data, (tuple, list)) else data
        if sequences.shape.rank != 5 or (sequences.shape[1] is not None
                                         and sequences.shape[1] < self.num_frames):
            raise ValueError(
                f"fit takes sequences [batch, T >= {self.num_frames}, {self.frame_size}, "
                f"{self.frame_size}, {self.channels}] ({self.num_input_frames} input frames, "
                f"then {self.num_output_frames} to forecast), got {sequences.shape}.")
        sequences = tf.cast(sequences, tf.float32) / 255.0
        return (sequences[:, :self.num_input_frames],
                sequences[:, self.num_input_frames:self.num_frames])

    def _step(self, data, training):
        inputs, targets = self._split(data)
        batch = ReplicaBatch(tf.shape(inputs)[0])
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            # 1. Encode the input frames, forecast the next ones from the encoder's states.
            logits = self.network(inputs, training=training)
            # 2. Per sequence: cross-entropy summed over each frame's pixels (section 4.1
            # trains Moving MNIST on cross-entropy), averaged over the frames; the mean over
            # the global batch, so that replicas' summed gradients are the batch's.
            per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(targets, logits)
            per_sequence = tf.reduce_mean(tf.reduce_sum(per_pixel, axis=[2, 3, 4]), axis=1)
            mean_loss = batch.mean(per_sequence)
        if training:
            gradients = tape.gradient(mean_loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        # 3. Per-sequence trackers (SUM-on-read gives global means).
        self.loss_tracker.update_state(per_sequence)
        squared = tf.square(tf.sigmoid(logits) - targets)
        self.mse_tracker.update_state(tf.reduce_mean(tf.reduce_sum(squared, axis=[2, 3, 4]),
                                                     axis=1))
        return step_logs(self.metrics)

    def train_step(self, data):
        return self._step(data, training=True)

    def test_step(self, data):
        return self._step(data, training=False)

    # --- the forecasting contract ----------------------------------------------------------

    def check_frames(self, frames):
        """uint8 input frames `[N, num_input_frames, size, size, channels]` (or one sequence
        without N), as a tensor; anything else is refused naming what is expected."""
        frames = tf.convert_to_tensor(frames)
        if frames.shape.rank == 4:
            frames = frames[None]
        expected = (self.num_input_frames, self.frame_size, self.frame_size, self.channels)
        if frames.dtype != tf.uint8:
            raise ValueError(f"forecast takes uint8 frames (0..255), got {frames.dtype.name}.")
        if frames.shape.rank != 5 or tuple(frames.shape[1:]) != expected:
            got = list(frames.shape)
            hint = (f"pass the last {expected[0]} frames" if frames.shape.rank == 5
                    and tuple(frames.shape[2:]) == expected[1:] else "resize or crop them")
            raise ValueError(f"This forecaster reads {expected[0]} frames of {expected[1]}x"
                             f"{expected[2]}x{expected[3]}: [N, {', '.join(map(str, expected))}]"
                             f", got {got}; {hint}.")
        return frames

    def forecast(self, frames):
        """The next `num_output_frames` frames, uint8, for uint8 input frames."""
        frames = self.check_frames(frames)
        if "forecast" not in self._functions:  # one graph: the unrolled steps run eagerly slowly
            self._functions["forecast"] = tf.function(
                lambda frames: unit_to_uint8(self(tf.cast(frames, tf.float32) / 255.0)),
                reduce_retracing=True)
        return self._functions["forecast"](frames).numpy()

    def representative_inputs(self, num_batches=8, batch_size=4, seed=0):
        """Input frames of the TFLite endpoint (int8 calibration, parity checks): sequences of
        the embedded 8x8 digits (offline, `sklearn`), scaled to the frame as MNIST's 28-pixel
        digits are to 64-pixel frames."""
        from kerasgen.data import load_arrays
        from kerasgen.data.moving_mnist import moving_mnist

        side = max(1, min(self.frame_size, round(self.frame_size * 28 / 64)))
        digits = load_arrays("digits", "train", image_size=side)[0][..., 0]
        for index in range(num_batches):
            sequences = moving_mnist(digits, batch_size, self.num_input_frames, self.frame_size,
                                     seed=(seed, index))
            yield [np.repeat(sequences, self.channels, axis=-1)]

    # --- export ----------------------------------------------------------------------------

    def serving_spec(self):
        """Signature `predict(frames uint8 [N, T_in, size, size, C])` -> `frames` (uint8, the
        next T_out); TFLite converts it too."""
        frames_spec = tf.TensorSpec([None, self.num_input_frames, self.frame_size,
                                     self.frame_size, self.channels], tf.uint8, name="frames")

        def predict(frames):
            probabilities = tf.sigmoid(self.network(tf.cast(frames, tf.float32) / 255.0))
            return {"frames": unit_to_uint8(probabilities)}

        return ServingSpec(networks=[self.network], endpoints={"predict": (predict, [frames_spec])},
                           default="predict")

    def get_config(self):
        config = super().get_config()
        config["network"] = keras.saving.serialize_keras_object(self.network)
        return config
