"""Format back-ends of `imdenoise.io.images`: raw sample arrays in and out of each file format.

Pillow reads and writes 8-bit PNG, JPEG and BMP; imagecodecs (libpng) handles 16-bit PNG, which
Pillow silently reduces to 8 bits for colour; tifffile handles TIFF; numpy handles NPY. Every
function here works on raw arrays HxWxC (C = 1 to 4, the last channel of 2 or 4 being alpha) in
the file's own sample type. Each checks the pixel count from the header before decoding and turns
the libraries' exceptions into `ImageReadError` / `ImageTooLargeError` naming the file.
"""

from __future__ import annotations

import logging
import struct
import threading
import tokenize
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

import numpy as np

from imdenoise.errors import ImageReadError, ImageTooLargeError, ImageWriteError

if TYPE_CHECKING:
    from PIL import Image as PILImage

log = logging.getLogger(__name__)

# File extension -> format name. The content decides how a file is decoded (see `sniff`); the
# extension decides the format of a file being written.
EXTENSIONS: dict[str, str] = {
    ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF", ".npy": "NPY",
}
IMAGE_SUFFIXES = frozenset(EXTENSIONS)  # the one list of image file suffixes: folders, outputs, datasets
_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
    (b"\x93NUMPY", "NPY"),
]
# Sample types a format can store (alpha: whether it can store an alpha channel).
WRITABLE: dict[str, tuple[tuple[str, ...], bool]] = {
    "PNG": (("uint8", "uint16"), True),
    "JPEG": (("uint8",), False),
    "BMP": (("uint8",), False),
    "TIFF": (("uint8", "uint16", "float32"), True),
    "NPY": (("uint8", "uint16", "float32"), True),
}
_PIL_LOCK = threading.Lock()
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, struct.error, zlib.error,
                  IndexError, KeyError)


@dataclass
class RawFrame:
    """One decoded frame: samples HxWxC in the file's type, the source's colour mode, and the metadata
    written back with the result (the ICC colour profile; EXIF, its orientation already applied)."""

    array: np.ndarray
    mode: str
    icc_profile: bytes | None = None
    exif: bytes | None = None


def sniff(head: bytes) -> str | None:
    """The format named by a file's first bytes, or None when no supported format matches."""
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    """Refuse an image whose header claims more pixels than the limit, before decoding it."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            f"{path}: image is {width}x{height} = {width * height / 1e6:.1f} megapixels, above the limit "
            f"of {max_pixels / 1e6:g} megapixels (a decompression-bomb guard; raise it with "
            f"max_pixels=... or the IMDENOISE_MAX_PIXELS environment variable)", width, height)


def _corrupt(path: Path, fmt: str, exc: BaseException) -> ImageReadError:
    detail = str(exc).strip() or type(exc).__name__
    return ImageReadError(f"{path}: cannot decode {fmt} data, the file is truncated or corrupt ({detail})")


# ---------------------------------------------------------------- Pillow: PNG, JPEG, BMP


@contextmanager
def _pillow_open(path: Path, fmt: str) -> Iterator[PILImage.Image]:
    """Open a file with Pillow (header only), our own pixel check replacing Pillow's global one."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    with _PIL_LOCK:  # MAX_IMAGE_PIXELS is process-global: lift it only while we open
        saved = PILImage.MAX_IMAGE_PIXELS
        PILImage.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
                im = PILImage.open(path, formats=[fmt])
        except PILImage.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{path}: {exc}") from None
        except UnidentifiedImageError:
            raise ImageReadError(f"{path}: not a valid {fmt} file (its header cannot be parsed)") from None
        except _DECODE_ERRORS as exc:
            raise _corrupt(path, fmt, exc) from None
        finally:
            PILImage.MAX_IMAGE_PIXELS = saved
    with im:
        yield im


def read_pillow(path: Path, fmt: str, max_pixels: int | None) -> RawFrame:
    """Decode a PNG (8-bit or less), JPEG or BMP with Pillow, EXIF orientation applied."""
    from PIL import ImageOps

    with _pillow_open(path, fmt) as im:
        check_pixels(path, im.width, im.height, max_pixels)
        try:
            im.load()
            oriented = ImageOps.exif_transpose(im)
        except _DECODE_ERRORS as exc:
            raise _corrupt(path, fmt, exc) from None
        mode = im.mode
        upright = oriented if oriented is not None else im
        # exif_transpose drops the orientation tag of what it turned, so the EXIF written back stays true
        return RawFrame(_pillow_to_array(path, upright), _base_mode(mode),
                        im.info.get("icc_profile") or None, upright.info.get("exif") or None)


