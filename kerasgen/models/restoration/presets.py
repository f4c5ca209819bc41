"""The restoration builder and the registered presets (`kerasgen train dncnn`, ...)."""

import functools
import inspect

from kerasgen.callbacks import StepDecay
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.models.restoration.networks import ARCHITECTURES
from kerasgen.models.restoration.trainer import (BATCH_NORM_BATCHES, LEARNING_RATE, Restorer,
                                                 network_channels)
from kerasgen.tasks import IMAGE_TO_IMAGE


def _architecture(name):
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; valid: {sorted(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


@forwards_kwargs(lambda kwargs: (_architecture(kwargs.get("architecture", "dncnn")).degradation,
                                 _architecture(kwargs.get("architecture", "dncnn")).build))
def build_restorer(architecture="dncnn", color="grey", loss="l2", patch_size=40,
                   batch_norm_batches: int = BATCH_NORM_BATCHES, seed=0, **options):
    """A `Restorer` around a freshly built network and its architecture's degradation.

    Args:
        architecture: str. A name in `ARCHITECTURES` (which also names the degradation:
            Gaussian noise for denoisers, bicubic down-scaling for SR networks).
        color, loss, patch_size, batch_norm_batches: see `Restorer` (0 batches keeps the
            batch norms' moving averages).
        seed: int. Seeds the weights and the degradation stream.
        **options: the degradation's arguments (`sigma`, `sigma_range`; `scale`) and the
            network builder's (e.g. `depth`, `num_filters`).
    """
    spec = _architecture(architecture)
    degradation_arguments = set(inspect.signature(spec.degradation).parameters) - {"kwargs"}
    network_arguments = set(inspect.signature(spec.build).parameters) - {"channels", "seed"}
    unknown = sorted(set(options) - degradation_arguments - network_arguments)
    if unknown:
        raise ValueError(f"{architecture} takes no {', '.join(unknown)}; its options: "
                         f"{', '.join(sorted(degradation_arguments | network_arguments))}.")
    degradation = spec.degradation(**{key: value for key, value in options.items()
                                      if key in degradation_arguments})
    network_kwargs = {key: value for key, value in options.items() if key in network_arguments}
    network = spec.build(channels=network_channels(color), seed=seed, **network_kwargs)
    return Restorer(network, degradation, color=color, loss=loss, patch_size=patch_size,
                    batch_norm_batches=batch_norm_batches,
                    min_size=spec.receptive_field(**network_kwargs),
                    size_multiple=spec.size_multiple(**network_kwargs), seed=seed)


def _preset(name, description, dataset, batch_size, learning_rate=LEARNING_RATE,
            **model_kwargs):
    return ModelPreset(
        name=name, description=description, task=IMAGE_TO_IMAGE, build=build_restorer,
        model_kwargs=model_kwargs, dataset=dataset, epochs=50, batch_size=batch_size,
        steps_per_epoch=200,
        learning_rate_schedule=functools.partial(StepDecay, learning_rate, drop_at=0.6))


PRESETS = {
    "dncnn": _preset("dncnn", "DnCNN-S (Zhang et al. 2017), grey, one noise level (sigma=25), "
                              "Train400", "train400", 64, architecture="dncnn", sigma=25.0),
    "dncnn_blind": _preset(
        "dncnn_blind", "DnCNN-B, 20 layers, grey, blind sigma in [0, 55], Train400",
        "train400", 64, architecture="dncnn", depth=20, sigma_range=(0.0, 55.0), patch_size=50),
    "dncnn_color": _preset(
        "dncnn_color", "CDnCNN-B, 20 layers, colour, blind sigma in [0, 55], T91", "t91", 64,
        architecture="dncnn", depth=20, color="rgb", sigma_range=(0.0, 55.0), patch_size=50),
    "ffdnet": _preset(
        "ffdnet", "FFDNet (Zhang et al. 2018), grey, noise level map input, sigma in [0, 75], "
                  "Train400", "train400", 64, architecture="ffdnet", sigma_range=(0.0, 75.0),
        patch_size=64),
    "ffdnet_color": _preset(
        "ffdnet_color", "FFDNet, colour (12 layers, 96 filters), sigma in [0, 75], T91", "t91",
        64, architecture="ffdnet", depth=12, num_filters=96, color="rgb",
        sigma_range=(0.0, 75.0), patch_size=64),
    "unet_denoiser": _preset(
        "unet_denoiser", "U-Net of residual blocks after DRUNet (Zhang et al. 2021), grey, one "
                         "noise level (sigma=25), Train400", "train400", 32,
        architecture="unet_denoiser", sigma=25.0, patch_size=64),
    "espcn": _preset("espcn", "ESPCN (Shi et al. 2016), x3 on the Y channel, T91", "t91", 64,
                     architecture="espcn", color="y", scale=3, patch_size=17),
    "fsrcnn": _preset("fsrcnn", "FSRCNN(56, 12, 4) (Dong et al. 2016), x3 on the Y channel, T91",
                      "t91", 64, architecture="fsrcnn", color="y", scale=3, patch_size=16),
    "drrn": _preset("drrn", "DRRN B1U9 (Tai et al. 2017), x3 on the Y channel, one recursive "
                            "block shared by 9 units, T91", "t91", 32, architecture="drrn",
                    color="y", scale=3, patch_size=11),
    "recurrent_denoiser": _preset(
        "recurrent_denoiser", "PReNet-style progressive recurrent denoiser: one stage x4 with "
                              "a ConvLSTM state carried across stages, grey, sigma=25, Train400",
        "train400", 64, architecture="recurrent_denoiser", sigma=25.0),
    # The paper's Adam 1e-4 (Lim et al. 2017, section 4.2).
    "edsr": _preset("edsr", "EDSR-baseline (Lim et al. 2017), x3, RGB, L1 loss, T91", "t91",
                    16, learning_rate=1e-4, architecture="edsr", color="rgb", scale=3,
                    loss="l1", patch_size=16),
}
