"""Zero-shot Noise2Noise (Mansour and Heckel, CVPR 2023): denoise one image with no training data.

A tiny noise predictor is fitted to the noisy image itself. The pair downsampler splits the image
into two half-size images (diagonal and anti-diagonal means of each 2x2 block) whose noise is
independent; the net learns to map one to the other (residual loss) and to commute with the
downsampler (consistency loss). The fitted net then denoises the full-size image.

Two schedules: ``paper`` (Adam 1e-3, 2000 full-image iterations, StepLR 1500 / 0.5, fp32) and
``fast`` (the default: random crops, bf16, fewer and larger steps, early stopping; see
docs/zeroshot.md for the measurements behind it). Explicit options override either schedule.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from imdenoise.denoisers.base import prepare
from imdenoise.errors import ConfigError, ImDenoiseError
from imdenoise.models.zeroshot_net import ZeroShotNet
from imdenoise.optim import optimizer_step, run_steps
from imdenoise.precision import autocast

log = logging.getLogger(__name__)

Schedule = Literal["paper", "fast"]
MIN_SIZE = 4  # the downsampled pair must be at least 2x2

# The two schedules; `None` in the user's options means "take the schedule's value".
SCHEDULES: dict[str, dict[str, Any]] = {
    "paper": dict(learning_rate=1e-3, epoch_count=2000, step_size=1500, gamma=0.5,
                  precision="fp32", patch=None, patience=None),
    "fast": dict(learning_rate=2e-3, epoch_count=800, step_size=600, gamma=0.5,
                 precision="auto", patch=128, patience=None),
}


class ZeroShotConfig(BaseModel):
    """Options of the fit; `image` to `max_bytes` are the source article's config.json keys, with its meaning."""

    model_config = ConfigDict(extra="forbid")
    image: Path | None = Field(None, description="input image (config-file runs)")
    learning_rate: float | None = Field(None, gt=0, le=1, description="Adam learning rate")
    epoch_count: int | None = Field(None, ge=1, le=1_000_000, description="fitting iterations")
    step_size: int | None = Field(None, ge=1, description="StepLR: iterations between decays")
    gamma: float | None = Field(None, gt=0, le=1, description="StepLR decay factor")
    degree: float | None = Field(None, ge=0, description=(
        "demo mode: add Gaussian noise of this standard deviation on the [0, 1] scale (0.2 is strong noise), "
        "then clip the noisy image to [0, 1], as the original"))
    max_bytes: int | None = Field(None, ge=1, description="refuse an input image file larger than this")
    schedule: Schedule = "fast"
    precision: Literal["auto", "fp32", "bf16"] | None = Field(None, description="auto: bf16 where the CPU has it")
    patch: int | None = Field(None, ge=0, description="random-crop size per iteration (0: whole image)")
    patience: int | None = Field(None, ge=0, description="early-stopping window in iterations (0: off)")
    features: int = Field(48, ge=1, le=1024)
    seed: int = 0
    threads: int | None = Field(None, ge=1, le=1024)

    def resolved(self) -> dict[str, Any]:
        """The fit's settings: the schedule's values where this config leaves None."""
        base = dict(SCHEDULES[self.schedule])
        for key in base:
            value = getattr(self, key)
            if value is not None:
                base[key] = value
        base["patch"] = base["patch"] or None  # 0 means the whole image
        base["patience"] = base["patience"] or None  # 0 means no early stopping
        from imdenoise.precision import resolve_precision

        base["precision"] = resolve_precision(base["precision"])  # the fit runs on the CPU
        return base

    @model_validator(mode="after")
    def _check(self) -> "ZeroShotConfig":
        if self.degree is not None and self.degree > 1:
            raise ValueError(f"degree is the noise level on the [0, 1] scale, as in the original config.json "
                             f"(0.2 is strong noise), got {self.degree:g}; sigma {self.degree:g} on the 0-255 "
                             f"scale is degree {self.degree / 255:.3g}")
        if self.patch and self.patch < MIN_SIZE:
            raise ValueError(f"patch must be 0 (whole image) or at least {MIN_SIZE}, got {self.patch}")
        if self.patience and self.patience < 10:
            raise ValueError(f"patience must be 0 (off) or at least 10 iterations, got {self.patience}")
        return self


