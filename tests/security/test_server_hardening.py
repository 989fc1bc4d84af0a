"""Second hardening round, server side (issue 25): admission before the body is read, per-method pixel
limits, no server path or internal message in any response (500/507 generic), connection guards and
a log that connection churn cannot flood. Memory figures: benchmarks/hardening.py (docs/hardening.md)."""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import socket
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_server_api import assert_error, png_bytes, post  # noqa: E402
from test_server_load import start_server, stop_server  # noqa: E402

from imdenoise.server import jobs as server_jobs  # noqa: E402
from imdenoise.server.app import create_app  # noqa: E402
from imdenoise.server.jobs import ServerSettings  # noqa: E402


@pytest.fixture()
def app(tmp_path):
    """An app whose job folders go to tmp_path/jobs (a path no response may contain)."""
    (tmp_path / "jobs").mkdir()
    application = create_app(ServerSettings(tmp_dir=tmp_path / "jobs", max_jobs=1, queue=1))
    yield application
    application.state.runner.close()


def _png(side: int = 32, channels: int = 1) -> bytes:
    return png_bytes(np.random.default_rng(0).random((side, side, channels), dtype=np.float32))


# ---------------------------------------------------------------- admission before the body


def test_full_server_refuses_before_reading_the_body(app) -> None:
    """All slots taken: 503 is sent without a single receive() of the request body."""
    runner = app.state.runner
    held = [runner.reserve() for _ in range(runner.capacity)]
    assert all(held) and runner.reserve() is None
    received, sent = [], []

    async def receive():
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/api/v1/denoise", "headers": [], "query_string": b"",
             "root_path": "", "scheme": "http", "server": ("test", 80), "client": ("c", 1), "app": app}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 503 and not received
    assert dict(sent[0]["headers"]).get(b"retry-after")
    for ticket in held:
        ticket.release()
    assert runner.stats()["queued"] == 0


def test_slow_body_gets_408_and_gives_its_slot_back(tmp_path) -> None:
    """A client that stops sending its body is answered 408 after --timeout, and its slot is free."""
    application = create_app(ServerSettings(timeout=0.5, max_jobs=1, queue=0))
    sent = []

    async def receive():
        await asyncio.sleep(30)  # never sends
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    headers = [(b"content-type", b"multipart/form-data; boundary=x")]
    scope = {"type": "http", "method": "POST", "path": "/api/v1/denoise", "headers": headers,
             "query_string": b"", "root_path": "", "scheme": "http", "server": ("test", 80), "client": ("c", 1)}
    start = time.monotonic()
    asyncio.run(asyncio.wait_for(application(scope, receive, send), 10))
    assert sent[0]["status"] == 408 and time.monotonic() - start < 5
    assert b"too slow" in b"".join(m.get("body", b"") for m in sent[1:])
    assert application.state.runner.reserve() is not None  # the slot was given back
    application.state.runner.close()


def test_slot_taken_at_arrival_is_handed_to_the_job_or_given_back(app) -> None:
    """Requests that end without a job (415, 422, 400) give their slot back; a job keeps it to its end."""
    with TestClient(app) as c:
        for _ in range(5):  # more than the 2 slots: a leaked slot would make these 503
            assert post(c, b"GIF89a" + b"\0" * 100, name="x.gif", ctype="image/gif").status_code == 415
            assert post(c, _png(), method="no-such-method").status_code == 422
            assert post(c, b"\x89PNG\r\n\x1a\n" + b"\0" * 50).status_code == 400
            assert post(c, _png(), method="gaussian", sigma=10).status_code == 200
        stats = c.get("/health").json()["jobs"]
    assert stats["running"] == 0 and stats["queued"] == 0 and stats["rejected"] == 0


def test_upload_is_handed_to_the_job_as_a_file_not_bytes(app, monkeypatch) -> None:
    """The body is never read whole into memory: the job gets the parser's spooled file."""
    seen = []
    real = server_jobs.ImageJob.__init__

    def spy(self, source, *args, **kwargs):
        seen.append(source)
        real(self, source, *args, **kwargs)

    monkeypatch.setattr(server_jobs.ImageJob, "__init__", spy)
    with TestClient(app) as c:
        assert post(c, _png(256), method="gaussian", sigma=10).status_code == 200
    assert seen and not isinstance(seen[0], (bytes, bytearray)) and hasattr(seen[0], "read")


