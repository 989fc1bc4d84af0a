"""Where `default` hands a photo to the `photo` model: the sub-image path (`color` on 2x2 pixel-shuffled
sub-images at the photo rule's level) against `photo`, on clean test images through the camera model
at shot gains from a low-ISO camera to a high-ISO phone, by the stride-2 estimate that `default` reads.

    python benchmarks/photo_routing.py [--threads 2]

Two sets: Kodak24 (every second image, 384x384 top-left crops), where the threshold is picked, and
CBSD68 (every sixth image, whole), which checks it. Prints per-shot means and, per threshold, the mean
PSNR when photos reading at least that much go to `photo` (inf: never). Then the white noise that
`default` takes for a photo's: textured BSD68 / CBSD68 images at sigma 5 (benchmark noise), `default`
against the sub-image path alone and the white-noise model given sigma 5. About 10 minutes on 2 cores.
The PolyU Canon crops read at most 3.4 (`benchmarks/noise_estimation.py`), all below the thresholds
that win here, so they stay on the sub-image path.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import AutoDenoiser, PhotoRule, photo_rule
from imdenoise.io.datasets import list_images, load_images
from imdenoise.metrics import psnr_uint8, quantize_8bit
from imdenoise.noise.estimation import estimate_noise
from imdenoise.noise.models import parse_noise
from imdenoise.paths import datasets_root

SHOTS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
CAMERA = "camera:shot={shot},quality=90-98,sharpen=0-0.15,luma=0.5-1.5,refsharpen=0"
THRESHOLDS = (3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, math.inf)


def measure(images: list[np.ndarray], seed: int, sub: AutoDenoiser, photo) -> np.ndarray:
    """Rows (shot, stride-2 estimate, noisy, photo, sub-image path) PSNR per image and shot."""
    rows = []
    for shot in SHOTS:
        for i, clean in enumerate(images):
            noisy, target, _ = parse_noise(CAMERA.format(shot=shot)).sample_pair(clean, np.random.default_rng(seed + i))
            noisy = np.clip(noisy, 0, 1).astype(np.float32)
            ref = quantize_8bit(target)
            rows.append((shot, estimate_noise(noisy).sigma_coarse, psnr_uint8(ref, quantize_8bit(noisy)),
                         psnr_uint8(ref, quantize_8bit(photo.denoise(noisy))),
                         psnr_uint8(ref, quantize_8bit(sub.denoise(noisy)))))
    return np.array(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = datasets_root() / "test"
    color, photo = load("color"), load("photo")
    rule = photo_rule()
    sub = AutoDenoiser(load("gray"), color, photo=None, photo_rule=PhotoRule(rule.offset, rule.scale, rule.shuffle))
    sets = {"Kodak24 (picks)": ([a[:384, :384] / np.float32(255) for a in load_images(list_images(root / "kodak24")[::2], 3)], 0),
            "CBSD68 (checks)": ([a / np.float32(255) for a in load_images(list_images(root / "cbsd68")[::6], 3)], 100)}
    print(f"shipped threshold: {rule.photo_from:g}\n")
    for name, (images, seed) in sets.items():
        r = measure(images, seed, sub, photo)
        print(f"{name}, {len(images)} images x {len(SHOTS)} shots\n")
        print("| shot | stride-2 estimate (median) | noisy | photo | sub-image path |")
        print("|---|---|---|---|---|")
        for shot in SHOTS:
            s = r[r[:, 0] == shot]
            print(f"| {shot:g} | {np.median(s[:, 1]):.2f} | {s[:, 2].mean():.2f} | {s[:, 3].mean():.2f} | {s[:, 4].mean():.2f} |")
        print("\n| photo from | " + " | ".join(f"{t:g}" for t in THRESHOLDS) + " |")
        print("|---|" + "---|" * len(THRESHOLDS))
        print("| mean PSNR | " + " | ".join(f"{np.where(r[:, 1] >= t, r[:, 3], r[:, 4]).mean():.3f}" for t in THRESHOLDS)
              + f" |\n\n(photo alone: {r[:, 3].mean():.3f})\n")
    white_taken_for_photos(sub)


def white_taken_for_photos(sub: AutoDenoiser) -> None:
    """Sigma-5 white noise that `default` reads as a photo's: what each path makes of it."""
    from imdenoise.noise.models import benchmark_noisy

    default = load("default")
    assert isinstance(default, AutoDenoiser)
    print("| sigma 5 (benchmark noise) | taken for photos | to photo | noisy | default | sub-image path | "
          "gray/color given sigma 5 |")
    print("|---|---|---|---|---|---|---|")
    for name, channels in (("bsd68", 1), ("cbsd68", 3)):
        rows, routed = [], 0
        for i, image in enumerate(load_images(list_images(datasets_root() / "test" / name), channels)):
            noisy = benchmark_noisy(image.astype(np.float32) / 255, 5, i)
            plan = default.plan(noisy)
            if plan.estimate is None or not plan.estimate.photo_like:
                continue
            routed += plan.model.name == "photo"
            rows.append([psnr_uint8(image, quantize_8bit(x)) for x in
                         (noisy, default.run(plan, noisy), sub.denoise(noisy), default.denoise(noisy, 5.0))])
        m = np.mean(rows, axis=0) if rows else [float("nan")] * 4
        print(f"| {name} | {len(rows)} | {routed} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.2f} |")


if __name__ == "__main__":
    main()
