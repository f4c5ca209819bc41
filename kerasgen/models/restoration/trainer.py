"""`Restorer`: one image-to-image trainer for a restoration network and a degradation.

The wrapper trains its network with `fit` on clean patches, degrading each batch on the fly
with its `Degradation` layer (noise, bicubic down-scaling; see `kerasgen.layers.degradations`)
and its own resumable random stream, and restores uint8 images of any size (`apply`, the
`restore` serving signature, TFLite with dynamic input shapes).
"""

import keras
import numpy as np
import tensorflow as tf

from kerasgen.data import pad_to_multiple, unit_to_uint8
from kerasgen.data import restoration as data
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec
from kerasgen.layers import WholeImage, batch_norms, recompute_batch_norm_statistics
from kerasgen.metrics import unit_psnr
from kerasgen.models.base import NestedObjects, SeededModel, SingleOptimizer
from kerasgen.precision import marked_layers
from kerasgen.tasks import ImageToImageModel

COLORS = ("grey", "rgb", "y")  # "y": the network sees the BT.601 luma of RGB images
LOSSES = ("l2", "l1")
LEARNING_RATE = 1e-3
SSIM_WINDOW = 11  # tf.image.ssim's Gaussian window
# Training batches behind the batch norms' population statistics (precise BN).
BATCH_NORM_BATCHES = 32


def _available_memory():
    """Bytes of memory available to this process (Linux's MemAvailable; 4 GiB elsewhere)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def network_channels(color):
    """Channels of the network's images for a `color` setting."""
    if color not in COLORS:
        raise ValueError(f"Unknown color {color!r}; valid: {list(COLORS)}.")
    return 3 if color == "rgb" else 1


