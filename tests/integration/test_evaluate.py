"""The evaluation protocol (BENCHMARK.md), its outputs and the `imdenoise eval` command."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script, run_cli
from PIL import Image

from imdenoise.denoisers.catalog import load
from imdenoise.evaluation.evaluate import (
    EvalSettings,
    EvaluationError,
    evaluate,
    load_dataset,
    make_noisy,
    parse_levels,
    residual_stats,
    summarize,
)
from imdenoise.metrics import quantize_8bit as quantize

QUIET = EvalSettings(progress=False)


def _write_set(folder: Path, image: np.ndarray, n: int = 2, size: int = 64) -> Path:
    """n crops of a float HxWxC image as 8-bit PNGs, named so that sorting differs from creation order."""
    folder.mkdir(parents=True, exist_ok=True)
    u8 = np.round(image * 255).astype(np.uint8)
    for k in range(n):
        crop = u8[k * 16: k * 16 + size, k * 24: k * 24 + size]
        crop = crop[..., 0] if crop.shape[-1] == 1 else crop
        Image.fromarray(crop).save(folder / f"img{n - 1 - k:02d}.png")
    return folder


@pytest.fixture()
def gray_set(tmp_path: Path, gray_image: np.ndarray) -> Path:
    return _write_set(tmp_path / "grayset", gray_image)


@pytest.fixture()
def color_set(tmp_path: Path, color_image: np.ndarray) -> Path:
    return _write_set(tmp_path / "colorset", color_image)


def test_dataset_sorted_gray_and_channels(gray_set: Path, color_set: Path) -> None:
    ds = load_dataset(gray_set)
    assert [f.name for f in ds.files] == ["img00.png", "img01.png"]
    assert ds.channels == 1 and ds.images[0].shape == (64, 64, 1) and ds.images[0].dtype == np.uint8
    assert load_dataset(color_set).channels == 3
    assert load_dataset(gray_set, channels=3).images[0].shape == (64, 64, 3)
    assert load_dataset(color_set, channels=1, limit=1).images[0].shape == (64, 64, 1)
    assert len(load_dataset(color_set, limit=1).files) == 1


def test_psnr_matches_hand_computation(color_set: Path) -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ds = load_dataset(color_set)
    method = load("gaussian")
    rec = evaluate({"gaussian": method}, [ds], parse_levels("gaussian:25"), QUIET)
    assert len(rec) == 2
    for i, path in enumerate(sorted(color_set.glob("*.png"))):  # by hand, straight from BENCHMARK.md
        clean_u8 = np.asarray(Image.open(path).convert("RGB"))
        clean = clean_u8.astype(np.float32) / 255
        rng = np.random.default_rng(1000 * 25 + i)
        noisy = clean + (25 / 255) * rng.standard_normal(clean.shape, dtype=np.float32)
        out = np.round(np.clip(method.denoise(noisy, 25), 0, 1) * 255).astype(np.uint8)
        mse = np.mean((clean_u8.astype(np.float64) - out) ** 2)
        assert rec[i].image == path.name
        assert rec[i].psnr == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=1e-9)
        assert rec[i].psnr == pytest.approx(peak_signal_noise_ratio(clean_u8, out, data_range=255), abs=1e-9)
        ref_ssim = structural_similarity(clean_u8, out, data_range=255, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, channel_axis=-1)
        assert rec[i].ssim == pytest.approx(ref_ssim, abs=1e-6)


def test_noisy_not_clipped_and_other_noise_seeding(gray_set: Path) -> None:
    from imdenoise.noise.models import parse_noise

    clean = load_dataset(gray_set).images[0].astype(np.float32) / 255
    noisy, sigma = make_noisy(clean, parse_noise("gaussian:50"), 1)
    assert sigma == 50 and (noisy.min() < 0 or noisy.max() > 1)
    model = parse_noise("poisson:30")
    noisy, level = make_noisy(clean, model, 3)
    expected, _ = model.sample(clean, np.random.default_rng(30_000 + 3))
    np.testing.assert_array_equal(noisy, expected)
    assert level == pytest.approx(np.sqrt(np.mean((noisy.astype(np.float64) - clean) ** 2)) * 255)
    sp, _ = make_noisy(clean, parse_noise("saltpepper:0.05"), 0)
    expected, _ = parse_noise("saltpepper:0.05").sample(clean, np.random.default_rng(50))
    np.testing.assert_array_equal(sp, expected)


def test_two_runs_identical(gray_set: Path) -> None:
    ds = load_dataset(gray_set)
    levels = parse_levels("gaussian:15,50;poisson:30")
    runs = [evaluate({"tv": load("tv"), "mean": load("mean")}, [ds], levels, QUIET) for _ in range(2)]
    strip = lambda rs: [{k: v for k, v in vars(r).items() if k not in ("seconds", "mpx_per_s")} for r in rs]  # noqa: E731
    assert strip(runs[0]) == strip(runs[1])
    assert len(runs[0]) == 2 * 3 * 2


def test_blind_passes_no_sigma(gray_set: Path) -> None:
    seen: list = []

    class Spy:
        name = "spy"

        def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
            seen.append(sigma)
            return image

    ds = load_dataset(gray_set, limit=1)
    evaluate({"spy": Spy()}, [ds], parse_levels("gaussian:25"), EvalSettings(progress=False))
    assert seen == [25.0, 25.0]  # warm-up + the image
    seen.clear()
    evaluate({"spy": Spy()}, [ds], parse_levels("gaussian:25"), EvalSettings(sigma_known=False, progress=False))
    assert seen == [None, None]
    seen.clear()
    evaluate({"spy": Spy()}, [ds], parse_levels("gaussian:25"), EvalSettings(warmup=False, progress=False))
    assert seen == [25.0]


def test_residual_stats_of_an_oracle_and_a_blur() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:128]
    clean = (0.5 + 0.3 * np.sin(xx / 3.0) * np.cos(yy / 5.0))[..., None].astype(np.float32)
    noisy = clean + 25 / 255 * rng.standard_normal(clean.shape).astype(np.float32)
    oracle = residual_stats(noisy, clean, 25.0, clean)  # residual = the noise itself: white, std = sigma
    assert abs(oracle["resid_mean"]) < 0.5 and oracle["resid_std_ratio"] == pytest.approx(1.0, abs=0.03)
    assert abs(oracle["resid_ac_h"]) < 0.03 and abs(oracle["resid_ac_v"]) < 0.03
    assert abs(oracle["resid_structure"]) < 0.05
    from scipy.ndimage import uniform_filter

    blur = residual_stats(noisy, uniform_filter(noisy, size=(7, 7, 1)), 25.0, clean)  # removes structure too
    assert blur["resid_structure"] > 0.2 and blur["resid_std_ratio"] > 1.05


def test_failing_method_gives_clear_error(gray_set: Path) -> None:
    class Broken:
        name = "broken"

        def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
            raise RuntimeError("out of cheese")

    with pytest.raises(EvaluationError, match=r"method 'broken' failed on .*img00.png.*RuntimeError: out of cheese"):
        evaluate({"broken": Broken()}, [load_dataset(gray_set)], parse_levels("gaussian:25"), QUIET)


def test_summary_aggregates(gray_set: Path) -> None:
    rec = evaluate({"mean": load("mean")}, [load_dataset(gray_set)], parse_levels("gaussian:25"), QUIET)
    (row,) = summarize(rec)
    assert row["images"] == 2 and row["psnr"] == pytest.approx(np.mean([r.psnr for r in rec]))
    assert row["seconds"] == pytest.approx(np.median([r.seconds for r in rec]))
    assert quantize(np.array([-0.2, 0.5, 1.3], dtype=np.float32)).tolist() == [0, 128, 255]


def test_cli_outputs_and_figures(gray_set: Path, color_set: Path, tmp_path: Path, capsys) -> None:
    figs, js, cs = tmp_path / "figs", tmp_path / "r.json", tmp_path / "r.csv"
    code, out, err = run_cli(["eval", "--method", "mean,gaussian", "--dataset", f"{gray_set},{color_set}",
                              "--noise", "gaussian:15,25", "--limit", "2", "--json", str(js), "--csv", str(cs),
                              "--figures", str(figs), "--crop", "48", "--no-progress"], capsys)
    assert code == 0, err
    assert "| mean | grayset | gaussian:15 | 2 |" in out and "resid std / sigma" in out
    doc = json.loads(js.read_text())
    assert len(doc["images"]) == 2 * 2 * 2 * 2 and len(doc["summary"]) == 2 * 2 * 2
    assert doc["settings"]["channels"] == {"grayset": 1, "colorset": 3}
    rows = list(csv.DictReader(cs.open()))
    assert len(rows) == 16 and float(rows[0]["psnr"]) == pytest.approx(doc["images"][0]["psnr"])
    pngs = sorted(figs.glob("*.png"))
    assert len(pngs) == 2 * 2 + 1
    for p in pngs:
        with Image.open(p) as im:
            im.verify()
            assert im.format == "PNG"
    # existing outputs are refused without --overwrite, before any work
    code, _, err = run_cli(["eval", "--method", "mean", "--dataset", str(gray_set), "--noise", "gaussian:25",
                            "--json", str(js)], capsys)
    assert code == 2 and "exists" in err and "--overwrite" in err
    code, _, err = run_cli(["eval", "--method", "mean", "--dataset", str(gray_set), "--noise", "gaussian:25",
                            "--json", str(js), "--overwrite", "--no-progress"], capsys)
    assert code == 0, err
    assert len(json.loads(js.read_text())["images"]) == 2


@pytest.mark.parametrize("args, message", [
    (["--method", "mean", "--dataset", "/nonexistent/set"], "no such directory"),
    (["--method", "no-such-method", "--dataset", "{gray}"], "unknown model or method"),
    (["--method", "mean", "--dataset", "{gray}", "--noise", "gaussian:abc"], "bad noise spec"),
    (["--method", "mean", "--dataset", "{gray}", "--noise", "rainbow:3"], "unknown noise kind"),
    (["--method", "mean", "--dataset", "{gray}", "--lpips-weights", "/nonexistent/alex.pth"], "LPIPS weights"),
    (["--method", "mean", "--dataset", "{gray}", "--channels", "2"], "channels must be 1"),
])
def test_cli_bad_inputs(args: list[str], message: str, gray_set: Path, capsys) -> None:
    args = [a.replace("{gray}", str(gray_set)) for a in args]
    code, out, err = run_cli(["eval", *args, "--no-progress"], capsys)
    assert code != 0 and message in err and "Traceback" not in err + out


def test_lpips_needs_package(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    try:
        import lpips  # noqa: F401
        pytest.skip("lpips is installed: the missing-package path cannot be shown here")
    except ImportError:
        pass
    from imdenoise.evaluation.report import load_lpips

    weights = tmp_path / "alex.pth"
    weights.write_bytes(b"\0")
    with pytest.raises(EvaluationError, match="needs the optional 'lpips' package"):
        load_lpips(weights)


def test_quality_benchmark_smoke(tmp_path: Path, gray_image: np.ndarray, color_image: np.ndarray, capsys) -> None:
    quality = load_script("benchmarks/quality.py")  # a test of the benchmark script itself
    _write_set(tmp_path / "set12", gray_image, n=1)
    _write_set(tmp_path / "kodak24", color_image, n=1)
    md = tmp_path / "table.md"
    rc = quality.main(["--methods", "mean", "--sets", "set12,kodak24", "--datasets", str(tmp_path), "--limit", "1",
                       "--repeats", "1", "--output", str(md)])
    assert rc == 0
    text = md.read_text()
    assert "| mean (measured) |" in text and "| DRUNet (published) | 33.25 / 30.94 / 27.90 | 35.31 / 32.89 / 29.86" in text
    assert quality.main(["--methods", "mean", "--sets", "nosuchset", "--datasets", str(tmp_path)]) == 2
    # --readme: the table goes between the markers, the rest of the file is kept; blind rows; reference seconds
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{quality.README_START}\nold table\n{quality.README_END}\noutro\n")
    rc = quality.main(["--methods", "mean", "--sets", "set12", "--datasets", str(tmp_path), "--limit", "1",
                       "--repeats", "1", "--blind-too", "--time-only", "dncnn", "--readme", str(readme)])
    assert rc == 0
    doc = readme.read_text()
    assert doc.startswith("intro\n") and doc.endswith(f"{quality.README_END}\noutro\n") and "old table" not in doc
    assert "| mean (measured) |" in doc and "| mean, blind (measured) |" in doc
    dncnn_row = next(line for line in doc.splitlines() if line.startswith("| DnCNN (published)"))
    assert float(dncnn_row.rstrip(" |").split("|")[-2]) > 0  # gray seconds measured in this run
    readme.write_text("no markers\n")
    assert quality.main(["--methods", "mean", "--sets", "set12", "--datasets", str(tmp_path),
                         "--readme", str(readme)]) == 2


@pytest.mark.slow
def test_bm3d_reproduces_published_set12_sigma25(datasets_dir: Path) -> None:
    pytest.importorskip("bm3d")
    ds = load_dataset(datasets_dir / "test" / "set12")
    assert len(ds.files) == 12 and ds.channels == 1
    rec = evaluate({"bm3d": load("bm3d")}, [ds], parse_levels("gaussian:25"), EvalSettings(warmup=False, progress=False))
    (row,) = summarize(rec)
    assert row["psnr"] == pytest.approx(29.97, abs=0.05)  # published BM3D, Set12, sigma 25 (BENCHMARK.md)
