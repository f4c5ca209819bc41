"""Reusable layers."""

import keras
import tensorflow as tf

from kerasgen.precision import FullPrecision


class WholeImage:
    """Marks a layer whose output depends on statistics of the whole image (a global curve):
    a network holding one is never cut into tiles, which would each get their own result
    (`Restorer.apply`)."""


@keras.saving.register_keras_serializable(package="kerasgen")
class LabelEmbedding(keras.layers.Layer):
    """A learned vector per integer label: `[batch]` -> `[batch, output_dim]`.

    Training multiplies a one-hot by the matrix, so the gradient is a plain dense tensor that
    tf.distribute all-reduces like any other weight's. Inference gathers rows, which TFLite
    runs as a builtin GATHER (int8 too; a one-hot matmul lost most of its accuracy in int8
    here) and which rejects labels outside `[0, num_classes)`.

    Args:
        num_classes: int. Number of labels.
        output_dim: int. Size of each vector.
        seed: int. Seed of the N(0, 1) initialiser. Defaults to None.
    """

    def __init__(self, num_classes, output_dim, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.output_dim = output_dim
        self.seed = seed

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            (self.num_classes, self.output_dim), keras.initializers.RandomNormal(seed=self.seed),
            name="embeddings")

    def call(self, labels, training=None):
        labels = keras.ops.cast(labels, "int32")
        if training:
            one_hot = keras.ops.one_hot(labels, self.num_classes, dtype=self.compute_dtype)
            return keras.ops.matmul(one_hot, self.embeddings)
        return keras.ops.take(self.embeddings, labels, axis=0)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "output_dim": self.output_dim, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasgen")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel rearrangement `[N, H, W, C * r^2] -> [N, H * r, W * r, C]` (depth_to_space).

    Args:
        block_size: int. The factor r.
    """

    def __init__(self, block_size, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.block_size)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="kerasgen")
class PixelUnshuffle(PixelShuffle):
    """The inverse of `PixelShuffle`: `[N, H, W, C] -> [N, H / r, W / r, C * r^2]`."""

    def call(self, inputs):
        return tf.nn.space_to_depth(inputs, self.block_size)


@keras.saving.register_keras_serializable(package="kerasgen")
class NoiseLevelMap(keras.layers.Layer):
    """One noise level per image (`[N, 1]`) broadcast to a `[N, H, W, 1]` map like `features`."""

    def call(self, features, sigma):
        # ones_like keeps the static channel count, which TFLite's CONV_2D needs.
        return tf.ones_like(features[..., :1]) * sigma[:, None, None, :]


@keras.saving.register_keras_serializable(package="kerasgen")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by reflecting the border (TFLite: builtin MIRROR_PAD).

    CycleGAN pads by reflection before its 7x7 and residual convolutions, which avoids the
    dark frame that zero padding draws around translated images.

    Args:
        padding: int. Pixels added on each side.
    """

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs):
        pad = self.padding
        return tf.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        grow = lambda size: None if size is None else size + 2 * self.padding  # noqa: E731
        return (batch, grow(height), grow(width), channels)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="kerasgen")
class BatchNormalization(keras.layers.BatchNormalization):
    """Keras' `BatchNormalization` computed by TensorFlow's fused kernel where it can be.

    Keras 3 normalises with separate moment, subtract, multiply and tile ops; on one device
    TensorFlow's `FusedBatchNormV3` does the same in one pass (forward and gradient). Profiled
    in DnCNN training, the separate ops took 23 % of the op time (`benchmarks/bench_speed.py
    --profile dncnn`). Same arguments, weights and config as Keras' layer; with
    `synchronized=True` under a multi-replica `tf.distribute` strategy, with a mask, renorm or
    an axis other than the last of 4-d inputs, Keras' own computation runs. The moving
    statistics are updated as Keras updates them (the biased batch variance: the fused
    kernel's Bessel correction is undone), so one device and N replicas train alike.
    """

    def _fusable(self, inputs, mask):
        axis = self.axis if isinstance(self.axis, int) else None
        return (mask is None and not self.renorm and len(inputs.shape) == 4
                and axis in (-1, 3)
                and not (self.synchronized
                         and tf.distribute.get_strategy().num_replicas_in_sync > 1))

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels])
        beta = self.beta if self.center else tf.zeros([channels])
        gamma, beta = tf.cast(gamma, tf.float32), tf.cast(beta, tf.float32)
        # The kernel takes float32, float16 or bfloat16 images with float32 statistics.
        if training and self.trainable:
            outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, epsilon=self.epsilon, is_training=True)
            count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
            variance = variance * (count - 1.0) / count  # the kernel's is unbiased
            self.moving_mean.assign(self.moving_mean * self.momentum
                                    + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum
                                        + variance * (1.0 - self.momentum))
        else:
            outputs, _, _ = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                is_training=False)
        return tf.cast(outputs, self.compute_dtype)


