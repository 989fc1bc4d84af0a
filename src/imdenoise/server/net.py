"""Connection-level guards of `imdenoise serve` (uvicorn): a hard cap on open connections, a deadline
for a connection to send its request head, and logs that connection churn cannot flood.

uvicorn's own `limit_concurrency` still accepts every connection and answers 503 only once a request
arrives, and its `timeout_keep_alive` starts only after a first response: a client that connects and
sends nothing holds a socket (a file descriptor) forever. `GuardedHTTPProtocol` closes such
connections after `timeout_keep_alive` seconds, and beyond `limit_concurrency` open connections closes the oldest
one that has not sent a request yet, so the open-file limit is never reached and /health stays
reachable."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

log = logging.getLogger("imdenoise.server.app")
FLOOD_LOGGERS = ("uvicorn.error", "uvicorn.access", "asyncio", "imdenoise.server.app", "imdenoise.server.jobs")


class ConnectionStats:
    """Counts of connections closed by the guards, reported in aggregate (one log line per period)."""

    def __init__(self, period: float = 10.0) -> None:
        self.period, self.lock = period, threading.Lock()
        self.counts: dict[str, int] = {}
        self.since = time.monotonic()

    def add(self, what: str) -> None:
        """Count one closed connection; log the counts once per period (never one line each)."""
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1
            now = time.monotonic()
            if now - self.since < self.period:
                return
            counts, self.counts, self.since = self.counts, {}, now
        log.warning("closed connections in the last %.0f s: %s", self.period,
                    ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


STATS = ConnectionStats()


class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol, plus: beyond `limit_concurrency` connections, the oldest one still
    waiting for its first request is closed (or the new one, when every connection is serving), and
    a connection that has not sent a complete request head within `timeout_keep_alive` seconds is
    closed (uvicorn's own keep-alive timer covers the idle time between later requests)."""

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._opened = time.monotonic()
        limit = self.config.limit_concurrency
        if limit is not None and len(self.connections) >= limit:  # uvicorn answers 503 from `limit` on
            # make room by closing the oldest connection that has not sent a request yet (an idle
            # flood then cannot lock real clients out); with none, this one is refused
            waiting = [c for c in self.connections if c is not self and getattr(c, "cycle", 1) is None
                       and not c.transport.is_closing()]
            victim = min(waiting, key=lambda c: getattr(c, "_opened", 0.0), default=self)
            STATS.add("over the connection limit")
            victim.transport.close()
            if victim is self:
                return
        self._head_deadline = self.loop.call_later(self.timeout_keep_alive, self._head_timeout)

    def _head_timeout(self) -> None:
        """Close the connection if its first request head has not arrived (slow or idle client)."""
        if self.cycle is None and not self.transport.is_closing():
            STATS.add("idle or slow before their first request")
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        deadline = getattr(self, "_head_deadline", None)
        if deadline is not None:
            deadline.cancel()
        super().connection_lost(exc)


class RateLimitFilter(logging.Filter):
    """At most `burst` records of one kind (logger and message template) per `period` seconds; the
    next record let through after a pause says how many were suppressed."""

    def __init__(self, burst: int = 20, period: float = 10.0) -> None:
        super().__init__()
        self.burst, self.period, self.lock = burst, period, threading.Lock()
        self.state: dict[tuple[str, Any], list[float]] = {}  # key -> [window start, count, suppressed]

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to emit `record` (counting it either way)."""
        key = (record.name, record.msg)
        now = time.monotonic()
        with self.lock:
            start, count, suppressed = self.state.get(key, [now, 0, 0])
            if now - start >= self.period:
                start, count = now, 0
            count += 1
            if count > self.burst:
                self.state[key] = [start, count, suppressed + 1]
                return False
            self.state[key] = [start, count, 0]
        if suppressed:
            record.msg = f"{record.msg} [{int(suppressed)} similar messages suppressed]"
        return True


def install_log_limits(burst: int = 20, period: float = 10.0) -> RateLimitFilter:
    """Rate-limit the loggers that connection churn writes to (uvicorn's, asyncio's, the server's)."""
    limiter = RateLimitFilter(burst, period)
    for name in FLOOD_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(limiter)
    return limiter
