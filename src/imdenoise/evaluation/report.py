"""Outputs of an evaluation run: markdown table, JSON/CSV files (atomic), figures (PNG), LPIPS."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from imdenoise.atomic import write_bytes_atomic
from imdenoise.errors import OutputExistsError
from imdenoise.evaluation.evaluate import EvaluationError, ImageRecord, Kept, records_as_dicts

__all__ = ["markdown_table", "check_writable", "write_json", "write_csv", "figure_paths",
           "write_figures", "load_lpips"]


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    """Methods x sets x noise levels: PSNR / SSIM (and the noisy input's PSNR) / s per image, Mpx/s and
    residual statistics."""
    has_lpips = any(row.get("lpips") is not None for row in summary)
    head = ["method", "set", "noise", "images", "PSNR dB", "noisy PSNR dB", "SSIM", "s / image", "Mpx/s",
            "resid mean", "resid std / sigma", "resid AC h", "resid AC v", "resid structure"] + (["LPIPS"] if has_lpips else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        cells = [r["method"], r["dataset"], r["noise"], str(r["images"]), _fmt(r["psnr"], ".2f"),
                 _fmt(r.get("psnr_noisy"), ".2f"), _fmt(r["ssim"], ".4f"), _fmt(r["seconds"], ".3f"), _fmt(r["mpx_per_s"], ".3f"),
                 _fmt(r["resid_mean"], "+.3f"), _fmt(r["resid_std_ratio"], ".3f"),
                 _fmt(r["resid_ac_h"], "+.3f"), _fmt(r["resid_ac_v"], "+.3f"),
                 _fmt(r.get("resid_structure"), "+.3f")]
        if has_lpips:
            cells.append(_fmt(r.get("lpips"), ".4f"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_writable(paths: Sequence[Path | None], overwrite: bool) -> None:
    """Refuse (before any work) to replace existing output files unless overwrite is set."""
    for p in paths:
        if p is None:
            continue
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p}: file exists; pass --overwrite to replace it")
        if p.exists() and p.is_dir():
            raise EvaluationError(f"{p}: is a directory, expected a file path")
        if not p.parent.exists():
            raise EvaluationError(f"{p}: folder {p.parent} does not exist")


def _clean(value: Any) -> Any:
    """JSON-safe numbers: inf/nan become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, records: Sequence[ImageRecord], summary: Sequence[dict[str, Any]],
               settings: dict[str, Any]) -> Path:
    """Settings, per-(method, set, noise) summary and per-image rows as one JSON file (atomic)."""
    doc = {"protocol": "BENCHMARK.md (imdenoise eval)", "settings": settings,
           "summary": [{k: _clean(v) for k, v in row.items()} for row in summary],
           "images": [{k: _clean(v) for k, v in row.items()} for row in records_as_dicts(records)]}
    return write_bytes_atomic(Path(path), (json.dumps(doc, indent=2) + "\n").encode())


def write_csv(path: Path, records: Sequence[ImageRecord]) -> Path:
    """Per-image rows as CSV (atomic)."""
    rows = records_as_dicts(records)
    buf = io.StringIO()
    fieldnames = list(ImageRecord.__dataclass_fields__)
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return write_bytes_atomic(Path(path), buf.getvalue().encode())


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def figure_paths(folder: Path, datasets: Sequence[str], noises: Sequence[str],
                 real_sets: Sequence[str] = ()) -> list[Path]:
    """The PNG files `write_figures` will create (known before the run, to check overwriting);
    the sets named in `real_sets` (real noisy pairs) have the one noise label 'real'."""
    from imdenoise.evaluation.evaluate import REAL_LABEL

    paths = [folder / f"crops_{_slug(d)}_{_slug(n)}.png"
             for d in datasets for n in ([REAL_LABEL] if d in real_sets else noises)]
    return paths + [folder / "psnr_vs_level.png"]


def _crop_box(h: int, w: int, size: int) -> tuple[slice, slice]:
    ch, cw = min(h, size), min(w, size)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    return slice(y0, y0 + ch), slice(x0, x0 + cw)


