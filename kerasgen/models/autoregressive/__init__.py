"""Autoregressive image models: the gated PixelCNN network (`build_gated_pixelcnn`), PixelRNN's
Row LSTM and Diagonal BiLSTM networks (`build_row_lstm`, `build_diagonal_bilstm`), the
`PixelCNN` wrapper that trains any of them (exact NLL, seeded pixel-by-pixel sampling,
completions) and presets."""

from kerasgen.models.autoregressive.networks import (GatedActivation,  # noqa: F401
                                                     build_gated_pixelcnn)
from kerasgen.models.autoregressive.pixelcnn import PixelCNN  # noqa: F401
from kerasgen.models.autoregressive.pixelrnn import (DiagonalLSTM, RowLSTMStep,  # noqa: F401
                                                     build_diagonal_bilstm, build_row_lstm)
from kerasgen.models.autoregressive.presets import (PRESETS, build_pixelcnn,  # noqa: F401
                                                    build_pixelrnn)
