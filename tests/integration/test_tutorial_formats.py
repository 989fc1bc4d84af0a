"""The tutorials' own formats: the MNIST tutorial's .npy arrays, the engineering guide's simple CNN,
a plain .pth state dict of a colour network (channels read off the weights); fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imdenoise.errors import ConfigError
from imdenoise.models.registry import ARCHITECTURES, build_model, list_models
from imdenoise.models.weights import load_model
from imdenoise.training.config import load_config
from imdenoise.training.data import build_datasets
from tests.conftest import run_cli


@pytest.mark.parametrize("dtype, scale", [(np.uint8, 255), (np.float32, 1.0), (np.float32, 255.0)])
def test_mnist_tutorial_npy_stack_is_training_data(tmp_path: Path, dtype: type, scale: float) -> None:
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (30, 28, 28)).astype(np.float32)
    np.save(tmp_path / "x_train.npy", (digits / 255 * scale).astype(dtype))
    cfg = load_config(raw={"model": {"architecture": "unet-mnist"},
                           "data": {"train": [str(tmp_path / "x_train.npy")], "patch_size": 28, "augment": False,
                                    "holdout": 5, "val_limit": 3, "noise": ["gaussian:50"]}})
    dataset, val = build_datasets(cfg)
    assert len(dataset.images) == 25 and len(val) == 3
    assert dataset.images[0].dtype == np.uint8 and dataset.images[0].shape == (28, 28, 1)
    np.testing.assert_allclose(dataset.images[0][..., 0], digits[0], atol=1)  # same digits, 0-255
    sample = dataset[0]
    assert tuple(sample["noisy"].shape) == (1, 28, 28) and 0 <= float(sample["target"].max()) <= 1


def test_color_npy_stack_and_bad_arrays(tmp_path: Path) -> None:
    np.save(tmp_path / "rgb.npy", np.zeros((4, 16, 16, 3), np.uint8))
    cfg = load_config(raw={"data": {"train": [str(tmp_path / "rgb.npy")], "channels": 3, "patch_size": 16,
                                    "holdout": 1}})
    assert build_datasets(cfg)[0].images[0].shape == (16, 16, 3)
    np.save(tmp_path / "flat.npy", np.zeros((10, 10), np.uint8))
    cfg = load_config(raw={"data": {"train": [str(tmp_path / "flat.npy")], "holdout": 1}})
    with pytest.raises(ConfigError, match="stack of images.*got shape \\(10, 10\\)"):
        build_datasets(cfg)


def test_simple_cnn_of_the_engineering_guide() -> None:
    assert "simple-cnn" in ARCHITECTURES and any(m.name == "simple-cnn" for m in list_models())
    net = build_model("simple-cnn", in_channels=1)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d) and not isinstance(m, torch.nn.ConvTranspose2d)]
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == 2 and all(c.stride == (2, 2) for c in convs) and len(ups) == 2
    with torch.no_grad():
        out = net(torch.rand(2, 1, 28, 28) * 4 - 2)
    assert out.shape == (2, 1, 28, 28) and float(out.min()) >= 0 and float(out.max()) <= 1  # sigmoid
    with pytest.raises(ValueError, match="in_channels"):
        build_model("simple-cnn", in_channels=7)


@pytest.mark.parametrize("arch, config", [("dncnn", {"depth": 3, "features": 8}), ("simple-cnn", {"features": 8})])
def test_plain_pth_state_dict_of_a_color_net_loads_with_its_channels(tmp_path: Path, arch: str,
                                                                      config: dict) -> None:
    net = build_model(arch, in_channels=3, **config)
    torch.save(net.state_dict(), tmp_path / "color.pth")
    model, card = load_model(tmp_path / "color.pth", arch, **config)
    assert card.in_channels == 3 and model.in_channels == 3
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.full((1,), 0.1)), net.eval()(x, torch.full((1,), 0.1)))
    torch.save(build_model(arch, in_channels=1, **config).state_dict(), tmp_path / "gray.pth")
    assert load_model(tmp_path / "gray.pth", arch, **config)[1].in_channels == 1


def test_denoise_cli_takes_a_color_pth_without_a_channels_option(tmp_path: Path, color_image: np.ndarray,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from imdenoise.io.images import read_image, write_image

    torch.save(build_model("dncnn", in_channels=3).state_dict(), tmp_path / "net.pth")
    src = write_image(tmp_path / "in.png", color_image[:32, :32], dtype="uint8")
    code, _, err = run_cli(["denoise", str(src), "-o", str(tmp_path / "out.png"), "--model",
                            str(tmp_path / "net.pth"), "--arch", "dncnn", "--sigma", "25"], capsys)
    assert code == 0, err
    assert read_image(tmp_path / "out.png").data.shape == (32, 32, 3)


def test_export_takes_a_color_pth_and_the_new_architectures_export(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("onnxruntime")
    from imdenoise.models.weights import load_network

    torch.save(build_model("simple-cnn", in_channels=3).state_dict(), tmp_path / "net.pth")
    net, card = load_network(tmp_path / "net.pth", 1, "simple-cnn")
    assert net.in_channels == 3 and card.in_channels == 3
    for name in ("simple-cnn", "unet-mask"):  # exported, and checked against torch before writing
        code, out, err = run_cli(["export", name, "-o", str(tmp_path / f"{name}.onnx")], capsys)
        assert code == 0 and "max |onnxruntime - torch|" in out, err
