"""Read and write images as float32 HxWxC arrays, keeping bit depth and alpha for the way back.

Formats: PNG, JPEG, BMP (Pillow; 16-bit PNG through libpng), TIFF (tifffile; multi-page via
`read_frames`) and NPY. Integer sources become [0, 1] (uint8 / 255, uint16 / 65535); float sources
are kept as stored, never clipped. Alpha is set aside on read and restored on write. Images above
a pixel limit are refused from their header, before decoding. Writes are atomic and never replace
an existing file unless asked to. Every user-facing failure is an `ImDenoiseError` subclass.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable, Union

import numpy as np

from imdenoise.atomic import atomic_path
from imdenoise.errors import ImageReadError, ImageWriteError, OutputExistsError
from imdenoise.io import formats as fmts

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
_MAX_PIXELS_ENV = "IMDENOISE_MAX_PIXELS"
_BUILTIN_MAX_PIXELS = 100_000_000
DEFAULT_MAX_PAGES = 1000  # multi-page TIFF: more pages are refused (raise with --max-pages)
_SCALE = {"uint8": 255.0, "uint16": 65535.0}


def _max_pixels_from_env() -> int | None:
    """The pixel limit: IMDENOISE_MAX_PIXELS if set (0 or 'none' = no limit), else 100 megapixels."""
    raw = os.environ.get(_MAX_PIXELS_ENV, "").strip()
    if not raw:
        return _BUILTIN_MAX_PIXELS
    if raw.lower() in ("0", "none", "unlimited"):
        return None
    try:
        value = int(float(raw))
        if value <= 0:
            raise ValueError
    except ValueError:
        log.warning("ignoring %s=%r: not a positive number of pixels", _MAX_PIXELS_ENV, raw)
        return _BUILTIN_MAX_PIXELS
    return value


DEFAULT_MAX_PIXELS: int | None = _max_pixels_from_env()


@dataclass
class Image:
    """An image as the library handles it, plus what is needed to write it back like its source."""

    data: np.ndarray  # float32 HxWxC (C = 1 or 3): [0, 1] for integer sources, as stored for floats
    alpha: np.ndarray | None  # float32 HxW in [0, 1], or None
    dtype: np.dtype  # source sample type: uint8, uint16 or float32
    mode: str  # source colour mode: "L", "LA", "RGB", "RGBA", "P", "1", "CMYK", ...
    path: Path | None = None
    icc_profile: bytes | None = None  # the source's colour profile: written back, or colours shift
    exif: bytes | None = None  # the source's EXIF (camera, date, ...), orientation already applied

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        """Columns."""
        return int(self.data.shape[1])

    @property
    def channels(self) -> int:
        """Colour channels of `data` (1 gray, 3 colour), alpha not counted."""
        return int(self.data.shape[2])


def read_image(path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image:
    """Read one image (the first page of a multi-page TIFF) as a float32 HxWxC `Image`."""
    path, fmt = _check_input(path)
    if fmt == "TIFF":
        return _to_image(fmts.read_tiff(path, max_pixels, first_only=True)[0], path)
    return _to_image(_read_single(path, fmt, max_pixels), path)


def read_frames(path: PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                max_pages: int | None = DEFAULT_MAX_PAGES) -> list[Image]:
    """Read every page of a multi-page TIFF as its own `Image` (other formats give one frame); more
    than `max_pages` pages (None: no limit) is refused while walking them, before decoding the rest."""
    path, fmt = _check_input(path)
    if fmt == "TIFF":
        return [_to_image(frame, path) for frame in fmts.read_tiff(path, max_pixels, first_only=False,
                                                                   max_pages=max_pages)]
    return [_to_image(_read_single(path, fmt, max_pixels), path)]


def _check_input(path: PathLike) -> tuple[Path, str]:
    """Resolve the format of an existing, non-empty image file from its first bytes."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    if not path.is_file():  # a pipe would block open() forever, a device would never end
        raise ImageReadError(f"{path}: not a regular file (a device, pipe or socket), not an image file")
    ext = path.suffix.lower()
    if ext not in fmts.EXTENSIONS:
        raise ImageReadError(f"{path}: unsupported file type {ext or '(no extension)'!r} "
                             f"(supported: {', '.join(fmts.EXTENSIONS)})")
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not head:
        raise ImageReadError(f"{path}: empty file (0 bytes)")
    fmt = fmts.sniff(head)
    if fmt is None:
        raise ImageReadError(f"{path}: not a {fmts.EXTENSIONS[ext]} file (it starts with {head[:12]!r}, "
                             f"which is no supported image format)")
    if fmt != fmts.EXTENSIONS[ext]:
        log.info("%s holds %s data despite its extension; reading it as %s", path, fmt, fmt)
    return path, fmt


def _read_single(path: Path, fmt: str, max_pixels: int | None) -> fmts.RawFrame:
    """Decode a single-frame format (PNG, JPEG, BMP, NPY)."""
    if fmt == "NPY":
        return fmts.read_npy(path, max_pixels)
    if fmt == "PNG":
        with open(path, "rb") as fh:
            header = fmts.png_header(fh.read(33))
        if header is None:
            raise ImageReadError(f"{path}: not a valid PNG file (no IHDR header)")
        width, height, depth, color = header
        if depth == 16:
            return fmts.read_png16(path, width, height, color, max_pixels)
    return fmts.read_pillow(path, fmt, max_pixels)


