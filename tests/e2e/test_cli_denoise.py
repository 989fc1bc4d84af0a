"""`imdenoise denoise` and `imdenoise models` from the command line: formats, depth, errors, sharding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from imdenoise.models.registry import build_model
from imdenoise.models.weights import ModelCard, save_weights


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imdenoise", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def noisy_png(tmp_path_factory: pytest.TempPathFactory, gray_image: np.ndarray) -> tuple[Path, np.ndarray]:
    clean = gray_image[:96, :128, 0]
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    path = tmp_path_factory.mktemp("in") / "noisy.png"
    Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(path)
    return path, clean


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_classical_method_improves_png(noisy_png: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, clean = noisy_png
    out = tmp_path / "out.png"
    proc = run("denoise", str(src), "-o", str(out), "--method", "nlm", "--sigma", "25")
    assert proc.returncode == 0, proc.stderr
    den = np.asarray(Image.open(out), dtype=np.float64) / 255
    noisy = np.asarray(Image.open(src), dtype=np.float64) / 255
    assert _psnr(clean, den) > _psnr(clean, noisy) + 3


def test_existing_output_needs_overwrite(noisy_png: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, _ = noisy_png
    out = tmp_path / "out.png"
    out.write_bytes(b"keep me")
    proc = run("denoise", str(src), "-o", str(out), "--method", "mean")
    assert proc.returncode == 2
    assert "output exists" in proc.stderr and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"keep me"
    assert run("denoise", str(src), "-o", str(out), "--method", "mean", "--overwrite").returncode == 0
    assert Image.open(out).size == (128, 96)


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    proc = run("denoise", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o.png"), "--method", "mean")
    assert proc.returncode == 2 and "missing.png" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "text.png"
    bad.write_text("not an image")
    proc = run("denoise", str(bad), "-o", str(tmp_path / "o.png"), "--method", "mean")
    assert proc.returncode == 2 and "text.png" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("denoise", str(bad), "-o", str(tmp_path / "o.png"), "--model", "nope")
    assert proc.returncode == 2 and "unknown model or method" in proc.stderr


def test_sixteen_bit_tiff_stays_sixteen_bit_through_a_model(tmp_path: Path, gray_image: np.ndarray) -> None:
    weights = save_weights(tmp_path / "tiny.safetensors", build_model("unet", widths=(8, 16)),
                           ModelCard(name="tiny", architecture="unet", config={"widths": [8, 16]}, in_channels=1))
    img16 = np.round(gray_image[:40, :56, 0] * 65535).astype(np.uint16)
    src = tmp_path / "in16.tif"
    tifffile.imwrite(src, img16)
    out = tmp_path / "out16.tif"
    proc = run("denoise", str(src), "-o", str(out), "--model", str(weights), "--sigma", "10")
    assert proc.returncode == 0, proc.stderr
    res = tifffile.imread(out)
    assert res.dtype == np.uint16 and res.shape == img16.shape


def test_folder_in_folder_out_and_sharding(noisy_png: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(4):
        (folder / f"im{i}.png").write_bytes(noisy_png[0].read_bytes())
    out = tmp_path / "clean"
    procs = [run("denoise", str(folder), "-o", str(out), "--method", "mean",
                 env={"RANK": str(r), "WORLD_SIZE": "2"}) for r in (0, 1)]
    assert all(p.returncode == 0 for p in procs), [p.stderr for p in procs]
    assert sorted(p.name for p in out.iterdir()) == [f"im{i}.png" for i in range(4)]
    assert "im0.png" in procs[0].stdout and "im1.png" in procs[1].stdout and "im1.png" not in procs[0].stdout


def test_models_lists_architectures() -> None:
    proc = run("models")
    assert proc.returncode == 0, proc.stderr
    for name in ("unet", "dncnn", "zeroshot-net", "unet-mnist"):
        assert name in proc.stdout


@pytest.mark.parametrize("options, message", [
    (["--device", "tpu"], "device must be auto, cpu, cuda or mps, got 'tpu'"),
    (["--overlap", "-5"], "overlap must be 0 or more pixels"),
    (["--precision", "fp16"], "precision must be fp32, bf16 or auto"),
    (["--tile", "-5"], "tile must be at least 64 pixels"),
    (["--threads", "0"], "threads must be at least 1"),
    (["--ensemble", "3"], "ensemble must be one of 1, 2, 4, 8"),
    (["--sigma", "1e9"], "sigma must be a number from 0 to 255"),
    (["--sigma", "nan"], "sigma must be a number from 0 to 255"),
])
def test_bad_options_are_named_before_any_work(noisy_png: tuple[Path, np.ndarray], tmp_path: Path,
                                               options: list[str], message: str) -> None:
    src, _ = noisy_png
    out = tmp_path / "out.png"
    proc = run("denoise", str(src), "-o", str(out), *options)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not out.exists()


def test_unsupported_output_type_is_refused_not_made_a_folder(noisy_png: tuple[Path, np.ndarray],
                                                              tmp_path: Path) -> None:
    src, _ = noisy_png
    proc = run("denoise", str(src), "-o", str(tmp_path / "out.gif"), "--method", "mean")
    assert proc.returncode == 2 and "unsupported output type '.gif'" in proc.stderr, proc.stderr
    assert not (tmp_path / "out.gif").exists()
    proc = run("denoise", str(src), "-o", str(tmp_path / "dir"), "--method", "mean", "--suffix", ".gif")
    assert proc.returncode == 2 and "--suffix '.gif'" in proc.stderr, proc.stderr


def test_multipage_tiff_denoises_every_page(tmp_path: Path, gray_image: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    clean = [np.clip(gray_image[:64, :80, 0] * (0.6 + 0.2 * i), 0, 1) for i in range(3)]
    src = tmp_path / "stack.tif"
    with tifffile.TiffWriter(src) as tif:
        for page in clean:
            noisy = np.clip(page + rng.normal(0, 25 / 255, page.shape), 0, 1)
            tif.write(np.round(noisy * 65535).astype(np.uint16))
    out = tmp_path / "clean.tif"
    proc = run("denoise", str(src), "-o", str(out), "--method", "nlm", "--sigma", "25")
    assert proc.returncode == 0, proc.stderr
    pages = tifffile.TiffFile(out).pages
    noisy_pages = tifffile.TiffFile(src).pages
    assert len(pages) == 3
    for page, noisy_page, ref in zip(pages, noisy_pages, clean):
        den = page.asarray()
        assert den.dtype == np.uint16
        assert _psnr(ref, den / 65535) > _psnr(ref, noisy_page.asarray() / 65535) + 3
    proc = run("denoise", str(src), "-o", str(tmp_path / "first.png"), "--method", "mean")
    assert proc.returncode == 2 and "3 pages need a .tif/.tiff output" in proc.stderr, proc.stderr


def test_denoise_says_what_it_did_in_text_json_or_nothing(noisy_png: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """One line per image: the model, the level (given or estimated), the size (width first), the seconds."""
    import json

    src, _ = noisy_png
    proc = run("denoise", str(src), "-o", str(tmp_path / "a.png"))
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert len(line.splitlines()) == 1 and "gray" in line and "(estimated)" in line and "128x96x1" in line, line
    level = float(line.split("level ")[1].split(" ")[0])
    assert 20 < level < 30, line  # the png holds sigma-25 noise
    proc = run("denoise", str(src), "-o", str(tmp_path / "b.png"), "--method", "gaussian", "--sigma", "12", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["model"] == "gaussian" and record["sigma"] == 12 and record["sigma_source"] == "given"
    assert (record["width"], record["height"], record["channels"]) == (128, 96, 1) and record["seconds"] >= 0
    assert record["output"] == str(tmp_path / "b.png")
    proc = run("denoise", str(src), "-o", str(tmp_path / "c.png"), "--method", "mean", "--quiet")
    assert proc.returncode == 0 and proc.stdout == "" and (tmp_path / "c.png").is_file()


def test_a_photo_says_the_level_it_was_denoised_at(tmp_path: Path) -> None:
    """A camera photo's noise is reported at its stride-2 level and denoised at the photo rule's level:
    the line says both, and the JSON record carries `denoised_at`."""
    import json

    from PIL import Image

    from imdenoise.denoisers.network import photo_rule
    from imdenoise.io.images import read_image
    from imdenoise.noise.models import parse_noise

    clean = read_image(Path(__file__).resolve().parents[2] / "src" / "imdenoise" / "assets" / "sample.png").data
    clean = clean[:160, :160, :3]
    noisy, _, _ = parse_noise("camera:shot=0.002,luma=1.5,chroma=3,quality=95").sample_pair(clean, np.random.default_rng(0))
    src = tmp_path / "photo.png"
    Image.fromarray(np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)).save(src)
    proc = run("denoise", str(src), "-o", str(tmp_path / "a.png"), "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    expected = photo_rule().of(read_image(src).data)
    assert record["model"] == "color" and record["noise"].startswith("correlated"), record
    assert record["denoised_at"] == pytest.approx(expected, abs=0.01) and record["denoised_at"] > record["sigma"]
    line = run("denoise", str(src), "-o", str(tmp_path / "b.png")).stdout
    assert f"denoised at {record['denoised_at']:g}" in line, line


def test_several_inputs_into_one_image_name_says_so(noisy_png: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    src, _ = noisy_png
    other = tmp_path / "two.png"
    other.write_bytes(src.read_bytes())
    proc = run("denoise", str(src), str(other), "-o", str(tmp_path / "single.png"), "--method", "mean")
    assert proc.returncode == 2 and "2 inputs need an output folder" in proc.stderr, proc.stderr
    assert "unsupported" not in proc.stderr and not (tmp_path / "single.png").exists()


def test_sizes_read_width_x_height_in_every_message(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from conftest import run_cli

    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((2, 3), np.uint8)).save(tiny)  # 3 wide, 2 high
    for args in (["denoise", str(tiny), "-o", str(tmp_path / "o.png")], ["zeroshot", str(tiny), "-o", str(tmp_path / "z.png")]):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and " 3x2 " in err and "2x3" not in err, err
