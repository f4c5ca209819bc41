"""`Inpainter`: fills the holes of images, trained with `fit` on clean patches whose holes are
cut on the fly by a seeded `HoleMask`.

Loss of the partial-convolution paper (Liu et al. 2018, arXiv:1804.07723, eq. 7), per image:
`valid_weight * L_valid + hole_weight * L_hole + tv_weight * L_tv` (1, 6, 0.1), with the
perceptual (0.05) and style (120) terms on VGG16 features when their weights are set (off by
default: they need VGG16's ImageNet weights, which are downloaded, and several times the
compute of the U-Net on a CPU).

`ssim_weight * (1 - SSIM(composite, clean))` (Zhao et al. 2017, "Loss Functions for Image
Restoration with Neural Networks", arXiv:1511.08861) is the stand-in for the VGG terms where
they are off: L1 alone leaves high-frequency noise in the holes that SSIM punishes.
"""

import os
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kerasgen.data import pad_to_multiple, unit_to_uint8
from kerasgen.data import restoration as data
from kerasgen.distribute import ReplicaBatch, step_logs
from kerasgen.export import ServingSpec, int8_float_ops_of, quantizations_of
from kerasgen.metrics import unit_psnr
from kerasgen.models.base import NestedObjects, NetworkOptimizers, SeededModel
from kerasgen.models.inpainting import masks as hole_masks
from kerasgen.tasks import ImageToImageModel

LEARNING_RATE = 5e-4  # the paper trains at 2e-4 for days; short CPU runs converge faster here
VGG16_WEIGHTS = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
VGG16_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
             + VGG16_WEIGHTS)


def vgg16_features():
    """VGG16's pool1-pool3 outputs (the paper's perceptual and style layers), ImageNet weights.

    Online, Keras downloads the weights into `~/.keras/models/` once; offline, the file must
    already be there: fail fast, naming it, instead of hanging on the download.
    """
    from kerasgen.data.sources import _network_reachable

    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    path = keras_home / "models" / VGG16_WEIGHTS
    if not path.exists() and not _network_reachable():
        raise ValueError(
            f"The perceptual and style losses need VGG16's ImageNet weights, and this machine "
            f"is offline: put {VGG16_WEIGHTS} (from {VGG16_URL}) at {path}, or train without "
            "them (perceptual_weight=0, style_weight=0: the default).")
    vgg = keras.applications.VGG16(include_top=False, weights="imagenet")
    vgg.trainable = False
    outputs = [vgg.get_layer(name).output for name in
               ("block1_pool", "block2_pool", "block3_pool")]
    return keras.Model(vgg.input, outputs, name="vgg16_pools")


def gram(features):
    """Per-image Gram matrices `[N, C, C]` normalised by C * H * W (the paper's K_p)."""
    shape = tf.shape(features)
    flat = tf.reshape(features, [shape[0], -1, shape[3]])
    size = tf.cast(shape[1] * shape[2] * shape[3], features.dtype)
    return tf.matmul(flat, flat, transpose_a=True) / size


def perceptual_style_losses(extractor, output, composite, target):
    """Per-image perceptual and style losses (Liu et al. eq. 3-5) of images in [0, 1]."""
    def features(images):
        # VGG16's ImageNet preprocessing: BGR, mean-subtracted, 0..255.
        return extractor(keras.applications.vgg16.preprocess_input(images * 255.0))

    targets = features(target)
    perceptual = style = 0.0
    for image_features in (features(output), features(composite)):
        for mine, theirs in zip(image_features, targets):
            perceptual += tf.reduce_mean(tf.abs(mine - theirs), axis=[1, 2, 3])
            style += tf.reduce_mean(tf.abs(gram(mine) - gram(theirs)), axis=[1, 2])
    return perceptual, style


