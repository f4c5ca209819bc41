"""Restoration benchmarks by the papers' protocols: denoising (KAIR) and super-resolution.

Example:
    >>> report = evaluate_restoration(load_model("dncnn_grey_s25"), "BSD68", sigma=25)
    >>> print("\n".join(restoration_table(report)))
"""

import sys

import numpy as np

from kerasgen import metrics
from kerasgen.data import restoration as restoration_data
from kerasgen.layers.degradations import BicubicDownscale, GaussianNoise

def _progress(done, total, row):
    """One line per image on stderr, so a long evaluation shows where it is."""
    print(f"[{done}/{total}] PSNR {row[0]:.2f} dB, SSIM {row[1]:.4f}", file=sys.stderr,
          flush=True)


# The degradation each kind of benchmark set measures.
SET_DEGRADATIONS = {"denoise": GaussianNoise, "super_resolution": BicubicDownscale}

def _rounded(images):
    """float images in [0, 1] -> float64 levels 0..255, clamped and rounded (a uint8 image)."""
    return np.round(np.clip(np.asarray(images, np.float64), 0.0, 1.0) * 255.0)


def denoising_rows(model, images, sigma, seed=0, denoise=None):
    """Per-image `(psnr, ssim)` of a denoiser by the KAIR protocol.

    uint8 -> [0, 1], plus N(0, sigma / 255) noise from `default_rng([seed, index])`, no
    clipping of the noisy input; output clamped and rounded to uint8; full-image PSNR/SSIM.

    Args:
        model: a `Restorer`, or None with `denoise`.
        denoise: callable. `denoise(noisy, sigma)` -> the restored float HxWxC image, for a
            classical peer (e.g. BM3D) scored on the very same noisy images. Defaults to
            the model.
    """
    if denoise is None:
        network_sigma = float(sigma) if model.conditioned else 0.0
        # One traced graph (an eager call keeps every layer's output: GBs on 481x321).
        denoise = lambda noisy, _: model.restore_graph(noisy[None], [network_sigma])[0]  # noqa: E731
    rows = []
    for index, image in enumerate(images):
        clean = image.astype(np.float32) / 255.0
        noise = np.random.default_rng([seed, index]).normal(0.0, sigma / 255.0, clean.shape)
        output = _rounded(np.asarray(denoise(clean + noise.astype(np.float32), float(sigma))))
        rows.append((float(metrics.psnr(image[None], output[None])[0]),
                     float(metrics.ssim(image[None], output[None])[0])))
        _progress(len(rows), len(images), rows[-1])
    return rows


def super_resolution_rows(model, high, low, scale):
    """Per-image `(psnr, ssim)` of an SR model (or bicubic for `model=None`), SR protocol.

    HR mod-cropped to the scale, LR = the shipped bicubic files, BT.601 Y of the rounded output
    against Y of the HR, `scale` border pixels shaved. Y models super-resolve the LR luma.
    A grey file (Set14's `bridge`) is scored on its own levels, as the reference code does
    (its Y would compress them to 16..235): Y models and bicubic up-scale the grey levels
    themselves, RGB models the grey replicated to RGB, read back as BT.601 luma.
    """
    rows = []
    for hr, lr in zip(high, low):
        grey = hr.shape[-1] == 1
        lr = lr.astype(np.float32)[None] / 255.0
        if model is None:
            output = restoration_data.bicubic_upscale(lr, scale)
        elif model.color == "y":
            luma = lr if grey else restoration_data.rgb_to_ycbcr(lr)[..., :1]
            output = model.network(luma, training=False)
        else:
            output = model.restore_graph(restoration_data.as_channels(lr[0], 3)[None], [0.0])
        output = _rounded(np.asarray(output))
        if grey and output.shape[-1] == 3:
            output = restoration_data.as_channels(output[0].astype(np.uint8), 1)[None]
        rows.append((float(metrics.psnr(hr[None], output, y_channel=True, crop_border=scale)[0]),
                     float(metrics.ssim(hr[None], output, y_channel=True, crop_border=scale)[0])))
        _progress(len(rows), len(high), rows[-1])
    return rows


