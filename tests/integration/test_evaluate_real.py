"""Evaluation on real noisy pairs: no synthetic noise, the noisy photo's own PSNR, `--noise`/`--sigma`, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import load_script, run_cli
from PIL import Image

from imdenoise.denoisers.catalog import load
from imdenoise.evaluation.evaluate import (
    REAL_LABEL,
    EvalSettings,
    EvaluationError,
    evaluate,
    load_dataset,
    summarize,
)
from imdenoise.metrics import psnr_uint8, ssim_uint8
from imdenoise.metrics import quantize_8bit as quantize

QUIET = EvalSettings(progress=False, threads=1)
H, W = 40, 48


def _pattern(k: int) -> np.ndarray:
    """A smooth color test pattern (uint8 HxWx3), different for each k."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    chans = [0.5 + 0.3 * np.sin(xx / (4.0 + k) + c) * np.cos(yy / (5.0 + c)) for c in range(3)]
    return np.round(np.clip(np.stack(chans, axis=-1), 0, 1) * 255).astype(np.uint8)


def _noisy(clean: np.ndarray, k: int) -> np.ndarray:
    """Fixed white noise of sigma 20 on the pattern, clipped and rounded as a camera would store it."""
    noise = np.random.default_rng(100 + k).standard_normal(clean.shape) * 20
    return np.round(np.clip(clean + noise, 0, 255)).astype(np.uint8)


