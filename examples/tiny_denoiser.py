"""Adding a model: a tiny denoising autoencoder, registered and trained like any family.

An image-to-image family is a network, a degradation and the shared `Restorer` trainer; the
task contract gives it `kerasgen train`, `apply`, `evaluate --dataset` and the exports.
"""

import keras
from keras import layers

from kerasgen.layers.degradations import GaussianNoise
from kerasgen.models.preset import ModelPreset
from kerasgen.models.restoration import Restorer
from kerasgen.tasks import IMAGE_TO_IMAGE


def build_autoencoder(channels=1, num_filters=16, seed=None, name="autoencoder"):
    """A strided conv encoder and a transposed-conv decoder, on images of any even size."""
    images = keras.Input((None, None, channels), name="images")
    x = layers.Conv2D(num_filters, 3, strides=2, padding="same", activation="relu",
                      kernel_initializer=keras.initializers.HeNormal(seed), name="encode")(images)
    x = layers.Conv2DTranspose(num_filters, 3, strides=2, padding="same", activation="relu",
                               kernel_initializer=keras.initializers.HeNormal(seed),
                               name="decode")(x)
    out = layers.Conv2D(channels, 3, padding="same", name="out",
                        kernel_initializer=keras.initializers.GlorotUniform(seed))(x)
    return keras.Model(images, out, name=name)


def build_tiny_denoiser(sigma: float = 25.0, num_filters: int = 16, patch_size: int = 32,
                        seed=0):
    """What the registry calls: every hyperparameter is defined here, once."""
    return Restorer(build_autoencoder(num_filters=num_filters, seed=seed),
                    GaussianNoise(sigma=sigma), patch_size=patch_size,
                    min_size=9, size_multiple=2, seed=seed)  # receptive field, stride


PRESETS = {
    "tiny_denoiser": ModelPreset(
        name="tiny_denoiser", description="A tiny denoising autoencoder (README example)",
        task=IMAGE_TO_IMAGE, build=build_tiny_denoiser, dataset="photos", epochs=2,
        batch_size=8, steps_per_epoch=5),
}