def exif_orientation(path: Path, fmt: str) -> int:
    """The EXIF orientation tag (1 = upright) of a PNG/JPEG/BMP, read from its header only."""
    try:
        with _pillow_open(path, fmt) as im:
            return int(im.getexif().get(0x0112, 1))
    except (ImageReadError, *_DECODE_ERRORS):
        return 1


def _base_mode(mode: str) -> str:
    """Report the colour layout of a source: 16-bit and float gray are 'L' (dtype holds the depth)."""
    return "L" if mode.startswith("I") or mode == "F" else mode


def _pillow_to_array(path: Path, im: PILImage.Image) -> np.ndarray:
    """Samples of a Pillow image as HxWxC uint8/uint16/float32; palette -> RGB(A), CMYK -> RGB."""
    mode, transparent = im.mode, "transparency" in im.info
    if mode == "1":
        im = im.convert("L")
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or transparent or (im.palette is not None and im.palette.mode == "RGBA")
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode in ("L", "RGB") and transparent:  # a tRNS colour key becomes a real alpha channel
        im = im.convert("LA" if mode == "L" else "RGBA")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode.upper())
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        arr = arr.astype(np.uint16)
    elif im.mode == "I":
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageReadError(f"{path}: 32-bit integer samples are not supported (only 8/16-bit and float)")
        arr = arr.astype(np.uint16)
    elif im.mode == "F":
        arr = arr.astype(np.float32)
    elif arr.dtype != np.uint8:
        raise ImageReadError(f"{path}: unsupported image mode {mode!r}")
    return arr[..., None] if arr.ndim == 2 else arr


# ---------------------------------------------------------------- 16-bit PNG: imagecodecs


def png_header(head: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's IHDR chunk, or None if malformed."""
    if len(head) < 33 or head[12:16] != b"IHDR":
        return None
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, color


def read_png16(path: Path, width: int, height: int, color: int, max_pixels: int | None) -> RawFrame:
    """Decode a 16-bit PNG bit-exactly with libpng (Pillow reduces 16-bit colour to 8 bits)."""
    import imagecodecs

    check_pixels(path, width, height, max_pixels)
    try:
        arr = imagecodecs.png_decode(path.read_bytes())
    except _DECODE_ERRORS as exc:
        raise _corrupt(path, "PNG", exc) from None
    arr = arr[..., None] if arr.ndim == 2 else arr
    if arr.dtype != np.uint16:
        raise ImageReadError(f"{path}: 16-bit PNG decoded as {arr.dtype}, expected uint16")
    mode = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}.get(color, "L")
    return RawFrame(orient(arr, exif_orientation(path, "PNG")), mode)


def write_png16(fh: BinaryIO, arr: np.ndarray) -> None:
    """Write uint16 HxWxC (C 1-4) as a 16-bit PNG with libpng."""
    import imagecodecs

    fh.write(imagecodecs.png_encode(arr[..., 0] if arr.shape[-1] == 1 else arr))


def orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF/TIFF orientation (2-8) to an HxWxC array, as `ImageOps.exif_transpose` does."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.swapaxes(0, 1), 6: lambda a: a.swapaxes(0, 1)[:, ::-1],
           7: lambda a: a.swapaxes(0, 1)[::-1, ::-1], 8: lambda a: a.swapaxes(0, 1)[::-1]}
    op = ops.get(orientation)
    return np.ascontiguousarray(op(arr)) if op else arr


# What each format can carry of a source's metadata (PNG: iCCP and eXIf chunks; JPEG: APP2 and APP1)
METADATA: dict[str, tuple[str, ...]] = {"PNG": ("icc_profile", "exif"), "JPEG": ("icc_profile", "exif"),
                                        "TIFF": ("icc_profile",)}
_JPEG_APP1_MAX = 65533  # bytes of EXIF one JPEG APP1 segment holds


def icc_fits(profile: bytes, channels: int) -> bool:
    """True if an ICC profile describes images of this many colour channels (its header's colour
    space: 'GRAY' for 1, 'RGB ' for 3); a CMYK source's profile does not fit its RGB pixels."""
    return len(profile) >= 20 and profile[16:20] == {1: b"GRAY", 3: b"RGB "}.get(channels)


def write_pillow(fh: BinaryIO, arr: np.ndarray, fmt: str, icc_profile: bytes | None = None,
                 exif: bytes | None = None) -> None:
    """Write uint8 HxWxC with Pillow (JPEG at quality 95 without chroma subsampling), with the
    source's ICC profile and EXIF where the format holds them."""
    from PIL import Image as PILImage

    im = PILImage.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    options: dict[str, Any] = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    if icc_profile and "icc_profile" in METADATA.get(fmt, ()):
        options["icc_profile"] = icc_profile
    if exif and "exif" in METADATA.get(fmt, ()):
        if fmt == "JPEG" and len(exif) > _JPEG_APP1_MAX:
            log.warning("EXIF of %d bytes does not fit a JPEG (at most %d); not written", len(exif), _JPEG_APP1_MAX)
        else:
            options["exif"] = exif
    start = fh.tell()
    try:
        im.save(fh, format=fmt, **options)
    except (ValueError, TypeError, struct.error) as exc:  # metadata the format refuses: never lose the image
        if "icc_profile" not in options and "exif" not in options:
            raise
        log.warning("source metadata not written (%s)", exc)
        fh.seek(start)
        fh.truncate()
        im.save(fh, format=fmt, **{k: v for k, v in options.items() if k not in ("icc_profile", "exif")})