def _write_pairs(folder: Path, names: tuple[str, ...] = ("b", "a", "c")) -> Path:
    """`<name>_real.png` (noisy) beside `<name>_mean.png` (reference) for each name."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        clean = _pattern(k)
        Image.fromarray(clean).save(folder / f"{name}_mean.png")
        Image.fromarray(_noisy(clean, k)).save(folder / f"{name}_real.png")
    return folder


@pytest.fixture()
def pairs(tmp_path: Path) -> Path:
    return _write_pairs(tmp_path / "pairs")


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


class Spy:
    """A 'method' that records the sigma it is given and returns its input."""

    name = "spy"

    def __init__(self) -> None:
        self.seen: list = []

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        self.seen.append(sigma)
        return image


def test_pairs_folder_loads_noisy_and_reference(pairs: Path) -> None:
    ds = load_dataset(pairs)
    assert ds.real and ds.channels == 3
    assert [f.name for f in ds.files] == ["a_real.png", "b_real.png", "c_real.png"]
    assert [f.name for f in ds.reference_files] == ["a_mean.png", "b_mean.png", "c_mean.png"]
    np.testing.assert_array_equal(ds.images[0], _read(pairs / "a_mean.png"))
    np.testing.assert_array_equal(ds.noisy[0], _read(pairs / "a_real.png"))  # type: ignore[index]
    assert len(load_dataset(pairs, limit=2).noisy) == 2  # type: ignore[arg-type]
    assert load_dataset(pairs, channels=1).noisy[0].shape == (H, W, 1)  # type: ignore[index]


def test_real_pairs_psnr_and_no_synthetic_noise(pairs: Path) -> None:
    methods = {"gaussian": load("gaussian"), "mean": load("mean")}
    rec = evaluate(methods, [load_dataset(pairs)], [], QUIET)
    assert len(rec) == 3 * 2
    for r in rec:
        ref, noisy = _read(pairs / r.image.replace("_real", "_mean")), _read(pairs / r.image)
        assert r.noise == REAL_LABEL and r.level is None and r.sigma_given is None
        assert r.psnr_noisy == pytest.approx(psnr_uint8(ref, noisy), abs=1e-12)  # the pair, computed directly
        assert r.ssim_noisy == pytest.approx(ssim_uint8(ref, noisy), abs=1e-12)
        out = quantize(methods[r.method].denoise(noisy.astype(np.float32) / 255, None))  # input as read, blind
        assert r.psnr == pytest.approx(psnr_uint8(ref, out), abs=1e-12)
        assert r.psnr > r.psnr_noisy + 1.0  # a classical filter helps on this white noise
        assert r.sigma_true == pytest.approx(np.sqrt(np.mean((noisy.astype(float) - ref) ** 2)), rel=1e-5)
    row = next(r for r in summarize(rec) if r["method"] == "mean")
    assert row["noise"] == REAL_LABEL and row["psnr_noisy"] == pytest.approx(np.mean([r.psnr_noisy for r in rec if r.method == "mean"]))


def test_real_pairs_blind_unless_fixed_sigma(pairs: Path, tmp_path: Path, gray_image: np.ndarray) -> None:
    ds = load_dataset(pairs, limit=1)
    spy = Spy()
    evaluate({"spy": spy}, [ds], [], QUIET)  # sigma_known is the default, but real pairs have no true sigma
    assert spy.seen == [None, None]  # warm-up + the image
    spy.seen.clear()
    evaluate({"spy": spy}, [ds], [], EvalSettings(fixed_sigma=7.0, progress=False, threads=1))
    assert spy.seen == [7.0, 7.0]
    # on a clean set the fixed sigma replaces the true one, too
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    Image.fromarray(np.round(gray_image[:32, :32, 0] * 255).astype(np.uint8)).save(clean_dir / "x.png")
    from imdenoise.evaluation.evaluate import parse_levels

    spy.seen.clear()
    rec = evaluate({"spy": spy}, [load_dataset(clean_dir)], parse_levels("gaussian:25"),
                   EvalSettings(fixed_sigma=7.0, progress=False, threads=1))
    assert spy.seen == [7.0, 7.0] and rec[0].sigma_true == 25.0 and rec[0].sigma_given == 7.0


def test_unmatched_file_is_a_one_line_error(pairs: Path, tmp_path: Path, capsys) -> None:
    Image.fromarray(_pattern(5)).save(pairs / "d_real.png")  # no d_mean.png
    with pytest.raises(EvaluationError, match=r"d_real\.png") as err:
        load_dataset(pairs)
    assert "\n" not in str(err.value)
    code, out, err_text = run_cli(["eval", "--method", "mean", "--dataset", str(pairs), "--no-progress",
                                   "--threads", "1"], capsys)
    assert code == 2 and "d_real.png" in err_text and "Traceback" not in out + err_text
    assert len(err_text.strip().splitlines()) == 1
    # the noisy/ + clean/ layout names the orphan file as well
    sub = tmp_path / "sub"
    for part in ("noisy", "clean"):
        (sub / part).mkdir(parents=True)
        Image.fromarray(_pattern(0)).save(sub / part / "x.png")
    Image.fromarray(_pattern(0)).save(sub / "clean" / "y.png")
    with pytest.raises(EvaluationError, match=r"y\.png"):
        load_dataset(sub)
    (sub / "clean" / "y.png").unlink()
    assert load_dataset(sub).real


def test_size_mismatch_names_the_pair(pairs: Path) -> None:
    Image.fromarray(_pattern(0)[:, :40]).save(pairs / "b_mean.png")
    with pytest.raises(EvaluationError, match=r"b_real\.png is 48x40 but its reference b_mean\.png is 40x40"):
        load_dataset(pairs)


def test_cli_on_pairs(pairs: Path, tmp_path: Path, capsys) -> None:
    js, figs = tmp_path / "r.json", tmp_path / "figs"
    code, out, err = run_cli(["eval", "--method", "mean,gaussian", "--dataset", str(pairs), "--limit", "2",
                              "--json", str(js), "--figures", str(figs), "--crop", "32", "--threads", "1",
                              "--no-progress"], capsys)
    assert code == 0, err
    assert "noisy PSNR dB" in out and "| mean | pairs | real | 2 |" in out and "gaussian:" not in out
    doc = json.loads(js.read_text())
    assert doc["settings"]["noise"] == [REAL_LABEL] and doc["settings"]["real_pairs"] == ["pairs"]
    assert len(doc["images"]) == 2 * 2
    for row in doc["images"]:
        direct = psnr_uint8(_read(pairs / row["image"].replace("_real", "_mean")), _read(pairs / row["image"]))
        assert row["psnr_noisy"] == pytest.approx(direct, abs=1e-9) and row["psnr"] > direct
        assert row["sigma_given"] is None and row["level"] is None
    mean_row = next(line for line in out.splitlines() if line.startswith("| mean |"))
    psnr, noisy_psnr = (float(c) for c in mean_row.split("|")[5:7])
    assert noisy_psnr == pytest.approx(np.mean([r["psnr_noisy"] for r in doc["images"] if r["method"] == "mean"]),
                                       abs=0.006)
    assert psnr > noisy_psnr
    assert sorted(p.name for p in figs.glob("*.png")) == ["crops_pairs_real.png", "psnr_vs_level.png"]
    # --sigma: every method gets that level
    code, out, err = run_cli(["eval", "--method", "mean", "--dataset", str(pairs), "--limit", "1", "--sigma", "12",
                              "--json", str(js), "--overwrite", "--threads", "1", "--no-progress"], capsys)
    assert code == 0, err
    doc = json.loads(js.read_text())
    assert doc["settings"]["sigma"] == 12.0 and [r["sigma_given"] for r in doc["images"]] == [12.0]


def test_cli_noise_option_with_pairs(pairs: Path, tmp_path: Path, gray_image: np.ndarray, capsys) -> None:
    code, out, err = run_cli(["eval", "--method", "mean", "--dataset", str(pairs), "--noise", "gaussian:25",
                              "--threads", "1", "--no-progress"], capsys)
    assert code == 2 and "--noise does not apply to real noisy pairs" in err and "pairs" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
    code, _, err = run_cli(["eval", "--method", "mean", "--dataset", str(pairs), "--sigma", "5", "--blind",
                            "--threads", "1", "--no-progress"], capsys)
    assert code == 2 and "--sigma" in err and "--blind" in err
    # a clean set beside the pairs: --noise applies to the clean set only
    clean_dir = tmp_path / "cleanset"
    clean_dir.mkdir()
    Image.fromarray(np.round(gray_image[:32, :40, 0] * 255).astype(np.uint8)).save(clean_dir / "x.png")
    code, out, err = run_cli(["eval", "--method", "mean", "--dataset", f"{clean_dir},{pairs}", "--noise",
                              "gaussian:25", "--limit", "1", "--threads", "1", "--no-progress"], capsys)
    assert code == 0, err
    assert "| mean | cleanset | gaussian:25 | 1 |" in out and "| mean | pairs | real | 1 |" in out
    assert "| mean | pairs | gaussian" not in out


def _quality():
    return load_script("benchmarks/quality.py")  # a test of the benchmark script itself


def test_quality_real_table(pairs: Path, tmp_path: Path, capsys) -> None:
    quality = _quality()
    md, js, readme = tmp_path / "real.md", tmp_path / "real.json", tmp_path / "README.md"
    readme.write_text(f"intro\n{quality.REAL_START}\nold\n{quality.REAL_END}\noutro\n")
    rc = quality.main(["--real-only", "--real-dataset", str(pairs), "--real-methods", "mean",
                       "--real-fixed", "gaussian", "--real-sigmas", "5,30", "--time-only", "", "--threads", "1",
                       "--real-output", str(md), "--real-json", str(js), "--real-readme", str(readme)])
    assert rc == 0
    text = md.read_text()
    doc = json.loads(js.read_text())
    noisy = np.mean([psnr_uint8(_read(pairs / f"{n}_mean.png"), _read(pairs / f"{n}_real.png")) for n in "abc"])
    assert doc["rows"][0]["label"] == "noisy photo (input)" and doc["rows"][0]["psnr"] == pytest.approx(noisy)
    assert f"| noisy photo (input) | {noisy:.2f} | - |" in text
    labels = [r["label"] for r in doc["rows"]]
    assert labels == ["noisy photo (input)", "mean, blind", "gaussian, sigma 5", "gaussian, sigma 30"]
    g5, g30 = doc["rows"][2:]
    assert g30["psnr"] > g5["psnr"] and g30.get("best") and not g5.get("best")  # sigma 20 noise: 30 beats 5
    assert doc["best_sigma"] == {"gaussian": 30.0}
    assert "| gaussian, sigma 30 (best fixed sigma) |" in text and "| gaussian, sigma 5 |" in text
    assert g30["gain"] == pytest.approx(g30["psnr"] - noisy)
    assert "reported in issue 23, official weights, not run here) | 38.78 |" in text
    assert "DnCNN-17" not in text  # not timed: --time-only ""
    body = readme.read_text()
    assert body.startswith("intro\n") and body.endswith(f"{quality.REAL_END}\noutro\n") and "old" not in body
    assert text.strip() in body
    # markers missing: refused before any work, file untouched; a clean folder is not a pairs folder
    readme.write_text("no markers\n")
    assert quality.main(["--real-only", "--real-dataset", str(pairs), "--real-readme", str(readme)]) == 2
    assert readme.read_text() == "no markers\n"
    clean_dir = tmp_path / "cleanset"
    clean_dir.mkdir()
    Image.fromarray(_pattern(0)).save(clean_dir / "x.png")
    assert quality.main(["--real-only", "--real-dataset", str(clean_dir), "--real-methods", "mean",
                         "--real-fixed", "", "--time-only", "", "--threads", "1"]) == 2
    assert "not a folder of real noisy pairs" in capsys.readouterr().err