def _format_error(source: str, exc: ValidationError) -> str:
    known = ", ".join(ZeroShotConfig.model_fields)
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {where!r} (known keys: {known})")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if where == "(top level)" else f"{where}: {msg} (got {err.get('input')!r})")
    return f"{source}: invalid zero-shot config: " + "; ".join(parts)


def make_config(source: str = "options", **values: Any) -> ZeroShotConfig:
    """Validate options into a ZeroShotConfig; ConfigError names each bad or unknown key."""
    try:
        return ZeroShotConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc)) from None


def load_config(path: str | Path, **overrides: Any) -> ZeroShotConfig:
    """Read a JSON or YAML config file (safe loaders), apply non-None overrides, validate."""
    from imdenoise.config_files import parse_config_file

    p = Path(path)
    raw = parse_config_file(p)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a config must be a mapping of keys to values, got {type(raw).__name__}")
    if raw.get("image") is not None and not Path(str(raw["image"])).is_absolute():
        raw["image"] = str(p.parent / str(raw["image"]))  # relative to the config file
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return make_config(str(p), **raw)


def pair_downsampler(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,C,H,W) -> two (N,C,H//2,W//2) images: anti-diagonal and diagonal means of each 2x2 block."""
    c = x.shape[1]
    f1 = torch.tensor([[[[0.0, 0.5], [0.5, 0.0]]]], dtype=x.dtype, device=x.device).repeat(c, 1, 1, 1)
    f2 = torch.tensor([[[[0.5, 0.0], [0.0, 0.5]]]], dtype=x.dtype, device=x.device).repeat(c, 1, 1, 1)
    return F.conv2d(x, f1, stride=2, groups=c), F.conv2d(x, f2, stride=2, groups=c)


def zeroshot_loss(model: torch.nn.Module, noisy: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
    """Residual + consistency loss of the paper's code (`loss_func`), on an even-sized batch."""
    bf16 = autocast("bf16" if precision == "bf16" else "fp32", noisy.device)

    def denoise(t: torch.Tensor) -> torch.Tensor:
        with bf16:
            noise = model(t)
        return t - noise.float()

    noisy1, noisy2 = pair_downsampler(noisy)
    pred1, pred2 = denoise(noisy1), denoise(noisy2)
    loss_res = 0.5 * (F.mse_loss(noisy1, pred2) + F.mse_loss(noisy2, pred1))
    denoised1, denoised2 = pair_downsampler(denoise(noisy))
    loss_cons = 0.5 * (F.mse_loss(pred1, denoised1) + F.mse_loss(pred2, denoised2))
    return loss_res + loss_cons


@dataclass
class FitResult:
    """The fitted net and how the fit went."""

    model: ZeroShotNet
    iterations: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    stopped_early: bool = False


def _random_crops(x: torch.Tensor, patch: int, gen: torch.Generator) -> torch.Tensor:
    """One random crop of patch x patch (even offsets, so 2x2 blocks keep their phase)."""
    _, _, h, w = x.shape
    ph, pw = min(patch, h) // 2 * 2, min(patch, w) // 2 * 2
    top = int(torch.randint(0, (h - ph) // 2 + 1, (1,), generator=gen)) * 2
    left = int(torch.randint(0, (w - pw) // 2 + 1, (1,), generator=gen)) * 2
    return x[:, :, top:top + ph, left:left + pw]


def _plateaued(losses: list[float], patience: int, tol: float = 2e-3) -> bool:
    """True when the mean loss of the last `patience` steps fell by less than tol (relative)."""
    if len(losses) < 2 * patience:
        return False
    prev = float(np.mean(losses[-2 * patience:-patience]))
    last = float(np.mean(losses[-patience:]))
    return prev - last < tol * abs(prev)


def fit(noisy: torch.Tensor, settings: dict[str, Any], *, features: int = 48, seed: int = 0,
        progress: bool = True) -> FitResult:
    """Fit the zero-shot net to one noisy (1,C,H,W) image with the resolved settings."""
    _, c, h, w = noisy.shape
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ImDenoiseError(f"image of {w}x{h} pixels is too small for zero-shot; need at least {MIN_SIZE}x{MIN_SIZE}")
    even = noisy[:, :, : h // 2 * 2, : w // 2 * 2].contiguous(memory_format=torch.channels_last)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ZeroShotNet(in_channels=c, features=features).to(noisy.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack Module.to(memory_format=)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"])
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=settings["step_size"], gamma=settings["gamma"])
    patch, patience = settings["patch"], settings["patience"]
    if not patch and h * w > 4_000_000:
        log.warning("fitting on the whole %dx%d image at every step is slow and memory-hungry; "
                    "the fast schedule (random crops) suits large images", w, h)
    total = int(settings["epoch_count"])
    from tqdm import tqdm

    bar = tqdm(total=total, desc="zero-shot fit", unit="it", leave=False,
               disable=not (progress and sys.stderr.isatty()))
    losses: list[float] = []
    start = time.perf_counter()
    model.train()

    def step(_: int) -> float:
        batch = _random_crops(even, patch, gen) if patch else even
        loss = zeroshot_loss(model, batch, settings["precision"])
        optimizer_step(loss, opt, model.parameters())
        sched.step()
        return float(loss.detach())

    stopped = False

    def after(done: int, loss: float) -> bool:
        nonlocal stopped
        losses.append(loss)
        bar.update(1)
        if done % 25 == 1:
            bar.set_postfix(loss=f"{loss:.3e}")
        stopped = bool(patience) and _plateaued(losses, patience)
        return stopped

    done = run_steps(step, 0, total, after)
    bar.close()
    return FitResult(model.eval(), done, time.perf_counter() - start, losses, stopped)


@torch.no_grad()
def apply_net(model: ZeroShotNet, noisy: torch.Tensor, precision: str = "fp32", tile: int = 1024) -> torch.Tensor:
    """noisy - model(noisy) on the full (1,C,H,W) image, in exact tiles for large images."""
    from imdenoise.denoisers.tiling import run_tiled

    bf16 = autocast("bf16" if precision == "bf16" and noisy.device.type == "cpu" else "fp32", noisy.device)

    def fn(t: torch.Tensor) -> torch.Tensor:
        with bf16:
            return t - model(t.contiguous(memory_format=torch.channels_last)).float()

    return run_tiled(fn, noisy, 1, tile, overlap=16)


class ZeroShotDenoiser:
    """Denoiser protocol over zero-shot Noise2Noise: each `denoise` call fits a fresh net to its image."""

    name = "zeroshot"

    def __init__(self, config: ZeroShotConfig | None = None, progress: bool = True, **options: Any) -> None:
        if config is not None and options:
            config = make_config(**{**config.model_dump(exclude_none=True), **options})
        self.config = config or make_config(**options)
        self.settings = self.config.resolved()
        self.progress = progress
        self.last_fit: FitResult | None = None

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Fit to this image and return it denoised (float32, same shape); sigma is not needed (blind)."""
        p = prepare(image)
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        x = torch.from_numpy(np.ascontiguousarray(p.color.transpose(2, 0, 1)))[None]
        self.last_fit = fit(x, self.settings, features=self.config.features, seed=self.config.seed,
                            progress=self.progress)
        out = apply_net(self.last_fit.model, x, self.settings["precision"])[0].permute(1, 2, 0).numpy()
        return np.ascontiguousarray(p.finish(out), dtype=np.float32)
