"""`imdenoise eval`: methods x datasets x noise levels under BENCHMARK.md; table, JSON/CSV, figures.

Folders of real noisy pairs (`<name>_real.*` beside `<name>_mean.*`, ...) are evaluated on their own
noise (label `real`), blind unless `--sigma` is given."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import typer

log = logging.getLogger(__name__)


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def eval_(
    method: str = typer.Option(..., "--method", "-m", help="Method(s), comma-separated: shipped model, weights path, "
                               "classical name (bm3d, nlm, ...) or zeroshot."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Folder(s) of clean images, or of real noisy pairs "
                                "(<name>_real.* beside <name>_mean.*, _noisy/_clean, or noisy/ + clean/), comma-separated."),
    noise: Optional[str] = typer.Option(None, "--noise", "-n",
                                        help="Noise added to the clean-image folders: gaussian:15,25,50 (default), "
                                        "poisson:30, saltpepper:0.05, rician:10, poisson-gaussian:gain=0.01,sigma=5, ...; "
                                        "';' joins specs. Not for real pairs."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write settings, summary and per-image rows as JSON."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write per-image rows as CSV."),
    figures: Optional[Path] = typer.Option(None, "--figures", help="Folder for crop comparisons and the PSNR plot (PNG)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images (by name) of each dataset."),
    sigma_known: bool = typer.Option(True, "--sigma-known/--blind", help="Give methods the true sigma (default), "
                                     "or let them estimate it. Real pairs have no true sigma: blind."),
    sigma: Optional[float] = typer.Option(None, "--sigma", help="Give every method this noise level (0-255) on every "
                                          "set, e.g. a model at a fixed sigma on real pairs."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Force 1 (gray) or 3 (RGB); default: by dataset."),
    threads: int = typer.Option(2, "--threads", help="torch threads (the protocol uses 2)."),
    ensemble: int = typer.Option(1, "--ensemble", help="Networks average 1 (off), 2, 4 or 8 flipped/rotated passes."),
    crop: int = typer.Option(128, "--crop", help="Size of the crops in the figures (pixels)."),
    lpips_weights: Optional[Path] = typer.Option(None, "--lpips-weights",
                                                 help="Local LPIPS (AlexNet) state dict: adds an LPIPS column."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --json/--csv/figure files."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    warmup: bool = typer.Option(True, "--warmup/--no-warmup", help="One untimed call per method and set before "
                                "timing (the protocol); skip it for slow per-image methods such as zeroshot."),
) -> None:
    """Evaluate denoisers under the benchmark protocol (BENCHMARK.md) and print a markdown table."""
    from imdenoise.arrays import checked_sigma
    from imdenoise.evaluation.evaluate import (
        REAL_LABEL,
        EvalSettings,
        EvaluationError,
        evaluate,
        is_pairs_folder,
        load_dataset,
        noise_label,
        parse_levels,
        summarize,
    )
    from imdenoise.evaluation.report import (
        check_writable,
        figure_paths,
        load_lpips,
        markdown_table,
        write_csv,
        write_figures,
        write_json,
    )

    names = _split(method)
    if not names:
        raise EvaluationError("give at least one method with --method")
    if len(set(names)) != len(names):
        raise EvaluationError(f"a method is listed twice in --method {method!r}")
    if threads < 1 or crop < 16:
        raise EvaluationError("--threads must be >= 1 and --crop >= 16")
    if sigma is not None:
        sigma = checked_sigma(sigma, "--sigma")
        if not sigma_known:
            raise EvaluationError("--sigma gives every method a fixed level and --blind none: choose one")
    dirs = _split(dataset)
    if not dirs:
        raise EvaluationError("give at least one dataset folder with --dataset")
    for d in dirs:
        if not Path(d).is_dir():
            raise EvaluationError(f"dataset {d}: no such directory")
    dataset_names = [Path(d).name for d in dirs]
    if len(set(dataset_names)) != len(dataset_names):
        raise EvaluationError("two dataset folders share a name; the table could not tell them apart")
    real_sets = [Path(d).name for d in dirs if is_pairs_folder(d)]
    if noise is not None and len(real_sets) == len(dirs):
        raise EvaluationError(f"--noise does not apply to real noisy pairs ({', '.join(real_sets)}: the noise is "
                              "in the photos); drop --noise")
    levels = parse_levels(noise if noise is not None else "gaussian:15,25,50")
    fig_files = figure_paths(figures, dataset_names, [noise_label(m) for m in levels], real_sets) if figures else []
    if figures is not None and figures.exists() and not figures.is_dir():
        raise EvaluationError(f"--figures {figures}: exists and is not a folder")
    check_writable([json_path, csv_path, *(p for p in fig_files if p.exists())], overwrite)
    lpips_fn = load_lpips(lpips_weights) if lpips_weights is not None else None
    methods = _load_methods(names, ensemble)
    datasets = [load_dataset(d, channels=channels, limit=limit) for d in dirs]
    settings = EvalSettings(sigma_known=sigma_known, fixed_sigma=sigma, threads=threads, warmup=warmup,
                            limit=limit, progress=progress)
    kept: list[Any] | None = [] if figures else None
    records = evaluate(methods, datasets, levels, settings, lpips_fn=lpips_fn, kept=kept)
    summary = summarize(records)
    typer.echo(markdown_table(summary))
    meta = {"methods": names, "datasets": [str(d.path) for d in datasets],
            "channels": {d.name: d.channels for d in datasets},
            "noise": ([noise_label(m) for m in levels] if len(real_sets) < len(datasets) else [])
            + ([REAL_LABEL] if real_sets else []),
            "real_pairs": real_sets, "sigma_known": sigma_known, "sigma": sigma, "threads": threads,
            "ensemble": ensemble, "limit": limit,
            "warmup": settings.warmup, "lpips_weights": str(lpips_weights) if lpips_weights else None}
    if json_path:
        typer.echo(f"json: {write_json(json_path, records, summary, meta)}")
    if csv_path:
        typer.echo(f"csv: {write_csv(csv_path, records)}")
    if figures and kept is not None:
        for p in write_figures(figures, kept, summary, crop=crop):
            typer.echo(f"figure: {p}")


def _load_methods(names: list[str], ensemble: int = 1) -> dict[str, Any]:
    """Resolve every method before any work, so that a typo fails at once."""
    from imdenoise.denoisers.catalog import load
    from imdenoise.errors import ImDenoiseError
    from imdenoise.evaluation.evaluate import EvaluationError

    methods = {}
    for name in names:
        try:
            methods[name] = load(name, ensemble=ensemble)
        except ImDenoiseError:
            raise
        except Exception as exc:
            raise EvaluationError(f"cannot load method {name!r}: {type(exc).__name__}: {exc}") from None
    return methods
