"""The web service: `create_app(settings)` builds a FastAPI app with one static page, a JSON/image API
and offline API docs. A thin shell over `imdenoise.io`, `imdenoise.noise` and `imdenoise.denoisers.catalog`;
the limits and the job machinery live in `imdenoise.server.jobs`."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Literal

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imdenoise import __version__
from imdenoise.errors import ImageTooLargeError, ImDenoiseError, UnknownMethodError
from imdenoise.server.jobs import (
    ACCEPTED,
    INTERNAL_ERROR,
    NO_SPACE,
    ClientImageError,
    ImageJob,
    JobResult,
    JobRunner,
    ModelCache,
    ServerSettings,
    ServiceError,
    Ticket,
    pixel_limit,
    sniff,
)

log = logging.getLogger("imdenoise.server.app")

STATIC_DIR = Path(__file__).resolve().parent / "static"
SETTINGS_ENV = "IMDENOISE_SERVER_SETTINGS"
UPLOAD_PATHS = ("/api/v1/denoise", "/api/v1/preview")
FORM_SLACK = 64 * 1024  # multipart framing and the small option fields around the image
PAGE_CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


class ErrorBody(BaseModel):
    """Every error: one human-readable message."""

    error: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "not a readable image, or one the method cannot denoise", "model": ErrorBody},
    408: {"description": "upload not received within the time limit", "model": ErrorBody},
    413: {"description": "upload or image too large", "model": ErrorBody},
    415: {"description": "unsupported file type (send PNG, JPEG, TIFF, BMP or NPY)", "model": ErrorBody},
    422: {"description": "invalid options", "model": ErrorBody},
    503: {"description": "busy (Retry-After) or time limit exceeded", "model": ErrorBody},
    500: {"description": "a fault of the server (details in its log only)", "model": ErrorBody},
    507: {"description": "the server has no storage space left for the job", "model": ErrorBody},
}
TICKET = "imdenoise.ticket"  # ASGI scope key: the job slot an upload request took before its body


class MethodBody(BaseModel):
    """One offered model or method."""

    name: str
    kind: str
    description: str
    sigma_max: float | None = None  # a model's highest trained noise level (0-255); None: no such bound


class LimitsBody(BaseModel):
    """The limits the page and clients should respect."""

    max_bytes: int
    max_pixels: int
    max_jobs: int
    queue: int
    timeout: float


class ModelsBody(BaseModel):
    """GET /api/v1/models."""

    default: str | None
    methods: list[MethodBody]
    limits: LimitsBody


class HealthBody(BaseModel):
    """GET /health."""

    status: str
    version: str
    jobs: dict[str, int]
    loaded: list[str]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class UploadTooLarge(StarletteHTTPException):
    """The request body passed the byte limit (413) or the time limit (408) while being received."""


class UploadGuard:
    """ASGI guard on upload routes: 413 by Content-Length or while streaming; a job slot is taken
    before the body is read (503 when none is free), so at most max_jobs + queue bodies are received
    at once; the slot goes to the request's job, or back when the request ends without one."""

    def __init__(self, app: ASGIApp, max_bytes: int, runner: JobRunner, timeout: float = 120.0) -> None:
        self.app, self.max_bytes, self.runner, self.timeout = app, max_bytes, runner, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in UPLOAD_PATHS:
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes + FORM_SLACK
        message = f"upload too large: the limit is {self.max_bytes} bytes"
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            await _error(413, message)(scope, receive, send)
            return
        ticket = self.runner.reserve()
        if ticket is None:  # refuse before receiving the upload
            retry = self.runner.retry_after()
            await _error(503, f"server busy: all job slots are taken; retry in {retry} s",
                         {"Retry-After": str(retry)})(scope, receive, send)
            return
        scope[TICKET] = ticket
        received = 0
        deadline = time.monotonic() + self.timeout

        body_done = False

        async def limited() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body only a disconnect can come: no time limit on waiting for it
                return await receive()
            try:  # a body sent slowly must not hold its slot for ever
                msg = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise UploadTooLarge(408, f"upload too slow: not received within {self.timeout:g} s") from None
            if msg["type"] == "http.request":
                body_done = not msg.get("more_body", False)
                received += len(msg.get("body", b""))
                if received > limit:
                    raise UploadTooLarge(413, message)
            return msg

        try:
            await self.app(scope, limited, send)
        finally:
            ticket.release()  # no-op when the request's job holds the slot now


