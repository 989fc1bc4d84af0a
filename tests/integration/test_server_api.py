"""The web service's API: every route, every limit and every error status, in-process."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from imdenoise.server.app import create_app  # noqa: E402
from imdenoise.server.jobs import ServerSettings  # noqa: E402

FAST = "gaussian"  # a classical filter that takes milliseconds


def quality_method() -> str:
    """The best quick method this installation offers: the shipped default, else a classical filter."""
    from imdenoise.denoisers.catalog import available_methods

    names = available_methods()
    return next(n for n in ("default", "nlm", "wavelet", "gaussian") if n in names)


def png_bytes(arr: np.ndarray) -> bytes:
    """uint8 PNG of a float HxWxC array in [0, 1]."""
    u8 = np.clip(np.round(arr * 255), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8).save(buf, "PNG")
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two arrays in [0, 1]."""
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def decode(content: bytes) -> np.ndarray:
    """A PNG response as float HxWxC in [0, 1], whatever its bit depth."""
    with io.BytesIO(content) as fh:
        im = Image.open(fh)
        im.load()
    arr = np.asarray(im).astype(np.float32)
    arr = arr / (65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0)
    return arr if arr.ndim == 3 else arr[..., None]


@pytest.fixture(scope="module")
def noisy_gray(gray_image: np.ndarray) -> tuple[np.ndarray, np.ndarray, bytes]:
    """(clean crop, noisy crop quantized, noisy PNG bytes): 96x96 of BSD68 test001, sigma 25."""
    clean = gray_image[:96, :96]
    noisy = clean + np.random.default_rng(7).normal(0, 25 / 255, clean.shape).astype(np.float32)
    data = png_bytes(noisy)
    return clean, decode(data), data


@pytest.fixture()
def client(tmp_path):
    """A TestClient on a default app whose per-job temp folders go to tmp_path/jobs."""
    (tmp_path / "jobs").mkdir()
    app = create_app(ServerSettings(tmp_dir=tmp_path / "jobs"))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def post(c, data: bytes, name: str = "x.png", ctype: str = "image/png", **form):
    """POST an upload to /api/v1/denoise."""
    return c.post("/api/v1/denoise", files={"image": (name, data, ctype)}, data={k: str(v) for k, v in form.items()})


