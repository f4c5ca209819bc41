"""Autoregressive image models: the gated PixelCNN network (`build_gated_pixelcnn`), the
`PixelCNN` wrapper (exact NLL, seeded pixel-by-pixel sampling, completions) and presets."""

from kerasgen.models.autoregressive.networks import (GatedActivation,  # noqa: F401
                                                     build_gated_pixelcnn)
from kerasgen.models.autoregressive.pixelcnn import PixelCNN  # noqa: F401
from kerasgen.models.autoregressive.presets import PRESETS, build_pixelcnn  # noqa: F401
