"""The low-light builders and the registered presets (`kerasgen train zero_dce`)."""

from kerasgen.models.enhancement.darkening import Darken
from kerasgen.models.enhancement.zero_dce import ITERATIONS, ZeroDCE, build_dce_net
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.tasks import IMAGE_TO_IMAGE


@forwards_kwargs(lambda kwargs: (ZeroDCE,))
def build_zero_dce(num_filters: int = 32, iterations: int = ITERATIONS,
                   min_gamma: float = 2.0, max_gamma: float = 3.5, max_shot: float = 0.01,
                   max_read: float = 0.02, patch_size: int = 64, seed=0, **options):
    """A `ZeroDCE` around a fresh DCE-Net, trained on images darkened by `Darken`.

    Args:
        num_filters, iterations: see `build_dce_net`.
        min_gamma, max_gamma, max_shot, max_read: the darkening (see `Darken`).
        patch_size: int. Training crop side (at least 16: the exposure loss's regions).
        seed: int. Seeds the weights and the darkening stream.
        **options: `ZeroDCE`'s (loss weights, `patch_size`).
    """
    network = build_dce_net(num_filters, iterations, seed=seed)
    darken = Darken((min_gamma, max_gamma), max_shot, max_read)
    # Seven 3x3 layers: a 15-pixel receptive field (the tiles' margins).
    return ZeroDCE(network, darken, min_size=15, patch_size=patch_size, seed=seed, **options)


PRESETS = {
    "zero_dce": ModelPreset(
        name="zero_dce",
        description="Zero-DCE (Guo et al. 2020): DCE-Net curve estimation, 8 iterations, four "
                    "no-reference losses; 64-pixel T91 crops darkened on the fly (gamma + noise)",
        task=IMAGE_TO_IMAGE, build=build_zero_dce,
        dataset="t91", epochs=20, batch_size=8, steps_per_epoch=100),
}
