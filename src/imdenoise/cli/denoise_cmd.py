"""`imdenoise denoise` (files, folders or globs in; a file or folder out) and `imdenoise models`."""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from imdenoise.denoisers.options import InferenceOptions
from imdenoise.errors import ImageReadError, ImDenoiseError
from imdenoise.io.formats import IMAGE_SUFFIXES
from imdenoise.io.images import Image

log = logging.getLogger(__name__)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> a de-duplicated list of files."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        elif any(ch in item for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item))
            if not matches:
                raise ImageReadError(f"{item}: no files match this pattern")
            files += matches
        elif p.exists():
            files.append(p)
        else:
            raise ImageReadError(f"{p}: no such file or directory")
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    if not unique:
        raise ImageReadError(f"no images found in {', '.join(inputs)}")
    return unique


def output_paths(files: list[Path], output: Path, suffix: str | None) -> list[Path]:
    """One input and an output with an image extension -> that file; otherwise files inside a folder."""
    if len(files) == 1 and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        return [output]
    if output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise ImDenoiseError(f"{output}: {len(files)} inputs need an output folder, not an image file name")
    if output.suffix and not output.is_dir():  # `-o out.gif` is a typo'd format, not a folder name
        raise ImDenoiseError(f"{output}: unsupported output type {output.suffix!r} (supported: "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))}); to write into a folder of this name, create it first")
    if suffix is not None and suffix.lower() not in IMAGE_SUFFIXES:
        raise ImDenoiseError(f"--suffix {suffix!r}: unsupported output type (supported: {', '.join(sorted(IMAGE_SUFFIXES))})")
    if output.exists() and not output.is_dir():
        raise ImDenoiseError(f"{output}: several inputs need an output folder, but this is a file")
    names = [f.stem + (suffix or f.suffix) for f in files]
    if len(set(names)) != len(names):
        raise ImDenoiseError("several inputs share a file name; denoise them into separate folders")
    output.mkdir(parents=True, exist_ok=True)
    return [output / n for n in names]


