"""The denoising U-Net of DDPM (Ho et al. 2020, appendix B), small enough for a CPU.

Inputs: `noisy_images` `[N, H, W, C]`, `timesteps` int32 `[N]` and, for class-conditional
models, `labels` int32 `[N]` (label `num_classes` is the "no label" of classifier-free
guidance). Output: the network's prediction (eps or v, see `schedule.NoiseSchedule`), float32
`[N, H, W, C]`. Every op converts to TFLite builtins.
"""

import itertools
import math

import keras
from keras import layers, ops

from kerasgen.layers import PixelShuffle, PixelUnshuffle
from kerasgen.precision import FullPrecision
from kerasgen.models.inpainting.networks import layer_seed

# Group norm's most groups (the paper's network has 32, for 128+ channels).
MAX_GROUPS = 8


@keras.saving.register_keras_serializable(package="kerasgen")
class SinusoidalEmbedding(FullPrecision, layers.Layer):
    """The Transformer's sinusoidal position embedding of a timestep (Vaswani et al. 2017,
    section 3.5), as DDPM embeds t: `[sin(t w_i), cos(t w_i)]`, w_i = 10000^(-i / (d/2 - 1)).

    Args:
        dim: int. Embedding width (even).
    """

    def __init__(self, dim, **kwargs):
        super().__init__(**kwargs)
        if dim < 4 or dim % 2:
            raise ValueError(f"The timestep embedding width must be even and >= 4, got {dim}.")
        self.dim = int(dim)

    def call(self, timesteps):
        half = self.dim // 2
        frequencies = ops.exp(ops.arange(half, dtype="float32")
                              * (-math.log(10000.0) / (half - 1)))
        angles = ops.cast(ops.reshape(timesteps, [-1, 1]), "float32") * frequencies[None]
        return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.dim)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


def _seeded(seed):
    """A function giving each call a distinctly seeded Glorot-uniform initialiser (Keras'
    default), so that one seed fixes every weight."""
    counter = itertools.count()
    return lambda: keras.initializers.GlorotUniform(seed=layer_seed(seed, next(counter)))


