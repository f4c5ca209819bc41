"""Inpainting networks: partial convolutions and the partial-convolution U-Net, DeepFill v2's
gated generator and SN-PatchGAN, the Context Encoder, and the restoration family's residual
U-Net.

Liu et al. 2018, "Image Inpainting for Irregular Holes Using Partial Convolutions"
(arXiv:1804.07723). A partial convolution sees only the known pixels of its window and
rescales by how many there were; its output mask marks every position whose window held at
least one known pixel, so holes shrink layer by layer.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from kerasgen.export import FloatInInt8, NoFullInt8
from kerasgen.layers import BatchNormalization, PixelShuffle
from kerasgen.models.restoration.networks import residual_unet, unet_convolution
from kerasgen.precision import FullPrecision


class SquareConvolution(layers.Layer):
    """What kerasgen's own convolution layers share: a square kernel, "same" padding, a
    stride, an optional bias, and their config.

    Args:
        filters: int. Output channels.
        kernel_size: int. Square kernel side.
        strides: int. Defaults to 1.
        use_bias: bool. Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
    """

    def __init__(self, filters, kernel_size, strides=1, use_bias=True,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build_kernel(self, channels):
        """The `kernel` (`[k, k, channels, filters]`) and the `bias` (None without one)."""
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, channels, self.filters),
            initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") \
            if self.use_bias else None

    def output_sizes(self, sizes):
        """Spatial output sizes: ceil(size / strides); None stays None."""
        return [None if size is None else -(-size // self.strides) for size in sizes]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


@keras.saving.register_keras_serializable(package="kerasgen")
class PartialConv2D(NoFullInt8, SquareConvolution):
    """`[features, valid]` -> `[features', valid']`, Liu et al. 2018, eq. (1)-(2).

    `valid` is one channel (1 = known pixel) shared by every feature channel. With `W` the
    kernel, `X` the window's features, `M` its valid pixels and `k x k` its size:

        x' = W^T (X * M) * (k * k / sum(M)) + b   where sum(M) > 0, else 0
        m' = 1                                     where sum(M) > 0, else 0

    Zero padding counts as missing, so border windows are rescaled too (the paper's
    "partial convolution based padding"). Builtin TFLite ops only; not full int8 (a small
    trained `pconv_unet`'s int8 file was 59 levels off on average, measured).

    Args: those of `SquareConvolution`; `kernel_initializer` defaults to "he_normal" (the
    paper's ReLU network).
    """

    def __init__(self, filters, kernel_size, kernel_initializer="he_normal", **kwargs):
        super().__init__(filters, kernel_size, kernel_initializer=kernel_initializer, **kwargs)

    def build(self, input_shape):
        self.build_kernel(input_shape[0][-1])

    def call(self, inputs):
        features, valid = inputs
        # Restore the channel counts that dynamic up-sampling hides (TFLite's converter needs
        # them to legalise the convolutions).
        shape = ops.shape(features)
        features = ops.reshape(features, (shape[0], shape[1], shape[2], self.kernel.shape[2]))
        valid = ops.reshape(valid, (shape[0], shape[1], shape[2], 1))
        window = float(self.kernel_size * self.kernel_size)
        raw = ops.conv(features * valid, self.kernel, strides=self.strides, padding="same")
        ones = ops.ones((self.kernel_size, self.kernel_size, 1, 1), dtype=valid.dtype)
        count = ops.conv(valid, ones, strides=self.strides, padding="same")
        updated = ops.clip(count, 0.0, 1.0)
        # The rescaling where the window saw known pixels; 0 elsewhere (no division by 0).
        scale = window / ops.maximum(count, 1.0) * updated
        out = raw * scale
        if self.bias is not None:
            out = (out + self.bias) * updated
        return out, updated

    def compute_output_shape(self, input_shape):
        features, valid = input_shape
        spatial = self.output_sizes(features[1:3])
        return (features[0], *spatial, self.filters), (valid[0], *spatial, 1)


def build_pconv_unet(image_shape=(None, None, 3), depth: int = 5, num_filters: int = 32,
                     seed=None, name="pconv_unet"):
    """The partial-convolution U-Net (Liu et al. 2018, Fig. 2 and the appendix), sized for
    small crops.

    Encoder: `depth` stride-2 partial convolutions (7x7, 5x5, 5x5, then 3x3), batch norm and
    ReLU (none on the first); filters double from `num_filters` up to 8x. Decoder: nearest
    up-sampling, the skip's features and valid mask concatenated (a pixel is valid where either
    is), 3x3 partial convolution, batch norm and LeakyReLU(0.2); the last layer also sees the
    input image and mask and outputs the image (linear).

    Args:
        image_shape: (H, W, C). H and W may be None (any multiple of 2**depth).
        depth: int. Down-sampling steps (the paper's 7 for 512x512). Defaults to 5.
        num_filters: int. Filters of the first layer (the paper's 64). Defaults to 32.
        seed: int. Weight initialisation seed.

    Returns:
        A functional `keras.Model`: `[masked image in [0, 1], valid mask]` -> image.
    """
    if int(depth) < 1 or int(num_filters) < 1:
        raise ValueError(f"depth and num_filters must be positive, got {depth}, {num_filters}.")
    channels = image_shape[-1]
    image = keras.Input((*image_shape[:2], channels), name="image")
    valid = keras.Input((*image_shape[:2], 1), name="valid")

    def initializer(index):
        # A seed per layer: from depth 6 on, layers share kernel shapes and one seeded
        # initialiser would start them equal.
        return keras.initializers.HeNormal(seed=layer_seed(seed, index))

    kernels = [7, 5, 5] + [3] * max(0, depth - 3)

    features, mask = image, valid
    skips = [(features, mask)]
    for level in range(depth):
        features, mask = PartialConv2D(num_filters * min(2 ** level, 8), kernels[level],
                                       strides=2, kernel_initializer=initializer(level),
                                       name=f"encode{level}")([features, mask])
        if level > 0:
            # Synchronised: statistics over the global batch under tf.distribute.
            features = BatchNormalization(synchronized=True, name=f"encode{level}_bn")(features)
        features = layers.ReLU(name=f"encode{level}_relu")(features)
        skips.append((features, mask))
    skips.pop()
    for level in reversed(range(depth)):
        skip_features, skip_mask = skips[level]
        features = layers.UpSampling2D(2, name=f"decode{level}_up")(features)
        mask = layers.UpSampling2D(2, name=f"decode{level}_up_mask")(mask)
        features = layers.Concatenate(name=f"decode{level}_concat")([features, skip_features])
        mask = layers.Maximum(name=f"decode{level}_mask")([mask, skip_mask])
        last = level == 0
        features, mask = PartialConv2D(channels if last else num_filters * min(2 ** level, 8),
                                       3, kernel_initializer=initializer(depth + level),
                                       name="to_image" if last else f"decode{level}")(
            [features, mask])
        if not last:
            features = BatchNormalization(synchronized=True, name=f"decode{level}_bn")(features)
            features = layers.LeakyReLU(0.2, name=f"decode{level}_lrelu")(features)
    return keras.Model([image, valid], features, name=name)


def layer_seed(seed, index):
    """A distinct initialiser seed per layer (one seeded initialiser reused draws the same
    values for every layer of the same shape), or None for random."""
    return None if seed is None else int(seed) * 1000 + int(index)


def gated_conv(inputs, filters, kernel_size, strides=1, dilation_rate=1, activation="elu",
               seed=None, name=None):
    """Gated convolution (Yu et al. 2019, arXiv:1806.03589, eq. 1): `phi(W_f x) *
    sigmoid(W_g x)`, a learned soft mask per position and channel in place of the partial
    convolution's hard rule. Two builtin convolutions and a multiply.

    The feature kernels start at variance 4 / fan-in: each gate about halves the signal, and
    with Glorot's the 17 layers of `build_gated_generator` start with outputs of std 1e-6 and
    gradients under Adam's epsilon (measured); 4 gives std 0.03.
    """
    def conv(activation, initializer, suffix):
        return layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                             dilation_rate=dilation_rate, activation=activation,
                             kernel_initializer=initializer, name=f"{name}_{suffix}")(inputs)

    features = conv(activation, keras.initializers.VarianceScaling(
        4.0, "fan_in", "truncated_normal", seed=layer_seed(seed, 0)), "features")
    gate = conv("sigmoid", keras.initializers.GlorotUniform(seed=layer_seed(seed, 1)), "gate")
    return layers.Multiply(name=name)([features, gate])


def build_gated_generator(image_shape=(None, None, 3), num_filters: int = 24, seed=None,
                          name="gated_generator"):
    """The gated-convolution generator of DeepFill v2 (Yu et al. 2019, the coarse network of
    Fig. 3 and the released `inpaint_model.py`), one stage: 5x5 and 3x3 gated convolutions
    down to 1/4 resolution, dilated gated convolutions (rates 2, 4, 8, 16) for a wide
    receptive field, nearest up-sampling back, ELU activations, linear image output.

    Args:
        image_shape: (H, W, C). H and W may be None (any multiple of 4).
        num_filters: int. The paper's `cnum` (48); 24 fits a CPU.
        seed: int. Weight initialisation seed.

    Returns:
        A functional `keras.Model`: `[masked image in [0, 1], valid mask]` -> image.
    """
    if int(num_filters) < 2:
        raise ValueError(f"num_filters must be at least 2, got {num_filters}.")
    channels = image_shape[-1]
    image = keras.Input((*image_shape[:2], channels), name="image")
    valid = keras.Input((*image_shape[:2], 1), name="valid")
    width = int(num_filters)
    # (filters, kernel, stride, dilation) of the paper's coarse network; "up" = x2 nearest.
    plan = [(width, 5, 1, 1), (2 * width, 3, 2, 1), (2 * width, 3, 1, 1),
            (4 * width, 3, 2, 1), (4 * width, 3, 1, 1), (4 * width, 3, 1, 1),
            (4 * width, 3, 1, 2), (4 * width, 3, 1, 4), (4 * width, 3, 1, 8),
            (4 * width, 3, 1, 16), (4 * width, 3, 1, 1), (4 * width, 3, 1, 1), "up",
            (2 * width, 3, 1, 1), (2 * width, 3, 1, 1), "up", (width, 3, 1, 1),
            (width // 2, 3, 1, 1)]
    features = layers.Concatenate(name="image_and_mask")([image, valid])
    for index, step in enumerate(plan):
        if step == "up":
            # Nearest x2 as four copies through depth_to_space: `UpSampling2D` hides the
            # channel count of dynamic shapes, which TFLite's convolutions need.
            features = PixelShuffle(2, name=f"up{index}")(
                layers.Concatenate(name=f"up{index}_copies")([features] * 4))
            continue
        filters, kernel_size, strides, dilation = step
        features = gated_conv(features, filters, kernel_size, strides, dilation,
                              seed=layer_seed(seed, 2 * index), name=f"gated{index}")
    output = layers.Conv2D(channels, 3, padding="same", name="to_image",
                           kernel_initializer=keras.initializers.GlorotUniform(
                               seed=layer_seed(seed, 2 * len(plan))))(features)
    return keras.Model([image, valid], output, name=name)


@keras.saving.register_keras_serializable(package="kerasgen")
class PullPushFill(FullPrecision, FloatInInt8, layers.Layer):
    """`[masked image, valid]` -> the image with its holes filled smoothly by pull-push
    (Gortler et al. 1996, "The Lumigraph", section 3.3): a classical fill with no weights, the
    starting point a network can refine.

    Pull: `num_levels` times, 2x2 average pooling of the weighted image and of the weights
    (ceil sizes, so any H and W). Push: from the coarsest level down, each level keeps its own
    colour with weight `min(1, 4 w)` (the Lumigraph's sum of the four children's weights,
    clamped at 1) and takes the rest from the bilinear up-sampling of the level above. Known
    pixels (w = 1) come back exactly; a hole still open at the coarsest level takes the mean
    of the known pixels. Computed in float32; builtin TFLite ops only. An int8 file keeps
    its ops in float32 (`int8_float_ops`): fully int8, the conversion failed on its MAXIMUMs,
    and a form without them divided by a zero in LiteRT on a 481x321 photo (measured).

    Args:
        num_levels: int. Pull steps (8 closes any hole narrower than 256 pixels).
    """

    int8_float_ops = ("AVERAGE_POOL_2D", "DIV", "MAXIMUM", "MINIMUM", "RESIZE_BILINEAR",
                      "SELECT", "SELECT_V2", "SUM")

    def __init__(self, num_levels=8, **kwargs):
        super().__init__(**kwargs)
        if int(num_levels) < 1:
            raise ValueError(f"num_levels must be at least 1, got {num_levels}.")
        self.num_levels = int(num_levels)

    def call(self, inputs):
        image, valid = (ops.cast(tensor, "float32") for tensor in inputs)
        weighted = [image * valid]
        weights = [valid]
        for _ in range(self.num_levels):  # 1. pull
            weighted.append(ops.average_pool(weighted[-1], 2, 2, padding="same"))
            weights.append(ops.average_pool(weights[-1], 2, 2, padding="same"))
        known_mean = ops.sum(weighted[0], axis=(1, 2), keepdims=True) / ops.maximum(
            ops.sum(weights[0], axis=(1, 2), keepdims=True), 1e-6)
        fill = ops.where(weights[-1] > 0, weighted[-1] / ops.maximum(weights[-1], 1e-6),
                         known_mean)
        for level in reversed(range(self.num_levels)):  # 2. push
            shape = ops.shape(weighted[level])
            # x2 bilinear, cropped to the level (ceil pooling made the level above round
            # up). `tf.image.resize`: `ops.image.resize` refuses sizes known only at run time.
            up = tf.image.resize(fill, 2 * tf.shape(fill)[1:3],
                                 method="bilinear")[:, :shape[1], :shape[2]]
            own = weighted[level] / ops.maximum(weights[level], 1e-6)
            share = ops.minimum(4.0 * weights[level], 1.0) if level else weights[level]
            fill = share * own + (1.0 - share) * up
        return fill

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "num_levels": self.num_levels}


def build_unet_inpainter(image_shape=(None, None, 3), num_filters: int = 16,
                         num_levels: int = 4, num_blocks: int = 2, pull_push_levels: int = 0,
                         seed=None, name="unet_inpainter"):
    """The residual U-Net of the restoration family (`residual_unet`, after DRUNet) as an
    inpainter: the masked image and its valid mask in, the image out, predicted as what to add
    to the masked image (zero-initialised last layer: it starts by returning its input).
    Ordinary convolutions: the mask is an input channel, as in DeepFill (Yu et al. 2018), and
    most layers run at the coarse scales, where the holes are small; with the defaults it sees
    195 pixels.

    With `pull_push_levels`, the holes are first filled by `PullPushFill` (a classical smooth
    fill, about as good as OpenCV's Telea on free-form holes) and the U-Net predicts what to
    add to that fill instead: it starts as the classical fill and learns only the detail.

    Args:
        image_shape: (H, W, C). H and W may be None (any multiple of 2**(num_levels - 1)).
        num_filters, num_levels, num_blocks: see `residual_unet`.
        pull_push_levels: int. 0 (default): the U-Net sees the masked image; N > 0: it sees
            and refines the N-level pull-push fill.
        seed: int. Weight initialisation seed.

    Returns:
        A functional `keras.Model`: `[masked image in [0, 1], valid mask]` -> image.
    """
    channels, num_filters = image_shape[-1], int(num_filters)
    if int(pull_push_levels) < 0:
        raise ValueError(f"pull_push_levels must be 0 (no prior fill) or more, got "
                         f"{pull_push_levels}.")
    image = keras.Input((*image_shape[:2], channels), name="image")
    valid = keras.Input((*image_shape[:2], 1), name="valid")
    start = image
    if int(pull_push_levels):
        start = PullPushFill(int(pull_push_levels), name="pull_push")([image, valid])
    conv = unet_convolution(seed)
    features = conv(layers.Concatenate(name="image_and_mask")([start, valid]), num_filters,
                    "head")
    features = residual_unet(features, conv, num_filters, num_levels, num_blocks)
    fill = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros",
                         name="fill")(features)
    return keras.Model([image, valid], layers.Add(name="to_image")([start, fill]), name=name)


@keras.saving.register_keras_serializable(package="kerasgen")
class SpectralConv2D(SquareConvolution):
    """A convolution whose kernel is divided by its largest singular value (spectral
    normalisation, Miyato et al. 2018, arXiv:1802.05957): one power iteration per training
    call, `u` kept between steps and not differentiated, the gradient taken through
    `W / sigma(W)`. (`keras.layers.SpectralNormalization` instead overwrites the kernel.)

    `u` is updated from the kernel alone, identically on every replica, so it is stored once
    ("only_first_replica") under `tf.distribute`. Args: those of `SquareConvolution`.
    """

    def build(self, input_shape):
        self.build_kernel(input_shape[-1])
        self.vector_u = self.add_weight(
            name="vector_u", shape=(1, self.filters), trainable=False,
            initializer=keras.initializers.RandomNormal(seed=0),
            aggregation="only_first_replica")

    def call(self, inputs, training=False):
        matrix = ops.reshape(self.kernel, (-1, self.filters))
        u = ops.convert_to_tensor(self.vector_u)

        def normalize(vector):
            return vector / (ops.sqrt(ops.sum(ops.square(vector))) + 1e-12)

        v = normalize(ops.matmul(u, ops.transpose(matrix)))
        if training:
            u = normalize(ops.matmul(v, matrix))
            self.vector_u.assign(u)
            v = normalize(ops.matmul(u, ops.transpose(matrix)))
        u, v = ops.stop_gradient(u), ops.stop_gradient(v)
        sigma = ops.sum(ops.matmul(v, matrix) * u)
        outputs = ops.conv(inputs, self.kernel / sigma, strides=self.strides, padding="same")
        return outputs if self.bias is None else outputs + self.bias

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_sizes(input_shape[1:3]), self.filters)


def build_patch_discriminator(image_shape=(None, None, 3), num_filters: int = 64,
                              num_layers: int = 6, kernel_size: int = 5, seed=None,
                              name="sn_patch_discriminator"):
    """SN-PatchGAN (Yu et al. 2019, section 3.2): `num_layers` stride-2 spectrally normalised
    convolutions (filters `num_filters` x 1, 2, 4, 4, ...), LeakyReLU(0.2) between them; the
    last layer's map is the logits, one per patch, each scored by the GAN loss. The last layer
    has no bias: the hinge loss's gradient on it is zero while the logits are in the margin.

    Args:
        image_shape: (H, W, C) of the images; the discriminator also sees the hole mask.
        num_filters, num_layers, kernel_size: the paper's 64, 6, 5.
        seed: int. Weight initialisation seed.

    Returns:
        A functional `keras.Model`: `[image in [0, 1], holes (1 = hole)]` -> logit map.
    """
    if int(num_filters) < 1 or int(num_layers) < 1:
        raise ValueError(f"num_filters and num_layers must be positive, got {num_filters}, "
                         f"{num_layers}.")
    image = keras.Input((*image_shape[:2], image_shape[-1]), name="image")
    holes = keras.Input((*image_shape[:2], 1), name="holes")
    # [0, 1] images, as the generator sees them, centred for the first layer.
    features = layers.Concatenate(name="image_and_holes")(
        [layers.Rescaling(2.0, offset=-1.0, name="centre")(image), holes])
    for level in range(int(num_layers)):
        last = level == int(num_layers) - 1
        features = SpectralConv2D(
            num_filters * min(2 ** level, 4), kernel_size, strides=2, use_bias=not last,
            name=f"conv{level}",
            kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed(seed, level)))(
            features)
        if not last:
            features = layers.LeakyReLU(0.2, name=f"conv{level}_lrelu")(features)
    return keras.Model([image, holes], features, name=name)


def build_context_encoder(image_size: int = 64, channels: int = 3, num_filters: int = 64,
                          bottleneck: int = 4000, seed=None, name="context_encoder"):
    """The Context Encoder's generator (Pathak et al. 2016, arXiv:1604.07379, and its released
    `train.lua`): 4x4 stride-2 convolutions (LeakyReLU 0.2, batch norm after the first) down to
    4x4, a 4x4 convolution to a `bottleneck`-wide code, then 4x4 transposed convolutions
    (batch norm, ReLU) back up. It predicts the whole `image_size` square (the composite keeps
    the known pixels); the paper's network predicts the centre only.

    Args:
        image_size: int. Side of the square inputs (a power of two >= 8; the paper's 128).
        channels: int. Image channels.
        num_filters: int. Filters of the first layer (the paper's 64).
        bottleneck: int. Width of the code (the paper's 4000).
        seed: int. Weight initialisation seed.

    Returns:
        A functional `keras.Model`: `[masked image in [0, 1], valid mask]`, both
        `image_size` square -> image.
    """
    size = int(image_size)
    if size < 8 or size & (size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {image_size}.")
    if int(num_filters) < 1 or int(bottleneck) < 1:
        raise ValueError(f"num_filters and bottleneck must be positive, got {num_filters}, "
                         f"{bottleneck}.")
    image = keras.Input((size, size, channels), name="image")
    valid = keras.Input((size, size, 1), name="valid")
    layer_count = iter(range(1000))

    def initializer():  # DCGAN's N(0, 0.02), as the paper's code
        return keras.initializers.RandomNormal(stddev=0.02,
                                               seed=layer_seed(seed, next(layer_count)))

    levels = size.bit_length() - 3  # stride-2 steps from `size` down to 4
    features = layers.Concatenate(name="image_and_mask")(
        [layers.Rescaling(2.0, offset=-1.0, name="centre")(image), valid])
    for level in range(levels):
        features = layers.Conv2D(num_filters * min(2 ** level, 8), 4, strides=2,
                                 padding="same", use_bias=level == 0,
                                 kernel_initializer=initializer(), name=f"encode{level}")(features)
        if level > 0:
            features = BatchNormalization(synchronized=True, name=f"encode{level}_bn")(features)
        features = layers.LeakyReLU(0.2, name=f"encode{level}_lrelu")(features)
    features = layers.Conv2D(int(bottleneck), 4, padding="valid", use_bias=False,
                             kernel_initializer=initializer(), name="bottleneck")(features)
    features = BatchNormalization(synchronized=True, name="bottleneck_bn")(features)
    features = layers.LeakyReLU(0.2, name="bottleneck_lrelu")(features)
    features = layers.Conv2DTranspose(num_filters * min(2 ** (levels - 1), 8), 4,
                                      padding="valid", use_bias=False,
                                      kernel_initializer=initializer(), name="expand")(features)
    for level in reversed(range(levels)):
        features = BatchNormalization(synchronized=True, name=f"decode{level}_bn")(features)
        features = layers.ReLU(name=f"decode{level}_relu")(features)
        last = level == 0
        features = layers.Conv2DTranspose(
            channels if last else num_filters * min(2 ** (level - 1), 8), 4, strides=2,
            padding="same", use_bias=last, kernel_initializer=initializer(),
            name="to_image" if last else f"decode{level}")(features)
    # tanh as in the paper, mapped to the [0, 1] images of this family.
    output = layers.Activation("tanh", name="tanh")(features)
    output = layers.Rescaling(0.5, offset=0.5, name="to_unit")(output)
    return keras.Model([image, valid], output, name=name)
