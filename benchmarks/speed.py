"""Inference speed and peak memory of every registered architecture, as a ratio to DnCNN-17.

Each row runs in a fresh subprocess (so its peak resident memory, VmHWM, is that row's own, torch's
allocator included): the engine's `denoise` call on a random image already in memory, after one
warm-up call (which includes torch.compile's compilation), median of --repeats calls, with
torch.set_num_threads(2) (onnxruntime: 2 intra-op threads) and channels-last tensors.
Registry architectures run with random weights (speed does not depend on them); a shipped model's
name (`gray`, `color`) times that model as it ships, its architecture config included. onnxruntime
rows use models exported and int8-quantized (static, calibrated on a few training images, quantize_int8's default recipe: the
U-Net's first level stays float32) once per architecture and channels.

    python benchmarks/speed.py --quick
    python benchmarks/speed.py --archs unet,dncnn --large --compile
    python benchmarks/speed.py --archs gray,color,dncnn --modes eager,bf16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = ("eager", "compile", "bf16", "ort-fp32", "ort-int8")
REFERENCE = ("dncnn", "eager")


def _ort_paths(workdir: Path, arch: str, channels: int) -> tuple[Path, Path]:
    stem = workdir / f"{arch}-c{channels}"
    return stem.with_suffix(".onnx"), stem.with_name(stem.name + "-int8.onnx")


def prepare_onnx(workdir: Path, arch: str, channels: int, int8: bool) -> None:
    """Export (and quantize) a random-weight model once; reused by every onnxruntime row."""
    import torch

    from imdenoise.denoisers.onnx import export_onnx
    from imdenoise.deploy.quantize import quantize_int8
    from imdenoise.models.weights import load_network

    fp32, q8 = _ort_paths(workdir, arch, channels)
    if not fp32.is_file():
        torch.manual_seed(0)
        model, card = load_network(arch, channels)
        export_onnx(model, card, fp32)
    if int8 and not q8.is_file():
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):  # onnxruntime's calibrator prints progress to stdout
            quantize_int8(fp32, q8)


def run_row(arch: str, size: int, channels: int, mode: str, repeats: int, threads: int, workdir: Path) -> dict:
    """Time one configuration in this process; returns Mpx/s, seconds per image and peak RSS."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from imdenoise.denoisers.network import InferenceOptions, ModelDenoiser

    opts = InferenceOptions(device="cpu", threads=threads, precision="bf16" if mode == "bf16" else "fp32",
                            compile=mode == "compile")
    if mode.startswith("ort"):
        from imdenoise.denoisers.onnx import load_onnx

        fp32, q8 = _ort_paths(workdir, arch, channels)
        den = load_onnx(q8 if mode == "ort-int8" else fp32, opts)
    else:
        from imdenoise.models.weights import load_network

        torch.manual_seed(0)
        model, card = load_network(arch, channels)
        den = ModelDenoiser(model, arch, card, opts)
    from imdenoise.denoisers.network import median_seconds

    img = np.random.default_rng(0).random((size, size, channels), dtype=np.float32)
    sec = median_seconds(den, img, 25.0, repeats)
    return {"mpx_s": size * size / 1e6 / sec, "sec": sec, "rss_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (reset by exec, unlike ru_maxrss), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; may include the parent's


def spawn_row(arch: str, size: int, channels: int, mode: str, args: argparse.Namespace, workdir: Path) -> dict:
    """run_row in a fresh interpreter (so its peak memory is its own); errors become a row note."""
    cmd = [sys.executable, __file__, "--row", f"{arch}:{size}:{channels}:{mode}", "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--workdir", str(workdir)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        err = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"error": err[:120]}
    return json.loads(lines[-1])


def table(rows: list[tuple[str, int, int, str, dict]], refs: dict[tuple[int, int], float]) -> str:
    """Markdown table of the measured rows."""
    out = ["| architecture | input | mode | Mpx/s | x DnCNN-17 eager | s / image | peak RSS (MB) |",
           "|---|---|---|---|---|---|---|"]
    for arch, size, ch, mode, r in rows:
        kind = f"{size}x{size} {'gray' if ch == 1 else 'color'}"
        if "error" in r:
            out.append(f"| {arch} | {kind} | {mode} | failed: {r['error']} | | | |")
            continue
        ref = refs.get((size, ch))
        ratio = f"{r['mpx_s'] / ref:.2f}" if ref else "n/a"
        out.append(f"| {arch} | {kind} | {mode} | {r['mpx_s']:.3f} | {ratio} | {r['sec']:.2f} | {r['rss_mb']:.0f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Parse options, measure every selected row, print the markdown table."""
    from imdenoise.models.registry import ARCHITECTURES
    from imdenoise.models.weights import SHIPPED_DIR

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default=",".join(ARCHITECTURES), help="comma-separated architectures")
    p.add_argument("--sizes", default="512", help="comma-separated square sizes (see --large)")
    p.add_argument("--large", action="store_true", help="add 2048x2048 rows (slow)")
    p.add_argument("--channels", default="gray,color", help="gray, color or both")
    p.add_argument("--modes", default="eager,bf16,ort-fp32,ort-int8", help=f"any of {','.join(MODES)}")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (slow: compiles per row)")
    p.add_argument("--quick", action="store_true", help="unet and dncnn, 512 gray, one timed call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workdir", type=Path, default=None, help="where exported ONNX models are kept")
    p.add_argument("--row", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.row:
        arch, size, ch, mode = args.row.split(":")
        print(json.dumps(run_row(arch, int(size), int(ch), mode, args.repeats, args.threads, args.workdir)))
        return
    if args.quick:
        args.archs, args.sizes, args.channels, args.repeats = "unet,dncnn", "512", "gray", 1
    archs = [a for a in args.archs.split(",") if a]
    unknown = [a for a in archs if a not in ARCHITECTURES and not (SHIPPED_DIR / f"{a}.safetensors").is_file()]
    modes = list(dict.fromkeys([m for m in args.modes.split(",") if m] + (["compile"] if args.compile else [])))
    if unknown or any(m not in MODES for m in modes):
        shipped = ", ".join(sorted(f.stem for f in SHIPPED_DIR.glob("*.safetensors")))
        p.error(f"unknown architecture(s) {unknown} or mode(s) in {modes}; architectures: {', '.join(ARCHITECTURES)}; "
                f"shipped models: {shipped}")
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([2048] if args.large else [])
    chans = [{"gray": 1, "color": 3}[c] for c in args.channels.split(",") if c]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="imdenoise-speed-"))
    workdir.mkdir(parents=True, exist_ok=True)
    for arch in archs:
        for ch in chans:
            if any(m.startswith("ort") for m in modes):
                prepare_onnx(workdir, arch, ch, "ort-int8" in modes)
    rows, refs = [], {}
    for size in sizes:
        for ch in chans:
            ref = spawn_row(*REFERENCE[:1], size, ch, REFERENCE[1], args, workdir)
            refs[(size, ch)] = ref.get("mpx_s")
            if "dncnn" not in archs:
                rows.append(("dncnn", size, ch, "eager", ref))
            for arch in archs:
                for mode in modes:
                    r = ref if (arch, mode) == REFERENCE else spawn_row(arch, size, ch, mode, args, workdir)
                    rows.append((arch, size, ch, mode, r))
                    print(f"  {arch} {size} c{ch} {mode}: {r}", file=sys.stderr, flush=True)
    load = os.getloadavg()[0]
    print(f"torch threads {args.threads}; load average at the end {load:.1f} on {os.cpu_count()} CPUs "
          "(anything above the thread count means other work shared the CPU)\n")
    print(table(rows, refs))


if __name__ == "__main__":
    main()
