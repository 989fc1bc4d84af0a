"""Image IO: round trips for every format, bit depth and mode; bad inputs; safe, atomic writes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageOps

from imdenoise.atomic import new_file_mode
from imdenoise.errors import ImageReadError, ImageTooLargeError, ImageWriteError, ImDenoiseError, OutputExistsError
from imdenoise.io import formats as io_formats
from imdenoise.io import images as imio
from imdenoise.io.images import read_frames, read_image, write_image
from imdenoise.paths import ASSETS_DIR

ASSETS = ASSETS_DIR
MAX = {"uint8": 255, "uint16": 65535}


def _random(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, MAX[dtype] + 1, shape).astype(dtype)


def _samples(img: imio.Image) -> np.ndarray:
    """Back to the stored integer samples, alpha as the last channel."""
    planes = [img.data] + ([img.alpha[..., None]] if img.alpha is not None else [])
    return np.round(np.concatenate(planes, axis=-1) * MAX[img.dtype.name]).astype(img.dtype)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_claiming(width: int, height: int, depth: int = 8, color: int = 0) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def _tiff_claiming(width: int, height: int) -> bytes:
    """A tiny little-endian TIFF whose single IFD claims width x height 8-bit gray pixels."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, min(width * height, 2**32 - 1))]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", t, k, 1, v) for t, k, v in tags)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("ext", ["png", "tif", "npy"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("channels,mode", [(1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_lossless_round_trip_is_bit_exact(tmp_path, ext, dtype, channels, mode):
    samples = _random(dtype, (13, 17, channels))
    img = read_image(write_image(tmp_path / f"a.{ext}", samples))
    assert img.dtype == np.dtype(dtype) and img.mode == mode
    assert img.data.dtype == np.float32 and img.data.shape == (13, 17, 1 if channels < 3 else 3)
    assert (img.alpha is not None) == (channels in (2, 4))
    assert np.array_equal(_samples(img), samples)
    # written back like its source: same depth, same alpha, same samples
    again = read_image(write_image(tmp_path / f"b.{ext}", img.data, like=img))
    assert again.dtype == img.dtype and np.array_equal(_samples(again), samples)


def test_16bit_png_stays_16bit_in_the_file(tmp_path):
    samples = _random("uint16", (9, 11, 3))
    path = write_image(tmp_path / "c.png", samples)
    depth, color = path.read_bytes()[24], path.read_bytes()[25]
    assert (depth, color) == (16, 2)
    img = read_image(path)
    assert np.array_equal(img.data, samples.astype(np.float32) / 65535)


def test_16bit_png_from_other_writers_is_read_exactly(tmp_path):
    import imagecodecs

    rgb = _random("uint16", (8, 10, 3), seed=1)
    (tmp_path / "rgb16.png").write_bytes(imagecodecs.png_encode(rgb))  # Pillow alone would give 8 bits
    gray = _random("uint16", (8, 10), seed=2)
    PILImage.fromarray(gray).save(tmp_path / "gray16.png")  # Pillow's I;16 writer
    assert np.array_equal(_samples(read_image(tmp_path / "rgb16.png")), rgb)
    img = read_image(tmp_path / "gray16.png")
    assert img.mode == "L" and img.dtype == np.uint16 and np.array_equal(_samples(img)[..., 0], gray)


def test_16bit_tiff_file_is_uint16(tmp_path):
    img = read_image(write_image(tmp_path / "d.tiff", _random("uint16", (6, 7, 3))))
    out = write_image(tmp_path / "e.tif", img.data, like=img)
    assert tifffile.imread(out).dtype == np.uint16


@pytest.mark.parametrize("ext", ["tif", "npy"])
def test_float_stays_float_and_unclipped(tmp_path, ext):
    data = np.random.default_rng(3).normal(0.5, 1.0, (10, 12, 3)).astype(np.float32)
    assert data.min() < 0 and data.max() > 1
    img = read_image(write_image(tmp_path / f"f.{ext}", data))
    assert img.dtype == np.float32 and np.array_equal(img.data, data)
    again = read_image(write_image(tmp_path / f"g.{ext}", img.data * 2, like=img))
    assert again.dtype == np.float32 and np.array_equal(again.data, data * 2)


def test_float_tiff_from_other_writers(tmp_path):
    data = np.linspace(-3, 4, 60, dtype=np.float64).reshape(6, 10)
    tifffile.imwrite(tmp_path / "f64.tif", data)
    img = read_image(tmp_path / "f64.tif")
    assert img.dtype == np.float32 and img.mode == "L"
    np.testing.assert_allclose(img.data[..., 0], data, rtol=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_bmp_round_trip(tmp_path, channels):
    samples = _random("uint8", (9, 13, channels))
    img = read_image(write_image(tmp_path / "h.bmp", samples))
    assert img.dtype == np.uint8 and np.array_equal(_samples(img), samples)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_round_trip_is_close(tmp_path, channels):
    smooth = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64, 1)
    data = np.repeat(smooth, channels, axis=-1)
    img = read_image(write_image(tmp_path / "i.jpg", data))
    assert img.dtype == np.uint8 and img.data.shape == data.shape
    assert np.abs(img.data - data).mean() < 2 / 255


def test_alpha_set_aside_and_restored(tmp_path):
    rgba = _random("uint8", (12, 14, 4), seed=4)
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = read_image(tmp_path / "rgba.png")
    assert img.mode == "RGBA" and img.data.shape == (12, 14, 3) and img.alpha.shape == (12, 14)
    out = write_image(tmp_path / "out.png", 1.0 - img.data, like=img)
    with PILImage.open(out) as back:
        assert back.mode == "RGBA"
        assert np.array_equal(np.asarray(back)[..., 3], rgba[..., 3])
    dropped = read_image(write_image(tmp_path / "no_alpha.png", img.data, like=img, alpha=False))
    assert dropped.alpha is None and dropped.mode == "RGB"


def test_palette_png_reads_as_rgb_and_rgba(tmp_path):
    index = (np.arange(8 * 8).reshape(8, 8) % 4).astype(np.uint8)
    colors = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
    pal = PILImage.fromarray(index, "P")
    pal.putpalette(colors)
    pal.save(tmp_path / "p.png")
    img = read_image(tmp_path / "p.png")
    expected = np.array(colors, np.uint8).reshape(4, 3)[index]
    assert img.mode == "P" and img.alpha is None and np.array_equal(_samples(img), expected)
    pal.save(tmp_path / "pt.png", transparency=0)  # palette entry 0 transparent
    img = read_image(tmp_path / "pt.png")
    assert img.alpha is not None and np.array_equal(img.alpha == 0, index == 0)


def test_bilevel_and_gray_alpha_png(tmp_path):
    bits = np.random.default_rng(5).random((10, 10)) > 0.5
    PILImage.fromarray(bits).save(tmp_path / "bits.png")
    img = read_image(tmp_path / "bits.png")
    assert img.mode == "1" and img.dtype == np.uint8 and np.array_equal(img.data[..., 0] == 1, bits)
    la = _random("uint8", (5, 6, 2))
    PILImage.fromarray(la, "LA").save(tmp_path / "la.png")
    img = read_image(tmp_path / "la.png")
    assert img.mode == "LA" and img.data.shape == (5, 6, 1) and np.array_equal(_samples(img), la)


def test_exif_orientation_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red, right half blue
    arr[:, 20:] = (0, 0, 255)
    im = PILImage.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    im.save(tmp_path / "o.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "o.jpg")
    assert img.data.shape == (40, 20, 3)
    with PILImage.open(tmp_path / "o.jpg") as ref:
        expected = np.asarray(ImageOps.exif_transpose(ref)) / 255.0
    np.testing.assert_allclose(img.data, expected, atol=1e-6)
    assert img.data[5, 10, 0] > 0.8 and img.data[35, 10, 2] > 0.8  # red on top, blue below


def _profile(space: str) -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes()


def test_photo_keeps_its_colour_profile_and_exif(tmp_path):
    """A camera JPEG's ICC profile (e.g. Display P3: without it colours shift) and EXIF (camera, date,
    in the Exif sub-IFD) are written back; the orientation tag is gone, as the pixels are upright."""
    icc = _profile("sRGB")
    im = PILImage.fromarray(_random("uint8", (20, 30, 3), seed=3))
    exif = im.getexif()
    exif[0x0112] = 6
    exif[0x010F] = "Canon"
    exif.get_ifd(0x8769)[0x9003] = "2026:12:07 10:00:00"  # DateTimeOriginal
    im.save(tmp_path / "photo.jpg", exif=exif, icc_profile=icc, quality=95)
    src = read_image(tmp_path / "photo.jpg")
    assert src.icc_profile == icc and src.data.shape == (30, 20, 3)
    for ext in ("jpg", "png"):
        with PILImage.open(write_image(tmp_path / f"out.{ext}", src.data, like=src)) as out:
            kept = out.getexif()
            assert out.info.get("icc_profile") == icc and out.size == (20, 30)
            assert kept.get(0x010F) == "Canon" and kept.get_ifd(0x8769).get(0x9003) == "2026:12:07 10:00:00"
            assert 0x0112 not in kept  # upright now: a viewer must not turn it again
        assert read_image(tmp_path / f"out.{ext}").data.shape == (30, 20, 3)
    assert read_image(write_image(tmp_path / "out.tif", src.data, like=src)).icc_profile == icc
    assert read_image(write_image(tmp_path / "out.bmp", src.data, like=src)).icc_profile is None  # BMP holds none


def test_metadata_a_writer_refuses_never_costs_the_image(tmp_path, monkeypatch, caplog):
    """If the format's encoder refuses the source's metadata, the pixels are still written, without it."""
    im = PILImage.fromarray(_random("uint8", (6, 7, 3), seed=5))
    exif = im.getexif()
    exif[0x010F] = "Canon"
    im.save(tmp_path / "src.jpg", exif=exif, quality=95)
    src = read_image(tmp_path / "src.jpg")
    save = PILImage.Image.save

    def picky_save(self, fp, format=None, **params):
        if "exif" in params:
            fp.write(b"half a file")
            raise ValueError("EXIF data is too long")
        return save(self, fp, format, **params)

    monkeypatch.setattr(PILImage.Image, "save", picky_save)
    out = write_image(tmp_path / "out.jpg", src.data, like=src)
    assert "source metadata not written" in caplog.text
    again = read_image(out)
    assert again.exif is None and np.abs(again.data - src.data).max() < 0.05


def test_a_colour_profile_is_only_written_where_it_fits(tmp_path):
    """An RGB profile is not attached to gray output, nor a CMYK source's profile to its RGB pixels."""
    im = PILImage.fromarray(_random("uint8", (8, 9, 3), seed=4))
    im.save(tmp_path / "rgb.png", icc_profile=_profile("sRGB"))
    src = read_image(tmp_path / "rgb.png")
    with PILImage.open(write_image(tmp_path / "gray.png", src.data.mean(-1), like=src)) as out:
        assert "icc_profile" not in out.info
    assert io_formats.icc_fits(_profile("sRGB"), 3) and not io_formats.icc_fits(_profile("sRGB"), 1)
    assert not io_formats.icc_fits(b"\0" * 16 + b"CMYK" + b"\0" * 108, 3) and not io_formats.icc_fits(b"short", 3)


def test_multipage_tiff_frames(tmp_path):
    stack = _random("uint16", (3, 8, 9), seed=6)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    frames = read_frames(tmp_path / "stack.tif")
    assert len(frames) == 3
    for frame, page in zip(frames, stack):
        assert frame.dtype == np.uint16 and np.array_equal(_samples(frame)[..., 0], page)
    assert np.array_equal(read_image(tmp_path / "stack.tif").data, frames[0].data)
    assert len(read_frames(write_image(tmp_path / "one.png", stack[0]))) == 1


def test_multipage_tiff_write_round_trips_each_page(tmp_path):
    stack = _random("uint16", (3, 8, 9), seed=7)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    frames = read_frames(tmp_path / "stack.tif")
    out = imio.write_frames(tmp_path / "copy.tif", [f.data for f in frames], like=frames)
    again = read_frames(out)
    assert len(again) == 3
    for frame, page in zip(again, stack):
        assert frame.dtype == np.uint16 and np.array_equal(_samples(frame)[..., 0], page)
    with pytest.raises(ImageWriteError, match="3 frames can only be written to a multi-page"):
        imio.write_frames(tmp_path / "copy.png", [f.data for f in frames])
    with pytest.raises(OutputExistsError):
        imio.write_frames(out, [f.data for f in frames])


def test_planar_rgb_tiff(tmp_path):
    planes = _random("uint8", (3, 6, 7), seed=7)
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    img = read_image(tmp_path / "planar.tif")
    assert img.mode == "RGB" and np.array_equal(_samples(img), np.moveaxis(planes, 0, -1))


def test_bundled_sample_images():
    color, gray = read_image(ASSETS / "sample.png"), read_image(ASSETS / "sample_gray.png")
    assert color.data.shape[2] == 3 and gray.data.shape == (256, 256, 1)
    assert color.dtype == gray.dtype == np.uint8
    assert (ASSETS / "sample.png").stat().st_size <= 500_000


# ---------------------------------------------------------------- bad inputs


def _error(path: Path, kind: type[ImDenoiseError] = ImageReadError, **kwargs) -> str:
    with pytest.raises(kind) as info:
        read_image(path, **kwargs)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "missing.png")


def test_directory(tmp_path):
    (tmp_path / "folder.png").mkdir()
    assert "directory" in _error(tmp_path / "folder.png")


def test_empty_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty file" in _error(tmp_path / "empty.png")


def test_text_file_named_png(tmp_path):
    (tmp_path / "notes.png").write_text("not an image at all\n")
    assert "not a PNG file" in _error(tmp_path / "notes.png")


def test_unsupported_extension(tmp_path):
    (tmp_path / "anim.gif").write_bytes(b"GIF89a" + b"\0" * 20)
    assert "unsupported file type '.gif'" in _error(tmp_path / "anim.gif")


@pytest.mark.parametrize("ext,depth", [("png", "uint8"), ("png", "uint16"), ("jpg", "uint8"),
                                       ("tif", "uint8"), ("tif", "uint16")])
def test_truncated_file(tmp_path, ext, depth):
    whole = write_image(tmp_path / f"whole.{ext}", _random(depth, (120, 160, 3), seed=8)).read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(whole[: len(whole) // 2])
    assert "truncated or corrupt" in _error(tmp_path / f"cut.{ext}")


def test_truncated_uncompressed_tiff(tmp_path):
    tifffile.imwrite(tmp_path / "raw.tif", _random("uint8", (100, 100)))
    whole = (tmp_path / "raw.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(whole[:5000])
    assert "truncated or corrupt" in _error(tmp_path / "cut.tif")


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "whole.npy", np.zeros((50, 50), np.float32))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "whole.npy").read_bytes()[:500])
    assert "truncated or corrupt" in _error(tmp_path / "cut.npy")


@pytest.mark.parametrize("depth,color", [(8, 0), (16, 2)])
def test_png_header_claiming_100000_squared_pixels(tmp_path, depth, color):
    (tmp_path / "bomb.png").write_bytes(_png_claiming(100_000, 100_000, depth, color))
    message = _error(tmp_path / "bomb.png", ImageTooLargeError)
    assert "100000x100000" in message and "limit" in message


def test_tiff_and_npy_headers_claiming_too_many_pixels(tmp_path):
    (tmp_path / "bomb.tif").write_bytes(_tiff_claiming(100_000, 100_000))
    assert "100000x100000" in _error(tmp_path / "bomb.tif", ImageTooLargeError)
    with open(tmp_path / "bomb.npy", "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False, "shape": (100_000, 100_000)})
    assert "100000x100000" in _error(tmp_path / "bomb.npy", ImageTooLargeError)


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    path = write_image(tmp_path / "small.png", _random("uint8", (20, 30)))
    assert "20" in _error(path, ImageTooLargeError, max_pixels=500)
    assert read_image(path, max_pixels=600).data.shape == (20, 30, 1)
    assert read_image(tmp_path / "small.png", max_pixels=None).width == 30
    monkeypatch.setenv("IMDENOISE_MAX_PIXELS", "5e6")
    assert imio._max_pixels_from_env() == 5_000_000
    monkeypatch.setenv("IMDENOISE_MAX_PIXELS", "none")
    assert imio._max_pixels_from_env() is None
    monkeypatch.setenv("IMDENOISE_MAX_PIXELS", "lots")
    assert imio._max_pixels_from_env() == imio._BUILTIN_MAX_PIXELS


def test_pillow_global_limit_untouched(tmp_path):
    before = PILImage.MAX_IMAGE_PIXELS
    (tmp_path / "bomb.png").write_bytes(_png_claiming(100_000, 100_000))
    _error(tmp_path / "bomb.png", ImageTooLargeError)
    assert PILImage.MAX_IMAGE_PIXELS == before


def test_pickled_npy_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    assert "pickle" in _error(tmp_path / "obj.npy")


def test_unsupported_tiff_sample_type(tmp_path):
    tifffile.imwrite(tmp_path / "int16.tif", np.zeros((4, 4), np.int16))
    assert "int16" in _error(tmp_path / "int16.tif")


# ---------------------------------------------------------------- writing


def test_existing_output_refused_and_kept(tmp_path):
    out = tmp_path / "out.png"
    write_image(out, np.zeros((4, 4)))
    before = out.read_bytes()
    with pytest.raises(OutputExistsError, match="--overwrite") as info:
        write_image(out, np.ones((4, 4)))
    assert str(out) in str(info.value) and out.read_bytes() == before
    write_image(out, np.ones((4, 4)), overwrite=True)
    assert read_image(out).data.min() == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]


def test_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    write_image(tmp_path / "ok.tif", np.zeros((5, 5, 3), np.float32))

    def broken_writer(fh, arr, fmt, **metadata):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(io_formats, "write_pillow", broken_writer)
    with pytest.raises(ImageWriteError, match="disk full"):
        write_image(tmp_path / "bad.png", np.zeros((5, 5)))
    assert [p.name for p in tmp_path.iterdir()] == ["ok.tif"]


def test_new_file_permissions_follow_umask(tmp_path):
    out = write_image(tmp_path / "perm.png", np.zeros((3, 3)))
    assert out.stat().st_mode & 0o777 == new_file_mode()


def test_integer_output_clipped_only_at_write(tmp_path):
    data = np.array([[-0.5, 0.25, 1.5, np.nan]], np.float32)
    img = read_image(write_image(tmp_path / "clip.png", data))
    assert np.array_equal(_samples(img)[0, :, 0], [0, 64, 255, 0])
    assert np.isclose(data[0, 0], -0.5)  # the caller's array is untouched


def test_dtype_override_and_defaults(tmp_path):
    src = read_image(write_image(tmp_path / "src.png", _random("uint16", (6, 6, 3))))
    assert read_image(write_image(tmp_path / "to8.png", src.data, like=src, dtype="uint8")).dtype == np.uint8
    assert read_image(write_image(tmp_path / "tof.tif", src.data, like=src, dtype=np.float32)).dtype == np.float32
    assert read_image(write_image(tmp_path / "plain.tif", src.data)).dtype == np.float32  # lossless default
    assert read_image(write_image(tmp_path / "plain.png", src.data)).dtype == np.uint8


@pytest.mark.parametrize("name,kwargs,match", [
    ("deep.jpg", {"dtype": "uint16"}, "JPEG cannot store uint16"),
    ("float.png", {"dtype": "float32"}, "PNG cannot store float32"),
    ("alpha.jpg", {"alpha": np.ones((4, 4))}, "cannot store the alpha"),
    ("alpha.bmp", {"alpha": np.ones((4, 4))}, "cannot store the alpha"),
    ("odd.gif", {}, "unsupported output type '.gif'"),
    ("bad.png", {"dtype": "int32"}, "unsupported sample type int32"),
    ("shape.png", {"alpha": np.ones((3, 3))}, "alpha has shape"),
])
def test_unwritable_combinations(tmp_path, name, kwargs, match):
    with pytest.raises(ImageWriteError, match=match):
        write_image(tmp_path / name, np.zeros((4, 4, 3), np.float32), **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_16bit_source_to_jpeg_needs_explicit_dtype(tmp_path):
    src = read_image(write_image(tmp_path / "src.tif", _random("uint16", (8, 8, 3))))
    with pytest.raises(ImageWriteError, match="--dtype"):
        write_image(tmp_path / "out.jpg", src.data, like=src)
    assert read_image(write_image(tmp_path / "out.jpg", src.data, like=src, dtype="uint8")).dtype == np.uint8


def test_bad_arrays_and_output_paths(tmp_path):
    with pytest.raises(ImageWriteError, match="shape"):
        write_image(tmp_path / "a.png", np.zeros((2, 3, 4, 5)))
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ImageWriteError, match="directory"):
        write_image(tmp_path / "dir.png", np.zeros((3, 3)))
    out = write_image(tmp_path / "new" / "sub" / "a.png", np.zeros((3, 3)))
    assert out.is_file()


def test_orientation_of_16bit_png_and_tiff(tmp_path):
    gray = _random("uint16", (6, 9), seed=9)
    im = PILImage.fromarray(gray)
    exif = im.getexif()
    exif[0x0112] = 3  # upside down
    im.save(tmp_path / "o16.png", exif=exif)
    assert np.array_equal(_samples(read_image(tmp_path / "o16.png"))[..., 0], gray[::-1, ::-1])
    tifffile.imwrite(tmp_path / "o.tif", gray, extratags=[(274, "H", 1, 8, False)])  # 90 degrees counter-clockwise
    assert np.array_equal(_samples(read_image(tmp_path / "o.tif"))[..., 0], np.rot90(gray))


def test_palette_and_min_is_white_tiff(tmp_path):
    index = (np.arange(6 * 7).reshape(6, 7) % 3).astype(np.uint8)
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, :3] = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]]).T * 257
    tifffile.imwrite(tmp_path / "pal.tif", index, photometric="palette", colormap=colormap)
    img = read_image(tmp_path / "pal.tif")
    assert img.mode == "P" and img.dtype == np.uint8
    assert np.array_equal(_samples(img), np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)[index])
    tifffile.imwrite(tmp_path / "white.tif", np.array([[0, 255]], np.uint8), photometric="miniswhite")
    assert np.array_equal(_samples(read_image(tmp_path / "white.tif"))[..., 0], [[255, 0]])


def test_npy_of_other_types(tmp_path):
    np.save(tmp_path / "half.npy", np.full((3, 4), -2.5, np.float16))
    img = read_image(tmp_path / "half.npy")
    assert img.dtype == np.float32 and img.data.min() == -2.5
    np.save(tmp_path / "mask.npy", np.eye(4, dtype=bool))
    assert np.array_equal(read_image(tmp_path / "mask.npy").data[..., 0], np.eye(4))
    np.save(tmp_path / "cube.npy", np.zeros((4, 4, 7), np.float32))
    assert "expected HxW or HxWxC" in _error(tmp_path / "cube.npy")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_numpy_orientation_matches_pillow(orientation):
    arr = _random("uint8", (5, 8, 3), seed=orientation)
    im = PILImage.fromarray(arr)
    im.getexif()[0x0112] = orientation
    expected = np.asarray(ImageOps.exif_transpose(im))
    assert np.array_equal(io_formats.orient(arr, orientation), expected)
