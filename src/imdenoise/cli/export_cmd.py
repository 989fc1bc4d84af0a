"""`imdenoise export` (ONNX, checked against PyTorch; optional int8) and `imdenoise prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imdenoise.denoisers.options import ATOL, OPSET
from imdenoise.deploy.options import INT8, PRUNE
from imdenoise.errors import ImDenoiseError


def export(
    model: str = typer.Argument(..., help="Weights file (.safetensors), shipped model name, or architecture name."),
    output: Path = typer.Option(..., "-o", "--output", help="ONNX file to write."),
    quantize: str = typer.Option("none", "--quantize", help="'none' or 'int8' (also writes the int8 model)."),
    method: str = typer.Option(INT8.method, "--method", help="int8 method: 'static' (calibrated) or 'dynamic'."),
    calib_dir: Optional[Path] = typer.Option(None, "--calib-dir", help="Training images for int8 calibration [default: the bundled sample photos]."),
    calib_images: int = typer.Option(INT8.images, "--calib-images", help="Number of calibration images."),
    calibration: str = typer.Option(INT8.calibration, "--calibration", help="minmax, percentile or entropy."),
    channels: int = typer.Option(1, "--channels", help="Input channels when MODEL is an architecture name."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Architecture of a plain .pt state dict."),
    opset: int = typer.Option(OPSET, "--opset", help="ONNX opset (17 or newer)."),
    atol: float = typer.Option(ATOL, "--atol", help="Max allowed |onnxruntime - torch| in the check."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Export a model to ONNX (dynamic batch/height/width), checked against PyTorch before writing."""
    from imdenoise.denoisers.onnx import export_onnx
    from imdenoise.models.weights import load_network

    if quantize not in ("none", "int8"):
        raise ImDenoiseError(f"--quantize must be 'none' or 'int8', got {quantize!r}")
    if output.suffix != ".onnx":
        raise ImDenoiseError(f"{output}: output must end in .onnx")
    net, card = load_network(model, channels, arch)
    q_out = output.with_name(output.stem + "-int8.onnx")
    if quantize == "int8":  # everything int8 needs is checked before the fp32 file is written
        from imdenoise.deploy.quantize import calibration_source

        if q_out.exists() and not overwrite:
            raise ImDenoiseError(f"{q_out}: file exists (pass --overwrite to replace it)")
        calibration_source(calib_dir, net.in_channels, calib_images)
    existed = output.exists()
    rep = export_onnx(net, card, output, opset=opset, atol=atol, overwrite=overwrite)
    typer.echo(f"{rep.path}: {rep.bytes / 1e6:.1f} MB, opset {rep.opset}, "
               f"max |onnxruntime - torch| = {rep.max_abs_diff:.2g} on sizes {list(rep.sizes)}")
    if quantize == "int8":
        from imdenoise.deploy.quantize import quantize_int8

        try:
            q = quantize_int8(output, q_out, method=method,  # type: ignore[arg-type]
                              calib_dir=calib_dir, n_images=calib_images, calibration=calibration)
        except BaseException:
            if not existed:  # a failed export leaves nothing behind
                output.unlink(missing_ok=True)
            raise
        typer.echo(f"{q.path}: {q.bytes / 1e6:.1f} MB, {q.method} int8, PSNR of int8 vs fp32 output on "
                   f"calibration patches {q.psnr_vs_fp32:.1f} dB (max abs diff {q.max_abs_diff:.3g})")


def prune(
    model: str = typer.Argument(..., help="Weights file (.safetensors), shipped model name, or architecture name."),
    output: Path = typer.Option(..., "-o", "--output", help="Pruned weights file (.safetensors) to write."),
    keep: float = typer.Option(PRUNE.keep, "--keep", help="Fraction of inner channels kept in each block (0-1]."),
    steps: int = typer.Option(PRUNE.steps, "--steps", help="Fine-tuning steps after pruning (0: none)."),
    lr: float = typer.Option(PRUNE.lr, "--lr", help="Fine-tuning learning rate."),
    batch: int = typer.Option(PRUNE.batch, "--batch", help="Fine-tuning batch size."),
    patch: int = typer.Option(PRUNE.patch, "--patch", help="Fine-tuning patch size."),
    noise: str = typer.Option(PRUNE.noise, "--noise", help="Fine-tuning noise model."),
    train_dir: Optional[Path] = typer.Option(None, "--train-dir", help="Training images [default: $IMDENOISE_DATASETS's training set for the channels]."),
    eval_dir: Optional[Path] = typer.Option(None, "--eval-dir", help="Images for PSNR before/after (e.g. BSD68)."),
    eval_limit: int = typer.Option(PRUNE.eval_limit, "--eval-limit", help="Number of evaluation images."),
    sigma: float = typer.Option(PRUNE.sigma, "--sigma", help="Noise level of the PSNR evaluation (0-255)."),
    channels: int = typer.Option(1, "--channels", help="Input channels when MODEL is an architecture name."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT if it exists."),
) -> None:
    """Remove the weakest channels (L1 norm) of each block's inner conv, fine-tune briefly, report."""
    from imdenoise.deploy.prune import prune_model

    if output.suffix != ".safetensors":
        raise ImDenoiseError(f"{output}: output must end in .safetensors")
    if output.exists() and not overwrite:
        raise ImDenoiseError(f"{output}: file exists (pass --overwrite to replace it)")
    rep = prune_model(model, output, keep, steps=steps, train_dir=train_dir, eval_dir=eval_dir,
                      eval_limit=eval_limit, sigma=sigma, channels=channels, lr=lr, batch=batch, patch=patch,
                      noise=noise)
    typer.echo(rep.markdown())
    typer.echo(f"wrote {rep.path}")
