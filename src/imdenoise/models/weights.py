"""Weights files: safetensors with a JSON model card in the header; never unpickle user files."""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from imdenoise.atomic import atomic_path
from imdenoise.errors import ImDenoiseError, UnknownMethodError, WeightsError
from imdenoise.models.base import DenoisingNet
from imdenoise.noise.estimation import BlindLevel

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
CARD_KEY = "imdenoise.card"
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "weights"
SHIPPED_ALIASES = {"default": ("gray", "color"), "fast": ("gray-fast", "color-fast")}  # alias -> (gray, color)


class ModelCard(BaseModel):
    """What a weights file is: architecture and config, channels, noise range, data, measured quality."""

    model_config = ConfigDict(extra="allow")

    format_version: int = FORMAT_VERSION
    name: str
    architecture: str
    config: dict[str, Any] = Field(default_factory=dict)
    in_channels: int
    parameters: int = 0
    description: str = ""
    noise_range: tuple[float, float] = (0.0, 55.0)
    training_data: str = ""
    training_steps: int = 0
    cpu_hours: float = 0.0
    psnr: dict[str, float] = Field(default_factory=dict, description="'set/sigma' -> PSNR dB")
    version: str = "0"
    blind_level: BlindLevel | None = Field(None, description=(
        "a noise-conditioned model's level when none is given: this rule, as in its training"))
    shuffle: int = Field(1, ge=1, le=4, description=(
        "> 1: the model runs on the shuffle x shuffle pixel-shuffled sub-images, as in its training"))


def save_weights(path: str | Path, model: DenoisingNet, card: ModelCard, dtype: torch.dtype = torch.float32) -> Path:
    """Write model weights (cast to `dtype`) and the card atomically as one safetensors file."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={CARD_KEY: card.model_dump_json()})
    return path


def read_card(path: str | Path) -> ModelCard:
    """Read only the model card of a safetensors weights file (no tensors loaded)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise WeightsError(f"{path}: weights file not found") from None
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from None
    if CARD_KEY not in meta:
        raise WeightsError(f"{path}: safetensors file has no imdenoise model card; "
                           "import a plain state dict with --arch NAME instead")
    try:
        card = ModelCard.model_validate(json.loads(meta[CARD_KEY]))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: invalid model card: not JSON ({exc})") from None
    except ValidationError as exc:
        raise WeightsError(f"{path}: invalid model card: {_field_errors(exc)}") from None
    if card.format_version > FORMAT_VERSION:
        raise WeightsError(f"{path}: weights format {card.format_version} is newer than this imdenoise "
                           f"supports ({FORMAT_VERSION}); upgrade imdenoise")
    return card


def _field_errors(exc: ValidationError, prefix: str = "") -> str:
    """Pydantic errors as one line naming each field: `field config.widths.0: Input should be ...`."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in (prefix, *err.get("loc", ())) if x != "")
        parts.append(f"field {loc or '(card)'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _build(path: Path, card: ModelCard, meta: bool) -> DenoisingNet:
    """The network a card describes, on the meta device (no memory) or for real; a card whose config
    the architecture refuses is a WeightsError naming the field."""
    from imdenoise.models.registry import get_architecture

    try:
        arch = get_architecture(card.architecture)
    except ImDenoiseError as exc:  # a card naming an unknown architecture: name the file
        raise WeightsError(f"{path}: field architecture: {exc}") from None
    try:
        with torch.device("meta") if meta else nullcontext():
            model = arch.build(**card.config)
            pruned = getattr(card, "pruned", None) or (card.model_extra or {}).get("pruned")
            if pruned:  # a file written by `imdenoise prune`: shrink the recorded convolutions first
                from imdenoise.models.pruning import apply_pruned_shapes

                apply_pruned_shapes(model, pruned)
    except ValidationError as exc:
        raise WeightsError(f"{path}: invalid model card: {_field_errors(exc, 'config')}") from None
    except ImDenoiseError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise WeightsError(f"{path}: invalid model card: field config: {type(exc).__name__}: {exc}") from None
    return model


def _file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading any tensor data."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from None


def _check_shapes(path: Path, card: ModelCard, expected: dict[str, tuple[int, ...]],
                  found: dict[str, tuple[int, ...]]) -> None:
    """Refuse weights whose tensors (names, shapes) differ from what the architecture expects."""
    found = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in found.items()}
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {found[k]} != {v}" for k, v in expected.items() if k in found and found[k] != v]
    if missing or unexpected or wrong:
        raise WeightsError(f"{path}: weights do not match architecture {card.architecture!r}: "
                           f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shapes {wrong[:3]}")


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from safetensors, or a plain state dict via torch.load(weights_only=True); else refuse."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise WeightsError(f"{path}: cannot read safetensors weights ({exc})") from None
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refuses any pickle that is not plain tensors/containers
            raise WeightsError(f"{path}: refused: not a plain PyTorch state dict "
                               f"(only weights_only loading is allowed): {str(exc).splitlines()[0]}") from None
        if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
            obj = obj["model"]  # an imdenoise training checkpoint
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise WeightsError(f"{path}: refused: expected a dict of tensors (a state dict)")
        return obj
    raise WeightsError(f"{path}: unsupported weights file type {path.suffix!r}; use .safetensors or a .pt/.pth state dict")


def _clean_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without DDP's `module.` and torch.compile's `_orig_mod.` prefixes; floating tensors as float32."""
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v.float() if v.is_floating_point() else v
            for k, v in state.items()}


