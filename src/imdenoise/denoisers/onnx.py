"""ONNX export checked against PyTorch, int8 quantization, and the onnxruntime backend of the engine.

The exported graph takes `input` (N,C,H,W) float32 of any H, W >= the model's size multiple (it pads
by reflection to the multiple and crops back inside the graph) and, for noise-conditioned models,
`sigma` (N,) on the 0-1 scale; it returns `output` (N,C,H,W). The model card travels as JSON in the
ONNX metadata (key `imdenoise.card`), so C++ or TensorRT users know what the file is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from imdenoise.atomic import write_bytes_atomic
from imdenoise.denoisers.ensemble import self_ensemble
from imdenoise.denoisers.network import AutoDenoiser, InferenceOptions, NetworkDenoiser, photo_rule
from imdenoise.denoisers.options import ATOL, OPSET  # noqa: F401 (re-exported)
from imdenoise.denoisers.tiling import run_tiled
from imdenoise.errors import ImDenoiseError, WeightsError
from imdenoise.models.base import DenoisingNet
from imdenoise.models.weights import CARD_KEY, SHIPPED_ALIASES, ModelCard, load_network, shipped_path
from imdenoise.paths import cache_dir

log = logging.getLogger(__name__)

CHECK_SIZES: tuple[tuple[int, int, int], ...] = ((1, 37, 53), (2, 61, 29), (1, 83, 71))


class ExportError(ImDenoiseError):
    """Export failed, or the exported graph disagrees with PyTorch beyond the tolerance."""


class ExportWrapper(torch.nn.Module):
    """The network with reflect padding to its size multiple and the crop back, so any size runs."""

    def __init__(self, model: DenoisingNet) -> None:
        super().__init__()
        self.model = model
        self.k = int(model.size_multiple)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        ph, pw = (self.k - h % self.k) % self.k, (self.k - w % self.k) % self.k
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if self.k > 1 else x
        return self.model(xp, sigma)[..., :h, :w]


def _input_names(model: DenoisingNet) -> list[str]:
    return ["input", "sigma"] if model.noise_conditioned else ["input"]


def _torch_export(model: DenoisingNet, path: Path, opset: int) -> None:
    """torch.onnx.export with dynamic batch/height/width (TorchScript exporter, dynamo as fallback)."""
    wrapper = ExportWrapper(model).eval()
    k = max(1, model.size_multiple)
    x = torch.rand(1, model.in_channels, 4 * k + 3, 4 * k + 5)
    args: tuple = (x, torch.full((1,), 0.1)) if model.noise_conditioned else (x,)
    names = _input_names(model)
    axes = {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "height", 3: "width"}}
    if model.noise_conditioned:
        axes["sigma"] = {0: "batch"}
    import warnings

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["output"],
                              opset_version=opset, dynamic_axes=axes, dynamo=False)
    except Exception as exc:  # noqa: BLE001 - retry with the dynamo exporter before giving up
        log.info("TorchScript exporter failed (%s); trying the dynamo exporter", str(exc).splitlines()[0])
        dim = torch.export.Dim
        b, h, w = dim("batch"), dim("height", min=k), dim("width", min=k)
        shapes: tuple = ({0: b, 2: h, 3: w}, {0: b}) if model.noise_conditioned else ({0: b, 2: h, 3: w},)
        try:
            torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["output"],
                              opset_version=max(opset, 18), dynamic_shapes=shapes, dynamo=True)
        except Exception as exc2:  # noqa: BLE001
            raise ExportError(f"ONNX export of {type(model).__name__} failed: {str(exc2).splitlines()[0]}") from None


def _set_metadata(proto: Any, card: ModelCard, model_info: dict[str, Any]) -> None:
    """Embed the card and the engine's constraints as metadata_props; fix the output's channel dim."""
    props = {CARD_KEY: card.model_dump_json(), **{f"imdenoise.{k}": str(v) for k, v in model_info.items()}}
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = card.description or card.name
    proto.producer_name = "imdenoise"
    out_dim = proto.graph.output[0].type.tensor_type.shape.dim
    if len(out_dim) == 4:
        out_dim[1].Clear()
        out_dim[1].dim_value = int(model_info["out_channels"])


def require_export_extra() -> None:
    """A one-line ExportError naming the missing packages when the optional export extra is not installed
    (instead of an import traceback from deep inside an export or an ONNX load)."""
    import importlib

    missing = []
    for name in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ExportError(f"ONNX export and the onnxruntime backend need the export extra: "
                          f"pip install 'imdenoise[export]' (missing: {', '.join(missing)})")


def onnx_session(path: str | Path | bytes, threads: int | None = None, device: str = "cpu") -> Any:
    """An onnxruntime session on the CPU (or CUDA when asked for and available)."""
    require_export_extra()
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or 0)
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    src = path if isinstance(path, bytes) else str(path)
    try:
        return ort.InferenceSession(src, so, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error types
        raise ExportError(f"{path if not isinstance(path, bytes) else 'ONNX model'}: onnxruntime cannot load it "
                          f"({str(exc).splitlines()[0]})") from None


def onnx_feeds(session: Any, x: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    return {"input": x, "sigma": sigma} if "sigma" in names else {"input": x}


def check_against_torch(model: DenoisingNet, session: Any, sizes: Sequence[tuple[int, int, int]] = CHECK_SIZES,
                        seed: int = 0) -> float:
    """Max |onnxruntime - torch| over random noisy inputs of the given (N, H, W) sizes."""
    g = torch.Generator().manual_seed(seed)
    wrapper = ExportWrapper(model).eval()
    k = max(1, model.size_multiple)
    worst = 0.0
    for n, h, w in sizes:
        h, w = max(h, k), max(w, k)
        x = torch.rand(n, model.in_channels, h, w, generator=g)
        x = x + 0.1 * torch.randn(x.shape, generator=g)
        s = 0.2 * torch.rand(n, generator=g)
        with torch.no_grad():
            ref = wrapper(x, s).numpy()
        out = session.run(None, onnx_feeds(session, x.numpy(), s.numpy()))[0]
        if out.shape != ref.shape:
            raise ExportError(f"onnxruntime output shape {out.shape} != torch {ref.shape} for input {tuple(x.shape)}")
        worst = max(worst, float(np.abs(out - ref).max()))
    return worst


@dataclass
class ExportReport:
    """What an export wrote and how closely it matches PyTorch."""

    path: Path
    max_abs_diff: float
    sizes: tuple[tuple[int, int, int], ...]
    opset: int
    bytes: int


def random_check_sizes(count: int = 2, rng: np.random.Generator | None = None) -> tuple[tuple[int, int, int], ...]:
    """(N, H, W) sizes drawn afresh for each export (odd and even, 17-160 pixels, batch 1-2), so that
    the check does not only ever see the same few shapes."""
    rng = rng or np.random.default_rng()
    return tuple((int(rng.integers(1, 3)), int(rng.integers(17, 161)), int(rng.integers(17, 161))) for _ in range(count))


def export_onnx(model: DenoisingNet, card: ModelCard, out: str | Path, *, opset: int = OPSET, atol: float = ATOL,
                sizes: Sequence[tuple[int, int, int]] | None = None, overwrite: bool = True) -> ExportReport:
    """Export to ONNX, check against torch on fixed odd sizes plus random ones (max abs diff < atol),
    then write atomically; the sizes checked are in the report."""
    require_export_extra()
    import onnx

    sizes = tuple(sizes) if sizes is not None else CHECK_SIZES + random_check_sizes()

    out = Path(out)
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: file exists (pass --overwrite to replace it)")
    if opset < 17:
        raise ExportError(f"opset {opset} is too old; use 17 or newer")
    model = model.eval().float().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # torch stubs lack Module.to(memory_format=)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        _torch_export(model, raw, opset)
        proto = onnx.load(str(raw))
    info = {"size_multiple": model.size_multiple, "noise_conditioned": model.noise_conditioned,
            "in_channels": model.in_channels, "out_channels": model.out_channels, "precision": "fp32"}
    _set_metadata(proto, card, info)
    data = proto.SerializeToString()
    diff = check_against_torch(model, onnx_session(data, threads=torch.get_num_threads()), sizes)
    if not diff < atol:
        raise ExportError(f"exported ONNX model differs from PyTorch: max abs difference {diff:.3g} >= {atol:g} "
                          f"on sizes {list(sizes)}; not written")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, data)
    log.info("wrote %s (max abs diff vs torch %.2g)", out, diff)
    return ExportReport(out, diff, tuple(sizes), max(opset, proto.opset_import[0].version), len(data))


def read_onnx_info(path: str | Path) -> tuple[ModelCard | None, dict[str, str]]:
    """The model card and the imdenoise.* metadata of an exported ONNX file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: ONNX file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001
        raise WeightsError(f"{path}: not a valid ONNX file ({str(exc).splitlines()[0]})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    card = ModelCard.model_validate(json.loads(meta[CARD_KEY])) if CARD_KEY in meta else None
    return card, meta


class OnnxDenoiser(NetworkDenoiser):
    """The same engine as the torch backend (padding, tiling, sigma, channels), run by onnxruntime."""

    def __init__(self, path: str | Path, options: InferenceOptions | None = None) -> None:
        self.options = options or InferenceOptions()
        self.path = Path(path)
        card, meta = read_onnx_info(self.path)
        self.session = onnx_session(self.path, self.options.threads, self.options.device)
        inputs = {i.name: i for i in self.session.get_inputs()}
        if "input" not in inputs:
            raise WeightsError(f"{path}: not an imdenoise ONNX model (no 'input' tensor)")
        ch = inputs["input"].shape[1]
        self.channels = int(meta.get("imdenoise.in_channels", ch if isinstance(ch, int) else 1))
        self.size_multiple = int(meta.get("imdenoise.size_multiple", 1))
        self.noise_conditioned = "sigma" in inputs
        self.card = card
        self.name = card.name if card else self.path.stem
        self.precision = meta.get("imdenoise.precision", "fp32")
        self.noise_range = (float(card.noise_range[0]), float(card.noise_range[1])) if card else (0.0, 255.0)
        self.device = torch.device("cpu")

    def _run(self, batch: np.ndarray, sigma: float) -> np.ndarray:
        """(N,H,W,C) float32 -> (N,H,W,C) through onnxruntime, tiled by the shared engine."""
        x = torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))
        s = np.full((x.shape[0],), sigma / 255.0, dtype=np.float32)

        def fn(t: torch.Tensor) -> torch.Tensor:
            feeds = onnx_feeds(self.session, np.ascontiguousarray(t.numpy()), s[: t.shape[0]])
            return torch.from_numpy(self.session.run(None, feeds)[0])

        out = run_tiled(self_ensemble(fn, self.options.ensemble), x, self.size_multiple,
                        self.options.tile, self.options.overlap)
        return out.permute(0, 2, 3, 1).numpy()