# ---------------------------------------------------------------- per-method pixel limit


def test_pixel_limit_follows_each_methods_bytes_per_pixel(tmp_path, monkeypatch) -> None:
    """A method measured at twice the costliest shipped network's memory per pixel gets half the pixels,
    a fixed part counts against the same budget; an image
    over its limit is refused with 413 from the header, naming the method and the limit."""
    table = {**server_jobs.JOB_MEMORY, "default": (0.0, 20.0), "color": (0.0, 10.0), "gray": (50_000.0, 10.0),
             "photo": (0.0, 5.0), "gaussian": (0.0, 40.0), "mean": (0.0, 1.0), "nlm": (100_000.0, 10.0)}
    monkeypatch.setattr(server_jobs, "JOB_MEMORY", table)
    assert server_jobs.job_budget(10_000) == 200_000
    assert server_jobs.pixel_limit("gaussian", 10_000) == 5_000
    assert server_jobs.pixel_limit("mean", 10_000) == 10_000  # never above --max-pixels
    assert server_jobs.pixel_limit("nlm", 10_000) == 10_000  # (200,000 - 100,000) / 10
    assert server_jobs.pixel_limit("nlm", 5_000) == 1  # its fixed part alone is over the budget
    app = create_app(ServerSettings(max_pixels=10_000))
    decoded = []
    import imdenoise.io.formats as fmts

    real_decode = fmts._pillow_to_array
    monkeypatch.setattr(fmts, "_pillow_to_array", lambda *a: decoded.append(1) or real_decode(*a))
    with TestClient(app) as c:
        r = post(c, _png(80), method="gaussian", sigma=10)  # 6,400 px: over 5,000
        assert_error(r, 413, "80x80")
        assert "method 'gaussian'" in r.json()["error"] and "0.005 megapixels" in r.json()["error"]
        assert post(c, _png(80), method="mean", sigma=10).status_code == 200
        assert post(c, _png(70), method="gaussian", sigma=10).status_code == 200  # 4,900 px
    assert len(decoded) == 2  # the refused image was never decoded


def test_every_offered_method_has_a_measured_figure() -> None:
    from imdenoise.denoisers.catalog import available_methods

    missing = [m for m in available_methods() if m not in server_jobs.JOB_MEMORY]
    assert not missing and "preview" in server_jobs.JOB_MEMORY, missing


def test_a_method_not_measured_counts_as_the_budget_method() -> None:
    assert server_jobs.job_memory("some-custom-method") == server_jobs.JOB_MEMORY[server_jobs.BUDGET_METHOD]
    assert server_jobs.pixel_limit("some-custom-method", 25_000_000) == 25_000_000


# ---------------------------------------------------------------- no paths, generic server faults


def _no_internals(r: httpx.Response, jobs: str) -> None:
    assert r.headers["content-type"].startswith("application/json"), r.text
    text = r.text
    assert jobs not in text and "imdenoise-job-" not in text and "/tmp" not in text and "Errno" not in text, text


def test_empty_npy_preview_is_400_without_a_path(app, tmp_path) -> None:
    buf = io.BytesIO()
    np.save(buf, np.zeros((0, 10), np.float32))
    with TestClient(app) as c:
        r = c.post("/api/v1/preview", files={"image": ("e.npy", buf.getvalue(), "application/octet-stream")})
    assert_error(r, 400, "no pixels")
    _no_internals(r, str(tmp_path / "jobs"))


@pytest.mark.parametrize("where", ["copy", "tempdir", "write"])
def test_no_space_for_the_job_is_507_generic(app, tmp_path, monkeypatch, caplog, where) -> None:
    jobs = str(tmp_path / "jobs")
    full = OSError(errno.ENOSPC, "No space left on device", f"{jobs}/imdenoise-job-x/input.png")
    if where == "copy":
        monkeypatch.setattr(server_jobs.shutil, "copyfileobj", lambda *a, **k: (_ for _ in ()).throw(full))
    elif where == "tempdir":
        monkeypatch.setattr(server_jobs.tempfile, "TemporaryDirectory", lambda **k: (_ for _ in ()).throw(full))
    else:
        import imdenoise.io.formats as fmts

        monkeypatch.setattr(fmts, "write_pillow", lambda *a, **k: (_ for _ in ()).throw(full))
    with caplog.at_level(logging.ERROR, logger="imdenoise.server.jobs"), TestClient(app) as c:
        r = post(c, _png(), method="gaussian", sigma=10)
        preview = c.post("/api/v1/preview", files={"image": ("x.png", _png(), "image/png")})
    for resp in (r, preview):
        assert_error(resp, 507, "no storage space")
        _no_internals(resp, jobs)
    assert "No space left" in caplog.text  # the detail is in the log