def batch_norms(model):
    """The `keras.layers.BatchNormalization` layers in `model`, at any depth."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]


def recompute_batch_norm_statistics(model, forward, batches):
    """Set the moving statistics of every batch norm in `model` to the population statistics
    of `batches` under the current weights ("precise BN": Wu & Johnson 2021, section 3,
    https://arxiv.org/abs/2105.07576).

    Training normalises with each batch's own statistics, inference with moving averages
    (momentum 0.99: about the last 100 batches), which earlier weights produced: at a high
    learning rate they lag the weights, and inference then runs a network that training
    never saw. FFDNet after 10,500 steps at 1e-3 read 27.26 dB on a validation set (Set14 in
    grey, sigma 25) with the moving averages and 29.69 with these statistics (DnCNN-S:
    30.06 and 30.31).

    Args:
        model: a `keras.Model` (or layer) holding the batch norms, at any depth.
        forward: callable. `forward(batch)` runs the network in training mode on one batch
            (no gradients are applied).
        batches: iterable of batches for `forward`.

    Returns:
        int: the number of batches used; 0 (and nothing changed) without batch norms.
    """
    norms = batch_norms(model)
    if not norms:
        return 0
    momenta = [norm.momentum for norm in norms]
    means = [0.0] * len(norms)
    squares = [0.0] * len(norms)
    count = 0
    try:
        for norm in norms:
            norm.momentum = 0.0  # each training-mode call then stores its batch's statistics
        for batch in batches:
            forward(batch)
            count += 1
            for index, norm in enumerate(norms):
                mean = norm.moving_mean.numpy().astype("float64")
                means[index] = means[index] + mean
                squares[index] = squares[index] + norm.moving_variance.numpy() + mean ** 2
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    if not count:
        raise ValueError("recompute_batch_norm_statistics got no batches.")
    for norm, total, total_square in zip(norms, means, squares):
        mean = total / count
        # The population variance: the batches' mean variance plus their means' spread.
        norm.moving_mean.assign(mean.astype("float32"))
        norm.moving_variance.assign((total_square / count - mean ** 2).clip(0).astype("float32"))
    return count


@keras.saving.register_keras_serializable(package="kerasgen")
class InstanceNormalization(FullPrecision, keras.layers.Layer):
    """Normalises every channel of every image over its height and width.

    Ulyanov et al. 2016 (https://arxiv.org/abs/1607.08022). Statistics are per example, so
    training and inference agree at any batch size and on any number of replicas.

    Args:
        epsilon: float. Added to the variance. Defaults to 1e-5 (PyTorch's).
        affine: bool. Learn a per-channel scale and offset. Defaults to False (as the
            CycleGAN/pix2pix reference implementation's `InstanceNorm2d`).
    """

    def __init__(self, epsilon=1e-5, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.affine = bool(affine)

    def build(self, input_shape):
        if self.affine:
            self.gamma = self.add_weight((input_shape[-1],), "ones", name="gamma")
            self.beta = self.add_weight((input_shape[-1],), "zeros", name="beta")

    def call(self, inputs):
        mean, variance = tf.nn.moments(inputs, axes=[1, 2], keepdims=True)
        outputs = (inputs - mean) * tf.math.rsqrt(variance + self.epsilon)
        if self.affine:
            outputs = outputs * self.gamma + self.beta
        return outputs

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "affine": self.affine}


@keras.saving.register_keras_serializable(package="kerasgen")
class ImagePool(FullPrecision, keras.layers.Layer):
    """A history of generated images that a discriminator also learns from.

    Shrivastava et al. 2017 (https://arxiv.org/abs/1612.07828, section 2.3), as CycleGAN uses
    it (section 4): until the pool is full each image is stored and returned; then, with
    probability 1/2, a random stored image is returned and replaced by the new one, else the
    new one is returned. The pool is a (non-trainable) weight, so `.keras` files and resumed
    runs keep it.

    Under `tf.distribute` every replica gathers the global batch and makes the same draws, so
    all replicas hold the same pool; each returns the rows of its own share of the batch.

    Args:
        pool_size: int. Stored images; 0 returns the inputs unchanged. Defaults to 50.
        image_shape: (int, int, int). Shape of the stored images.
    """

    def __init__(self, pool_size=50, image_shape=None, **kwargs):
        super().__init__(**kwargs)
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {pool_size}.")
        self.pool_size = int(pool_size)
        self.image_shape = tuple(int(value) for value in image_shape)
        # Written identically by every replica, so the first replica's value is the value.
        self.images = self.add_weight(
            (self.pool_size, *self.image_shape), "zeros", trainable=False, name="images",
            aggregation="only_first_replica")
        self.count = self.add_weight((), "zeros", dtype="int32", trainable=False, name="count",
                                     aggregation="only_first_replica")
        self.built = True

    def query(self, images, seed_generator):
        """Images for the discriminator in place of `images` (this replica's rows)."""
        if self.pool_size == 0:
            return images
        from kerasgen.distribute import ReplicaBatch

        batch = ReplicaBatch(tf.shape(images)[0])
        context = tf.distribute.get_replica_context()
        everyone = context.all_gather(images, axis=0) if context is not None else images
        count = tf.shape(everyone)[0]
        use_history = keras.random.uniform((count,), seed=seed_generator) < 0.5
        slots = keras.random.randint((count,), 0, self.pool_size, seed=seed_generator)

        def step(index, pool, stored, outputs):
            image = everyone[index]
            filling = stored < self.pool_size
            swapping = tf.logical_and(tf.logical_not(filling), use_history[index])
            slot = tf.where(filling, stored, slots[index])
            previous = pool[slot]
            kept = tf.where(tf.logical_or(filling, swapping), image, previous)
            pool = tf.tensor_scatter_nd_update(pool, [[slot]], kept[None])
            outputs = outputs.write(index, tf.where(swapping, previous, image))
            return index + 1, pool, stored + tf.cast(filling, tf.int32), outputs

        _, pool, stored, outputs = tf.while_loop(
            lambda index, *_: index < count, step,
            (tf.constant(0), tf.convert_to_tensor(self.images), tf.convert_to_tensor(self.count),
             tf.TensorArray(images.dtype, size=count, element_shape=self.image_shape)))
        self.images.assign(pool)
        self.count.assign(stored)
        return batch.slice(outputs.stack())

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size,
                "image_shape": list(self.image_shape)}


# --- recurrent building blocks (the recurrent denoiser's stages, the ConvLSTM forecaster) -----


@keras.saving.register_keras_serializable(package="kerasgen")
class ZeroState(keras.layers.Layer):
    """Zeros `[N, H, W, filters]` shaped like `inputs`: the ConvLSTM's first state."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)

    def call(self, inputs):
        shape = keras.ops.shape(inputs)
        return keras.ops.zeros((shape[0], shape[1], shape[2], self.filters), inputs.dtype)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def lstm_update(gates, c):
    """`[h', c']` of an LSTM from its pre-activation gates `[..., 4 * filters]` (input, forget,
    candidate, output) and its cell state `c`: c' = sigma(f) c + sigma(i) tanh(g), h' =
    sigma(o) tanh(c')."""
    input_gate, forget_gate, candidate, output_gate = keras.ops.split(gates, 4, axis=-1)
    c = keras.ops.sigmoid(forget_gate) * c + keras.ops.sigmoid(input_gate) * keras.ops.tanh(
        candidate)
    return [keras.ops.sigmoid(output_gate) * keras.ops.tanh(c), c]


@keras.saving.register_keras_serializable(package="kerasgen")
class ConvLSTMCell(keras.layers.Layer):
    """One step of a convolutional LSTM (Shi et al. 2015, https://arxiv.org/abs/1506.04214,
    eq. 3 without the peephole terms): `[x, h, c] -> [h', c']`, the four gates from one
    `kernel_size` convolution of `concat(x, h)`. Calling one cell at every step shares its
    weights; the returned state is what the next step gets.

    Args:
        filters: int. Channels of h and c.
        kernel_size: int. Side of the gates' convolution. Defaults to 3.
        kernel_initializer: the gates' initializer. Defaults to Glorot uniform.
    """

    def __init__(self, filters, kernel_size=3, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        # The cell's policy, so that a reloaded bf16 cell computes its gates in bf16 too (a
        # sublayer's policy is not saved; without it the gates came back float32 and c bf16).
        self.gates = keras.layers.Conv2D(4 * self.filters, self.kernel_size, padding="same",
                                         kernel_initializer=kernel_initializer, name="gates",
                                         dtype=self.dtype_policy)

    def build(self, input_shape):
        x_shape, h_shape, _ = input_shape
        self.gates.build((*x_shape[:3], x_shape[-1] + h_shape[-1]))

    def call(self, inputs):
        x, h, c = inputs
        return lstm_update(self.gates(keras.ops.concatenate([x, h], axis=-1)), c)

    def compute_output_shape(self, input_shape):
        state = (*input_shape[0][:3], self.filters)
        return [state, state]

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package="kerasgen")
class FrameAt(keras.layers.Layer):
    """Frame `index` of a sequence: `[N, T, H, W, C] -> [N, H, W, C]` (TFLite: STRIDED_SLICE)."""

    def __init__(self, index, **kwargs):
        super().__init__(**kwargs)
        self.index = int(index)

    def call(self, sequences):
        return sequences[:, self.index]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "index": self.index}


@keras.saving.register_keras_serializable(package="kerasgen")
class SplitAxis(keras.layers.Layer):
    """`[N, ..., S, ...] -> S` tensors of size 1 along `axis` (a recurrence's steps; TFLite:
    SPLIT). One split, not a crop per step: each crop's gradient is a whole map of zeros."""

    def __init__(self, axis, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def call(self, inputs):
        return keras.ops.split(inputs, inputs.shape[self.axis], axis=self.axis)

    def compute_output_shape(self, input_shape):
        step = list(input_shape)
        step[self.axis] = 1
        return [tuple(step)] * input_shape[self.axis]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@keras.saving.register_keras_serializable(package="kerasgen")
class StackFrames(keras.layers.Layer):
    """Frames `[N, H, W, C]` x T -> a sequence `[N, T, H, W, C]` (TFLite: PACK)."""

    def call(self, frames):
        return keras.ops.stack(frames, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(input_shape), *input_shape[0][1:])
