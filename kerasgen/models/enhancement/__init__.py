"""Low-light enhancement: the `Darken` degradation, Zero-DCE and Zero-DCE++ (no-reference),
a supervised U-Net (`LowLightEnhancer`), and the classical enhancers' benchmark."""

from kerasgen.models.enhancement.darkening import Darken  # noqa: F401
from kerasgen.models.enhancement.networks import GlobalGamma, build_lowlight_unet  # noqa: F401
from kerasgen.models.enhancement.presets import (PRESETS, build_lowlight_enhancer,  # noqa: F401
                                                 build_zero_dce, build_zero_dce_plus)
from kerasgen.models.enhancement.trainer import LowLightEnhancer  # noqa: F401
from kerasgen.models.enhancement.zero_dce import (  # noqa: F401
    ZeroDCE, apply_curves, build_dce_net, build_dce_net_plus)
