"""The autoregressive family's builder and registered presets."""

import functools

from kerasgen.callbacks import LinearDecay
from kerasgen.models.autoregressive.networks import build_gated_pixelcnn
from kerasgen.models.autoregressive.pixelcnn import PixelCNN
from kerasgen.models.autoregressive.pixelrnn import build_diagonal_bilstm, build_row_lstm
from kerasgen.models.preset import ModelPreset, forwards_kwargs
from kerasgen.tasks import Generation


@forwards_kwargs(lambda kwargs: (build_gated_pixelcnn,))
def build_pixelcnn(image_shape, likelihood: str = "bernoulli", binarize=None, num_classes=None,
                   seed=None, name=None, **network_options):
    """A `PixelCNN` around a fresh gated PixelCNN network sized from `image_shape`.

    Args:
        image_shape: (int, int, int). Training image (height, width, 1).
        likelihood: str. `"bernoulli"` (dynamically binarized data) or `"categorical"`
            (256 grey levels). Defaults to `"bernoulli"`.
        binarize: str. See `PixelCNN`. Defaults to dynamic for Bernoulli.
        num_classes: int. Class-conditional. Defaults to None.
        seed: int. Seeds the weights and the binarisation stream.
        name: str. Defaults to `"pixelcnn"` (`"pixelcnn_conditional"` with `num_classes`).
        **network_options: `build_gated_pixelcnn`'s (`num_layers`, `num_filters`,
            `kernel_size`).

    Example:
        >>> model = build_pixelcnn((28, 28, 1), num_layers=8, num_filters=32, seed=0)
    """
    network = build_gated_pixelcnn(image_shape, likelihood=likelihood, num_classes=num_classes,
                                   seed=seed, **network_options)
    return PixelCNN(network, image_shape, likelihood=likelihood, binarize=binarize, seed=seed,
                    name=name or ("pixelcnn_conditional" if num_classes else "pixelcnn"))


# The PixelRNN networks (van den Oord et al. 2016, section 3) by name.
PIXELRNN_NETWORKS = {"row_lstm": build_row_lstm, "diagonal_bilstm": build_diagonal_bilstm}


def _pixelrnn_network(name):
    if name not in PIXELRNN_NETWORKS:
        raise ValueError(f"Unknown PixelRNN network {name!r}; valid: {list(PIXELRNN_NETWORKS)}.")
    return PIXELRNN_NETWORKS[name]


@forwards_kwargs(lambda kwargs: (_pixelrnn_network(kwargs.get("network", "row_lstm")),))
def build_pixelrnn(image_shape, network: str = "row_lstm", likelihood: str = "bernoulli",
                   binarize=None, seed=None, name=None, **network_options):
    """A `PixelCNN` wrapper around a fresh PixelRNN network (`build_row_lstm` or
    `build_diagonal_bilstm`), which samples with the whole network per pixel (the recurrences
    fix the image's height, and the Diagonal BiLSTM's width too).

    Args:
        image_shape, likelihood, binarize, seed: as `build_pixelcnn`.
        network: str. `"row_lstm"` or `"diagonal_bilstm"` (`PIXELRNN_NETWORKS`). Defaults to
            `"row_lstm"`.
        name: str. Defaults to the network's name.
        **network_options: the network builder's (`num_layers`, `num_filters`; the Row LSTM's
            `kernel_size`).
    """
    built = _pixelrnn_network(network)(image_shape, likelihood=likelihood, seed=seed,
                                       **network_options)
    return PixelCNN(built, image_shape, likelihood=likelihood, binarize=binarize,
                    sampling="whole_canvas", seed=seed, name=name or network)


# Sized for a 2-core CPU (measured here: 1.4 s per step of 64 at 28x28, 47 images/s): 8 gated
# layers of 32 channels with 5x5 steps, which reach 17 rows up and 17 columns left; Adam 1e-3,
# constant for 60 % of the epochs, then down linearly. The gated PixelCNN's own preset trains
# on batches of 32 for 48 epochs: on one AMX core in bf16 (0.30 s per step against 0.62 at 64)
# that reached 81.58 nats in 50 CPU-minutes, where batches of 64 reached 82.64 in 52 (README).
_MNIST = {"build": build_pixelcnn, "dataset": "mnist", "batch_size": 64, "epochs": 10,
          "steps_per_epoch": 200,
          "learning_rate_schedule": functools.partial(LinearDecay, 1e-3, constant_share=0.6)}
_CPU_NETWORK = {"num_layers": 8, "num_filters": 32, "kernel_size": 5}
# The Row LSTM's rows run one after the other (28 dependent steps per layer): 4 layers of
# h = 32 for a CPU, where the paper stacks up to 12.
_ROW_LSTM_NETWORK = {"num_layers": 4, "num_filters": 32}
# Each Diagonal BiLSTM layer runs 55 dependent columns per direction at 28x28 (the paper: 1-7
# layers for MNIST; 2 here for a CPU).
_DIAGONAL_BILSTM_NETWORK = {"network": "diagonal_bilstm", "num_layers": 2, "num_filters": 32}
PRESETS = {
    "pixelcnn": ModelPreset(
        name="pixelcnn",
        description="Gated PixelCNN (van den Oord et al. 2016): vertical + horizontal stacks "
                    "without blind spot, gated units, exact NLL; dynamically binarized MNIST",
        task=Generation(), model_kwargs=_CPU_NETWORK,
        **{**_MNIST, "batch_size": 32, "epochs": 48}),
    "pixelcnn_conditional": ModelPreset(
        name="pixelcnn_conditional",
        description="Class-conditional gated PixelCNN (label embedding in every gate); "
                    "dynamically binarized MNIST",
        task=Generation(labelled=True), model_kwargs=_CPU_NETWORK, **_MNIST),
    "row_lstm": ModelPreset(
        name="row_lstm",
        description="PixelRNN's Row LSTM (van den Oord et al. 2016): row-by-row LSTM layers "
                    "with masked input-to-state convolutions, exact NLL; dynamically binarized "
                    "MNIST",
        task=Generation(), model_kwargs=_ROW_LSTM_NETWORK, **{**_MNIST, "build": build_pixelrnn}),
    "diagonal_bilstm": ModelPreset(
        name="diagonal_bilstm",
        description="PixelRNN's Diagonal BiLSTM (van den Oord et al. 2016): LSTMs over the "
                    "skewed image's columns in both directions, exact NLL; dynamically "
                    "binarized MNIST",
        task=Generation(), model_kwargs=_DIAGONAL_BILSTM_NETWORK,
        **{**_MNIST, "build": build_pixelrnn}),
    "pixelcnn_grey": ModelPreset(
        name="pixelcnn_grey",
        description="Gated PixelCNN with a 256-way softmax per pixel (8-bit grey levels); "
                    "Fashion-MNIST",
        task=Generation(), model_kwargs={**_CPU_NETWORK, "likelihood": "categorical"},
        **{**_MNIST, "dataset": "fashion_mnist"}),
}
