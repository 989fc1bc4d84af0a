"""Would a notch at the Nyquist frequency help `default`'s sub-image path? On PolyU, yes; on sharp
references, no. Noise at the full image's Nyquist frequency is a constant offset between the four 2x2
sub-images, so no sub-image sees it as noise and the sub-image path leaves it.

    python benchmarks/photo_notch.py [--threads 2]

The notch subtracts 0.75 of the output filtered by [1, -4, 6, -4, 1] / 16 along each axis. Prints, on
the 55 PolyU Canon crops, `default` and `photo` with and without it and the luma error power above 0.45
cycles per pixel; then, on every third Kodak24 image (384x384 crops) and every ninth CBSD68 image
through the camera model (shot 1e-4 to 3e-3, unsharpened references), the sub-image path and `photo`
with and without it. About 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import convolve1d

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import AutoDenoiser, PhotoRule, photo_rule
from imdenoise.evaluation.evaluate import load_pairs
from imdenoise.io.datasets import list_images, load_images
from imdenoise.metrics import psnr_uint8, quantize_8bit
from imdenoise.noise.models import parse_noise
from imdenoise.paths import datasets_root

KERNEL = np.array([1, -4, 6, -4, 1]) / 16.0
CAMERA = "camera:shot={shot},quality=90-98,sharpen=0-0.15,luma=0.5-1.5,refsharpen=0"


def notch(x: np.ndarray, amount: float = 0.75) -> np.ndarray:
    """`x` minus `amount` of its 4th-difference high-pass along rows, then columns."""
    y = x.astype(np.float64)
    for axis in (0, 1):
        y = y - amount * convolve1d(y, KERNEL, axis=axis, mode="reflect")
    return np.clip(y, 0.0, 1.0)


def nyquist_power(out8: np.ndarray, ref8: np.ndarray) -> float:
    """Mean luma error power (0-255 scale) at frequencies over 0.45 cycles per pixel on either axis."""
    e = out8.astype(np.float64).mean(-1) - ref8.astype(np.float64).mean(-1)
    h, w = e.shape
    p = np.abs(np.fft.fft2(e)) ** 2 / (h * w) ** 2
    fy, fx = np.abs(np.fft.fftfreq(h)), np.abs(np.fft.fftfreq(w))
    return float(p[(fy[:, None] > 0.45) | (fx[None, :] > 0.45)].sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default, photo = load("default"), load("photo")
    ds = load_pairs(datasets_root() / "real" / "polyu-canon")
    assert ds.noisy is not None
    print(f"PolyU Canon, {len(ds.images)} crops\n\n| method | PSNR | with the notch | luma error power over 0.45 cycles/px |")
    print("|---|---|---|---|")
    for name, method in (("default", default), ("photo", photo)):
        rows = []
        for noisy8, ref8 in zip(ds.noisy, ds.images):
            out = method.denoise(noisy8.astype(np.float32) / 255)
            o8 = quantize_8bit(out)
            rows.append((psnr_uint8(ref8, o8), psnr_uint8(ref8, quantize_8bit(notch(out))), nyquist_power(o8, ref8)))
        m = np.mean(np.array(rows), axis=0)
        print(f"| {name} | {m[0]:.3f} | {m[1]:.3f} | {m[2]:.3f} |", flush=True)

    rule = photo_rule()
    sub = AutoDenoiser(load("gray"), load("color"), photo=None, photo_rule=PhotoRule(rule.offset, rule.scale, rule.shuffle))
    root = datasets_root() / "test"
    sets = {"Kodak24": [a[:384, :384] / np.float32(255) for a in load_images(list_images(root / "kodak24")[::3], 3)],
            "CBSD68": [a / np.float32(255) for a in load_images(list_images(root / "cbsd68")[::9], 3)]}
    print("\n| set | shot | noisy | sub-image path | with the notch | photo | with the notch |")
    print("|---|---|---|---|---|---|---|")
    for set_name, images in sets.items():
        for shot in (1e-4, 1e-3, 3e-3):
            rows = []
            for i, clean in enumerate(images):
                noisy, target, _ = parse_noise(CAMERA.format(shot=shot)).sample_pair(clean, np.random.default_rng(i))
                noisy = np.clip(noisy, 0, 1).astype(np.float32)
                ref = quantize_8bit(target)
                s, p = sub.denoise(noisy), photo.denoise(noisy)
                rows.append([psnr_uint8(ref, quantize_8bit(x)) for x in (noisy, s, notch(s), p, notch(p))])
            m = np.mean(np.array(rows), axis=0)
            print(f"| {set_name} | {shot:g} | " + " | ".join(f"{v:.2f}" for v in m) + " |", flush=True)


if __name__ == "__main__":
    main()
