"""Defaults of ONNX export checks, int8 quantization and pruning, torch-free: the library's functions
and the CLI's `--help` both read them here, so no default is written twice."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Int8Defaults:
    """`export --quantize int8`: how the int8 model is calibrated."""

    method: str = "static"  # static (calibrated) or dynamic
    images: int = 16  # calibration images
    calibration: str = "percentile"  # minmax, percentile or entropy


@dataclass(frozen=True)
class PruneDefaults:
    """`prune`: how much is kept, the short fine-tune after, and the PSNR check."""

    keep: float = 0.7  # share of each block's inner channels kept
    steps: int = 300
    lr: float = 1e-4
    batch: int = 8
    patch: int = 64
    noise: str = "gaussian:0-55"
    eval_limit: int = 8
    sigma: float = 25.0


INT8 = Int8Defaults()
PRUNE = PruneDefaults()
