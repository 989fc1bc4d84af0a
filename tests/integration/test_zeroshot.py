"""Zero-shot Noise2Noise: downsampler, loss, fitting gain, config files, CLI, bad inputs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imdenoise.denoisers.zeroshot import (
    SCHEDULES,
    ZeroShotDenoiser,
    _plateaued,
    load_config,
    make_config,
    pair_downsampler,
    zeroshot_loss,
)
from imdenoise.errors import ConfigError, ImDenoiseError
from imdenoise.metrics import psnr_uint8

FAST_TEST = dict(epoch_count=300, step_size=250, learning_rate=3e-3, progress=False)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the fits are tiny, and 2 threads crawl on a shared, loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def to_u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def test_pair_downsampler_on_hand_made_4x4() -> None:
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    # blocks: [[0,1],[4,5]] [[2,3],[6,7]] / [[8,9],[12,13]] [[10,11],[14,15]]
    d1, d2 = pair_downsampler(x)
    # filter [[0,.5],[.5,0]]: anti-diagonal means (1+4)/2, (3+6)/2, (9+12)/2, (11+14)/2
    assert torch.equal(d1[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    # filter [[.5,0],[0,.5]]: diagonal means (0+5)/2, (2+7)/2, (8+13)/2, (10+15)/2
    assert torch.equal(d2[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    y = torch.tensor([[1.0, 0.0, 2.0, 8.0], [0.0, 3.0, 4.0, 0.0], [0.0, 0.0, 6.0, 0.0], [10.0, 0.0, 0.0, 2.0]])
    d1, d2 = pair_downsampler(y[None, None])
    assert torch.equal(d1[0, 0], torch.tensor([[0.0, 6.0], [5.0, 0.0]]))
    assert torch.equal(d2[0, 0], torch.tensor([[2.0, 1.0], [0.0, 4.0]]))


def test_pair_downsampler_per_channel_and_odd_sizes() -> None:
    x = torch.rand(2, 3, 7, 9)
    d1, d2 = pair_downsampler(x)
    assert d1.shape == d2.shape == (2, 3, 3, 4)
    for c in range(3):  # each channel is downsampled on its own (groups = C)
        e1, e2 = pair_downsampler(x[:, c:c + 1])
        assert torch.allclose(d1[:, c:c + 1], e1) and torch.allclose(d2[:, c:c + 1], e2)
    assert torch.allclose(d2[0, 1, 1, 2], (x[0, 1, 2, 4] + x[0, 1, 3, 5]) / 2)


def test_loss_matches_the_papers_loss_func() -> None:
    torch.manual_seed(0)
    from imdenoise.models.zeroshot_net import ZeroShotNet

    model = ZeroShotNet(in_channels=3)
    noisy = torch.rand(1, 3, 16, 12)

    def loss_func(noisy_img: torch.Tensor) -> torch.Tensor:  # verbatim from the paper's code
        noisy1, noisy2 = pair_downsampler(noisy_img)
        pred1 = noisy1 - model(noisy1)
        pred2 = noisy2 - model(noisy2)
        loss_res = 1 / 2 * (F.mse_loss(noisy1, pred2) + F.mse_loss(noisy2, pred1))
        noisy_denoised = noisy_img - model(noisy_img)
        denoised1, denoised2 = pair_downsampler(noisy_denoised)
        loss_cons = 1 / 2 * (F.mse_loss(pred1, denoised1) + F.mse_loss(pred2, denoised2))
        return loss_res + loss_cons

    assert torch.allclose(zeroshot_loss(model, noisy, "fp32"), loss_func(noisy), rtol=1e-6)
    assert torch.allclose(zeroshot_loss(model, noisy, "bf16"), loss_func(noisy), rtol=0.05)


def test_zeroshot_raises_psnr_on_a_noisy_gray_crop(gray_image: np.ndarray) -> None:
    clean = gray_image[:64, :64, 0]  # BSD68 test001 crop, as HxW
    noisy = clean + (25 / 255) * np.random.default_rng(0).standard_normal(clean.shape, dtype=np.float32)
    den = ZeroShotDenoiser(**FAST_TEST)
    out = den.denoise(noisy)
    assert out.shape == clean.shape and out.dtype == np.float32
    gain = psnr_uint8(to_u8(clean), to_u8(out)) - psnr_uint8(to_u8(clean), to_u8(noisy))
    assert gain >= 3.0, f"zero-shot gained only {gain:.2f} dB"
    assert den.last_fit is not None and den.last_fit.iterations == 300


def test_odd_sized_color_image_with_alpha_keeps_shape_and_alpha(color_image: np.ndarray) -> None:
    rgb = color_image[:21, :33]
    alpha = np.linspace(0, 1, 21 * 33, dtype=np.float32).reshape(21, 33, 1)
    out = ZeroShotDenoiser(epoch_count=5, progress=False).denoise(np.concatenate([rgb, alpha], axis=-1))
    assert out.shape == (21, 33, 4)
    assert np.array_equal(out[..., 3:], alpha)
    assert np.all(np.isfinite(out))


def test_same_seed_same_result(gray_image: np.ndarray) -> None:
    img = gray_image[:24, :40]
    a = ZeroShotDenoiser(epoch_count=5, seed=3, progress=False, precision="fp32").denoise(img)
    b = ZeroShotDenoiser(epoch_count=5, seed=3, progress=False, precision="fp32").denoise(img)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 3), np.float32), "too small"),
    (np.zeros((8, 8, 5), np.float32), "C in 1-4"),
    (np.full((8, 8), np.nan, np.float32), "NaN"),
    ([[0.0, 1.0]], "numpy array"),
])
def test_bad_images_give_clear_errors(bad: object, match: str) -> None:
    with pytest.raises(ImDenoiseError, match=match):
        ZeroShotDenoiser(epoch_count=1, progress=False).denoise(bad)  # type: ignore[arg-type]


def test_schedules_and_overrides() -> None:
    paper = make_config(schedule="paper").resolved()
    assert (paper["learning_rate"], paper["epoch_count"], paper["step_size"], paper["gamma"]) == (1e-3, 2000, 1500, 0.5)
    assert paper["precision"] == "fp32" and paper["patch"] is None and paper["patience"] is None
    assert make_config().schedule == "fast"
    custom = make_config(schedule="paper", epoch_count=10, patch=32, patience=0).resolved()
    assert custom["epoch_count"] == 10 and custom["patch"] == 32 and custom["learning_rate"] == 1e-3
    assert make_config(patch=0).resolved()["patch"] is None
    assert set(SCHEDULES["fast"]) == set(SCHEDULES["paper"])


def test_config_file_with_the_articles_keys(tmp_path) -> None:
    cfg_file = tmp_path / "config.json"
    cfg_file.write_text(json.dumps({"image": "noisy.png", "learning_rate": 0.002, "epoch_count": 300,
                                    "step_size": 200, "gamma": 0.25, "degree": 0.2, "max_bytes": 1000000}))
    cfg = load_config(cfg_file)
    assert cfg.image == tmp_path / "noisy.png"  # relative to the config file
    assert cfg.resolved()["epoch_count"] == 300 and cfg.degree == 0.2 and cfg.max_bytes == 1000000
    assert load_config(cfg_file, epoch_count=7).epoch_count == 7  # command-line flags win
    yml = tmp_path / "c.yaml"
    yml.write_text("schedule: paper\ngamma: 0.1\n")
    assert load_config(yml).resolved()["gamma"] == 0.1


@pytest.mark.parametrize("content, match", [
    ('{"learning_rate": 0.001, "epochs": 10}', "unknown key 'epochs'"),
    ('{"learning_rate": -1}', "learning_rate"),
    ('{"gamma": 2}', "gamma"),
    ('{"schedule": "slow"}', "schedule"),
    ('{"patch": 2}', "patch must be 0"),
    ('{"degree": 25}', r"degree is the noise level on the \[0, 1\] scale.*degree 0.098"),
    ('{"max_bytes": 0}', "max_bytes"),
    ('[1, 2]', "mapping"),
    ('{"learning_rate": ', "not valid"),
])
def test_bad_config_files_name_the_problem(tmp_path, content: str, match: str) -> None:
    p = tmp_path / "config.json"
    p.write_text(content)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def test_missing_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.json")


def test_plateau_detection() -> None:
    assert not _plateaued([1.0] * 10, patience=10)
    assert _plateaued([1.0] * 20, patience=10)
    assert not _plateaued([2.0] * 10 + [1.0] * 10, patience=10)


def test_load_by_name() -> None:
    from imdenoise.denoisers.catalog import load

    den = load("zeroshot", extra={"epoch_count": 3, "schedule": "paper"})
    assert isinstance(den, ZeroShotDenoiser) and den.name == "zeroshot"
    assert den.settings["epoch_count"] == 3


def test_cli_demo_mode_and_errors(tmp_path, gray_image: np.ndarray, capsys) -> None:
    from imdenoise.cli.main import main
    from imdenoise.io.images import read_image, write_image

    src = write_image(tmp_path / "in.png", gray_image[:32, :32], dtype="uint8")
    out = tmp_path / "out.png"
    main(["zeroshot", str(src), "-o", str(out), "--iterations", "20", "--degree", "0.1", "--lr", "0.003"])
    text = capsys.readouterr().out
    assert "demo: Gaussian noise of degree 0.1 (sigma 25.5 of 255)" in text and "PSNR" in text
    assert "+-" not in text and re.search(r"\([+-]\d+\.\d\d dB\)", text)
    assert read_image(out).data.shape == (32, 32, 1)
    with pytest.raises(SystemExit) as exc:  # output exists
        main(["zeroshot", str(src), "-o", str(out), "--iterations", "2"])
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"image": "in.png", "epoch_count": 2, "colour": 1}))
    with pytest.raises(SystemExit) as exc:
        main(["zeroshot", "--config", str(cfg), "-o", str(tmp_path / "o2.png")])
    assert exc.value.code == 2 and "unknown key 'colour'" in capsys.readouterr().err
    cfg.write_text(json.dumps({"image": "in.png", "epoch_count": 2}))
    main(["zeroshot", "--config", str(cfg), "-o", str(tmp_path / "o2.png")])
    assert (tmp_path / "o2.png").is_file()


def test_degree_is_on_the_unit_scale_and_clipped_and_max_bytes_limits_the_file(tmp_path, capsys) -> None:
    """The original config.json: degree 0.2 is strong noise (sigma 51 of 255), the noisy image is clipped,
    and max_bytes refuses a larger input file with a one-line error."""
    from imdenoise.io.images import write_image
    from tests.conftest import run_cli

    flat = np.full((32, 32, 1), 0.95, np.float32)  # near white: clipping at 1 shows
    src = write_image(tmp_path / "in.png", flat, dtype="uint8")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"image": "in.png", "epoch_count": 2, "degree": 0.2}))
    code, out, err = run_cli(["zeroshot", "--config", str(cfg), "-o", str(tmp_path / "o.png")], capsys)
    assert code == 0, err
    p_in = float(re.search(r"PSNR ([\d.]+) dB ->", out).group(1))
    # sigma 51 unclipped would give 20*log10(255/51) = 13.98 dB; clipping at 1 removes much of it
    assert 14.5 < p_in < 20, out
    cfg.write_text(json.dumps({"image": "in.png", "epoch_count": 2, "max_bytes": 10}))
    code, out, err = run_cli(["zeroshot", "--config", str(cfg), "-o", str(tmp_path / "o2.png")], capsys)
    assert code == 2 and "above max_bytes 10" in err and "Traceback" not in err
    assert not (tmp_path / "o2.png").exists()
    cfg.write_text(json.dumps({"image": "in.png", "epoch_count": 2, "max_bytes": src.stat().st_size}))
    code, _, err = run_cli(["zeroshot", "--config", str(cfg), "-o", str(tmp_path / "o3.png")], capsys)
    assert code == 0, err
