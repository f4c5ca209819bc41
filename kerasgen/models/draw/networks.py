"""DRAW's networks (Gregor et al. 2015, https://arxiv.org/abs/1502.04623): the selective
attention filterbank (section 3.2), the read and write operations and one glimpse of the
encoder and decoder as functional `keras.Model`s, which the `DRAW` wrapper unrolls T times.

Shapes: images and canvases `[N, H, W, C]` (canvases are the Bernoulli logits of the image so
far), recurrent states `[N, units]`, latents `[N, latent_dim]`.
"""

import keras
from keras import layers, ops

from kerasgen.precision import FullPrecision

# The attention parameters a linear layer reads from h_dec (equation 21):
# g~_X, g~_Y, log sigma^2, log delta~, log gamma.
NUM_ATTENTION_PARAMETERS = 5
# Keeps a filter's normaliser away from zero when its window lies outside the image.
FILTER_EPSILON = 1e-8


@keras.saving.register_keras_serializable(package="kerasgen")
class AttentionWindow(FullPrecision, layers.Layer):
    """An N x N grid of Gaussian filters on an H x W image from 5 raw parameters
    (equations 19-22 of the DRAW paper).

    Call on `[N, 5]` parameters `(g~_X, g~_Y, log sigma^2, log delta~, log gamma)`; returns
    `(filters_y [N, patch, H], filters_x [N, patch, W], gamma [N])`:
    - centre g_X = (W + 1)/2 (g~_X + 1), g_Y = (H + 1)/2 (g~_Y + 1) (1-based pixels);
    - stride delta = (max(H, W) - 1)/(patch - 1) delta~;
    - filter i's mean mu_X^i = g_X + (i - patch/2 - 0.5) delta, i = 1 .. patch;
    - F_X[i, a] = exp(-(a - mu_X^i)^2 / (2 sigma^2)) / Z_X, normalised so sum_a F_X[i, a] = 1.

    Args:
        image_size: (int, int). (H, W).
        patch_size: int. N, filters per side.
    """

    def __init__(self, image_size, patch_size, **kwargs):
        super().__init__(**kwargs)
        self.image_size = tuple(int(size) for size in image_size)
        self.patch_size = int(patch_size)

    def call(self, parameters):
        height, width = self.image_size
        patch = self.patch_size
        parameters = ops.cast(parameters, "float32")
        centre_x = (width + 1) / 2 * (parameters[:, 0:1] + 1.0)
        centre_y = (height + 1) / 2 * (parameters[:, 1:2] + 1.0)
        variance = ops.exp(parameters[:, 2:3])[:, :, None]
        stride = (max(height, width) - 1) / max(patch - 1, 1) * ops.exp(parameters[:, 3:4])
        gamma = ops.exp(parameters[:, 4])
        offsets = ops.arange(1, patch + 1, dtype="float32") - patch / 2 - 0.5

        def filters(centre, size):
            means = (centre + offsets[None, :] * stride)[:, :, None]  # [N, patch, 1]
            pixels = ops.arange(1, size + 1, dtype="float32")[None, None, :]
            weights = ops.exp(-ops.square(pixels - means) / (2.0 * variance))
            return weights / ops.maximum(ops.sum(weights, axis=-1, keepdims=True),
                                         FILTER_EPSILON)

        return filters(centre_y, height), filters(centre_x, width), gamma

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return ((batch, self.patch_size, self.image_size[0]),
                (batch, self.patch_size, self.image_size[1]), (batch,))

    def get_config(self):
        return {**super().get_config(), "image_size": self.image_size,
                "patch_size": self.patch_size}


def _channels_first(images):
    return ops.transpose(images, (0, 3, 1, 2))


