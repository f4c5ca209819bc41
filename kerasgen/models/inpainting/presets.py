"""The inpainting builder and the registered presets (`kerasgen train pconv_unet`)."""

import functools

from kerasgen.callbacks import LinearDecay, StepDecay
from kerasgen.models.inpainting.adversarial import AdversarialInpainter
from kerasgen.models.inpainting.masks import TRAINING_RATIOS, FolderMasks, HoleMask
from kerasgen.models.inpainting.networks import (build_context_encoder, build_gated_generator,
                                                 build_patch_discriminator, build_pconv_unet,
                                                 build_unet_inpainter)
from kerasgen.models.inpainting.trainer import LEARNING_RATE, Inpainter
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.models.restoration.networks import unet_size_multiple
from kerasgen.tasks import IMAGE_TO_IMAGE


def training_masks(mask_kind, ratios, stroke_scale=None, mask_folder=None):
    """The training holes: the user's `mask_folder` where given, else drawn `mask_kind`."""
    if mask_folder:
        masks = FolderMasks(mask_folder)
        masks.load()  # refuses a missing or bad folder now, before any run starts
        return masks
    return HoleMask(mask_kind, ratios, stroke_scale or None)


@forwards_kwargs(lambda kwargs: (Inpainter,))
def build_inpainter(depth: int = 5, num_filters: int = 32, mask_kind: str = "freeform",
                    min_hole_ratio: float = TRAINING_RATIOS[0],
                    max_hole_ratio: float = TRAINING_RATIOS[1], stroke_scale: float = 400.0,
                    mask_folder: str = None, channels=3, seed=0, **options):
    """An `Inpainter` around a fresh partial-convolution U-Net and its training masks.

    Args:
        depth, num_filters: see `build_pconv_unet`.
        mask_kind: str. Training holes: "freeform", "box" (random rectangles) or "center".
        min_hole_ratio, max_hole_ratio: float. Training hole ratios are drawn uniformly in
            this range.
        stroke_scale: float. Training strokes are sized for images of this side (pixels):
            400 matches photos such as BSD68's 481x321 (sqrt(481 * 321) = 393), whose holes a
            128-pixel crop would otherwise see 3x too thin. 0: each crop's own size.
        mask_folder: str. Train on the holes of this folder of masks (8-bit greyscale, white =
            hole; see `FolderMasks`) instead of drawn ones. Defaults to None.
        channels: int. 3 (colour) or 1 (grey).
        seed: int. Seeds the weights and the mask stream.
        **options: `Inpainter`'s (loss weights, `patch_size`).
    """
    network = build_pconv_unet((None, None, channels), depth=depth, num_filters=num_filters,
                               seed=seed)
    masks = training_masks(mask_kind, (min_hole_ratio, max_hole_ratio), stroke_scale,
                           mask_folder)
    return Inpainter(network, masks, size_multiple=2 ** depth, seed=seed, **options)


@forwards_kwargs(lambda kwargs: (Inpainter,))
def build_residual_unet_inpainter(num_filters: int = 16, num_levels: int = 4,
                                  num_blocks: int = 2, pull_push_levels: int = 0,
                                  mask_kind: str = "freeform",
                                  min_hole_ratio: float = TRAINING_RATIOS[0],
                                  max_hole_ratio: float = TRAINING_RATIOS[1],
                                  stroke_scale: float = 400.0, mask_folder: str = None,
                                  channels=3, seed=0, **options):
    """An `Inpainter` around a fresh residual U-Net (`build_unet_inpainter`).

    Args:
        num_filters, num_levels, num_blocks: see `residual_unet`.
        pull_push_levels: int. See `build_unet_inpainter` (0: no prior fill).
        mask_kind, min_hole_ratio, max_hole_ratio, stroke_scale, mask_folder, channels, seed:
            as `build_inpainter`.
        **options: `Inpainter`'s (loss weights, `patch_size`).
    """
    network = build_unet_inpainter((None, None, channels), num_filters=num_filters,
                                   num_levels=num_levels, num_blocks=num_blocks,
                                   pull_push_levels=pull_push_levels, seed=seed)
    masks = training_masks(mask_kind, (min_hole_ratio, max_hole_ratio), stroke_scale,
                           mask_folder)
    return Inpainter(network, masks, size_multiple=unet_size_multiple(num_levels), seed=seed,
                     **options)


