"""The benchmark protocol of BENCHMARK.md: methods x datasets x noise levels -> per-image records.

Steps (BENCHMARK.md): files sorted by name; clean images as 8-bit (gray sets single channel,
color sets RGB) scaled to [0, 1]; image ``i`` at level ``sigma`` gets
``clean + sigma/255 * default_rng(1000*sigma + i).standard_normal(shape, float32)``, not clipped;
the output is clipped to [0, 1] and quantized with ``metrics.quantize_8bit`` (``np.round(out * 255).astype(uint8)``); PSNR and
SSIM on the 8-bit pair (data range 255); the denoiser call alone is timed, after one warm-up call
on the first image, with ``torch.set_num_threads(2)``.

Other noise kinds use the same seeding rule with their main parameter as the level:
``default_rng(round(1000 * level) + i)`` with level = peak (poisson), amount (saltpepper),
var (speckle), sigma (mixed); see ``noise.benchmark_rng``.

Folders of real noisy pairs (``data.real_pairs``: ``<name>_real.*`` beside ``<name>_mean.*``, ...)
get no synthetic noise: the 8-bit noisy photo, scaled to [0, 1], is the input, the reference is the
"clean" image and the noise label is ``real``; methods are blind unless ``EvalSettings.fixed_sigma``
gives every method one level (``sigma_true`` holds the RMS of noisy - reference, for the residual
statistics only). Output quantization, PSNR/SSIM and
timing are the protocol's. Every record also holds the noisy input's own PSNR/SSIM (8-bit).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from imdenoise.errors import ImageReadError, ImDenoiseError
from imdenoise.io.formats import EXTENSIONS
from imdenoise.metrics import psnr_uint8, quantize_8bit

__all__ = [
    "EvaluationError", "Dataset", "ImageRecord", "EvalSettings", "Kept", "load_dataset", "parse_levels",
    "noise_label", "make_noisy", "residual_stats", "evaluate", "summarize", "records_as_dicts",
    "time_call", "REAL_LABEL", "is_pairs_folder", "load_pairs",
]

BENCHMARK_SUFFIXES = tuple(s for s in EXTENSIONS if s != ".npy")  # image files of a benchmark set
REAL_LABEL = "real"  # the noise label of real noisy pairs (no synthetic noise)


class EvaluationError(ImDenoiseError):
    """A dataset, a method or an option of an evaluation run is unusable."""


@dataclass
class Dataset:
    """A benchmark set held in memory: 8-bit HxWxC clean images, sorted by file name.

    For real noisy pairs, ``images`` are the references, ``noisy`` the noisy photos (same shapes) and
    ``files`` the noisy files (the inputs the records name), ``reference_files`` the references."""

    name: str
    path: Path
    files: list[Path]
    images: list[np.ndarray]  # uint8 HxWxC, C = channels
    channels: int
    noisy: list[np.ndarray] | None = None  # real pairs: the noisy photos, uint8 HxWxC
    reference_files: list[Path] | None = None

    @property
    def real(self) -> bool:
        """True for real noisy pairs (no synthetic noise is added)."""
        return self.noisy is not None


@dataclass
class ImageRecord:
    """One method on one image at one noise level: quality, time and residual statistics."""

    method: str
    dataset: str
    noise: str
    level: float | None  # the noise model's main parameter; None for real pairs
    index: int
    image: str
    height: int
    width: int
    channels: int
    sigma_true: float | None  # true AWGN(-equivalent) level, 0-255 scale
    sigma_given: float | None  # what the method was told (None = blind)
    psnr: float
    ssim: float
    seconds: float
    mpx_per_s: float
    resid_mean: float  # mean of noisy - denoised, 0-255 scale
    resid_std: float  # its standard deviation, 0-255 scale
    resid_std_ratio: float | None  # resid_std / sigma_true (1 = removes exactly the noise's power)
    resid_ac_h: float  # lag-1 autocorrelation of the residual, horizontal (0 = white)
    resid_ac_v: float  # same, vertical
    resid_structure: float | None  # correlation of the residual with the clean image's detail layer
    lpips: float | None = None
    psnr_noisy: float | None = None  # the noisy input itself (clipped, 8-bit) against the clean image
    ssim_noisy: float | None = None


@dataclass
class EvalSettings:
    """Options of one run; defaults are the protocol's.

    The sigma given to every method is ``fixed_sigma`` when set, else the true level when
    ``sigma_known`` and the noise has one, else None (blind; always so on real pairs without
    ``fixed_sigma``)."""

    sigma_known: bool = True
    fixed_sigma: float | None = None
    threads: int = 2
    warmup: bool = True
    limit: int | None = None
    keep_index: int | None = 0  # keep this image's arrays for figures (None: keep none)
    progress: bool = True


@dataclass
class Kept:
    """Arrays of one image kept for figures: clean, noisy and each method's output (float HxWxC)."""

    dataset: str
    noise: str
    level: float | None
    sigma: float | None
    image: str
    clean: np.ndarray
    noisy: np.ndarray
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def _read_u8(path: Path) -> np.ndarray:
    """An image file (through imdenoise.io.images) as uint8 HxWx1 or HxWx3; alpha dropped, 16-bit/float rounded."""
    from imdenoise.io.images import read_image

    data = read_image(path).data
    if data.shape[-1] not in (1, 3):
        raise ImageReadError(f"{path}: expected a gray or RGB image, got {data.shape[-1]} channels")
    return quantize_8bit(data)


