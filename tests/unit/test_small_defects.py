"""Issue 26, item 6: the small defects, one test each; fast."""

from __future__ import annotations

import itertools
import logging
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli

matplotlib.use("Agg")


def test_export_without_the_export_extra_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, out, err = run_cli(["export", "unet-blind", "-o", str(tmp_path / "m.onnx")], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "pip install 'imdenoise[export]'" in err and "onnx" in err
    assert not (tmp_path / "m.onnx").exists()


def _summary(methods: list[str]) -> list[dict]:
    rows = []
    for i, m in enumerate(methods):
        for noise, level, psnr in [("gaussian:15", 15, 31), ("gaussian:25", 25, 29), ("gaussian:50", 50, 26),
                                   ("saltpepper:amount=0.05,salt=0.5", 0.05, 24), ("poisson:peak=30", 30, 25)]:
            rows.append({"method": m, "dataset": "kodak24", "noise": noise, "level": level, "psnr": psnr - 0.1 * i})
    return rows


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_psnr_vs_level_gives_each_kind_its_axis_distinct_colours_and_a_legend_off_the_plots() -> None:
    from imdenoise.evaluation.report import level_figure

    methods = [f"runs/model-number-{i}/model-number-{i}.safetensors" for i in range(12)]
    fig = level_figure(_summary(methods))
    fig.canvas.draw()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert sorted(ax.get_title() for ax in axes) == ["kodak24: gaussian", "kodak24: poisson", "kodak24: saltpepper"]
    sp = next(ax for ax in axes if ax.get_title().endswith("saltpepper"))
    assert all(list(line.get_xdata()) == [0.05] for line in sp.lines)  # at its own level, not at 0 of a sigma axis
    assert sp.get_xlabel() == "amount" and next(ax for ax in axes if "gaussian" in ax.get_title()).get_xlabel() == \
        "sigma (0-255)"
    colors = {}
    for ax in axes:
        for line in ax.lines:
            colors.setdefault(line.get_label(), set()).add(line.get_color() if isinstance(line.get_color(), str)
                                                           else tuple(line.get_color()))
    assert all(len(c) == 1 for c in colors.values())  # one colour per method in every panel
    assert len({next(iter(c)) for c in colors.values()}) == len(methods)  # and no two methods share one
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    assert not any(_boxes_overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer)) for ax in axes)


def test_crops_figure_titles_do_not_overlap() -> None:
    from imdenoise.evaluation.evaluate import Kept
    from imdenoise.evaluation.report import crops_figure

    rng = np.random.default_rng(0)
    clean = rng.random((64, 64, 1)).astype(np.float32)
    names = [f"runs/unmasked-attn-sigma15-s{i}/unmasked-attn-sigma15.safetensors" for i in range(4)]
    k = Kept("kodak24", "gaussian:15", 15, 15, "kodim01", clean, clean + 0.05,
             {n: clean for n in names})
    fig = crops_figure(k, 64)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    top = [ax.title.get_window_extent(renderer) for ax in fig.axes[: len(names) + 2]]
    assert not any(_boxes_overlap(a, b) for a, b in itertools.combinations(top, 2))
    assert "unmasked-attn-sigma15" in fig.axes[1].get_title() and "runs/" not in fig.axes[1].get_title()


def test_self_supervised_run_does_not_print_nan(tmp_path: Path, gray_image: np.ndarray,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from imdenoise.training.config import load_config
    from imdenoise.training.trainer import Trainer

    folder = tmp_path / "noisy"
    folder.mkdir()
    u8 = np.round(gray_image[..., 0] * 255).astype(np.uint8)
    for k in range(3):
        Image.fromarray(u8[40 * k:40 * k + 40, :40]).save(folder / f"n{k}.png")
    raw = {"mode": "selfsupervised", "output_dir": str(tmp_path / "run"),
           "model": {"architecture": "unet-blind", "config": {"widths": [8, 16]}},
           "data": {"noisy": [str(folder)], "patch_size": 32, "batch_size": 2, "workers": 0, "holdout": 1},
           "optim": {"steps": 2, "threads": 1, "precision": "fp32"},
           "log": {"tensorboard": False, "progress": False, "val_every": 2}}
    with caplog.at_level(logging.INFO):
        trainer = Trainer(load_config(raw=raw))
        trainer.fit()
    text = caplog.text
    assert "nan" not in text.lower() and "no validation PSNR: no clean reference images" in text
    assert trainer.history == []


def test_psnr_change_is_signed_either_way() -> None:
    from imdenoise.metrics import psnr_change

    clean = np.full((16, 16, 1), 0.5, np.float32)
    p_in, p_out, line = psnr_change(clean, clean + 0.01, clean + 0.2)  # the output is worse
    assert p_out < p_in and "(-" in line and "+-" not in line
    assert "(+" in psnr_change(clean, clean + 0.2, clean + 0.01)[2]


def test_perceptual_loss_error_names_the_real_key() -> None:
    from imdenoise.errors import ConfigError
    from imdenoise.training.losses import parse_loss

    with pytest.raises(ConfigError) as e:
        parse_loss("l1 + 0.1*vgg", None)
    assert "optim.vgg_weights" in str(e.value) and "loss_weights" not in str(e.value)


def test_datasets_root_is_the_env_then_the_checkouts_neighbour_never_a_guess_inside_site_packages(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """$IMDENOISE_DATASETS wins; a source checkout falls back to ../shared/datasets beside it; an installed
    package (no pyproject.toml above it) to ./datasets, not a folder three levels above site-packages."""
    import imdenoise.paths as paths

    monkeypatch.setenv(paths.DATASETS_ENV, str(tmp_path / "sets"))
    assert paths.datasets_root() == tmp_path / "sets"
    monkeypatch.delenv(paths.DATASETS_ENV)
    repo = Path(paths.__file__).resolve().parents[2]
    assert paths.datasets_root() == repo.parent / "shared" / "datasets"
    installed = tmp_path / "lib" / "python3.11" / "site-packages" / "imdenoise" / "paths.py"
    monkeypatch.setattr(paths, "__file__", str(installed))
    monkeypatch.chdir(tmp_path)
    assert paths.datasets_root() == tmp_path / "datasets"
