"""A corpus of hostile image files: each gives a named error (naming the file) or a correct result.

The files are made at test time in a temporary folder (nothing binary is committed). Every case
goes through `imdenoise.io.images.read_image` and through the CLI (`imdenoise denoise X -o out.png
--method mean`), in-process and once as a real subprocess; none may raise anything but an
`ImDenoiseError`, print a traceback, or hang (pytest-timeout and subprocess timeouts).
Degenerate shapes (1x1, 1xN, Nx1, 100000x1) are also denoised with a classical filter and with a
shipped-architecture U-Net; NaN/inf float TIFFs read unclipped and refuse to be denoised clearly.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

import imdenoise
from imdenoise.cli.main import main as cli_main
from imdenoise.denoisers.network import ModelDenoiser
from imdenoise.errors import ImageReadError, ImageTooLargeError, ImDenoiseError
from imdenoise.io.images import read_image
from imdenoise.models.registry import build_model

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
pytestmark = pytest.mark.timeout(120)

RNG = np.random.default_rng(1234)
RGB = (RNG.random((40, 52, 3)) * 255).astype(np.uint8)
GRAY = (RNG.random((40, 52)) * 255).astype(np.uint8)


# ----------------------------------------------------------------------------- file builders


def _pil_bytes(arr: np.ndarray, fmt: str, **kw) -> bytes:
    bio = io.BytesIO()
    PILImage.fromarray(arr).save(bio, format=fmt, **kw)
    return bio.getvalue()


def _tiff_bytes(arr: np.ndarray, **kw) -> bytes:
    bio = io.BytesIO()
    tifffile.imwrite(bio, arr, **kw)
    return bio.getvalue()


def _flip(data: bytes, start: int, every: int) -> bytes:
    b = bytearray(data)
    for i in range(start, len(b), every):
        b[i] ^= 0xFF
    return bytes(b)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_bomb(width: int, height: int, depth: int = 8, color: int = 0) -> bytes:
    """A valid PNG header claiming width x height, with almost no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _png_chunk(b"IEND", b""))


def _jpeg_bomb() -> bytes:
    """A small JPEG whose SOF0 header is patched to claim 65000x65000 pixels."""
    b = bytearray(_pil_bytes(GRAY, "JPEG"))
    sof = b.index(b"\xff\xc0")
    b[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(b)


def _tiff_bomb() -> bytes:
    """An uncompressed TIFF whose ImageWidth/ImageLength tags are patched to 60000x60000."""
    data = bytearray(_tiff_bytes(np.zeros((8, 8), np.uint8)))
    with tifffile.TiffFile(io.BytesIO(bytes(data))) as tif:
        tags = tif.pages.first.tags
        fields = [(tags["ImageWidth"].valueoffset, tags["ImageWidth"].dtype),
                  (tags["ImageLength"].valueoffset, tags["ImageLength"].dtype)]
    for offset, dtype in fields:
        fmt = "<H" if int(dtype) == 3 else "<I"
        data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, 60000)
    return bytes(data)


def _npy_bomb() -> bytes:
    bio = io.BytesIO()
    np.lib.format.write_array_header_1_0(bio, {"descr": "|u1", "fortran_order": False, "shape": (100000, 100000)})
    return bio.getvalue() + b"\0" * 100


def _npy_void_bomb() -> bytes:
    """Shape 100x100 of 100 MB samples: np.load would try to allocate 1 TB."""
    bio = io.BytesIO()
    np.lib.format.write_array_header_1_0(bio, {"descr": "|V100000000", "fortran_order": False, "shape": (100, 100)})
    return bio.getvalue() + b"\0" * 100


def _npy_pickle() -> bytes:
    bio = io.BytesIO()
    np.save(bio, np.array([[object()]], dtype=object), allow_pickle=True)
    return bio.getvalue()


def _gif(frames: int) -> bytes:
    bio = io.BytesIO()
    ims = [PILImage.fromarray(RGB if k % 2 == 0 else 255 - RGB) for k in range(frames)]
    ims[0].save(bio, format="GIF", save_all=True, append_images=ims[1:])
    return bio.getvalue()


def _png16_rgba() -> bytes:
    import imagecodecs

    return imagecodecs.png_encode(RGBA16)


