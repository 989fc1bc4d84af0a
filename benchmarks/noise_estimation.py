"""Error of the blind noise-level estimator on Set12 and BSD68 under the benchmark AWGN.

Usage: python benchmarks/noise_estimation.py [--datasets DIR] [--sigmas 5,10,15,25,35,50] [--plain]
Prints a markdown table: mean and max absolute error (and mean signed error, the bias) of
``imdenoise.noise.estimate_sigma`` on every image of each set, noise from ``benchmark_noisy``.
``--plain``: the unmodified Chen et al. estimator (one region: all patches of the image).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from imdenoise.noise import benchmark_noisy, estimate_sigma
from imdenoise.noise_estimation import estimate_sigma_channel

ROOT = Path(__file__).resolve().parents[1]


def load_set(folder: Path) -> list[np.ndarray]:
    """A gray set sorted by file name, as float32 HxWx1 in [0, 1] (protocol step 1)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".bmp", ".tif"})
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.asarray(im.convert("L"), dtype=np.float32)[..., None] / 255.0)
    return out


def main() -> None:
    """Run the estimator over the sets and levels and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    ap.add_argument("--sigmas", default="5,10,15,25,35,50")
    ap.add_argument("--plain", action="store_true", help="the plain estimator, no flat-region pooling")
    args = ap.parse_args()
    sigmas = [float(s) for s in args.sigmas.split(",")]
    print("| set | sigma | mean abs error | max abs error | mean signed error |")
    print("|---|---|---|---|---|")
    times, cpu = [], []
    for name in ("set12", "bsd68"):
        images = load_set(args.datasets / "test" / name)
        for sigma in sigmas:
            errors = []
            for i, clean in enumerate(images):
                noisy = benchmark_noisy(clean, sigma, i)
                t, c = time.perf_counter(), time.process_time()
                est = estimate_sigma_channel(noisy[..., 0], region=10**9) if args.plain else estimate_sigma(noisy)
                errors.append(est - sigma)
                times.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            e = np.asarray(errors)
            print(f"| {name} | {sigma:g} | {np.abs(e).mean():.2f} | {np.abs(e).max():.2f} | {e.mean():+.2f} |")
    print(f"\nmedian per image: {np.median(times) * 1000:.0f} ms wall, {np.median(cpu) * 1000:.0f} ms CPU")


if __name__ == "__main__":
    main()
