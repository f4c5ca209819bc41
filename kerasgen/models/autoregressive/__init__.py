"""Autoregressive image models: the gated PixelCNN network (`build_gated_pixelcnn`), PixelRNN's
Row LSTM network (`build_row_lstm`), the `PixelCNN` wrapper that trains either (exact NLL,
seeded pixel-by-pixel sampling, completions) and presets."""

from kerasgen.models.autoregressive.networks import (GatedActivation,  # noqa: F401
                                                     build_gated_pixelcnn)
from kerasgen.models.autoregressive.pixelcnn import PixelCNN  # noqa: F401
from kerasgen.models.autoregressive.pixelrnn import RowLSTMStep, build_row_lstm  # noqa: F401
from kerasgen.models.autoregressive.presets import (PRESETS, build_pixelcnn,  # noqa: F401
                                                    build_pixelrnn)
