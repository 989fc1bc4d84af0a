"""Interleaved timing on real 512x512 photos (every 11th PolyU Canon crop): `default` (its photo path),
`color` blind and the DnCNN-17 architecture, 2 threads: `python benchmarks/photo_speed.py`."""

from __future__ import annotations

import glob
import time

import numpy as np
import torch
from PIL import Image

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import InferenceOptions, ModelDenoiser
from imdenoise.models.registry import build_model
from imdenoise.paths import datasets_root


def main(rounds: int = 3) -> None:
    torch.set_num_threads(2)
    files = sorted(glob.glob(str(datasets_root() / "real" / "polyu-canon" / "*_real.JPG")))[::11]
    images = [np.asarray(Image.open(f)).astype(np.float32) / 255 for f in files]
    dncnn = ModelDenoiser(build_model("dncnn", in_channels=3).eval(), "dncnn", None, InferenceOptions())
    runs = {"default": (load("default"), None), "color blind": (load("color"), None), "dncnn-17 arch": (dncnn, 25.0)}
    for den, sigma in runs.values():  # warm-up
        den.denoise(images[0], sigma)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for image in images:
            for name, (den, sigma) in runs.items():
                start = time.perf_counter()
                den.denoise(image, sigma)
                times[name].append(time.perf_counter() - start)
    for name, values in times.items():
        print(f"{name}: median {np.median(values):.3f} s over {len(values)} calls")
    print(f"default / color blind = {np.median(times['default']) / np.median(times['color blind']):.3f}")


if __name__ == "__main__":
    main()
