"""benchmarks/speed.py: rows time registry architectures and shipped models; unknown names are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_script


def _speed_module():
    return load_script("benchmarks/speed.py")  # a test of the benchmark script itself


@pytest.mark.parametrize("name", ["unet", "gray"])
def test_row_times_architecture_or_shipped_model(tmp_path: Path, name: str) -> None:
    row = _speed_module().run_row(name, 48, 1, "eager", repeats=1, threads=1, workdir=tmp_path)
    assert row["sec"] > 0 and row["mpx_s"] == pytest.approx(48 * 48 / 1e6 / row["sec"]) and row["rss_mb"] > 0


def test_shipped_name_resolves_to_the_shipped_shape_and_weights() -> None:
    """What a shipped model's row times: the card's architecture config (not the registry default) and
    the shipped tensors."""
    import torch
    from safetensors.torch import load_file

    from imdenoise.models.registry import build_model
    from imdenoise.models.weights import SHIPPED_DIR, load_network

    model, card = load_network("gray", 1)
    assert model.config.model_dump(mode="json").items() >= card.config.items()  # the card lists non-defaults
    assert list(model.state_dict()) != list(build_model("unet").state_dict())  # the shipped shape differs
    shipped = load_file(str(SHIPPED_DIR / "gray.safetensors"))
    state = model.state_dict()
    assert set(shipped) == set(state)
    assert all(torch.equal(state[k], shipped[k].float()) for k in shipped)


def test_unknown_name_is_refused(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _speed_module().main(["--archs", "nosuchnet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "nosuchnet" in err and "shipped models: color, gray" in err