# ---------------------------------------------------------------- TIFF: tifffile

_FLOAT_TYPES = (np.float16, np.float32, np.float64)
# tifffile turns the tags of a damaged file into whatever they hold (a tuple where a number belongs,
# a zero size, a huge count): these errors then mean a corrupt file, not a bug (tests/security/test_hostile_inputs.py)
_TIFF_ERRORS = (*_DECODE_ERRORS, TypeError, AttributeError, ZeroDivisionError, OverflowError, MemoryError)


def read_tiff(path: Path, max_pixels: int | None, first_only: bool, max_pages: int | None = None) -> list[RawFrame]:
    """Decode the pages of a TIFF (one frame each), checking every page's size before reading it.

    Pages are walked one at a time, so a file claiming a million pages is refused at page
    `max_pages` + 1 instead of being indexed whole; a TIFF with no readable page is an error."""
    import itertools

    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except (tifffile.TiffFileError, *_TIFF_ERRORS) as exc:
        raise _corrupt(path, "TIFF", exc) from None
    frames: list[Any] = []
    with tif:
        try:
            wanted = 2 if first_only else (None if max_pages is None else max_pages + 1)
            for index, page in enumerate(itertools.islice(tif.pages, wanted)):
                if page is None:  # tifffile's placeholder for a page it could not parse
                    continue
                if first_only and frames:
                    log.info("%s has more than one page; reading the first (read_frames reads them all)", path)
                    break
                if max_pages is not None and index >= max_pages:
                    raise ImageReadError(f"{path}: TIFF has more than {max_pages} pages (the page limit); "
                                         f"raise it with --max-pages if the file is trusted")
                frames.append(_read_tiff_page(path, page, index, max_pixels))
        except (tifffile.TiffFileError, *_TIFF_ERRORS) as exc:
            raise _corrupt(path, "TIFF", exc) from None
    if not frames:
        raise ImageReadError(f"{path}: TIFF has no readable page (the first page offset points outside the "
                             f"file, or the file is truncated)")
    return frames


def _read_tiff_page(path: Path, page, index: int, max_pixels: int | None) -> RawFrame:
    """One TIFF page as HxWxC in a supported sample type."""
    import tifffile

    where = f"{path} (page {index + 1})" if index else str(path)
    check_pixels(path, page.imagewidth, page.imagelength, max_pixels)
    if page.samplesperpixel > 4:  # refused below anyway; a damaged tag must not size the buffer
        raise ImageReadError(f"{where}: unsupported TIFF layout ({page.samplesperpixel} samples per pixel; "
                             f"supported: gray, gray+alpha, RGB, RGBA, palette)")
    if page.imagedepth > 1:
        raise ImageReadError(f"{where}: volumetric TIFF pages are not supported")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # tifffile warns, then fills zeros, on truncated strips
            arr = page.asarray()
    except (tifffile.TiffFileError, RuntimeWarning, UserWarning, *_DECODE_ERRORS) as exc:
        raise _corrupt(path, "TIFF", exc) from None
    if page.axes.startswith("S"):  # planar layout: samples first
        arr = np.moveaxis(arr, 0, -1)
    arr = arr[..., None] if arr.ndim == 2 else arr
    photometric = int(page.photometric)
    mode = {0: "L", 1: "L", 2: "RGB", 3: "P"}.get(photometric)
    if mode is None or arr.ndim != 3 or arr.shape[-1] > 4:
        kind = getattr(page.photometric, "name", page.photometric)  # a damaged tag is a bare int
        raise ImageReadError(f"{where}: unsupported TIFF layout (photometric {kind}, "
                             f"shape {arr.shape}); supported: gray, gray+alpha, RGB, RGBA, palette")
    if photometric == 3:
        arr = _apply_colormap(page.colormap, arr[..., 0])
    elif photometric == 0 and arr.dtype.kind in "ui":  # min-is-white: invert to min-is-black
        arr[..., 0] = np.iinfo(arr.dtype).max - arr[..., 0]
    if arr.shape[-1] == 2:
        mode = "LA"
    elif arr.shape[-1] == 4:
        mode = "RGBA"
    tag = page.tags.get(274)  # Orientation
    icc = page.tags.get(34675)  # InterColorProfile
    return RawFrame(orient(_tiff_sample_type(where, arr), int(tag.value) if tag else 1), mode,
                    bytes(icc.value) if icc is not None and isinstance(icc.value, bytes) else None)


