"""`imdenoise noise` and `imdenoise metrics`: outputs, seeds, bit depths, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from imdenoise.cli.main import main
from imdenoise.io.images import read_image, write_image
from imdenoise.metrics import psnr_uint8, ssim_uint8


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process as the console script does; (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture()
def clean_png(tmp_path, color_image) -> Path:
    return write_image(tmp_path / "clean.png", color_image[:64, :64])


def test_noise_is_seeded_and_keeps_depth(tmp_path, capsys, clean_png):
    for name, seed in (("a.png", 7), ("b.png", 7), ("c.png", 8)):
        code, out, _ = run(capsys, "noise", clean_png, "-o", tmp_path / name, "--noise", "gaussian:25", "--seed", seed)
        assert code == 0 and "wrote" in out
    a, b, c = (read_image(tmp_path / n) for n in ("a.png", "b.png", "c.png"))
    assert a.dtype == np.uint8 and a.data.shape == (64, 64, 3)
    assert np.array_equal(a.data, b.data) and not np.array_equal(a.data, c.data)
    clean = read_image(clean_png).data
    inside = (clean > 0.2) & (clean < 0.8)  # away from clipping
    assert abs(float(np.std((a.data - clean)[inside])) * 255 - 25) < 2.5


def test_noise_float_output_unclipped(tmp_path, capsys):
    ramp = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64, 1)  # black to white: both ends clip
    clean_png = write_image(tmp_path / "ramp.png", np.repeat(ramp, 3, axis=2))
    code, out, _ = run(capsys, "noise", clean_png, "-o", tmp_path / "n.tiff", "--noise", "gaussian:50",
                       "--dtype", "float32")
    img = read_image(tmp_path / "n.tiff")
    assert code == 0 and img.dtype == np.float32
    assert img.data.min() < 0 and img.data.max() > 1
    code, out, _ = run(capsys, "noise", clean_png, "-o", tmp_path / "n.png", "--noise", "gaussian:50")
    assert code == 0 and "clipped" in out


def test_noise_16bit_input_stays_16bit(tmp_path, capsys):
    src = write_image(tmp_path / "deep.png", np.full((32, 32, 3), 0.5, np.float32), dtype="uint16")
    code, _, _ = run(capsys, "noise", src, "-o", tmp_path / "out.png", "--noise", "poisson:30")
    assert code == 0 and read_image(tmp_path / "out.png").dtype == np.uint16


def test_noise_refuses_existing_output(tmp_path, capsys, clean_png):
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    code, _, err = run(capsys, "noise", clean_png, "-o", out, "--noise", "gaussian:25")
    assert_one_line_error(code, err, str(out), "exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    code, _, _ = run(capsys, "noise", clean_png, "-o", out, "--noise", "gaussian:25", "--overwrite")
    assert code == 0 and read_image(out).data.shape == (64, 64, 3)


@pytest.mark.parametrize("content,needle", [(None, "no such file"), (b"", "empty file"),
                                            (b"hello", "not a PNG file")])
def test_noise_bad_input_file(tmp_path, capsys, content, needle):
    src = tmp_path / "in.png"
    if content is not None:
        src.write_bytes(content)
    code, _, err = run(capsys, "noise", src, "-o", tmp_path / "out.png", "--noise", "gaussian:25")
    assert_one_line_error(code, err, str(src), needle)
    assert not (tmp_path / "out.png").exists()


def test_noise_bad_spec_and_bad_combination(tmp_path, capsys, clean_png):
    code, _, err = run(capsys, "noise", clean_png, "-o", tmp_path / "o.png", "--noise", "gaussian:abc")
    assert_one_line_error(code, err, "gaussian:abc")
    code, _, err = run(capsys, "noise", clean_png, "-o", tmp_path / "o.png", "--noise", "gaussian:5",
                       "--dtype", "float32")
    assert_one_line_error(code, err, "PNG cannot store float32")


def test_metrics_matches_protocol(tmp_path, capsys, clean_png):
    run(capsys, "noise", clean_png, "-o", tmp_path / "noisy.png", "--noise", "gaussian:25", "--seed", 1)
    code, out, _ = run(capsys, "metrics", clean_png, tmp_path / "noisy.png")
    a = np.round(read_image(clean_png).data * 255).astype(np.uint8)
    b = np.round(read_image(tmp_path / "noisy.png").data * 255).astype(np.uint8)
    assert code == 0
    assert f"PSNR: {psnr_uint8(a, b):.2f} dB" in out and f"SSIM: {ssim_uint8(a, b):.4f}" in out
    code, out, _ = run(capsys, "metrics", clean_png, clean_png)
    assert code == 0 and "PSNR: inf dB" in out and "SSIM: 1.0000" in out


def test_metrics_float_pair(tmp_path, capsys, clean_png):
    run(capsys, "noise", clean_png, "-o", tmp_path / "noisy.npy", "--noise", "gaussian:10", "--dtype", "float32")
    code, out, _ = run(capsys, "metrics", clean_png, tmp_path / "noisy.npy")
    psnr = float(out.split("PSNR: ")[1].split()[0])
    assert code == 0 and 27 < psnr < 29  # 20 log10(255 / 10) = 28.1 dB


def test_metrics_shape_mismatch_and_missing(tmp_path, capsys, clean_png):
    gray = write_image(tmp_path / "gray.png", np.zeros((64, 64), np.float32))
    code, _, err = run(capsys, "metrics", clean_png, gray)
    assert_one_line_error(code, err, "64x64x1", "64x64x3", "does not match")
    code, _, err = run(capsys, "metrics", clean_png, tmp_path / "nope.png")
    assert_one_line_error(code, err, "nope.png", "no such file")


def test_console_script_prints_no_traceback(tmp_path):
    """The real entry point in a fresh process: one line on stderr, exit code 2."""
    proc = subprocess.run([sys.executable, "-m", "imdenoise", "noise", str(tmp_path / "missing.png"), "-o",
                           str(tmp_path / "out.png"), "--noise", "gaussian:25"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"error: {tmp_path / 'missing.png'}: no such file"


def test_help_lists_options(capsys):
    code, out, _ = run(capsys, "noise", "--help")
    assert code == 0 and "--noise" in out and "--seed" in out and "--dtype" in out
    code, out, _ = run(capsys, "metrics", "--help")
    assert code == 0 and "CLEAN" in out
