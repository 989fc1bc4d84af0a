"""Where data lives: the standard datasets' root (IMDENOISE_DATASETS) and recipe-relative paths."""

from __future__ import annotations

import os
from pathlib import Path

DATASETS_ENV = "IMDENOISE_DATASETS"
DATASETS_TOKEN = "$" + DATASETS_ENV  # a recipe path may start with it: $IMDENOISE_DATASETS/train/bsd400
ASSETS_DIR = Path(__file__).resolve().parent / "assets"  # the bundled sample photos
DATASETS_HINT = (f"the standard sets are not part of the package: put them in one folder and set {DATASETS_ENV} "
                 "to it (README, 'Data')")


def cache_dir(kind: str) -> Path:
    """Where derived files of one kind are cached (ONNX exports, cleaned training sources):
    $IMDENOISE_CACHE/<kind>, by default ~/.cache/imdenoise/<kind>."""
    return Path(os.environ.get("IMDENOISE_CACHE", Path.home() / ".cache" / "imdenoise")) / kind


def datasets_root() -> Path:
    """The standard datasets' folder: $IMDENOISE_DATASETS; else, run from a source checkout, the team's
    `../shared/datasets` beside it; else (an installed package) `datasets` in the working directory."""
    env = os.environ.get(DATASETS_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
    if (repo / "pyproject.toml").is_file() and (repo / "src" / "imdenoise").is_dir():
        return repo.parent / "shared" / "datasets"
    return Path.cwd() / "datasets"


def resolve_data_path(value: str, base: Path | None) -> str:
    """A recipe's data path made absolute: $IMDENOISE_DATASETS expanded, relative paths read from `base`."""
    for token in (DATASETS_TOKEN, "${" + DATASETS_ENV + "}"):
        if value == token or value.startswith(token + "/"):
            return str(datasets_root() / value[len(token) + 1:]) if value != token else str(datasets_root())
    path = Path(value).expanduser()
    if base is None or path.is_absolute():
        return str(path)
    return str((base / path).resolve())


def _under_root(path: str | Path) -> Path | None:
    """The path relative to the datasets' root, or None when it lies elsewhere."""
    try:
        return Path(path).resolve().relative_to(datasets_root().resolve())
    except ValueError:
        return None


def under_datasets_root(path: Path) -> bool:
    """Whether a path points into the standard datasets' folder (a missing one then needs the hint)."""
    return _under_root(path) is not None


def portable(path: str) -> str:
    """A path as a recipe would write it: `$IMDENOISE_DATASETS/...` under the datasets' root (model cards)."""
    rel = _under_root(path)
    return path if rel is None else f"{DATASETS_TOKEN}/{rel.as_posix()}"
