"""`imdenoise train`: run a training recipe, or resume a run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imdenoise.errors import ConfigError


def train(
    config: Optional[Path] = typer.Argument(None, help="YAML training recipe (see configs/)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config value: key.sub=value (repeatable)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Resume the run in this directory."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Run directory (default: the config's)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write weights of this run directory's newest checkpoint (EMA) and stop."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="With --export: the output .safetensors path."),
) -> None:
    """Train a denoiser from a config file; checkpoints resume exactly (`--resume RUN_DIR`)."""
    from imdenoise.train import export_run, run_training
    from imdenoise.train_config import load_config

    if export is not None:
        if weights is not None and weights.exists():
            raise ConfigError(f"{weights}: output exists; choose another path")
        typer.echo(f"weights: {export_run(export, weights)}")
        return
    if resume is not None:
        if config is not None:
            raise ConfigError("give either CONFIG or --resume RUN_DIR, not both")
        cfg_path = resume / "config.yaml"
        if not cfg_path.is_file():
            raise ConfigError(f"{resume}: not a run directory (no config.yaml)")
        cfg = load_config(cfg_path, set_, paths_from_file=False)  # a run saves absolute paths
        result = run_training(cfg, resume, resume=True)
    else:
        if config is None:
            raise ConfigError("give a CONFIG file or --resume RUN_DIR")
        cfg = load_config(config, set_)
        result = run_training(cfg, output_dir, resume=False)
    if result:
        typer.echo(f"weights: {result}")
