"""Memory figures of the hardening work (docs/hardening.md), each printed as a table.

    python benchmarks/hardening.py cli-memory [--sizes 12,24,36] [--method NAME]
        peak RSS of `imdenoise denoise IN.png -o OUT.png` on noisy colour photos of N megapixels
    python benchmarks/hardening.py tiff-pages [--pages 1000000]
        seconds and peak RSS of `imdenoise denoise` on a TIFF of that many 1x1 pages (refused)
    python benchmarks/hardening.py lying-card [--widths 3000]
        a 228-byte .safetensors whose card claims a network of that width: result, seconds, peak RSS
    python benchmarks/hardening.py server-idle [--connections 1100]
        /health while that many idle TCP connections are open (server's open-file limit 1024), log size
    python benchmarks/hardening.py server-burst [--clients 128] [--mib 25]
        peak and after-burst RSS of `imdenoise serve` when that many clients upload at once
    python benchmarks/hardening.py server-bpp [--methods a,b] [--sides 1000,1500]
        peak memory of one server job (gray and colour) for every offered method: fixed part and
        bytes per pixel, through two image sizes

Each measured command runs in its own process; its peak RSS is the kernel's (wait4's ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIDES = {12: (4000, 3000), 24: (6000, 4000), 36: (6000, 6000), 40: (7300, 5500)}


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MiB, stderr tail) of one command in its own process."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    return code, seconds, usage.ru_maxrss / 1024, err.strip().splitlines()[-1] if err.strip() else ""


def noisy_photo(width: int, height: int, sigma: float = 15.0, seed: int = 0) -> np.ndarray:
    """A uint8 colour photo of the given size: the bundled sample photo tiled (mirrored), plus white noise."""
    from PIL import Image

    with Image.open(ROOT / "src" / "imdenoise" / "assets" / "sample.png") as im:
        tile = np.asarray(im.convert("RGB"))
    tile = np.concatenate([tile, tile[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    img = np.tile(tile, reps)[:height, :width]
    rng = np.random.default_rng(seed)
    out = np.empty_like(img)
    for y in range(0, height, 500):  # row blocks: the generator itself stays small
        block = img[y:y + 500].astype(np.float32) + rng.normal(0, sigma, img[y:y + 500].shape).astype(np.float32)
        out[y:y + 500] = np.clip(np.rint(block), 0, 255).astype(np.uint8)
    return out


def _env() -> dict[str, str]:
    """The measured processes' environment: this tree's src (or IMDENOISE_BENCH_SRC, e.g. an older
    checkout's, for a before/after figure), one OpenMP thread unless set."""
    src = os.environ.get("IMDENOISE_BENCH_SRC", str(ROOT / "src"))
    return {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def cli_memory(sizes: list[int], method: str | None) -> None:
    """Peak RSS of the CLI denoising a noisy colour PNG of each size (default model unless --method)."""
    from PIL import Image

    print("| image | method | exit | seconds | peak RSS (MiB) | peak RSS (GB) |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="imdenoise-bench-") as tmp:
        for mp in sizes:
            w, h = SIDES[mp]
            src = Path(tmp) / f"noisy{mp}.png"
            Image.fromarray(noisy_photo(w, h)).save(src, compress_level=1)
            out = Path(tmp) / f"out{mp}.png"
            cmd = [sys.executable, "-m", "imdenoise", "denoise", str(src), "-o", str(out)]
            cmd += ["--method", method] if method else []
            code, seconds, rss, err = run_measured(cmd, _env())
            print(f"| {w}x{h} colour PNG ({w * h / 1e6:.0f} MP) | {method or 'default'} | {code} | {seconds:.0f} | "
                  f"{rss:.0f} | {rss * 2**20 / 1e9:.2f} |" + (f" {err}" if code else ""), flush=True)
            src.unlink()
            out.unlink(missing_ok=True)


def tiff_pages(pages: int) -> None:
    """Seconds and peak RSS of the CLI on a TIFF of `pages` 1x1 pages (refused past --max-pages)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_hardening_cli import tiff_pages as make

    print("| file | exit | seconds | peak RSS (MiB) | message |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="imdenoise-bench-") as tmp:
        src = Path(tmp) / "pages.tif"
        src.write_bytes(make(pages))
        cmd = [sys.executable, "-m", "imdenoise", "denoise", str(src), "-o", str(Path(tmp) / "o.tif"),
               "--method", "mean", "--sigma", "10"]
        code, seconds, rss, err = run_measured(cmd, _env())
        print(f"| {pages} pages, {src.stat().st_size / 1e6:.0f} MB | {code} | {seconds:.1f} | {rss:.0f} | {err[:120]} |")


class Server:
    """`imdenoise serve` in its own process on a free port, its log in a file; a context manager."""

    def __init__(self, tmp: Path, *args: str, nofile: int | None = None) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tmp / "server.log"
        self.url = f"http://127.0.0.1:{self.port}"

        def limits() -> None:
            if nofile:
                import resource

                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "imdenoise", "serve", "--port", str(self.port), *args],
                                         stdout=log, stderr=subprocess.STDOUT, env=_env(), preexec_fn=limits)
        self.wait_ready()

    def wait_ready(self, seconds: float = 60) -> None:
        """Block until /health answers."""
        import urllib.request

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=2).read()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def status(self, field: str) -> float:
        """A /proc/PID/status field in MiB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def fds(self) -> int:
        """Open file descriptors of the server process."""
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def health_seconds(url: str, timeout: float = 5.0) -> float | None:
    """Seconds one GET /health takes on a new connection, None if it fails or times out."""
    import urllib.request

    start = time.monotonic()
    try:
        urllib.request.urlopen(url + "/health", timeout=timeout).read()
    except OSError:
        return None
    return time.monotonic() - start


def server_idle(connections: int, seconds: float = 20.0) -> None:
    """Open `connections` idle TCP connections to a server whose open-file limit is 1024, then probe
    /health every half second; report successes, latency, the server's open files and its log size."""
    import socket

    print("| idle connections | /health ok | slowest /health (s) | server fds at end | log bytes | "
          "log lines |\n|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="imdenoise-bench-") as tmp, Server(Path(tmp), nofile=1024) as srv:
        socks = []
        for _ in range(connections):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            socks.append(s)
        probes, ok, slowest = 0, 0, 0.0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            took = health_seconds(srv.url)
            probes += 1
            if took is not None:
                ok += 1
                slowest = max(slowest, took)
            time.sleep(0.5)
        fds = srv.fds()
        for s in socks:
            s.close()
        time.sleep(1)
        text = srv.log.read_bytes()
        if os.environ.get("IMDENOISE_BENCH_SHOW_LOG"):
            print(text.decode(errors="replace")[-3000:])
        lines = text.count(b"\n")
        print(f"| {connections} for {seconds:.0f} s | {ok}/{probes} | {slowest:.2f} | {fds} | {len(text)} | {lines} |")


def _png_of_size(path: Path, target: int) -> None:
    """A random colour PNG of a little under `target` bytes (noise does not compress)."""
    from PIL import Image

    side = int((target / 3) ** 0.5) - 8
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(
        path, compress_level=1)


def server_burst(clients: int, mib: int, method: str = "gaussian") -> None:
    """`clients` threads each POST a `mib`-MiB colour PNG at once; the server's peak RSS, its RSS 10 s
    after the burst, and the status codes."""
    import collections
    import concurrent.futures

    import httpx

    print("| burst | statuses | idle RSS (MiB) | peak RSS (MiB) | RSS 10 s after (MiB) | bound (MiB) |\n"
          "|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="imdenoise-bench-") as tmp:
        png = Path(tmp) / "upload.png"
        _png_of_size(png, mib * 2**20)
        data = png.read_bytes()
        with Server(Path(tmp), "--methods", method) as srv:
            idle = srv.status("VmRSS")

            def post(_: int) -> int:
                try:
                    r = httpx.post(srv.url + "/api/v1/denoise", files={"image": ("u.png", data, "image/png")},
                                   data={"method": method, "sigma": "10"}, timeout=600)
                    return r.status_code
                except httpx.HTTPError as exc:
                    return type(exc).__name__

            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                codes = collections.Counter(pool.map(post, range(clients)))
            time.sleep(10)
            after, peak = srv.status("VmRSS"), srv.status("VmHWM")
        bound = (2 + 8) * (25 * 2**20 + 64 * 1024) / 2**20
        print(f"| {clients} x {len(data) / 2**20:.1f} MiB, method {method} | "
              f"{', '.join(f'{k}: {v}' for k, v in sorted(codes.items(), key=str))} | {idle:.0f} | {peak:.0f} | "
              f"{after:.0f} | idle + {bound:.0f} |")


CARD_SCRIPT = """
import json, resource, sys, time, torch
from safetensors.torch import save_file
from imdenoise.models.weights import load_model, CARD_KEY
width, path = int(sys.argv[1]), sys.argv[2]
card = {"name": "x", "architecture": "unet", "in_channels": 1, "config": {"widths": [width], "blocks_per_level": 1}}
save_file({"x": torch.zeros(1)}, path, metadata={CARD_KEY: json.dumps(card)})
start = time.monotonic()
try:
    load_model(path)
    result = "loaded"
except Exception as exc:
    result = f"{type(exc).__name__}"
print(f"{result}|{time.monotonic() - start:.2f}|{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}")
"""


def lying_card(widths: list[int]) -> None:
    """A .safetensors holding one 4-byte tensor whose card claims a U-Net of the given width: the
    loader's result, seconds and the process's peak RSS."""
    print("| card claims | file bytes | result | seconds | peak RSS (MiB) |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="imdenoise-bench-") as tmp:
        for width in widths:
            path = Path(tmp) / f"w{width}.safetensors"
            out = subprocess.run([sys.executable, "-c", CARD_SCRIPT, str(width), str(path)], capture_output=True,
                                 text=True, env=_env())
            last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else f"crashed rc {out.returncode}||"
            result, seconds, rss = last.split("|")
            size = path.stat().st_size if path.exists() else 0
            print(f"| widths [{width}] | {size} | {result} | {seconds} | {rss} |", flush=True)


BPP_SCRIPT = """
import sys, time, io, numpy as np
from pathlib import Path
from PIL import Image
from imdenoise.server.jobs import ImageJob, ModelCache, ServerSettings, plan_sigma
method, side, channels = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def status(field):
    for line in open('/proc/self/status'):
        if line.startswith(field + ':'):
            return int(line.split()[1]) * 1024
rng = np.random.default_rng(0)
def png(h, w):
    base = np.linspace(40, 200, w)[None, :, None] + np.linspace(0, 30, h)[:, None, None]
    arr = np.clip(base + rng.normal(0, 15, (h, w, channels)), 0, 255).astype(np.uint8)
    buf = io.BytesIO(); Image.fromarray(arr[..., 0] if channels == 1 else arr).save(buf, 'PNG', compress_level=1)
    buf.seek(0); return buf
settings = ServerSettings(max_pixels=10**9)
cache = ModelCache()
def run(buf):
    job = ImageJob(buf, 'png', settings)
    if method == 'preview':
        return job.preview(time.monotonic() + 1e6)
    return job.denoise(time.monotonic() + 1e6, lambda: cache.get(method), None, 'png', kind=cache.kind(method))
run(png(64, 64))  # load the method, warm up
big = png(side, side)
import gc; gc.collect()
open('/proc/self/clear_refs', 'w').write('5')  # reset the peak (VmHWM) to the current RSS
base = status('VmRSS')
t = time.monotonic(); run(big); t = time.monotonic() - t
print((status('VmHWM') - base) / side / side, t)
"""


def _job_peak(method: str, side: int, channels: int) -> tuple[float, float]:
    """(peak bytes above the loaded method, seconds) of one server job on a side x side PNG."""
    out = subprocess.run([sys.executable, "-c", BPP_SCRIPT, method, str(side), str(channels)],
                         capture_output=True, text=True, env=_env())
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1][:100])
    bpp, seconds = out.stdout.split()
    return float(bpp) * side * side, float(seconds)


def server_bpp(methods: list[str], sides: tuple[int, int]) -> None:
    """Peak memory of one server job (decode, blind denoise, encode) above the process with its method
    loaded, on noisy gray and colour PNGs of two sizes, each run in a fresh process: the fixed part A
    and the slope B (bytes per pixel) through the two points, and the (A, B) row for server.jobs."""
    small, large = sides
    p1, p2 = small * small, large * large
    print(f"| method | gray A (MB) | gray B (B/px) | colour A (MB) | colour B (B/px) | seconds ({small}^2, {large}^2 "
          f"gray; colour) |\n|---|---|---|---|---|---|")
    rows = {}
    for method in methods:
        cells, fits, times = [], [], []
        for channels in (1, 3):
            try:
                (m1, t1), (m2, t2) = _job_peak(method, small, channels), _job_peak(method, large, channels)
            except RuntimeError as exc:  # e.g. the colour model refuses gray images (a 400 for clients)
                cells += ["n/a", "n/a"]
                times.append(str(exc)[-60:])
                continue
            slope = max(0.0, (m2 - m1) / (p2 - p1))
            fixed = max(0.0, m2 - slope * p2)
            fits.append((fixed, slope))
            cells += [f"{fixed / 1e6:.0f}", f"{slope:.1f}"]
            times.append(f"{t1:.0f}, {t2:.0f}")
        if not fits:
            print(f"| {method} | failed: {'; '.join(times)} |", flush=True)
            continue
        rows[method] = (max(f[0] for f in fits), max(f[1] for f in fits))
        print(f"| {method} | {' | '.join(cells)} | {'; '.join(times)} |", flush=True)
    print("\nJOB_MEMORY = {" + ", ".join(f'"{m}": ({a / 1e6:.0f}e6, {b:.1f})' for m, (a, b) in rows.items()) + "}")


def main() -> None:
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("cli-memory")
    p.add_argument("--sizes", default="12,24,36")
    p.add_argument("--method", default=None)
    p = sub.add_parser("tiff-pages")
    p.add_argument("--pages", type=int, default=1_000_000)
    p = sub.add_parser("lying-card")
    p.add_argument("--widths", default="3000")
    p = sub.add_parser("server-idle")
    p.add_argument("--connections", type=int, default=1100)
    p = sub.add_parser("server-burst")
    p.add_argument("--clients", type=int, default=128)
    p.add_argument("--mib", type=int, default=25)
    p.add_argument("--method", default="gaussian")
    p = sub.add_parser("server-bpp")
    p.add_argument("--methods", default=None)
    p.add_argument("--sides", default="1000,1500")
    args = parser.parse_args()
    if args.what == "cli-memory":
        cli_memory([int(s) for s in args.sizes.split(",")], args.method)
    elif args.what == "tiff-pages":
        tiff_pages(args.pages)
    elif args.what == "lying-card":
        lying_card([int(w) for w in args.widths.split(",")])
    elif args.what == "server-idle":
        server_idle(args.connections)
    elif args.what == "server-burst":
        server_burst(args.clients, args.mib, args.method)
    elif args.what == "server-bpp":
        sys.path.insert(0, _env()["PYTHONPATH"])
        from imdenoise.server.jobs import JOB_MEMORY

        small, large = (int(x) for x in args.sides.split(","))
        server_bpp(args.methods.split(",") if args.methods else list(JOB_MEMORY), (small, large))


if __name__ == "__main__":
    main()