def _apply_colormap(colormap: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Map palette indices through a TIFF colormap (3xN, 16-bit) to RGB, 8-bit if it is 8-bit."""
    rgb = np.asarray(colormap).T[index]
    return (rgb // 257).astype(np.uint8) if np.all(rgb % 257 == 0) else rgb.astype(np.uint16)


def _tiff_sample_type(where: str, arr: np.ndarray) -> np.ndarray:
    """uint8 / uint16 kept, floats as float32 (unclipped), bilevel as uint8; others refused."""
    if arr.dtype in (np.uint8, np.uint16):
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if arr.dtype.type in _FLOAT_TYPES:
        return arr.astype(np.float32)
    raise ImageReadError(f"{where}: sample type {arr.dtype} is not supported "
                         f"(supported: uint8, uint16, float16/32/64)")


def write_tiff(fh: BinaryIO, arr: np.ndarray, icc_profile: bytes | None = None) -> None:
    """Write HxWxC (uint8/uint16/float32) as a deflate-compressed TIFF, a 2nd/4th channel as alpha."""
    write_tiff_pages(fh, [arr], [icc_profile])


def write_tiff_pages(fh: BinaryIO, arrays: list[np.ndarray], icc_profiles: list[bytes | None] | None = None) -> None:
    """Write HxWxC arrays as the pages of one TIFF, in order (what `read_tiff` reads back as frames),
    each with its ICC profile if given."""
    import tifffile

    with tifffile.TiffWriter(fh) as tif:
        for i, arr in enumerate(arrays):
            channels = arr.shape[-1]
            tif.write(arr[..., 0] if channels == 1 else arr, photometric="rgb" if channels >= 3 else "minisblack",
                      planarconfig="contig" if channels > 1 else None,
                      extrasamples=["unassalpha"] if channels in (2, 4) else None,
                      compression="zlib", metadata=None, iccprofile=icc_profiles[i] if icc_profiles else None)


# ---------------------------------------------------------------- NPY: numpy


def read_npy(path: Path, max_pixels: int | None) -> RawFrame:
    """Load an HxW or HxWxC array (never a pickle), checking its header before reading the data."""
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            version = fmt.read_magic(fh)
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = reader(fh)
    except (ValueError, EOFError, SyntaxError, struct.error, tokenize.TokenError, TypeError) as exc:
        raise ImageReadError(f"{path}: not a valid NPY file ({exc})") from None
    if dtype.hasobject:
        raise ImageReadError(f"{path}: NPY holds Python objects (a pickle); refused for safety")
    if dtype.kind not in "buf" or dtype.itemsize > 8:  # before np.load sizes a buffer by it
        raise ImageReadError(f"{path}: sample type {dtype} is not supported (supported: uint8, uint16, float16/32/64)")
    if len(shape) not in (2, 3) or (len(shape) == 3 and not 1 <= shape[2] <= 4):
        raise ImageReadError(f"{path}: NPY array has shape {shape}; expected HxW or HxWxC with C from 1 to 4")
    check_pixels(path, shape[1], shape[0], max_pixels)
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise _corrupt(path, "NPY", exc) from None
    arr = arr[..., None] if arr.ndim == 2 else arr
    arr = _tiff_sample_type(str(path), arr.astype(arr.dtype.newbyteorder("="), copy=False))
    return RawFrame(np.ascontiguousarray(arr), {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[-1]])


def write_npy(fh: BinaryIO, arr: np.ndarray) -> None:
    """Save HxWxC as NPY (a single gray channel as HxW)."""
    np.save(fh, arr[..., 0] if arr.shape[-1] == 1 else arr, allow_pickle=False)


def check_writable(path: Path, fmt: str, dtype: str, has_alpha: bool) -> None:
    """Refuse a sample type or an alpha channel the output format cannot store, naming a fix."""
    dtypes, alpha_ok = WRITABLE[fmt]
    if dtype not in dtypes:
        hint = "write .tiff or .npy" if dtype == "float32" else "write .png or .tiff"
        raise ImageWriteError(f"{path}: {fmt} cannot store {dtype} samples (it stores {', '.join(dtypes)}); "
                              f"{hint}, or choose another sample type with --dtype (dtype=...)")
    if has_alpha and not alpha_ok:
        raise ImageWriteError(f"{path}: {fmt} cannot store the alpha channel; write .png or .tiff, "
                              f"or drop the alpha (alpha=False)")