def _is_gray(arr: np.ndarray) -> bool:
    return arr.shape[-1] == 1 or bool(np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]))


def _to_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """uint8 HxWx1 / HxWx3 -> HxWxC with C = channels (gray from color: ITU-R 601 luma, as PIL's 'L')."""
    if channels == 1 and arr.shape[-1] == 3:
        from PIL import Image

        return np.asarray(Image.fromarray(arr, "RGB").convert("L"))[..., None]
    if channels == 3 and arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return arr


def _check_args(path: Path, channels: int | None, limit: int | None) -> None:
    if not path.is_dir():
        raise EvaluationError(f"dataset {path}: no such directory")
    if channels not in (None, 1, 3):
        raise EvaluationError(f"channels must be 1 (gray) or 3 (RGB), got {channels}")
    if limit is not None and limit < 1:
        raise EvaluationError(f"--limit must be at least 1, got {limit}")


def is_pairs_folder(path: str | Path) -> bool:
    """True for a folder of real noisy pairs, or one meant to be: ``data.is_real_pairs``, or a
    ``noisy/`` + ``clean/`` layout, or a file named like a noisy photo (``*_real.*``, ``*_noisy.*``)
    even when its pair is missing (so that a broken pairs folder is an error, not a clean set)."""
    from imdenoise.io.datasets import REAL_PAIR_TAGS, is_real_pairs, list_images

    path = Path(path)
    if not path.is_dir():
        return False
    if is_real_pairs(path) or ((path / "noisy").is_dir() and (path / "clean").is_dir()):
        return True
    noisy_tags = {n for n, _ in REAL_PAIR_TAGS}
    return any(f.stem.endswith(tag) for f in list_images(path) for tag in noisy_tags)


def load_pairs(path: str | Path, channels: int | None = None, limit: int | None = None) -> Dataset:
    """A folder of real noisy pairs (``data.real_pairs``), sorted by name; gray when every photo and
    reference is gray unless `channels`. A missing partner or a size mismatch is an EvaluationError
    naming the file."""
    from imdenoise.io.datasets import real_pairs

    path = Path(path)
    _check_args(path, channels, limit)
    try:
        noisy_files, clean_files = real_pairs(path)
    except ImDenoiseError as exc:
        raise EvaluationError(f"dataset {path}: {str(exc).removeprefix(f'{path}: ')}") from None
    if limit:
        noisy_files, clean_files = noisy_files[:limit], clean_files[:limit]
    noisy = [_read_u8(f) for f in noisy_files]
    clean = [_read_u8(f) for f in clean_files]
    for fn, fc, a, b in zip(noisy_files, clean_files, noisy, clean):
        if a.shape[:2] != b.shape[:2]:
            raise EvaluationError(f"dataset {path}: {fn.name} is {a.shape[1]}x{a.shape[0]} but its reference "
                                  f"{fc.name} is {b.shape[1]}x{b.shape[0]}")
    if channels is None:
        channels = 1 if all(_is_gray(a) for a in noisy + clean) else 3
    return Dataset(path.name, path, noisy_files, [_to_channels(a, channels) for a in clean], channels,
                   noisy=[_to_channels(a, channels) for a in noisy], reference_files=clean_files)


