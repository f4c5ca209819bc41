"""The gated PixelCNN network (van den Oord et al. 2016, https://arxiv.org/abs/1606.05328).

The masks of the paper are made by padding and shifting instead of masked kernels (as in the
authors' and most later code): a vertical stack sees the rows above a pixel (and its own row,
which never reaches the output unshifted), a horizontal stack sees the pixels to the left in
the row; the vertical stack feeds the horizontal one shifted down one row, so together they
see every pixel before the current one in raster order, with no blind spot (section 2.2).

Layer 0 is the paper's mask type A (the current pixel is hidden from the horizontal stack by
a one-column shift); the later layers are type B. Everything is a builtin Keras layer or the
small `GatedActivation`, so the network converts to TFLite builtins and runs on any backend.
"""

import keras
from keras import layers

from kerasgen.layers import LabelEmbedding

# Output logits per pixel of each likelihood: p(x = 1), or one per 8-bit level.
LIKELIHOOD_OUTPUTS = {"bernoulli": 1, "categorical": 256}
LABEL_EMBEDDING = "label_embedding"


@keras.saving.register_keras_serializable(package="kerasgen")
class GatedActivation(layers.Layer):
    """tanh(f) * sigmoid(g) of the two channel halves [f, g] of its input (equation 2 of the
    paper); with a second input, a per-image conditioning vector `[N, 2C]` (the class
    embedding V^T h of equation 4) is added to every pixel first."""

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            features, condition = inputs
            features = features + keras.ops.expand_dims(keras.ops.expand_dims(condition, 1), 1)
        else:
            features = inputs
        filter_half, gate_half = keras.ops.split(features, 2, axis=-1)
        return keras.ops.tanh(filter_half) * keras.ops.sigmoid(gate_half)

    def compute_output_shape(self, input_shape):
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)) else input_shape
        return (*shape[:-1], shape[-1] // 2)


def _shift(x, axis, name, layer):
    """`x` moved one step down (axis 1) or right (axis 2), zeros coming in: each pixel then
    sees its predecessor's value, never its own."""
    padding = ((1, 0), (0, 0)) if axis == 1 else ((0, 0), (1, 0))
    cropping = ((0, 1), (0, 0)) if axis == 1 else ((0, 0), (0, 1))
    x = layer(f"{name}_pad", lambda name: layers.ZeroPadding2D(padding, name=name))(x)
    return layer(f"{name}_crop", lambda name: layers.Cropping2D(cropping, name=name))(x)


def _causal_conv(x, filters, kernel_shape, padding, seed, name, layer):
    """A 'valid' convolution after zero padding that keeps the output the input's size."""
    x = layer(f"{name}_pad", lambda name: layers.ZeroPadding2D(padding, name=name))(x)
    return layer(name, lambda name: layers.Conv2D(
        filters, kernel_shape, kernel_initializer=_initializer(seed), name=name))(x)


def _initializer(seed):
    return keras.initializers.GlorotUniform(seed=seed)


def _new_layer(name, make):
    """The builder's `layer(name, make)`: a fresh layer, `make(name)`."""
    return make(name)


def _gate(features, embedded, name, layer):
    gate = layer(name, lambda name: GatedActivation(name=name))
    return gate(features) if embedded is None else gate([features, embedded])


def _horizontal_path(x, from_above, embedded, likelihood, num_filters, reach, seed, layer):
    """The horizontal stack and the output head: the image (signed) of the rows it gets, the
    vertical stack's contribution per layer (`from_above`, already shifted down a row) and the
    per-layer label embeddings (or Nones) -> logits. `layer(name, make)` gives each layer:
    fresh ones when building, the built network's own for `row_network`."""
    # Mask type A: the horizontal stack starts from the image shifted one column right.
    horizontal = _shift(x, 2, "hide_current", layer)
    for index, (above, condition) in enumerate(zip(from_above, embedded)):
        prefix = f"layer{index}"
        pre = _causal_conv(horizontal, 2 * num_filters, (1, reach + 1), ((0, 0), (reach, 0)),
                           seed, f"{prefix}_horizontal", layer)
        pre = layer(f"{prefix}_join", lambda name: layers.Add(name=name))([pre, above])
        gated = _gate(pre, condition, f"{prefix}_horizontal_gate", layer)
        out = layer(f"{prefix}_horizontal_out", lambda name: layers.Conv2D(
            num_filters, 1, kernel_initializer=_initializer(seed), name=name))(gated)
        # Residual on the horizontal stack from layer 1 on (layer 0 changes the width).
        horizontal = out if index == 0 else layer(
            f"{prefix}_residual", lambda name: layers.Add(name=name))([horizontal, out])
    x = layer("head_relu", lambda name: layers.ReLU(name=name))(horizontal)
    x = layer("head", lambda name: layers.Conv2D(
        num_filters, 1, activation="relu", kernel_initializer=_initializer(seed), name=name))(x)
    return layer("logits", lambda name: layers.Conv2D(
        LIKELIHOOD_OUTPUTS[likelihood], 1, dtype="float32",
        kernel_initializer=_initializer(seed), name=name))(x)


def check_network_arguments(model, image_shape, likelihood, num_layers, num_filters,
                            kernel_size=None):
    """Refuse what an autoregressive network of `model` (its name in messages) cannot build:
    an unknown likelihood, colour images, fewer than one layer or filter, an even or < 3
    kernel (None: the network has no kernel size to choose)."""
    if likelihood not in LIKELIHOOD_OUTPUTS:
        raise ValueError(f"Unknown likelihood {likelihood!r}; valid: "
                         f"{list(LIKELIHOOD_OUTPUTS)}.")
    if len(image_shape) != 3 or image_shape[-1] != 1:
        raise ValueError(
            f"The {model} here models one channel (binary or grey), got images of shape "
            f"{tuple(image_shape)}; colour needs the paper's R->G->B channel masks, which are "
            "not built yet. Train on grey data (e.g. mnist, fashion_mnist).")
    for label, value in (("num_layers", num_layers), ("num_filters", num_filters)):
        if int(value) < 1:
            raise ValueError(f"{label} must be at least 1, got {value}.")
    if kernel_size is not None and (int(kernel_size) < 3 or int(kernel_size) % 2 == 0):
        raise ValueError(f"kernel_size must be odd and at least 3 (a centred kernel), got "
                         f"{kernel_size}.")


def build_gated_pixelcnn(image_shape, likelihood="bernoulli", num_layers: int = 12,
                         num_filters: int = 64, kernel_size: int = 5, num_classes=None,
                         seed=None, name="pixelcnn"):
    """Gated PixelCNN: one grey or binary channel in [0, 1] -> per-pixel logits of p(x_i | x_<i).

    The network is fully convolutional (`[N, H, W, 1]` of any size), and the output at a pixel
    depends only on the pixels before it in raster order (rows above, then left in the row).

    Args:
        image_shape: (int, int, int). Training image (height, width, channels); one channel.
        likelihood: str. `"bernoulli"` (binary images: one logit per pixel) or
            `"categorical"` (8-bit grey: 256 logits per pixel, a softmax over the levels).
            Defaults to `"bernoulli"`.
        num_layers: int. Gated layers (the first is mask type A). Defaults to 12.
        num_filters: int. Channels of both stacks (p of the paper; the gates use 2p).
            Defaults to 64.
        kernel_size: int. Odd n: each layer's vertical step is (n//2 + 1) x n (shifted down a
            row on its way to the horizontal stack, so layer l reaches (l + 1) * (n//2) + 1
            rows up), its horizontal step 1 x (n//2 + 1). Defaults to 5.
        num_classes: int. If set, the network also takes an int label, embedded per layer
            and added to both stacks' gates (class-conditional, equation 4). Defaults to None.
        seed: int. Seed of the weight initialisers. Defaults to None.
        name: str. Defaults to `"pixelcnn"`.

    Reference: https://arxiv.org/abs/1606.05328, figure 2.
    """
    check_network_arguments("gated PixelCNN", image_shape, likelihood, num_layers, num_filters,
                            kernel_size)
    reach = kernel_size // 2
    images = keras.Input((None, None, 1), name="images")
    inputs = [images]
    if num_classes:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
    x = layers.Rescaling(2.0, offset=-1.0, name="to_signed")(images)
    vertical, from_above, embedded = x, [], []
    for index in range(num_layers):
        prefix = f"layer{index}"
        condition = LabelEmbedding(num_classes, 2 * num_filters, seed=seed,
                                   name=f"{LABEL_EMBEDDING}{index}")(label) if num_classes \
            else None
        vertical_pre = _causal_conv(vertical, 2 * num_filters, (reach + 1, kernel_size),
                                    ((reach, 0), (reach, reach)), seed, f"{prefix}_vertical",
                                    _new_layer)
        # The vertical stack reaches the horizontal one from the row above only.
        from_above.append(layers.Conv2D(
            2 * num_filters, 1, kernel_initializer=_initializer(seed),
            name=f"{prefix}_vertical_to_horizontal")(
                _shift(vertical_pre, 1, f"{prefix}_down", _new_layer)))
        embedded.append(condition)
        vertical = _gate(vertical_pre, condition, f"{prefix}_vertical_gate", _new_layer)
    logits = _horizontal_path(x, from_above, embedded, likelihood, num_filters, reach, seed,
                              _new_layer)
    return keras.Model(inputs if num_classes else images, logits, name=name)


def num_gated_layers(network):
    """How many gated layers a `build_gated_pixelcnn` network has."""
    return sum(layer.name.endswith("_horizontal_gate") for layer in network.layers)


def row_networks(network):
    """The two halves of a built network for row-by-row sampling (the cache of Fast
    PixelCNN++, Ramachandran et al. 2017, https://arxiv.org/abs/1704.06001, at row level):

    - `vertical`: the network's inputs -> per layer, the vertical stack's contribution to the
      horizontal one (`[N, H, W, 2p]`, shifted down a row): one pass per row.
    - `row`: one image row `[N, 1, W, 1]`, those contributions at that row and the label ->
      the row's logits: one pass per pixel, over a single row instead of the image.

    Both reuse the network's layers (its weights), so they compute what it computes.
    """
    count = num_gated_layers(network)
    vertical = keras.Model(
        network.inputs,
        [network.get_layer(f"layer{index}_vertical_to_horizontal").output
         for index in range(count)], name=f"{network.name}_vertical")
    num_filters = network.get_layer("layer0_horizontal_out").filters
    reach = network.get_layer("layer0_horizontal").kernel_size[1] - 1
    width = 2 * num_filters
    row_image = keras.Input((1, None, 1), name="row")
    from_above = [keras.Input((1, None, width), name=f"from_above{index}")
                  for index in range(count)]
    inputs = [row_image, *from_above]
    embedded = [None] * count
    if len(network.inputs) > 1:
        label = keras.Input((), dtype="int32", name="label")
        inputs.append(label)
        embedded = [network.get_layer(f"{LABEL_EMBEDDING}{index}")(label)
                    for index in range(count)]
    x = network.get_layer("to_signed")(row_image)
    likelihood = {outputs: name for name, outputs in LIKELIHOOD_OUTPUTS.items()}[
        network.output_shape[-1]]
    logits = _horizontal_path(x, from_above, embedded, likelihood, num_filters, reach, None,
                              lambda name, make: network.get_layer(name))
    return vertical, keras.Model(inputs, logits, name=f"{network.name}_row")
