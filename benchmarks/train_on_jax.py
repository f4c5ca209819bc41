"""Train kerasgen's restoration networks on a machine with Keras on JAX and no TensorFlow.

A GPU machine may have JAX but no TensorFlow (issue 17). The restoration networks are
functional Keras models, so their configs and weights travel: this script packs them here,
trains them there with `model.fit` on the JAX backend, and loads the weights back into the
TensorFlow `Restorer`s here to evaluate (and ship) them exactly as `kerasgen evaluate` does.

    # 1. here (TensorFlow): the jobs' network configs, initial weights and training images
    KERASGEN_DATA_DIR=../shared/data python benchmarks/train_on_jax.py bundle BUNDLE \
        [--jobs dncnn_s25 ffdnet ...]
    # 2. there (KERAS_BACKEND=jax; imports neither TensorFlow nor kerasgen): every job at once,
    #    each in its own process for --seconds of training, weights written to OUT
    python benchmarks/train_on_jax.py train BUNDLE --out OUT --seconds 420
    # 3. here: load OUT's weights, evaluate on the standard sets; --ship writes saved_models/
    python benchmarks/train_on_jax.py evaluate BUNDLE OUT [--ship]

Training matches `Restorer.train_step`: random patches with the eight flips/rotations,
Gaussian noise added unclipped (one sigma per patch for blind training), MATLAB bicubic
down-scaling for SR (the same taps as `kerasgen.data.restoration.bicubic_downscale`, here as
matrices), the LR patch rounded to 8 bits as the shipped LR files are, the loss per pixel over
the network's colour space (grey, RGB, or Y). The learning rate follows a cosine over the time
budget (set per epoch of `STEPS_PER_EPOCH` steps), so a job gets as many steps as its share of
the accelerator allows. Not part of the test suite; `tests/test_train_on_jax.py` runs it for a
few steps on the TensorFlow backend.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

STEPS_PER_EPOCH = 100
# name -> build_restorer arguments, shipped model to start from (None: from scratch), training
# images ("grey": Train400; "rgb": T91 + horse2zebra's train subsets; "y": the Y channel of
# T91 and Train400), HR patch side, batch, peak learning rate, evaluation sets, the shipped
# name and its weights' dtype (float16 where float32 would pass the 4 MiB of a shipped model).
# The ~9 minutes of an H200 lent to a session ran them all at once.
JOBS = {
    "dncnn_s25": dict(description="DnCNN-S (Zhang et al. 2017), grey, one noise level "
                                  "(sigma=25)",
                      restorer=dict(architecture="dncnn", sigma=25.0), init="dncnn_grey_s25",
                      images="grey", patch=40, batch=128, learning_rate=5e-4,
                      sets=[("BSD68", 25.0, None), ("Set12", 25.0, None)],
                      ship="dncnn_grey_s25"),
    "ffdnet": dict(description="FFDNet (Zhang et al. 2018), grey, one network for sigma in "
                               "[0, 75] with the noise level as input",
                   restorer=dict(architecture="ffdnet", sigma_range=(0.0, 75.0)), init=None,
                   images="grey", patch=64, batch=128, learning_rate=1e-3,
                   sets=[(name, sigma, None) for sigma in (15.0, 25.0, 50.0)
                         for name in ("BSD68", "Set12")], ship="ffdnet_grey"),
    "cdncnn_s25": dict(description="DnCNN, 20 layers, colour, one noise level (sigma=25)",
                       restorer=dict(architecture="dncnn", color="rgb", depth=20, sigma=25.0),
                       init=None, images="rgb", patch=50, batch=128, learning_rate=1e-3,
                       sets=[("CBSD68", 25.0, None)], ship="dncnn_color_s25"),
    "fsrcnn_x3": dict(description="FSRCNN(56, 12, 4) (Dong et al. 2016), x3 on the Y channel",
                      restorer=dict(architecture="fsrcnn", color="y", scale=3),
                      init="fsrcnn_x3", images="y", patch=48, batch=128, learning_rate=5e-4,
                      sets=[("Set5", None, 3), ("Set14", None, 3)], ship="fsrcnn_x3"),
    # A wider FSRCNN(56, 32, 8), still under the 100k parameters for x3.
    "fsrcnn_wide_x3": dict(description="FSRCNN(56, 32, 8), x3 on the Y channel",
                           restorer=dict(architecture="fsrcnn", color="y", scale=3, s=32, m=8),
                           init=None, images="y", patch=48, batch=128, learning_rate=1e-3,
                           sets=[("Set5", None, 3), ("Set14", None, 3)], ship="fsrcnn_x3"),
    # EDSR-baseline's shape cut to 4 blocks of 24 filters: under the 100k parameters
    # for x3 (its x3 up-sampler alone takes 47k), where FSRCNN stops at 32.4 dB on Set5.
    "edsr_tiny_x3": dict(description="EDSR-baseline's shape with 4 residual blocks of 24 "
                                     "filters, x3 on the Y channel",
                         restorer=dict(architecture="edsr", color="y", scale=3, loss="l1",
                                       num_blocks=4, num_filters=24),
                         init=None, images="y", patch=96, batch=32, learning_rate=5e-4,
                         sets=[("Set5", None, 3), ("Set14", None, 3)], ship="edsr_tiny_x3"),
    "edsr_x2": dict(description="EDSR-baseline (Lim et al. 2017), 16 residual blocks, x2 on "
                                "the Y channel",
                    restorer=dict(architecture="edsr", color="y", scale=2, loss="l1"),
                    init=None, images="y", patch=96, batch=32, learning_rate=2e-4,
                    weight_dtype="float16",
                    sets=[("Set5", None, 2), ("Set14", None, 2)], ship="edsr_x2"),
    # 15 blocks keep x4 (two x2 up-samplers) under the 1.5M parameters.
    "edsr_x4": dict(description="EDSR-baseline (Lim et al. 2017) with 15 residual blocks, x4 "
                                "on the Y channel",
                    restorer=dict(architecture="edsr", color="y", scale=4, loss="l1",
                                  num_blocks=15),
                    init=None, images="y", patch=128, batch=32, learning_rate=2e-4,
                    weight_dtype="float16",
                    sets=[("Set5", None, 4), ("Set14", None, 4)], ship="edsr_x4"),
}
# From scratch within issue 17's 30 CPU-minutes (`train-one ... --cpu --seconds 1700`, one
# core each): a U-Net after DRUNet, and the networks it was chosen over on a validation set
# (Set5 + Set14 in grey; README, "Benchmarks"): FFDNet's half-resolution body and narrower
# DnCNN/FFDNet buy more patches per CPU-second than DnCNN-S, the U-Net more still.
JOBS["unet_s25_cpu30"] = dict(
    description="U-Net denoiser after DRUNet (Zhang et al. 2021), grey, one noise level "
                "(sigma=25), trained from scratch within 30 CPU-minutes",
    restorer=dict(architecture="unet_denoiser", sigma=25.0), init=None, images="grey",
    patch=64, batch=32, learning_rate=1e-3, weight_dtype="float16",
    sets=[("BSD68", 25.0, None), ("Set12", 25.0, None)], ship="unet_grey_s25_cpu30")
for variant, changes in {
        "unet_lr5_s25_cpu30": {"learning_rate": 5e-4},
        "ffdnet_s25_cpu30": {"restorer": dict(architecture="ffdnet", sigma=25.0)},
        "ffdnet_small_s25_cpu30": {"restorer": dict(architecture="ffdnet", sigma=25.0, depth=12,
                                                    num_filters=48)},
        "dncnn_s25_cpu30": {"restorer": dict(architecture="dncnn", sigma=25.0), "patch": 40},
        "dncnn_small_s25_cpu30": {"restorer": dict(architecture="dncnn", sigma=25.0, depth=12,
                                                   num_filters=48), "patch": 40, "batch": 64},
        # 30 more CPU-minutes from the 30-minute U-Net's weights: the shipped grey sigma-25
        # U-Net.
        "unet_s25_more": {"init": "unet_grey_s25_cpu30", "learning_rate": 5e-4,
                          "ship": "unet_grey_s25",
                          "description": "U-Net denoiser after DRUNet (Zhang et al. 2021), "
                                         "grey, one noise level (sigma=25), trained on a "
                                         "2-core CPU in two stages of 30 CPU-minutes"},
}.items():
    JOBS[variant] = {**JOBS["unet_s25_cpu30"], **changes}
# More steps for the tiny EDSR, from its shipped weights.
JOBS["edsr_tiny_x3_more"] = {**JOBS["edsr_tiny_x3"], "init": "edsr_tiny_x3", "learning_rate": 2e-4}
# Issue 17's colour row (CBSD68 sigma 25 >= 30.9) with the U-Net that met the grey rows on this
# CPU, on 64- and 96-pixel patches (the U-Net sees 195 pixels); chosen on Set5 + Set14 in colour.
JOBS["unet_color_s25"] = {
    **JOBS["unet_s25_cpu30"], "images": "rgb", "sets": [("CBSD68", 25.0, None)],
    "restorer": dict(architecture="unet_denoiser", color="rgb", sigma=25.0),
    "ship": "unet_color_s25",
    "description": "U-Net denoiser after DRUNet (Zhang et al. 2021), colour, one noise level "
                   "(sigma=25), trained on a 2-core CPU"}
JOBS["unet_color_s25_p96"] = {**JOBS["unet_color_s25"], "patch": 96, "batch": 16}


# --- here: the bundle ------------------------------------------------------------------------

def build_job_model(job):
    """The TensorFlow `Restorer` of a job (kerasgen imported here only), with the job's
    training patch: the shipped model's config then records what it trained on, and its
    batch norms' population statistics (`recompute_batch_norm`) come from patches of that
    size (they depend on it: 40-pixel patches moved the shipped FFDNet's by up to 23 %)."""
    from kerasgen.models.restoration import build_restorer

    scale = job["restorer"].get("scale", 1)  # Restorer.patch_size counts network-input pixels
    return build_restorer(patch_size=job["patch"] // scale, **job["restorer"])


def downscale_matrix(side, scale):
    """`A` with `A @ X @ A.T == bicubic_downscale(X)` for `side`x`side` patches.

    The down-scaler is linear and separable and its taps sum to 1, so the image whose row i is
    all ones comes out as column i of `A` repeated along every column.
    """
    from kerasgen.data.restoration import bicubic_downscale

    basis = np.zeros((side, side, side, 1), np.float32)
    basis[np.arange(side), np.arange(side), :, 0] = 1.0
    return np.asarray(bicubic_downscale(basis, scale))[:, :, 0, 0].T.copy()


# Training images by kind: the image sets it draws from (Y images are computed there).
KINDS = {"grey": ["train400"], "rgb": ["t91", "horse2zebra"], "y": ["t91", "train400"]}
# horse2zebra's first photos of each train subset: the bundle must travel in 64 MiB.
HORSE2ZEBRA_PHOTOS = 150


def image_files(source, data_dir=None):
    """The training files of one image set, as encoded bytes (PNG, or the JPEG as shipped)."""
    import io

    from PIL import Image

    from kerasgen.data import restoration as rdata

    if source == "horse2zebra":
        folder = rdata._data_folder("cyclegan/horse2zebra", data_dir)
        return [path.read_bytes() for sub in ("trainA_subset200", "trainB_subset200")
                for path in sorted((folder / sub).glob("*.jpg"))[:HORSE2ZEBRA_PHOTOS]]
    encoded = []
    for image in rdata.load_images(source, data_dir):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    return encoded


def bundle(out, names, data_dir=None):
    """Write BUNDLE/: `jobs.json`, `<job>.json` (network config), `<job>.init.npz`
    (when the job starts from a shipped model), `<job>.downscale.npy` (SR jobs) and
    `images_<set>.npz` (the encoded training files)."""
    from kerasgen import store
    from kerasgen.data import restoration as rdata

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = {}
    for name in names:
        job = JOBS[name]
        model = build_job_model(job)
        network = model.network
        if job["init"]:
            network.set_weights(store.load_model(job["init"]).network.get_weights())
            save_layer_weights(network, out / f"{name}.init.npz")
        (out / f"{name}.json").write_text(network.to_json())
        degradation = model.degradation
        task = {"loss": model.loss, "scale": model.scale, "conditioned": model.conditioned,
                "sigma": getattr(degradation, "sigma", None),
                "sigma_range": getattr(degradation, "sigma_range", None)}
        if model.scale > 1:
            np.save(out / f"{name}.downscale.npy", downscale_matrix(job["patch"], model.scale))
        jobs[name] = {**{key: job[key] for key in ("init", "images", "patch", "batch",
                                                   "learning_rate")},
                      **task, "params": network.count_params()}
        print(f"{name}: {network.count_params():,} parameters, {task}", flush=True)
    for source in sorted({source for name in names for source in KINDS[JOBS[name]["images"]]}):
        files = image_files(source, data_dir)
        np.savez(out / f"images_{source}.npz",
                 blob=np.frombuffer(b"".join(files), np.uint8),
                 ends=np.cumsum([len(encoded) for encoded in files]))
        print(f"images_{source}: {len(files)} files, "
              f"{sum(map(len, files)) / 2**20:.1f} MiB", flush=True)
    (out / "jobs.json").write_text(json.dumps(
        {"jobs": jobs, "kinds": KINDS, "y_weights": rdata.Y_WEIGHTS, "y_offset": rdata.Y_OFFSET},
        indent=2))


# --- there: training on any Keras backend ----------------------------------------------------

def portable_layers():
    """kerasgen's custom layers of the restoration networks in `keras.ops` (kerasgen's own use
    TensorFlow ops), under their registered names: same configs, same weights."""
    import keras
    from keras import ops

    class PixelShuffle(keras.layers.Layer):
        def __init__(self, block_size, **kwargs):
            super().__init__(**kwargs)
            self.block_size = int(block_size)

        def call(self, inputs):  # tf.nn.depth_to_space: channel (i * r + j) * C + c
            r = self.block_size
            channels = inputs.shape[-1] // r**2
            batch, height, width = (ops.shape(inputs)[axis] for axis in range(3))
            x = ops.reshape(inputs, (batch, height, width, r, r, channels))
            x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
            return ops.reshape(x, (batch, height * r, width * r, channels))

        def get_config(self):
            return {**super().get_config(), "block_size": self.block_size}

    class PixelUnshuffle(PixelShuffle):
        def call(self, inputs):  # tf.nn.space_to_depth
            r = self.block_size
            channels = inputs.shape[-1]
            batch, height, width = (ops.shape(inputs)[axis] for axis in range(3))
            x = ops.reshape(inputs, (batch, height // r, r, width // r, r, channels))
            x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
            return ops.reshape(x, (batch, height // r, width // r, r * r * channels))

    class NoiseLevelMap(keras.layers.Layer):
        def call(self, features, sigma):
            return ops.ones_like(features[..., :1]) * sigma[:, None, None, :]

    class BatchNormalization(keras.layers.BatchNormalization):
        # kerasgen's subclass only swaps in TensorFlow's fused kernel; `synchronized`
        # (global-batch statistics under tf.distribute) is TensorFlow's alone.
        def __init__(self, synchronized=False, **kwargs):
            super().__init__(**kwargs)

    return {"kerasgen>PixelShuffle": PixelShuffle, "kerasgen>PixelUnshuffle": PixelUnshuffle,
            "kerasgen>NoiseLevelMap": NoiseLevelMap,
            "kerasgen>BatchNormalization": BatchNormalization}


def save_layer_weights(network, path):
    """The network's weights by layer name, as `.npz` (no optimizer state: a third of the
    size of a compiled model's `.weights.h5`, and independent of the layers' classes)."""
    arrays = {f"{layer.name}/{index}": np.asarray(weight)
              for layer in network.layers for index, weight in enumerate(layer.get_weights())}
    partial = Path(f"{path}.partial.npz")
    np.savez(partial, **arrays)
    partial.replace(path)


def load_layer_weights(network, path):
    """Set the weights written by `save_layer_weights`; every layer must match in name and
    shape."""
    with np.load(path) as arrays:
        for layer in network.layers:
            count = len(layer.get_weights())
            keys = [f"{layer.name}/{index}" for index in range(count)]
            missing = [key for key in keys if key not in arrays]
            if missing:
                raise ValueError(f"{path} has no weights for layer {layer.name!r} of "
                                 f"{network.name!r}: it was saved from another network.")
            if count:
                layer.set_weights([arrays[key] for key in keys])


def load_images(bundle_dir, kind):
    """The uint8 HxWxC training images of one kind, decoded from the bundle."""
    import io

    from PIL import Image

    bundle_dir = Path(bundle_dir)
    manifest = json.loads((bundle_dir / "jobs.json").read_text())
    images = []
    for source in manifest["kinds"][kind]:
        with np.load(bundle_dir / f"images_{source}.npz") as packed:
            blob, ends = packed["blob"], packed["ends"]
        for start, end in zip([0, *ends[:-1]], ends):
            image = np.asarray(Image.open(io.BytesIO(blob[start:end].tobytes())))
            image = image[..., None] if image.ndim == 2 else image
            if kind == "grey":
                images.append(image[..., :1])
                continue
            if kind == "rgb":
                images.append(np.repeat(image, 3, -1) if image.shape[-1] == 1 else image)
                continue
            # "y": the Restorer's Y, BT.601 luma in [16, 235] of the RGB (grey replicated),
            # rounded to 8 bits.
            rgb = np.broadcast_to(image, image.shape[:2] + (3,)).astype(np.float32) / 255.0
            luma = rgb @ np.array(manifest["y_weights"], np.float32) + manifest["y_offset"]
            images.append(np.clip(np.round(255.0 * luma), 0, 255).astype(np.uint8)[..., None])
    return images


def dihedral(patch, index):
    """One of the eight flips/rotations (DnCNN's augmentation)."""
    patch = np.rot90(patch, index % 4)
    return patch[:, ::-1] if index >= 4 else patch


def make_batches(job, images, matrix=None, steps_per_epoch=STEPS_PER_EPOCH):
    """A `keras.utils.PyDataset` of `(inputs, targets)`, seeded by the batch index."""
    import keras

    side, batch = job["patch"], job["batch"]
    usable = [image for image in images if min(image.shape[:2]) >= side]
    if not usable:
        raise ValueError(f"No training image is at least {side} pixels on each side.")

    class Batches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=4, use_multiprocessing=False, max_queue_size=16)

        def __len__(self):
            return steps_per_epoch

        def __getitem__(self, index):
            rng = np.random.default_rng([job.get("seed", 0), self.epoch, index])
            clean = np.empty((batch, side, side, usable[0].shape[-1]), np.float32)
            for slot, pick in enumerate(rng.integers(len(usable), size=batch)):
                image = usable[pick]
                top = rng.integers(image.shape[0] - side + 1)
                left = rng.integers(image.shape[1] - side + 1)
                clean[slot] = dihedral(image[top:top + side, left:left + side],
                                       rng.integers(8))
            clean /= 255.0
            if job["scale"] > 1:
                # MATLAB's bicubic, then 8 bits as in the shipped LR files.
                low = np.einsum("ij,bjkc,lk->bilc", matrix, clean, matrix, optimize=True)
                low = np.clip(np.round(low * 255.0), 0.0, 255.0) / 255.0
                return low.astype(np.float32), clean
            if job["sigma_range"]:
                sigma = rng.uniform(*job["sigma_range"], size=(batch, 1)).astype(np.float32)
            else:
                sigma = np.full((batch, 1), job["sigma"], np.float32)
            noisy = clean + (sigma[:, :, None, None] / 255.0) * rng.standard_normal(
                clean.shape, dtype=np.float32)
            inputs = (noisy, sigma / 255.0) if job["conditioned"] else noisy
            return inputs, clean

        def on_epoch_end(self):
            self.epoch += 1

    batches = Batches()
    batches.epoch = 0
    return batches


def train_job(bundle_dir, name, out, seconds, seed=0, steps_per_epoch=STEPS_PER_EPOCH,
              batch=None, cpu_budget=False):
    """Train one job for `seconds` of fitting; weights to OUT/<name>.npz (also every
    minute, so a killed run still leaves its latest weights).

    `cpu_budget`: `seconds` counts this process's CPU seconds from its start (loading and
    compiling included, every core), the budget a "trained in N CPU-minutes" claim states;
    otherwise wall seconds after the first, compiling, epoch (the accelerator's time)."""
    import keras

    bundle_dir, out = Path(bundle_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "summary.txt"
    if not log.exists():  # `train-one` on its own; `train` wrote the line for all its jobs
        log.write_text(f"machine: {machine_line()}\n")
    job = json.loads((bundle_dir / "jobs.json").read_text())["jobs"][name]
    job = {**job, "seed": seed, "batch": batch or job["batch"]}
    keras.utils.set_random_seed(seed)
    network = keras.models.model_from_json((bundle_dir / f"{name}.json").read_text(),
                                           custom_objects=portable_layers())
    if job["init"]:
        load_layer_weights(network, bundle_dir / f"{name}.init.npz")
    matrix = (np.load(bundle_dir / f"{name}.downscale.npy") if job["scale"] > 1 else None)
    batches = make_batches(job, load_images(bundle_dir, job["images"]), matrix, steps_per_epoch)
    peak = job["learning_rate"]
    network.compile(optimizer=keras.optimizers.Adam(peak),
                    loss="mae" if job["loss"] == "l1" else "mse")
    weights = out / f"{name}.npz"

    budget_clock = time.process_time if cpu_budget else time.perf_counter

    class TimeBudget(keras.callbacks.Callback):
        """Cosine learning rate over the time budget, periodic saves, stop at the budget."""

        def on_train_begin(self, logs=None):
            self.start = self.saved = None
            # A wall budget counts from the end of the first epoch, which compiles.
            self.budget_start = 0.0 if cpu_budget else None
            self.printed, self.steps = 0.0, 0

        def on_epoch_begin(self, epoch, logs=None):
            if self.budget_start is None:
                return
            done = min(1.0, (budget_clock() - self.budget_start) / seconds)
            self.model.optimizer.learning_rate = peak * (0.01 + 0.99 * 0.5 * (
                1.0 + math.cos(math.pi * done)))

        def on_epoch_end(self, epoch, logs=None):
            self.steps += steps_per_epoch
            now = time.perf_counter()
            if self.start is None:
                self.start = self.saved = now
            if self.budget_start is None:
                self.budget_start = budget_clock()
            spent = budget_clock() - self.budget_start
            elapsed = now - self.start
            loss = logs["loss"]
            line = (f"{name} epoch {epoch + 1} steps {self.steps} {elapsed:.0f}s loss {loss:.6f}"
                    + (f" psnr {-10 * math.log10(loss):.2f}" if job["loss"] == "l2" else "")
                    + f" lr {float(self.model.optimizer.learning_rate):.2e}")
            if now - self.printed > 20 or spent >= seconds:
                print(line, flush=True)
                self.printed = now
            if now - self.saved > 60 or spent >= seconds:
                save_layer_weights(network, weights)
                self.saved = now
            if spent >= seconds:
                self.model.stop_training = True
                with open(log, "a") as handle:
                    handle.write(line + f" seconds_per_step "
                                 f"{elapsed / max(1, self.steps - steps_per_epoch):.4f} "
                                 f"cpu_seconds {time.process_time():.0f}\n")

    network.fit(batches, epochs=10**6, verbose=0, callbacks=[TimeBudget()])
    save_layer_weights(network, weights)


def machine_line():
    """What trains: the accelerator and the Keras backend's versions."""
    import keras

    if keras.backend.backend() != "jax":
        import platform

        return f"Keras {keras.__version__} on {keras.backend.backend()}, {os.cpu_count()} " \
               f"CPU cores ({platform.machine()})"
    import jax

    device = jax.devices()[0]
    return f"{device.device_kind} ({device.platform}), Keras {keras.__version__} on JAX " \
           f"{jax.__version__}"


def train_all(bundle_dir, out, seconds, names=None, options=()):
    """Every job of the bundle in its own process, at once; returns the failed jobs.
    OUT/summary.txt starts with the machine line and gets each job's final line."""
    names = names or list(json.loads((Path(bundle_dir) / "jobs.json").read_text())["jobs"])
    Path(out).mkdir(parents=True, exist_ok=True)
    # The jobs share the accelerator: none takes its memory up front.
    os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    with open(Path(out) / "summary.txt", "a") as handle:
        handle.write(f"machine: {machine_line()}\n")
    processes = {name: subprocess.Popen(
        [sys.executable, __file__, "train-one", str(bundle_dir), name, "--out", str(out),
         "--seconds", str(seconds), *options]) for name in names}
    return [name for name, process in processes.items() if process.wait() != 0]


# --- here: evaluation and shipping -----------------------------------------------------------

def trained_on_jax(machine):
    """Whether a summary's machine line is a Keras-on-JAX machine (its CPU seconds are the
    host's, not this CPU's)."""
    return "JAX" in (machine or "")


def training_record(weights_dir, name):
    """`{"steps", "seconds", "seconds_per_step", "jobs"}` of a job from OUT/summary.txt
    (`jobs`: how many jobs the run trained at once), and its machine line."""
    lines = (Path(weights_dir) / "summary.txt").read_text().splitlines()
    machine = next((line[len("machine: "):] for line in lines if line.startswith("machine: ")),
                   None)
    jobs = sum(not line.startswith("machine: ") for line in lines)
    for line in lines:
        words = line.split()
        if words and words[0] == name:
            return {"steps": int(words[words.index("steps") + 1]),
                    "seconds": float(words[words.index("steps") + 2].rstrip("s")),
                    "seconds_per_step": float(words[words.index("seconds_per_step") + 1]),
                    "jobs": jobs, "cpu_seconds": float(words[words.index("cpu_seconds") + 1])
                    if "cpu_seconds" in words else None}, machine
    raise ValueError(f"{name}: no final line in {weights_dir}/summary.txt.")


def job_model_card(name, job_name, model, record, machine, rows, earlier=None):
    """The model card of a model trained by this script."""
    import platform

    import bench_restoration

    job, options = JOBS[job_name], JOBS[job_name]["restorer"]
    sources = {"grey": "Train400", "rgb": f"T91 and horse2zebra's first {HORSE2ZEBRA_PHOTOS} "
               "photos of each train subset (JPEG)", "y": "T91 and Train400, Y channel"}
    degradation = (f"bicubic x{model.scale} (MATLAB's, rounded to 8 bits)" if model.scale > 1
                   else f"Gaussian noise, sigma {options['sigma']:g}" if "sigma" in options
                   else f"Gaussian noise, sigma uniform in {list(options['sigma_range'])} "
                        "per patch, given to the network")
    lines = [
        f"# {name}", "",
        f"{job['description']}. Load it with `kerasgen.store.load_model({name!r})` or "
        f"`kerasgen restore {name} INPUT... --out DIR`.", "",
        "## Training",
        f"- Network: `build_restorer({', '.join(f'{k}={v!r}' for k, v in options.items())})`; "
        f"{model.network.count_params():,} parameters; receptive field {model.min_size} px.",
        f"- Data: {sources[job['images']]}; random {job['patch']}-pixel patches with flips "
        f"and rotations, {degradation}.",
        f"- Steps: {record['steps']:,} at batch {job['batch']}, Adam "
        f"{job['learning_rate']:g} on a cosine to {job['learning_rate'] / 100:g} over the "
        f"time budget, {model.loss.upper()} loss (`benchmarks/train_on_jax.py`).",
        f"- Hardware and budget: {machine or 'not recorded'}: {record['seconds']:.0f} s of "
        f"training after compilation ({1000 * record['seconds_per_step']:.0f} ms per step"
        + (f"; {record['cpu_seconds'] / 60:.1f} CPU-min in all"
           if record["cpu_seconds"] and not trained_on_jax(machine) else "") + ")"
        + (f", the run's {record['jobs']} jobs at once, sharing the machine." if record["jobs"] > 1
           else ", alone on the machine."),
        *([f"- Fine-tuned: started from the shipped `{earlier['from']}` ({earlier['steps']:,} "
           f"CPU steps, {earlier['cpu_s'] / 60:.0f} CPU-min; see git history), with a fresh "
           "optimizer."] if earlier else ["- From scratch."]),
        f"- Evaluated here with TensorFlow on {os.cpu_count()} CPU cores ({platform.machine()}): "
        + ("the JAX-trained weights loaded into kerasgen's TensorFlow network, whose outputs "
           "match the JAX network's within 2e-6." if trained_on_jax(machine) else
           "the trained weights loaded into kerasgen's `Restorer`.")
        + " LiteRT latencies on this CPU.",
        "", *bench_restoration.measured_table(rows)]
    return "\n".join(lines) + "\n"


def evaluate(bundle_dir, weights_dir, names=None, ship=False, data_dir=None):
    """Load each job's trained weights into its TensorFlow `Restorer` and measure it; with
    `ship`, write `saved_models/<job's ship name>` and measure the shipped file itself."""
    import tempfile

    bundle_dir, weights_dir = Path(bundle_dir), Path(weights_dir)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in names or list(json.loads((bundle_dir / "jobs.json").read_text())["jobs"]):
            path = weights_dir / f"{name}.npz"
            if not path.exists():
                print(f"{name}: no {path}", flush=True)
                continue
            results[name] = evaluate_job(name, path, weights_dir, Path(scratch) / name, ship,
                                         data_dir)
    (weights_dir / "evaluation.json").write_text(json.dumps(results, indent=2))
    return results


def evaluate_job(name, path, weights_dir, scratch, ship, data_dir):
    """The benchmark rows of one job's weights (`evaluate`); `scratch` takes its exports."""
    import bench_restoration

    from kerasgen import export, store

    job = JOBS[name]
    model = build_job_model(job)
    load_layer_weights(model.network, path)
    record, machine = training_record(weights_dir, name)
    earlier = bench_restoration.earlier_training(job["init"]) if job["init"] else None
    weight_dtype = job.get("weight_dtype", "float32")
    if ship:
        # Measured on the file that ships (float16 weights where float32 is over 4 MiB).
        model = store.load_model(store.ship_model(model, job["ship"], "", folder=scratch,
                                                  weight_dtype=weight_dtype))
    budget = f"{record['steps']} steps, {record['seconds'] / 60:.0f} min" + (
        f" after {earlier['steps']} (--init {earlier['from']})" if earlier else "")
    tflite_files = [export.export_model(model, scratch, f"{model.network.name}_{kind}",
                                        ("tflite",), kind)[1] for kind in ("none", "int8")]
    rows = []
    for dataset, sigma, scale in job["sets"]:
        row, _ = bench_restoration.measure(model, job["restorer"]["architecture"], dataset,
                                           sigma, scale, tflite_files, budget, data_dir)
        rows.append(row)
        print(name, row, flush=True)
    if ship:
        # As `bench_restoration.earlier_training` reads it: the whole history's steps and
        # wall seconds, and CPU seconds where the training ran on this kind of CPU.
        before = earlier or {"steps": 0, "wall_s": 0.0, "cpu_s": 0.0}
        on_cpu = not trained_on_jax(machine) and record["cpu_seconds"] is not None
        training = {"steps": before["steps"] + record["steps"],
                    "wall_s": before["wall_s"] + record["seconds"],
                    "cpu_s": before["cpu_s"] + (record["cpu_seconds"] if on_cpu else 0.0),
                    "run": {"steps": record["steps"], "seconds": record["seconds"],
                            "cpu_seconds": record["cpu_seconds"], "machine": machine},
                    **({"init_from": earlier} if earlier else {})}
        card = job_model_card(job["ship"], name, model, record, machine, rows, earlier)
        folder = store.ship_model(model, job["ship"], card, {"rows": rows, "training": training},
                                  train_data=", ".join(KINDS[job["images"]]),
                                  weight_dtype=weight_dtype)
        print("shipped:", folder, flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    packing = commands.add_parser("bundle", help="here: pack configs, weights and images")
    packing.add_argument("bundle")
    packing.add_argument("--jobs", nargs="+", default=list(JOBS), choices=sorted(JOBS))
    packing.add_argument("--data-dir")
    for command in ("train", "train-one"):
        training = commands.add_parser(command, help="there: train the bundle's jobs")
        training.add_argument("bundle")
        if command == "train-one":
            training.add_argument("job")
        else:
            training.add_argument("--jobs", nargs="+")
        training.add_argument("--out", required=True)
        training.add_argument("--seconds", type=float, required=True)
        training.add_argument("--cpu", action="store_true",
                              help="--seconds is a budget of this process's CPU seconds from "
                                   "its start (all cores, loading and compiling included), "
                                   "not wall seconds of fitting")
        training.add_argument("--steps-per-epoch", type=int, default=STEPS_PER_EPOCH)
        training.add_argument("--batch", type=int, help="override every job's batch")
    evaluating = commands.add_parser("evaluate", help="here: load and measure the weights")
    evaluating.add_argument("bundle")
    evaluating.add_argument("weights")
    evaluating.add_argument("--jobs", nargs="+")
    evaluating.add_argument("--data-dir")
    evaluating.add_argument("--ship", action="store_true",
                            help="write saved_models/<name> (with its card) for each job")
    args = parser.parse_args()
    for option in ("seconds", "steps_per_epoch", "batch"):
        if getattr(args, option, None) is not None and getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} must be positive, got "
                         f"{getattr(args, option)}.")
    if args.command == "bundle":
        bundle(args.bundle, args.jobs, args.data_dir)
    elif args.command == "train":
        options = ["--steps-per-epoch", str(args.steps_per_epoch)] + (
            ["--batch", str(args.batch)] if args.batch else []) + (["--cpu"] if args.cpu else [])
        failed = train_all(args.bundle, args.out, args.seconds, args.jobs, options)
        if failed:
            sys.exit(f"failed: {', '.join(failed)}")
    elif args.command == "train-one":
        train_job(args.bundle, args.job, args.out, args.seconds,
                  steps_per_epoch=args.steps_per_epoch, batch=args.batch, cpu_budget=args.cpu)
    else:
        evaluate(args.bundle, args.weights, args.jobs, ship=args.ship, data_dir=args.data_dir)


if __name__ == "__main__":
    main()
