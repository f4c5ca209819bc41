"""Inpainting benchmark: the model and the classical inpainters on identical images and holes.

Protocol (README, "Inpainting"): every image of the set (colour for colour models), in its
own size; for each hole-ratio bucket (10-20 %, ..., 40-50 %, as in Liu et al. 2018) one fixed
seeded mask per image (`masks.mask_set`: a function of the seed, the bucket and the image's
index only); every method's output is composited (known pixels kept) and rounded to uint8;
PSNR and SSIM (`kerasgen.metrics`, full image, peak 255) and L1 (mean absolute error, % of
255) on the whole composited image, averaged over the set.

Peers: OpenCV's Telea and Navier-Stokes (`cv2.inpaint`, radius 3; opencv-python-headless) and
scikit-image's biharmonic inpainting (`skimage.restoration.inpaint_biharmonic`).
"""

import sys
import time
from pathlib import Path

import numpy as np

from kerasgen import metrics
from kerasgen.data import restoration as restoration_data
from kerasgen.models.inpainting.masks import BUCKETS, mask_set, parse_ratio
from kerasgen.visualize import write_comparison_grid

PEER_RADIUS = 3


def classical_inpainters():
    """`{name: inpaint(uint8 HWC image, bool HW holes) -> uint8 HWC}` of the peers here.

    OpenCV is optional (`pip install opencv-python-headless`, in the `test` and `peers`
    extras); without it only the biharmonic peer runs, and the report says so.
    """
    from skimage.restoration import inpaint_biharmonic

    def biharmonic(image, holes):
        filled = inpaint_biharmonic(image.astype(np.float64) / 255.0, holes, channel_axis=-1)
        return np.round(np.clip(filled, 0.0, 1.0) * 255.0).astype(np.uint8)

    peers = {}
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        def opencv(flag):
            def inpaint(image, holes):
                filled = cv2.inpaint(np.ascontiguousarray(image), holes.astype(np.uint8) * 255,
                                     PEER_RADIUS, flag)
                return filled.reshape(image.shape)
            return inpaint

        peers["telea"] = opencv(cv2.INPAINT_TELEA)
        peers["navier_stokes"] = opencv(cv2.INPAINT_NS)
    peers["biharmonic"] = biharmonic
    return peers


def _scores(truth, output):
    truth, output = truth[None], output[None]
    return (float(metrics.psnr(truth, output)[0]), float(metrics.ssim(truth, output)[0]),
            float(np.mean(np.abs(truth.astype(np.float64) - output)) / 255.0 * 100.0))


def evaluate_inpainting(model, dataset, kind="freeform", hole_ratio=None, num_images=None,
                        data_dir=None, seed=0, grid=None, peers=None):
    """Score `model` and the peers on `dataset` with fixed seeded masks, bucket by bucket.

    Args:
        model: an `Inpainter` (or anything with `apply(images, mask=)` and
            `image_channels`).
        dataset: str. A test set (`CBSD68`, `BSD68`, `Set12`, `Set14`, `Set5`), `photos` or
            a folder of images.
        kind: str. Mask kind: "freeform", "box" (random rectangles) or "center".
        hole_ratio: str. One bucket, e.g. "0.3-0.4"; None: the four buckets.
        num_images: int. The first N images only. Defaults to all.
        seed: int. The mask set's seed (offset from the protocol's 2018).
        grid: str. The comparison grid PNG (masked input, Telea, biharmonic, model, ground
            truth; one row per bucket). Defaults to `inpainting_<dataset>_<kind>.png` here.
        peers: dict. `classical_inpainters()` by default.

    Returns:
        dict: `buckets` -> method -> `{psnr, ssim, l1, seconds}` means, `num_images`,
        `dataset`, `kind`, `methods`, `grid`.
    """
    if num_images is not None and num_images < 1:
        raise ValueError(f"num_images must be at least 1, got {num_images}.")
    images = restoration_data.load_images(dataset, data_dir, channels=model.image_channels)
    images = images[:num_images]
    buckets = BUCKETS if hole_ratio is None else [parse_ratio(hole_ratio)]
    peers = classical_inpainters() if peers is None else peers
    methods = {"model": None, **peers}
    report = {"dataset": str(dataset), "kind": kind, "num_images": len(images),
              "methods": list(methods), "buckets": {}}
    grid_rows = []
    for low, high in buckets:
        label = f"{low:.0%}-{high:.0%}"
        sums = {name: np.zeros(4) for name in methods}
        for index, image in enumerate(images):
            holes = mask_set([image.shape[:2]], kind, (low, high), seed=2018 + seed,
                             first_index=index)[0][..., 0] > 0
            outputs, scores = {}, {}
            for name, inpaint in methods.items():
                start = time.perf_counter()
                if inpaint is None:
                    output = np.asarray(model.apply(image, mask=holes[..., None])[0])
                else:
                    output = inpaint(image, holes)
                seconds = time.perf_counter() - start
                output = np.where(holes[..., None], output, image)  # known pixels kept
                outputs[name] = output
                scores[name] = _scores(image, output)
                sums[name] += (*scores[name], seconds)
            print(f"[{label} {index + 1}/{len(images)}] " + ", ".join(
                f"{name} {scores[name][0]:.2f}" for name in methods) + " dB",
                file=sys.stderr, flush=True)
            if index == 0:
                masked = np.where(holes[..., None], 255, image).astype(np.uint8)
                grid_rows.append([masked] + [outputs[name] for name in
                                             ("telea", "biharmonic", "model") if name in outputs]
                                 + [image])
        report["buckets"][label] = {
            name: dict(zip(("psnr", "ssim", "l1", "seconds"), (total / len(images)).tolist()))
            for name, total in sums.items()}
    default_grid = f"inpainting_{Path(str(dataset)).name}_{kind}.png"
    report["grid"] = str(write_comparison_grid(grid_rows, grid or default_grid))
    return report


def inpainting_table(report):
    """Printable lines: one row per bucket and method; the model's margin over the best peer."""
    lines = [f"{report['dataset']}, {report['kind']} holes, {report['num_images']} images "
             "(composited; PSNR dB / SSIM / L1 %):",
             f"{'holes':9s} {'method':14s} {'PSNR':>7s} {'SSIM':>7s} {'L1 %':>6s} {'s/img':>6s}"]
    for label, rows in report["buckets"].items():
        for name, row in rows.items():
            lines.append(f"{label:9s} {name:14s} {row['psnr']:7.2f} {row['ssim']:7.4f} "
                         f"{row['l1']:6.2f} {row['seconds']:6.2f}")
        peers = {name: row for name, row in rows.items() if name != "model"}
        if peers:
            best = max(peers, key=lambda name: peers[name]["psnr"])
            lines.append(f"{label:9s} model - best peer ({best}): "
                         f"{rows['model']['psnr'] - peers[best]['psnr']:+.2f} dB, SSIM "
                         f"{rows['model']['ssim'] - peers[best]['ssim']:+.4f}")
    if "telea" not in report["methods"]:
        lines.append("(OpenCV's Telea and Navier-Stokes need opencv-python-headless.)")
    lines.append(f"grid: {report['grid']}")
    return lines
