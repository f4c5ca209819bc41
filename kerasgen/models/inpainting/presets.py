"""The inpainting builder and the registered presets (`kerasgen train pconv_unet`)."""

import functools

from kerasgen.callbacks import StepDecay
from kerasgen.models.inpainting.masks import TRAINING_RATIOS, HoleMask
from kerasgen.models.inpainting.networks import build_pconv_unet
from kerasgen.models.inpainting.trainer import LEARNING_RATE, Inpainter
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.tasks import IMAGE_TO_IMAGE


@forwards_kwargs(lambda kwargs: (Inpainter,))
def build_inpainter(depth: int = 5, num_filters: int = 32, mask_kind: str = "freeform",
                    min_hole_ratio: float = TRAINING_RATIOS[0],
                    max_hole_ratio: float = TRAINING_RATIOS[1], stroke_scale: float = 400.0,
                    channels=3, seed=0, **options):
    """An `Inpainter` around a fresh partial-convolution U-Net and its training masks.

    Args:
        depth, num_filters: see `build_pconv_unet`.
        mask_kind: str. Training holes: "freeform", "box" (random rectangles) or "center".
        min_hole_ratio, max_hole_ratio: float. Training hole ratios are drawn uniformly in
            this range.
        stroke_scale: float. Training strokes are sized for images of this side (pixels):
            400 matches photos such as BSD68's 481x321 (sqrt(481 * 321) = 393), whose holes a
            128-pixel crop would otherwise see 3x too thin. 0: each crop's own size.
        channels: int. 3 (colour) or 1 (grey).
        seed: int. Seeds the weights and the mask stream.
        **options: `Inpainter`'s (loss weights, `patch_size`).
    """
    network = build_pconv_unet((None, None, channels), depth=depth, num_filters=num_filters,
                               seed=seed)
    masks = HoleMask(mask_kind, (min_hole_ratio, max_hole_ratio), stroke_scale or None)
    return Inpainter(network, masks, size_multiple=2 ** depth, seed=seed, **options)


PRESETS = {
    "pconv_unet": ModelPreset(
        name="pconv_unet",
        description="Partial-convolution U-Net inpainter (Liu et al. 2018), free-form holes "
                    "(Yu et al. 2019 strokes), valid + 6 hole L1 + TV; colour, T91 crops",
        task=IMAGE_TO_IMAGE, build=build_inpainter, model_kwargs={"patch_size": 128},
        dataset="t91", epochs=25, batch_size=8, steps_per_epoch=200,
        learning_rate_schedule=functools.partial(StepDecay, LEARNING_RATE, drop_at=0.75)),
}
