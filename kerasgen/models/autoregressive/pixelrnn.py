"""PixelRNN's Row LSTM network (van den Oord et al. 2016, "Pixel Recurrent Neural Networks",
https://arxiv.org/abs/1601.06759, section 3.1): the recurrent image model of the paper.

The image is processed row by row from the top: each Row LSTM layer computes its
input-to-state part for the whole map at once (a 1 x k convolution with mask type B: the pixel
and those left of it) and, row after row, adds a 1 x k convolution of the previous row's
hidden state (the state-to-state part) to get the four gates of an LSTM whose state is a whole
row. The first layer is a 7 x 7 convolution with mask type A (the rows above and the pixels to
the left, not the pixel), the layers are joined by residual connections (a 1 x 1 convolution
of the h-channel output added to the 2h-channel input), and two ReLU / 1 x 1 convolution layers
give the per-pixel logits. The output at a pixel depends only on pixels before it in raster
order; its receptive field is the triangle above it (the Row LSTM's known limitation, which the
Diagonal BiLSTM removes).

The rows are unrolled (one `RowLSTMStep` per layer, called at every row, shares its weights),
so the network has a fixed height and converts to TFLite builtin ops; `PixelCNN` trains it and
samples it with the whole network per pixel.
"""

import keras
from keras import layers

from kerasgen.layers import ZeroState, lstm_update
from kerasgen.models.autoregressive.networks import LIKELIHOOD_OUTPUTS, check_network_arguments


@keras.saving.register_keras_serializable(package="kerasgen")
class RowLSTMStep(keras.layers.Layer):
    """One row of a Row LSTM: `[input-to-state gates of row i, h_{i-1}, c_{i-1}] -> [h_i, c_i]`
    with the state-to-state part a 1 x `kernel_size` convolution of h_{i-1} (equation 3 of
    the paper).

    Args:
        filters: int. Channels h of the row state.
        kernel_size: int. Width k of the state-to-state convolution. Defaults to 3.
    """

    def __init__(self, filters, kernel_size=3, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.state_to_state = layers.Conv2D(4 * self.filters, (1, self.kernel_size),
                                            padding="same", use_bias=False,
                                            kernel_initializer=kernel_initializer,
                                            name="state_to_state")

    def build(self, input_shape):
        self.state_to_state.build(input_shape[1])

    def call(self, inputs):
        input_gates, h, c = inputs
        return lstm_update(input_gates + self.state_to_state(h), c)

    def compute_output_shape(self, input_shape):
        state = (*input_shape[1][:3], self.filters)
        return [state, state]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


def build_row_lstm(image_shape, likelihood="bernoulli", num_layers: int = 4,
                   num_filters: int = 32, kernel_size: int = 3, seed=None, name="row_lstm"):
    """Row LSTM: one grey or binary channel in [0, 1] `[N, H, W, 1]` (H fixed) -> per-pixel
    logits of p(x_i | x_<i).

    Args:
        image_shape: (int, int, int). Image (height, width, channels); one channel.
        likelihood: str. `"bernoulli"` (one logit per pixel) or `"categorical"` (256 levels).
            Defaults to `"bernoulli"`.
        num_layers: int. Row LSTM layers. Defaults to 4 (the paper uses up to 12).
        num_filters: int. h, the channels of each LSTM row state (the layers' inputs have 2h).
            Defaults to 32.
        kernel_size: int. k, the width of the input-to-state (masked: k // 2 + 1 columns, the
            pixel and those left of it) and state-to-state convolutions. Defaults to 3 (the
            paper's).
        seed: int. Seed of the weight initialisers. Defaults to None.
        name: str. Defaults to `"row_lstm"`.
    """
    check_network_arguments("Row LSTM", image_shape, likelihood, num_layers, num_filters,
                            kernel_size)
    height = int(image_shape[0])
    counter = iter(range(10_000))

    def conv(filters, kernel, label, padding="valid", activation=None):
        return layers.Conv2D(filters, kernel, padding=padding, activation=activation, name=label,
                             kernel_initializer=keras.initializers.GlorotUniform(
                                 None if seed is None else seed + next(counter)))

    def causal(x, filters, kernel, pad, crop, label):
        """A 'valid' convolution of `x` zero-padded by `pad`, cropped back by `crop` (if any)."""
        x = conv(filters, kernel, label)(layers.ZeroPadding2D(pad, name=f"{label}_pad")(x))
        return layers.Cropping2D(crop, name=f"{label}_crop")(x) if crop else x

    images = keras.Input((height, None, 1), name="images")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_signed")(images)
    # 1. Mask A, 7 x 7: the three rows above (all seven columns) plus the three pixels to the
    #    left in the row, never the pixel itself.
    above = causal(x, 2 * num_filters, (3, 7), ((3, 0), (3, 3)), ((0, 1), (0, 0)), "mask_a_above")
    left = causal(x, 2 * num_filters, (1, 3), ((0, 0), (3, 0)), ((0, 0), (0, 1)), "mask_a_left")
    x = layers.Add(name="mask_a")([above, left])
    reach = kernel_size // 2
    for index in range(num_layers):
        prefix = f"layer{index}"
        # 2. Input-to-state for the whole map: 1 x k with mask B (the pixel and its left).
        input_gates = causal(x, 4 * num_filters, (1, reach + 1), ((0, 0), (reach, 0)), None,
                             f"{prefix}_input_to_state")
        step = RowLSTMStep(num_filters, kernel_size, name=f"{prefix}_rows",
                           kernel_initializer=keras.initializers.GlorotUniform(
                               None if seed is None else seed + next(counter)))
        # 3. The LSTM runs down the rows; its state is a whole row.
        rows = [layers.Cropping2D(((row, height - 1 - row), (0, 0)), name=f"{prefix}_row{row}")(
            input_gates) for row in range(height)]
        h = c = ZeroState(num_filters, name=f"{prefix}_initial_state")(rows[0])
        outputs = []
        for row in rows:
            h, c = step([row, h, c])
            outputs.append(h)
        h_map = outputs[0] if height == 1 else layers.Concatenate(
            axis=1, name=f"{prefix}_h")(outputs)
        # 4. Residual: the h-channel output, up to 2h by a 1 x 1 convolution, onto the input.
        x = layers.Add(name=f"{prefix}_residual")([x, conv(2 * num_filters, 1,
                                                           f"{prefix}_up")(h_map)])
    x = conv(2 * num_filters, 1, "out1", activation="relu")(layers.ReLU(name="out_relu")(x))
    logits = conv(LIKELIHOOD_OUTPUTS[likelihood], 1, "logits")(x)
    return keras.Model(images, logits, name=name)
