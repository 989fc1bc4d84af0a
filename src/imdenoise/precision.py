"""Which float precision to compute in: bf16 autocast pays only where the hardware computes in bf16.

On a CPU with AVX-512 (BF16, AMX) oneDNN runs bf16 convolutions about twice as fast as fp32; on an
AVX2-only CPU they are emulated and run about ten times slower (measured on a 2-core AMD EPYC:
3.1 s against 36 s per training step of the shipped U-Net). "auto" picks for the machine at hand.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext

import torch

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 autocast on `device` runs on bf16-capable units rather than being emulated."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 path
            return False
    return False


def resolve_precision(requested: str, device: torch.device | str = "cpu") -> str:
    """'auto' -> 'bf16' where it is native, else 'fp32'; an explicit choice is kept, with a warning
    when bf16 would be emulated (slow) on this device."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if requested == "bf16" and not native_bf16(device):
        log.warning("bf16 was asked for, but this %s has no native bf16 support: autocast will be emulated "
                    "and much slower than fp32 (use precision auto or fp32)", torch.device(device).type)
    return requested


def autocast(precision: str, device: torch.device | str = "cpu") -> AbstractContextManager[object]:
    """The one autocast builder: bf16 or fp16 autocast on `device` as `precision` says; else no autocast."""
    if precision not in ("bf16", "fp16"):
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