def _show(ax: Any, img: np.ndarray, title: str, vmin: float = 0.0, vmax: float = 1.0) -> None:
    img = img[..., 0] if img.ndim == 3 and img.shape[-1] == 1 else img
    if img.ndim == 3:  # color residual: show its mean over channels
        img = np.clip(img, vmin, vmax) if vmin == 0.0 else img.mean(axis=-1)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def _crops_figure(path: Path, k: Kept, crop: int) -> None:
    import matplotlib.pyplot as plt

    fig = crops_figure(k, crop)
    fig.savefig(path)
    plt.close(fig)


def crops_figure(k: Kept, crop: int) -> Any:
    """The figure of one kept image: noisy, each method's output and the clean crop, residuals below."""
    import matplotlib.pyplot as plt

    from imdenoise.evaluation.evaluate import REAL_LABEL
    from imdenoise.metrics import psnr_uint8
    from imdenoise.metrics import quantize_8bit as quantize

    ys, xs = _crop_box(k.clean.shape[0], k.clean.shape[1], crop)
    names = list(k.outputs)
    cols = len(names) + 2
    fig, axes = plt.subplots(2, cols, figsize=(2.8 * cols, 6.6), dpi=100, squeeze=False)
    real = k.noise == REAL_LABEL
    spread = 3 * max(k.sigma or 25.0, 1.0) / 255  # residual shown over +-3 sigma (real: RMS of noisy - reference)
    clean_u8 = quantize(k.clean)
    _show(axes[0, 0], np.clip(k.noisy[ys, xs], 0, 1), f"noisy\n({psnr_uint8(clean_u8, quantize(k.noisy)):.2f} dB)")
    _show(axes[1, 0], (k.noisy - k.clean)[ys, xs], "real noise (noisy - reference)" if real else "true noise",
          -spread, spread)
    for j, name in enumerate(names, start=1):
        out = k.outputs[name]
        short = short_name(name)
        _show(axes[0, j], np.clip(out[ys, xs], 0, 1), f"{short}\n({psnr_uint8(clean_u8, quantize(out)):.2f} dB)")
        _show(axes[1, j], (k.noisy - out)[ys, xs], f"{short}\nnoisy - denoised", -spread, spread)
    _show(axes[0, -1], k.clean[ys, xs], "reference" if real else "clean")
    axes[1, -1].axis("off")
    fig.suptitle(f"{k.dataset} / {k.image} / {k.noise}", fontsize=10)
    fig.tight_layout()
    return fig