@forwards_kwargs(lambda kwargs: (AdversarialInpainter, Inpainter))
def build_gated_inpainter(num_filters: int = 24, discriminator_filters: int = 64,
                          discriminator_layers: int = 6, mask_kind: str = "freeform",
                          min_hole_ratio: float = TRAINING_RATIOS[0],
                          max_hole_ratio: float = TRAINING_RATIOS[1],
                          stroke_scale: float = 400.0, mask_folder: str = None, channels=3,
                          seed=0, **options):
    """DeepFill v2 (Yu et al. 2019) in one stage: a gated-convolution generator against an
    SN-PatchGAN, hinge loss, L1 reconstruction (both weighted 1, as in the released code).

    Args:
        num_filters: int. The generator's `cnum` (see `build_gated_generator`).
        discriminator_filters, discriminator_layers: see `build_patch_discriminator`.
        mask_kind, min_hole_ratio, max_hole_ratio, stroke_scale, mask_folder, channels, seed:
            as `build_inpainter`.
        **options: `AdversarialInpainter`'s and `Inpainter`'s.
    """
    network = build_gated_generator((None, None, channels), num_filters=num_filters, seed=seed)
    discriminator = build_patch_discriminator(
        (None, None, channels), num_filters=discriminator_filters,
        num_layers=discriminator_layers, seed=None if seed is None else seed + 1)
    masks = training_masks(mask_kind, (min_hole_ratio, max_hole_ratio), stroke_scale,
                           mask_folder)
    options = {"gan_loss": "hinge", "adversarial_weight": 1.0, "reconstruction": "l1",
               "valid_weight": 1.0, "hole_weight": 1.0, "tv_weight": 0.0, **options}
    return AdversarialInpainter(network, masks, discriminator, size_multiple=4, seed=seed,
                                **options)


@forwards_kwargs(lambda kwargs: (AdversarialInpainter, Inpainter))
def build_context_encoder_inpainter(network_size: int = 64, num_filters: int = 32,
                                    bottleneck: int = 1000, discriminator_filters: int = 32,
                                    hole_ratio: float = 0.25, mask_folder: str = None,
                                    channels=3, seed=0, **options):
    """The Context Encoder (Pathak et al. 2016): an encoder-decoder filling a centre square
    against a discriminator; L2 reconstruction (0.999) and a non-saturating adversarial term
    (0.001), as in the paper.

    Args:
        network_size: int. The network's (and the training crops') square side; other images
            are resized for it (see `Inpainter.network_size`). The paper's 128.
        num_filters, bottleneck: see `build_context_encoder` (the paper's 64 and 4000 are
            71 M parameters at 64 pixels; 32 and 1000 are 4.7 M).
        discriminator_filters: int. First-layer filters of the discriminator.
        hole_ratio: float. Share of the image the centre square covers (the paper's 1/4).
        mask_folder, channels, seed: as `build_inpainter`.
        **options: `AdversarialInpainter`'s and `Inpainter`'s.
    """
    network = build_context_encoder(network_size, channels, num_filters=num_filters,
                                    bottleneck=bottleneck, seed=seed)
    # Down to 4x4 logits, 4x4 kernels: the DCGAN-style discriminator of the paper.
    discriminator = build_patch_discriminator(
        (network_size, network_size, channels), num_filters=discriminator_filters,
        num_layers=max(1, int(network_size).bit_length() - 3), kernel_size=4,
        seed=None if seed is None else seed + 1, name="context_discriminator")
    ratio = float(hole_ratio)
    masks = training_masks("center", (max(ratio - 0.01, 0.0), ratio + 0.01),
                           mask_folder=mask_folder)
    # Pathak et al. weigh L2 0.999 and adversarial 0.001 with L2 averaged over the hole;
    # here errors are averaged over the whole image, so the hole term is divided by its share.
    options = {"gan_loss": "non_saturating", "adversarial_weight": 0.001,
               "reconstruction": "l2", "valid_weight": 0.0, "hole_weight": 0.999 / ratio,
               "tv_weight": 0.0, "patch_size": network_size, **options}
    return AdversarialInpainter(network, masks, discriminator, size_multiple=1,
                                network_size=network_size, seed=seed, **options)