RGBA16 = (RNG.random((12, 17, 4)) * 65535).astype(np.uint16)
LA16 = (RNG.random((12, 17, 2)) * 65535).astype(np.uint16)
NANINF = RNG.random((32, 32, 3)).astype(np.float32) * 3 - 1  # values in [-1, 2]: unclipped
NANINF[3, 4, 0], NANINF[5, 6, 1], NANINF[7, 7, 2] = np.nan, np.inf, -np.inf
STRIP = (np.arange(100_000) % 251).astype(np.uint8)[None]  # 1 row, 100000 columns


@dataclass
class Case:
    """A hostile file: how to make it, and what reading it must give (an error class, or a check)."""

    name: str
    make: Callable[[Path], None]
    error: type[ImDenoiseError] | None = None  # None: must read, and `check` must hold
    check: Callable | None = None
    cli_ok: bool = False  # `denoise --method mean` succeeds (otherwise: a named error)


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data() if callable(data) else data)


def _symlink(target: str) -> Callable[[Path], None]:
    return lambda p: os.symlink(target, p)


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _check_u8(expected: np.ndarray, mode: str | None = None) -> Callable:
    def check(img) -> None:
        exp = expected[..., None] if expected.ndim == 2 else expected
        assert img.dtype == np.uint8 and img.data.shape == exp.shape
        np.testing.assert_array_equal(np.round(img.data * 255).astype(np.uint8), exp)
        if mode:
            assert img.mode == mode
    return check


def _check_cmyk(img) -> None:
    assert img.mode == "CMYK" and img.data.shape == RGB.shape and img.dtype == np.uint8
    assert np.abs(img.data * 255 - RGB.astype(np.float32)).mean() < 20  # JPEG loss only, colours right


def _check_naninf(img) -> None:
    assert img.dtype == np.float32 and img.data.shape == NANINF.shape
    np.testing.assert_array_equal(img.data, NANINF)  # NaN == NaN here; inf kept; no clipping


def _check_rgba16(img) -> None:
    assert img.dtype == np.uint16 and img.data.shape == (12, 17, 3)
    np.testing.assert_array_equal(np.round(img.data * 65535).astype(np.uint16), RGBA16[..., :3])
    np.testing.assert_array_equal(np.round(img.alpha * 65535).astype(np.uint16), RGBA16[..., 3])


def _check_la16(img) -> None:
    assert img.dtype == np.uint16 and img.data.shape == (12, 17, 1) and img.mode == "LA"
    np.testing.assert_array_equal(np.round(img.alpha * 65535).astype(np.uint16), LA16[..., 1])


_PNG = _pil_bytes(RGB, "PNG")
_JPG = _pil_bytes(RGB, "JPEG")
_TIF = _tiff_bytes(RGB)
_TIFZ = _tiff_bytes(RGB, compression="zlib", tile=(16, 16))

