"""`imdenoise noise` and `imdenoise metrics`: add seeded noise to an image, compare two images."""

from __future__ import annotations

import enum
import math
from pathlib import Path
from typing import Optional

import typer

from imdenoise.errors import ImDenoiseError


class SampleType(str, enum.Enum):
    """Output sample types a user can ask for."""

    uint8 = "uint8"
    uint16 = "uint16"
    float32 = "float32"


def noise(
    input_path: Path = typer.Argument(..., metavar="IN", help="Clean image (PNG, JPEG, BMP, TIFF or NPY)."),
    output: Path = typer.Option(..., "--output", "-o", help="Noisy image to write; its extension picks the format."),
    spec: str = typer.Option(..., "--noise", "-n",
                             help="Noise model: gaussian:25, poisson:30, saltpepper:0.05[:0.5], speckle:0.1, mixed, "
                             "rician:10 (MRI), poisson-gaussian:gain=0.01,sigma=5 (microscopy), camera."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same noise."),
    dtype: Optional[SampleType] = typer.Option(
        None, "--dtype", help="Output sample type (default: the input's). Integer types clip to their range; "
                              "use float32 with .tiff or .npy to keep the noise unclipped."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Add seeded noise to an image and write it (bit depth and alpha of the input kept)."""
    import numpy as np

    from imdenoise.io.images import read_image, write_image
    from imdenoise.noise.models import parse_noise

    model = parse_noise(spec)  # a bad spec fails before any file is read
    image = read_image(input_path)
    noisy = model(image.data, np.random.default_rng(seed))
    out_type = dtype.value if dtype is not None else np.dtype(image.dtype).name
    written = write_image(output, noisy, like=image, dtype=out_type, overwrite=overwrite)
    typer.echo(f"wrote {written}: {image.width}x{image.height}, {image.channels} channel(s), {out_type}, "
               f"noise {spec} (seed {seed})")
    if out_type != "float32":
        clipped = float(np.mean((noisy < 0) | (noisy > 1)))
        if clipped > 0:
            typer.echo(f"note: {clipped:.1%} of the noisy values fell outside [0, 1] and were clipped by the "
                       f"{out_type} output; write .tiff or .npy with --dtype float32 to keep them")


def metrics(
    clean: Path = typer.Argument(..., help="Reference (clean) image."),
    denoised: Path = typer.Argument(..., help="Image to score against it (same size and channels)."),
) -> None:
    """Print PSNR (dB) and SSIM of DENOISED against CLEAN (8-bit pairs: the benchmark protocol)."""
    import numpy as np

    from imdenoise.arrays import all_finite
    from imdenoise.io.images import read_image

    ref, out = read_image(clean), read_image(denoised)
    for path, image in ((clean, ref), (denoised, out)):
        if not all_finite(image.data):  # PSNR would be "nan dB"
            raise ImDenoiseError(f"{path}: image contains NaN or infinite values; no PSNR or SSIM can be computed")
    if ref.data.shape != out.data.shape:
        raise ImDenoiseError(f"{denoised}: size {_shape(out.data)} does not match {clean}: {_shape(ref.data)}")
    if ref.dtype == np.uint8 and out.dtype == np.uint8:
        psnr, ssim = _scores_uint8(ref.data, out.data)
        how = "8-bit pair, data range 255"
    else:
        psnr, ssim = _scores_float(ref.data, out.data)
        how = "on the [0, 1] scale, data range 1"
    typer.echo(f"PSNR: {'inf' if math.isinf(psnr) else f'{psnr:.2f}'} dB")
    typer.echo(f"SSIM: {'n/a (images smaller than 11x11)' if ssim is None else f'{ssim:.4f}'}")
    ignored = ", alpha ignored" if ref.alpha is not None or out.alpha is not None else ""
    typer.echo(f"({how}, {_shape(ref.data)}{ignored})")


def _shape(data) -> str:
    """Width x height x channels, as users read image sizes."""
    return f"{data.shape[1]}x{data.shape[0]}x{data.shape[2]}"


def _scores_uint8(a, b) -> tuple[float, float | None]:
    """The benchmark protocol's PSNR and SSIM on the exact 8-bit samples."""

    from imdenoise.metrics import psnr_uint8, quantize_8bit, ssim_uint8

    a8, b8 = quantize_8bit(a), quantize_8bit(b)
    return psnr_uint8(a8, b8), (ssim_uint8(a8, b8) if min(a.shape[:2]) >= 11 else None)


def _scores_float(a, b) -> tuple[float, float | None]:
    """PSNR and SSIM of float images (HxWxC, data range 1) through the torch metrics."""
    import torch

    from imdenoise.metrics import psnr, ssim

    x, y = (torch.from_numpy(v).permute(2, 0, 1).double() for v in (a, b))
    return float(psnr(x, y, data_range=1.0)), (float(ssim(x, y, data_range=1.0)) if min(a.shape[:2]) >= 11 else None)