def test_other_server_faults_are_500_generic(app, tmp_path, monkeypatch, caplog) -> None:
    from imdenoise.errors import ImageWriteError, WeightsError

    jobs = str(tmp_path / "jobs")
    import imdenoise.io.images as iom

    monkeypatch.setattr(iom, "write_image", lambda p, *a, **k: (_ for _ in ()).throw(
        ImageWriteError(f"{p}: cannot write (Permission denied)")))
    with caplog.at_level(logging.ERROR), TestClient(app, raise_server_exceptions=False) as c:
        r = post(c, _png(), method="gaussian", sigma=10)
        assert_error(r, 500, "internal server error")
        _no_internals(r, jobs)
        app.state.models.register("badweights", type("W", (), {
            "name": "w", "denoise": lambda self, im, sigma=None: (_ for _ in ()).throw(
                WeightsError("/srv/models/x.safetensors: checksum mismatch"))})())
        r = post(c, _png(), method="badweights", sigma=10)
        assert_error(r, 500, "internal server error")
        assert "/srv" not in r.text
    assert "Permission denied" in caplog.text and "/srv/models" in caplog.text


def test_nan_result_is_an_error_not_a_200(app) -> None:
    buf = io.BytesIO()
    np.save(buf, np.full((32, 32), 1e38, np.float32))
    with TestClient(app) as c:
        r = post(c, buf.getvalue(), name="x.npy", ctype="application/octet-stream", method="gray", sigma=25)
    assert_error(r, 400, "NaN or infinite")


# ---------------------------------------------------------------- connections and the log


def test_rate_limited_log_aggregates_a_flood() -> None:
    from imdenoise.server.net import RateLimitFilter

    limiter = RateLimitFilter(burst=5, period=0.3)
    records = [logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "Exceeded concurrency limit.", (), None)
               for _ in range(1000)]
    assert sum(limiter.filter(r) for r in records) == 5
    time.sleep(0.35)
    later = logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "Exceeded concurrency limit.", (), None)
    assert limiter.filter(later) and "995 similar messages suppressed" in later.getMessage()
    other = logging.LogRecord("uvicorn.error", logging.WARNING, "", 0, "another message", (), None)
    assert limiter.filter(other)  # each kind of message has its own allowance


def test_serve_options_are_validated(capsys) -> None:
    from conftest import run_cli

    for option, value in (("--limit-concurrency", "0"), ("--timeout-keep-alive", "0")):
        code, _, err = run_cli(["serve", option, value], capsys)
        assert code == 2 and option in err and "Traceback" not in err, err


def test_idle_connections_are_closed_and_health_stays_reachable(tmp_path) -> None:
    """60 connections that never send a request, against --limit-concurrency 20: /health answers at
    once (the oldest idle connection makes room), the idle ones are closed within the keep-alive
    timeout, and the log does not get a line per connection."""
    base, proc = start_server("--limit-concurrency", "20", "--timeout-keep-alive", "1", "--methods", "gaussian")
    port = int(base.rsplit(":", 1)[1])
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
    try:
        start = time.monotonic()
        assert httpx.get(f"{base}/health", timeout=5).status_code == 200
        assert time.monotonic() - start < 3
        time.sleep(2.5)
        closed = 0
        for s in socks:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, TimeoutError, OSError):
                closed += 1
        assert closed == 60
        assert httpx.get(f"{base}/health", timeout=5).json()["status"] == "ok"
    finally:
        for s in socks:
            s.close()
        stop_server(proc)
    log = proc.stderr.read().decode()
    assert log.count("\n") < 20, log[-2000:]