async def _read_upload(image: UploadFile, settings: ServerSettings) -> tuple[Any, str]:
    """The upload as a file (the parser spooled it to disk past 1 MiB; <= max_bytes) and its kind,
    recognised from its first bytes."""
    size = image.size if image.size is not None else image.file.seek(0, 2)
    if size > settings.max_bytes:
        raise ServiceError(413, f"upload too large: the limit is {settings.max_bytes} bytes")
    if not size:
        raise ServiceError(400, "empty upload: no image data received")
    await image.seek(0)
    head = await image.read(16)
    await image.seek(0)
    kind = sniff(head)
    if kind is None:
        declared = (image.content_type or "unknown")[:60]
        raise ServiceError(415, f"unsupported file type (declared {declared!r}); send a {ACCEPTED} image")
    return image.file, kind


async def _run(request: Request, job: Any, limit: int, what: str) -> JobResult:
    """Run a job in the request's slot; library errors become 413 (pixels, `limit` for `what`),
    422 (method) or 400 (image); server faults are already 500/507 (`jobs.server_faults`)."""
    ticket: Ticket | None = request.scope.get(TICKET)
    try:
        return await request.app.state.runner.run(job, ticket)
    except ClientImageError as exc:
        cause = exc.cause
        if isinstance(cause, ImageTooLargeError):
            size = f"{cause.width}x{cause.height} = {cause.width * cause.height / 1e6:.1f} megapixels" \
                if cause.width and cause.height else "too large"
            raise ServiceError(413, f"uploaded image is {size}, above this server's limit of {limit / 1e6:g} "
                                    f"megapixels for {what} (its operator sets it with `imdenoise serve "
                                    f"--max-pixels`)") from None
        raise ServiceError(400, str(exc)) from None
    except UnknownMethodError as exc:
        raise ServiceError(422, str(exc)) from None
    except ImDenoiseError as exc:  # a library error outside the job's own checks: the server's fault
        log.error("job failed: %s: %s", type(exc).__name__, exc)
        raise ServiceError(500, INTERNAL_ERROR) from None