def _cache_dir() -> Path:
    return cache_dir("onnx")


def _resolve_state_dict(weights: Path, arch: str) -> tuple[DenoisingNet, ModelCard]:
    """A plain state dict of architecture `arch`: gray first, then color if the channels do not match."""
    try:
        return load_network(weights, 1, arch)
    except WeightsError as gray_exc:
        try:
            return load_network(weights, 3, arch)
        except WeightsError:
            raise gray_exc from None


def _export_cached(weights: Path, arch: str | None = None) -> Path:
    """The ONNX export of a weights file, made once and cached by the file's content hash (and `arch`)."""
    h = hashlib.sha256(weights.read_bytes())
    if arch:
        h.update(f"\0arch={arch}".encode())
    out = _cache_dir() / f"{weights.stem}-{h.hexdigest()[:16]}.onnx"
    if not out.is_file():
        model, card = _resolve_state_dict(weights, arch) if arch else load_network(weights)
        export_onnx(model, card, out)
    return out


def load_onnx(name_or_path: str | Path, opts: InferenceOptions | None = None, arch: str | None = None) -> Any:
    """A Denoiser on onnxruntime: an .onnx file, or a weights file / shipped name exported (and cached) first.

    `arch` names the architecture of a plain state dict (.pt/.pth, or a .safetensors without a card), as
    `--arch` does for the torch backend."""

    opts = opts or InferenceOptions()
    name = str(name_or_path)
    if name in SHIPPED_ALIASES:
        gray, color = SHIPPED_ALIASES[name]
        if shipped_path(gray) and shipped_path(color):
            photo = name == "default" and shipped_path("photo") is not None
            return AutoDenoiser(load_onnx(gray, opts), load_onnx(color, opts),
                                load_onnx("photo", opts) if photo else None, name=name,
                                photo_rule=photo_rule() if name == "default" else None)
    shipped = shipped_path(name)
    p = shipped or Path(name)
    if p.suffix == ".onnx":
        return OnnxDenoiser(p, opts)
    if p.suffix in (".safetensors", ".pt", ".pth", ".ckpt", ".bin"):
        if not p.is_file():
            raise WeightsError(f"{p}: weights file not found")
        return OnnxDenoiser(_export_cached(p, None if shipped else arch), opts)
    raise ImDenoiseError(f"backend 'onnxruntime' needs an .onnx file, a .safetensors weights file or a shipped "
                         f"model name; got {name!r}")