def load_dataset(path: str | Path, channels: int | None = None, limit: int | None = None) -> Dataset:
    """A folder of clean images, sorted by name; gray when all its images are gray unless `channels`.

    A folder of real noisy pairs (see :func:`is_pairs_folder`) is read by :func:`load_pairs`."""
    path = Path(path)
    _check_args(path, channels, limit)
    if is_pairs_folder(path):
        return load_pairs(path, channels, limit)
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() in BENCHMARK_SUFFIXES)
    if not files:
        raise EvaluationError(f"dataset {path}: no images ({', '.join(BENCHMARK_SUFFIXES)}) in this folder")
    files = files[:limit] if limit else files
    raw = [_read_u8(f) for f in files]
    if channels is None:
        channels = 1 if all(_is_gray(a) for a in raw) else 3
    return Dataset(path.name, path, files, [_to_channels(a, channels) for a in raw], channels)


def parse_levels(spec: str) -> list[Any]:
    """Noise models from ``gaussian:15,25,50``, ``poisson:30``, ...; several specs joined by ';'."""
    from imdenoise.noise.models import parse_noise_levels

    models = []
    for part in (p.strip() for p in spec.split(";")):
        if part:
            models += parse_noise_levels(part)
    if not models:
        raise EvaluationError(f"empty noise spec {spec!r}; e.g. gaussian:15,25,50")
    return models


def noise_label(model: Any) -> str:
    """Short label of a noise model: 'gaussian:25', 'poisson:30', 'saltpepper:0.05', ..."""
    from imdenoise.noise.models import GaussianNoise

    if isinstance(model, GaussianNoise) and model.nominal_sigma is not None:
        return f"gaussian:{model.nominal_sigma:g}"
    return model.spec


def make_noisy(clean: np.ndarray, model: Any, index: int) -> tuple[np.ndarray, float | None]:
    """The protocol's noisy image (float32, unclipped) and its true AWGN-equivalent level (0-255)."""
    from imdenoise.noise.models import GaussianNoise, benchmark_noisy, benchmark_rng

    if isinstance(model, GaussianNoise) and model.nominal_sigma is not None:
        return benchmark_noisy(clean, model.nominal_sigma, index), float(model.nominal_sigma)
    noisy, level = model.sample(clean, benchmark_rng(model.level, index))
    return noisy.astype(np.float32, copy=False), level


def protocol_psnr(denoiser: Any, clean_u8: Iterable[np.ndarray], sigma: float) -> float:
    """Mean protocol PSNR over 8-bit clean images: seeded AWGN at `sigma` (given to the method), 8-bit output."""
    from imdenoise.noise.models import benchmark_noisy

    scores = []
    for i, clean in enumerate(clean_u8):
        out = denoiser.denoise(benchmark_noisy(clean.astype(np.float32) / 255.0, sigma, i), sigma=sigma)
        scores.append(psnr_uint8(clean, quantize_8bit(out)))
    return float(np.mean(scores))


def _lag1(r: np.ndarray, axis: int) -> float:
    a = np.moveaxis(r, axis, 0)
    den = float(np.sum(r * r))
    return float(np.sum(a[1:] * a[:-1]) / den) if den > 0 else 0.0


