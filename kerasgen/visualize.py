"""Image grids as PNG files (matplotlib, headless)."""

import math
from pathlib import Path

import numpy as np


def image_grid(images, columns=None):
    """Tile uint8 `[N, H, W, C]` images into one `[rows*H, columns*W, C]` array."""
    images = np.asarray(images)
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * height, columns * width, channels), images.dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height:(row + 1) * height, column * width:(column + 1) * width] = image
    return grid


def save_image_grid(images, path, title=None, columns=None):
    """Save uint8 images as a grid PNG at `path` (written atomically) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = image_grid(images, columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = plt.figure(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + (0.4 if title else 0)))
    axes = figure.add_axes([0, 0, 1, 0.94 if title else 1])
    axes.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
                interpolation="nearest")
    axes.axis("off")
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
