"""Second hardening round, CLI side (issue 25): unreadable and many-page TIFF, non-finite results,
lying model cards, `--version`, and training runs that cannot write or never checkpointed.

Each test runs the real command in-process (`run_cli`) or in a subprocess where a resource limit is
needed, and checks the one-line error, the exit code 2, and that nothing was written or deleted."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli
from PIL import Image

from imdenoise.errors import WeightsError


def tiff_pages(pages: int) -> bytes:
    """A classic little-endian TIFF of `pages` 1x1 gray pages sharing one strip: about 114 bytes a page."""
    tags = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, 1), (279, 4, 1, 1)]
    ifd_size = 2 + 12 * len(tags) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 12) + b"\x80\x00\x00\x00")  # header, strip at 8
    for k in range(pages):
        nxt = 12 + (k + 1) * ifd_size if k + 1 < pages else 0
        out += struct.pack("<H", len(tags))
        for tag, typ, count, value in tags:
            out += struct.pack("<HHII", tag, typ, count, value)
        out += struct.pack("<I", nxt)
    return bytes(out)


def _one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- items 5, 6: TIFF


def test_tiff_with_no_readable_page_is_an_error_and_writes_nothing(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00\x00\x00\x00\x7f")  # first page offset far outside the 8-byte file
    code, _, err = run_cli(["denoise", str(bad), "-o", str(tmp_path / "out.tif"), "--method", "mean"], capsys)
    line = _one_line_error(err)
    assert code == 2 and str(bad) in line and "no readable page" in line
    assert not (tmp_path / "out.tif").exists()


def test_tiff_page_limit_refuses_and_the_option_raises_it(tmp_path: Path, capsys) -> None:
    many = tmp_path / "many.tif"
    many.write_bytes(tiff_pages(30))
    out = tmp_path / "out.tif"
    code, _, err = run_cli(["denoise", str(many), "-o", str(out), "--method", "mean", "--sigma", "10",
                            "--max-pages", "20"], capsys)
    line = _one_line_error(err)
    assert code == 2 and "more than 20 pages" in line and "--max-pages" in line and not out.exists()
    code, _, err = run_cli(["denoise", str(many), "-o", str(out), "--method", "mean", "--sigma", "10",
                            "--max-pages", "30"], capsys)
    assert code == 0, err
    from imdenoise.io.images import read_frames

    assert len(read_frames(out)) == 30


def test_read_frames_stops_walking_at_the_page_limit(tmp_path: Path) -> None:
    """A file of 20,000 pages is refused at page 1,001 (the default limit), not indexed whole."""
    import tifffile

    from imdenoise.errors import ImageReadError
    from imdenoise.io.images import DEFAULT_MAX_PAGES, read_frames, read_image

    path = tmp_path / "pages.tif"
    path.write_bytes(tiff_pages(20_000))
    seen: list[int] = []
    original = tifffile.TiffPages._getitem

    def spy(self, key):  # count the pages tifffile is asked to parse
        seen.append(key)
        return original(self, key)

    tifffile.TiffPages._getitem = spy
    try:
        with pytest.raises(ImageReadError, match=f"more than {DEFAULT_MAX_PAGES} pages"):
            read_frames(path)
        assert max(seen) <= DEFAULT_MAX_PAGES
        seen.clear()
        assert read_image(path).data.shape == (1, 1, 1)  # the first page only
        assert max(seen) <= 1
    finally:
        tifffile.TiffPages._getitem = original


# ---------------------------------------------------------------- item 10: non-finite results


def test_finite_extreme_input_giving_nan_is_an_error_and_writes_nothing(tmp_path: Path, capsys) -> None:
    src = tmp_path / "huge.npy"
    np.save(src, np.full((64, 64), 1e38, np.float32))  # finite, but the network overflows to NaN
    out = tmp_path / "out.npy"
    code, _, err = run_cli(["denoise", str(src), "-o", str(out), "--model", "gray", "--sigma", "25"], capsys)
    line = _one_line_error(err)
    assert code == 2 and str(src) in line and "NaN or infinite" in line and not out.exists()


def test_metrics_of_an_image_with_nan_is_an_error(tmp_path: Path, capsys) -> None:
    a = np.random.default_rng(0).random((32, 32), dtype=np.float32)
    b = a.copy()
    b[3, 3] = np.nan
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    code, out, err = run_cli(["metrics", str(tmp_path / "a.npy"), str(tmp_path / "b.npy")], capsys)
    line = _one_line_error(err)
    assert code == 2 and "b.npy" in line and "NaN" in line and "PSNR" not in out


@pytest.mark.parametrize("shape", [(1, 1), (1, 1, 3), (16, 16)])
def test_tv_with_a_vanishing_sigma_is_finite(shape) -> None:
    """Found by the server fuzz once NaN results became errors: skimage's TV divided by a weight of
    1e-128 (sigma 2e-125) and returned NaN, which used to be written as black."""
    from imdenoise.denoisers.classical import TVDenoiser

    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    out = TVDenoiser().denoise(image, sigma=2.1319398821441413e-125)
    assert np.all(np.isfinite(out)) and np.allclose(out, image, atol=1e-4)


def test_all_finite_detects_every_kind_without_false_alarms() -> None:
    from imdenoise.arrays import all_finite

    big = np.full((100, 100, 3), np.finfo(np.float32).max, np.float32)  # sums past float32, not float64
    assert all_finite(big) and all_finite(-big)
    for bad in (np.nan, np.inf, -np.inf):
        x = np.zeros((50, 50), np.float32)
        x[7, 9] = bad
        assert not all_finite(x)


# ---------------------------------------------------------------- item 7: lying model cards


def _card_file(tmp_path: Path, name: str, change: dict, tensors: dict | None = None) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from imdenoise.models.weights import CARD_KEY, SHIPPED_DIR

    src = SHIPPED_DIR / "gray.safetensors"
    with safe_open(str(src), framework="pt") as f:
        card = json.loads(f.metadata()[CARD_KEY])
    for key, value in change.items():
        if key.startswith("config."):
            card["config"][key.split(".", 1)[1]] = value
        else:
            card[key] = value
    path = tmp_path / f"{name}.safetensors"
    save_file(load_file(str(src)) if tensors is None else tensors, str(path), metadata={CARD_KEY: json.dumps(card)})
    return path


@pytest.mark.parametrize("name,change,field", [
    ("unknown_key", {"config.colour": True}, "config.colour"),
    ("string_for_bool", {"config.residual": "sometimes"}, "config.residual"),
    ("string_for_int", {"in_channels": "three"}, "in_channels"),
    ("unknown_arch", {"architecture": "transformer9000"}, "architecture"),
    ("wrong_widths", {"config.widths": [64, 96, 200]}, "wrong shapes"),
])
def test_lying_card_is_a_weights_error_naming_the_field(tmp_path: Path, name: str, change: dict, field: str,
                                                       capsys) -> None:
    from imdenoise.models.weights import load_model

    path = _card_file(tmp_path, name, change)
    with pytest.raises(WeightsError, match=field) as info:
        load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    png = tmp_path / "in.png"
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(png)
    code, _, err = run_cli(["denoise", str(png), "-o", str(tmp_path / "o.png"), "--model", str(path)], capsys)
    assert code == 2 and field in _one_line_error(err)


def test_card_sizing_a_huge_network_is_refused_before_anything_is_built(tmp_path: Path, monkeypatch) -> None:
    """`widths: [20000]` (14.4 GB of weights) in a 1.4 kB file: refused from the header's tensor
    shapes; the network is only ever built on the meta device (no memory)."""
    import torch

    from imdenoise.models import weights as weights_io

    path = _card_file(tmp_path, "huge", {"config.widths": [20000], "config.blocks_per_level": 1},
                      tensors={"x": torch.zeros(1)})
    assert path.stat().st_size < 2000  # the shipped card's text and one 4-byte tensor
    builds: list[bool] = []
    real_build = weights_io._build
    monkeypatch.setattr(weights_io, "_build", lambda p, c, meta: builds.append(meta) or real_build(p, c, meta))
    with pytest.raises(WeightsError, match="do not match"):
        weights_io.load_model(path)
    assert builds == [True]


# ---------------------------------------------------------------- item 12: --version


def test_version_prints_imdenoise_and_torch_versions(capsys) -> None:
    from importlib.metadata import version

    import imdenoise

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and f"imdenoise {imdenoise.__version__}" in out and f"torch {version('torch')}" in out


# ---------------------------------------------------------------- items 8, 9: training


def _images(folder: Path) -> Path:
    folder.mkdir()
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    for k in range(4):
        img = 0.5 + 0.3 * np.sin(xx / (3 + k)) * np.cos(yy / (5 + k))
        Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8)).save(folder / f"img{k}.png")
    return folder


def _config(tmp: Path, run: Path, steps: int = 2) -> Path:
    raw = {
        "name": "tiny", "output_dir": str(run),
        "model": {"architecture": "unet", "config": {"widths": [48, 96]}},
        "data": {"train": [str(_images(tmp / "images"))], "channels": 1, "noise": ["gaussian:25"],
                 "patch_size": 32, "batch_size": 2, "workers": 0, "holdout": 1, "val_limit": 1},
        "optim": {"steps": steps, "lr": 1e-3, "precision": "fp32", "threads": 1},
        "log": {"every": 1, "val_every": 100_000, "ckpt_every": 1, "keep_last": 2, "tensorboard": False,
                "progress": False},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_run_killed_before_its_first_checkpoint_can_be_restarted(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    cfg = _config(tmp_path, run)
    run.mkdir()  # what a run killed before its first checkpoint leaves: its config and a log line
    (run / "config.yaml").write_text(cfg.read_text())
    (run / "train_log.jsonl").write_text('{"step": 1}\n')
    code, _, err = run_cli(["train", "--resume", str(run)], capsys)
    assert code == 2 and f"--restart {run}" in _one_line_error(err)
    code, _, err = run_cli(["train", str(cfg)], capsys)
    assert code == 2 and f"--restart {run}" in _one_line_error(err)

    mine = run / "notes.txt"  # a user's file in the folder: nothing may be deleted
    mine.write_text("keep me")
    (run / "checkpoints").mkdir()
    theirs = run / "checkpoints" / "model-from-elsewhere.pt"
    theirs.write_bytes(b"x")
    code, _, err = run_cli(["train", "--restart", str(run)], capsys)
    line = _one_line_error(err)
    assert code == 2 and "model-from-elsewhere.pt" in line and "and 1 more" in line and "refusing" in line
    assert mine.read_text() == "keep me" and theirs.exists() and (run / "train_log.jsonl").exists()

    mine.unlink()
    theirs.unlink()
    code, out, err = run_cli(["train", "--restart", str(run)], capsys)
    assert code == 0, err
    assert (run / "tiny.safetensors").is_file() and "weights:" in out
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2]  # started over: the old line is gone
    code, _, err = run_cli(["train", "--restart", str(tmp_path / "images")], capsys)
    assert code == 2 and "not a run folder" in _one_line_error(err)


def test_unwritable_run_folder_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder's parent should be")
    cfg = _config(tmp_path, blocker / "run")
    code, _, err = run_cli(["train", str(cfg)], capsys)
    line = _one_line_error(err)
    assert code == 2 and "cannot write" in line and "--output-dir" in line


def test_full_disk_during_a_checkpoint_is_a_one_line_error_and_resumable(tmp_path: Path) -> None:
    """A file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes the 7 MB checkpoint write fail like a
    full disk does; the run stops with one line saying to resume, leaving no temporary file."""
    run = tmp_path / "run"
    cfg = _config(tmp_path, run, steps=3)
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000)); "
            "from imdenoise.cli.main import main; main(sys.argv[1:])")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, "train", str(cfg)], capture_output=True, text=True,
                          timeout=300, env=env)
    line = _one_line_error(proc.stderr)
    assert proc.returncode == 2 and "cannot write the checkpoint" in line and f"--resume {run}" in line
    assert not list((run / "checkpoints").glob(".*.tmp")) and not list((run / "checkpoints").glob("ckpt-*.pt"))
    proc = subprocess.run([sys.executable, "-m", "imdenoise", "train", "--restart", str(run)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0 and (run / "tiny.safetensors").is_file(), proc.stderr
