"""Error of the blind noise-level estimator on Set12 and BSD68 under the benchmark AWGN.

Usage: python benchmarks/noise_estimation.py [--datasets DIR] [--sigmas 5,10,15,25,35,50] [--plain] [--clipped]
       python benchmarks/noise_estimation.py --routing [--sigmas 15,25,50]
Prints a markdown table: mean and max absolute error (and mean signed error, the bias) of
``imdenoise.noise.models.estimate_sigma`` on every image of each set, noise from ``benchmark_noisy``.
``--plain``: the unmodified Chen et al. estimator (one region: all patches of the image).
``--clipped``: the noisy image as an 8-bit file holds it (clipped to 0-255 and rounded).
``--routing``: what `default` decides blind (``estimate_noise``): the stride-2 / stride-1 ratio and
how many images count as photo-like, on the four AWGN test sets and on the real PolyU photos.
``--camera``: the level `default` reports for a photo against the true RMS of synthetic camera noise
(every third Kodak24 image, 512x512 top-left crops, `camera` noise at shot 1e-4 to 1e-2; true RMS of
the 8-bit noisy minus its reference, the per-channel offset and the band over 8 pixels removed, as
`benchmarks/real_error_bands.py` measures the PolyU noise), and the stride-2 and stride-4 estimates.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from imdenoise.noise.estimation import estimate_sigma_channel
from imdenoise.noise.models import benchmark_noisy, estimate_sigma

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIGMAS = "5,10,15,25,35,50"


def routing(datasets: Path, sigmas: list[float]) -> None:
    """Ratio of the stride-2 to the stride-1 estimate and photo-like counts, per set and level."""
    from imdenoise.noise.estimation import CORRELATION_RATIO, FAINT, estimate_noise

    print(f"photo-like: stride-2 / stride-1 ratio > {CORRELATION_RATIO} or stride-1 estimate < {FAINT}\n")
    print("| set | noise | images | ratio median | ratio max | stride-1 min | photo-like |")
    print("|---|---|---|---|---|---|---|")

    def row(name: str, noise: str, estimates: list) -> None:
        r = np.array([e.sigma_coarse / max(e.fine, 1e-9) for e in estimates])
        s1 = min(e.fine for e in estimates)
        print(f"| {name} | {noise} | {len(r)} | {np.median(r):.2f} | {r.max():.2f} | {s1:.2f} | "
              f"{sum(e.photo_like for e in estimates)} |", flush=True)

    for name in ("set12", "bsd68", "cbsd68", "kodak24"):
        paths = sorted(p for p in (datasets / "test" / name).iterdir() if p.suffix.lower() in {".png", ".jpg"})
        images = [np.asarray(Image.open(p), dtype=np.float32) / 255.0 for p in paths]
        for sigma in sigmas:
            row(name, f"gaussian:{sigma:g}", [estimate_noise(benchmark_noisy(c, sigma, i)) for i, c in enumerate(images)])
    real = sorted((datasets / "real" / "polyu-canon").glob("*_real.*"))
    row("polyu-canon", "real", [estimate_noise(np.asarray(Image.open(p), dtype=np.float32) / 255.0) for p in real])


def camera(datasets: Path) -> None:
    """Reported photo level against the true RMS of synthetic camera noise, per shot gain (medians)."""
    from scipy.ndimage import gaussian_filter

    from imdenoise.metrics import quantize_8bit
    from imdenoise.noise.estimation import estimate_noise
    from imdenoise.noise.models import parse_noise

    spec = "camera:shot={shot},quality=90-98,sharpen=0-0.15,luma=0.5-1.5,refsharpen=0"
    paths = sorted(p for p in (datasets / "test" / "kodak24").iterdir() if p.suffix.lower() == ".png")[::3]
    images = [np.asarray(Image.open(p).convert("RGB"), dtype=np.float32)[:512, :512] / 255.0 for p in paths]
    print("| camera noise, shot | images | true RMS | reported level | estimate, stride 2 | stride 4 |")
    print("|---|---|---|---|---|---|")
    for shot in (1e-4, 1e-3, 1e-2):
        rows = []
        for i, clean in enumerate(images):
            noisy, target, _ = parse_noise(spec.format(shot=shot)).sample_pair(clean, np.random.default_rng(i))
            noisy = np.clip(noisy, 0, 1).astype(np.float32)
            e = quantize_8bit(noisy).astype(np.float64) - quantize_8bit(target)
            e -= e.mean(axis=(0, 1))
            e -= gaussian_filter(e, (8, 8, 0))
            rows.append((np.sqrt(np.mean(e ** 2)), estimate_noise(noisy).level, estimate_sigma(noisy, stride=2),
                         estimate_sigma(noisy, stride=4)))
        m = np.median(np.array(rows), axis=0)
        print(f"| {shot:g} | {len(rows)} | " + " | ".join(f"{v:.2f}" for v in m) + " |", flush=True)


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
    ap.add_argument("--sigmas", default=DEFAULT_SIGMAS)
    ap.add_argument("--plain", action="store_true", help="the plain estimator, no flat-region pooling")
    ap.add_argument("--clipped", action="store_true", help="estimate on the 8-bit file: clipped and rounded")
    ap.add_argument("--routing", action="store_true", help="photo-or-white-noise decisions of `default`")
    ap.add_argument("--camera", action="store_true", help="reported photo level against synthetic camera noise")
    args = ap.parse_args()
    if args.camera:
        camera(args.datasets)
        return
    if args.routing:
        routing(args.datasets, [float(s) for s in args.sigmas.split(",")] if args.sigmas != DEFAULT_SIGMAS
                else [15.0, 25.0, 50.0])
        return
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
                if args.clipped:
                    noisy = np.round(np.clip(noisy, 0, 1) * 255) / 255
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
