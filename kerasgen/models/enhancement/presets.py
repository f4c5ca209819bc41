"""The low-light builders and the registered presets (`kerasgen train zero_dce`, ...)."""

import functools

from kerasgen.callbacks import StepDecay
from kerasgen.models.enhancement.darkening import Darken
from kerasgen.models.enhancement.networks import build_lowlight_unet, unet_receptive_field
from kerasgen.models.enhancement.trainer import LowLightEnhancer
from kerasgen.models.enhancement.zero_dce import (ITERATIONS, ZeroDCE, build_dce_net,
                                                  build_dce_net_plus)
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.models.restoration.trainer import LEARNING_RATE
from kerasgen.tasks import IMAGE_TO_IMAGE


def _darken(min_gamma, max_gamma, max_shot, max_read, luminance_share, eight_bit=False,
            exposure_share=0.0, min_exposure=0.01, max_exposure=0.1):
    return Darken((min_gamma, max_gamma), max_shot, max_read, luminance_share, eight_bit,
                  exposure_share, (min_exposure, max_exposure))


@forwards_kwargs(lambda kwargs: (ZeroDCE,))
def build_zero_dce(num_filters: int = 32, iterations: int = ITERATIONS,
                   min_gamma: float = 2.0, max_gamma: float = 3.5, max_shot: float = 0.01,
                   max_read: float = 0.02, luminance_share: float = 1.0,
                   patch_size: int = 64, seed=0, **options):
    """A `ZeroDCE` around a fresh DCE-Net, trained on images darkened by `Darken`.

    Args:
        num_filters, iterations: see `build_dce_net`.
        min_gamma, max_gamma, max_shot, max_read: the darkening (see `Darken`).
        luminance_share: float. Share of the images darkened on their luminance, colour ratios
            kept (see `Darken`). All of them by default: per-channel gamma exaggerates the
            images' casts, and the Gray-World loss taught DCE-Net to boost blue on every image
            (LOL eval15 11.38 dB with a blue cast, 17.47 without; measured).
        patch_size: int. Training crop side (at least 16: the exposure loss's regions).
        seed: int. Seeds the weights and the darkening stream.
        **options: `ZeroDCE`'s (loss weights).
    """
    network = build_dce_net(num_filters, iterations, seed=seed)
    # Seven 3x3 layers: a 15-pixel receptive field (the tiles' margins).
    return ZeroDCE(network, _darken(min_gamma, max_gamma, max_shot, max_read, luminance_share),
                   min_size=15, patch_size=patch_size, seed=seed, **options)


@forwards_kwargs(lambda kwargs: (ZeroDCE,))
def build_zero_dce_plus(num_filters: int = 32, iterations: int = ITERATIONS,
                        downscale: int = 1, min_gamma: float = 2.0, max_gamma: float = 3.5,
                        max_shot: float = 0.01, max_read: float = 0.02,
                        luminance_share: float = 1.0, patch_size: int = 64,
                        smoothness_weight: float = 1600.0, seed=0, **options):
    """A `ZeroDCE` around Zero-DCE++'s network (`build_dce_net_plus`): depthwise separable
    convolutions, one set of curve maps applied `iterations` times, the released code's
    1600x smoothness weight.

    Args:
        num_filters, downscale: see `build_dce_net_plus`.
        iterations: int. Curve iterations (8).
        min_gamma, max_gamma, max_shot, max_read, luminance_share: as `build_zero_dce`.
        patch_size, smoothness_weight, seed, **options: as `build_zero_dce`.
    """
    network = build_dce_net_plus(num_filters, downscale, seed=seed)
    # Seven 3x3 layers at 1 / downscale of the input (plus the bilinear resizes).
    return ZeroDCE(network, _darken(min_gamma, max_gamma, max_shot, max_read, luminance_share),
                   min_size=15 * int(downscale), patch_size=patch_size,
                   smoothness_weight=smoothness_weight, curve_iterations=iterations, seed=seed,
                   **options)