def total_variation(images, region):
    """Per-image total variation inside `region` (1 = counted), Liu et al. eq. (6): absolute
    differences to the upper and left neighbours of every pixel in the region, summed and
    divided by the image's element count."""
    vertical = tf.abs(images[:, 1:] - images[:, :-1]) * region[:, 1:]
    horizontal = tf.abs(images[:, :, 1:] - images[:, :, :-1]) * region[:, :, 1:]
    size = tf.cast(tf.reduce_prod(tf.shape(images)[1:]), images.dtype)
    return (tf.reduce_sum(vertical, axis=[1, 2, 3])
            + tf.reduce_sum(horizontal, axis=[1, 2, 3])) / size


def check_masks(masks, images):
    """uint8 or bool masks (white/True = hole) for `images` (`[N, H, W, C]`) -> float32
    `[N, H, W, 1]`, 1 = hole; refused when not binary, of another size, empty or full."""
    masks = np.asarray(masks)
    if masks.dtype == bool:
        masks = masks.astype(np.uint8) * 255
    if masks.dtype != np.uint8:
        raise ValueError(f"A mask must be 8-bit (0 = known, 255 = hole), got {masks.dtype}; "
                         "save it as an 8-bit greyscale PNG.")
    if masks.ndim == 2:
        masks = masks[None, ..., None]
    elif masks.ndim == 3:
        masks = masks[None] if masks.shape[-1] in (1, 3, 4) and masks.shape[:2] == \
            tuple(images.shape[1:3]) else masks[..., None]
    if masks.shape[-1] == 4:
        raise ValueError("A mask has an alpha channel; save it as a greyscale PNG (white = "
                         "hole, black = known).")
    if masks.shape[-1] == 3:
        if not (np.array_equal(masks[..., 0], masks[..., 1])
                and np.array_equal(masks[..., 0], masks[..., 2])):
            raise ValueError("A mask is in colour; save it as greyscale (white = hole).")
        masks = masks[..., :1]
    if tuple(masks.shape[1:3]) != tuple(images.shape[1:3]):
        raise ValueError(f"The mask is {masks.shape[2]}x{masks.shape[1]} but the image is "
                         f"{images.shape[2]}x{images.shape[1]} (width x height); masks must "
                         "match their images' size.")
    if masks.shape[0] not in (1, images.shape[0]):
        raise ValueError(f"{masks.shape[0]} masks for {images.shape[0]} images; pass one mask "
                         "per image, or one for all.")
    levels = np.unique(masks)
    if not set(levels.tolist()) <= {0, 255}:
        raise ValueError(f"A mask must be binary (0 = known, 255 = hole), found levels such as "
                         f"{levels[(levels > 0) & (levels < 255)][:3].tolist()}; threshold it "
                         "(e.g. > 127 -> 255).")
    holes = masks > 0
    per_image = holes.reshape(holes.shape[0], -1)
    if not per_image.any(axis=1).all():
        raise ValueError("A mask has no hole (all black): there is nothing to inpaint.")
    if per_image.all(axis=1).any():
        raise ValueError("A mask is all hole (all white): nothing of the image is known.")
    return np.broadcast_to(holes, (images.shape[0], *holes.shape[1:])).astype(np.float32)


