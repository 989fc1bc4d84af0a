"""Interleaved timing on real 512x512 photos (every 11th PolyU Canon crop), 2 threads: `default` (its photo
path), `color` blind, and the DnCNN-17 and FFDNet (color) architectures; with --bf16 also `default` and
FFDNet under bf16 autocast (precision auto: bf16 only where this CPU computes it natively).

    python benchmarks/photo_speed.py [--rounds 3] [--bf16]
"""

from __future__ import annotations

import argparse
import glob
import time

import numpy as np
import torch
from PIL import Image

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import InferenceOptions, ModelDenoiser
from imdenoise.models.registry import build_model
from imdenoise.paths import datasets_root
from imdenoise.precision import resolve_precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bf16", action="store_true", help="also time default and FFDNet with precision auto")
    args = ap.parse_args()
    torch.set_num_threads(2)
    files = sorted(glob.glob(str(datasets_root() / "real" / "polyu-canon" / "*_real.JPG")))[::11]
    images = [np.asarray(Image.open(f)).astype(np.float32) / 255 for f in files]

    def arch(name: str, precision: str = "fp32") -> ModelDenoiser:
        return ModelDenoiser(build_model(name, in_channels=3).eval(), name, None, InferenceOptions(precision=precision))

    runs = {"default": (load("default"), None), "color blind": (load("color"), None),
            "dncnn-17 arch": (arch("dncnn"), 25.0), "ffdnet-color arch": (arch("ffdnet-color"), 25.0)}
    if args.bf16:
        native = resolve_precision("auto")
        runs[f"default, precision auto ({native})"] = (load("default", precision="auto"), None)
        runs[f"ffdnet-color arch, precision auto ({native})"] = (arch("ffdnet-color", "auto"), 25.0)
    for den, sigma in runs.values():  # warm-up
        den.denoise(images[0], sigma)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for image in images:
            for name, (den, sigma) in runs.items():
                start = time.perf_counter()
                den.denoise(image, sigma)
                times[name].append(time.perf_counter() - start)
    base = np.median(times["color blind"])
    print(f"{len(images)} PolyU Canon crops (512x512 color), {args.rounds} rounds, 2 threads, interleaved\n")
    print("| method | median s / image | / color blind |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {np.median(values):.3f} | {np.median(values) / base:.3f} |")


if __name__ == "__main__":
    main()