def _to_image(frame: fmts.RawFrame, path: Path) -> Image:
    """Split alpha off and scale integer samples to float32 [0, 1]."""
    arr = frame.array
    if arr.size == 0:  # e.g. a 0x10 NPY: nothing to denoise, and nothing could be written back
        raise ImageReadError(f"{path}: image has no pixels (shape {arr.shape[:2]})")
    dtype = np.dtype(arr.dtype)
    scale = _SCALE.get(dtype.name)
    as_float = arr.astype(np.float32, copy=scale is not None)
    if scale:
        as_float /= np.float32(scale)  # in place: one float32 copy of the image, not two
    alpha = None
    if arr.shape[-1] in (2, 4):
        alpha = np.ascontiguousarray(as_float[..., -1])
        as_float = as_float[..., :-1]
    return Image(np.ascontiguousarray(as_float), alpha, dtype, frame.mode, path, frame.icc_profile, frame.exif)


def write_image(path: PathLike, data: np.ndarray, *, like: Image | None = None, dtype=None,
                alpha: np.ndarray | bool | None = None, overwrite: bool = False) -> Path:
    """Write an HxW or HxWxC image atomically, in the format of the extension and `like`'s depth.

    Sample type: `dtype` if given, else `like.dtype`, else the array's own integer type, else
    uint8 for PNG/JPEG/BMP and float32 for TIFF/NPY. Integer outputs are clipped to their range
    here and only here. Alpha: `alpha` if an array, else `like.alpha`; `alpha=False` drops it.
    """
    path = Path(path)
    fmt = fmts.EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise ImageWriteError(f"{path}: unsupported output type {path.suffix or '(no extension)'!r} "
                              f"(supported: {', '.join(fmts.EXTENSIONS)})")
    _check_output(path, overwrite)
    arr, out_dtype = _prepare(path, fmt, data, like, dtype, alpha)
    icc, exif = _metadata(like, arr)
    writer: Callable[[BinaryIO, np.ndarray], None]
    if fmt == "NPY":
        writer = fmts.write_npy
    elif fmt == "TIFF":
        writer = partial(fmts.write_tiff, icc_profile=icc)
    elif out_dtype == "uint16":
        writer = fmts.write_png16
    else:
        writer = partial(fmts.write_pillow, fmt=fmt, icc_profile=icc, exif=exif)
    _atomic_write(path, lambda fh: writer(fh, arr), overwrite)
    log.debug("wrote %s (%s, %s, %d channels)", path, fmt, out_dtype, arr.shape[-1])
    return path


def write_frames(path: PathLike, frames: list[np.ndarray], *, like: list[Image] | None = None, dtype=None,
                 overwrite: bool = False) -> Path:
    """Write several frames (e.g. a denoised multi-page TIFF) as the pages of one TIFF, atomically;
    frame i is written like `like[i]` (its depth and alpha). One frame is `write_image`."""
    path = Path(path)
    if like is not None and len(like) != len(frames):
        raise ImageWriteError(f"{path}: {len(frames)} frames but {len(like)} source images to write them like")
    if len(frames) == 1:
        return write_image(path, frames[0], like=like[0] if like else None, dtype=dtype, overwrite=overwrite)
    if fmts.EXTENSIONS.get(path.suffix.lower()) != "TIFF":
        raise ImageWriteError(f"{path}: {len(frames)} frames can only be written to a multi-page .tif/.tiff file")
    _check_output(path, overwrite)
    pages = [_prepare(path, "TIFF", f, like[i] if like else None, dtype, None)[0] for i, f in enumerate(frames)]
    iccs = [_metadata(like[i] if like else None, page)[0] for i, page in enumerate(pages)]
    _atomic_write(path, lambda fh: fmts.write_tiff_pages(fh, pages, iccs), overwrite)
    log.debug("wrote %s (TIFF, %d pages)", path, len(pages))
    return path


def _metadata(like: Image | None, arr: np.ndarray) -> tuple[bytes | None, bytes | None]:
    """The source's ICC profile (only if it fits the colour channels written: not a CMYK source's
    profile on RGB output) and EXIF, to write back with the result."""
    if like is None:
        return None, None
    colour = arr.shape[-1] - (arr.shape[-1] in (2, 4))
    icc = like.icc_profile if like.icc_profile and fmts.icc_fits(like.icc_profile, colour) else None
    return icc, like.exif