def assert_error(r, status: int, *words: str) -> None:
    """A JSON error with the status and a message naming the words; never a traceback."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and body["error"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    for w in words:
        assert w.lower() in body["error"].lower(), body["error"]


# ---- routes -------------------------------------------------------------------------------------

def test_health_models_openapi(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["jobs"]["max_jobs"] == 2 and h["jobs"]["queue"] == 8
    m = client.get("/api/v1/models").json()
    names = [x["name"] for x in m["methods"]]
    assert FAST in names and m["default"] in names
    assert all(x["description"] for x in m["methods"])
    assert m["limits"]["max_bytes"] == ServerSettings().max_bytes
    spec = client.get("/openapi.json").json()
    assert {"/api/v1/denoise", "/api/v1/models", "/health", "/api/v1/preview"} <= set(spec["paths"])
    assert "413" in spec["paths"]["/api/v1/denoise"]["post"]["responses"]


def test_page_and_docs_need_no_cdn(client):
    page = client.get("/")
    assert page.status_code == 200 and "Denoise" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "style.css", "favicon.svg"):
        assert client.get(f"/static/{asset}").status_code == 200
    for url in ("/docs", "/redoc"):
        html = client.get(url)
        assert html.status_code == 200
        assert "cdn" not in html.text.lower() and "https://" not in html.text, html.text
    js = client.get("/docs-static/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000


# ---- denoising ----------------------------------------------------------------------------------

def test_denoise_gray_png_is_closer_to_clean(client, noisy_gray):
    clean, noisy, data = noisy_gray
    method = quality_method()
    r = post(client, data, method=method)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-imdenoise-method"] == method
    assert 15 < float(r.headers["x-imdenoise-sigma-estimated"]) < 35
    assert float(r.headers["x-imdenoise-time-ms"]) >= 0
    out = decode(r.content)
    assert out.shape == clean.shape
    assert psnr(out, clean) > psnr(noisy, clean) + 2


def test_denoise_color_with_manual_sigma(client, color_image):
    clean = color_image[:64, :64]
    noisy = clean + np.random.default_rng(1).normal(0, 20 / 255, clean.shape).astype(np.float32)
    r = post(client, png_bytes(noisy), method=FAST, sigma=30)
    assert r.status_code == 200, r.text
    assert r.headers["x-imdenoise-sigma"] == "30.00"
    assert decode(r.content).shape == (64, 64, 3)


def test_16bit_tiff_stays_16bit(client, gray_image):
    tifffile = pytest.importorskip("tifffile")
    from imdenoise.io.images import read_image

    arr16 = np.round(np.clip(gray_image[:48, :48, 0] + 0.05 * np.random.default_rng(2).standard_normal((48, 48)),
                             0, 1) * 65535).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr16)
    for fmt, suffix in (("tiff", ".tif"), ("png", ".png")):
        r = post(client, buf.getvalue(), name="x.tif", ctype="image/tiff", method=FAST, format=fmt)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == f"image/{fmt}"
        path = client.app.state.settings.tmp_dir / f"check{suffix}"
        path.write_bytes(r.content)
        out = read_image(path)
        path.unlink()
        assert out.dtype == np.uint16 and out.data.shape == (48, 48, 1)
    preview = client.post("/api/v1/preview", files={"image": ("x.tif", buf.getvalue(), "image/tiff")})
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(preview.content)).mode == "L"


def test_models_are_loaded_once_and_shared(client, noisy_gray, monkeypatch):
    import imdenoise.denoisers.catalog as inference

    calls = []
    real = inference.load
    monkeypatch.setattr(inference, "load", lambda name, **kw: calls.append(name) or real(name, **kw))
    for _ in range(3):
        assert post(client, noisy_gray[2], method="median").status_code == 200
    assert calls == ["median"]
    models = client.app.state.models
    assert models.get("median") is models.get("median")
    assert "median" in client.get("/health").json()["loaded"]


def test_temp_files_are_removed(client, noisy_gray):
    post(client, noisy_gray[2], method=FAST)
    post(client, noisy_gray[2][:200], method=FAST)  # a corrupt one too
    post(client, b"GIF89a" + bytes(50), method=FAST)
    assert list(client.app.state.settings.tmp_dir.iterdir()) == []


# ---- error statuses -----------------------------------------------------------------------------

def test_400_unreadable_or_empty(client, noisy_gray):
    assert_error(post(client, noisy_gray[2][:300]), 400, "uploaded image", "truncated")
    assert_error(post(client, b""), 400, "empty")
    r = post(client, noisy_gray[2][:300])
    assert "/tmp" not in r.text and "jobs" not in r.text  # the private temp path is never shown


def test_413_upload_bytes(tmp_path, noisy_gray):
    app = create_app(ServerSettings(max_bytes=2048))
    big = noisy_gray[2]
    with TestClient(app) as c:
        assert_error(post(c, big), 413, "2048 bytes")  # file over the limit, request within the slack
        huge = big * (80 * 1024 // len(big) + 2)  # whole request over the limit: refused by Content-Length
        assert_error(post(c, huge), 413, "too large")

        def chunks():  # no Content-Length: counted while streaming
            for _ in range(200):
                yield b"x" * 1024

        r = c.post("/api/v1/denoise", content=chunks(),
                   headers={"content-type": "multipart/form-data; boundary=abc"})
        assert_error(r, 413, "too large")


def test_413_pixels(noisy_gray):
    with TestClient(create_app(ServerSettings(max_pixels=4000))) as c:
        r = post(c, noisy_gray[2], method=FAST)
        assert_error(r, 413, "serve --max-pixels")  # the operator's option, not the library's
        assert "IMDENOISE_MAX_PIXELS" not in r.text and "max_pixels=" not in r.text


@pytest.mark.parametrize("data,ctype", [(b"hello world", "text/plain"), (b"GIF89a" + bytes(40), "image/gif"),
                                        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")])
def test_415_unsupported_type(client, data, ctype):
    assert_error(post(client, data, name="x.png", ctype=ctype), 415, "PNG, JPEG, TIFF, BMP or NPY")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_result_converts_to_the_png_denoise_gives(client, gray_image, dtype):
    """The page denoises once as TIFF and shows/offers its keep-depth PNG conversion: that PNG must be
    the very PNG a format=png denoise returns, for 8-bit, 16-bit and float uploads."""
    noisy = np.clip(gray_image[:40, :56, 0] + 0.08 * np.random.default_rng(4).standard_normal((40, 56)), 0, 1)
    scale = {np.uint8: 255, np.uint16: 65535}.get(dtype)
    upload = npy_bytes(noisy.astype(np.float32) if scale is None else np.round(noisy * scale).astype(dtype))
    kw = dict(name="x.npy", ctype="application/octet-stream", method=FAST, sigma=20)
    png = post(client, upload, format="png", **kw)
    tiff = post(client, upload, format="tiff", **kw)
    assert png.status_code == tiff.status_code == 200, (png.text, tiff.text)
    conv = client.post("/api/v1/preview", files={"image": ("r.tif", tiff.content, "image/tiff")},
                       data={"keep_depth": "true"})
    assert conv.status_code == 200 and conv.headers["content-type"] == "image/png"
    a, b = Image.open(io.BytesIO(png.content)), Image.open(io.BytesIO(conv.content))
    assert a.mode == b.mode and np.array_equal(np.asarray(a), np.asarray(b))


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def test_bmp_and_npy_uploads_are_accepted(client, noisy_gray):
    """What imdenoise.io.images reads, the server takes (README "Security"): BMP and NPY, sniffed by content."""
    noisy = noisy_gray[1]
    buf = io.BytesIO()
    Image.fromarray(np.round(noisy[..., 0] * 255).astype(np.uint8)).save(buf, "BMP")
    for data, name in ((buf.getvalue(), "x.bin"), (npy_bytes(noisy[..., 0].astype(np.float32)), "x.png")):
        r = post(client, data, name=name, ctype="application/octet-stream", method=FAST, sigma=20)
        assert r.status_code == 200, r.text
        assert decode(r.content).shape == noisy.shape
        assert client.post("/api/v1/preview", files={"image": (name, data, "image/bmp")}).status_code == 200


def test_npy_pixel_bomb_is_refused_from_its_header(client):
    """An NPY header claiming 100000x100000 samples: 413 before anything is allocated or decoded."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
    header += " " * (118 - len(header)) + "\n"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + bytes(64)
    assert_error(post(client, data, method=FAST, sigma=10), 413, "megapixels")
    assert_error(post(client, b"BM" + bytes(60), method=FAST, sigma=10), 400, "uploaded image")


