"""PixelRNN's Row LSTM and Diagonal BiLSTM networks (van den Oord et al. 2016, "Pixel Recurrent
Neural Networks", https://arxiv.org/abs/1601.06759, sections 3.1 and 3.2): the recurrent image
models of the paper.

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

The Diagonal BiLSTM (section 3.2) removes that limitation: each layer skews its input map (row
i shifted i columns right), so that the diagonals of the image become columns, and runs an
LSTM over the columns whose state-to-state part is a 2 x 1 convolution of the previous column
(the cell above and the cell itself in the image); one direction runs left to right, the other
on the mirrored map, and the second's output is shifted down a row before the two are added,
so that no output sees a later pixel. With the mask A input layer, the first layer already
sees every earlier pixel: no blind spot. The columns are unrolled inside `DiagonalLSTM` (the
image size is fixed) with pad / reshape / slice ops that convert to TFLite builtins.
"""

import keras
from keras import layers, ops

from kerasgen.layers import SplitAxis, ZeroState, lstm_update
from kerasgen.models.autoregressive.networks import LIKELIHOOD_OUTPUTS, check_network_arguments


def seeded_convolutions(seed):
    """`(initializer, conv)` for a network's builder: `initializer()` is a Glorot uniform
    initialiser seeded `seed`, `seed + 1`, ... in call order (unseeded with `seed=None`), and
    `conv(filters, kernel, label, activation=None)` a 'valid' `Conv2D` initialised by it."""
    counter = iter(range(10_000))

    def initializer():
        return keras.initializers.GlorotUniform(None if seed is None else seed + next(counter))

    def conv(filters, kernel, label, activation=None):
        return layers.Conv2D(filters, kernel, activation=activation, name=label,
                             kernel_initializer=initializer())

    return initializer, conv


def causal_convolution(x, convolution, pad, crop=None):
    """`convolution` ('valid') of `x` zero-padded by `pad`, cropped back by `crop` (if any)."""
    x = convolution(layers.ZeroPadding2D(pad, name=f"{convolution.name}_pad")(x))
    return layers.Cropping2D(crop, name=f"{convolution.name}_crop")(x) if crop else x


def mask_a_convolution(x, filters, conv):
    """The first layer of both PixelRNNs: a 7 x 7 convolution with mask A, the three rows above
    (all seven columns) plus the three pixels to the left in the row, never the pixel itself."""
    above = causal_convolution(x, conv(filters, (3, 7), "mask_a_above"), ((3, 0), (3, 3)),
                               ((0, 1), (0, 0)))
    left = causal_convolution(x, conv(filters, (1, 3), "mask_a_left"), ((0, 0), (3, 0)),
                              ((0, 0), (0, 1)))
    return layers.Add(name="mask_a")([above, left])


def output_logits(x, filters, likelihood, conv):
    """The two ReLU / 1 x 1 convolution output layers: per-pixel logits of `likelihood`."""
    x = conv(filters, 1, "out1", activation="relu")(layers.ReLU(name="out_relu")(x))
    return conv(LIKELIHOOD_OUTPUTS[likelihood], 1, "logits")(x)


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
                                            name="state_to_state",
                                            dtype=self.dtype_policy)

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
    initializer, conv = seeded_convolutions(seed)
    images = keras.Input((height, None, 1), name="images")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_signed")(images)
    # 1. Mask A, 7 x 7 (the rows above, the pixels to the left).
    x = mask_a_convolution(x, 2 * num_filters, conv)
    reach = kernel_size // 2
    for index in range(num_layers):
        prefix = f"layer{index}"
        # 2. Input-to-state for the whole map: 1 x k with mask B (the pixel and its left).
        input_gates = causal_convolution(x, conv(4 * num_filters, (1, reach + 1),
                                                 f"{prefix}_input_to_state"),
                                         ((0, 0), (reach, 0)))
        step = RowLSTMStep(num_filters, kernel_size, name=f"{prefix}_rows",
                           kernel_initializer=initializer())
        # 3. The LSTM runs down the rows; its state is a whole row.
        rows = SplitAxis(1, name=f"{prefix}_split_rows")(input_gates)
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
    return keras.Model(images, output_logits(x, 2 * num_filters, likelihood, conv), name=name)


def skew(x):
    """`[N, H, W, C] -> [N, H, W + H - 1, C]`, row i shifted i columns right (figure 3 of the
    paper): pad every row with H zeros, read the rows back H - 1 columns narrower."""
    height, width, channels = x.shape[1:]
    flat = ops.reshape(ops.pad(x, [[0, 0], [0, 0], [0, height], [0, 0]]),
                       (-1, height * (width + height), channels))
    return ops.reshape(flat[:, :height * (width + height - 1)],
                       (-1, height, width + height - 1, channels))


def unskew(x, width):
    """The inverse of `skew`: `[N, H, width + H - 1, C] -> [N, H, width, C]`."""
    height, skewed_width, channels = x.shape[1:]
    flat = ops.pad(ops.reshape(x, (-1, height * skewed_width, channels)),
                   [[0, 0], [0, height], [0, 0]])
    return ops.reshape(flat, (-1, height, width + height, channels))[:, :, :width]