def _install_handlers(app: FastAPI) -> None:
    """Every error becomes JSON {"error": ...} with its status; never a stack trace."""

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors()[:5]:
            loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query"))
            parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg", "invalid")))
        return _error(422, "invalid request: " + "; ".join(parts))

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s: %s", type(exc).__name__, exc)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:  # e.g. the upload's spool file
            return _error(507, "the server has no storage space left for this job; try again later")
        return _error(500, INTERNAL_ERROR)


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc from files served by the app (no CDN)."""
    try:
        import fastapi_offline

        assets = Path(fastapi_offline.__file__).resolve().parent / "static"
    except ImportError:
        assets = None
    if assets is not None and (assets / "swagger-ui-bundle.js").is_file():
        app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> Response:
        if assets is None:
            return _error(404, "offline API docs need the 'fastapi-offline' package (pip install "
                               "'imdenoise[server]'); the schema is at /openapi.json")
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="imdenoise API",
                                   swagger_js_url=f"{root}/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs-static/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/static/favicon.svg")

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        if assets is None:
            return _error(404, "offline API docs need the 'fastapi-offline' package")
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}/openapi.json", title="imdenoise API",
                              redoc_js_url=f"{root}/docs-static/redoc.standalone.js",
                              redoc_favicon_url=f"{root}/static/favicon.svg", with_google_fonts=False)


def _result_response(result: JobResult, method: str | None) -> Response:
    headers = {
        "Content-Disposition": f'attachment; filename="denoised.{"png" if result.media_type == "image/png" else "tif"}"',
        "Cache-Control": "no-store",
        "X-Imdenoise-Time-Ms": f"{result.seconds * 1000:.0f}",
        "X-Imdenoise-Size": f"{result.width}x{result.height}",
    }
    if method is not None:
        headers["X-Imdenoise-Method"] = method
    if result.sigma_estimated is not None:
        headers["X-Imdenoise-Sigma-Estimated"] = f"{result.sigma_estimated:.2f}"
    if result.sigma_used is not None:
        headers["X-Imdenoise-Sigma"] = f"{result.sigma_used:.2f}"
    if result.plan is not None:
        headers["X-Imdenoise-Plan"] = result.plan
    if result.timings:
        headers["Server-Timing"] = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in result.timings.items())
    return Response(result.content, media_type=result.media_type, headers=headers)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI app: GET /, /health, /api/v1/models, POST /api/v1/denoise, /api/v1/preview, /docs."""
    settings = settings or ServerSettings()
    try:
        from imdenoise.server.net import install_log_limits

        install_log_limits()  # connection churn must not flood the log
    except ImportError:  # uvicorn absent: the app runs under another ASGI server
        pass
    runner = JobRunner(settings.max_jobs, settings.queue, settings.timeout)
    models = ModelCache(allowed=settings.methods)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        runner.close()

    app = FastAPI(title="imdenoise", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Image denoising service: upload a noisy image, get the denoised image back. "
                              "Limits: see GET /api/v1/models.")
    app.state.settings, app.state.runner, app.state.models = settings, runner, models
    app.add_middleware(UploadGuard, max_bytes=settings.max_bytes, runner=runner, timeout=settings.timeout)
    _install_handlers(app)
    _install_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={
            "Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})

    @app.get("/health", response_model=HealthBody, tags=["service"])
    async def health() -> HealthBody:
        """Liveness and load: running and queued jobs, loaded models."""
        return HealthBody(status="ok", version=__version__, jobs=runner.stats(), loaded=models.loaded())

    @app.get("/api/v1/models", response_model=ModelsBody, tags=["denoise"])
    async def list_methods() -> ModelsBody:
        """The models and methods this server offers, the preselected one, and the limits."""
        return ModelsBody(default=models.default(),
                          methods=[MethodBody(name=m.name, kind=m.kind, description=m.description, sigma_max=m.sigma_max)
                                   for m in models.describe()],
                          limits=LimitsBody(max_bytes=settings.max_bytes, max_pixels=settings.max_pixels,
                                            max_jobs=settings.max_jobs, queue=settings.queue,
                                            timeout=settings.timeout))

    @app.post("/api/v1/denoise", response_class=Response, tags=["denoise"], responses={
        200: {"content": {"image/png": {}, "image/tiff": {}},
              "description": "the denoised image; X-Imdenoise-Sigma (used), X-Imdenoise-Sigma-Estimated, "
                             "X-Imdenoise-Time-Ms headers, and for 'default' X-Imdenoise-Plan (the model, "
                             "noise kind and level it chose)"}, **ERROR_RESPONSES})
    async def denoise(
        request: Request,
        image: Annotated[UploadFile, File(description="PNG, JPEG, TIFF, BMP or NPY (8/16-bit or float), gray or color")],
        method: Annotated[str | None, Form(max_length=64, description="a name from GET /api/v1/models")] = None,
        sigma: Annotated[float | None, Form(ge=0, le=255, description="noise level 0-255; omit for auto")] = None,
        format: Annotated[Literal["png", "tiff"], Form(description="png, or tiff (keeps float)")] = "png",
    ) -> Response:
        """Denoise one image; 8/16-bit depth is kept (float input gives 16-bit PNG or float TIFF)."""
        name = method or models.default()
        if name is None or name not in models.names():
            raise ServiceError(422, f"unknown method {method!r}; choose one of: {', '.join(models.names())}")
        source, kind = await _read_upload(image, settings)
        limit = pixel_limit(name, settings.max_pixels)
        job = ImageJob(source, kind, settings, limit)
        kind_of = models.kind(name)
        result = await _run(request, lambda deadline: job.denoise(deadline, lambda: models.get(name), sigma, format,
                                                                  kind=kind_of), limit, f"method {name!r}")
        log.info("denoised %dx%d %s with %s in %.2f s", result.width, result.height, kind, name, result.seconds)
        return _result_response(result, name)

    @app.post("/api/v1/preview", response_class=Response, tags=["denoise"], responses={
        200: {"content": {"image/png": {}}, "description": "the upload as a PNG"}, **ERROR_RESPONSES})
    async def preview(
        request: Request,
        image: Annotated[UploadFile, File(description="PNG, JPEG, TIFF, BMP or NPY")],
        keep_depth: Annotated[bool, Form(description="keep 8/16-bit (float -> 16-bit) instead of 8-bit")] = False,
    ) -> Response:
        """The upload converted to a PNG a browser can display (for TIFF files): 8-bit, or with
        `keep_depth` the PNG `/denoise` would have given for a TIFF result (no second denoise)."""
        source, kind = await _read_upload(image, settings)
        limit = pixel_limit("preview", settings.max_pixels)
        job = ImageJob(source, kind, settings, limit)
        return _result_response(await _run(request, lambda deadline: job.preview(deadline, keep_depth), limit,
                                           "preview"), None)

    return app


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes: settings come as JSON in IMDENOISE_SERVER_SETTINGS."""
    raw = os.environ.get(SETTINGS_ENV)
    return create_app(ServerSettings.model_validate(json.loads(raw)) if raw else None)
