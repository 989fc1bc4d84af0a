"""Memory figures of the hardening work (docs/hardening.md), each printed as a table.

    python benchmarks/hardening.py cli-memory [--sizes 12,24,36] [--method NAME]
        peak RSS of `imdenoise denoise IN.png -o OUT.png` on noisy colour photos of N megapixels
    python benchmarks/hardening.py tiff-pages [--pages 1000000]
        seconds and peak RSS of `imdenoise denoise` on a TIFF of that many 1x1 pages (refused)

Each measured command runs in its own process; its peak RSS is the kernel's (wait4's ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIDES = {12: (4000, 3000), 24: (6000, 4000), 36: (6000, 6000), 40: (7300, 5500)}


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MiB, stderr tail) of one command in its own process."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    return code, seconds, usage.ru_maxrss / 1024, err.strip().splitlines()[-1] if err.strip() else ""


def noisy_photo(width: int, height: int, sigma: float = 15.0, seed: int = 0) -> np.ndarray:
    """A uint8 colour photo of the given size: the bundled sample photo tiled (mirrored), plus white noise."""
    from PIL import Image

    with Image.open(ROOT / "src" / "imdenoise" / "assets" / "sample.png") as im:
        tile = np.asarray(im.convert("RGB"))
    tile = np.concatenate([tile, tile[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    img = np.tile(tile, reps)[:height, :width]
    rng = np.random.default_rng(seed)
    out = np.empty_like(img)
    for y in range(0, height, 500):  # row blocks: the generator itself stays small
        block = img[y:y + 500].astype(np.float32) + rng.normal(0, sigma, img[y:y + 500].shape).astype(np.float32)
        out[y:y + 500] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def cli_memory(sizes: list[int], method: str | None) -> None:
    """Peak RSS of the CLI denoising a noisy colour PNG of each size (default model unless --method)."""
    from PIL import Image

    print("| image | method | exit | seconds | peak RSS (MiB) | peak RSS (GB) |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="imdenoise-bench-") as tmp:
        for mp in sizes:
            w, h = SIDES[mp]
            src = Path(tmp) / f"noisy{mp}.png"
            Image.fromarray(noisy_photo(w, h)).save(src, compress_level=1)
            out = Path(tmp) / f"out{mp}.png"
            cmd = [sys.executable, "-m", "imdenoise", "denoise", str(src), "-o", str(out)]
            cmd += ["--method", method] if method else []
            code, seconds, rss, err = run_measured(cmd, _env())
            print(f"| {w}x{h} colour PNG ({w * h / 1e6:.0f} MP) | {method or 'default'} | {code} | {seconds:.0f} | "
                  f"{rss:.0f} | {rss * 2**20 / 1e9:.2f} |" + (f" {err}" if code else ""), flush=True)
            src.unlink()
            out.unlink(missing_ok=True)


def tiff_pages(pages: int) -> None:
    """Seconds and peak RSS of the CLI on a TIFF of `pages` 1x1 pages (refused past --max-pages)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_hardening_cli import tiff_pages as make

    print("| file | exit | seconds | peak RSS (MiB) | message |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="imdenoise-bench-") as tmp:
        src = Path(tmp) / "pages.tif"
        src.write_bytes(make(pages))
        cmd = [sys.executable, "-m", "imdenoise", "denoise", str(src), "-o", str(Path(tmp) / "o.tif"),
               "--method", "mean", "--sigma", "10"]
        code, seconds, rss, err = run_measured(cmd, _env())
        print(f"| {pages} pages, {src.stat().st_size / 1e6:.0f} MB | {code} | {seconds:.1f} | {rss:.0f} | {err[:120]} |")


def main() -> None:
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("cli-memory")
    p.add_argument("--sizes", default="12,24,36")
    p.add_argument("--method", default=None)
    p = sub.add_parser("tiff-pages")
    p.add_argument("--pages", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.what == "cli-memory":
        cli_memory([int(s) for s in args.sizes.split(",")], args.method)
    elif args.what == "tiff-pages":
        tiff_pages(args.pages)


if __name__ == "__main__":
    main()