@forwards_kwargs(lambda kwargs: (LowLightEnhancer,))
def build_lowlight_enhancer(num_filters: int = 16, depth: int = 2, global_curve: bool = False,
                            curve_target: float = 0.4, min_gamma: float = 2.0,
                            max_gamma: float = 3.5, max_shot: float = 0.01,
                            max_read: float = 0.02, luminance_share: float = 0.0,
                            eight_bit: bool = False, exposure_share: float = 0.0,
                            min_exposure: float = 0.01, max_exposure: float = 0.1,
                            loss: str = "l1", ssim_weight: float = 1.0,
                            patch_size: int = 64, seed=0, **options):
    """A `LowLightEnhancer` around a fresh U-Net (`build_lowlight_unet`), trained with
    L1 + SSIM on (darkened, clean) patches or on a pair folder's real pairs.

    Args:
        num_filters, depth: see `build_lowlight_unet`. Depth 2 (a 56-pixel receptive field)
            keeps the field inside the 64-pixel training crops: at depth 3 (124 pixels) every
            bottom-level feature of a crop sees the zero padding, which full-size photos do
            not, and whole-image results drifted by several dB between checkpoints of equal
            training loss (LOL 15.4 dB at step 3,000, 13.3 at 6,000; measured). T91's smallest
            images (78 px) rule out crops large enough for depth 3.
        global_curve, curve_target: see `build_lowlight_unet`.
        min_gamma, max_gamma, max_shot, max_read, luminance_share, eight_bit: the synthetic
            darkening (see `Darken`).
        exposure_share, min_exposure, max_exposure: the share of the images darkened by a
            shorter exposure instead, and its ratio's range (`Darken`'s `exposure_share`,
            `exposure_range`).
        loss, ssim_weight: the objective (see `Restorer`): L1 + 1 x (1 - SSIM) by default.
        patch_size: int. Training crop side, a multiple of `2**depth`, best at least the
            receptive field (`unet_receptive_field(depth)`).
        seed: int. Seeds the weights and the darkening stream.
        **options: `LowLightEnhancer`'s.
    """
    network = build_lowlight_unet(num_filters, depth, global_curve, curve_target, seed=seed)
    return LowLightEnhancer(network, _darken(min_gamma, max_gamma, max_shot, max_read,
                                             luminance_share, eight_bit, exposure_share,
                                             min_exposure, max_exposure),
                            loss=loss, ssim_weight=ssim_weight, patch_size=patch_size,
                            min_size=unet_receptive_field(int(depth)),
                            size_multiple=2 ** int(depth), seed=seed, **options)


PRESETS = {
    "zero_dce": ModelPreset(
        name="zero_dce",
        description="Zero-DCE (Guo et al. 2020): DCE-Net curve estimation, 8 iterations, four "
                    "no-reference losses; 64-pixel T91 crops darkened on the fly (gamma + noise)",
        task=IMAGE_TO_IMAGE, build=build_zero_dce,
        dataset="t91", epochs=20, batch_size=8, steps_per_epoch=100),
    "zero_dce_plus": ModelPreset(
        name="zero_dce_plus",
        description="Zero-DCE++ (Li et al. 2021): depthwise separable DCE-Net, one curve set "
                    "applied 8 times (10k parameters); T91 crops darkened on the fly",
        task=IMAGE_TO_IMAGE, build=build_zero_dce_plus,
        dataset="t91", epochs=20, batch_size=8, steps_per_epoch=100),
    "lowlight_unet": ModelPreset(
        name="lowlight_unet",
        description="Supervised low-light U-Net (SID-style), L1 + SSIM; T91 darkened on the "
                    "fly (gamma 2-3.5 + Poisson-Gaussian noise), or a low/high pair folder",
        task=IMAGE_TO_IMAGE, build=build_lowlight_enhancer,
        dataset="t91", epochs=30, batch_size=16, steps_per_epoch=100),
    "lowlight_curve_unet": ModelPreset(
        name="lowlight_curve_unet",
        description="Supervised low-light U-Net refining a global auto-gamma curve that a "
                    "small branch corrects from the whole image; 32 filters, L1 + SSIM; T91 "
                    "darkened on the fly and rounded to 8 bits",
        task=IMAGE_TO_IMAGE, build=build_lowlight_enhancer,
        model_kwargs={"num_filters": 32, "global_curve": True, "eight_bit": True,
                      "curve_weight": 1.0},
        dataset="t91", epochs=150, batch_size=16, steps_per_epoch=100,
        learning_rate_schedule=functools.partial(StepDecay, LEARNING_RATE, drop_at=0.6)),
}
