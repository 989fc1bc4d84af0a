"""`imdenoise serve`: the web page and HTTP API (FastAPI app served by uvicorn)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Optional

import typer

from imdenoise.errors import ConfigError
from imdenoise.server.settings import ServerSettings

GUARDED_PROTOCOL = "imdenoise.server.net:GuardedHTTPProtocol"  # connection cap and head deadline


def check_port_free(host: str, port: int) -> None:
    """Refuse a host:port another program listens on (or this user may not bind) before saying we serve."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: not an address of this machine ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            sock.bind(addr)
        except OSError as exc:
            hint = "another server is using it; choose another --port" if exc.errno == errno.EADDRINUSE else \
                "choose another --port or --host"
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; {hint}") from None


# the library's defaults, shown in --help and never restated here
_S = {name: f.default for name, f in ServerSettings.model_fields.items()}


def serve(
    host: str = typer.Option(_S["host"], help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(_S["port"], help="TCP port."),
    workers: int = typer.Option(_S["workers"], help="Worker processes; each loads its own models and has its own limits."),
    max_bytes: int = typer.Option(_S["max_bytes"], "--max-bytes", help="Largest accepted upload in bytes (413 above)."),
    max_pixels: int = typer.Option(_S["max_pixels"], "--max-pixels", help="Largest accepted image, width x height (413 above)."),
    max_jobs: int = typer.Option(_S["max_jobs"], "--max-jobs", help="Jobs denoised at once, per worker."),
    queue: int = typer.Option(_S["queue"], "--queue", help="Jobs waiting beyond --max-jobs; more get 503 with Retry-After."),
    timeout: float = typer.Option(_S["timeout"], "--timeout", help="Seconds a job may take, waiting included (503 after)."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Comma-separated methods to offer (default: all)."),
    tmp_dir: Optional[Path] = typer.Option(None, "--tmp-dir", help="Where per-job private temp folders go."),
    limit_concurrency: int = typer.Option(_S["limit_concurrency"], "--limit-concurrency", help="Open connections at most, per worker "
                                          "(past it the oldest one that has sent no request is closed); "
                                          "keep it well under `ulimit -n`."),
    timeout_keep_alive: int = typer.Option(_S["timeout_keep_alive"], "--timeout-keep-alive", help="Seconds an idle connection, or one "
                                           "that has not sent its request head yet, stays open."),
    root_path: str = typer.Option("", "--root-path", help="URL prefix when a reverse proxy serves this at a sub-path."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the denoising page at / and the API at /api/v1 (docs at /docs)."""
    try:
        import uvicorn
        from pydantic import ValidationError

        from imdenoise.server.app import SETTINGS_ENV, create_app
        from imdenoise.server.jobs import ServerSettings
    except ImportError as exc:
        raise ConfigError(f"the web service needs the server extra: pip install 'imdenoise[server]' ({exc})") from None
    try:
        settings = ServerSettings(
            host=host, port=port, workers=workers, max_bytes=max_bytes, max_pixels=max_pixels, max_jobs=max_jobs,
            queue=queue, timeout=timeout, tmp_dir=tmp_dir, limit_concurrency=limit_concurrency,
            timeout_keep_alive=timeout_keep_alive,
            methods=[m.strip() for m in methods.split(",") if m.strip()] if methods else None)
    except ValidationError as exc:
        raise ConfigError("invalid server option: " + "; ".join(
            f"--{'-'.join(str(x) for x in e['loc']).replace('_', '-')}: {e['msg']}" for e in exc.errors())) from None
    if settings.methods is not None:
        from imdenoise.server.jobs import ModelCache

        valid = ModelCache().names()  # every method this installation offers
        unknown = [m for m in settings.methods if m not in valid]
        if unknown:
            raise ConfigError(f"--methods: unknown method{'s' if len(unknown) > 1 else ''} "
                              f"{', '.join(map(repr, unknown))}; valid names: {', '.join(valid)}")
    check_port_free(host, port)
    typer.echo(f"imdenoise serving on http://{host}:{port}/ (API docs at /docs); Ctrl+C stops")
    net: dict[str, Any] = dict(host=host, port=port, log_level=log_level, root_path=root_path, http=GUARDED_PROTOCOL,
               limit_concurrency=limit_concurrency, timeout_keep_alive=timeout_keep_alive)
    if workers == 1:
        uvicorn.run(create_app(settings), **net)
        return
    os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump(mode="json"))
    uvicorn.run("imdenoise.server.app:create_app_from_env", factory=True, workers=workers, **net)
