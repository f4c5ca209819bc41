"""The diffusion family's builder and registered presets."""

import functools

from kerasgen.callbacks import LinearDecay
from kerasgen.models.dcgan import clone_network
from kerasgen.models.diffusion.ddpm import DDPM
from kerasgen.models.diffusion.networks import build_unet
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.tasks import Generation


@forwards_kwargs(lambda kwargs: (DDPM,))
def build_ddpm(image_shape, num_filters: int = 32, depth: int = 2, num_res_blocks: int = 2,
               attention_levels: int = 1, dropout: float = 0.0, patch_size: int = 1,
               ema: bool = True,
               num_classes=None, seed=None, name=None, **options):
    """A `DDPM` around a fresh U-Net (`build_unet`) sized from `image_shape`, with an EMA copy.

    Args:
        image_shape: (int, int, int). Training image (height, width, channels).
        num_filters, depth, num_res_blocks, attention_levels, dropout, patch_size: see
            `build_unet`.
        ema: bool. Keep an EMA copy of the network for sampling. Defaults to True.
        num_classes: int. Class-conditional (classifier-free guidance). Defaults to None.
        seed: int. Seeds the weights, the dropout and the noise stream.
        name: str. Defaults to `"ddpm"` (`"ddpm_conditional"` with `num_classes`).
        **options: `DDPM`'s (schedule, prediction, sampling, EMA decay, ...).

    Example:
        >>> model = build_ddpm((28, 28, 1), num_classes=10, guidance_scale=2.0, seed=0)
    """
    network = build_unet(image_shape, num_filters=num_filters, depth=depth,
                         num_res_blocks=num_res_blocks, attention_levels=attention_levels,
                         dropout=dropout, patch_size=patch_size, num_classes=num_classes,
                         seed=seed)
    return DDPM(network, clone_network(network, "ema_network") if ema else None, seed=seed,
                name=name or ("ddpm_conditional" if num_classes else "ddpm"), **options)


# Sized for a 2-core CPU (measured here: 0.55 s per step of 64 at 28x28): 2x2 patches, 32/64
# channels at 14x14/7x7, one block per level, attention at 7x7; Adam 1e-3 (Ho et al. use 2e-4
# on CIFAR-10 for 800k steps; a run of a few thousand steps needs the larger rate), constant
# for 60 % of the epochs, then down linearly, with the EMA. v-prediction (Salimans & Ho 2022)
# with min-SNR-5 weights (Hang et al. 2023, https://arxiv.org/abs/2303.09556, who report 3.4x
# faster convergence): at 4,800 equal steps on MNIST, domain FD 165 against 181 for eps with
# min-SNR-5 and 271 for plain eps (README, "Benchmarks": bench_diffusion.py).
_SMALL_UNET = {"num_filters": 32, "depth": 1, "num_res_blocks": 1, "patch_size": 2,
               "prediction": "v", "min_snr_gamma": 5.0}
_MNIST = {"build": build_ddpm, "image_size": None, "batch_size": 64, "steps_per_epoch": 300,
          "epochs": 20,
          "learning_rate_schedule": functools.partial(LinearDecay, 1e-3, constant_share=0.6)}
PRESETS = {
    "ddpm": ModelPreset(
        name="ddpm",
        description="DDPM (Ho et al. 2020): small U-Net (2x2 patches, 32/64 channels, attention "
                    "at 7x7), cosine schedule, v-prediction with min-SNR-5 weights, EMA; DDIM "
                    "sampling (Song et al. 2021), 50 steps; MNIST",
        task=Generation(), dataset="mnist", model_kwargs=_SMALL_UNET, **_MNIST),
    "ddpm_conditional": ModelPreset(
        name="ddpm_conditional",
        description="Class-conditional DDPM with classifier-free guidance (Ho & Salimans 2022; "
                    "label dropout 0.1, guidance 2); the ddpm U-Net; Fashion-MNIST",
        task=Generation(labelled=True), dataset="fashion_mnist",
        model_kwargs={**_SMALL_UNET, "guidance_scale": 2.0}, **_MNIST),
}
