"""Zero-shot Noise2Noise on Kodak24 under BENCHMARK.md's AWGN protocol, and the speed-variant study.

Usage:
  python benchmarks/zeroshot.py report [--sigmas 25,50] [--limit N] [--schedule fast] [--threads 2]
  python benchmarks/zeroshot.py study [--images 3] [--crop 256] [--sigma 25] [--variants a,b,...]

`report` prints per-image PSNR (8-bit, protocol steps 3-4) and seconds (fit + final pass; Kodak
images are 500x500 or 512x768-ish: the seconds are also scaled to a 512x512 image by pixel count),
then the mean per sigma, as markdown. `study` compares speed variants on center crops of the first
Kodak24 images at one sigma. Lines are flushed as they come so a background run can be watched.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imdenoise.denoisers.zeroshot import ZeroShotDenoiser
from imdenoise.metrics import psnr_uint8, quantize_8bit
from imdenoise.noise.models import benchmark_noisy

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SET = ROOT.parent / "shared" / "datasets" / "test" / "kodak24"

# name -> ZeroShotDenoiser options (the speed variants of docs/zeroshot.md)
VARIANTS: dict[str, dict] = {
    "paper": dict(schedule="paper"),
    "paper-bf16": dict(schedule="paper", precision="bf16"),
    "full-bf16-500-lr3e-3": dict(schedule="paper", precision="bf16", epoch_count=500, step_size=375,
                                 learning_rate=3e-3),
    "p128-bf16-800-lr2e-3": dict(schedule="fast"),
    "p128-fp32-800-lr2e-3": dict(schedule="fast", precision="fp32"),
    "p128-bf16-1500-lr1e-3": dict(schedule="fast", epoch_count=1500, step_size=1125, learning_rate=1e-3),
    "p128-bf16-800-es100": dict(schedule="fast", patience=100),
    "p96-bf16-600-lr3e-3": dict(schedule="fast", patch=96, epoch_count=600, step_size=450, learning_rate=3e-3),
}


def load_set(folder: Path) -> list[tuple[str, np.ndarray]]:
    """Color set sorted by file name, as (name, float32 HxWx3 in [0, 1]) (protocol step 1)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".bmp", ".tif"})
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append((p.name, np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0))
    return out


def to_u8(a: np.ndarray) -> np.ndarray:
    """Protocol step 3: clip to [0, 1] and quantize to 8 bits."""
    return quantize_8bit(a)


def run_one(clean: np.ndarray, sigma: float, index: int, options: dict) -> tuple[float, float, float, int]:
    """(input PSNR, output PSNR, seconds, iterations) of one denoise call on the protocol's noisy image."""
    noisy = benchmark_noisy(clean, sigma, index)
    den = ZeroShotDenoiser(progress=False, **options)
    start = time.perf_counter()
    out = den.denoise(noisy)
    seconds = time.perf_counter() - start
    iters = den.last_fit.iterations if den.last_fit else 0
    return psnr_uint8(to_u8(clean), to_u8(noisy)), psnr_uint8(to_u8(clean), to_u8(out)), seconds, iters


def report(args: argparse.Namespace) -> None:
    """Kodak24 table: PSNR and seconds per image (and per 512x512) at each sigma."""
    indexed = list(enumerate(load_set(args.dataset)))[args.start:]
    indexed = indexed[: args.limit or None]  # the protocol's seed uses the index in the whole set
    options = dict(schedule=args.schedule)
    print(f"# zero-shot N2N, schedule {args.schedule}, {len(indexed)} images from #{args.start} of {args.dataset.name}, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    print("| sigma | image | size | noisy PSNR | PSNR | iterations | seconds | s per 512x512 |", flush=True)
    print("|---|---|---|---|---|---|---|---|", flush=True)
    summary = []
    for sigma in args.sigmas:
        rows = []
        for i, (name, clean) in indexed:
            p_in, p_out, sec, iters = run_one(clean, sigma, i, options)
            per512 = sec * 512 * 512 / (clean.shape[0] * clean.shape[1])
            rows.append((p_out, sec, per512))
            print(f"| {sigma:g} | {name} | {clean.shape[1]}x{clean.shape[0]} | {p_in:.2f} | {p_out:.2f} | {iters} "
                  f"| {sec:.1f} | {per512:.1f} |", flush=True)
        summary.append((sigma, len(rows), statistics.mean(r[0] for r in rows),
                        statistics.median(r[1] for r in rows), statistics.median(r[2] for r in rows)))
    print("\n| sigma | images | mean PSNR | median s per image | median s per 512x512 |\n|---|---|---|---|---|")
    for sigma, n, p, s, s512 in summary:
        print(f"| {sigma:g} | {n} | {p:.2f} | {s:.1f} | {s512:.1f} |", flush=True)


def study(args: argparse.Namespace) -> None:
    """Speed variants on center crops of the first images: mean PSNR and seconds per crop."""
    images = load_set(args.dataset)[: args.images]
    names = args.variants or list(VARIANTS)
    print(f"# variant study: sigma {args.sigma:g}, {len(images)} center crops {args.crop}x{args.crop}, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    print("| variant | per-image PSNR | mean PSNR | mean iterations | mean seconds |\n|---|---|---|---|---|", flush=True)
    for v in names:
        results = []
        for i, (_, clean) in enumerate(images):
            h, w = clean.shape[:2]
            top, left = (h - args.crop) // 2, (w - args.crop) // 2
            crop = np.ascontiguousarray(clean[top:top + args.crop, left:left + args.crop])
            results.append(run_one(crop, args.sigma, i, VARIANTS[v]))
        per = " / ".join(f"{r[1]:.2f}" for r in results)
        print(f"| {v} | {per} | {statistics.mean(r[1] for r in results):.2f} | "
              f"{statistics.mean(r[3] for r in results):.0f} | {statistics.mean(r[2] for r in results):.1f} |",
              flush=True)


def main() -> None:
    """Parse the arguments and run the report or the study."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["report", "study"])
    ap.add_argument("--dataset", type=Path, default=DEFAULT_SET)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (protocol: 2)")
    ap.add_argument("--sigmas", type=lambda s: [float(x) for x in s.split(",")], default=[25.0, 50.0])
    ap.add_argument("--limit", type=int, default=0, help="N images only (0: all)")
    ap.add_argument("--start", type=int, default=0, help="skip the first images (report them in another run)")
    ap.add_argument("--schedule", default="fast", choices=["fast", "paper"])
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--sigma", type=float, default=25.0)
    ap.add_argument("--variants", type=lambda s: s.split(","), default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report(args) if args.mode == "report" else study(args)


if __name__ == "__main__":
    main()
