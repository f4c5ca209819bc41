"""A domain classifier for MNIST-like data: the feature extractor and class-probability model
behind kerasgen's domain Frechet distance, KID and classifier score.

Example:
    >>> classifier = build_classifier((28, 28, 1), num_classes=10)
    >>> compile_classifier(classifier)
    >>> classifier.fit(kerasgen.data.load_dataset("mnist"), epochs=5)
"""

import keras
from keras import layers

from kerasgen.layers import BatchNormalization
from kerasgen.models.preset import ModelPreset
from kerasgen.tasks import CLASSIFICATION

FEATURES_LAYER = "features"


def build_classifier(image_shape, num_classes, base_filters=32, feature_dim=128, dropout=0.4,
                     seed=None, name="classifier"):
    """Small VGG-style CNN: images in [-1, 1] -> class logits, with a named feature layer.

    Args:
        image_shape: (int, int, int). Input (height, width, channels).
        num_classes: int. Number of classes.
        base_filters: int. Filters of the first block; the second doubles them. Defaults to 32.
        feature_dim: int. Size of the penultimate layer `"features"`. Defaults to 128.
        dropout: float. Dropout before the logits. Defaults to 0.4.
        seed: int. Seed of initialisers and dropout. Defaults to None.
        name: str. Defaults to `"classifier"`.
    """
    images = keras.Input(tuple(image_shape), name="images")
    x = images
    for block, filters in enumerate((base_filters, 2 * base_filters)):
        for conv in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False,
                              kernel_initializer=keras.initializers.HeNormal(seed),
                              name=f"block{block}_conv{conv}")(x)
            x = BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(feature_dim, activation="relu", name=FEATURES_LAYER,
                     kernel_initializer=keras.initializers.HeNormal(seed))(x)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    logits = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    return keras.Model(images, logits, name=name)


def compile_classifier(model, learning_rate=1e-3):
    """Adam and sparse cross-entropy on logits, with accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


PRESETS = {
    "classifier": ModelPreset(
        name="classifier",
        description="Domain classifier (features for FD/KID, classifier score); train on mnist",
        task=CLASSIFICATION,
        build=build_classifier,
        dataset="mnist",
        epochs=8,
        batch_size=128,
        compile=compile_classifier,
    ),
}
