"""Image grids as PNG files (matplotlib, headless)."""

import math
from pathlib import Path

import numpy as np


def image_grid(images, columns=None, gap=2):
    """Tile uint8 `[N, H, W, C]` images into one array, `gap` white pixels between tiles (so
    neighbouring samples do not read as one picture)."""
    images = np.asarray(images)
    count, height, width, channels = images.shape
    if gap < 0:
        raise ValueError(f"gap must be >= 0 pixels, got {gap}.")
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, channels),
                   np.iinfo(images.dtype).max if images.dtype.kind in "ui" else 1,
                   images.dtype)
    for index, image in enumerate(images):
        top, left = (step * size for step, size in zip(divmod(index, columns),
                                                       (height + gap, width + gap)))
        grid[top:top + height, left:left + width] = image
    return grid


def save_image_grid(images, path, title=None, columns=None, row_labels=None):
    """Save uint8 images as a grid PNG at `path` (written atomically) and return the path;
    `row_labels` (one string per row, e.g. a conditional model's classes) are written left of
    the rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, columns)
    tile = np.shape(images)[1] + 2  # a tile and image_grid's gap below it
    rows = (grid.shape[0] + 2) // tile
    if row_labels is not None and len(row_labels) != rows:
        raise ValueError(f"{len(row_labels)} row labels for a grid of {rows} rows.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    margin = 0.06 if row_labels is not None else 0.0
    figure = plt.figure(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + (0.4 if title else 0)))
    axes = figure.add_axes([margin, 0, 1 - margin, 0.94 if title else 1])
    axes.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
                interpolation="nearest")
    axes.axis("off")
    if row_labels is not None:
        for row, label in enumerate(row_labels):
            axes.text(-3, (row + 0.5) * tile - 1, str(label), ha="right", va="center",
                      fontsize=12)
    if title:
        figure.suptitle(title)
    partial = path.with_name(f".{path.stem}.partial.png")
    figure.savefig(partial, dpi=100)
    plt.close(figure)
    partial.replace(path)
    return path


def save_figures(figures, out_dir, prefix="", title=None):
    """Save `{name: (uint8 images, columns)}` (e.g. `VAE.figures`) as `<prefix><name>.png`."""
    return {name: save_image_grid(images, Path(out_dir) / f"{prefix}{name}.png",
                                  title=f"{title}, {name}" if title else name, columns=columns)
            for name, (images, columns) in figures.items()}


def write_comparison_grid(rows, path):
    """A side-by-side comparison PNG: each row a list of uint8 HxWxC images (e.g. input,
    peers, model, truth) with 4-pixel white gaps, every tile cropped to the smallest image.
    Written at `path` (folders created); returns the path."""
    import tensorflow as tf

    height = min(tile.shape[0] for row in rows for tile in row)
    width = min(tile.shape[1] for row in rows for tile in row)
    gap = np.full((height, 4, rows[0][0].shape[-1]), 255, np.uint8)
    lines = []
    for row in rows:
        tiles = [tile[:height, :width] for tile in row]
        lines.append(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1],
                                    axis=1))
    picture = np.concatenate([part for line in lines
                              for part in (line, np.full((4, *line.shape[1:]), 255, np.uint8))
                              ][:-1], axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.io.write_file(str(path), tf.io.encode_png(picture))
    return path


def save_animation(frames, path, frame_ms=80, last_frame_ms=1500, columns=None):
    """Save uint8 frames `[T, N, H, W, C]` as an animated GIF of image grids (written
    atomically) and return the path; the last frame is held for `last_frame_ms`."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 5 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be uint8 [T, N, H, W, C] with T >= 1, got {frames.dtype} "
                         f"of shape {list(frames.shape)}.")
    if frame_ms <= 0 or last_frame_ms <= 0:
        raise ValueError(f"Frame times must be positive, got {frame_ms} and {last_frame_ms} ms.")
    grids = [image_grid(frame, columns) for frame in frames]
    # Two-fold nearest-neighbour enlargement: 28x28 digits are too small to see otherwise.
    pictures = [Image.fromarray(np.kron(grid[..., 0] if grid.shape[-1] == 1 else grid,
                                        np.ones((2, 2) + (() if grid.shape[-1] == 1 else (1,)),
                                                np.uint8)))
                for grid in grids]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial.gif")
    pictures[0].save(partial, format="GIF", save_all=True, append_images=pictures[1:],
                     duration=[frame_ms] * (len(pictures) - 1) + [last_frame_ms], loop=0)
    partial.replace(path)
    return path
