"""Rician (magnitude MRI) and Poisson-Gaussian (fluorescence microscopy) noise: statistics against
the closed forms, spec forms, and the kinds in `imdenoise noise`, training configs and `eval`; fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from imdenoise.errors import NoiseSpecError
from imdenoise.noise.models import PoissonGaussianNoise, RicianNoise, parse_noise, rician_moments
from tests.conftest import run_cli


@pytest.mark.parametrize("signal", [0.0, 0.02, 0.1, 0.5])
def test_rician_mean_and_variance_match_the_formulas(signal: float) -> None:
    s = 12 / 255
    noisy = parse_noise("rician:12")(np.full((500, 500), signal, np.float32), np.random.default_rng(1))
    mean, var = rician_moments(np.array(signal), s)
    assert noisy.min() >= 0  # a magnitude
    assert noisy.mean() == pytest.approx(float(mean), rel=0.01, abs=2e-4)
    assert noisy.var() == pytest.approx(float(var), rel=0.02)
    if signal == 0.0:  # Rayleigh: mean s sqrt(pi/2), variance (2 - pi/2) s^2
        assert float(mean) == pytest.approx(s * np.sqrt(np.pi / 2))
        assert float(var) == pytest.approx((2 - np.pi / 2) * s * s)
    if signal == 0.5:  # high SNR: close to Gaussian, mean ~ sqrt(x^2 + s^2)
        assert float(mean) == pytest.approx(np.sqrt(signal ** 2 + s ** 2), rel=1e-3)


@pytest.mark.parametrize("gain, sigma, offset", [(0.01, 5.0, 0.0), (0.002, 10.0, 0.1), (0.0, 8.0, 0.0)])
def test_poisson_gaussian_mean_is_the_signal_and_variance_gain_signal_plus_sigma2(
        gain: float, sigma: float, offset: float) -> None:
    model = parse_noise(f"poisson-gaussian:gain={gain},sigma={sigma},offset={offset}")
    assert isinstance(model, PoissonGaussianNoise)
    for signal in (0.05, 0.3, 0.8):
        noisy = model(np.full((400, 400), signal, np.float32), np.random.default_rng(2))
        expected_var = gain * max(signal - offset, 0) + (sigma / 255) ** 2
        assert noisy.mean() == pytest.approx(signal, abs=3e-4)
        assert noisy.var() == pytest.approx(expected_var, rel=0.03)


def test_spec_forms_and_errors() -> None:
    assert parse_noise("rician:10") == RicianNoise(10.0)
    assert parse_noise("poisson-gaussian:0.01:5") == parse_noise("pg:gain=0.01,sigma=5")
    assert parse_noise("poisson_gaussian:gain=0.01,sigma=5,offset=0.1").offset == 0.1
    assert parse_noise(parse_noise("rician:5-20").spec) == parse_noise("rician:5-20")
    with pytest.raises(NoiseSpecError, match="needs sigma"):
        parse_noise("poisson-gaussian:gain=0.01")
    with pytest.raises(NoiseSpecError, match="gain"):
        parse_noise("poisson-gaussian:gain=2,sigma=1")
    with pytest.raises(NoiseSpecError, match="sigma"):
        parse_noise("rician:300")


def test_noise_command_writes_rician_16bit_tiff(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    clean = (np.linspace(0, 40000, 64 * 64).reshape(64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "mri.tif", clean)
    code, _, err = run_cli(["noise", str(tmp_path / "mri.tif"), "-o", str(tmp_path / "out.tif"),
                            "--noise", "rician:10", "--seed", "3"], capsys)
    assert code == 0, err
    out = tifffile.imread(tmp_path / "out.tif")
    assert out.dtype == np.uint16 and out.shape == clean.shape  # 16-bit end to end
    assert out[:8].astype(float).mean() > clean[:8].astype(float).mean() + 1000  # the dark rows' upward bias
    code, _, err = run_cli(["noise", str(tmp_path / "mri.tif"), "-o", str(tmp_path / "x.tif"),
                            "--noise", "rican:10"], capsys)
    assert code == 2 and "unknown noise kind" in err and "Traceback" not in err


def test_eval_and_training_config_take_the_new_kinds(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      gray_image: np.ndarray) -> None:
    from PIL import Image

    from imdenoise.training.config import load_config

    cfg = load_config(raw={"data": {"train": ["x"], "noise": ["rician:5-20", "poisson-gaussian:gain=0.01,sigma=2"],
                                    "val_noise": "rician:10"}})
    assert cfg.data.noise[0] == "rician:5-20"
    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(np.round(gray_image[:64, :64, 0] * 255).astype(np.uint8)).save(folder / "a.png")
    code, out, err = run_cli(["eval", "--method", "median", "--dataset", str(folder), "--noise",
                              "rician:10;poisson-gaussian:gain=0.01,sigma=5", "--no-progress"], capsys)
    assert code == 0, err
    assert "rician:sigma=10" in out and "poisson-gaussian:gain=0.01,sigma=5,offset=0" in out
