"""`imdenoise` entry point: builds the typer app and turns user errors into one-line messages."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from imdenoise.errors import ImDenoiseError

app = typer.Typer(
    name="imdenoise",
    help="Image denoising: pretrained U-Nets, classical filters, training, evaluation, export, web service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (command name, module under imdenoise.cli, function name). Command modules import heavy
# libraries (torch, skimage) inside their functions so that `imdenoise --help` stays fast.
COMMANDS: list[tuple[str, str, str]] = [
    ("noise", "io_cmds", "noise"),
    ("metrics", "io_cmds", "metrics"),
    ("denoise", "denoise_cmd", "denoise"),
    ("models", "denoise_cmd", "models"),
    ("demo", "demo_cmd", "demo"),
    ("train", "train_cmd", "train"),
    ("serve", "serve_cmd", "serve"),
    ("eval", "eval_cmd", "eval_"),
    ("zeroshot", "zeroshot_cmd", "zeroshot"),
    ("export", "export_cmd", "export"),
    ("prune", "export_cmd", "prune"),
]


def _register() -> None:
    for name, module, func in COMMANDS:
        app.command(name)(getattr(importlib.import_module(f"imdenoise.cli.{module}"), func))


_register()


def _version_text() -> str:
    """`imdenoise X (torch Y, Python Z)`: what a bug or security report needs; torch's version is read
    from its package metadata, so `--version` stays fast and works even when torch is broken."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from imdenoise import __version__

    try:
        torch_version = version("torch")
    except PackageNotFoundError:
        torch_version = "not installed"
    return f"imdenoise {__version__} (torch {torch_version}, Python {platform.python_version()})"


def _show_version(value: bool) -> None:
    """Eager --version callback: print the versions and stop before any command runs."""
    if value:
        typer.echo(_version_text())
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Print the imdenoise, torch and Python versions and exit."),
) -> None:
    """Image denoising: pretrained U-Nets, classical filters, training, evaluation, export, web service."""


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; an ImDenoiseError becomes `error: <message>` on stderr and exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except ImDenoiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        # typer may bundle its own copy of click: recognise click's exceptions by their interface
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
