"""Precision resolution: 'auto' follows the hardware; an emulated bf16 request warns instead of silently crawling."""

from __future__ import annotations

import logging

import pytest

from imdenoise import precision
from imdenoise.precision import resolve_precision


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_native_bf16(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": native)
    assert resolve_precision("auto") == ("bf16" if native else "fp32")
    assert resolve_precision("fp32") == "fp32"


def test_emulated_bf16_is_kept_but_warned(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": False)
    with caplog.at_level(logging.WARNING, logger="imdenoise.precision"):
        assert resolve_precision("bf16") == "bf16"
    assert "no native bf16 support" in caplog.text


def test_unknown_precision_is_named() -> None:
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        resolve_precision("fp8")


def test_zeroshot_fast_schedule_resolves_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    from imdenoise.denoisers.zeroshot import ZeroShotConfig

    for native, expected in [(True, "bf16"), (False, "fp32")]:
        monkeypatch.setattr(precision, "native_bf16", lambda device="cpu", n=native: n)
        assert ZeroShotConfig().resolved()["precision"] == expected  # the fast schedule's default is auto
        assert ZeroShotConfig(precision="fp32").resolved()["precision"] == "fp32"