@keras.saving.register_keras_serializable(package="kerasgen")
class Restorer(SingleOptimizer, ImageToImageModel, NestedObjects, SeededModel):
    """Trains a restoration network with `fit` on clean patches degraded on the fly.

    `fit` data: clean float images in [0, 1] (`training_data`), RGB for `color="y"`; or
    `(degraded, clean)` pairs for real degradations.

    Args:
        network: `keras.Model`. Degraded float images in [0, 1] (and, if it has two inputs,
            the degradation's condition, e.g. sigma / 255 per image) -> restored images.
        degradation: a `kerasgen.layers.degradations.Degradation` (e.g. `GaussianNoise`,
            `BicubicDownscale`).
        color: str. `"grey"`, `"rgb"`, or `"y"` (the network restores the BT.601 luma of RGB
            images; the SR protocol). Defaults to `"grey"`.
        loss: str. `"l2"` (DnCNN, FFDNet, ESPCN, FSRCNN) or `"l1"` (EDSR). Defaults to "l2".
        ssim_weight: float. Adds `ssim_weight * (1 - SSIM)` to the loss (the supervised
            low-light enhancer's L1 + SSIM). Defaults to 0 (off).
        patch_size: int. Training patch side in network-input pixels (SR patches are
            `patch_size * scale` HR pixels). Defaults to 40 (DnCNN's).
        min_size: int. Smallest input side: the network's receptive field. Defaults to 1.
        size_multiple: int. Inputs are reflect-padded to a multiple of this. Defaults to 1.
        batch_norm_batches: int. Training batches whose population statistics the network's
            batch norms get at every epoch's end (`recompute_batch_norm`); 0 keeps Keras'
            moving averages. Defaults to 32.
        seed: int. Seed of the degradation stream. Defaults to None.
    """

    default_learning_rate = LEARNING_RATE  # DnCNN, EDSR
    nested = ("network", "degradation")

    def __init__(self, network, degradation, color="grey", loss="l2", patch_size: int = 40,
                 min_size=1, size_multiple=1, ssim_weight: float = 0.0,
                 batch_norm_batches: int = BATCH_NORM_BATCHES, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if loss not in LOSSES:
            raise ValueError(f"Unknown loss {loss!r}; valid: {list(LOSSES)}.")
        if int(patch_size) < 1:
            raise ValueError(f"patch_size must be a positive number of pixels, got {patch_size}.")
        if float(ssim_weight) < 0:
            raise ValueError(f"ssim_weight must be >= 0, got {ssim_weight}.")
        if float(ssim_weight) and int(patch_size) * degradation.scale < SSIM_WINDOW:
            raise ValueError(f"The SSIM loss needs patches of at least {SSIM_WINDOW} pixels (its "
                             f"window), got patch_size={patch_size}.")
        if int(batch_norm_batches) < 0:
            raise ValueError(f"batch_norm_batches must be >= 0, got {batch_norm_batches}.")
        self.batch_norm_batches = int(batch_norm_batches)
        self.ssim_weight = float(ssim_weight)
        self._batch_norm_source = ()  # (source, distributed clean batches), see below
        self.network = network
        self.degradation = degradation
        self.color = color
        self.loss = loss
        self.patch_size = int(patch_size)
        self.min_size = int(min_size)
        self.size_multiple = int(size_multiple)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")
        self.built = True
        if self.network.inputs[0].shape[-1] != network_channels(color):
            raise ValueError(f"color={color!r} needs a {network_channels(color)}-channel "
                             f"network, got {self.network.inputs[0].shape[-1]} channels.")

    @property
    def scale(self):
        """Restored size / degraded size (the SR factor; 1 for denoising)."""
        return self.degradation.scale

    @property
    def conditioned(self):
        """Whether the network takes the degradation's condition (FFDNet: the noise level)."""
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

    def _network_inputs(self, images, condition):
        if not self.conditioned:
            return images
        return [images, self.degradation.condition_input(condition)]

    def _unpack(self, data_batch, batch, seed_generator=None):
        if isinstance(data_batch, (tuple, list)):
            if len(data_batch) != 2:
                raise ValueError("fit takes clean images, or (degraded, clean) pairs.")
            degraded, clean = (tf.cast(part, tf.float32) for part in data_batch)
            # Real pairs: a conditioned network runs at the degradation's own fixed level.
            condition = self.degradation.check_options(self.conditioned)
            if condition is not None:
                condition = tf.fill([tf.shape(degraded)[0]], condition)
            return self._network_inputs(self.to_network_color(degraded), condition), \
                self.to_network_color(clean)
        targets = self.to_network_color(tf.cast(data_batch, tf.float32))
        degraded, condition = self.degradation.degrade(targets, batch,
                                                       seed_generator or self.seed_generator)
        return self._network_inputs(degraded, condition), targets

    def _step(self, data_batch, training):
        batch = ReplicaBatch(tf.shape(tf.nest.flatten(data_batch)[0])[0])
        inputs, targets = self._unpack(data_batch, batch)
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            # 3. Restore, and the per-image loss: mean squared (or absolute) error.
            restored, per_image = self.objective(inputs, targets, training)
            mean_loss = batch.mean(per_image)
        if training:
            gradients = tape.gradient(mean_loss, self.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        # 4. Per-image trackers (SUM-on-read gives global means); PSNR of the clamped output.
        self.loss_tracker.update_state(per_image)
        self.psnr_tracker.update_state(unit_psnr(restored, targets))
        return step_logs(self.metrics)

    def objective(self, inputs, targets, training):
        """`(restored images, per-image loss)` of one batch."""
        restored = self.network(inputs, training=training)
        return restored, self.per_image_loss(restored, targets)

    def per_image_loss(self, restored, targets):
        """Per image: mean squared (or absolute) error, plus `ssim_weight * (1 - SSIM)` of the
        clamped output (Zhao et al. 2017, https://arxiv.org/abs/1511.08861)."""
        error = restored - targets
        per_image = tf.reduce_mean(tf.square(error) if self.loss == "l2" else tf.abs(error),
                                   axis=[1, 2, 3])
        if self.ssim_weight:
            per_image += self.ssim_weight * (1.0 - tf.image.ssim(
                tf.clip_by_value(restored, 0.0, 1.0), targets, 1.0))
        return per_image

    def train_step(self, data_batch):
        return self._step(data_batch, training=True)

    def test_step(self, data_batch):
        return self._step(data_batch, training=False)

    # --- the image-to-image contract --------------------------------------------------------

    def training_data(self, dataset, batch_size, seed=0, data_dir=None, start_batch=0,
                      patch_size=None):
        """Endless clean patches from an image set or folder (`kerasgen.data.catalog`).

        Args:
            start_batch: int. Start the (seeded, stateless) stream at this batch.
            patch_size: int. Overrides the model's `patch_size` (network-input pixels).
        """
        images = data.load_images(dataset, data_dir, channels=self.image_channels)
        return data.patch_dataset(images, self.training_patch_side(patch_size), batch_size,
                                  seed=seed, start_batch=start_batch)

    def recompute_batch_norm(self, dataset, batch_size, seed=0, data_dir=None):
        """The network's batch norms get the population statistics of `batch_norm_batches`
        training batches, degraded by their own noise stream (the training stream and the
        weights are untouched; the same batches every time, so a resumed run matches)."""
        if not self.batch_norm_batches or not batch_norms(self.network):
            return 0
        strategy = self.distribute_strategy
        # Built once per source, not every epoch: the images are read and stacked once. The
        # stream is stateless, so every pass yields the same batches.
        source = (dataset, batch_size, seed, data_dir, self.training_patch_side(),
                  self.batch_norm_batches)
        if self._batch_norm_source[:1] != (source,):
            # Offset seeds: other patches than the run's first batches, other noise.
            clean_batches = self.training_data(dataset, batch_size, seed=seed + 1,
                                               data_dir=data_dir).take(self.batch_norm_batches)
            self._batch_norm_source = (
                source, strategy.experimental_distribute_dataset(clean_batches))
        with strategy.scope():  # one stream state for every replica, as the model's own
            noise = keras.random.SeedGenerator(seed + 1)

        def forward(clean):
            inputs, _ = self._unpack(clean, ReplicaBatch(tf.shape(clean)[0]), noise)
            self.network(inputs, training=True)

        # Each replica normalises its share of the global batch, as in training. Traced
        # anew per call: the batch norms' momentum (0 while recomputing) is read at tracing.
        return recompute_batch_norm_statistics(
            self.network, tf.function(lambda clean: strategy.run(forward, args=(clean,))),
            self._batch_norm_source[1])

    def training_patch_side(self, patch_size=None):
        """Side of the clean training patches (`patch_size`, default the model's, times the
        scale), checked against the network's size multiple."""
        size = (patch_size or self.patch_size) * self.scale
        if size % self.size_multiple:
            raise ValueError(f"patch_size {size} is not a multiple of {self.size_multiple}, "
                             f"which {self.network.name} needs.")
        return size

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

    def read_image(self, path):
        return self.check_images(data.read_image(path))[0]

    def restore_float(self, images, sigma=None):
        """Restore float images in [0, 1] (any range for noisy inputs), `[N, H, W, C]`.

        Pads height and width by reflection to the network's multiple and crops the result
        back; Y models restore the luma and upscale the chroma bilinearly. `sigma` is the
        condition of a noise-level network (a scalar or one per image).
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

    def apply(self, images, sigma: float = None, scale: int = None, tile: int = None):
        """Restore uint8 images of any size (`[N, H, W, C]` or HWC); returns uint8 NHWC.

        Images larger than `tile` are restored in overlapping tiles whose margins cover the
        network's receptive field, so memory stays bounded and the result equals the
        whole-image one (to float rounding: within 1 level).

        Args:
            images: uint8 noisy (denoisers) or low-resolution (SR) images.
            sigma: float. The noise level of the inputs, for noise-level models (FFDNet);
                checked against what fixed and blind models were trained on.
            scale: int. The SR factor the caller expects; checked against the model's.
            tile: int. Tile side in input pixels. Defaults to `default_tile()` (from the
                memory available and the network's width). Networks holding a `WholeImage`
                layer (a curve from the whole image's statistics) run on whole images and
                refuse a tile size.
        """
        options = self.check_apply_options(sigma, scale, tile)
        images = self.check_images(images)
        restored = self._restore_tiled(images, options["sigma"], options["tile"])
        return restored[..., :1] if images.shape[-1] == 1 and self.color == "y" else restored

    restore = apply

    def check_apply_options(self, sigma=None, scale=None, tile=None):
        """`{"sigma": level the network runs at or None, "tile": side, or None for whole
        images}`, checked."""
        if tile is not None and tile < 1:
            raise ValueError(f"tile must be a positive number of pixels, got {tile}.")
        whole = [layer.name for layer in marked_layers([self.network], WholeImage)]
        if whole and tile is not None:
            raise ValueError(f"{self.network.name} computes {whole[0]!r} from the whole image, "
                             "so tiles would each get their own result; apply it without a "
                             "tile size (images are enhanced whole).")
        return {"sigma": self.degradation.check_options(self.conditioned, sigma=sigma,
                                                        scale=scale),
                "tile": None if whole else tile or self.default_tile()}

    @property
    def tile_margin(self):
        """Overlap each tile keeps on every side: the receptive field's radius, rounded up to
        the network's multiple."""
        radius = self.min_size // 2 + 1
        return -(-radius // self.size_multiple) * self.size_multiple

    def default_tile(self, budget_bytes=None):
        """A tile side whose activations fit in `budget_bytes` (default: a quarter of the
        available memory, at most 1 GiB), from the network's widest layer."""
        if budget_bytes is None:
            budget_bytes = min(1 << 30, _available_memory() // 4)
        widest = max(int(tensor.shape[-1]) for layer in self.network.layers
                     for tensor in tf.nest.flatten(layer.output))
        per_pixel = 4 * 4 * widest * self.scale ** 2  # float32, ~4 live feature maps
        side = int((budget_bytes / per_pixel) ** 0.5)
        multiple = 8 * self.size_multiple
        return max(2 * self.tile_margin + multiple, min(4096, side // multiple * multiple))

    def _restore_tiled(self, images, sigma, tile):
        """uint8 NHWC of `images` restored tile by tile (one tile when it fits)."""
        height, width = int(images.shape[1]), int(images.shape[2])
        levels = tf.fill([tf.shape(images)[0]], tf.cast(0.0 if sigma is None else sigma,
                                                        tf.float32))
        if tile is None or (height <= tile and width <= tile):
            return unit_to_uint8(self.restore_graph(tf.cast(images, tf.float32) / 255.0,
                                                        levels))
        margin = self.tile_margin
        core = max(tile - 2 * margin, self.size_multiple)
        core -= core % self.size_multiple
        rows = []
        for top in range(0, height, core):
            row = []
            for left in range(0, width, core):
                # The tile plus its margins, clamped to the image, on the network's grid.
                y0, x0 = max(0, top - margin), max(0, left - margin)
                y1, x1 = min(height, top + core + margin), min(width, left + core + margin)
                piece = tf.cast(images[:, y0:y1, x0:x1], tf.float32) / 255.0
                out = self.restore_graph(piece, levels)
                s = self.scale
                row.append(unit_to_uint8(out[:, (top - y0) * s:(min(top + core, height) - y0) * s,
                                             (left - x0) * s:(min(left + core, width) - x0) * s]))
            rows.append(tf.concat(row, axis=2))
        return tf.concat(rows, axis=1)

    def restore_graph(self, images, levels):
        """`restore_float` as one traced graph (an eager call keeps every layer's output):
        float images `[N, H, W, C]` and one noise level per image (any, if unconditioned)."""
        images = tf.convert_to_tensor(images, tf.float32)
        levels = tf.convert_to_tensor(levels, tf.float32)
        channels = int(images.shape[-1])  # grey images into a Y model: 1, else the model's
        compiled = self.__dict__.setdefault("_compiled_restore", {})
        if channels not in compiled:
            compiled[channels] = tf.function(
                self.restore_float, input_signature=[
                    tf.TensorSpec([None, None, None, channels], tf.float32),
                    tf.TensorSpec([None], tf.float32)])
        return compiled[channels](images, levels)

    def benchmark(self, dataset, data_dir=None, seed=0, sigma: float = None, scale: int = None):
        """PSNR/SSIM on a benchmark set by its paper's protocol (see
        `kerasgen.models.restoration.evaluation.evaluate_restoration`)."""
        from kerasgen.models.restoration.evaluation import evaluate_restoration, restoration_table

        report = evaluate_restoration(self, dataset, sigma=sigma, scale=scale,
                                      data_dir=data_dir, seed=seed)
        return {**report, "lines": restoration_table(report)}

    # --- export -----------------------------------------------------------------------------

    def serving_spec(self):
        """Signature `restore`: uint8 images of any height and width -> uint8 images.

        Conditioned models also take the degradation's inputs (FFDNet: float32 `sigma`, grey
        levels, one per image).
        """
        image_spec = tf.TensorSpec([None, None, None, self.image_channels], tf.uint8,
                                   name="images")

        def restore(images, condition=None):
            restored = self.restore_float(tf.cast(images, tf.float32) / 255.0, condition)
            return {"images": unit_to_uint8(restored)}

        endpoint = (self.degradation.conditioned_endpoint(restore, image_spec)
                    if self.conditioned else (lambda images: restore(images), [image_spec]))
        return ServingSpec(networks=[self.network], endpoints={"restore": endpoint},
                           default="restore")

    def representative_inputs(self, num_batches=8, batch_size=4, size=48, seed=0):
        """Calibration inputs for full-int8 TFLite: degraded crops of the embedded photos."""
        from kerasgen.data.sources import load_photos

        photos, _ = load_photos("all", crop_size=size * self.scale,
                                num_crops=num_batches * batch_size, seed=seed)
        if self.image_channels == 1:
            photos = np.stack([data.as_channels(photo, 1) for photo in photos])
        clean = tf.cast(photos, tf.float32) / 255.0  # what the signature takes (RGB for Y)
        degraded, condition = self.degradation.degrade(clean, ReplicaBatch(len(photos)),
                                                       keras.random.SeedGenerator(seed))
        degraded = unit_to_uint8(degraded).numpy()
        for index in range(num_batches):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            yield ([degraded[rows], condition[rows].numpy()] if self.conditioned
                   else [degraded[rows]])

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": keras.saving.serialize_keras_object(self.network),
            "degradation": keras.saving.serialize_keras_object(self.degradation),
            "color": self.color,
            "loss": self.loss,
            "patch_size": self.patch_size,
            "min_size": self.min_size,
            "size_multiple": self.size_multiple,
            "ssim_weight": self.ssim_weight,
            "batch_norm_batches": self.batch_norm_batches,
        })
        return config
