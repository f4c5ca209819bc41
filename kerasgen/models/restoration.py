"""CNN restoration: DnCNN and FFDNet denoisers, ESPCN / FSRCNN / EDSR super-resolution.

Networks map degraded float images in [0, 1] of any height and width to restored ones. The
`Restorer` wrapper trains them with `fit` on clean patches, degrading each batch on the fly
(Gaussian noise of a fixed or random sigma, or MATLAB-style bicubic down-scaling) with its own
resumable random stream, and restores uint8 images of any size (`restore`, the `restore`
serving signature, TFLite with dynamic input shapes).

Example:
    >>> model = build_restorer("dncnn", sigma=25.0)
    >>> model.compile()
    >>> model.fit(patch_dataset(load_images("train400", channels=1), 40, 64), steps_per_epoch=500)
    >>> clean = model.restore(noisy_uint8)

References: DnCNN https://arxiv.org/abs/1608.03981, FFDNet https://arxiv.org/abs/1710.04026,
ESPCN https://arxiv.org/abs/1609.05158, FSRCNN https://arxiv.org/abs/1608.00367,
EDSR https://arxiv.org/abs/1707.02921.
"""

import functools

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from kerasgen.callbacks import StepDecay
from kerasgen.data import restoration as data
from kerasgen.data import map_image_files, pad_to_multiple, unit_to_uint8
from kerasgen.distribute import ReplicaBatch
from kerasgen.export import ServingSpec
from kerasgen.layers import NoiseLevelMap, PixelShuffle, PixelUnshuffle
from kerasgen.models.base import SeededModel, SingleOptimizer
from kerasgen.models.preset import ModelPreset

TASKS = ("denoise", "super_resolution")
COLORS = ("grey", "rgb", "y")  # "y": the network sees the BT.601 luma of RGB images
LOSSES = ("l2", "l1")
MAX_SIGMA = 75.0
LEARNING_RATE = 1e-3


def _he(seed, index):
    return keras.initializers.HeNormal(None if seed is None else seed + index)


def _network_channels(color):
    if color not in COLORS:
        raise ValueError(f"Unknown color {color!r}; valid: {list(COLORS)}.")
    return 3 if color == "rgb" else 1


# --- networks --------------------------------------------------------------------------------

