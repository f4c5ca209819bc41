"""Inpainting: fill the missing parts of images (masks; the partial-convolution U-Net, DeepFill
v2's gated convolutions with an SN-PatchGAN, the Context Encoder and a residual U-Net;
evaluation against the classical inpainters)."""

from kerasgen.models.inpainting.adversarial import AdversarialInpainter  # noqa: F401
from kerasgen.models.inpainting.masks import HoleMask, draw_masks, mask_set  # noqa: F401
from kerasgen.models.inpainting.networks import (PartialConv2D, PullPushFill,  # noqa: F401
                                                 SpectralConv2D,
                                                 build_context_encoder, build_gated_generator,
                                                 build_patch_discriminator, build_pconv_unet,
                                                 build_unet_inpainter)
from kerasgen.models.inpainting.presets import (PRESETS, build_context_encoder_inpainter,  # noqa: F401
                                                build_gated_inpainter, build_inpainter,
                                                build_residual_unet_inpainter)
from kerasgen.models.inpainting.trainer import Inpainter  # noqa: F401