def _check_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing output (unless overwrite) or a path that is a directory."""
    if path.is_dir():
        raise ImageWriteError(f"{path}: is a directory; give an output file name")
    if path.exists() and not overwrite:
        raise OutputExistsError(_exists_message(path))


def _exists_message(path: Path) -> str:
    return f"{path}: output file exists; pass --overwrite (overwrite=True) to replace it"


def _target_dtype(path: Path, fmt: str, data: np.ndarray, like: Image | None, dtype) -> str:
    """The sample type to write (see `write_image`)."""
    if dtype is not None:
        try:
            name = np.dtype(dtype).name
        except TypeError:
            raise ImageWriteError(f"{path}: unknown sample type {dtype!r} (use uint8, uint16 or float32)") from None
        if name not in ("uint8", "uint16", "float32"):
            raise ImageWriteError(f"{path}: unsupported sample type {name} (use uint8, uint16 or float32)")
        return name
    if like is not None:
        return np.dtype(like.dtype).name
    if data.dtype in (np.uint8, np.uint16):
        return data.dtype.name
    return "float32" if fmt in ("TIFF", "NPY") else "uint8"


def _prepare(path: Path, fmt: str, data: np.ndarray, like: Image | None, dtype,
             alpha: np.ndarray | bool | None) -> tuple[np.ndarray, str]:
    """Samples HxWxC ready for the writer: colour (+ alpha) in the output type, clipped if integer."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3 or data.shape[-1] not in (1, 2, 3, 4) or data.size == 0:
        raise ImageWriteError(f"{path}: cannot write an array of shape {data.shape}; expected HxW or HxWxC, C 1-4")
    if data.dtype.kind not in "fu" and data.dtype != np.bool_:
        raise ImageWriteError(f"{path}: cannot write {data.dtype} samples (give float or uint8/uint16)")
    out_dtype = _target_dtype(path, fmt, data, like, dtype)
    unit = _to_unit(data)
    if data.shape[-1] in (2, 4):  # alpha already included
        unit, included = unit[..., :-1], unit[..., -1]
        alpha = included if alpha is None else alpha
    alpha_arr = _pick_alpha(path, unit.shape[:2], like, alpha)
    fmts.check_writable(path, fmt, out_dtype, alpha_arr is not None)
    if alpha_arr is not None:
        unit = np.concatenate([unit, alpha_arr[..., None]], axis=-1)
    return _quantize(unit, out_dtype), out_dtype


def _to_unit(data: np.ndarray) -> np.ndarray:
    """Float32 samples on the [0, 1] scale (integer types scaled, floats as they are)."""
    if data.dtype == np.bool_:
        return data.astype(np.float32)
    scale = _SCALE.get(data.dtype.name)
    return data.astype(np.float32) / np.float32(scale) if scale else data.astype(np.float32, copy=False)


def _pick_alpha(path: Path, shape: tuple[int, ...], like: Image | None,
                alpha: np.ndarray | bool | None) -> np.ndarray | None:
    """The alpha plane to write: explicit, else the source's (if it still fits), else none."""
    if alpha is False:
        return None
    if alpha is None or alpha is True:
        if like is None or like.alpha is None:
            return None
        if like.alpha.shape != shape:
            log.warning("%s: source alpha is %s, image is %s; alpha not written", path, like.alpha.shape, shape)
            return None
        return like.alpha.astype(np.float32, copy=False)
    alpha_arr = _to_unit(np.asarray(alpha))
    alpha_arr = alpha_arr[..., 0] if alpha_arr.ndim == 3 and alpha_arr.shape[-1] == 1 else alpha_arr
    if alpha_arr.shape != shape:
        raise ImageWriteError(f"{path}: alpha has shape {alpha_arr.shape}, the image is {shape}")
    return alpha_arr


_QUANTIZE_ROWS_BYTES = 2**20  # float32 working memory per block of rows when quantizing


def _quantize(unit: np.ndarray, out_dtype: str) -> np.ndarray:
    """Round [0, 1] samples into an integer type (clipping, NaN -> 0), or keep float32 unclipped.

    Integer output is made a block of rows at a time: the only full-size allocation is the output
    itself (a whole-image clip/scale/round made four float32 copies: +1.3 GB for 36 MP colour)."""
    scale = _SCALE.get(out_dtype)
    if scale is None:
        return np.ascontiguousarray(unit, dtype=np.float32)
    out = np.empty(unit.shape, dtype=out_dtype)
    rows = max(1, _QUANTIZE_ROWS_BYTES // max(1, 4 * unit[0].size))
    for y in range(0, unit.shape[0], rows):
        block = np.nan_to_num(unit[y:y + rows], nan=0.0).astype(np.float32, copy=False)
        np.clip(block, 0.0, 1.0, out=block)
        block *= np.float32(scale)
        np.rint(block, out=block)
        out[y:y + rows] = block
    return out


def _atomic_write(path: Path, write: Callable[[BinaryIO], None], overwrite: bool) -> None:
    """Write through the one atomic writer; never leave a partial file, never clobber without `overwrite`."""
    started = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, overwrite=overwrite, fsync=False) as tmp:
            started = True
            with open(tmp, "wb") as fh:  # a named file object: tifffile needs its name
                write(fh)
    except FileExistsError:
        raise OutputExistsError(_exists_message(path)) from None
    except ImageWriteError:
        raise
    except OSError as exc:
        if not started:
            raise ImageWriteError(f"{path}: cannot write there ({exc.strerror or exc})") from None
        raise ImageWriteError(f"{path}: cannot write ({exc})") from None
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ImageWriteError(f"{path}: cannot write ({exc})") from None
