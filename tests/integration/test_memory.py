"""Memory bounds, measured in fresh subprocesses (VmHWM / VmRSS from /proc/self/status).

1. Denoising a 40-megapixel colour image (7300x5500x3 float32: 482 MB in, 482 MB out) with the
   shipped U-Net architecture through `ModelDenoiser` and the default tile (1024) peaks at no more
   than the process's baseline (imports + model) + input + output + the blend-weight plane
   (4*H*W bytes, a third of the input) + a constant for one tile's activations (CONSTANT_MB).
   The same bound is checked on a 3-megapixel image in the fast suite.
2. A folder of 1,000 small images streamed through `imdenoise denoise FOLDER -o OUT --method mean`
   does not grow memory: RSS after the last file is within STREAM_GROWTH_MB of RSS after file 50.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PY = sys.executable
MB = 1 << 20
CONSTANT_MB = 700  # one 1024x1024 tile through the shipped U-Net (measured ~380 MB) + allocator slack
STREAM_GROWTH_MB = 25

_DENOISE = textwrap.dedent("""
    import json, sys
    import numpy as np, torch
    from imdenoise.denoisers.network import ModelDenoiser
    from imdenoise.models.registry import build_model

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    h, w = int(sys.argv[1]), int(sys.argv[2])
    torch.manual_seed(0)
    d = ModelDenoiser(build_model("unet", in_channels=3), "unet-random")  # default tile 1024
    d.denoise(np.random.rand(64, 64, 3).astype(np.float32), 25)  # warm-up: allocator, kernels
    base = status("VmRSS")
    img = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
    out = d.denoise(img, 25)
    assert out.shape == img.shape and np.isfinite(out).all()
    print(json.dumps({"base": base, "peak": status("VmHWM"), "input": img.nbytes, "output": out.nbytes}))
""")


def _measure_denoise(h: int, w: int, timeout: float) -> dict:
    proc = subprocess.run([PY, "-c", _DENOISE, str(h), str(w)], capture_output=True, text=True, timeout=timeout,
                          env={"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin",  # the tree under test first
                               **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check_bound(m: dict, h: int, w: int) -> None:
    weight_plane = 4 * h * w
    bound = m["base"] + m["input"] + m["output"] + weight_plane + CONSTANT_MB * MB
    extra = (m["peak"] - m["base"] - m["input"] - m["output"]) / MB
    print(f"{h}x{w}x3: baseline {m['base'] / MB:.0f} MB, peak {m['peak'] / MB:.0f} MB, "
          f"peak - baseline - input - output = {extra:.0f} MB, bound {bound / MB:.0f} MB")
    assert m["peak"] <= bound, (m, bound)


@pytest.mark.timeout(600)
def test_denoise_3mp_stays_under_bound() -> None:
    h, w = 1500, 2000
    _check_bound(_measure_denoise(h, w, timeout=540), h, w)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_denoise_40mp_color_stays_under_bound() -> None:
    h, w = 5500, 7300
    _check_bound(_measure_denoise(h, w, timeout=3500), h, w)


_STREAM = textwrap.dedent("""
    import json, sys
    import imdenoise.io.images as io
    from imdenoise.cli.main import main

    def rss():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024

    samples, real_write = {}, io.write_image
    def counting_write(*args, **kwargs):  # the CLI's loop writes once per image: sample RSS there
        path = real_write(*args, **kwargs)
        samples[len(samples) + 1] = rss()
        return path
    io.write_image = counting_write
    try:
        main(["denoise", sys.argv[1], "-o", sys.argv[2], "--method", "mean"])
    except SystemExit as exc:
        assert not exc.code, exc.code
    print(json.dumps(samples))
""")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_folder_of_1000_images_streams_without_growth(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for k in range(1000):
        shape = (40, 56, 3) if k % 2 else (48, 40)
        Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(src / f"im{k:04d}.png")
    proc = subprocess.run([PY, "-c", _STREAM, str(src), str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=1700)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    assert len(samples) == 1000 and len(list((tmp_path / "out").iterdir())) == 1000
    growth = (samples[1000] - samples[50]) / MB
    print(f"RSS after 50 files {samples[50] / MB:.1f} MB, after 1000 {samples[1000] / MB:.1f} MB "
          f"(+{growth:.1f} MB); max {max(samples.values()) / MB:.1f} MB")
    assert growth < STREAM_GROWTH_MB, growth
