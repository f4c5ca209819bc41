"""Feature extractors for `kerasgen.metrics`: InceptionV3 pool features and domain classifiers.

Both take images in [-1, 1] (what generators emit and `kerasgen.data` yields).
"""

import os
from pathlib import Path

import keras

from kerasgen.data.sources import _network_reachable
from kerasgen.models.classifier import FEATURES_LAYER

INCEPTION_WEIGHTS_ENV = "KERASGEN_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_SIZE = 299


def _inception_weights(weights):
    """A local weights path, "imagenet" when it can be downloaded, or a clear error."""
    if weights is None or (weights != "imagenet" and Path(weights).is_file()):
        return weights
    if weights != "imagenet":
        raise FileNotFoundError(f"InceptionV3 weights file {weights} does not exist.")
    candidates = [os.environ.get(INCEPTION_WEIGHTS_ENV),
                  Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
                  / INCEPTION_WEIGHTS_FILE]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    if not _network_reachable():
        raise FileNotFoundError(
            f"InceptionV3 ImageNet weights are not on this machine and it is offline. Copy "
            f"{INCEPTION_WEIGHTS_FILE} (from keras.applications, ~84 MB) to "
            f"~/.keras/models/ or point ${INCEPTION_WEIGHTS_ENV} at it, or use the domain "
            "classifier (--features domain).")
    return "imagenet"


def inception_extractor(weights="imagenet", channels=3):
    """InceptionV3's 2048-d average-pool features, the standard FID/KID features.

    Images in [-1, 1] are resized bilinearly to 299x299 (grey repeated to RGB); [-1, 1] is
    already InceptionV3's input range. Keras' ImageNet weights differ from the TF1 graph that
    published FIDs used, so compare figures computed here with each other, not with papers.

    Args:
        weights: `"imagenet"` (local cache, `$KERASGEN_INCEPTION_WEIGHTS`, or download), a
            path to a weights file, or None (random weights, for tests).
        channels: int. Channels of the images it will get (1 or 3). Defaults to 3.
    """
    backbone = keras.applications.InceptionV3(
        include_top=False, pooling="avg", weights=_inception_weights(weights),
        input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    if channels not in (1, 3):
        raise ValueError(f"InceptionV3 features need 1 or 3 channels, got {channels}.")
    images = keras.Input((None, None, channels), name="images")
    x = keras.layers.Resizing(INCEPTION_SIZE, INCEPTION_SIZE, interpolation="bilinear")(images)
    if channels == 1:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    return keras.Model(images, backbone(x), name="inception_features")


def domain_extractor(classifier):
    """The `"features"` layer of a kerasgen domain classifier (see `build_classifier`)."""
    return keras.Model(classifier.inputs, classifier.get_layer(FEATURES_LAYER).output,
                       name="domain_features")


def domain_probabilities(classifier):
    """Class probabilities of a kerasgen domain classifier, for the classifier score."""
    probabilities = keras.layers.Softmax(name="probabilities")(classifier.outputs[0])
    return keras.Model(classifier.inputs, probabilities, name="domain_probabilities")
