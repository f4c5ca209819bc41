"""Reusable layers."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kerasgen")
class LabelEmbedding(keras.layers.Layer):
    """A learned vector per integer label: `[batch]` -> `[batch, output_dim]`.

    Training multiplies a one-hot by the matrix, so the gradient is a plain dense tensor that
    tf.distribute all-reduces like any other weight's. Inference gathers rows, which TFLite
    runs as a builtin GATHER (int8 too; a one-hot matmul lost most of its accuracy in int8
    here) and which rejects labels outside `[0, num_classes)`.

    Args:
        num_classes: int. Number of labels.
        output_dim: int. Size of each vector.
        seed: int. Seed of the N(0, 1) initialiser. Defaults to None.
    """

    def __init__(self, num_classes, output_dim, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.output_dim = output_dim
        self.seed = seed

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            (self.num_classes, self.output_dim), keras.initializers.RandomNormal(seed=self.seed),
            name="embeddings")

    def call(self, labels, training=None):
        labels = keras.ops.cast(labels, "int32")
        if training:
            one_hot = keras.ops.one_hot(labels, self.num_classes, dtype=self.compute_dtype)
            return keras.ops.matmul(one_hot, self.embeddings)
        return keras.ops.take(self.embeddings, labels, axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "output_dim": self.output_dim, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasgen")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel rearrangement `[N, H, W, C * r^2] -> [N, H * r, W * r, C]` (depth_to_space).

    Args:
        block_size: int. The factor r.
    """

    def __init__(self, block_size, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="kerasgen")
class PixelUnshuffle(PixelShuffle):
    """The inverse of `PixelShuffle`: `[N, H, W, C] -> [N, H / r, W / r, C * r^2]`."""

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block_size)


@keras.saving.register_keras_serializable(package="kerasgen")
class NoiseLevelMap(keras.layers.Layer):
    """One noise level per image (`[N, 1]`) broadcast to a `[N, H, W, 1]` map like `features`."""

    def call(self, features, sigma):
        # ones_like keeps the static channel count, which TFLite's CONV_2D needs.
        return tf.ones_like(features[..., :1]) * sigma[:, None, None, :]