def _shard(items: list) -> list:
    """This rank's share of a list under torchrun (every item exactly once across ranks)."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return items[rank::world]


def _release(frame: Image, result: np.ndarray, estimate: Any = None) -> np.ndarray:
    """`result`, after dropping the frame's pixels (and a noise estimate's hold on them): writing needs
    only the frame's type and alpha, and the input's memory (432 MB for 36 MP colour) is free for it."""
    frame.data = frame.data[:0, :0]
    if estimate is not None:
        estimate.release()
    return result


_RUN = InferenceOptions()  # the library's defaults, shown in --help and never restated here


def denoise(
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (one input) or folder."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Shipped model name or weights path [default: default]."),
    method: Optional[str] = typer.Option(None, "--method", help="Classical method (mean, median, gaussian, wavelet, nlm, tv, bm3d) or zeroshot."),
    sigma: Optional[float] = typer.Option(None, "--sigma", "-s", help="Noise level on the 0-255 scale; estimated when omitted."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Architecture of a plain .pt/.pth state dict."),
    tile: int = typer.Option(_RUN.tile, "--tile", help="Tile size for large images (memory bound); 0 = never tile."),
    overlap: int = typer.Option(_RUN.overlap, "--overlap", help="Tile overlap in pixels."),
    device: str = typer.Option(_RUN.device, "--device", help="auto, cpu, cuda or mps."),
    precision: str = typer.Option(_RUN.precision, "--precision", help="fp32, bf16 (autocast) or auto (bf16 where the CPU computes it natively)."),
    ensemble: int = typer.Option(_RUN.ensemble, "--ensemble", help="Average 1 (off), 2, 4 or 8 flipped/rotated passes "
                                 "(geometric self-ensemble: about +0.1 dB at N times the time)."),
    backend: str = typer.Option("torch", "--backend", help="torch or onnxruntime (for .onnx files)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    suffix: Optional[str] = typer.Option(None, "--suffix", help="Output extension for folder output, e.g. .png (default: the input's)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Output sample type: uint8, uint16 or float32 (default: the input's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    max_pages: int = typer.Option(1000, "--max-pages", min=1,
                                  help="Most pages read from one multi-page TIFF (more is an error)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
    json_lines: bool = typer.Option(False, "--json", help="Print one JSON object per image instead of a line of text."),
) -> None:
    """Denoise images with a pretrained model (default) or a classical method; keeps bit depth and alpha."""
    from tqdm import tqdm

    from imdenoise.arrays import check_finite_output, checked_sigma
    from imdenoise.denoisers.catalog import load
    from imdenoise.io.images import read_frames, write_frames

    if model and method:
        raise ImDenoiseError("give either --model or --method, not both")
    if sigma is not None:
        checked_sigma(sigma, "--sigma")
    files = expand_inputs(inputs)
    pairs = _shard(list(zip(files, output_paths(files, output, suffix))))  # this rank's share
    if not overwrite:
        existing = [dst for _, dst in pairs if dst.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise ImDenoiseError(f"{existing[0]}: output exists{more}; pass --overwrite to replace")
    from imdenoise.denoisers.network import AutoDenoiser

    denoiser = load(model or method or "default", arch=arch, backend=backend, tile=tile or None, overlap=overlap,
                    device=device, precision=precision, threads=threads, ensemble=ensemble)
    failures = 0
    bar = tqdm(pairs, desc="denoise", unit="img", disable=not sys.stderr.isatty() or len(pairs) < 2)
    for src, dst in bar:
        try:
            frames = read_frames(src, max_pages=max_pages)  # every page of a multi-page TIFF, else one image
            if len(frames) > 1 and dst.suffix.lower() not in (".tif", ".tiff"):
                raise ImDenoiseError(f"{src}: {len(frames)} pages need a .tif/.tiff output, not {dst.suffix!r}")
            size = size_report(frames)  # before the frames' pixels are released
            start = time.perf_counter()
            if isinstance(denoiser, AutoDenoiser):  # 'default': says which model and level it chose
                plans = [denoiser.plan(f.data, sigma) for f in frames]
                untimed = time.perf_counter()
                what = plan_report(plans[0])  # may make the coarse estimate for the report: not timed
                start += time.perf_counter() - untimed
                clean = [_release(f, denoiser.run(p, f.data), p.estimate) for p, f in zip(plans, frames)]
            else:
                untimed = time.perf_counter()
                what = method_report(denoiser, frames[0].data, sigma)  # the level it used or estimates: not timed
                start += time.perf_counter() - untimed
                clean = [_release(f, denoiser.denoise(f.data, sigma)) for f in frames]  # alpha was set aside on read
            seconds = time.perf_counter() - start
            for page in clean:
                check_finite_output(page, str(src))  # never write a NaN result as an image
            write_frames(dst, clean, like=frames, dtype=dtype, overwrite=overwrite)
            record = {"input": str(src), "output": str(dst), **what, **size, "seconds": round(seconds, 3)}
            if json_lines:
                tqdm.write(json.dumps(record))
            elif not quiet:
                tqdm.write(report_line(record))
        except ImDenoiseError as exc:
            failures += 1
            msg = str(exc) if str(src) in str(exc) else f"{src}: {exc}"  # name the file the error is about
            typer.echo(f"error: {msg}", err=True)
    if failures:
        raise typer.Exit(code=2)


def plan_report(plan) -> dict:
    """What `default` did with one image: the model it chose, the noise kind and the level it used."""
    e = plan.estimate
    if e is None:
        return {"model": plan.model.name, "noise": "gaussian", "sigma": plan.sigma, "sigma_source": "given"}
    report = {"model": plan.model.name, "noise": e.kind, "sigma": round(float(e.level), 2), "sigma_source": "estimated"}
    if plan.sigma is not None and abs(plan.sigma - e.level) >= 0.05:  # a photo's level rule, or a clamp
        report["denoised_at"] = round(float(plan.sigma), 2)
    if plan.shuffle > 1:  # a photo: the model ran on pixel-shuffled sub-images
        report["pixel_shuffle"] = plan.shuffle
    return report


def method_report(denoiser, image, sigma: float | None) -> dict:
    """What a named model or method did: its name and the level it was given, or the one it estimated."""
    from imdenoise.noise.models import estimate_sigma

    name = str(getattr(denoiser, "name", "method"))
    if sigma is not None:
        return {"model": name, "noise": None, "sigma": sigma, "sigma_source": "given"}
    blind = not getattr(getattr(denoiser, "model", None), "noise_conditioned", True)
    if callable(getattr(denoiser, "sigma_for", None)) and not blind:
        value = denoiser.sigma_for(image, None)  # what the network was given: clamped to its trained range
    else:
        value = float(estimate_sigma(image))  # what a classical method used; a blind network's is for the report
    source = "estimated, blind model" if blind else "estimated"
    return {"model": name, "noise": None, "sigma": round(float(value), 2), "sigma_source": source}


def size_report(frames) -> dict:
    """Width, height, channels and pages of what was denoised (width first, as every message says)."""
    h, w, c = frames[0].data.shape
    return {"width": int(w), "height": int(h), "channels": int(c) + (frames[0].alpha is not None),
            "pages": len(frames)}


def report_line(r: dict) -> str:
    """The one line `denoise` prints per image."""
    noise = f", {r['noise']} noise" if r["noise"] else ""
    pages = f", {r['pages']} pages" if r["pages"] > 1 else ""
    used = f", denoised at {r['denoised_at']:g}" if r.get("denoised_at") is not None else ""
    if r.get("pixel_shuffle"):
        used += f" on {r['pixel_shuffle']}x{r['pixel_shuffle']} pixel-shuffled sub-images"
    return (f"{r['input']} -> {r['output']}: {r['model']}{noise}, level {r['sigma']:g} ({r['sigma_source']}){used}, "
            f"{r['width']}x{r['height']}x{r['channels']}{pages}, {r['seconds']:.2f} s")


def models() -> None:
    """List the shipped pretrained models and every trainable architecture."""
    from imdenoise.models.registry import list_models

    rows = list_models()
    typer.echo(f"{'name':16s} {'kind':12s} {'channels':8s} {'params':>9s}  description")
    for r in rows:
        typer.echo(f"{r.name:16s} {r.kind:12s} {r.channels:8s} {r.parameters / 1e6:8.2f}M  {r.description}")
