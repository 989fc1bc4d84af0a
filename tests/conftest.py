"""Shared fixtures: where the standard datasets are, and small real images for tests."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from imdenoise.paths import DATASETS_HINT, datasets_root

ROOT = Path(__file__).resolve().parents[1]
DATASETS = datasets_root()  # $IMDENOISE_DATASETS, else ../shared/datasets beside the checkout


ASSETS = ROOT / "src" / "imdenoise" / "assets"  # bundled real photos: the fallback without datasets


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared datasets folder; tests needing it are skipped when it is absent."""
    if not DATASETS.is_dir():
        pytest.skip(f"datasets folder not found: {DATASETS}; {DATASETS_HINT}")
    return DATASETS


def _load_u8(path: Path, color: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB" if color else "L"))
    return arr if color else arr[..., None]


@pytest.fixture(scope="session")
def gray_image() -> np.ndarray:
    """BSD68 test001 (or the bundled gray sample photo) as float32 HxWx1 in [0, 1], quantized to 8 bits."""
    path = DATASETS / "test" / "bsd68" / "test001.png"
    if not path.is_file():
        path = ASSETS / "sample_gray.png"
    return (_load_u8(path, color=False) / 255.0).astype(np.float32)


@pytest.fixture(scope="session")
def color_image() -> np.ndarray:
    """Kodak24 kodim01 crop (or the bundled color sample photo) as float32 HxWx3 in [0, 1], 8-bit quantized."""
    path = DATASETS / "test" / "kodak24" / "kodim01.png"
    if not path.is_file():
        path = ASSETS / "sample.png"
    return (_load_u8(path, color=True)[:256, :256] / 255.0).astype(np.float32)


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run `imdenoise ...` in-process; (exit code, stdout, stderr)."""
    from imdenoise.cli.main import main

    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def load_script(relpath: str) -> ModuleType:
    """A repository script (benchmarks/, scripts/) as a module, for the tests of that script itself."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(relpath).stem, ROOT / relpath)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
