"""CNN restoration: DnCNN, FFDNet and U-Net denoisers, ESPCN / FSRCNN / EDSR super-resolution,
and the recurrent networks: DRRN super-resolution and a PReNet-style recurrent denoiser.

`networks` builds the functional networks, `trainer.Restorer` trains one against a seeded
degradation layer (`kerasgen.layers.degradations`) and restores uint8 images of any size,
`presets` registers them, `evaluation` scores them by the papers' protocols.

Example:
    >>> model = build_restorer("dncnn", sigma=25.0)
    >>> model.compile()
    >>> model.fit(model.training_data("train400", batch_size=64), steps_per_epoch=500)
    >>> clean = model.apply(noisy_uint8)

References: DnCNN https://arxiv.org/abs/1608.03981, FFDNet https://arxiv.org/abs/1710.04026,
ESPCN https://arxiv.org/abs/1609.05158, FSRCNN https://arxiv.org/abs/1608.00367,
EDSR https://arxiv.org/abs/1707.02921, DRUNet https://arxiv.org/abs/2008.13751, DRRN (Tai et
al., CVPR 2017, "Image Super-Resolution via Deep Recursive Residual Network"), PReNet
https://arxiv.org/abs/1901.09221.
"""

from kerasgen.models.restoration.networks import (ARCHITECTURES, build_dncnn,  # noqa: F401
                                                  build_drrn, build_edsr, build_espcn,
                                                  build_ffdnet, build_fsrcnn,
                                                  build_recurrent_denoiser, build_unet_denoiser)
from kerasgen.models.restoration.presets import PRESETS, build_restorer  # noqa: F401
from kerasgen.models.restoration.trainer import Restorer  # noqa: F401