def build_dncnn(channels=1, depth=17, num_filters=64, seed=None, name="dncnn"):
    """DnCNN: conv-ReLU, (depth - 2) x conv-BN-ReLU, conv; predicts the noise (residual).

    Output = input - predicted noise (residual learning, section III-B of the paper).
    """
    noisy = keras.Input((None, None, channels), name="images")
    x = layers.Conv2D(num_filters, 3, padding="same", activation="relu",
                      kernel_initializer=_he(seed, 0), name="conv0")(noisy)
    for index in range(1, depth - 1):
        x = layers.Conv2D(num_filters, 3, padding="same", use_bias=False,
                          kernel_initializer=_he(seed, index), name=f"conv{index}")(x)
        # synchronized: batch statistics over the global batch under tf.distribute.
        x = layers.BatchNormalization(synchronized=True, name=f"bn{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(x)
    # Zero-initialised, so training starts from the identity (output = noisy input) instead
    # of subtracting a large random "noise" estimate.
    noise = layers.Conv2D(channels, 3, padding="same", kernel_initializer="zeros",
                          name="noise")(x)
    return keras.Model(noisy, layers.Subtract(name="residual")([noisy, noise]), name=name)


def build_ffdnet(channels=1, depth=15, num_filters=64, seed=None, name="ffdnet"):
    """FFDNet: pixel-unshuffle by 2, concatenate a noise-level map, conv body, pixel-shuffle.

    Takes `[images, sigma]` with sigma = noise level / 255 per image, so one network serves a
    range of levels (Zhang et al. 2018, section III-A). Height and width must be even.
    """
    noisy = keras.Input((None, None, channels), name="images")
    sigma = keras.Input((1,), name="sigma")
    x = PixelUnshuffle(2, name="unshuffle")(noisy)
    x = layers.Concatenate(name="with_noise_map")([x, NoiseLevelMap(name="noise_map")(x, sigma)])
    for index in range(depth - 1):
        x = layers.Conv2D(num_filters, 3, padding="same", use_bias=False,
                          kernel_initializer=_he(seed, index), name=f"conv{index}")(x)
        if index:
            x = layers.BatchNormalization(synchronized=True, name=f"bn{index}")(x)
        x = layers.ReLU(name=f"relu{index}")(x)
    x = layers.Conv2D(4 * channels, 3, padding="same", kernel_initializer=_he(seed, depth),
                      name="to_subimages")(x)
    return keras.Model([noisy, sigma], PixelShuffle(2, name="shuffle")(x), name=name)


def build_espcn(scale=3, channels=1, num_filters=(64, 32), seed=None, name="espcn"):
    """ESPCN: two tanh convolutions on the LR image, then a sub-pixel convolution."""
    data.check_scale(scale)
    low = keras.Input((None, None, channels), name="images")
    x = layers.Conv2D(num_filters[0], 5, padding="same", activation="tanh",
                      kernel_initializer=keras.initializers.GlorotUniform(seed), name="conv1")(low)
    x = layers.Conv2D(num_filters[1], 3, padding="same", activation="tanh",
                      kernel_initializer=keras.initializers.GlorotUniform(
                          None if seed is None else seed + 1), name="conv2")(x)
    x = layers.Conv2D(channels * scale**2, 3, padding="same",
                      kernel_initializer=keras.initializers.GlorotUniform(
                          None if seed is None else seed + 2), name="subpixel")(x)
    return keras.Model(low, PixelShuffle(scale, name="shuffle")(x), name=name)


def build_fsrcnn(scale=3, channels=1, d=56, s=12, m=4, seed=None, name="fsrcnn"):
    """FSRCNN(d, s, m): feature extraction, shrinking, m mappings, expanding, deconvolution."""
    data.check_scale(scale)

    def conv(x, filters, size, index, label):
        x = layers.Conv2D(filters, size, padding="same", kernel_initializer=_he(seed, index),
                          name=label)(x)
        return layers.PReLU(shared_axes=[1, 2], name=f"{label}_prelu")(x)

    low = keras.Input((None, None, channels), name="images")
    x = conv(low, d, 5, 0, "extract")
    x = conv(x, s, 1, 1, "shrink")
    for index in range(m):
        x = conv(x, s, 3, 2 + index, f"map{index}")
    x = conv(x, d, 1, 2 + m, "expand")
    # The paper's 9x9 deconvolution, initialised N(0, 0.001) (section 3.2).
    high = layers.Conv2DTranspose(
        channels, 9, strides=scale, padding="same", name="deconv",
        kernel_initializer=keras.initializers.RandomNormal(
            stddev=1e-3, seed=None if seed is None else seed + 3 + m))(x)
    return keras.Model(low, high, name=name)


def build_edsr(scale=3, channels=3, num_blocks=16, num_filters=64, residual_scale=1.0,
               seed=None, name="edsr"):
    """EDSR-baseline: residual blocks without batch norm, global skip, sub-pixel upsampler."""
    data.check_scale(scale)
    counter = iter(range(10_000))

    def conv(x, filters, label, activation=None):
        return layers.Conv2D(filters, 3, padding="same", activation=activation,
                             kernel_initializer=_he(seed, next(counter)), name=label)(x)

    low = keras.Input((None, None, channels), name="images")
    # Centre the data (the paper subtracts the DIV2K mean).
    head = conv(layers.Rescaling(1.0, offset=-0.5, name="centre")(low), num_filters, "head")
    x = head
    for block in range(num_blocks):
        residual = conv(conv(x, num_filters, f"block{block}_conv1", "relu"), num_filters,
                        f"block{block}_conv2")
        if residual_scale != 1.0:
            residual = layers.Rescaling(residual_scale, name=f"block{block}_scale")(residual)
        x = layers.Add(name=f"block{block}_add")([x, residual])
    x = layers.Add(name="global_skip")([head, conv(x, num_filters, "body_end")])
    steps = [2, 2] if scale == 4 else [scale]
    for index, step in enumerate(steps):
        x = PixelShuffle(step, name=f"shuffle{index}")(
            conv(x, num_filters * step**2, f"upsample{index}"))
    out = conv(x, channels, "tail")
    return keras.Model(low, layers.Rescaling(1.0, offset=0.5, name="uncentre")(out), name=name)


# Architecture name -> (builder, task, receptive field in input pixels as f(kwargs), multiple).
ARCHITECTURES = {
    "dncnn": (build_dncnn, "denoise", lambda depth=17, **_: 2 * depth + 1, 1),
    "ffdnet": (build_ffdnet, "denoise", lambda depth=15, **_: 2 * (2 * depth + 1), 2),
    "espcn": (build_espcn, "super_resolution", lambda **_: 9, 1),
    "fsrcnn": (build_fsrcnn, "super_resolution", lambda m=4, **_: 5 + 2 * m + 4, 1),
    "edsr": (build_edsr, "super_resolution",
             lambda num_blocks=16, **_: 2 * (2 * num_blocks + 3) + 1, 1),
}


# --- the training wrapper --------------------------------------------------------------------

@keras.saving.register_keras_serializable(package="kerasgen")
class Restorer(SingleOptimizer, SeededModel):
    """Trains a restoration network with `fit` on clean patches degraded on the fly.

    `fit` data: clean float images in [0, 1] (`patch_dataset`), RGB for `color="y"`; or
    `(degraded, clean)` pairs for real degradations (noise-level models: pass `sigma=`
    fixed).

    Args:
        network: `keras.Model`. Degraded float images in [0, 1] (and, if it has two inputs,
            sigma / 255 per image) -> restored images.
        task: str. `"denoise"` or `"super_resolution"`.
        scale: int. SR factor (2, 3, 4); 1 for denoising.
        sigma: float. Training noise level in grey levels of 255, fixed. Defaults to None.
        sigma_range: (float, float). Draw a level uniformly from this range per patch
            (blind and noise-level models). Defaults to None.
        color: str. `"grey"`, `"rgb"`, or `"y"` (the network restores the BT.601 luma of RGB
            images; the SR protocol). Defaults to `"grey"`.
        loss: str. `"l2"` (DnCNN, FFDNet, ESPCN, FSRCNN) or `"l1"` (EDSR). Defaults to "l2".
        min_size: int. Smallest input side: the network's receptive field. Defaults to 1.
        size_multiple: int. Inputs are reflect-padded to a multiple of this. Defaults to 1.
        seed: int. Seed of the noise stream. Defaults to None.
    """

    default_learning_rate = LEARNING_RATE  # DnCNN, EDSR

    def __init__(self, network, task="denoise", scale=1, sigma=None, sigma_range=None,
                 color="grey", loss="l2", min_size=1, size_multiple=1, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if task not in TASKS:
            raise ValueError(f"Unknown task {task!r}; valid: {list(TASKS)}.")
        if loss not in LOSSES:
            raise ValueError(f"Unknown loss {loss!r}; valid: {list(LOSSES)}.")
        _network_channels(color)
        if task == "super_resolution":
            data.check_scale(scale)
        elif scale != 1:
            raise ValueError(f"Denoising keeps the size: scale must be 1, got {scale}.")
        if task == "denoise" and (sigma is None) == (sigma_range is None):
            raise ValueError("A denoiser needs exactly one of sigma= (fixed) or sigma_range=.")
        levels = [sigma] if sigma is not None else list(sigma_range or [])
        if any(not 0.0 <= float(level) <= MAX_SIGMA for level in levels) or (
                sigma_range is not None and sigma_range[0] > sigma_range[1]):
            raise ValueError(f"Noise levels must lie in [0, {MAX_SIGMA:g}], got sigma={sigma}, "
                             f"sigma_range={sigma_range}.")
        self.network = network
        self.task = task
        self.scale = int(scale)
        self.sigma = None if sigma is None else float(sigma)
        self.sigma_range = None if sigma_range is None else tuple(float(v) for v in sigma_range)
        self.color = color
        self.loss = loss
        self.min_size = int(min_size)
        self.size_multiple = int(size_multiple)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")
        self.built = True
        if self.network.inputs[0].shape[-1] != _network_channels(color):
            raise ValueError(f"color={color!r} needs a {_network_channels(color)}-channel "
                             f"network, got {self.network.inputs[0].shape[-1]} channels.")

    @property
    def takes_sigma(self):
        """Whether the network takes the noise level as an input (FFDNet)."""
        return len(self.network.inputs) == 2

    @property
    def image_channels(self):
        """Channels of the images the model restores (RGB for Y models)."""
        return 3 if self.color in ("rgb", "y") else 1

    @property
    def metrics(self):
        return [self.loss_tracker, self.psnr_tracker]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    # --- degradation and the objective ------------------------------------------------------

    def to_network_color(self, images):
        """Float images in [0, 1] in the network's colour space (BT.601 luma for "y")."""
        if self.color == "y":
            return data.rgb_to_ycbcr(images)[..., :1]
        return images

    def check_sigma(self, sigma):
        """The noise level the network is run at; None for fixed and blind models."""
        if self.task != "denoise":
            if sigma is not None:
                raise ValueError("sigma applies to denoisers; this is a super-resolution model.")
            return None
        if sigma is not None and not 0.0 <= float(sigma) <= MAX_SIGMA:
            raise ValueError(f"sigma={sigma} is out of range; noise levels lie in "
                             f"[0, {MAX_SIGMA:g}] (of 255).")
        if self.sigma is not None:
            if sigma is not None and float(sigma) != self.sigma:
                raise ValueError(
                    f"This denoiser was trained for sigma={self.sigma:g} only; use a blind or "
                    "noise-level model (dncnn_blind, ffdnet) for other levels.")
            return self.sigma if self.takes_sigma else None
        low, high = self.sigma_range
        if sigma is not None and not low <= float(sigma) <= high:
            raise ValueError(f"sigma={sigma} is outside the range [{low:g}, {high:g}] this model "
                             "was trained on.")
        if self.takes_sigma and sigma is None:
            raise ValueError("This model takes the noise level as an input: pass sigma= "
                             f"(CLI: --sigma N, in [{low:g}, {high:g}]).")
        return None if sigma is None or not self.takes_sigma else float(sigma)

    def _network_inputs(self, images, sigma_levels):
        if not self.takes_sigma:
            return images
        return [images, tf.reshape(tf.cast(sigma_levels, tf.float32), [-1, 1]) / 255.0]

    def degrade(self, clean, batch):
        """`(network inputs, targets)` for clean float images in [0, 1]."""
        targets = self.to_network_color(clean)
        if self.task == "super_resolution":
            if targets.shape[1] is not None and (targets.shape[1] % self.scale
                                                 or targets.shape[2] % self.scale):
                raise ValueError(f"Training patches of {targets.shape[1]}x{targets.shape[2]} "
                                 f"are not multiples of the scale {self.scale}.")
            # 1. LR = MATLAB-style bicubic down-scaling of the HR patch (SRCNN protocol).
            return data.bicubic_downscale(targets, self.scale), targets
        if self.sigma is not None:
            levels = tf.fill([tf.shape(targets)[0]], self.sigma)
        else:
            # 1. Blind training: one sigma per patch, uniform in the range (DnCNN-B, FFDNet).
            low, high = self.sigma_range
            levels = batch.slice(keras.random.uniform(
                (batch.global_batch_size,), low, high, seed=self.seed_generator))
        # 2. AWGN drawn for the global batch, sliced per replica; not clipped (KAIR protocol).
        shape = tf.concat([[batch.global_batch_size], tf.shape(targets)[1:]], axis=0)
        noise = batch.slice(keras.random.normal(shape, seed=self.seed_generator))
        noisy = targets + noise * tf.reshape(levels, [-1, 1, 1, 1]) / 255.0
        return self._network_inputs(noisy, levels), targets

    def _unpack(self, data_batch, batch):
        if isinstance(data_batch, (tuple, list)):
            if len(data_batch) != 2:
                raise ValueError("fit takes clean images, or (degraded, clean) pairs.")
            degraded, clean = (tf.cast(part, tf.float32) for part in data_batch)
            if self.takes_sigma:
                if self.sigma is None:
                    raise ValueError("Training a noise-level model on (noisy, clean) pairs needs "
                                     "the pairs' level as sigma= in the model.")
                levels = tf.fill([tf.shape(degraded)[0]], self.sigma)
                return self._network_inputs(self.to_network_color(degraded), levels), \
                    self.to_network_color(clean)
            return self.to_network_color(degraded), self.to_network_color(clean)
        return self.degrade(tf.cast(data_batch, tf.float32), batch)

    def _step(self, data_batch, training):
        batch = ReplicaBatch(tf.shape(tf.nest.flatten(data_batch)[0])[0])
        inputs, targets = self._unpack(data_batch, batch)
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            # 3. Restore, and the per-image loss: mean squared (or absolute) error.
            restored = self.network(inputs, training=training)
            error = restored - targets
            per_image = tf.reduce_mean(tf.square(error) if self.loss == "l2" else tf.abs(error),
                                       axis=[1, 2, 3])
            mean_loss = batch.mean(per_image)
        if training:
            gradients = tape.gradient(mean_loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        # 4. Per-image trackers (SUM-on-read gives global means); PSNR of the clamped output.
        mse = tf.reduce_mean(tf.square(tf.clip_by_value(restored, 0.0, 1.0) - targets),
                             axis=[1, 2, 3])
        self.loss_tracker.update_state(per_image)
        self.psnr_tracker.update_state(-10.0 * tf.math.log(tf.maximum(mse, 1e-10)) / np.log(10.0))
        return {metric.name: metric.result() for metric in self.metrics}

    def train_step(self, data_batch):
        return self._step(data_batch, training=True)

    def test_step(self, data_batch):
        return self._step(data_batch, training=False)

    # --- inference --------------------------------------------------------------------------

    def check_images(self, images):
        """uint8 `[N, H, W, C]` (or HWC) images this model can restore, as a tensor."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank == 3:
            images = images[None]
        if images.dtype != tf.uint8:
            raise ValueError(f"restore takes uint8 images (0..255), got {images.dtype.name}; "
                             "for float data use restore_float.")
        if images.shape.rank != 4:
            raise ValueError(f"Images must be [batch, H, W, C] or [H, W, C], got {images.shape}.")
        if images.shape[-1] != self.image_channels and not (
                self.color == "y" and images.shape[-1] == 1):
            kind = "grey (1-channel)" if self.image_channels == 1 else "RGB (3-channel)"
            raise ValueError(
                f"This model restores {kind} images, got {images.shape[-1]} channels; use a "
                f"{'colour' if self.image_channels == 1 else 'grey'} model instead.")
        if min(images.shape[1], images.shape[2]) < self.min_size:
            raise ValueError(
                f"A {images.shape[1]}x{images.shape[2]} image is smaller than this network's "
                f"receptive field ({self.min_size} px); restore images at least "
                f"{self.min_size}x{self.min_size}.")
        return images

    def restore_float(self, images, sigma=None):
        """Restore float images in [0, 1] (any range for noisy inputs), `[N, H, W, C]`.

        Pads height and width by reflection to the network's multiple and crops the result
        back; Y models restore the luma and upscale the chroma bilinearly.
        """
        images = tf.cast(images, tf.float32)
        if self.color == "y" and images.shape[-1] == 1:
            images = tf.repeat(images, 3, axis=-1)
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        padded = pad_to_multiple(images, self.size_multiple)
        if self.color == "y":
            ycbcr = data.rgb_to_ycbcr(padded)
            luma, chroma = ycbcr[..., :1], ycbcr[..., 1:]
        else:
            luma = padded
        # One level per image: a scalar (Python callers) or `[N]` (the serving signature).
        levels = tf.broadcast_to(tf.reshape(tf.cast(0.0 if sigma is None else sigma, tf.float32),
                                            [-1]), tf.shape(images)[:1])
        restored = self.network(self._network_inputs(luma, levels), training=False)
        out_height, out_width = height * self.scale, width * self.scale
        if self.color == "y":
            chroma = tf.image.resize(chroma, tf.shape(restored)[1:3], method="bilinear")
            restored = data.ycbcr_to_rgb(tf.concat([restored, chroma], axis=-1))
        return restored[:, :out_height, :out_width]

    def restore(self, images, sigma=None):
        """Restore uint8 images of any size (`[N, H, W, C]` or HWC); returns uint8 NHWC.

        Args:
            images: uint8 noisy (denoisers) or low-resolution (SR) images.
            sigma: float. The noise level, for noise-level models (FFDNet); checked against
                what fixed and blind models were trained on.
        """
        sigma = self.check_sigma(sigma)
        images = self.check_images(images)
        restored = self.restore_float(tf.cast(images, tf.float32) / 255.0, sigma)
        out = unit_to_uint8(restored)
        return out[..., :1] if images.shape[-1] == 1 and self.color == "y" else out

    # --- export -----------------------------------------------------------------------------

    def serving_spec(self):
        """Signature `restore`: uint8 images of any height and width -> uint8 images.

        Noise-level models also take a float32 `sigma` (grey levels, one per image).
        """
        image_spec = tf.TensorSpec([None, None, None, self.image_channels], tf.uint8,
                                   name="images")

        def outputs(images, sigma=None):
            restored = self.restore_float(tf.cast(images, tf.float32) / 255.0, sigma)
            return {"images": unit_to_uint8(restored)}

        if self.takes_sigma:
            sigma_spec = tf.TensorSpec([None], tf.float32, name="sigma")
            endpoint = (lambda images, sigma: outputs(images, sigma), [image_spec, sigma_spec])
        else:
            endpoint = (lambda images: outputs(images), [image_spec])
        return ServingSpec(networks=[self.network], endpoints={"restore": endpoint},
                           default="restore")

    def representative_inputs(self, num_batches=8, batch_size=4, size=48, seed=0):
        """Calibration inputs for full-int8 TFLite: degraded crops of the embedded photos."""
        photos, _ = _photo_crops(num_batches * batch_size, size * self.scale, seed)
        if self.image_channels == 1:
            photos = np.stack([data.as_channels(photo, 1) for photo in photos])
        clean = tf.cast(photos, tf.float32) / 255.0
        levels = self._calibration_levels(len(photos), seed)
        if self.task == "super_resolution":
            degraded = data.bicubic_downscale(clean, self.scale)
        else:
            noise = tf.random.stateless_normal(tf.shape(clean), seed=[seed, 1])
            degraded = clean + noise * tf.reshape(levels, [-1, 1, 1, 1]) / 255.0
        degraded = unit_to_uint8(degraded).numpy()
        for index in range(num_batches):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            yield [degraded[rows], levels[rows]] if self.takes_sigma else [degraded[rows]]

    def _calibration_levels(self, count, seed):
        if self.task != "denoise":
            return np.zeros(count, np.float32)
        if self.sigma is not None:
            return np.full(count, self.sigma, np.float32)
        low, high = self.sigma_range
        return np.random.default_rng(seed).uniform(low, high, count).astype(np.float32)

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": keras.saving.serialize_keras_object(self.network),
            "task": self.task,
            "scale": self.scale,
            "sigma": self.sigma,
            "sigma_range": self.sigma_range,
            "color": self.color,
            "loss": self.loss,
            "min_size": self.min_size,
            "size_multiple": self.size_multiple,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["network"] = keras.saving.deserialize_keras_object(config["network"])
        return cls(**config)


def _photo_crops(count, size, seed):
    from kerasgen.data.sources import load_photos

    return load_photos("all", crop_size=size, num_crops=count, seed=seed)


def build_restorer(image_shape=None, seed=0, architecture="dncnn", color="grey", scale=1,
                   sigma=None, sigma_range=None, loss="l2", **network_kwargs):
    """A `Restorer` around a freshly built network.

    Args:
        image_shape: ignored (the networks take any size); accepted for the registry.
        seed: int. Seeds the weights and the noise stream.
        architecture: str. A name in `ARCHITECTURES`.
        color, scale, sigma, sigma_range, loss: see `Restorer`.
        **network_kwargs: passed to the builder (e.g. `depth`, `num_filters`).
    """
    del image_shape
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; valid: {sorted(ARCHITECTURES)}.")
    builder, task, receptive_field, multiple = ARCHITECTURES[architecture]
    channels = _network_channels(color)
    if task == "super_resolution":
        data.check_scale(scale)
        network = builder(scale=scale, channels=channels, seed=seed, **network_kwargs)
    else:
        if scale != 1:
            raise ValueError(f"{architecture} is a denoiser; it takes no scale (got {scale}).")
        network = builder(channels=channels, seed=seed, **network_kwargs)
    return Restorer(network, task=task, scale=scale, sigma=sigma, sigma_range=sigma_range,
                    color=color, loss=loss, min_size=receptive_field(**network_kwargs),
                    size_multiple=multiple, seed=seed)


def training_data(model, dataset, batch_size, seed=0, data_dir=None, patch_size=40):
    """Endless clean patches for `model` from a restoration data name or folder.

    `patch_size` is in network-input pixels: SR patches are `patch_size * scale` HR pixels.
    """
    images = data.load_images(dataset, data_dir, channels=model.image_channels)
    size = patch_size * model.scale
    if size % model.size_multiple:
        raise ValueError(f"patch_size {size} is not a multiple of {model.size_multiple}, which "
                         f"{model.network.name} needs.")
    return data.patch_dataset(images, size, batch_size, seed=seed)


def _preset(name, description, dataset, patch_size, batch_size, **model_kwargs):
    return ModelPreset(
        name=name, description=description, build=build_restorer, model_kwargs=model_kwargs,
        dataset=dataset, epochs=50, batch_size=batch_size, generative=False,
        make_data=functools.partial(training_data, patch_size=patch_size), steps_per_epoch=200,
        options=("scale",) if ARCHITECTURES[model_kwargs["architecture"]][1] ==
        "super_resolution" else ("sigma",),
        learning_rate_schedule=functools.partial(StepDecay, LEARNING_RATE, drop_at=0.6))


PRESETS = {
    "dncnn": _preset("dncnn", "DnCNN-S (Zhang et al. 2017), grey, one noise level (sigma=25), "
                              "Train400", "train400", 40, 64, architecture="dncnn", sigma=25.0),
    "dncnn_blind": _preset(
        "dncnn_blind", "DnCNN-B, 20 layers, grey, blind sigma in [0, 55], Train400",
        "train400", 50, 64, architecture="dncnn", depth=20, sigma_range=(0.0, 55.0)),
    "dncnn_color": _preset(
        "dncnn_color", "CDnCNN-B, 20 layers, colour, blind sigma in [0, 55], T91", "t91", 50, 64,
        architecture="dncnn", depth=20, color="rgb", sigma_range=(0.0, 55.0)),
    "ffdnet": _preset(
        "ffdnet", "FFDNet (Zhang et al. 2018), grey, noise level map input, sigma in [0, 75], "
                  "Train400", "train400", 64, 64, architecture="ffdnet",
        sigma_range=(0.0, MAX_SIGMA)),
    "ffdnet_color": _preset(
        "ffdnet_color", "FFDNet, colour (12 layers, 96 filters), sigma in [0, 75], T91", "t91",
        64, 64, architecture="ffdnet", depth=12, num_filters=96, color="rgb",
        sigma_range=(0.0, MAX_SIGMA)),
    "espcn": _preset("espcn", "ESPCN (Shi et al. 2016), x3 on the Y channel, T91", "t91", 17, 64,
                     architecture="espcn", color="y", scale=3),
    "fsrcnn": _preset("fsrcnn", "FSRCNN(56, 12, 4) (Dong et al. 2016), x3 on the Y channel, T91",
                      "t91", 16, 64, architecture="fsrcnn", color="y", scale=3),
    "edsr": _preset("edsr", "EDSR-baseline (Lim et al. 2017), x3, RGB, L1 loss, T91", "t91", 16,
                    16, architecture="edsr", color="rgb", scale=3, loss="l1"),
}


def restore_files(model, paths, out_dir, sigma=None, overwrite=False):
    """Restore image files of any size into `out_dir` as PNGs with the same stems.

    Every input is read and checked before anything is written, and existing files are kept
    unless `overwrite`, so a bad input or a clash writes nothing.

    Returns:
        The list of written paths.
    """
    sigma = model.check_sigma(sigma)
    return map_image_files(lambda image: model.restore(image, sigma)[0], paths, out_dir,
                           read=lambda path: model.check_images(data.read_image(path)),
                           overwrite=overwrite)
