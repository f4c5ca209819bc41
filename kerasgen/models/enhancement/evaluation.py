"""Low-light benchmark: the model and the classical enhancers on the same dark inputs.

Protocol (README, "Low-light enhancement"):
- `LOL`: the real pairs of LOL-v1's eval15 (`$KERASGEN_DATA_DIR/lowlight/LOL/eval15/{low,high}`,
  15 pairs, 600x400); a folder with `low/` and `high/` (same file names), or a LOL root with
  `eval15/`, is read the same way.
- any other image set or folder (e.g. `CBSD68`): each clean colour image darkened once by the
  `Darken` protocol (gamma in [2, 3.5], Poisson-Gaussian noise) with a seed fixed per image
  index, rounded to uint8 (the file a camera would give).
PSNR and SSIM (`kerasgen.metrics`, RGB, peak 255) of every method's uint8 output against the
normal-light image, averaged over the set.

Peers: CLAHE (`skimage.exposure.equalize_adapthist`, clip limit 0.01, on the HSV value),
global histogram equalisation of the HSV value, and the best global gamma per image (`dark **
g`, g on a 0.01 grid in [0.05, 1], chosen by PSNR against the truth: an oracle upper bound for
any single global curve).
"""

import sys
from pathlib import Path

import keras
import numpy as np

from kerasgen import metrics
from kerasgen.data import restoration as restoration_data
from kerasgen.data import sources
from kerasgen.data.sources import DataError
from kerasgen.visualize import write_comparison_grid

LOL_EVAL = "lowlight/LOL/eval15"
ORACLE_GAMMAS = np.round(np.arange(0.05, 1.0001, 0.01), 2)


def _on_value(function):
    """Apply `function` (float HxW in [0, 1] -> same) to the HSV value of a uint8 RGB image."""
    from skimage import color

    def enhance(image):
        hsv = color.rgb2hsv(image)
        hsv[..., 2] = function(hsv[..., 2])
        return np.clip(np.round(color.hsv2rgb(hsv) * 255.0), 0, 255).astype(np.uint8)
    return enhance


def classical_enhancers():
    """`{name: enhance(uint8 RGB dark, uint8 RGB truth) -> uint8 RGB}` (only the oracle reads
    the truth)."""
    from skimage import exposure

    clahe = _on_value(lambda value: exposure.equalize_adapthist(value, clip_limit=0.01))
    histogram = _on_value(exposure.equalize_hist)

    def oracle_gamma(dark, truth):
        unit = dark.astype(np.float64) / 255.0
        candidates = [np.clip(np.round(unit ** gamma * 255.0), 0, 255).astype(np.uint8)
                      for gamma in ORACLE_GAMMAS]
        scores = metrics.psnr(np.repeat(truth[None], len(candidates), axis=0),
                              np.stack(candidates)).numpy()
        return candidates[int(np.argmax(scores))]

    return {"clahe": lambda dark, truth: clahe(dark),
            "histogram_eq": lambda dark, truth: histogram(dark),
            "oracle_gamma": oracle_gamma}


def load_pairs(dataset, data_dir=None, seed=0):
    """`(dark uint8 images, normal-light uint8 images, kind)` of a benchmark (see above)."""
    if str(dataset) == "LOL":
        folder = sources.resolve_data_dir(data_dir) / LOL_EVAL
        if not folder.is_dir():
            raise DataError(f"{folder} does not exist; the data directory must hold "
                            f"{LOL_EVAL}/{{low,high}} (see shared/data/MANIFEST.md).")
    else:
        folder = restoration_data.pair_folder(dataset, split="test")
    if folder is not None:
        dark, truth, _ = restoration_data.load_pair_folder(folder, channels=3)
        return dark, truth, "real pairs"
    from kerasgen.data import unit_to_uint8
    from kerasgen.distribute import ReplicaBatch
    from kerasgen.models.enhancement.darkening import Darken

    clean = restoration_data.load_images(dataset, data_dir, channels=3)
    darken = Darken()
    dark = [unit_to_uint8(darken.degrade(
        image[None].astype(np.float32) / 255.0, ReplicaBatch(1),
        keras.random.SeedGenerator(1000 * seed + index))[0])[0].numpy()
        for index, image in enumerate(clean)]
    return dark, clean, "synthetic dark (Darken, seeded per image)"


GRID_COLUMNS = ("input", "clahe", "oracle_gamma", "model")
GRID_ROWS = 3


def evaluate_enhancement(model, dataset, data_dir=None, seed=0, peers=None, grid=None):
    """Score `model` (anything with `apply(images)`) and the peers on `dataset`.

    Args:
        grid: str. Path of the comparison PNG: for the first images, dark input | CLAHE |
            oracle gamma | model | normal-light truth. Defaults to
            `enhancement_<dataset>.png` in the working directory.

    Returns:
        dict: `methods` -> `{psnr, ssim}` means, `dataset`, `kind`, `num_images`, `grid`.
    """
    dark, truth, kind = load_pairs(dataset, data_dir, seed)
    peers = classical_enhancers() if peers is None else peers
    sums = {name: np.zeros(2) for name in ["model", "input", *peers]}
    grid_rows = []
    for index, (low, high) in enumerate(zip(dark, truth)):
        outputs = {"model": np.asarray(model.apply(low)[0]), "input": low}
        outputs.update({name: enhance(low, high) for name, enhance in peers.items()})
        for name, output in outputs.items():
            sums[name] += (float(metrics.psnr(high[None], output[None])[0]),
                           float(metrics.ssim(high[None], output[None])[0]))
        if index < GRID_ROWS:
            grid_rows.append([outputs[name] for name in GRID_COLUMNS if name in outputs]
                             + [high])
        print(f"[{index + 1}/{len(dark)}] model {sums['model'][0] / (index + 1):.2f} dB",
              file=sys.stderr, flush=True)
    grid = write_comparison_grid(grid_rows, grid or f"enhancement_{Path(str(dataset)).name}.png")
    return {"dataset": str(dataset), "kind": kind, "num_images": len(dark), "grid": str(grid),
            "methods": {name: dict(zip(("psnr", "ssim"), (total / len(dark)).tolist()))
                        for name, total in sums.items()}}


def enhancement_table(report):
    """Printable lines: one row per method; the model's margin over the best real peer."""
    lines = [f"{report['dataset']} ({report['kind']}), {report['num_images']} images "
             "(PSNR dB / SSIM, RGB):"]
    for name, row in report["methods"].items():
        lines.append(f"  {name:14s} {row['psnr']:7.2f} {row['ssim']:7.4f}")
    peers = {name: row for name, row in report["methods"].items()
             if name not in ("model", "input")}
    if peers:
        best = max(peers, key=lambda name: peers[name]["psnr"])
        model = report["methods"]["model"]
        lines.append(f"  model - best peer ({best}): {model['psnr'] - peers[best]['psnr']:+.2f} "
                     f"dB, SSIM {model['ssim'] - peers[best]['ssim']:+.4f}")
    if report.get("grid"):
        lines.append(f"  grid ({' | '.join(GRID_COLUMNS)} | truth): {report['grid']}")
    return lines
