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
    restart: Optional[Path] = typer.Option(None, "--restart", help="Start the run in this directory over from step 0 "
                                           "(with its config.yaml, or CONFIG): deletes the run's own checkpoints, "
                                           "logs and weights, and refuses if the folder holds anything else."),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", help="Run directory (default: the config's)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Write weights of this run directory's newest checkpoint (EMA) and stop."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="With --export: the output .safetensors path."),
) -> None:
    """Train a denoiser from a config file; checkpoints resume exactly (`--resume RUN_DIR`)."""
    from imdenoise.training.config import load_config
    from imdenoise.training.trainer import clear_run, export_run, run_files, run_training

    if export is not None:
        if weights is not None and weights.exists():
            raise ConfigError(f"{weights}: output exists; choose another path")
        typer.echo(f"weights: {export_run(export, weights)}")
        return
    if restart is not None:
        if resume is not None or output_dir is not None:
            raise ConfigError("--restart RUN_DIR names the run folder; give it without --resume or --output-dir")
        run_files(restart)  # refuses (deleting nothing) unless the folder holds only the run's own files
        cfg = load_config(config if config is not None else restart / "config.yaml", set_)
        clear_run(restart)
        result = run_training(cfg, restart, resume=False)
    elif resume is not None:
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
