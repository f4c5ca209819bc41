"""Shared test set-up: two logical CPUs (for MirroredStrategy tests) and small fixtures."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The registry listing cache (`kerasgen.model_index`) of this test session, not the user's.
os.environ.setdefault("KERASGEN_CACHE_DIR", tempfile.mkdtemp(prefix="kerasgen-cache-"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Must run before TensorFlow initialises its devices: split the CPU into two logical devices
# so that MirroredStrategy can be tested with two replicas on any machine.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import kerasgen  # noqa: E402,F401
from kerasgen.models.dcgan import build_dcgan  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir():
    """$KERASGEN_DATA_DIR, or ../shared/data beside the checkout; skip if neither exists."""
    candidates = [os.environ.get("KERASGEN_DATA_DIR"), REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mnist").is_dir():
            return Path(candidate)
    pytest.skip("no KERASGEN_DATA_DIR with mnist/ (CI sets it to ../shared/data)")


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Two MirroredStrategy objects in one process reuse collective keys, so a second one can
    pair its all-reduces with the first one's and abort; create it once, as users should.
    """
    devices = [device.name for device in tf.config.list_logical_devices("CPU")[:2]]
    assert len(devices) == 2, "the CPU is split into two logical devices above"
    return tf.distribute.MirroredStrategy(devices)


def random_images(count=16, size=16, channels=1, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (count, size, size, channels)).astype("float32")


def tiny_dcgan(seed=0, size=16, channels=1):
    gan = build_dcgan((size, size, channels), latent_dim=8, base_filters=8, seed=seed)
    gan.compile()
    return gan


@pytest.fixture(scope="session")
def trained_tiny_dcgan():
    """A small DCGAN trained for a few steps on 16x16 digits (shared by export tests)."""
    gan = tiny_dcgan(seed=1)
    # A high learning rate, so that a few steps give images that vary (parity on a constant
    # image would prove nothing).
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(2e-3, beta_1=0.5))
    gan.fit(kerasgen.data.load_dataset("digits", batch_size=32, image_size=16, repeat=True),
            epochs=1, steps_per_epoch=60, verbose=0)
    return gan