@keras.saving.register_keras_serializable(package="kerasgen")
class DiagonalLSTM(keras.layers.Layer):
    """One direction of a Diagonal BiLSTM layer: the input-to-state gates `[N, H, W, 4h]` (a 1 x
    1 convolution of the layer's input, computed for the whole map) -> the hidden map `[N, H, W,
    h]`, from an LSTM run over the columns of the skewed map with a 2 x 1 state-to-state
    convolution (equation 3 of the paper with the column as the state).

    Args:
        filters: int. Channels h of the column state.
        reverse: bool. Run right to left: on the mirrored map, the output mirrored back and
            shifted down a row (so that the pixel's own row, right of it, is never seen).
            Defaults to False.
    """

    def __init__(self, filters, reverse=False, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.reverse = bool(reverse)
        self.state_to_state = layers.Conv2D(4 * self.filters, (2, 1), use_bias=False,
                                            kernel_initializer=kernel_initializer,
                                            name="state_to_state",
                                            dtype=self.dtype_policy)

    def build(self, input_shape):
        if None in input_shape[1:3]:
            raise ValueError(f"DiagonalLSTM needs a fixed image size (its columns are "
                             f"unrolled), got input shape {tuple(input_shape)}.")
        self.state_to_state.build((None, input_shape[1] + 1, 1, self.filters))

    def call(self, gates):
        height, width = gates.shape[1:3]
        if self.reverse:
            gates = ops.flip(gates, axis=2)
        # One split, not a slice per column: a slice's gradient is a whole map of zeros.
        columns = ops.split(skew(gates), width + height - 1, axis=2)
        h = c = ops.zeros_like(columns[0][..., :self.filters])
        outputs = []
        for column in columns:
            # The previous column's cell above and the cell itself: pad a zero row on top.
            from_state = self.state_to_state(ops.pad(h, [[0, 0], [1, 0], [0, 0], [0, 0]]))
            h, c = lstm_update(column + from_state, c)
            outputs.append(h)
        hidden = unskew(ops.concatenate(outputs, axis=2), width)
        if not self.reverse:
            return hidden
        # Section 3.2: "the right output map is then shifted down by one row".
        hidden = ops.flip(hidden, axis=2)
        return ops.pad(hidden, [[0, 0], [1, 0], [0, 0], [0, 0]])[:, :height]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "reverse": self.reverse}


def build_diagonal_bilstm(image_shape, likelihood="bernoulli", num_layers: int = 2,
                          num_filters: int = 32, seed=None, name="diagonal_bilstm"):
    """Diagonal BiLSTM: one grey or binary channel in [0, 1] `[N, H, W, 1]` (H and W fixed) ->
    per-pixel logits of p(x_i | x_<i); every output sees every earlier pixel.

    Args:
        image_shape: (int, int, int). Image (height, width, channels); one channel.
        likelihood: str. `"bernoulli"` (one logit per pixel) or `"categorical"` (256 levels).
            Defaults to `"bernoulli"`.
        num_layers: int. Diagonal BiLSTM layers. Defaults to 2 (the paper uses 1 to 12; each
            layer unrolls H + W - 1 columns in each direction).
        num_filters: int. h, the channels of each direction's column state (the layers'
            inputs have 2h). Defaults to 32.
        seed: int. Seed of the weight initialisers. Defaults to None.
        name: str. Defaults to `"diagonal_bilstm"`.
    """
    check_network_arguments("Diagonal BiLSTM", image_shape, likelihood, num_layers, num_filters)
    height, width = int(image_shape[0]), int(image_shape[1])
    initializer, conv = seeded_convolutions(seed)
    images = keras.Input((height, width, 1), name="images")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_signed")(images)
    # 1. Mask A, 7 x 7 (the rows above, the pixels to the left).
    x = mask_a_convolution(x, 2 * num_filters, conv)
    for index in range(num_layers):
        prefix = f"layer{index}"
        directions = []
        for reverse, label in ((False, "left_to_right"), (True, "right_to_left")):
            # 2. Input-to-state: a 1 x 1 convolution (mask B) of the whole map.
            gates = conv(4 * num_filters, 1, f"{prefix}_{label}_input_to_state")(x)
            # 3. The LSTM over the skewed map's columns (the image's diagonals).
            directions.append(DiagonalLSTM(num_filters, reverse=reverse,
                                           kernel_initializer=initializer(),
                                           name=f"{prefix}_{label}")(gates))
        h_map = layers.Add(name=f"{prefix}_h")(directions)
        # 4. Residual: the h-channel output, up to 2h by a 1 x 1 convolution, onto the input.
        x = layers.Add(name=f"{prefix}_residual")([x, conv(2 * num_filters, 1,
                                                           f"{prefix}_up")(h_map)])
    return keras.Model(images, output_logits(x, 2 * num_filters, likelihood, conv), name=name)
