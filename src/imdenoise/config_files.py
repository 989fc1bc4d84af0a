"""Reading recipe and config files as text, with a ConfigError (not a traceback) for any bad file."""

from __future__ import annotations

from pathlib import Path

from imdenoise.errors import ConfigError

MAX_CONFIG_BYTES = 1_000_000  # a recipe is a few kB; anything this large is not one


def read_config_text(path: str | Path) -> str:
    """The UTF-8 text of a config file; missing, unreadable, binary or oversized files are named errors."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        size = p.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: {size} bytes is too large for a config file (limit {MAX_CONFIG_BYTES})")
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a text config file (not UTF-8 at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None


def parse_config_file(path: str | Path) -> object:
    """The parsed content of a JSON (by suffix) or YAML config file (safe loaders only), with a
    one-line ConfigError naming the file, line and problem when it does not parse."""
    import json

    import yaml

    p = Path(path)
    text = read_config_text(p)
    if p.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{p}: not valid JSON: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML: {where}{problem}") from None