@pytest.mark.parametrize("shape", [(4, 4), (1, 1), (2, 2, 3), (1, 40), (40, 1), (5, 7, 3)])
def test_bm3d_on_tiny_images_is_200(client, shape):
    """4x4 gave 500 (bm3d: "Image cannot be smaller than block size!"); 8x8 killed the server (segfault,
    checked in a real server process in test_server_load.py)."""
    arr = np.random.default_rng(3).random(shape).astype(np.float32)
    r = post(client, png_bytes(arr if arr.ndim == 3 else arr[..., None]), method="bm3d", sigma=10)
    assert r.status_code == 200, r.text
    assert r.headers["x-imdenoise-size"] == f"{shape[1]}x{shape[0]}"
    assert decode(r.content).shape[:2] == shape[:2]


def test_given_sigma_is_never_estimated(client):
    """A 1x500 strip cannot be estimated, and need not be when the client gives sigma."""
    strip = png_bytes(np.random.default_rng(4).random((1, 500, 1)))
    r = post(client, strip, method=FAST, sigma=20)
    assert r.status_code == 200, r.text
    assert r.headers["x-imdenoise-sigma"] == "20.00"
    assert "x-imdenoise-sigma-estimated" not in r.headers
    assert_error(post(client, strip, method=FAST), 400, "give sigma explicitly")  # blind: it must estimate


