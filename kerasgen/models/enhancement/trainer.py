"""`LowLightEnhancer`: the image-to-image trainer of the low-light family.

A `Restorer` whose degradation is `Darken` (synthetic low light) and which also trains on real
(low, normal-light) pairs: a pair folder (`low/` and `high/`, files paired by name; LOL's
download root, whose `our485/` it reads). Its serving signature is `enhance`, and its benchmark
scores it beside the classical enhancers (`kerasgen.models.enhancement.evaluation`).
"""

import keras

from kerasgen.data import restoration as data
from kerasgen.export import ServingSpec
from kerasgen.models.restoration.trainer import Restorer


@keras.saving.register_keras_serializable(package="kerasgen")
class LowLightEnhancer(Restorer):
    """Trains an RGB enhancement network with `fit` on darkened clean patches or real pairs.

    Args:
        network: `keras.Model`. Dark float RGB images in [0, 1] -> enhanced ones.
        degradation: `Darken`: how clean training images are made dark.
        **kwargs: `Restorer`'s (`loss`, `ssim_weight`, `patch_size`, `min_size`,
            `size_multiple`, `seed`).
    """

    def __init__(self, network, degradation, **kwargs):
        kwargs.setdefault("color", "rgb")
        super().__init__(network, degradation, **kwargs)

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
