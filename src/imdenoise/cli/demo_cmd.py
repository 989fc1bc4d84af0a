"""`imdenoise demo`: the main job on a shipped default, end to end, in one command."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def demo(
    output: Path = typer.Option(Path("demo-output"), "--output", "-o", help="Folder for the figure and images."),
    sigma: float = typer.Option(25.0, "--sigma", help="Gaussian noise level added to the sample (0-255 scale)."),
    seed: int = typer.Option(0, "--seed", help="Noise seed."),
) -> None:
    """Add noise to a bundled sample image, denoise it blind, write a before/after figure, print PSNR."""
    import numpy as np

    from imdenoise.denoisers.catalog import available_methods, load
    from imdenoise.evaluation.figures import before_after_figure
    from imdenoise.io.images import read_image, write_image
    from imdenoise.metrics import psnr_change
    from imdenoise.noise.models import parse_noise
    from imdenoise.paths import ASSETS_DIR

    sample = ASSETS_DIR / "sample.png"
    image = read_image(sample)
    clean = image.data
    noisy = parse_noise(f"gaussian:{sigma:g}")(clean, np.random.default_rng(seed))
    methods = available_methods()
    method = "default" if "default" in methods else ("bm3d" if _has_bm3d() else "nlm")
    denoiser = load(method)
    start = time.perf_counter()
    out = denoiser.denoise(noisy)  # blind: the noise level is estimated
    seconds = time.perf_counter() - start
    p_noisy, p_out, change = psnr_change(clean, noisy, out)
    output.mkdir(parents=True, exist_ok=True)
    for name, arr in (("noisy.png", noisy), ("denoised.png", out)):
        write_image(output / name, arr, dtype="uint8", overwrite=True)
    fig = before_after_figure(output / "before_after.png", clean, noisy, out,
                              titles=(f"noisy, sigma {sigma:g}: {p_noisy:.2f} dB", f"{method}: {p_out:.2f} dB", "clean"))
    typer.echo(f"sample {sample.name} {clean.shape[1]}x{clean.shape[0]}, Gaussian noise sigma {sigma:g} (seed {seed})")
    typer.echo(f"method {method}: {change} in {seconds:.2f} s")
    typer.echo(f"figure: {fig}")


def _has_bm3d() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True