def test_reported_sigma_is_the_level_the_model_used(client, gray_image):
    """A blind shipped model clamps the estimate to its trained range (0-55): the header said 71.7."""
    from imdenoise.denoisers.catalog import available_methods, load

    if "default" not in available_methods():
        pytest.skip("no shipped models in this installation")
    clean = gray_image[:64, :64]
    data = png_bytes(0.3 + 0.4 * clean + np.random.default_rng(8).normal(0, 80 / 255, clean.shape).astype(np.float32))
    r = post(client, data, method="default")
    assert r.status_code == 200, r.text
    estimated, used = float(r.headers["x-imdenoise-sigma-estimated"]), float(r.headers["x-imdenoise-sigma"])
    hi = load("gray").noise_range[1]
    assert estimated > hi + 5 and used == hi, (estimated, used)
    plan = r.headers["x-imdenoise-plan"]  # what `default` chose, as the CLI says it
    assert plan.startswith("model gray, white noise") and f"denoised at {hi:.1f}" in plan, plan
    again = post(client, data, method="default", sigma=used)  # the same result when that level is given
    assert again.content == r.content
    fast = post(client, data, method=FAST)
    assert fast.headers["x-imdenoise-sigma"] == r.headers["x-imdenoise-sigma-estimated"]
    assert "x-imdenoise-plan" not in fast.headers


def test_plan_sigma_per_kind_of_method():
    """What is estimated, passed and reported, for each kind of method (no heavy model needed)."""
    from types import SimpleNamespace

    from imdenoise.denoisers.levels import plan_sigma

    img = np.random.default_rng(0).normal(0.5, 30 / 255, (64, 64, 1)).astype(np.float32)
    net = SimpleNamespace(noise_conditioned=True, noise_range=(0.0, 20.0))  # the engine's attributes
    blind_net = SimpleNamespace(noise_conditioned=False, noise_range=(0.0, 55.0))
    plan = plan_sigma(net, "model", img, None)
    assert plan.estimated > 25 and plan.given == plan.used == 20.0
    assert plan_sigma(net, "model", img, 40.0) == type(plan)(None, 40.0, 40.0)
    # 'default' plans model and level itself (photo or white noise); the server reports its plan
    from imdenoise.denoisers.network import AutoDenoiser, ModelDenoiser
    from imdenoise.models.registry import build_model

    gray = ModelDenoiser(build_model("unet", widths=(8, 16)), "gray")
    auto_plan = plan_sigma(AutoDenoiser(gray, gray), "model", img, None)
    assert auto_plan.auto.model is gray and auto_plan.used == pytest.approx(auto_plan.estimated) and auto_plan.used > 25
    assert plan_sigma(AutoDenoiser(gray, gray), "model", img, 12.0).used == 12.0
    assert plan_sigma(blind_net, "model", img, None).used is None
    assert plan_sigma(object(), "zeroshot", img, 10.0).used is None
    assert plan_sigma(object(), "zeroshot", img[:1], None) == type(plan)(None, None, None)  # no estimate needed
    classical = plan_sigma(object(), "classical", img, None)
    assert classical.estimated == classical.given == classical.used


@pytest.mark.parametrize("form,words", [
    ({"method": "no-such-method"}, ("unknown method",)),
    ({"method": "../../etc/passwd.safetensors"}, ("unknown method",)),
    ({"sigma": -1}, ("sigma",)),
    ({"sigma": 256}, ("sigma",)),
    ({"sigma": "abc"}, ("sigma",)),
    ({"format": "jpeg"}, ("format",)),
])
def test_422_bad_options(client, noisy_gray, form, words):
    assert_error(post(client, noisy_gray[2], **form), 422, *words)


def test_422_missing_image(client):
    assert_error(client.post("/api/v1/denoise", data={"method": FAST}), 422, "image")


class Slow:
    """A denoiser that holds its job slot for `seconds` or until `release` is set."""

    name = "slow"

    def __init__(self, seconds: float) -> None:
        self.seconds, self.started, self.release = seconds, threading.Event(), threading.Event()

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        self.started.set()
        self.release.wait(self.seconds)
        return image


class Broken:
    """A denoiser with a bug."""

    name = "broken"

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        raise RuntimeError("secret internal detail")