def infer_channels(architecture: str, state: dict[str, torch.Tensor], config: dict[str, Any]) -> int:
    """The image channels (1, 3, 4 or 2) for which `architecture` has exactly the state dict's tensor
    shapes; 1 when none fits (the load then reports the mismatch in full)."""
    from imdenoise.models.registry import get_architecture

    arch = get_architecture(architecture)
    for channels in (1, 3, 4, 2):
        try:
            expected = arch.build(**{**config, "in_channels": channels}).state_dict()
        except (ImDenoiseError, ValueError):
            continue
        if expected.keys() == state.keys() and all(state[k].shape == v.shape for k, v in expected.items()):
            return channels
    return 1


def load_model(path: str | Path, architecture: str | None = None, **config: Any) -> tuple[DenoisingNet, ModelCard]:
    """Build the network a weights file describes and load its weights (float32, eval mode)."""
    from imdenoise.models.registry import get_architecture

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if path.suffix == ".safetensors" and architecture is None:
        card = read_card(path)
    else:
        if architecture is None:
            raise WeightsError(f"{path}: a plain state dict does not say its architecture; pass --arch NAME")
        arch = get_architecture(architecture)
        if "in_channels" not in config:  # a plain state dict does not record them: read them off the shapes
            config = {**config, "in_channels": infer_channels(architecture, _clean_keys(_load_state(path)), config)}
        card = ModelCard(name=path.stem, architecture=architecture, config={**arch.defaults, **config},
                         in_channels=int(config.get("in_channels", 1)))
    if path.suffix == ".safetensors":  # check the card against the file's tensors before building for real
        skeleton = _build(path, card, meta=True)
        _check_shapes(path, card, {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}, _file_shapes(path))
        del skeleton
    model = _build(path, card, meta=False)
    state = _clean_keys(_load_state(path))
    _check_shapes(path, card, {k: tuple(v.shape) for k, v in model.state_dict().items()},
                  {k: tuple(v.shape) for k, v in state.items()})
    model.load_state_dict(state)
    card.parameters = sum(p.numel() for p in model.parameters())
    return model.eval(), card


def shipped_models() -> list[tuple[ModelCard, Path]]:
    """The pretrained models shipped inside the package, with their cards."""
    return [(read_card(p), p) for p in sorted(SHIPPED_DIR.glob("*.safetensors"))]


def shipped_path(name: str) -> Path | None:
    """The weights file of a shipped model name, or None."""
    p = SHIPPED_DIR / f"{name}.safetensors"
    return p if p.is_file() else None


def load_network(name_or_path: str | Path, channels: int = 1,
                 arch: str | None = None) -> tuple[DenoisingNet, ModelCard]:
    """Network + card from a weights file (pruned too; arch for plain .pt), shipped name, or registry name
    (random weights): the one loader of networks, under `denoisers.catalog.load`, export, prune and benchmarks."""
    from imdenoise.models.registry import ARCHITECTURES

    name = str(name_or_path)
    shipped = shipped_path(name)
    if shipped:
        return load_model(shipped)
    p = Path(name)
    if p.suffix in (".safetensors", ".pt", ".pth", ".ckpt"):
        return load_model(p, arch)  # a plain state dict's channels come from its weights
    if name in ARCHITECTURES:
        log.warning("%s: registry architecture with random weights (for testing and speed only)", name)
        model = ARCHITECTURES[name].build(in_channels=channels)
        card = ModelCard(name=name, architecture=name, config=model.config.model_dump(mode="json"),
                         in_channels=channels, parameters=sum(q.numel() for q in model.parameters()),
                         description=f"untrained {name} (random weights)")
        return model.eval(), card
    raise UnknownMethodError(f"unknown model {name!r}: give a .safetensors weights file, a shipped model name "
                             f"or an architecture ({', '.join(ARCHITECTURES)})")
