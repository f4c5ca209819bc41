"""Inpainting: fill the missing parts of images (masks, partial-convolution U-Net, trainer,
evaluation against the classical inpainters)."""

from kerasgen.models.inpainting.masks import HoleMask, draw_masks, mask_set  # noqa: F401
from kerasgen.models.inpainting.networks import PartialConv2D, build_pconv_unet  # noqa: F401
from kerasgen.models.inpainting.presets import PRESETS, build_inpainter  # noqa: F401
from kerasgen.models.inpainting.trainer import Inpainter  # noqa: F401
