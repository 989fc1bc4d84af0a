"""Where the error on the PolyU Canon crops lies: what a blind denoiser can remove and what it cannot.

    python benchmarks/real_error_bands.py [--methods default,photo] [--threads 2]

For the noisy photo and each method, over the 55 crops (8-bit output, as the benchmark scores it), the
mean squared error (0-255 scale) split into the per-image, per-channel mean offset (the shot's exposure
against the mean of many shots: nothing in one shot says what the others' exposure was) and spatial
bands of the rest (Gaussian low-pass differences at 1, 3 and 8 pixels; the bands overlap, so they do
not add up exactly), and the PSNR with the offset taken out (an oracle: what the same output would
score if the reference had the shot's exposure). Then the noise itself by texture: the RMS of noisy
minus reference (offset and the over-8-pixel band removed) in the quartiles of the reference's local
variance, beside the estimates `default` reads (white-noise estimate at stride 1, 2 and 4). About 4
minutes on 2 cores. `--camera`: the same quartiles for synthetic camera noise (every second Kodak24
image, 512x512 crops, shot 3e-4) against sharp and softened references, and with more JPEG
compression or in-camera sharpening: how much of PolyU's excess in texture a soft reference explains.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, uniform_filter

from imdenoise.denoisers.catalog import load
from imdenoise.evaluation.evaluate import load_pairs
from imdenoise.metrics import quantize_8bit
from imdenoise.noise.estimation import estimate_sigma
from imdenoise.paths import datasets_root

BANDS = (("over 8 px", 8.0, None), ("3-8 px", 3.0, 8.0), ("1-3 px", 1.0, 3.0), ("under 1 px", None, 1.0))


def _lowpass(e: np.ndarray, sigma: float | None) -> np.ndarray:
    return e if sigma is None else gaussian_filter(e, sigma=(sigma, sigma, 0))


def decompose(out: np.ndarray, ref: np.ndarray) -> list[float]:
    """MSE total, offset, the bands, and PSNR with and without the offset, for one 8-bit image."""
    e = out.astype(np.float64) - ref
    offset = e.mean(axis=(0, 1))
    e0 = e - offset
    bands = [float(np.mean((_lowpass(e0, lo) - (_lowpass(e0, hi) if hi is not None else 0.0)) ** 2))
             if lo is not None else float(np.mean((e0 - _lowpass(e0, hi)) ** 2)) for _, lo, hi in BANDS]
    mse, mse0 = float(np.mean(e ** 2)), float(np.mean(e0 ** 2))
    return [mse, float(np.mean(offset ** 2)), *bands, 10 * np.log10(255 ** 2 / mse), 10 * np.log10(255 ** 2 / mse0)]


CAMERA_SPECS = ("quality=90-98,sharpen=0-0.15,luma=0.5-1.5,refsharpen=0",
                "quality=90-98,sharpen=0-0.15,luma=0.5-1.5,refsharpen=0,refblur=0.3-0.8",
                "quality=75-85,sharpen=0-0.15,luma=0.5-1.5,refsharpen=0",
                "quality=90-98,sharpen=0.5-1,luma=0.5-1.5,refsharpen=0")


def noise_residual(noisy8: np.ndarray, ref8: np.ndarray) -> np.ndarray:
    """Noisy - reference with the per-channel offset and the over-8-px band removed: the noise."""
    e = noisy8.astype(np.float64) - ref8
    e -= e.mean(axis=(0, 1))
    return e - _lowpass(e, 8.0)


def texture_quartiles(noisy8: np.ndarray, ref8: np.ndarray) -> list[float]:
    """RMS of the noise (`noise_residual`) in the quartiles of the reference's local (9x9) variance,
    flattest first, then over the whole image."""
    e = noise_residual(noisy8, ref8)
    g = ref8.astype(np.float64).mean(-1)
    var = uniform_filter(g ** 2, 9) - uniform_filter(g, 9) ** 2
    q = np.quantile(var, [0.25, 0.5, 0.75])
    parts = [var <= q[0], (var > q[0]) & (var <= q[1]), (var > q[1]) & (var <= q[2]), var > q[2]]
    return [float(np.sqrt(np.mean(e[p] ** 2))) for p in (*parts, np.ones_like(var, bool))]


def camera_texture() -> None:
    """The texture quartiles of synthetic camera noise, per camera spec (medians over images)."""
    from imdenoise.io.datasets import list_images, load_images
    from imdenoise.noise.models import parse_noise

    root = datasets_root() / "test" / "kodak24"
    images = [a[:512, :512] / np.float32(255) for a in load_images(list_images(root)[::2], 3)]
    print("| camera:shot=0.0003, ... | flattest quarter | 2nd | 3rd | most textured | textured / flat |")
    print("|---|---|---|---|---|---|")
    for spec in CAMERA_SPECS:
        rows = []
        for i, clean in enumerate(images):
            noisy, target, _ = parse_noise(f"camera:shot=0.0003,{spec}").sample_pair(clean, np.random.default_rng(i))
            rows.append(texture_quartiles(quantize_8bit(np.clip(noisy, 0, 1)), quantize_8bit(target))[:4])
        m = np.median(np.array(rows), axis=0)
        print(f"| {spec} | " + " | ".join(f"{v:.2f}" for v in m) + f" | {m[3] / m[0]:.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=str(datasets_root() / "real" / "polyu-canon"))
    ap.add_argument("--methods", default="default,photo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--camera", action="store_true", help="texture quartiles of synthetic camera noise instead")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.camera:
        camera_texture()
        return
    ds = load_pairs(args.dataset)
    assert ds.noisy is not None
    refs = [r.astype(np.float64) for r in ds.images]
    rows = {"noisy photo": [decompose(n, r) for n, r in zip(ds.noisy, refs)]}
    for name in args.methods.split(","):
        method = load(name)
        rows[name] = [decompose(quantize_8bit(method.denoise(n.astype(np.float32) / 255)), r)
                      for n, r in zip(ds.noisy, refs)]
    print(f"{ds.name}, {len(refs)} crops, mean over crops (MSE on the 0-255 scale)\n")
    print("| | MSE | exposure offset | " + " | ".join(b for b, _, _ in BANDS) + " | PSNR | PSNR, offset removed (oracle) |")
    print("|---|" + "---|" * (len(BANDS) + 4))
    for name, r in rows.items():
        m = np.mean(np.array(r), axis=0)
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in m[:-2]) + f" | {m[-2]:.2f} | {m[-1]:.2f} |")

    quart, est = [], []
    for n, r in zip(ds.noisy, refs):
        quart.append(texture_quartiles(n, r))
        est.append([estimate_sigma(n.astype(np.float32) / 255, stride=s) for s in (1, 2, 4)])
    q, s = np.median(np.array(quart), axis=0), np.median(np.array(est), axis=0)
    print("\nNoise (noisy - reference, offset and over-8-px band removed), RMS by the reference's local variance"
          " (9x9), medians over crops; and the estimates `default` reads\n")
    print("| flattest quarter | 2nd | 3rd | most textured | whole | estimate, stride 1 | stride 2 (`default`'s) | stride 4 |")
    print("|---|---|---|---|---|---|---|---|")
    print("| " + " | ".join(f"{v:.2f}" for v in (*q, *s)) + " |")


if __name__ == "__main__":
    main()