@keras.saving.register_keras_serializable(package="kerasgen")
class Inpainter(NetworkOptimizers, ImageToImageModel, NestedObjects, SeededModel):
    """Trains an inpainting network with `fit` on clean patches with holes cut on the fly.

    `fit` data: clean float RGB images in [0, 1] (`training_data`).

    Args:
        network: `keras.Model`. `[image with holes set to 0, valid mask (1 = known)]` ->
            image in [0, 1] (e.g. `build_pconv_unet`).
        masks: `HoleMask` or `FolderMasks`. The holes cut during training.
        reconstruction: str. "l1" (Liu et al.) or "l2" (the Context Encoder's) error per pixel.
        valid_weight, hole_weight, tv_weight: float. The loss weights (paper: 1, 6, 0.1).
        perceptual_weight, style_weight: float. VGG16 loss weights (paper: 0.05, 120).
            Defaults to 0 (off; see `vgg16_features`).
        ssim_weight: float. Weight of `1 - SSIM` of the composite. Defaults to 0 (off).
        patch_size: int. Training crop side. Defaults to 64.
        size_multiple: int. Inputs are reflect-padded to a multiple of this (2**depth).
        network_size: int. For networks of one fixed input size (the Context Encoder): images
            are resized to this square for the network and its fill resized back. Defaults to
            None (fully convolutional: any multiple of `size_multiple`).
        learning_rate: float. Adam's, where `compile` is given no optimizer (5e-4).
        seed: int. Seed of the mask stream.
    """

    nested = ("network", "masks")
    optimized_networks = ("network",)
    optimizer_names = {"network": "optimizer"}  # `model.optimizer`, as in plain Keras
    RECONSTRUCTIONS = ("l1", "l2")

    def __init__(self, network, masks, reconstruction="l1", valid_weight=1.0, hole_weight=6.0,
                 tv_weight=0.1, perceptual_weight=0.0, style_weight=0.0, ssim_weight=0.0,
                 patch_size: int = 64, size_multiple=32, network_size=None,
                 learning_rate=LEARNING_RATE, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if int(patch_size) < 1 or int(patch_size) % int(size_multiple):
            raise ValueError(f"patch_size must be a positive multiple of {size_multiple} (the "
                             f"network's down-sampling), got {patch_size}.")
        if network_size is not None and int(network_size) != int(patch_size):
            raise ValueError(f"This network takes {network_size}-pixel squares only, so it "
                             f"trains on {network_size}-pixel crops; got patch_size "
                             f"{patch_size}.")
        if reconstruction not in self.RECONSTRUCTIONS:
            raise ValueError(f"Unknown reconstruction loss {reconstruction!r}; valid: "
                             f"{list(self.RECONSTRUCTIONS)}.")
        weights = (valid_weight, hole_weight, tv_weight, perceptual_weight, style_weight,
                   ssim_weight)
        if min(weights) < 0:
            raise ValueError(f"Loss weights must be >= 0, got {weights}.")
        if ssim_weight and int(patch_size) < 11:
            raise ValueError(f"The SSIM term needs crops of at least 11 pixels (its window), "
                             f"got patch_size {patch_size}.")
        self.network = network
        self.masks = masks
        self.reconstruction = reconstruction
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}.")
        self.learning_rate = float(learning_rate)
        self.network_size = None if network_size is None else int(network_size)
        self.valid_weight, self.hole_weight, self.tv_weight = (
            float(valid_weight), float(hole_weight), float(tv_weight))
        self.perceptual_weight, self.style_weight = float(perceptual_weight), float(style_weight)
        self.ssim_weight = float(ssim_weight)
        self.patch_size = int(patch_size)
        self.size_multiple = int(size_multiple)
        self.extractor = vgg16_features() if perceptual_weight or style_weight else None
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.hole_tracker = keras.metrics.Mean(name=f"hole_{reconstruction}")
        self.psnr_tracker = keras.metrics.Mean(name="psnr")
        self.built = True

    @property
    def image_channels(self):
        return int(self.network.inputs[0].shape[-1])

    @property
    def metrics(self):
        return [self.loss_tracker, self.hole_tracker, self.psnr_tracker]

    def call(self, inputs, training=False):
        return self.network(inputs, training=training)

    def default_optimizer(self, network):
        return keras.optimizers.Adam(self.learning_rate)

    # --- the objective ----------------------------------------------------------------------

    def cut_holes(self, clean, batch):
        """`(masked, holes, known)` of float `clean` images: holes (1 = hole) drawn seeded for
        the global batch, masked images with the holes set to 0."""
        masked, holes = self.masks.degrade(clean, batch, self.seed_generator)
        return masked, holes, 1.0 - holes

    def reconstruction_loss(self, output, clean, holes):
        """Per-image `(loss, hole error, composite)`: Liu et al.'s eq. (1), (2), (6) (or their
        L2 form): the error over the known and the hole pixels (each normalised by the image
        size), total variation of the composite on the hole region dilated by one pixel, and
        the VGG and SSIM terms where their weights are set."""
        known = 1.0 - holes
        composite = holes * output + known * clean
        error = tf.abs(output - clean) if self.reconstruction == "l1" \
            else tf.square(output - clean)
        valid_error = tf.reduce_mean(known * error, axis=[1, 2, 3])
        hole_error = tf.reduce_mean(holes * error, axis=[1, 2, 3])
        per_image = self.valid_weight * valid_error + self.hole_weight * hole_error
        if self.tv_weight:
            dilated = tf.nn.max_pool2d(holes, 3, 1, "SAME")
            per_image += self.tv_weight * total_variation(composite, dilated)
        if self.extractor is not None:
            perceptual, style = perceptual_style_losses(self.extractor, output, composite, clean)
            per_image += self.perceptual_weight * perceptual + self.style_weight * style
        if self.ssim_weight:
            # Zhao et al. 2017: SSIM's structure term penalises the noise L1 leaves.
            per_image += self.ssim_weight * (1.0 - tf.image.ssim(composite, clean, 1.0))
        return per_image, hole_error, composite

    def _step(self, clean, training):
        clean = tf.cast(clean, tf.float32)
        batch = ReplicaBatch(tf.shape(clean)[0])
        # 1. Cut holes (seeded, drawn for the global batch).
        masked, holes, known = self.cut_holes(clean, batch)
        with tf.GradientTape(watch_accessed_variables=training) as tape:
            # 2. Fill them; the loss of the output and of the composite (known pixels kept).
            output = self.network([masked, known], training=training)
            per_image, hole_error, composite = self.reconstruction_loss(output, clean, holes)
            mean_loss = batch.mean(per_image)
        if training:
            gradients = tape.gradient(mean_loss, self.network.trainable_variables)
            self.optimizer.apply_gradients(zip(gradients, self.network.trainable_variables))
        # 3. Per-image trackers; PSNR of the clamped composite.
        self.track(per_image, hole_error, composite, clean)
        return step_logs(self.metrics)

    def track(self, per_image, hole_error, composite, clean):
        """Update the per-image trackers: loss, hole error, PSNR of the clamped composite."""
        self.loss_tracker.update_state(per_image)
        self.hole_tracker.update_state(hole_error)
        self.psnr_tracker.update_state(unit_psnr(composite, clean))

    def train_step(self, data_batch):
        return self._step(data_batch, training=True)

    def test_step(self, data_batch):
        return self._step(data_batch, training=False)

    # --- the image-to-image contract --------------------------------------------------------

    def training_data(self, dataset, batch_size, seed=0, data_dir=None, start_batch=0):
        """Endless clean RGB crops of an image set or folder (`kerasgen.data.catalog`);
        images smaller than the crops are skipped, with a warning."""
        images = data.load_images(dataset, data_dir, channels=self.image_channels)
        large = [image for image in images if min(image.shape[:2]) >= self.patch_size]
        if len(large) < len(images):
            if not large:
                raise ValueError(f"Every image of {dataset} is smaller than the "
                                 f"{self.patch_size}-pixel training crops; set a smaller "
                                 "patch_size (CLI: --patch-size N) or use larger images.")
            warnings.warn(f"{len(images) - len(large)} of {len(images)} images of {dataset} are "
                          f"smaller than the {self.patch_size}-pixel crops and are skipped.")
        return data.patch_dataset(large, self.patch_size, batch_size, seed=seed,
                                  start_batch=start_batch)

    def check_images(self, images):
        """uint8 `[N, H, W, C]` (or HWC) images with this model's channels, as a tensor."""
        images = tf.convert_to_tensor(images)
        if images.shape.rank == 3:
            images = images[None]
        if images.dtype != tf.uint8:
            raise ValueError(f"inpaint takes uint8 images (0..255), got {images.dtype.name}.")
        if images.shape.rank != 4 or images.shape[-1] != self.image_channels:
            raise ValueError(f"This model inpaints {self.image_channels}-channel images "
                             f"[N, H, W, {self.image_channels}], got {images.shape}.")
        if min(images.shape[1], images.shape[2]) < 2:
            raise ValueError(f"A {images.shape[1]}x{images.shape[2]} image is too small to "
                             "inpaint; images need at least 2x2 pixels.")
        return images

    def check_apply_options(self, mask=None):
        """`{"mask": ...}`: a mask is required (a file, a folder of `<stem>.png`, or an array)."""
        if mask is None:
            raise ValueError("Inpainting needs the holes: pass --mask MASK.png (white = hole) "
                             "or --mask DIR with one <image stem>.png per image.")
        if isinstance(mask, (str, Path)) and not Path(mask).exists():
            raise FileNotFoundError(f"--mask {mask}: no such file or folder.")
        return {"mask": mask}

    def read_image(self, path):
        """An 8-bit grey or RGB file (16-bit and alpha refused) in this model's channels."""
        return self.check_images(data.as_channels(data.read_image(path),
                                                  self.image_channels))[0]

    def read_inputs(self, path, mask=None):
        """The image file and its mask (the mask file, or `<DIR>/<image stem>.png`), checked."""
        image = self.read_image(path)
        mask_path = Path(mask)
        if mask_path.is_dir():
            mask_path = mask_path / f"{Path(path).stem}.png"
            if not mask_path.exists():
                raise FileNotFoundError(f"No mask for {path}: expected {mask_path}.")
        try:
            mask_image = data.read_image(mask_path)
        except ValueError as error:
            raise ValueError(f"Mask {error}") from None
        try:
            holes = check_masks(mask_image, image[None])
        except ValueError as error:
            raise ValueError(f"Mask {mask_path} for {path}: {error}") from None
        return image, {"mask": holes[0] > 0}

    def inpaint_float(self, images, holes):
        """Composited float images in [0, 1]: `images` `[N, H, W, C]` in [0, 1], `holes`
        `[N, H, W, 1]` (1 = hole). Reflect-pads to the network's multiple and crops back."""
        images = tf.cast(images, tf.float32)
        holes = tf.cast(holes, tf.float32)
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        known = 1.0 - holes
        inputs = tf.concat([images * known, known], axis=-1)
        if self.network_size is None:
            padded = pad_to_multiple(inputs, self.size_multiple)
            output = self.network([padded[..., :-1], padded[..., -1:]], training=False)
            output = output[:, :height, :width]
        else:  # a fixed-size network sees the image resized, its fill is resized back
            side = [self.network_size, self.network_size]
            resized = tf.image.resize(inputs, side, method="bilinear")
            # A pixel is known only if all of it was (no fill leaks into known input).
            resized_known = tf.cast(resized[..., -1:] > 0.999, tf.float32)
            output = self.network([resized[..., :-1] * resized_known, resized_known],
                                  training=False)
            output = tf.image.resize(output, [height, width], method="bilinear")
        output = tf.clip_by_value(output, 0.0, 1.0)
        # Known pixels come back exactly.
        return holes * output + known * images

    def inpaint_graph(self, images, holes):
        """`inpaint_float` as one traced graph (eager calls keep every layer's output)."""
        if "_compiled_inpaint" not in self.__dict__:
            channels = self.image_channels
            self.__dict__["_compiled_inpaint"] = tf.function(self.inpaint_float, input_signature=[
                tf.TensorSpec([None, None, None, channels], tf.float32),
                tf.TensorSpec([None, None, None, 1], tf.float32)])
        return self.__dict__["_compiled_inpaint"](images, holes)

    def apply(self, images, mask: str = None):
        """Inpaint uint8 images (`[N, H, W, C]` or HWC, any size) where `mask` is white.

        Args:
            images: uint8 images.
            mask: uint8 (0 = known, 255 = hole) or bool (True = hole) `[N, H, W, 1]`, `[H, W]`
                or one mask for all images; or a mask file's path.

        Returns:
            uint8 NHWC images, equal to the inputs wherever the mask is 0.
        """
        images = self.check_images(images)
        options = self.check_apply_options(mask)
        if isinstance(options["mask"], (str, Path)):
            options["mask"] = data.read_image(options["mask"])
        holes = check_masks(options["mask"], images)
        filled = self.inpaint_graph(tf.cast(images, tf.float32) / 255.0, holes)
        filled = unit_to_uint8(filled)
        # Exactly the input where known (rounding can never touch a known pixel).
        return tf.where(holes > 0, filled, images)

    def benchmark(self, dataset, data_dir=None, seed=0, masks: str = "freeform",
                  hole_ratio: str = None, num_images: int = None, grid: str = None):
        """Per-bucket PSNR / SSIM / L1 of this model and the classical inpainters on the same
        images and masks (see `kerasgen.models.inpainting.evaluation`)."""
        from kerasgen.models.inpainting.evaluation import evaluate_inpainting, inpainting_table

        report = evaluate_inpainting(self, dataset, kind=masks, hole_ratio=hole_ratio,
                                     num_images=num_images, data_dir=data_dir, seed=seed,
                                     grid=grid)
        return {**report, "lines": inpainting_table(report)}

    # --- export -----------------------------------------------------------------------------

    def serving_spec(self):
        """Signature `inpaint`: uint8 `image` [N, H, W, C] and uint8 `mask` [N, H, W, 1]
        (> 127 = hole), any height and width -> uint8 `image`, known pixels unchanged."""
        channels = self.image_channels

        def inpaint(image, mask):
            # > 127 as min(relu(mask - 127), 1), exact on integer levels: a GREATER and CAST
            # here made the full-int8 file abort LiteRT 2.3 on its first call (measured).
            # The composite keeps the known pixels, which round back to their exact levels.
            holes = tf.minimum(tf.nn.relu(tf.cast(mask, tf.float32) - 127.0), 1.0)
            composite = self.inpaint_float(tf.cast(image, tf.float32) / 255.0, holes)
            # An identity 1x1 convolution (exact in float) before the x 255: without one, the
            # int8 converter folds that multiplication into the ops before it and calibrates
            # the [0, 1] composite at the 0-255 range (uint8 -> / 255 -> x 255 -> uint8 alone
            # came back 48 levels off on average; with the convolution, 0).
            composite = tf.nn.conv2d(composite, tf.eye(channels)[None, None], 1, "SAME")
            return {"image": unit_to_uint8(composite)}

        specs = [tf.TensorSpec([None, None, None, channels], tf.uint8, name="image"),
                 tf.TensorSpec([None, None, None, 1], tf.uint8, name="mask")]
        return ServingSpec(networks=[self.network], endpoints={"inpaint": (inpaint, specs)},
                           default="inpaint", quantizations=quantizations_of([self.network]),
                           int8_float_ops=int8_float_ops_of([self.network]))

    def representative_inputs(self, num_batches=8, batch_size=4, size=256, seed=0):
        """Calibration inputs for int8 TFLite: photo crops and free-form masks. 256-pixel
        crops: calibrated on 64-pixel ones, the shipped pull-push model's int8 file was 99
        levels off at most (4.2 on average) on a 481x321 photo, on 256-pixel ones 32 (0.9)."""
        from kerasgen.data.sources import load_photos

        photos, _ = load_photos("all", crop_size=size, num_crops=num_batches * batch_size,
                                seed=seed)
        if self.image_channels == 1:
            photos = np.stack([data.as_channels(photo, 1) for photo in photos])
        masks = hole_masks.draw_masks([seed, 1], len(photos), size, size).numpy()
        masks = (masks * 255).astype(np.uint8)
        for index in range(num_batches):
            rows = slice(index * batch_size, (index + 1) * batch_size)
            yield [photos[rows], masks[rows]]

    def get_config(self):
        config = super().get_config()
        config.update({
            "network": keras.saving.serialize_keras_object(self.network),
            "masks": keras.saving.serialize_keras_object(self.masks),
            "valid_weight": self.valid_weight, "hole_weight": self.hole_weight,
            "tv_weight": self.tv_weight, "perceptual_weight": self.perceptual_weight,
            "style_weight": self.style_weight, "ssim_weight": self.ssim_weight,
            "reconstruction": self.reconstruction, "patch_size": self.patch_size,
            "size_multiple": self.size_multiple, "network_size": self.network_size,
            "learning_rate": self.learning_rate,
        })
        return config
