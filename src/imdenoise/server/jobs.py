"""The web service's machinery: settings, the bounded job queue, the shared model cache, and the
decode -> denoise -> encode job that runs in a worker thread (never on the event loop)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import math
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, TypeVar

import numpy as np

from imdenoise.denoisers.levels import SigmaPlan, plan_sigma  # noqa: F401 (re-exported)
from imdenoise.errors import ImageWriteError, ImDenoiseError, UnknownMethodError, WeightsError
from imdenoise.io import formats as fmts
from imdenoise.server.settings import DEFAULT_MAX_PIXELS, ServerSettings  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from imdenoise.denoisers.catalog import MethodInfo

log = logging.getLogger(__name__)
T = TypeVar("T")

# Peak memory of one job above the process with its method loaded, decode to encode, blind, as a
# fixed part (bytes: a tiled network's activations) plus bytes per image pixel, the larger of the
# gray and colour figures; "preview" is POST /api/v1/preview. Measured through two image sizes by
# `python benchmarks/hardening.py server-bpp` (the table in docs/server.md).
JOB_MEMORY: dict[str, tuple[float, float]] = {
    "preview": (1e+06, 44.9), "gaussian": (0, 65.3), "mean": (0, 60.0), "median": (0, 57.6), "tv": (0, 101.3),
    "wavelet": (0, 91.4), "nlm": (0, 121.0), "default": (4.28e+08, 21.1), "color": (3.86e+08, 32.5),
    "gray": (1.055e+09, 30.0), "photo": (4.29e+08, 20.1), "bm3d": (2e+06, 976.3), "zeroshot": (3.93e+08, 44.3),
}
# --max-pixels is the largest image for every shipped network; the budget is the largest of their needs
# there, and a method not listed (a custom one) counts as the costliest of them (job_memory)
BUDGET_METHODS = ("default", "color", "gray", "photo")
BUDGET_METHOD = max(BUDGET_METHODS, key=lambda m: JOB_MEMORY[m][0] + JOB_MEMORY[m][1] * 25_000_000)


def job_memory(method: str) -> tuple[float, float]:
    """(fixed bytes, bytes per pixel) of a method's job; a name not measured (a custom method) counts
    as the budget method."""
    return JOB_MEMORY.get(method, JOB_MEMORY[BUDGET_METHOD])


def job_budget(max_pixels: int) -> float:
    """Bytes one job may need: what the costliest shipped network needs for a `max_pixels` image."""
    return max(JOB_MEMORY[m][0] + JOB_MEMORY[m][1] * max_pixels for m in BUDGET_METHODS)


def pixel_limit(method: str, max_pixels: int) -> int:
    """Largest image, in pixels, a job of `method` may decode: `max_pixels` for the budget method and
    cheaper ones, fewer for a method needing more memory, so that no job exceeds `job_budget`."""
    fixed, per_pixel = job_memory(method)
    return max(1, min(max_pixels, int((job_budget(max_pixels) - fixed) // max(per_pixel, 1e-9))))


SUFFIX = {"png": ".png", "jpeg": ".jpg", "tiff": ".tif", "bmp": ".bmp", "npy": ".npy"}
ACCEPTED = "PNG, JPEG, TIFF, BMP or NPY"
MEDIA_TYPE = {"png": "image/png", "tiff": "image/tiff"}


class ServiceError(Exception):
    """An error the API reports as JSON {"error": message} with an HTTP status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class Busy(ServiceError):
    """Every worker and queue slot is taken: 503 with Retry-After."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(503, f"server busy: all job slots are taken; retry in {retry_after} s",
                         {"Retry-After": str(retry_after)})


class JobTimeout(ServiceError):
    """A job (waiting included) exceeded the per-job time limit: 503 with a clear message."""

    def __init__(self, limit: float) -> None:
        super().__init__(503, f"job exceeded the time limit of {limit:g} s; try a smaller image or a "
                              "faster method", {"Retry-After": str(max(1, math.ceil(limit)))})


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on another C library."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _return_freed_memory() -> None:
    """Give the heap memory a finished job freed back to the system (glibc keeps it otherwise, and the
    server's resident size stays at its peak long after a burst)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Ticket:
    """One admitted request's slot, taken before its body is read (`JobRunner.reserve`): handed to the
    job it becomes the job's slot; a request that ends without a job gives it back (`release`)."""

    def __init__(self, runner: "JobRunner") -> None:
        self.runner, self.state = runner, "held"  # held -> job (handed over) or released

    def take(self) -> bool:
        """Hand the slot to a job; False if it was already handed over or released."""
        with self.runner._lock:
            if self.state != "held":
                return False
            self.state = "job"
            return True

    def release(self) -> None:
        """Give the slot back unless a job holds it now (idempotent)."""
        with self.runner._lock:
            if self.state == "held":
                self.state = "released"
                self.runner._inflight -= 1


class JobRunner:
    """A thread pool of `max_jobs` workers behind an admission counter of `max_jobs + queue` slots.

    Upload requests take their slot before their body is read (`reserve`), so at most `max_jobs +
    queue` bodies are ever being received or waiting. A slot is held until the job's thread really
    ends: a job that outlives its time limit (threads cannot be killed) keeps its slot, so the
    concurrency bound stays true and overload becomes 503.
    """

    def __init__(self, max_jobs: int, queue: int, timeout: float) -> None:
        self.max_jobs, self.capacity, self.timeout = max_jobs, max_jobs + queue, timeout
        self._pool = ThreadPoolExecutor(max_workers=max_jobs, thread_name_prefix="imdenoise-job")
        self._lock = threading.Lock()
        self._inflight = 0
        self._running = 0
        self._mean_s = 1.0  # running mean of job durations, for Retry-After
        self.completed = 0
        self.rejected = 0

    def stats(self) -> dict[str, int]:
        """Running and queued jobs, and the configured bounds."""
        with self._lock:
            return {"running": self._running, "queued": self._inflight - self._running,
                    "max_jobs": self.max_jobs, "queue": self.capacity - self.max_jobs,
                    "completed": self.completed, "rejected": self.rejected}

    def full(self) -> bool:
        """Whether a new job would be refused right now."""
        with self._lock:
            return self._inflight >= self.capacity

    def reserve(self) -> Ticket | None:
        """A slot for a request about to send its body, or None (counted as refused) when all are taken."""
        with self._lock:
            if self._inflight >= self.capacity:
                self.rejected += 1
                return None
            self._inflight += 1
        return Ticket(self)

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the backlog divided among the workers."""
        with self._lock:
            backlog = max(1, self._inflight) * self._mean_s / self.max_jobs
        return int(min(60, max(1, math.ceil(backlog))))

    def reject(self) -> int:
        """Count a refused request; the Retry-After seconds to send it."""
        with self._lock:
            self.rejected += 1
        return self.retry_after()

    def _release(self, duration: float | None) -> None:
        with self._lock:
            self._inflight -= 1
            if duration is not None:
                self.completed += 1
                self._mean_s = 0.8 * self._mean_s + 0.2 * duration

    async def run(self, fn: Callable[[float], T], ticket: Ticket | None = None) -> T:
        """Run `fn(deadline)` in a worker thread, in the slot of `ticket` if it holds one; else Busy
        when full. JobTimeout past the time limit."""
        if ticket is None or not ticket.take():
            with self._lock:
                full = self._inflight >= self.capacity
                if not full:
                    self._inflight += 1
            if full:
                raise Busy(self.reject())
        deadline = time.monotonic() + self.timeout

        def task() -> T:
            with self._lock:
                self._running += 1
            start = time.monotonic()
            try:
                if start > deadline:  # waited out its whole time limit in the queue: drop it
                    raise JobTimeout(self.timeout)
                return fn(deadline)
            finally:
                with self._lock:
                    self._running -= 1
                self._release(time.monotonic() - start)
                _return_freed_memory()

        try:
            fut = self._pool.submit(task)
        except RuntimeError:  # pool shut down: the server is stopping
            self._release(None)
            raise Busy(5) from None
        fut.add_done_callback(lambda f: self._release(None) if f.cancelled() else None)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.timeout)
        except asyncio.TimeoutError:
            raise JobTimeout(self.timeout) from None

    def close(self) -> None:
        """Stop taking jobs; drop queued ones, let running ones finish in the background."""
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class ModelCache:
    """Denoisers loaded once per method name and shared by every job (load is thread-safe)."""

    allowed: list[str] | None = None
    _loaded: dict[str, Any] = field(default_factory=dict)
    _custom: dict[str, MethodInfo] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _name_locks: dict[str, threading.Lock] = field(default_factory=dict)

    def register(self, name: str, denoiser: Any, description: str = "") -> None:
        """Offer an already built denoiser under `name` (for embedding the app; used by tests)."""
        with self._lock:
            self._loaded[name] = denoiser
            from imdenoise.denoisers.catalog import MethodInfo

            self._custom[name] = MethodInfo(name, "custom", description or f"custom method {name!r}")

    def names(self) -> list[str]:
        """Method names this server offers: the allow-list (if any) of what is available, then custom."""
        try:
            from imdenoise.denoisers.catalog import available_methods

            names = available_methods()
        except ImportError:  # a module (e.g. classical) missing from this installation
            names = []
        if self.allowed is not None:
            names = [n for n in names if n in self.allowed]
        return names + [n for n in self._custom if n not in names]

    def describe(self) -> list[MethodInfo]:
        """Kind and description of every offered method."""
        from imdenoise.denoisers.catalog import describe

        return [self._custom.get(n) or describe(n) for n in self.names()]

    def default(self) -> str | None:
        """The method the page preselects: the shipped default, else a fast good classical filter."""
        names = self.names()
        for pref in ("default", "wavelet", "nlm", "gaussian"):
            if pref in names:
                return pref
        return names[0] if names else None

    def get(self, name: str) -> Any:
        """The shared denoiser for `name`, loading it on first use; only offered names are loadable."""
        if name not in self.names():  # never hand a client string to load(): it also accepts paths
            raise UnknownMethodError(f"unknown method {name!r}; choose one of: {', '.join(self.names())}")
        with self._lock:
            if name in self._loaded:
                return self._loaded[name]
            lock = self._name_locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._loaded:
                from imdenoise.denoisers.catalog import load

                started = time.monotonic()
                denoiser = load(name)
                log.info("loaded method %r in %.1f s", name, time.monotonic() - started)
                with self._lock:
                    self._loaded[name] = denoiser
            return self._loaded[name]

    def kind(self, name: str) -> str:
        """'model', 'classical', 'zeroshot' or 'custom'."""
        from imdenoise.denoisers.catalog import describe

        return self._custom[name].kind if name in self._custom else describe(name).kind

    def loaded(self) -> list[str]:
        """Names of the methods loaded so far."""
        with self._lock:
            return sorted(self._loaded)


def sniff(data: bytes) -> str | None:
    """'png', 'jpeg', 'tiff', 'bmp' or 'npy' from the first bytes of an upload (the library's sniff), None otherwise."""
    fmt = fmts.sniff(data)
    return fmt.lower() if fmt else None


@dataclass
class JobResult:
    """An encoded output image and what the client is told about it."""

    content: bytes
    media_type: str
    width: int
    height: int
    sigma_estimated: float | None = None
    sigma_used: float | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    plan: str | None = None  # 'default': what it chose (model, noise kind, level), as the CLI says it


def _check(deadline: float, limit: float) -> None:
    if time.monotonic() > deadline:
        raise JobTimeout(limit)


class ImageJob:
    """decode -> (estimate, denoise) -> encode, in a private temp folder removed afterwards.

    The upload arrives as a file (the multipart parser's spooled temp file) and is copied to the job's
    folder in 1 MiB pieces: no request body is ever held whole in memory. `max_pixels` is this job's
    pixel limit (see `pixel_limit`), checked from the image header before decoding."""

    def __init__(self, source: BinaryIO, kind: str, settings: ServerSettings, max_pixels: int | None = None) -> None:
        self.source, self.kind, self.settings = source, kind, settings
        self.max_pixels = settings.max_pixels if max_pixels is None else max_pixels

    def _decode(self, work: Path) -> Any:
        from imdenoise.io.images import read_image

        path = work / f"input{SUFFIX[self.kind]}"  # our own name; the client's name is never used
        self.source.seek(0)
        with open(path, "wb") as out:
            shutil.copyfileobj(self.source, out, 1 << 20)
        try:
            return read_image(path, max_pixels=self.max_pixels)
        except ImDenoiseError as exc:  # keep the private temp path out of the client's message
            raise _client_error(exc, work) from None
        finally:
            path.unlink(missing_ok=True)

    @staticmethod
    def _encode(work: Path, data: np.ndarray, image: Any, fmt: str, dtype: Any) -> bytes:
        from imdenoise.io.images import write_image

        out = work / f"output{'.png' if fmt == 'png' else '.tif'}"
        try:
            write_image(out, data, like=image, dtype=dtype, overwrite=True)
            return out.read_bytes()
        finally:
            out.unlink(missing_ok=True)

    def preview(self, deadline: float, keep_depth: bool = False) -> JobResult:
        """The upload as a PNG the browser can show (for TIFF input): 8-bit, or with `keep_depth` the
        depth a denoised PNG gets (8/16-bit kept, float -> 16-bit), so a TIFF result converts exactly."""
        with server_faults(), tempfile.TemporaryDirectory(prefix="imdenoise-job-", dir=self.settings.tmp_dir) as tmp:
            image = self._decode(Path(tmp))
            content = self._encode(Path(tmp), image.data, image, "png",
                                   png_dtype(image.dtype) if keep_depth else np.dtype(np.uint8))
        h, w = image.data.shape[:2]
        return JobResult(content, MEDIA_TYPE["png"], w, h)

    def denoise(self, deadline: float, denoiser_for: Callable[[], Any], sigma: float | None, fmt: str,
                kind: str = "custom") -> JobResult:
        """Denoise the upload with the shared denoiser; output keeps 8/16-bit depth (float -> 16-bit PNG).

        `sigma`: the client's noise level, or None to estimate it (only then). `kind` is the method's
        kind ('model', 'classical', 'zeroshot', 'custom'): it decides what sigma the method is given
        and which level is reported as used (see `plan_sigma`).
        """
        from imdenoise.arrays import check_finite_output

        t: dict[str, float] = {}
        start = time.monotonic()
        with server_faults(), tempfile.TemporaryDirectory(prefix="imdenoise-job-", dir=self.settings.tmp_dir) as tmp:
            work = Path(tmp)
            image = self._decode(work)
            t["decode"] = time.monotonic() - start
            denoiser = denoiser_for()
            t["load"] = time.monotonic() - start - sum(t.values())
            _check(deadline, self.settings.timeout)
            try:
                plan = plan_sigma(denoiser, kind, image.data, sigma)
                if plan.estimated is not None:
                    t["estimate"] = time.monotonic() - start - sum(t.values())
                out = (denoiser.run(plan.auto, image.data) if plan.auto is not None
                       else denoiser.denoise(image.data, sigma=plan.given))
                check_finite_output(out, "uploaded image")  # a NaN result is an error, never a 200
            except (ImageWriteError, WeightsError):
                raise  # server-side: server_faults makes them a generic 500
            except ImDenoiseError as exc:
                raise _client_error(exc, work) from None
            t["denoise"] = time.monotonic() - start - sum(t.values())
            _check(deadline, self.settings.timeout)
            dtype = np.dtype(image.dtype) if fmt == "tiff" else png_dtype(image.dtype)
            content = self._encode(work, out, image, fmt, dtype)
            t["encode"] = time.monotonic() - start - sum(t.values())
        h, w = image.data.shape[:2]
        chosen = plan.auto.describe() if plan.auto is not None else None
        return JobResult(content, MEDIA_TYPE[fmt], w, h, plan.estimated, plan.used, time.monotonic() - start, t, chosen)


def png_dtype(source: Any) -> np.dtype:
    """The sample type of a PNG result: 8/16-bit sources keep theirs, float ones get 16-bit."""
    src = np.dtype(source)
    return src if src in (np.dtype(np.uint8), np.dtype(np.uint16)) else np.dtype(np.uint16)


class ClientImageError(ImDenoiseError):
    """A library error caused by the upload, its message free of server paths (a 4xx for the client)."""

    def __init__(self, message: str, cause: ImDenoiseError) -> None:
        super().__init__(message)
        self.cause = cause


def _client_error(exc: ImDenoiseError, work: Path) -> ClientImageError:
    """`exc` worded for the client: the job's private paths become "uploaded image" / nothing."""
    message = re.sub(re.escape(str(work)) + r"/input\.\w+", "uploaded image", str(exc))
    message = message.replace(str(work), "(server)")
    return ClientImageError(message, exc)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextlib.contextmanager
def server_faults() -> Iterator[None]:
    """Turn the server's own faults in a job into generic errors, the detail going to the log only:
    no space for the job's files -> 507, any other file or weights failure -> 500."""
    try:
        yield
    except ClientImageError:
        raise
    except (OSError, ImageWriteError, WeightsError) as exc:
        cause = exc if isinstance(exc, OSError) else exc.__cause__ or exc.__context__
        if isinstance(cause, OSError) and cause.errno in NO_SPACE:
            log.error("job failed, no space for its files: %s", exc)
            raise ServiceError(507, "the server has no storage space left for this job; try again later") from None
        log.error("job failed on the server's side: %s: %s", type(exc).__name__, exc)
        raise ServiceError(500, INTERNAL_ERROR) from None


INTERNAL_ERROR = "internal server error; the server log has the details"