def residual_stats(noisy: np.ndarray, out: np.ndarray, sigma: float | None,
                   clean: np.ndarray | None = None) -> dict[str, float | None]:
    """'Method noise' of noisy - denoised (0-255 scale): mean, std, std/sigma, lag-1 AC, structure.

    ``resid_structure`` is the correlation of the residual with the clean image's detail layer
    (clean minus its Gaussian blur, width 1 px): about 0 when only noise was removed, positive when
    edges and texture went into the residual.
    """
    r = (noisy.astype(np.float64) - out.astype(np.float64)) * 255.0
    mean = float(r.mean())
    rc = r - r.mean(axis=(0, 1), keepdims=True)
    std = float(rc.std())
    stats: dict[str, float | None] = {
        "resid_mean": mean, "resid_std": std, "resid_std_ratio": std / sigma if sigma else None,
        "resid_ac_h": _lag1(rc, 1), "resid_ac_v": _lag1(rc, 0), "resid_structure": None}
    if clean is not None:
        from scipy.ndimage import gaussian_filter

        c = clean.astype(np.float64)
        detail = c - gaussian_filter(c, sigma=(1.0, 1.0, 0)[: c.ndim], mode="reflect")
        detail -= detail.mean()
        den = math.sqrt(float(np.sum(detail * detail)) * float(np.sum(rc * rc)))
        stats["resid_structure"] = float(np.sum(detail * rc) / den) if den > 0 else 0.0
    return stats


