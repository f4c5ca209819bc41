"""Inpainting networks: partial convolutions and the partial-convolution U-Net.

Liu et al. 2018, "Image Inpainting for Irregular Holes Using Partial Convolutions"
(arXiv:1804.07723). A partial convolution sees only the known pixels of its window and
rescales by how many there were; its output mask marks every position whose window held at
least one known pixel, so holes shrink layer by layer.
"""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="kerasgen")
class PartialConv2D(layers.Layer):
    """`[features, valid]` -> `[features', valid']`, Liu et al. 2018, eq. (1)-(2).

    `valid` is one channel (1 = known pixel) shared by every feature channel. With `W` the
    kernel, `X` the window's features, `M` its valid pixels and `k x k` its size:

        x' = W^T (X * M) * (k * k / sum(M)) + b   where sum(M) > 0, else 0
        m' = 1                                     where sum(M) > 0, else 0

    Zero padding counts as missing, so border windows are rescaled too (the paper's
    "partial convolution based padding"). Builtin TFLite ops only.

    Args:
        filters: int. Output channels.
        kernel_size: int. Square kernel side.
        strides: int. Defaults to 1.
        use_bias: bool. Defaults to True.
        kernel_initializer: Defaults to "he_normal" (the paper's ReLU network).
    """

    def __init__(self, filters, kernel_size, strides=1, use_bias=True,
                 kernel_initializer="he_normal", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = input_shape[0][-1]
        self.kernel = self.add_weight(
            name="kernel", shape=(self.kernel_size, self.kernel_size, channels, self.filters),
            initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") \
            if self.use_bias else None

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

        def reduced(size):
            return None if size is None else -(-size // self.strides)

        spatial = [reduced(size) for size in features[1:3]]
        return (features[0], *spatial, self.filters), (valid[0], *spatial, 1)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer)}


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
    initializer = keras.initializers.HeNormal(seed=seed)
    kernels = [7, 5, 5] + [3] * max(0, depth - 3)

    features, mask = image, valid
    skips = [(features, mask)]
    for level in range(depth):
        features, mask = PartialConv2D(num_filters * min(2 ** level, 8), kernels[level],
                                       strides=2, kernel_initializer=initializer,
                                       name=f"encode{level}")([features, mask])
        if level > 0:
            # Synchronised: statistics over the global batch under tf.distribute.
            features = layers.BatchNormalization(synchronized=True,
                                                 name=f"encode{level}_bn")(features)
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
                                       3, kernel_initializer=initializer,
                                       name="to_image" if last else f"decode{level}")(
            [features, mask])
        if not last:
            features = layers.BatchNormalization(synchronized=True,
                                                 name=f"decode{level}_bn")(features)
            features = layers.LeakyReLU(0.2, name=f"decode{level}_lrelu")(features)
    return keras.Model([image, valid], features, name=name)