PRESETS = {
    "pconv_unet": ModelPreset(
        name="pconv_unet",
        description="Partial-convolution U-Net inpainter (Liu et al. 2018), free-form holes "
                    "(Yu et al. 2019 strokes), valid + 6 hole L1 + TV; colour, T91 crops",
        task=IMAGE_TO_IMAGE, build=build_inpainter, model_kwargs={"patch_size": 128},
        dataset="t91", epochs=25, batch_size=8, steps_per_epoch=200,
        learning_rate_schedule=functools.partial(StepDecay, LEARNING_RATE, drop_at=0.75)),
    # The SSIM term from the start: L1 alone leaves noise in the holes that SSIM punishes,
    # and the classical peers' smooth fills score high SSIM (see `Inpainter`).
    "unet_inpainter": ModelPreset(
        name="unet_inpainter",
        description="Residual U-Net inpainter (the restoration family's DRUNet-style U-Net, "
                    "mask as an input channel), free-form holes, valid + 6 hole L1 + TV + "
                    "3 (1 - SSIM); colour, T91 crops",
        task=IMAGE_TO_IMAGE, build=build_residual_unet_inpainter,
        model_kwargs={"patch_size": 128, "ssim_weight": 3.0, "learning_rate": 1e-3},
        dataset="t91", epochs=25, batch_size=16, steps_per_epoch=100,
        learning_rate_schedule=functools.partial(LinearDecay, 1e-3, constant_share=0.5)),
    # The same U-Net refining a classical pull-push fill instead of filling from zeros.
    "pullpush_unet": ModelPreset(
        name="pullpush_unet",
        description="Residual U-Net refining a pull-push fill (Gortler et al. 1996) of the "
                    "holes, free-form holes, valid + 6 hole L1 + TV + 3 (1 - SSIM); colour, "
                    "T91 crops",
        task=IMAGE_TO_IMAGE, build=build_residual_unet_inpainter,
        model_kwargs={"patch_size": 128, "ssim_weight": 3.0, "learning_rate": 1e-3,
                      "pull_push_levels": 8},
        dataset="t91", epochs=25, batch_size=16, steps_per_epoch=100,
        learning_rate_schedule=functools.partial(LinearDecay, 1e-3, constant_share=0.5)),
    "deepfill_v2": ModelPreset(
        name="deepfill_v2",
        description="Gated-convolution generator + SN-PatchGAN, hinge loss (Yu et al. 2019, "
                    "one stage), free-form holes; colour, T91 crops",
        task=IMAGE_TO_IMAGE, build=build_gated_inpainter,
        model_kwargs={"patch_size": 128, "learning_rate": 1e-4},
        dataset="t91", epochs=25, batch_size=8, steps_per_epoch=200),
    "context_encoder": ModelPreset(
        name="context_encoder",
        description="Context Encoder (Pathak et al. 2016): encoder-decoder + adversarial "
                    "loss filling a centre square; colour, 64-pixel T91 crops",
        task=IMAGE_TO_IMAGE, build=build_context_encoder_inpainter,
        model_kwargs={"learning_rate": 2e-4},
        dataset="t91", epochs=25, batch_size=16, steps_per_epoch=200),
}
