"""`imdenoise zeroshot`: denoise one image by fitting zero-shot Noise2Noise to it (no training data)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def zeroshot(
    input: Optional[Path] = typer.Argument(None, help="Noisy image (or give `image` in --config)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output image file."),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON/YAML file with image, learning_rate, "
                                          "epoch_count, step_size, gamma, degree (and schedule, patch, ...)."),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="fast (default) or paper (2000 full-image fp32 steps)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", "-n", help="Fitting iterations (config: epoch_count)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam learning rate (config: learning_rate)."),
    step_size: Optional[int] = typer.Option(None, "--step-size", help="StepLR: iterations between decays."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="StepLR decay factor."),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32, bf16 (autocast) or auto (bf16 where the CPU computes it natively; the fast schedule's default)."),
    patch: Optional[int] = typer.Option(None, "--patch", help="Random-crop size per step; 0 = whole image."),
    patience: Optional[int] = typer.Option(None, "--patience", help="Stop when the loss plateaus over this many steps."),
    degree: Optional[float] = typer.Option(None, "--degree", help="Demo: add Gaussian noise of this level on the "
                                           "[0, 1] scale (0.2 is strong; clipped to [0, 1]) first, then print "
                                           "PSNR against the clean input."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the net's init, the crops and the demo noise."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="Output sample type: uint8, uint16 or float32 (default: the input's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
) -> None:
    """Fit a tiny net to one noisy image (Mansour and Heckel, CVPR 2023) and write the denoised image."""
    import time

    import numpy as np

    from imdenoise.denoisers.zeroshot import ZeroShotDenoiser, load_config, make_config
    from imdenoise.errors import ConfigError, ImDenoiseError
    from imdenoise.io.images import read_image, write_image

    given = dict(schedule=schedule, epoch_count=iterations, learning_rate=lr, step_size=step_size, gamma=gamma,
                 precision=precision, patch=patch, patience=patience, degree=degree, seed=seed, threads=threads)
    if input is not None:
        given["image"] = str(input)
    given = {k: v for k, v in given.items() if v is not None}
    cfg = load_config(config, **given) if config else make_config("options", **given)
    if cfg.image is None:
        raise ConfigError("no input image: give IN or `image` in the --config file")
    if output.exists() and not overwrite:
        raise ImDenoiseError(f"{output}: output exists; pass --overwrite to replace")
    if cfg.max_bytes and Path(cfg.image).is_file() and Path(cfg.image).stat().st_size > cfg.max_bytes:
        raise ImDenoiseError(f"{cfg.image}: {Path(cfg.image).stat().st_size} bytes, above max_bytes {cfg.max_bytes}")
    image = read_image(cfg.image)
    noisy, clean = image.data, None
    if cfg.degree:
        clean = image.data
        rng = np.random.default_rng(cfg.seed)
        noisy = np.clip(clean + cfg.degree * rng.standard_normal(clean.shape, dtype=np.float32), 0.0, 1.0)
    denoiser = ZeroShotDenoiser(cfg)
    s = denoiser.settings
    typer.echo(f"{cfg.image}: {image.width}x{image.height}x{image.channels}, schedule {cfg.schedule}: "
               f"{s['epoch_count']} steps, lr {s['learning_rate']:g}, StepLR {s['step_size']}/{s['gamma']:g}, "
               f"{s['precision']}, {'crops ' + str(s['patch']) if s['patch'] else 'whole image'}")
    start = time.perf_counter()
    out = denoiser.denoise(noisy)
    seconds = time.perf_counter() - start
    fit = denoiser.last_fit
    note = " (stopped early: loss plateau)" if fit and fit.stopped_early else ""
    typer.echo(f"fitted in {fit.iterations if fit else 0} steps{note}, {seconds:.1f} s")
    if clean is not None:
        from imdenoise.metrics import psnr_change

        typer.echo(f"demo: Gaussian noise of degree {cfg.degree:g} (sigma {255 * (cfg.degree or 0):.3g} of 255) added "
                   f"and clipped; {psnr_change(clean, noisy, out)[2]}")
    written = write_image(output, out, like=image, dtype=dtype, overwrite=overwrite)
    typer.echo(f"wrote {written}")
