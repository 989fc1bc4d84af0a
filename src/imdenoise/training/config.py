"""Training recipes: YAML files validated by pydantic; unknown keys and bad values are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imdenoise.config_files import parse_config_file
from imdenoise.errors import ConfigError
from imdenoise.noise.estimation import BlindLevel


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    """Which registry architecture to train, with config overrides (in_channels, widths, ...)."""

    architecture: str = "unet"
    config: dict[str, Any] = Field(default_factory=dict)
    init_weights: str | None = Field(None, description=(
        "start from these weights (fine-tuning): a shipped model's name or a weights file"))


class DataSection(_Strict):
    """Where the images come from and how patches are made."""

    train: list[str] = Field(default_factory=list, description=(
        "clean image folders, IDX files or N x H x W(x C) .npy stacks (synthetic noise)"))
    paired: tuple[str, str] | None = Field(None, description="(noisy folder, clean folder) matched by name")
    noisy: list[str] = Field(default_factory=list, description="noisy-only folders (self-supervised)")
    channels: Literal[1, 3] = 1
    noise: list[str] = Field(default_factory=lambda: ["gaussian:0-55"], description="noise specs, one drawn per patch")
    patch_size: int = Field(128, ge=8, le=1024)
    augment: bool = Field(True, description="random flips and 90-degree rotations")
    batch_size: int = Field(16, ge=1)
    workers: int = Field(2, ge=0)
    holdout: int = Field(8, ge=0, description="last N training images kept out for validation")
    val: list[str] = Field(default_factory=list, description="extra validation folders (evaluated as held out)")
    val_pairs: str | None = Field(None, description=(
        "validate on this folder of real noisy/reference pairs instead (never trained on)"))
    val_noise: str = "gaussian:25"
    val_limit: int = Field(8, ge=1)
    limit: int | None = Field(None, ge=1, description="use only the first N training images")
    scales: list[float] = Field(default_factory=lambda: [1.0], min_length=1,
                                description="clean images: also train on copies downscaled by these factors")
    blind_level: BlindLevel | None = Field(None, description=(
        "noise-conditioned nets: feed this rule's estimate from the noisy input, not the true level, so "
        "the model is blind to the user (it is written into the weights' card)"))
    clean_sources: float | None = Field(None, gt=0, le=55, description=(
        "clean images: denoise them first with `default`, its level capped at this (0-255), and train on "
        "the result: scanned film (BSD) holds more grain than a camera JPEG's noise; cached in $IMDENOISE_CACHE"))
    shuffle: int = Field(1, ge=1, le=4, description=(
        "train on each patch's shuffle x shuffle pixel-shuffled sub-images (patch_size a multiple of it), "
        "where a photo's correlated noise is close to white; the model runs on them at inference too (its card)"))
    color_jitter: float = Field(0.0, ge=0, lt=1, description=(
        "clean images: brightness, contrast and saturation scaled by a factor drawn in [1-j, 1+j] (0: off)"))

    @field_validator("noise", "val_noise")
    @classmethod
    def _noise_specs(cls, value: "list[str] | str") -> "list[str] | str":
        """Noise specs parse at load time, so a typo fails before any data is read."""
        from imdenoise.errors import NoiseSpecError
        from imdenoise.noise.models import parse_noise

        for spec in [value] if isinstance(value, str) else value:
            try:
                parse_noise(spec)
            except NoiseSpecError as e:
                raise ValueError(str(e)) from None  # pydantic names the field
        return value

    @model_validator(mode="after")
    def _sources(self) -> "DataSection":
        if sum(bool(x) for x in (self.train, self.paired, self.noisy)) != 1:
            raise ValueError("give exactly one of data.train (clean folders), data.paired or data.noisy")
        if self.patch_size % self.shuffle:
            raise ValueError(f"data.patch_size={self.patch_size} is not a multiple of data.shuffle={self.shuffle}")
        bad = [s for s in self.scales if not 0 < s <= 1]
        if bad:
            raise ValueError(f"data.scales must lie in (0, 1] (downscaling only), got {bad}")
        if self.scales != [1.0] and not self.train:
            raise ValueError("data.scales applies to clean images (data.train) only: resizing noisy images "
                             "would change their noise")
        if self.color_jitter and not self.train:
            raise ValueError("data.color_jitter applies to clean images (data.train) only: it would change "
                             "the noise of noisy images")
        return self


class CurriculumSection(_Strict):
    """A difficulty that grows with the step: the noise ranges and/or the masked mode's mask ratio."""

    apply_to: list[Literal["noise", "mask_ratio"]] = Field(
        default_factory=lambda: ["noise"], min_length=1,  # type: ignore[arg-type]
        description="noise: range parameters ('a-b') span the weakest share f of their range; "
                    "mask_ratio: the masked mode's ratio range scaled by f")
    start: float = Field(0.2, ge=0, le=1, description="f at step 0")
    steps: int | None = Field(None, ge=1, description="step at which f reaches 1 (default: half of optim.steps)")
    shape: Literal["linear", "cosine"] = "linear"

    def factor(self, step: int, total_steps: int) -> float:
        """f at `step`: from `start` to 1 over `steps` steps (linearly or along a half cosine), then 1."""
        import math

        span = self.steps or max(1, total_steps // 2)
        t = min(1.0, max(0, step) / span)
        if self.shape == "cosine":
            t = 0.5 * (1 - math.cos(math.pi * t))
        return self.start + (1.0 - self.start) * t


class OptimSection(_Strict):
    """Optimizer, schedule and the numerics of the run."""

    steps: int = Field(10000, ge=1)
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = Field(2e-4, gt=0, le=1)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    step_size: int = Field(1000, ge=1, description="step schedule: decay every step_size steps")
    gamma: float = Field(0.5, gt=0, le=1)
    min_lr_ratio: float = Field(0.01, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)
    ema: float | None = Field(0.999, gt=0, lt=1)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast where the device computes bf16 natively, else fp32")
    compile: bool = False
    loss: str = "l1"
    vgg_weights: str | None = None
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    curriculum: CurriculumSection | None = Field(None, description="noise level / mask ratio growing with the step")


class SelfSupSection(_Strict):
    """Options of the masked and self-supervised modes."""

    mask_ratio: float = Field(0.8, gt=0, lt=1, description="masked mode: largest fraction of input pixels masked")
    mask_ratio_min: float = Field(0.0, ge=0, lt=1, description=(
        "masked mode: each image's ratio is drawn uniformly in [mask_ratio_min, mask_ratio]"))
    unmasked_weight: float = Field(0.7, ge=0, description="masked mode: loss weight of the unmasked pixels")
    masked_weight: float = Field(0.3, ge=0, description="masked mode: loss weight of the masked pixels")
    blind_spot_ratio: float = Field(0.02, gt=0, lt=0.5, description="selfsupervised: fraction of blind spots")

    @model_validator(mode="after")
    def _ratios(self) -> "SelfSupSection":
        if self.mask_ratio_min > self.mask_ratio:
            raise ValueError(f"mask_ratio_min ({self.mask_ratio_min}) must not exceed mask_ratio ({self.mask_ratio})")
        if self.unmasked_weight + self.masked_weight <= 0:
            raise ValueError("unmasked_weight + masked_weight must be positive")
        return self


class LogSection(_Strict):
    """How often to log, validate and checkpoint."""

    every: int = Field(50, ge=1)
    val_every: int = Field(1000, ge=1)
    ckpt_every: int = Field(500, ge=1)
    ckpt_minutes: float = Field(10.0, gt=0)
    keep_last: int = Field(2, ge=1)
    tensorboard: bool = True
    images_every: int = Field(2000, ge=1)
    progress: bool = True


class TrainConfig(_Strict):
    """A whole training recipe."""

    name: str = "model"
    mode: Literal["supervised", "masked", "selfsupervised"] = "supervised"
    output_dir: str = "runs/model"
    description: str = ""
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection
    optim: OptimSection = Field(default_factory=OptimSection)
    selfsup: SelfSupSection = Field(default_factory=SelfSupSection)
    log: LogSection = Field(default_factory=LogSection)

    @model_validator(mode="after")
    def _curriculum(self) -> "TrainConfig":
        cur = self.optim.curriculum
        if cur and "mask_ratio" in cur.apply_to and self.mode != "masked":
            raise ValueError("optim.curriculum.apply_to: mask_ratio needs mode: masked")
        if cur and "noise" in cur.apply_to and not self.data.train:
            raise ValueError("optim.curriculum.apply_to: noise needs synthetic noise (data.train)")
        return self


def _format_error(source: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return f"{source}: invalid config: " + "; ".join(parts)


def _coerce(text: str) -> Any:
    """A --set value parsed as YAML (numbers, booleans, lists), never executed."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides to a nested dict (values parsed with yaml.safe_load)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override {item!r}: write key=value, e.g. optim.lr=1e-4")
        key, value = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"bad override {item!r}: {p!r} is not a section")
        node[parts[-1]] = _coerce(value)
    return raw


DATA_PATH_KEYS = (("data", "train"), ("data", "paired"), ("data", "noisy"), ("data", "val"), ("data", "val_pairs"),
                  ("model", "init_weights"))


def resolve_paths(raw: dict[str, Any], base: Path | None) -> dict[str, Any]:
    """The recipe's data and weights paths made absolute (paths.resolve_data_path); shipped model names kept."""
    from imdenoise.paths import resolve_data_path

    for section, key in DATA_PATH_KEYS:
        node = raw.get(section)
        if not isinstance(node, dict) or not node.get(key):
            continue
        value = node[key]
        if key == "init_weights" and isinstance(value, str) and "/" not in value and not value.endswith(
                (".safetensors", ".pt", ".pth")):
            continue  # a shipped model's name
        if isinstance(value, str):
            node[key] = resolve_data_path(value, base)
        elif isinstance(value, (list, tuple)):
            node[key] = [resolve_data_path(v, base) if isinstance(v, str) else v for v in value]
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                raw: dict[str, Any] | None = None, *, paths_from_file: bool = True) -> TrainConfig:
    """Read a YAML recipe (safe loader), apply overrides, validate; ConfigError names every bad field.

    A recipe's relative data paths are read from the recipe's folder (`paths_from_file`; a run folder's
    saved config holds absolute ones), overrides' from the current folder."""
    source = str(path) if path else "config"
    if raw is None:
        if path is None:
            raise ConfigError("no config given")
        p = Path(path)
        parsed = parse_config_file(p) or {}
        if not isinstance(parsed, dict):
            raise ConfigError(f"{p}: a config must be a mapping of sections")
        raw = parsed
        raw = resolve_paths(raw, p.resolve().parent if paths_from_file else Path.cwd())
    raw = resolve_paths(apply_overrides(raw, overrides or []), Path.cwd())
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(source, exc)) from None
