"""Video prediction: the ConvLSTM encoder-forecaster (Shi et al. 2015) on Moving MNIST
generated from the digits (`kerasgen.data.moving_mnist`)."""

from kerasgen.models.video.forecaster import ConvLSTMForecaster  # noqa: F401
from kerasgen.models.video.networks import build_convlstm_forecaster  # noqa: F401
from kerasgen.models.video.presets import PRESETS, build_convlstm  # noqa: F401
