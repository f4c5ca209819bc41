"""`LowLightEnhancer`: the image-to-image trainer of the low-light family.

A `Restorer` whose degradation is `Darken` (synthetic low light) and which also trains on real
(low, normal-light) pairs: a pair folder (`low/` and `high/`, files paired by name; LOL's
download root, whose `our485/` it reads). Its serving signature is `enhance`, and its benchmark
scores it beside the classical enhancers (`kerasgen.models.enhancement.evaluation`).
"""

import keras
import tensorflow as tf

from kerasgen.data import restoration as data
from kerasgen.export import ServingSpec
from kerasgen.models.enhancement.networks import GlobalGamma
from kerasgen.models.restoration.trainer import Restorer
from kerasgen.precision import marked_layers


@keras.saving.register_keras_serializable(package="kerasgen")
class LowLightEnhancer(Restorer):
    """Trains an RGB enhancement network with `fit` on darkened clean patches or real pairs.

    Args:
        network: `keras.Model`. Dark float RGB images in [0, 1] -> enhanced ones.
        degradation: `Darken`: how clean training images are made dark.
        curve_weight: float. Adds `curve_weight` times the mean absolute error of the
            network's global curve alone (its last `GlobalGamma` layer's output) against the
            clean image. Trained on the final output only, the curve drifted towards no
            brightening (exponents about 0.75 after 2,000 steps where the oracle's are
            0.30-0.51; measured) while the U-Net brightened locally, which its 56-pixel view
            of a 64-pixel crop allows but a whole photo punishes (Set14 24.01 dB against
            25.09 with weight 1 at the same steps). Defaults to 0 (off).
        **kwargs: `Restorer`'s (`loss`, `ssim_weight`, `patch_size`, `min_size`,
            `size_multiple`, `seed`).
    """

    def __init__(self, network, degradation, curve_weight: float = 0.0, **kwargs):
        kwargs.setdefault("color", "rgb")
        super().__init__(network, degradation, **kwargs)
        if float(curve_weight) < 0:
            raise ValueError(f"curve_weight must be >= 0, got {curve_weight}.")
        if float(curve_weight) and not marked_layers([self.network], GlobalGamma):
            raise ValueError(f"curve_weight={curve_weight} supervises a global curve, and "
                             f"{self.network.name} has none; build it with global_curve=True "
                             "or leave curve_weight at 0.")
        self.curve_weight = float(curve_weight)

    def objective(self, inputs, targets, training):
        """The output and its loss, plus `curve_weight` x the global curve's own L1 error."""
        if not self.curve_weight:
            return super().objective(inputs, targets, training)
        # The network's output and its curve's in one pass: a graph function over the same
        # layers (not a layer itself, so nothing is tracked or saved twice; no layer of these
        # networks behaves differently in training, so it takes no `training` flag).
        outputs = self.__dict__.get("_with_curve")
        if outputs is None:
            curve = marked_layers([self.network], GlobalGamma)[-1]  # the corrected one
            outputs = self.__dict__["_with_curve"] = keras.Function(
                self.network.inputs[0], [self.network.outputs[0], curve.output])
        restored, curve = outputs(inputs)
        curve_error = tf.reduce_mean(tf.abs(tf.cast(curve, tf.float32) - targets), axis=[1, 2, 3])
        return restored, self.per_image_loss(restored, targets) + self.curve_weight * curve_error

    def training_data(self, dataset, batch_size, seed=0, data_dir=None, start_batch=0,
                      patch_size=None):
        """Endless training batches: `(low, normal)` patch pairs of a pair folder, else clean
        patches of an image set or folder (darkened in the step by the degradation)."""
        folder = data.pair_folder(dataset)
        if folder is None:
            return super().training_data(dataset, batch_size, seed=seed, data_dir=data_dir,
                                         start_batch=start_batch, patch_size=patch_size)
        low, high, _ = data.load_pair_folder(folder, channels=3)
        return data.pair_patch_dataset(low, high, self.training_patch_side(patch_size),
                                       batch_size, seed=seed, start_batch=start_batch)

    def benchmark(self, dataset, data_dir=None, seed=0, grid: str = None):
        """PSNR / SSIM of the model and the classical enhancers, and a comparison grid PNG
        (see `kerasgen.models.enhancement.evaluation`)."""
        from kerasgen.models.enhancement.evaluation import (enhancement_table,
                                                            evaluate_enhancement)

        report = evaluate_enhancement(self, dataset, data_dir=data_dir, seed=seed, grid=grid)
        return {**report, "lines": enhancement_table(report)}

    def serving_spec(self):
        """Signature `enhance`: uint8 RGB `images` of any height and width -> uint8."""
        spec = super().serving_spec()
        return ServingSpec(networks=spec.networks, endpoints={"enhance": spec.endpoints[
            "restore"]}, default="enhance")

    def get_config(self):
        return {**super().get_config(), "curve_weight": self.curve_weight}