async def _concurrent(app, data: bytes, n: int, slow: Slow) -> list[httpx.Response]:
    """Start one slow job, then n more requests; release it once all but one have been refused."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as c:
        files = {"image": ("x.png", data, "image/png")}
        first = asyncio.create_task(c.post("/api/v1/denoise", files=files, data={"method": "slow"}))
        while not slow.started.is_set():
            await asyncio.sleep(0.01)
        rest = [asyncio.create_task(c.post("/api/v1/denoise", files=files, data={"method": "slow"}))
                for _ in range(n)]
        while app.state.runner.stats()["rejected"] < n - 1:
            await asyncio.sleep(0.01)
        slow.release.set()
        return [await first, *await asyncio.gather(*rest)]


def test_503_busy_with_retry_after(noisy_gray):
    app = create_app(ServerSettings(max_jobs=1, queue=1))
    slow = Slow(10)
    app.state.models.register("slow", slow, "sleeps")
    try:
        responses = asyncio.run(asyncio.wait_for(_concurrent(app, noisy_gray[2], 3, slow), 20))
    finally:
        slow.release.set()
        app.state.runner.close()
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 503, 503], codes  # 1 running + 1 queued served, the rest refused
    for r in responses:
        if r.status_code == 503:
            assert_error(r, 503, "busy")
            assert int(r.headers["retry-after"]) >= 1
    assert app.state.runner.stats()["rejected"] == 2


def test_503_time_limit_keeps_slot_until_done(noisy_gray):
    app = create_app(ServerSettings(max_jobs=1, queue=0, timeout=2.0))
    slow = Slow(30)
    app.state.models.register("slow", slow)
    tiny = png_bytes(noisy_gray[1][:16, :16])  # decoded in well under the limit, even on a loaded machine
    with TestClient(app) as c:
        try:
            assert_error(post(c, tiny, method="slow"), 503, "time limit of 2 s")
            assert slow.started.is_set()
            assert_error(post(c, noisy_gray[2], method=FAST), 503, "busy")  # the slow thread still runs
        finally:
            slow.release.set()
        deadline = time.monotonic() + 10
        while c.get("/health").json()["jobs"]["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert post(c, noisy_gray[2], method=FAST).status_code == 200


def test_500_is_json_without_details(noisy_gray):
    app = create_app(ServerSettings())
    app.state.models.register("broken", Broken())
    with TestClient(app, raise_server_exceptions=False) as c:
        r = post(c, noisy_gray[2], method="broken")
        assert_error(r, 500, "internal server error")
        assert "secret" not in r.text
        assert c.get("/health").status_code == 200


def test_methods_allow_list(noisy_gray):
    with TestClient(create_app(ServerSettings(methods=["mean", "gaussian"]))) as c:
        assert [m["name"] for m in c.get("/api/v1/models").json()["methods"]] == ["gaussian", "mean"]
        assert_error(post(c, noisy_gray[2], method="nlm"), 422, "unknown method")
        assert post(c, noisy_gray[2]).headers["x-imdenoise-method"] == "gaussian"  # the default


def test_cli_serve_registered_and_validates(capsys, monkeypatch):
    import uvicorn

    from imdenoise.cli.main import main

    def never(*_a, **_k):
        raise AssertionError("the server was started despite invalid options")

    monkeypatch.setattr(uvicorn, "run", never)

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--max-jobs", "0"])
    assert exc.value.code == 2
    assert "--max-jobs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # accepted silently before: a server offering nothing
        main(["serve", "--methods", "bogus,mean,nope"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    assert "'bogus', 'nope'" in err and "valid names:" in err and "gaussian" in err and "'mean'" not in err
    try:
        main(["serve", "--help"])
    except SystemExit as stop:
        assert not stop.code
    out = capsys.readouterr().out
    for flag in ("--max-bytes", "--max-pixels", "--max-jobs", "--queue", "--timeout", "--workers"):
        assert flag in out


# ---- property-based fuzzing from the OpenAPI schema ---------------------------------------------

try:
    import schemathesis
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - schemathesis is in the dev extra
    schemathesis = None

if schemathesis is not None:
    from hypothesis import given
    from hypothesis import strategies as st

    from imdenoise.denoisers.catalog import available_methods

    SLOW = {"zeroshot"}  # trains a network per image: seconds to minutes
    FUZZ_METHODS = [m for m in available_methods() if m not in SLOW]  # bm3d included: safe on any size now
    # Tiny images only (max_pixels 4096), so every method, bm3d and the shipped U-Nets included, answers
    # in well under a second per example: the whole fuzz run stays under a minute on a loaded machine.
    FUZZ_APP = create_app(ServerSettings(methods=FUZZ_METHODS, timeout=20, max_pixels=4096, max_bytes=65536))
    FUZZ_SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", FUZZ_APP)
    TINY_APP = create_app(ServerSettings(methods=FUZZ_METHODS, timeout=20, max_pixels=4096, max_bytes=65536))

    def _no_unintended_5xx(status: int, text: str, body: Any) -> None:
        assert status < 500 or status == 503, text
        if status >= 400:
            assert set(body) == {"error"}, text

    @FUZZ_SCHEMA.parametrize()
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    def test_fuzz_api_from_openapi_has_no_unintended_5xx(case):
        """Every route from its OpenAPI schema (random bodies, options and headers)."""
        response = case.call()
        _no_unintended_5xx(response.status_code, response.text,
                           response.json() if response.status_code >= 400 else None)

    @st.composite
    def tiny_uploads(draw):
        """A real tiny image (1-12 px sides, gray or RGB, 8 or 16 bit, PNG/TIFF/BMP/NPY) and options."""
        h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        channels = draw(st.sampled_from([1, 3]))
        fmt = draw(st.sampled_from(["png", "tiff", "bmp", "npy"]))
        pil_rgb = fmt in ("png", "bmp") and channels == 3 or fmt == "bmp"  # Pillow writes these 8-bit only
        depth = np.uint8 if pil_rgb else draw(st.sampled_from([np.uint8, np.uint16]))
        seed = draw(st.integers(0, 2**16))
        arr = np.random.default_rng(seed).integers(0, np.iinfo(depth).max, (h, w, channels), endpoint=True)
        arr = arr.astype(depth)[..., 0] if channels == 1 else arr.astype(depth)
        buf = io.BytesIO()
        if fmt == "tiff":
            import tifffile

            tifffile.imwrite(buf, arr)
        elif fmt == "npy":
            np.save(buf, arr, allow_pickle=False)
        else:
            Image.fromarray(arr).save(buf, fmt.upper())
        form = {"method": draw(st.sampled_from(FUZZ_METHODS)), "format": draw(st.sampled_from(["png", "tiff"]))}
        sigma = draw(st.none() | st.floats(0, 255, allow_nan=False))
        if sigma is not None:
            form["sigma"] = str(sigma)
        return buf.getvalue(), form

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(upload=tiny_uploads())
    def test_fuzz_every_method_on_tiny_images_has_no_unintended_5xx(upload):
        """Valid tiny images (1x1, strips, 2x2, ...) through every method but the slow ones, blind or with
        any sigma: 200, or a 4xx naming the problem (e.g. a strip too thin to estimate), never a 5xx."""
        data, form = upload
        # no `with`: the lifespan's exit would shut the shared job pool (every later request: 503)
        c = TestClient(TINY_APP, raise_server_exceptions=False)
        r = c.post("/api/v1/denoise", files={"image": ("x", data, "application/octet-stream")}, data=form)
        _no_unintended_5xx(r.status_code, r.text, r.json() if r.status_code >= 400 else None)
        assert r.status_code in (200, 400), (form, r.status_code, r.text)  # one client, no load: never busy
        if r.status_code == 400:
            msg = r.json()["error"]  # a strip too thin to estimate, blind; a gray image for the color model
            assert ("give sigma explicitly" in msg and "sigma" not in form) or "channel" in msg, r.text
        if r.status_code == 200:
            assert r.content[:4] in (b"\x89PNG", b"II*\x00", b"MM\x00*"), r.content[:8]
else:  # pragma: no cover
    @pytest.mark.skip(reason="schemathesis is not installed (pip install -e '.[dev]')")
    def test_fuzz_api_from_openapi_has_no_unintended_5xx():
        """Placeholder reported as skipped."""


def test_serve_on_a_port_in_use_is_one_line_before_any_banner(capsys, monkeypatch):
    import socket

    import uvicorn

    from imdenoise.cli.main import main

    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_k: (_ for _ in ()).throw(AssertionError("started")))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exc:
            main(["serve", "--port", str(port)])
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and "serving" not in out, out
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err, err


def test_models_say_how_far_each_model_was_trained(client):
    methods = {m["name"]: m for m in client.get("/api/v1/models").json()["methods"]}
    if "default" in methods:
        assert methods["default"]["sigma_max"] == 55 and methods["color"]["sigma_max"] == 55
    assert methods["gaussian"]["sigma_max"] is None
