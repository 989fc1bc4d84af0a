"""The limits of `imdenoise serve`, torch- and FastAPI-free: the CLI shows these defaults in `--help`
and restates none of them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_PIXELS = 25_000_000  # 25 MP: about 300 MB of float32 RGB per job while it runs


class ServerSettings(BaseModel):
    """Every limit of `imdenoise serve`; limits are per worker process."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes (each has its own limits)")
    max_bytes: int = Field(25 * 2**20, ge=1024, description="largest accepted upload, in bytes")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, description="largest accepted image, width x height")
    max_jobs: int = Field(2, ge=1, le=256, description="jobs running at once (worker threads)")
    queue: int = Field(8, ge=0, le=10_000, description="jobs waiting beyond max_jobs; more get 503")
    timeout: float = Field(120.0, gt=0, description="seconds a job may take, waiting time included")
    methods: list[str] | None = Field(None, description="methods offered (default: all available)")
    tmp_dir: Path | None = Field(None, description="parent of the per-job private temp folders")
    limit_concurrency: int = Field(200, ge=1, le=100_000, description="open connections at most (past it the "
                                   "oldest one not yet sending a request is closed); keep it under ulimit -n")
    timeout_keep_alive: int = Field(5, ge=1, le=3600, description="seconds an idle connection, or one that "
                                    "has not sent its request head, stays open")