def evaluate_restoration(model, dataset, sigma=None, scale=None, data_dir=None, seed=0):
    """PSNR/SSIM of a restoration model on a benchmark set by the standard protocol.

    Args:
        model: a `Restorer`, or None with an SR set for the bicubic baseline.
        dataset: str. `BSD68`, `Set12`, `CBSD68` (denoising) or `Set5`, `Set14` (SR).
        sigma: float. Noise level (denoising). Defaults to a fixed-sigma model's own.
        scale: int. SR factor. Defaults to the model's.
        data_dir: str. The data directory. Defaults to `$KERASGEN_DATA_DIR`.
        seed: int. Seeds the noise. Defaults to 0.

    Returns:
        dict with `rows` (`[{"image", "psnr", "ssim"}]`), `psnr`, `ssim` (means), `dataset`,
        `sigma`, `scale`, `num_images`.
    """
    if dataset not in restoration_data.TEST_SETS:
        raise ValueError(f"Unknown benchmark set {dataset!r}; valid: "
                         f"{sorted(restoration_data.TEST_SETS)}.")
    _, channels, task = restoration_data.TEST_SETS[dataset]
    if model is not None and not isinstance(model.degradation, SET_DEGRADATIONS[task]):
        raise ValueError(f"{dataset} is a {task.replace('_', '-')} set and this model restores "
                         f"{model.degradation.name.replace('_', ' ')}.")
    if task == "denoise":
        if scale is not None:
            raise ValueError("--scale applies to super-resolution sets.")
        sigma = model.degradation.sigma if sigma is None else float(sigma)
        if sigma is None:
            raise ValueError("This model denoises a range of levels; pass sigma (--sigma N).")
        if not 0.0 <= sigma <= 75.0:
            raise ValueError(f"sigma={sigma} is out of range [0, 75].")
        if model.image_channels != channels:
            kind = {1: "grey", 3: "colour"}
            raise ValueError(f"{dataset} is a {kind[channels]} set and this model restores "
                             f"{kind[model.image_channels]} images.")
        images = restoration_data.load_images(dataset, data_dir)
        names = restoration_data.image_names(dataset, data_dir)
        rows = denoising_rows(model, images, sigma, seed)
    else:
        if sigma is not None:
            raise ValueError("--sigma applies to denoising sets.")
        if model is None and scale is None:
            raise ValueError("The bicubic baseline needs a scale.")
        scale = int(scale or model.scale)
        restoration_data.check_scale(scale)
        if model is not None and scale != model.scale:
            raise ValueError(f"This model super-resolves x{model.scale}, not x{scale}.")
        high, low, names = restoration_data.load_sr_pairs(dataset, scale, data_dir)
        rows = super_resolution_rows(model, high, low, scale)
    psnrs, ssims = zip(*rows)
    return {
        "dataset": dataset, "sigma": sigma, "scale": scale, "num_images": len(rows),
        "rows": [{"image": name, "psnr": p, "ssim": s} for name, (p, s) in zip(names, rows)],
        "psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)),
    }


def restoration_table(report):
    """Lines of a per-image and mean PSNR/SSIM table of `evaluate_restoration`'s report."""
    setting = (f"sigma={report['sigma']:g}" if report["sigma"] is not None
               else f"x{report['scale']}, Y channel, {report['scale']}-pixel border shaved")
    width = max(len(row["image"]) for row in report["rows"])
    lines = [f"{report['dataset']} ({setting}, {report['num_images']} images)",
             f"{'image':{width}s}  PSNR (dB)  SSIM"]
    lines += [f"{row['image']:{width}s}  {row['psnr']:9.2f}  {row['ssim']:.4f}"
              for row in report["rows"]]
    lines.append(f"{'mean':{width}s}  {report['psnr']:9.2f}  {report['ssim']:.4f}")
    return lines
