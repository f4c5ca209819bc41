"""The registered translation presets (`kerasgen train cyclegan`, `pix2pix`)."""

import functools

from kerasgen.callbacks import LinearDecay
from kerasgen.models.preset import ModelPreset
from kerasgen.models.translation.networks import LEARNING_RATE
from kerasgen.models.translation.trainer import build_cyclegan, build_pix2pix
from kerasgen.tasks import IMAGE_TO_IMAGE


def _preset(name, description, build, dataset, **model_kwargs):
    return ModelPreset(
        name=name, description=description, build=build, model_kwargs=model_kwargs,
        dataset=dataset, image_size=64, epochs=10, batch_size=1, steps_per_epoch=100,
        task=IMAGE_TO_IMAGE,
        learning_rate_schedule=functools.partial(LinearDecay, LEARNING_RATE, constant_share=0.5))


PRESETS = {
    "cyclegan": _preset(
        "cyclegan", "CycleGAN (Zhu et al. 2017), ResNet generators, LSGAN, cycle 10, identity "
        "0.5; default data: embedded chelsea2coffee at 64x64", build_cyclegan, "chelsea2coffee"),
    "pix2pix": _preset(
        "pix2pix", "pix2pix (Isola et al. 2017), U-Net + conditional PatchGAN, L1 100; default "
        "data: embedded grey2color at 64x64", build_pix2pix, "grey2color"),
}