def _groups(channels):
    """At most 8 groups of at least 4 channels (the paper: 32 groups of 4+): with one channel
    per group, group norm would cancel the timestep embedding added before it."""
    limit = max(1, min(MAX_GROUPS, channels // 4))
    return max(groups for groups in range(1, limit + 1) if channels % groups == 0)


def _residual_block(x, embedding, filters, dropout, init, seed, name):
    """GroupNorm-swish-conv, plus the projected embedding, GroupNorm-swish-dropout-conv."""
    skip = x
    h = layers.GroupNormalization(_groups(x.shape[-1]), name=f"{name}_norm1")(x)
    h = layers.Activation("swish", name=f"{name}_act1")(h)
    h = layers.Conv2D(filters, 3, padding="same", kernel_initializer=init(),
                      name=f"{name}_conv1")(h)
    projected = layers.Dense(filters, kernel_initializer=init(),
                             name=f"{name}_embedding")(embedding)
    h = layers.Add(name=f"{name}_add_embedding")([h, layers.Reshape((1, 1, filters))(projected)])
    h = layers.GroupNormalization(_groups(filters), name=f"{name}_norm2")(h)
    h = layers.Activation("swish", name=f"{name}_act2")(h)
    if dropout:
        h = layers.Dropout(dropout, seed=seed, name=f"{name}_dropout")(h)
    # Zero-initialised, so that every block starts as the identity (the paper's code does).
    h = layers.Conv2D(filters, 3, padding="same", kernel_initializer="zeros",
                      name=f"{name}_conv2")(h)
    if skip.shape[-1] != filters:
        skip = layers.Conv2D(filters, 1, kernel_initializer=init(), name=f"{name}_skip")(skip)
    return layers.Add(name=f"{name}_out")([skip, h])


def _attention_block(x, num_heads, init, name):
    """Self-attention over the H x W positions, residual (the paper's 16x16 attention)."""
    height, width, channels = x.shape[1:]
    h = layers.GroupNormalization(_groups(channels), name=f"{name}_norm")(x)
    h = layers.Reshape((height * width, channels), name=f"{name}_flatten")(h)
    h = layers.MultiHeadAttention(num_heads, channels // num_heads, output_shape=channels,
                                  kernel_initializer=init(), name=f"{name}_attention")(h, h)
    h = layers.Reshape((height, width, channels), name=f"{name}_unflatten")(h)
    return layers.Add(name=f"{name}_out")([x, h])


def build_unet(image_shape, num_filters: int = 32, depth: int = 2, num_res_blocks: int = 2,
               attention_levels: int = 1, num_heads: int = 1, dropout: float = 0.0,
               patch_size: int = 1, num_classes=None, seed=None, name="unet"):
    """The DDPM U-Net: a timestep embedding, residual blocks with group norm, self-attention
    at the lowest resolutions, skips from every down block to the up path.

    Args:
        image_shape: (int, int, int). Image (height, width, channels); height and width must
            divide by 2**depth.
        num_filters: int. Channels at full resolution; lower levels have twice as many (the
            paper's CIFAR-10 multipliers (1, 2, 2, 2), cut to `depth` + 1 levels).
            Defaults to 32.
        depth: int. Down-samplings (levels - 1). Defaults to 2 (28 -> 14 -> 7 on MNIST).
        num_res_blocks: int. Residual blocks per level on the way down (one more up).
            Defaults to 2 (the paper's).
        attention_levels: int. The lowest levels that have self-attention after each block
            (0: none). Defaults to 1.
        num_heads: int. Attention heads. Defaults to 1 (the paper's).
        dropout: float. Dropout in the residual blocks. Defaults to 0.
        patch_size: int. Pixels per side folded into channels before the first convolution
            (space-to-depth) and unfolded after the last, as patch-based diffusion networks
            do (U-ViT, DiT: https://arxiv.org/abs/2212.09748): the U-Net then runs at 1/p of
            the resolution, p^2 times fewer positions. Defaults to 1 (none).
        num_classes: int. Class-conditional: an embedding of `labels` (plus a "no label"
            entry, index `num_classes`) added to the timestep embedding. Defaults to None.
        seed: int. Seed of the dropout. Defaults to None.
        name: str. Defaults to `"unet"`.

    Reference: https://arxiv.org/abs/2006.11239 (appendix B),
    https://github.com/hojonathanho/diffusion
    """
    height, width, channels = (int(value) for value in image_shape)
    if depth < 0 or num_res_blocks < 1 or attention_levels < 0 or num_filters < 1:
        raise ValueError(f"depth and attention_levels must be >= 0, num_res_blocks and "
                         f"num_filters >= 1; got {depth}, {attention_levels}, "
                         f"{num_res_blocks}, {num_filters}.")
    if patch_size < 1:
        raise ValueError(f"patch_size must be at least 1, got {patch_size}.")
    multiple = patch_size * 2 ** depth
    if height % multiple or width % multiple:
        raise ValueError(
            f"Images of {height}x{width} cannot be cut into {patch_size}-pixel patches and "
            f"halved {depth} times; use a depth or patch size that divides them (--depth, "
            f"--patch-size), or resize (--image-size, e.g. 32).")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    widths = [num_filters * min(2 ** level, 2) for level in range(depth + 1)]
    if any(width_ % num_heads for width_ in widths):
        raise ValueError(f"num_heads ({num_heads}) must divide every level's channels {widths}.")
    attention_from = depth + 1 - attention_levels  # levels >= this have attention

    init = _seeded(seed)
    noisy = keras.Input((height, width, channels), name="noisy_images")
    timesteps = keras.Input((), dtype="int32", name="timesteps")
    inputs = [noisy, timesteps]
    embedding_dim = 4 * num_filters
    embedding = SinusoidalEmbedding(num_filters, name="timestep_embedding")(timesteps)
    embedding = layers.Dense(embedding_dim, activation="swish", kernel_initializer=init(),
                             name="embedding_dense1")(embedding)
    embedding = layers.Dense(embedding_dim, kernel_initializer=init(),
                             name="embedding_dense2")(embedding)
    if num_classes:
        labels = keras.Input((), dtype="int32", name="labels")
        inputs.append(labels)
        label_embedding = layers.Embedding(
            num_classes + 1, embedding_dim, name="label_embedding",
            embeddings_initializer=keras.initializers.RandomUniform(
                -0.05, 0.05, seed=layer_seed(seed, 999)))(labels)
        embedding = layers.Add(name="embedding_with_label")([embedding, label_embedding])
    embedding = layers.Activation("swish", name="embedding_act")(embedding)

    x = noisy
    if patch_size > 1:
        x = PixelUnshuffle(patch_size, name="patchify")(x)
    x = layers.Conv2D(num_filters, 3, padding="same", kernel_initializer=init(),
                      name="stem")(x)
    skips = [x]
    for level, filters in enumerate(widths):
        for block in range(num_res_blocks):
            x = _residual_block(x, embedding, filters, dropout, init, seed,
                                f"down{level}_{block}")
            if level >= attention_from:
                x = _attention_block(x, num_heads, init, f"down{level}_{block}_attention")
            skips.append(x)
        if level < depth:
            x = layers.Conv2D(filters, 3, strides=2, padding="same", kernel_initializer=init(),
                              name=f"down{level}")(x)
            skips.append(x)
    x = _residual_block(x, embedding, widths[-1], dropout, init, seed, "middle0")
    x = _attention_block(x, num_heads, init, "middle_attention")
    x = _residual_block(x, embedding, widths[-1], dropout, init, seed, "middle1")
    for level in reversed(range(depth + 1)):
        filters = widths[level]
        for block in range(num_res_blocks + 1):
            x = layers.Concatenate(name=f"up{level}_{block}_concat")([x, skips.pop()])
            x = _residual_block(x, embedding, filters, dropout, init, seed, f"up{level}_{block}")
            if level >= attention_from:
                x = _attention_block(x, num_heads, init, f"up{level}_{block}_attention")
        if level > 0:
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(x)
            x = layers.Conv2D(filters, 3, padding="same", kernel_initializer=init(),
                              name=f"up{level}_conv")(x)
    x = layers.GroupNormalization(_groups(num_filters), name="out_norm")(x)
    x = layers.Activation("swish", name="out_act")(x)
    prediction = layers.Conv2D(channels * patch_size ** 2, 3, padding="same",
                               kernel_initializer="zeros", dtype="float32", name="prediction")(x)
    if patch_size > 1:
        prediction = PixelShuffle(patch_size, dtype="float32", name="unpatchify")(prediction)
    return keras.Model(inputs, prediction, name=name)