@keras.saving.register_keras_serializable(package="kerasgen")
class ReadGlimpse(layers.Layer):
    """gamma F_Y x F_X^T for every channel (equation 27): `[image, filters_y, filters_x,
    gamma]` -> `[N, patch * patch * C]`."""

    def call(self, inputs):
        images, filters_y, filters_x, gamma = inputs
        # [N, 1, patch, H] @ [N, C, H, W] @ [N, 1, W, patch] -> [N, C, patch, patch]
        patches = ops.matmul(ops.matmul(filters_y[:, None], _channels_first(images)),
                             ops.transpose(filters_x, (0, 2, 1))[:, None])
        patches = ops.transpose(patches, (0, 2, 3, 1)) * gamma[:, None, None, None]
        return ops.reshape(patches, (-1, patches.shape[1] * patches.shape[2] * patches.shape[3]))

    def compute_output_shape(self, input_shape):
        images, filters_y, _, _ = input_shape
        return (images[0], filters_y[1] * filters_y[1] * images[-1])


@keras.saving.register_keras_serializable(package="kerasgen")
class WriteGlimpse(layers.Layer):
    """(1 / gamma) F_Y^T w F_X for every channel (equation 29): `[patch [N, p * p * C],
    filters_y, filters_x, gamma]` -> `[N, H, W, C]`."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, inputs):
        patch, filters_y, filters_x, gamma = inputs
        size = filters_y.shape[1]
        patch = _channels_first(ops.reshape(patch, (-1, size, size, self.channels)))
        # [N, 1, H, patch] @ [N, C, patch, patch] @ [N, 1, patch, W] -> [N, C, H, W]
        images = ops.matmul(ops.matmul(ops.transpose(filters_y, (0, 2, 1))[:, None], patch),
                            filters_x[:, None])
        return ops.transpose(images, (0, 2, 3, 1)) / gamma[:, None, None, None]

    def compute_output_shape(self, input_shape):
        _, filters_y, filters_x, _ = input_shape
        return (filters_y[0], filters_y[2], filters_x[2], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def _check_sizes(image_shape, units, latent_dim, read_size, write_size):
    if len(image_shape) != 3 or min(image_shape) < 1:
        raise ValueError(f"image_shape must be (height, width, channels), got {image_shape}.")
    for name, value in (("units", units), ("latent_dim", latent_dim)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}.")
    for name, value in (("read_size", read_size), ("write_size", write_size)):
        if value is not None and int(value) < 1:
            raise ValueError(f"{name} must be at least 1 (or None: no attention), got {value}.")


def _dense(units, seed, name, small=False):
    initializer = (keras.initializers.RandomNormal(stddev=1e-3, seed=seed) if small
                   else keras.initializers.GlorotUniform(seed=seed))
    return layers.Dense(units, kernel_initializer=initializer, name=name)


def _lstm(units, seed, name):
    return layers.LSTMCell(units, kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                           recurrent_initializer=keras.initializers.Orthogonal(seed=seed),
                           name=name)


def _window(h_decoder, image_shape, patch_size, seed, name):
    # Small initial weights: every glimpse starts centred on the image, stride 1, sigma 1.
    parameters = _dense(NUM_ATTENTION_PARAMETERS, seed, f"{name}_parameters", small=True)(
        h_decoder)
    return AttentionWindow(image_shape[:2], patch_size, name=f"{name}_window")(parameters)


def build_draw_encoder_step(image_shape, units=256, latent_dim=100, read_size=2, seed=None,
                            name="draw_encoder_step"):
    """One glimpse of DRAW's inference network (equations 3-5).

    Inputs `[images, canvas, h_decoder, h_encoder, c_encoder]` (images are intensities in
    [0, 1], the canvas the logits so far) -> `[h_encoder, c_encoder, mean, log_variance]`:
    x^ = x - sigmoid(c), r = read(x, x^, h_dec), (h_enc, c_enc) = LSTM([r, h_dec]), and
    Q(z | h_enc) a diagonal Gaussian.

    Args:
        image_shape: (int, int, int). (H, W, C).
        units: int. LSTM size. Defaults to 256 (the paper's MNIST models).
        latent_dim: int. Size of each z_t. Defaults to 100.
        read_size: int or None. Attention patch side N (2 in the paper's MNIST model); None
            reads the whole images (DRAW without attention).
        seed: int. Seeds the initialisers.
    """
    _check_sizes(image_shape, units, latent_dim, read_size, 1)
    images = keras.Input(tuple(image_shape), name="images")
    canvas = keras.Input(tuple(image_shape), name="canvas")
    h_decoder = keras.Input((units,), name="h_decoder")
    h_encoder = keras.Input((units,), name="h_encoder")
    c_encoder = keras.Input((units,), name="c_encoder")
    # 1. The error image x^ = x - sigmoid(c_{t-1}) (equation 3).
    error = layers.Subtract(name="error")([images, layers.Activation("sigmoid")(canvas)])
    # 2. read: two attended patches, or both whole images without attention (equation 4).
    if read_size is None:
        glimpse = layers.Concatenate(name="read")(
            [layers.Flatten()(images), layers.Flatten()(error)])
    else:
        filters_y, filters_x, gamma = _window(h_decoder, image_shape, read_size, seed, "read")
        reader = ReadGlimpse(name="read_glimpse")
        glimpse = layers.Concatenate(name="read")(
            [reader([images, filters_y, filters_x, gamma]),
             reader([error, filters_y, filters_x, gamma])])
    # 3. The encoder LSTM sees the glimpse and the decoder's previous state (equation 5).
    encoder_input = layers.Concatenate(name="encoder_input")([glimpse, h_decoder])
    encoder_lstm = _lstm(units, seed, "encoder_lstm")
    _, (h_new, c_new) = encoder_lstm(encoder_input, [h_encoder, c_encoder])
    # 4. Q(z_t | h_enc_t) = N(mean, exp(log_variance)) (section 2.1).
    mean = _dense(latent_dim, seed, "mean", small=True)(h_new)
    log_variance = _dense(latent_dim, seed, "log_variance", small=True)(h_new)
    return keras.Model([images, canvas, h_decoder, h_encoder, c_encoder],
                       [h_new, c_new, mean, log_variance], name=name)


def build_draw_decoder_step(image_shape, units=256, latent_dim=100, write_size=5, seed=None,
                            name="draw_decoder_step"):
    """One glimpse of DRAW's generative network (equations 7-8).

    Inputs `[latent, h_decoder, c_decoder, canvas]` -> `[h_decoder, c_decoder, canvas]`:
    (h_dec, c_dec) = LSTM(z), c_t = c_{t-1} + write(h_dec).

    Args:
        image_shape, units, latent_dim, seed: as in `build_draw_encoder_step`.
        write_size: int or None. Attention patch side N (5 in the paper's MNIST model); None
            writes the whole canvas from a linear layer (DRAW without attention).
    """
    _check_sizes(image_shape, units, latent_dim, 1, write_size)
    height, width, channels = image_shape
    latent = keras.Input((latent_dim,), name="latent")
    h_decoder = keras.Input((units,), name="h_decoder")
    c_decoder = keras.Input((units,), name="c_decoder")
    canvas = keras.Input(tuple(image_shape), name="canvas")
    # 1. The decoder LSTM reads z_t (equation 7).
    _, (h_new, c_new) = _lstm(units, seed, "decoder_lstm")(latent, [h_decoder, c_decoder])
    # 2. write: a linear patch, placed by its own attention window (equations 28-29).
    if write_size is None:
        update = layers.Reshape(tuple(image_shape), name="write")(
            _dense(height * width * channels, seed, "write_image")(h_new))
    else:
        patch = _dense(write_size * write_size * channels, seed, "write_patch")(h_new)
        filters_y, filters_x, gamma = _window(h_new, image_shape, write_size, seed, "write")
        update = WriteGlimpse(channels, name="write")([patch, filters_y, filters_x, gamma])
    # 3. The canvas accumulates the writes (equation 8).
    new_canvas = layers.Add(name="new_canvas")([canvas, update])
    return keras.Model([latent, h_decoder, c_decoder, canvas], [h_new, c_new, new_canvas],
                       name=name)
