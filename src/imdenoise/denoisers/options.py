"""How a network is run (device, tiling, precision, ensemble): torch-free, so the CLI shows these defaults
in `--help` without importing torch, and restates none of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from imdenoise.errors import ImDenoiseError

ENSEMBLE_SIZES = (1, 2, 4, 8)  # flips/rotations averaged by the geometric self-ensemble
Device = Literal["auto", "cpu", "cuda", "mps"]
OPSET, ATOL = 17, 1e-4  # ONNX export: the opset, and the largest |onnxruntime - torch| its check allows
MIN_TILE = 64  # smaller tiles are all seam: the blending ramps would cover most of each tile


@dataclass
class InferenceOptions:
    """How a network is run: device, threads, tiling, precision, compilation, self-ensemble."""

    device: Device = "auto"
    threads: int | None = None
    tile: int | None = 1024
    overlap: int = 64
    precision: Literal["fp32", "bf16", "auto"] = "fp32"  # fp32 by default: bf16 costs some PSNR
    compile: bool = False
    ensemble: int = 1  # geometric self-ensemble: 1 (off), 2, 4 or 8 flipped/rotated passes averaged
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse values that would fail deep inside torch, or be silently ignored, naming the option."""
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ImDenoiseError(f"device must be auto, cpu, cuda or mps, got {self.device!r}")
        if self.precision not in ("fp32", "bf16", "auto"):
            raise ImDenoiseError(f"precision must be fp32, bf16 or auto, got {self.precision!r}")
        if self.threads is not None and self.threads < 1:
            raise ImDenoiseError(f"threads must be at least 1, got {self.threads}")
        if self.tile is not None and self.tile < MIN_TILE:
            raise ImDenoiseError(f"tile must be at least {MIN_TILE} pixels (or 0/None: never tile), got {self.tile}")
        if self.overlap < 0:
            raise ImDenoiseError(f"overlap must be 0 or more pixels, got {self.overlap}")
        if self.ensemble not in ENSEMBLE_SIZES:
            raise ImDenoiseError(f"ensemble must be one of {', '.join(map(str, ENSEMBLE_SIZES))} "
                                 f"(passes averaged over flips and rotations), got {self.ensemble}")
