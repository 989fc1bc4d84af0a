"""Clean the clean training images: `default` on each, its level capped, written as PNG.

    python scripts/clean_sources.py SRC_DIR OUT_DIR [--cap 8] [--threads 1]

The BSD sources are scanned film: their flat regions read a noise level of 1.4 at the pixel scale and
2.5 at stride 2 (median over CBSD432), above the noise of a real low-ISO camera JPEG (PolyU Canon: 0.5
and 1.7). A photo model trained on them learns to keep noise of that level. Each image goes through
`default`'s plan (a photo-like grain: `color` on the 2x2 pixel-shuffled sub-images at the photo rule's
level; white noise: `color` at its estimate), with the level capped at `--cap` so that texture read as
noise is not wiped out. PNG: no JPEG artifacts added back.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import AutoDenoiser, Plan
from imdenoise.io.datasets import list_images
from imdenoise.io.images import read_image, write_image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cap", type=float, default=8.0, help="highest level used (0-255 scale)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    default = load("default")
    assert isinstance(default, AutoDenoiser)
    args.out.mkdir(parents=True, exist_ok=True)
    levels = []
    for path in list_images(str(args.src)):
        target = args.out / (Path(path).stem + ".png")
        if target.exists():
            continue
        image = read_image(path)
        x = np.asarray(image.data, dtype=np.float32)
        plan = default.plan(x)
        capped = Plan(plan.model, min(float(plan.sigma or 0.0), args.cap), plan.estimate, plan.shuffle)
        levels.append(capped.sigma)
        write_image(target, default.run(capped, x), like=image)
    if levels:
        print(f"{len(levels)} images to {args.out}: level median {np.median(levels):.2f}, "
              f"{np.mean(np.array(levels) >= args.cap):.0%} at the cap {args.cap:g}")


if __name__ == "__main__":
    main()
