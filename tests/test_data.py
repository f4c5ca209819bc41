import gzip
import struct
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerasgen import data
from kerasgen.data import DataError, load_arrays, load_dataset, read_idx


def _raw_idx(path, offset):
    return np.frombuffer(gzip.open(path).read(), np.uint8, offset=offset)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_parsing_is_byte_exact(data_dir, name):
    for prefix, count in (("train", 60000), ("t10k", 10000)):
        images = read_idx(data_dir / name / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(data_dir / name / f"{prefix}-labels-idx1-ubyte.gz")
        assert images.shape == (count, 28, 28) and images.dtype == np.uint8
        raw_images = _raw_idx(data_dir / name / f"{prefix}-images-idx3-ubyte.gz", 16)
        np.testing.assert_array_equal(images.reshape(-1), raw_images)
        np.testing.assert_array_equal(
            labels, _raw_idx(data_dir / name / f"{prefix}-labels-idx1-ubyte.gz", 8))
    if name == "mnist":  # per-class test counts from the data set's manifest
        counts = np.bincount(read_idx(data_dir / name / "t10k-labels-idx1-ubyte.gz"))
        assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_mnist_pipeline_values_and_labels(data_dir):
    dataset = load_dataset("mnist", batch_size=100, split="test", shuffle=False, data_dir=data_dir)
    images, labels = next(iter(dataset))
    assert images.shape == (100, 28, 28, 1) and images.dtype == tf.float32
    raw = _raw_idx(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", 16)[:100 * 784]
    np.testing.assert_allclose(images.numpy().reshape(-1), raw / 127.5 - 1.0, atol=1e-6)
    assert float(tf.reduce_min(images)) == -1.0 and float(tf.reduce_max(images)) == 1.0
    np.testing.assert_array_equal(
        labels.numpy(), _raw_idx(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", 8)[:100])
    assert len(list(dataset)) == 100  # 10,000 test images in batches of 100


def _write_idx(path, magic, shape, payload=None):
    header = struct.pack(">I", magic) + struct.pack(f">{len(shape)}I", *shape)
    payload = bytes(int(np.prod(shape))) if payload is None else payload
    with gzip.open(path, "wb") as handle:
        handle.write(header + payload)


def _fake_mnist(root, images_magic=2051, labels_magic=2049, truncate=False):
    folder = root / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        payload = bytes(3 * 4 * 4 - (5 if truncate else 0))
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images_magic, (3, 4, 4), payload)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels_magic, (3,))
    return folder


def test_idx_small_file_round_trip(tmp_path):
    _fake_mnist(tmp_path)
    images, labels = load_arrays("mnist", data_dir=tmp_path)
    assert images.shape == (3, 4, 4, 1) and labels.tolist() == [0, 0, 0]


@pytest.mark.parametrize("kwargs, message", [
    ({"images_magic": 0x12345678}, "wrong IDX magic"),
    ({"images_magic": 2049, "labels_magic": 2051}, "swapped"),
    ({"truncate": True}, "truncated"),
])
def test_idx_errors_name_the_file(tmp_path, kwargs, message):
    _fake_mnist(tmp_path, **kwargs)
    with pytest.raises(DataError, match=message) as error:
        load_arrays("mnist", data_dir=tmp_path)
    assert "train-" in str(error.value)


def test_corrupt_gzip_and_missing_files(tmp_path):
    folder = _fake_mnist(tmp_path)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*download it again"):
        load_arrays("mnist", data_dir=tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    (folder / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="Missing .*train-images-idx3-ubyte.gz"):
        load_arrays("mnist", data_dir=tmp_path)
    with pytest.raises(DataError, match="fashion_mnist does not exist"):
        load_arrays("fashion_mnist", data_dir=tmp_path)


def test_missing_data_dir_names_the_variable(monkeypatch):
    monkeypatch.delenv("KERASGEN_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="KERASGEN_DATA_DIR"):
        load_arrays("mnist")


def test_embedded_sources():
    digits_train, digit_labels = load_arrays("digits")
    digits_test, _ = load_arrays("digits", split="test")
    assert digits_train.shape[1:] == (8, 8, 1) and len(digits_train) + len(digits_test) == 1797
    assert digits_train.max() == 255 and set(digit_labels.tolist()) == set(range(10))
    faces, face_labels = load_arrays("faces", split="all")
    assert faces.shape == (100, 25, 25, 1) and face_labels is None
    photos, _ = load_arrays("photo_crops", split="test")
    assert photos.shape == (256, 64, 64, 3) and photos.std() > 10
    batch = next(iter(load_dataset("digits", batch_size=8, image_size=32)))
    assert batch[0].shape == (8, 32, 32, 1) and batch[1].shape == (8,)
    assert -1.0 <= float(tf.reduce_min(batch[0])) and float(tf.reduce_max(batch[0])) <= 1.0


def test_folder_loader_png_jpeg_bmp(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (3, 12, 10, 3), dtype=np.uint8)
    Image.fromarray(pixels[0]).save(tmp_path / "a.png")
    Image.fromarray(pixels[1]).save(tmp_path / "b.BMP")
    Image.fromarray(pixels[2]).save(tmp_path / "c.jpg", quality=95)
    (tmp_path / "notes.txt").write_text("ignored")
    images, labels = load_arrays(str(tmp_path), split="all")
    assert images.shape == (3, 12, 10, 3) and labels is None
    np.testing.assert_array_equal(images[0], pixels[0])  # PNG and BMP are lossless
    np.testing.assert_array_equal(images[1], pixels[1])
    # JPEG is lossy: compare with another decoder's reading of the same file.
    reference = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB")).astype(int)
    difference = np.abs(images[2].astype(int) - reference)
    assert difference.mean() < 3 and difference.max() <= 16  # chroma upsampling differs
    batches = list(load_dataset(str(tmp_path), batch_size=3, split="all"))
    assert batches[0].shape == (3, 12, 10, 3)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="holds no PNG/JPG/JPEG/BMP images"):
        load_arrays(str(tmp_path))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "small.png")
    Image.fromarray(np.zeros((6, 9), np.uint8)).save(tmp_path / "other.png")
    with pytest.raises(DataError, match="different sizes.*--image-size"):
        load_arrays(str(tmp_path), split="all")
    images, _ = load_arrays(str(tmp_path), split="all", image_size=8)
    assert images.shape == (2, 8, 8, 1)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg: not a readable"):
        load_arrays(str(tmp_path), split="all", image_size=8)


def test_unknown_names_and_bad_arguments():
    with pytest.raises(DataError, match="Unknown dataset 'mnits'.*digits.*fashion_mnist"):
        load_dataset("mnits")
    with pytest.raises(DataError, match="Unknown split"):
        load_arrays("digits", split="validation")
    with pytest.raises(DataError, match="fewer than one batch"):
        load_dataset("faces", batch_size=1000)
    with pytest.raises(DataError, match="has no labels"):
        load_dataset("faces", batch_size=4, with_labels=True)


def test_tfds_without_the_package_names_the_extra_and_the_alternatives(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import raises ImportError
    with pytest.raises(DataError, match=r"not installed: pip install \"kerasgen\[tfds\]\".*"
                                        "'digits'"):
        load_arrays("tfds:mnist")


def test_tfds_offline_fails_with_alternatives(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow_datasets")  # the optional `tfds` extra
    if data.sources._network_reachable():
        pytest.skip("this machine is online; the offline path cannot be exercised")
    with pytest.raises(DataError, match="offline.*'digits'"):
        load_arrays("tfds:mnist", data_dir=str(tmp_path))


def test_image_grid_separates_tiles_and_keeps_every_pixel():
    from kerasgen.visualize import image_grid

    images = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(5, 3, 4, 1)
    grid = image_grid(images, columns=3, gap=2)
    assert grid.shape == (2 * 3 + 2, 3 * 4 + 2 * 2, 1)
    np.testing.assert_array_equal(grid[5:8, 6:10], images[4])  # row 1, column 1
    assert (grid[3:5] == 255).all() and (grid[:, 4:6] == 255).all()  # the white gaps
    assert image_grid(images, columns=5, gap=0).shape == (3, 20, 1)
    with pytest.raises(ValueError, match="gap must be >= 0"):
        image_grid(images, gap=-1)


# --- Moving MNIST --------------------------------------------------------------------------------


def test_moving_mnist_digits_bounce_inside_the_frame_and_are_seeded():
    from kerasgen.data.moving_mnist import moving_mnist, trajectories

    block = np.full((1, 8, 8), 255, np.uint8)  # a "digit" whose every pixel shows
    frames = moving_mnist(block, 6, num_frames=30, size=24, num_digits=1, step_length=0.1,
                          seed=3)
    assert frames.shape == (6, 30, 24, 24, 1) and frames.dtype == np.uint8
    # Never cut off by the border: all 64 pixels of the block in every frame.
    np.testing.assert_array_equal((frames > 0).sum(axis=(2, 3, 4)), 64)
    # Each frame moves the block 0.1 of the free 16 pixels (1.6 px, rounded), bouncing.
    corners = np.array([[np.argwhere(frame[..., 0])[0] for frame in sequence]
                        for sequence in frames])
    steps = np.linalg.norm(np.diff(corners, axis=1), axis=-1)
    assert steps.max() <= 1.6 + 2 * np.sqrt(2) and np.median(steps) >= 1.0
    assert corners.min() == 0 and corners.max() == 16  # 30 frames reach the walls
    path = trajectories(200, 40, 2, 0.1, np.random.default_rng(0))
    assert path.min() >= 0.0 and path.max() <= 1.0
    # Two digits: each frame is the pixelwise maximum of both placements.
    two = moving_mnist(np.stack([block[0], block[0] // 2]), 4, num_frames=5, size=24, seed=1)
    assert set(np.unique(two)) <= {0, 127, 255}
    np.testing.assert_array_equal(two, moving_mnist(np.stack([block[0], block[0] // 2]), 4,
                                                    num_frames=5, size=24, seed=1))
    assert not np.array_equal(two, moving_mnist(np.stack([block[0], block[0] // 2]), 4,
                                                num_frames=5, size=24, seed=2))
    with pytest.raises(ValueError, match="num_frames must be at least 1, got 0"):
        moving_mnist(block, 2, num_frames=0, size=24)
    with pytest.raises(ValueError, match="size must be at least 8, got 6"):
        moving_mnist(block, 2, size=6)
    with pytest.raises(ValueError, match="step_length must be positive, got -0.1"):
        moving_mnist(block, 2, size=24, step_length=-0.1)


def test_moving_mnist_from_the_mnist_digits(data_dir):
    from kerasgen.data.moving_mnist import load_moving_mnist

    test = load_moving_mnist("test", num_sequences=3, data_dir=data_dir)
    assert test.shape == (3, 20, 64, 64, 1)
    assert (test.reshape(3, 20, -1).max(axis=-1) == 255).all()  # digits visible in every frame
    assert not np.array_equal(test, load_moving_mnist("train", 3, data_dir=data_dir))
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_moving_mnist("validation", 3, data_dir=data_dir)