def _real_bars(ax: Any, rows: Sequence[dict[str, Any]], title: str) -> None:
    """Real noisy pairs (no level to plot against): mean PSNR per method, the noisy photos' as a line."""
    names = [short_name(r["method"], 20) for r in rows]
    ax.bar(range(len(rows)), [r["psnr"] for r in rows], color="tab:blue")
    noisy = rows[0].get("psnr_noisy")
    if noisy is not None:
        ax.axhline(noisy, color="tab:red", linestyle="--", label=f"noisy photo ({noisy:.2f} dB)")
        ax.legend(fontsize=8)
    lo = min([r["psnr"] for r in rows] + ([noisy] if noisy is not None else []))
    ax.set_ylim(lo - 2, max(r["psnr"] for r in rows) + 1)
    ax.set_xticks(range(len(rows)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(f"{title} (real noise)")
    ax.grid(alpha=0.3, axis="y")


def method_colors(methods: Sequence[str]) -> dict[str, Any]:
    """One distinct colour per method, the same in every panel (tab10, or tab20 beyond ten methods)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(methods)}


def short_name(method: str, width: int = 24) -> str:
    """A method's display name: a weights path by its file stem, wrapped to `width` characters."""
    import textwrap

    name = Path(method).stem if ("/" in method or Path(method).suffix in (".safetensors", ".pt", ".pth", ".onnx")) \
        else method
    return textwrap.fill(name, width)


def _level_plot(path: Path, summary: Sequence[dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt

    fig = level_figure(summary)
    fig.savefig(path)
    plt.close(fig)


def level_figure(summary: Sequence[dict[str, Any]]) -> Any:
    """PSNR against the noise level: one panel per (dataset, noise kind), each on its own axis (the
    kind's parameter), one colour per method throughout, and one legend outside the panels."""
    import matplotlib.pyplot as plt

    from imdenoise.evaluation.evaluate import REAL_LABEL
    from imdenoise.noise.models import NOISE_KINDS

    methods = list(dict.fromkeys(r["method"] for r in summary))
    colors = method_colors(methods)
    panels: list[tuple[str, str | None]] = []
    for r in summary:
        key = (r["dataset"], None if r["noise"] == REAL_LABEL else r["noise"].split(":")[0])
        if key not in panels:
            panels.append(key)
    cols = min(3, len(panels))
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.6 * cols, 3.6 * rows_n + 0.4 + 0.25 * len(methods) / 3),
                             dpi=100, squeeze=False)
    for ax, (ds, kind) in zip(axes.ravel(), panels):
        rows = [r for r in summary if r["dataset"] == ds and
                (r["noise"] == REAL_LABEL if kind is None else r["noise"].split(":")[0] == kind)]
        if kind is None:
            _real_bars(ax, rows, ds)
            continue
        for method in methods:
            pts = sorted((r["level"], r["psnr"]) for r in rows if r["method"] == method)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=colors[method],
                        label=short_name(method, 40))
        cls = NOISE_KINDS.get(kind)
        param = next(iter(cls.limits)) if cls is not None and cls.limits else "level"
        ax.set_xlabel(f"{param} (0-255)" if param == "sigma" else param)
        ax.set_ylabel("PSNR (dB)")
        ax.set_title(f"{ds}: {kind}")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    handles = {h.get_label(): h for ax in axes.ravel() for h in ax.get_lines() if not h.get_label().startswith("_")}
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(3, len(handles)), fontsize=8,
                   frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * ((len(handles) - 1) // 3), 1, 1))
    return fig


def write_figures(folder: Path, kept: Sequence[Kept], summary: Sequence[dict[str, Any]], crop: int = 128) -> list[Path]:
    """Side-by-side crops (with residuals) per set and level, and the PSNR-versus-level plot (for real
    noisy pairs: a bar per method against the noisy photos' PSNR)."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for k in kept:
        p = folder / f"crops_{_slug(k.dataset)}_{_slug(k.noise)}.png"
        _crops_figure(p, k, crop)
        written.append(p)
    p = folder / "psnr_vs_level.png"
    _level_plot(p, summary)
    return written + [p]


def load_lpips(weights: Path) -> Callable[[np.ndarray, np.ndarray], float]:
    """LPIPS (AlexNet) from a local state-dict file; needs the `lpips` package; never downloads."""
    weights = Path(weights)
    if not weights.is_file():
        raise EvaluationError(f"LPIPS weights {weights}: no such file (nothing is downloaded; give a local "
                              "state dict of lpips.LPIPS(net='alex'), backbone and linear layers)")
    try:
        import lpips  # type: ignore[import-not-found]
    except ImportError:
        raise EvaluationError("the LPIPS column needs the optional 'lpips' package (pip install lpips, which "
                              "also needs torchvision); it is not installed") from None
    import torch

    try:
        net = lpips.LPIPS(net="alex", pretrained=False, pnet_rand=True, verbose=False)
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except Exception as exc:
        raise EvaluationError(f"LPIPS weights {weights}: cannot load them into lpips.LPIPS(net='alex'): {exc}") from None
    net.eval()

    def fn(clean_u8: np.ndarray, out_u8: np.ndarray) -> float:
        def t(a: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(a.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
            return x.expand(1, 3, *x.shape[-2:]) if x.shape[1] == 1 else x

        with torch.inference_mode():
            return float(net(t(clean_u8), t(out_u8)))

    return fn