CASES = [
    # truncated and corrupted files of each format
    Case("truncated.png", _bytes(_PNG[: len(_PNG) // 2]), ImageReadError),
    Case("truncated_header.png", _bytes(_PNG[:20]), ImageReadError),
    Case("corrupt_idat.png", _bytes(_flip(_PNG, 100, 37)), ImageReadError),
    Case("truncated16.png", _bytes(lambda: _png16_rgba()[:300]), ImageReadError),
    Case("truncated.jpg", _bytes(_JPG[: len(_JPG) // 2]), ImageReadError),
    Case("truncated_header.jpg", _bytes(_JPG[:10]), ImageReadError),
    Case("corrupt_scan.jpg", _bytes(_flip(_JPG, 300, 23)), ImageReadError),
    Case("truncated.tif", _bytes(_TIF[: len(_TIF) // 2]), ImageReadError),
    Case("truncated_header.tif", _bytes(_TIF[:12]), ImageReadError),
    Case("corrupt_ifd.tif", _bytes(_flip(_TIF, 8, 3)), ImageReadError),
    Case("corrupt_tiles.tif", _bytes(_flip(_TIFZ, 400, 29)), ImageReadError),
    Case("empty.png", _bytes(b""), ImageReadError),
    Case("text.png", _bytes(b"hello, I am not an image\n"), ImageReadError),
    # colour spaces and formats that are not plain RGB
    Case("cmyk.jpg", lambda p: PILImage.fromarray(RGB).convert("CMYK").save(p), None, _check_cmyk, cli_ok=True),
    Case("animated.gif", _bytes(lambda: _gif(3)), ImageReadError),  # GIF is not a supported type
    Case("gif_named.png", _bytes(lambda: _gif(2)), ImageReadError),
    Case("png_named.jpg", _bytes(_PNG), None, _check_u8(RGB, "RGB"), cli_ok=True),  # read by content
    Case("jpeg_named.tif", _bytes(_JPG), None, lambda img: img.data.shape == RGB.shape, cli_ok=True),
    # degenerate shapes
    Case("1x1.png", lambda p: PILImage.fromarray(np.array([[7]], np.uint8)).save(p), None,
         _check_u8(np.array([[7]], np.uint8), "L")),
    Case("1x257.png", lambda p: PILImage.fromarray(GRAY.reshape(-1)[None, :257]).save(p), None,
         _check_u8(GRAY.reshape(-1)[None, :257])),
    Case("257x1.png", lambda p: PILImage.fromarray(GRAY.reshape(-1)[:257, None]).save(p), None,
         _check_u8(GRAY.reshape(-1)[:257, None])),
    Case("strip_100000x1.png", lambda p: PILImage.fromarray(STRIP).save(p), None, _check_u8(STRIP)),
    # float, 16-bit and alpha
    Case("nan_inf.tif", lambda p: tifffile.imwrite(p, NANINF, photometric="rgb"), None, _check_naninf),
    Case("rgba16.png", _bytes(_png16_rgba), None, _check_rgba16, cli_ok=True),
    Case("la16.tif", lambda p: tifffile.imwrite(p, LA16, photometric="minisblack", extrasamples=["unassalpha"]),
         None, _check_la16, cli_ok=True),
    # special files: must not hang or read forever
    Case("dev_zero.png", _symlink("/dev/zero"), ImageReadError),
    Case("dev_urandom.jpg", _symlink("/dev/urandom"), ImageReadError),
    Case("fifo.png", _fifo, ImageReadError),
    Case("dangling.png", _symlink("/nonexistent/image.png"), ImageReadError),
    Case("folder.png", lambda p: p.mkdir(), ImageReadError),
    # pixel-count bombs: refused from the header, before any decoding
    Case("bomb.png", _bytes(_png_bomb(100_000, 100_000)), ImageTooLargeError),
    Case("bomb16.png", _bytes(_png_bomb(100_000, 100_000, depth=16, color=2)), ImageTooLargeError),
    Case("bomb_wide_strip.png", _bytes(_png_bomb(200_000_000, 1)), ImageTooLargeError),
    Case("bomb.jpg", _bytes(_jpeg_bomb), ImageTooLargeError),
    Case("bomb.tif", _bytes(_tiff_bomb), ImageTooLargeError),
    Case("bomb.npy", _bytes(_npy_bomb), ImageTooLargeError),
    Case("void_bomb.npy", _bytes(_npy_void_bomb), ImageReadError),
    Case("pickle.npy", _bytes(_npy_pickle), ImageReadError),
]
BY_NAME = {c.name: c for c in CASES}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    for case in CASES:
        case.make(folder / case.name)
    return folder


# ----------------------------------------------------------------------------- read_image


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_read_image_gives_named_error_or_correct_result(corpus: Path, name: str) -> None:
    case, path = BY_NAME[name], corpus / name
    if case.error is None:
        img = read_image(path)
        result = case.check(img)
        assert result is None or result is True
        return
    with pytest.raises(case.error) as info:
        read_image(path)
    assert name in str(info.value), info.value


def test_pixel_limit_counts_pixels_not_sides(corpus: Path) -> None:
    """A 1-pixel-wide strip is judged by its pixel count (100000), not by its longest side."""
    strip = corpus / "strip_100000x1.png"
    assert read_image(strip, max_pixels=100_000).data.shape == (1, 100_000, 1)
    with pytest.raises(ImageTooLargeError, match="strip_100000x1.png: image is 100000x1"):
        read_image(strip, max_pixels=99_999)
    assert read_image(strip, max_pixels=None).width == 100_000


# ----------------------------------------------------------------------------- the CLI


def _cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    try:
        cli_main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", list(BY_NAME))
def test_cli_denoise_names_the_file_or_succeeds(corpus: Path, tmp_path: Path, name: str,
                                                capsys: pytest.CaptureFixture) -> None:
    case = BY_NAME[name]
    out = tmp_path / "out.png"
    code, stdout, stderr = _cli(["denoise", str(corpus / name), "-o", str(out), "--method", "mean"], capsys)
    assert "Traceback" not in stderr + stdout
    if case.cli_ok:
        assert code == 0, stderr
        assert read_image(out).data.shape[:2] == read_image(corpus / name).data.shape[:2]
    else:
        assert code == 2, (code, stderr)
        assert stderr.startswith("error: ") and str(corpus / name) in stderr, stderr
        assert not out.exists()


def test_cli_subprocess_whole_corpus_no_traceback_no_hang(corpus: Path, tmp_path: Path) -> None:
    """All hostile files in one real `imdenoise denoise` run: good ones written, each bad one named.

    (A dangling link or a folder among the inputs stops the run before it starts, with its name:
    tested above, one at a time.)"""
    cases = [c for c in CASES if c.name not in ("dangling.png", "folder.png")]
    files = [str(corpus / c.name) for c in cases]
    proc = subprocess.run([PY, "-m", "imdenoise", "denoise", *files, "-o", str(tmp_path / "out"),
                           "--method", "mean"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert proc.returncode == 2
    for case in cases:
        written = (tmp_path / "out" / case.name).exists()
        if case.cli_ok:
            assert written, case.name
        else:
            assert f"error: {corpus / case.name}" in proc.stderr, case.name


# ----------------------------------------------------------------------------- denoising odd shapes


@pytest.fixture(scope="module")
def unet_gray() -> ModelDenoiser:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return ModelDenoiser(build_model("unet", in_channels=1), "unet-random")


@pytest.fixture(scope="module")
def unet_color() -> ModelDenoiser:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    return ModelDenoiser(build_model("unet", in_channels=3), "unet-random-color")


@pytest.mark.parametrize("shape", [(1, 1), (1, 257), (257, 1), (1, 1, 3), (1, 33, 3), (2, 3)])
def test_tiny_and_thin_images_denoise_with_given_sigma(shape, unet_gray, unet_color) -> None:
    img = RNG.random(shape).astype(np.float32)
    median = imdenoise.load("median").denoise(img, sigma=25)
    assert median.shape == img.shape and np.isfinite(median).all()
    net = unet_color if len(shape) == 3 else unet_gray
    out = net.denoise(img, sigma=25)
    assert out.shape == img.shape and out.dtype == np.float32 and np.isfinite(out).all()


def test_thin_images_blind_is_a_clear_error(unet_gray) -> None:
    """The noise level cannot be estimated from one row: a named error that says to give sigma."""
    row = RNG.random((1, 500)).astype(np.float32)
    for denoiser in (imdenoise.load("median"), unet_gray):
        with pytest.raises(ImDenoiseError, match="500x1 image.*give sigma"):
            denoiser.denoise(row)


def test_thin_strip_through_tiled_unet(unet_gray) -> None:
    """A 1x5000 strip is tiled (default tile 1024) by a shipped-architecture U-Net: shape kept."""
    row = RNG.random((1, 5000)).astype(np.float32)
    out = unet_gray.denoise(row, sigma=15)
    assert out.shape == (1, 5000) and np.isfinite(out).all()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_strip_100000x1_through_tiled_unet(corpus: Path, unet_gray) -> None:
    """The 1x100000 strip file through the U-Net (about 100 tiles: minutes on a loaded 2-core CPU)."""
    img = read_image(corpus / "strip_100000x1.png")
    out = unet_gray.denoise(img.data, sigma=15)
    assert out.shape == (1, 100_000, 1) and np.isfinite(out).all()


def test_strip_100000x1_classical_and_cli(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    img = read_image(corpus / "strip_100000x1.png")
    med = imdenoise.load("median").denoise(img.data, sigma=15)
    assert med.shape == (1, 100_000, 1)
    out = tmp_path / "strip.png"
    code, _, err = _cli(["denoise", str(corpus / "strip_100000x1.png"), "-o", str(out), "--method", "mean",
                         "--sigma", "15"], capsys)
    assert code == 0, err
    assert read_image(out).data.shape == (1, 100_000, 1)


def test_nan_inf_tiff_reads_but_denoising_says_nan(corpus: Path, unet_color, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    img = read_image(corpus / "nan_inf.tif")
    for denoiser in (unet_color, imdenoise.load("mean"), imdenoise.load("nlm")):
        for sigma in (None, 25):
            with pytest.raises(ImDenoiseError, match="NaN or infinite"):
                denoiser.denoise(img.data, sigma)
    with pytest.raises(ImDenoiseError, match="NaN or infinite"):
        imdenoise.noise.models.estimate_sigma(img.data)
    code, _, err = _cli(["denoise", str(corpus / "nan_inf.tif"), "-o", str(tmp_path / "o.tif"),
                         "--method", "mean", "--sigma", "20"], capsys)
    assert code == 2 and "nan_inf.tif" in err and "NaN" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- untrusted weights and configs


class _Evil:
    """Unpickling this runs a shell command (which must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_pickle(path: Path, marker: Path, wrap: bool = True) -> Path:
    import torch

    torch.save({"model": {"w": _Evil(marker)}} if wrap else _Evil(marker), path)
    return path


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt", ".bin"])
def test_malicious_pickle_weights_refused_without_running(tmp_path: Path, suffix: str,
                                                         capsys: pytest.CaptureFixture) -> None:
    from imdenoise.errors import WeightsError
    from imdenoise.models.weights import load_model

    marker = tmp_path / "PWNED"
    evil = _evil_pickle(tmp_path / f"evil{suffix}", marker)
    with pytest.raises(WeightsError, match=f"evil{suffix}: refused"):
        load_model(evil, "unet")
    with pytest.raises(WeightsError, match="refused"):
        imdenoise.load(str(evil), arch="unet")
    png = tmp_path / "in.png"
    PILImage.fromarray(GRAY).save(png)
    code, _, err = _cli(["denoise", str(png), "-o", str(tmp_path / "o.png"), "--model", str(evil), "--arch", "unet"],
                        capsys)
    assert code == 2 and f"error: {evil}: refused" in err and "Traceback" not in err
    assert not marker.exists()


def test_malicious_pickle_checkpoint_refused_without_running(tmp_path: Path) -> None:
    """A checkpoint with a matching checksum but a code-running pickle: refused, named, not run."""
    from imdenoise.errors import WeightsError
    from imdenoise.training import checkpoints

    marker = tmp_path / "PWNED"
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    path = _evil_pickle(run / "checkpoints" / "ckpt-00000009.pt", marker)
    path.with_name(path.name + ".sha256").write_text(checkpoints._sha256(path) + "\n")
    assert checkpoints.latest_good(run) == path  # the checksum only proves integrity, not safety
    with pytest.raises(WeightsError, match="ckpt-00000009.pt"):
        checkpoints.load_checkpoint(path)
    assert not marker.exists()


def _safetensors(header: bytes, body: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + body


SAFETENSORS_CASES = {
    "huge_length": _safetensors(b"{}", length=2**63),
    "length_past_end": _safetensors(b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', length=10**6),
    "not_json": _safetensors(b"__import__('os').system('touch PWNED')  "),
    "offsets_past_end": _safetensors(b'{"w":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}',
                                     b"\0" * 8),
    "shape_lies": _safetensors(b'{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}',
                               b"\0" * 8),
    "bad_dtype": _safetensors(b'{"w":{"dtype":"PICKLE","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
    "card_not_json": _safetensors(b'{"__metadata__":{"imdenoise.card":"!!python/object:os.system"},'
                                  b'"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
    "card_wrong_arch": _safetensors(b'{"__metadata__":{"imdenoise.card":"{\\"name\\":\\"x\\",\\"architecture\\":'
                                    b'\\"os.system\\",\\"in_channels\\":1}"},'
                                    b'"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8),
    "pickle_inside": b"\x80\x04\x95" + b"\0" * 64,
}


@pytest.mark.parametrize("name", list(SAFETENSORS_CASES))
def test_malicious_safetensors_header_refused(tmp_path: Path, name: str, capsys: pytest.CaptureFixture) -> None:
    from imdenoise.models.weights import load_model, read_card

    path = tmp_path / f"{name}.safetensors"
    path.write_bytes(SAFETENSORS_CASES[name])
    with pytest.raises(ImDenoiseError, match=name):
        load_model(path)
    if name != "card_wrong_arch":  # that card is well-formed; building its architecture fails
        with pytest.raises(ImDenoiseError, match=name):
            read_card(path)
    png = tmp_path / "in.png"
    PILImage.fromarray(GRAY).save(png)
    code, _, err = _cli(["denoise", str(png), "-o", str(tmp_path / "o.png"), "--model", str(path)], capsys)
    assert code == 2 and f"error: {path}" in err and "Traceback" not in err, err
    assert not (tmp_path / "PWNED").exists()


def test_yaml_python_tags_execute_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    from imdenoise.errors import ConfigError
    from imdenoise.training.config import load_config

    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "PWNED"
    for text in (f"!!python/object/apply:os.system ['touch {marker}']\n",
                 f"name: !!python/object/apply:os.system ['touch {marker}']\ndata: {{train: [x]}}\n",
                 f"data: !!python/object/new:subprocess.Popen [['touch', '{marker}']]\n",
                 "name: !!python/name:os.system\ndata: {train: [x]}\n"):
        cfg = tmp_path / "evil.yaml"
        cfg.write_text(text)
        with pytest.raises(ConfigError, match="evil.yaml: not valid YAML"):
            load_config(cfg)
        code, _, err = _cli(["train", str(cfg)], capsys)
        assert code == 2 and "error: " in err and "evil.yaml" in err and "Traceback" not in err, err
    # a --set value is parsed with yaml.safe_load: a python tag stays an inert string
    ok = load_config(raw={"data": {"train": ["x"]}}, overrides=[f"name=!!python/object/apply:os.system ['touch {marker}']"])
    assert ok.name.startswith("!!python/object/apply")
    assert not marker.exists()


# ----------------------------------------------------------------------------- NUL bytes in argv

NUL_ARGVS = [
    ["denoise", "a\x00.png", "-o", "o.png", "--method", "mean"],
    ["denoise", "{img}", "-o", "o\x00.png", "--method", "mean"],
    ["denoise", "{img}", "-o", "o.png", "--method", "me\x00an"],
    ["denoise", "{img}", "-o", "o.png", "--sigma", "2\x005"],
    ["noise", "x\x00.png", "-o", "y.png", "--noise", "gaussian:5"],
    ["noise", "{img}", "-o", "y.png", "--noise", "gauss\x00ian:5"],
    ["metrics", "a\x00", "{img}"],
    ["train", "c\x00.yaml"],
    ["train", "--resume", "r\x00un"],
    ["export", "gr\x00ay", "-o", "x.onnx"],
    ["eval", "--method", "mean", "--dataset", "d\x00"],
    ["zeroshot", "{img}", "-o", "z\x00.png"],
    ["\x00"],
]


@pytest.mark.parametrize("argv", NUL_ARGVS, ids=lambda a: " ".join(a).replace("\x00", "<NUL>"))
def test_argv_with_nul_bytes_gives_a_clear_error(argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    """NUL bytes kept in every kind of argument (paths, options, specs): exit 2 with a one-line
    `error:`/`Error:` message, never a traceback (os calls raise ValueError "embedded null byte").
    A real argv from execve cannot hold NUL, so tests/unit/test_properties.py's random-argv property
    strips them; this test passes them in-process, where a Python caller can."""
    img = tmp_path / "img.png"
    PILImage.fromarray(GRAY[:24, :24]).save(img)
    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{img}", str(img)) for a in argv]
    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    out, err = capsys.readouterr()
    assert info.value.code == 2, (argv, info.value.code, err)
    assert "Traceback" not in out + err and "error" in err.lower(), err
    assert not any("\x00" in p.name for p in tmp_path.iterdir())  # nothing written under a NUL name
