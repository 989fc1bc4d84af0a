"""Would `default` gain from the `photo` model? On the PolyU Canon crops (every fifth by default): `photo`, `photo` on 2x2
pixel-shuffled sub-images, `default` (color on sub-images), and the mean of `photo` and `default` (two
networks, twice the time).

    python benchmarks/photo_ensemble.py [--threads 2] [--every 5]

`--every 1` runs all 55 crops (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.shuffle import pixel_shuffled
from imdenoise.evaluation.evaluate import load_pairs
from imdenoise.metrics import psnr_uint8, quantize_8bit
from imdenoise.paths import datasets_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--every", type=int, default=5, help="every N-th crop (1: all)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_pairs(datasets_root() / "real" / "polyu-canon")
    assert ds.noisy is not None
    photo, default = load("photo"), load("default")
    rows: dict[str, list[float]] = {"noisy": [], "photo": [], "photo on sub-images": [], "default": [],
                                    "mean of photo and default": []}
    for i in range(0, len(ds.images), args.every):
        ref, x = ds.images[i], ds.noisy[i].astype(np.float32) / 255
        p, d = photo.denoise(x), default.denoise(x)
        outs = {"noisy": x, "photo": p, "photo on sub-images": pixel_shuffled(photo.denoise, x, None),
                "default": d, "mean of photo and default": (p + d) / 2}
        for name, out in outs.items():
            rows[name].append(psnr_uint8(ref, quantize_8bit(out)))
    print(f"| PolyU Canon crops, every {args.every} ({len(rows['noisy'])}) | PSNR dB |\n|---|---|")
    for name, values in rows.items():
        print(f"| {name} | {np.mean(values):.3f} |")


if __name__ == "__main__":
    main()
