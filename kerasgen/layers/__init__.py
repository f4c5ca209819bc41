"""Reusable layers."""

import keras


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