def time_call(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    """Run fn once and return (its result, wall seconds)."""
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _run_method(method: Any, name: str, noisy: np.ndarray, sigma: float | None, where: str) -> tuple[np.ndarray, float]:
    """One timed denoiser call; any failure becomes an EvaluationError naming method and image."""
    try:
        out, seconds = time_call(lambda: method.denoise(noisy, sigma))
    except ImDenoiseError as exc:
        raise EvaluationError(f"method {name!r} failed on {where}: {exc}") from None
    except Exception as exc:  # a bug or a library error inside the method: report it, do not crash
        raise EvaluationError(f"method {name!r} failed on {where}: {type(exc).__name__}: {exc}") from None
    out = np.asarray(out, dtype=np.float32)
    if out.shape != noisy.shape:
        out = out.reshape(noisy.shape) if out.size == noisy.size else out
    if out.shape != noisy.shape:
        raise EvaluationError(f"method {name!r} on {where}: output shape {out.shape} != input {noisy.shape}")
    if not np.all(np.isfinite(out)):
        raise EvaluationError(f"method {name!r} on {where}: output contains NaN or infinite values")
    return out, seconds


def _progress(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    # disable=None: tqdm stays quiet when stderr is not a terminal (logs, CI)
    return tqdm(total=total, unit="img", disable=None if enabled else True, leave=False, dynamic_ncols=True)


def _inputs(ds: Dataset, model: Any, i: int, clean: np.ndarray) -> tuple[np.ndarray, float | None]:
    """Image i's noisy input and true level: synthetic noise by the protocol, or (real pairs, model
    None) the noisy photo as read, scaled to [0, 1], with the RMS of noisy - reference (0-255) as its
    level, as for the other non-Gaussian kinds (this level is never given to a method)."""
    if model is None:
        noisy = ds.noisy[i].astype(np.float32) / 255  # type: ignore[index]
        return noisy, float(np.sqrt(np.mean((noisy.astype(np.float64) - clean) ** 2)) * 255)
    return make_noisy(clean, model, i)


def evaluate(methods: dict[str, Any], datasets: Sequence[Dataset], levels: Sequence[Any],
             settings: EvalSettings | None = None, lpips_fn: Callable | None = None,
             kept: list[Kept] | None = None) -> list[ImageRecord]:
    """Run every method on every image of every dataset at every noise level; one record each.

    Real-pair datasets are run once each, on their own noisy photos (noise label ``real``)."""
    import torch

    from imdenoise.metrics import ssim_uint8

    s = settings or EvalSettings()
    torch.set_num_threads(s.threads)
    records: list[ImageRecord] = []
    total = sum(len(d.images) * (1 if d.real else len(levels)) for d in datasets) * len(methods)
    if any(not d.real for d in datasets) and not levels:
        raise EvaluationError("no noise level given for a folder of clean images")
    bar = _progress(total, s.progress)

    def given(sigma: float | None, real: bool) -> float | None:
        if s.fixed_sigma is not None:
            return s.fixed_sigma
        return sigma if s.sigma_known and not real else None  # real pairs: blind

    try:
        for ds in datasets:
            cases = [(REAL_LABEL, None, None)] if ds.real else [(noise_label(m), float(m.level), m) for m in levels]
            if s.warmup:
                noisy0, sig0 = _inputs(ds, cases[0][2], 0, ds.images[0].astype(np.float32) / 255)
                for name, m in methods.items():
                    bar.set_description(f"{name} warm-up")
                    _run_method(m, name, noisy0, given(sig0, ds.real), f"{ds.files[0]} (warm-up)")
            for label, level, model in cases:
                for i, (path, u8) in enumerate(zip(ds.files, ds.images)):
                    clean = u8.astype(np.float32) / 255
                    noisy, sigma = _inputs(ds, model, i, clean)
                    noisy_q = quantize_8bit(noisy)
                    psnr_noisy, ssim_noisy = psnr_uint8(u8, noisy_q), ssim_uint8(u8, noisy_q)
                    keep = Kept(ds.name, label, level, sigma, path.name, clean, noisy) \
                        if kept is not None and i == s.keep_index else None
                    for name, m in methods.items():
                        bar.set_description(f"{name} {ds.name} {label}")
                        sigma_given = given(sigma, ds.real)
                        out, sec = _run_method(m, name, noisy, sigma_given, f"{path} at {label}")
                        q = quantize_8bit(out)
                        h, w, c = u8.shape
                        rec = ImageRecord(
                            method=name, dataset=ds.name, noise=label, level=level, index=i,
                            image=path.name, height=h, width=w, channels=c, sigma_true=sigma,
                            sigma_given=sigma_given, psnr=psnr_uint8(u8, q), ssim=ssim_uint8(u8, q),
                            seconds=sec, mpx_per_s=h * w / 1e6 / sec if sec > 0 else math.inf,
                            psnr_noisy=psnr_noisy, ssim_noisy=ssim_noisy,
                            **residual_stats(noisy, out, sigma, clean))  # type: ignore[arg-type]
                        if lpips_fn is not None:
                            rec.lpips = float(lpips_fn(u8, q))
                        records.append(rec)
                        if keep is not None:
                            keep.outputs[name] = out
                        bar.update(1)
                    if keep is not None:
                        kept.append(keep)  # type: ignore[union-attr]
    finally:
        bar.close()
    return records


SUMMARY_KEYS = ("psnr", "ssim", "psnr_noisy", "ssim_noisy", "resid_mean", "resid_std", "resid_std_ratio", "resid_ac_h", "resid_ac_v",
                "resid_structure", "lpips")


def summarize(records: Iterable[ImageRecord]) -> list[dict[str, Any]]:
    """Per (method, dataset, noise): mean PSNR/SSIM/residual stats/LPIPS, median s and Mpx/s."""
    groups: dict[tuple[str, str, str], list[ImageRecord]] = {}
    for r in records:
        groups.setdefault((r.method, r.dataset, r.noise), []).append(r)
    rows = []
    for (method, dataset, noise), rs in groups.items():
        row: dict[str, Any] = {"method": method, "dataset": dataset, "noise": noise, "level": rs[0].level,
                               "images": len(rs)}
        for key in SUMMARY_KEYS:
            vals = [getattr(r, key) for r in rs if getattr(r, key) is not None]
            row[key] = float(np.mean(vals)) if vals else None
        row["seconds"] = float(np.median([r.seconds for r in rs]))
        row["mpx_per_s"] = float(np.median([r.mpx_per_s for r in rs]))
        rows.append(row)
    return rows


def records_as_dicts(records: Iterable[ImageRecord]) -> list[dict[str, Any]]:
    """Plain dicts (for JSON/CSV)."""
    return [asdict(r) for r in records]
