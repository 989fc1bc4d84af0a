"""Regenerate the README's quality table: our methods vs BM3D and the published DnCNN/FFDNet/DRUNet.

    python benchmarks/quality.py --methods default --blind-too --ensemble-too 8 --readme README.md   # the README table
    python benchmarks/quality.py --methods bm3d --limit 2 --sets set12 --repeats 1

Measured rows follow ../shared/BENCHMARK.md through `imdenoise.evaluation.evaluate` (true sigma given, 2 torch
threads by default, --threads; with --blind-too also a row per model with sigma estimated from the image, with --ensemble-too N
one with N flipped/rotated passes averaged); published rows
are the papers' figures copied from BENCHMARK.md and labelled as such. Seconds per 512x512 image:
median of --repeats calls after one warm-up, sigma 25, for the measured rows and, in the same run,
for the reference methods of --time-only (BM3D through the `bm3d` package, the DnCNN-17 architecture
with random weights: speed does not depend on them), shown in their published rows.
Prints markdown; --output FILE also writes it, --json FILE the measured numbers, --readme FILE
replaces the table between the `<!-- quality-table -->` markers of that file.

Real noise (--real-dataset FOLDER of noisy/reference pairs, e.g. ../shared/datasets/real/polyu-canon;
evaluation only, never trained on): a second table, through the same `imdenoise.evaluation.evaluate` (the noisy
photo is the input, no synthetic noise). Rows: the noisy photo itself, each of --real-methods blind,
each of --real-fixed at every --real-sigmas level (the best marked), optionally BM3D at that best level
(--real-bm3d-best), the FFDNet figure quoted in issue 23 (not run here) and, with --time-only dncnn
(default with --real-readme), the DnCNN-17 architecture's seconds on a 512x512 color image.
Columns: mean PSNR, gain over the noisy photo, mean SSIM, median seconds per image (--threads, default 2).
--real-output / --real-json / --real-readme (between `<!-- real-table:start -->` and
`<!-- real-table:end -->`, which must exist) as for the main table; --real-only skips the main table.

    python benchmarks/quality.py --real-only --real-dataset ../shared/datasets/real/polyu-canon --real-readme README.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASETS = ROOT.parent / "shared" / "datasets" / "test"
SETS = {"set12": "Set12", "bsd68": "BSD68", "cbsd68": "CBSD68", "kodak24": "Kodak24"}
GRAY_SETS = {"set12", "bsd68"}

# Published PSNR (dB) at sigma 15 / 25 / 50, from the papers' own tables, as quoted in BENCHMARK.md.
PUBLISHED = {
    "BM3D / CBM3D": {"set12": (32.37, 29.97, 26.72), "bsd68": (31.07, 28.57, 25.62),
                     "cbsd68": (33.52, 30.71, 27.38), "kodak24": (34.28, 31.68, 28.46)},
    "DnCNN": {"set12": (32.86, 30.44, 27.18), "bsd68": (31.73, 29.23, 26.23),
              "cbsd68": (33.89, 31.23, 27.92), "kodak24": (34.48, 32.03, 28.85)},
    "FFDNet": {"set12": (32.75, 30.43, 27.32), "bsd68": (31.63, 29.19, 26.29),
               "cbsd68": (33.87, 31.21, 27.96), "kodak24": (34.63, 32.13, 28.98)},
    "DRUNet": {"set12": (33.25, 30.94, 27.90), "bsd68": (31.91, 29.48, 26.59),
               "cbsd68": (34.30, 31.69, 28.51), "kodak24": (35.31, 32.89, 29.86)},
}
PUBLISHED_SIGMAS = (15.0, 25.0, 50.0)
# --time-only methods: how to build each, and the published row its measured seconds belong to.
TIME_ONLY_ROWS = {"bm3d": "BM3D / CBM3D", "dncnn": "DnCNN"}
README_START, README_END = "<!-- quality-table:start -->", "<!-- quality-table:end -->"
REAL_START, REAL_END = "<!-- real-table:start -->", "<!-- real-table:end -->"
DEFAULT_REAL = ROOT.parent / "shared" / "datasets" / "real" / "polyu-canon"
# Real-noise figures that exist but are not measured here: (row label, PSNR dB, fixed sigma, source).
REAL_REPORTED = [("FFDNet, sigma 10", 38.78, 10.0, "reported in issue 23, official weights, not run here")]


def default_methods() -> list[str]:
    """Shipped models ('default' when both halves exist, else each shipped file), plus bm3d if installed."""
    from imdenoise.denoisers.catalog import available_methods
    from imdenoise.denoisers.classical import CLASSICAL_METHODS
    from imdenoise.models.weights import SHIPPED_ALIASES

    names = [m for m in available_methods() if m not in CLASSICAL_METHODS and m != "zeroshot"]
    halves = {h for alias, pair in SHIPPED_ALIASES.items() if alias in names for h in pair}
    names = [m for m in names if m not in halves]  # an alias (gray + color model) stands for its halves
    try:
        import bm3d  # noqa: F401

        names.append("bm3d")
    except ImportError:
        print("note: bm3d is not installed (pip install 'imdenoise[bm3d]'); no measured BM3D row", file=sys.stderr)
    return names


def measure_quality(method: str, denoiser, ds_dir: Path, sigmas: list[float], limit: int | None,
                    blind: bool = False, threads: int = 2) -> dict[float, float] | None:
    """Mean PSNR per sigma of one method on one set, or None when the method cannot run on it."""
    from imdenoise.evaluation.evaluate import (
        EvalSettings,
        EvaluationError,
        evaluate,
        load_dataset,
        parse_levels,
        summarize,
    )

    ds = load_dataset(ds_dir, limit=limit)
    levels = parse_levels("gaussian:" + ",".join(f"{s:g}" for s in sigmas))
    try:
        records = evaluate({method: denoiser}, [ds], levels, EvalSettings(limit=limit, sigma_known=not blind,
                                                                           threads=threads))
    except EvaluationError as exc:
        print(f"note: {method} skipped on {ds.name}: {exc}", file=sys.stderr)
        return None
    return {row["level"]: row["psnr"] for row in summarize(records)}


def image_512(ds_dir: Path, channels: int) -> np.ndarray:
    """A 512x512 test image (the set's first image, reflect-padded or cropped), float32 in [0, 1]."""
    from imdenoise.evaluation.evaluate import load_dataset

    img = load_dataset(ds_dir, channels=channels, limit=1).images[0].astype(np.float32) / 255
    h, w = img.shape[:2]
    img = np.pad(img, ((0, max(0, 512 - h)), (0, max(0, 512 - w)), (0, 0)), mode="reflect")
    return np.ascontiguousarray(img[:512, :512])


def seconds_512(denoiser, clean: np.ndarray, repeats: int) -> float | None:
    """Median seconds of the denoiser call on a 512x512 image at sigma 25, after one warm-up."""
    from imdenoise.noise.models import benchmark_noisy

    noisy = benchmark_noisy(clean, 25.0, 0)
    try:
        denoiser.denoise(noisy, 25.0)
    except Exception as exc:  # e.g. a color model on a gray image
        print(f"note: {getattr(denoiser, 'name', denoiser)}: no timing on {clean.shape}: {exc}", file=sys.stderr)
        return None
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        denoiser.denoise(noisy, 25.0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timing_denoiser(name: str, channels: int):
    """A denoiser to time only: 'dncnn' is the DnCNN-17 architecture (random weights), else `load`."""
    if name == "dncnn":
        import torch

        from imdenoise.denoisers.network import InferenceOptions, ModelDenoiser
        from imdenoise.models.registry import build_model

        torch.manual_seed(0)
        return ModelDenoiser(build_model("dncnn", in_channels=channels), "dncnn", None, InferenceOptions(device="cpu"))
    from imdenoise.denoisers.catalog import load

    return load(name)


def reference_seconds(names: list[str], sets: list[str], datasets: Path, repeats: int) -> dict[str, dict]:
    """Seconds per 512x512 gray / color image of each time-only method, keyed by its published row."""
    out: dict[str, dict] = {}
    for name in names:
        row = TIME_ONLY_ROWS.get(name)
        if row is None:
            raise SystemExit(f"error: --time-only {name!r}: choose from {', '.join(TIME_ONLY_ROWS)}")
        if name == "bm3d" and not _has_bm3d():
            print("note: bm3d is not installed; no BM3D timing", file=sys.stderr)
            continue
        out[row] = {}
        for kind, ch, pick in (("gray", 1, GRAY_SETS), ("color", 3, set(SETS) - GRAY_SETS)):
            src = next((s for s in sets if s in pick), None)
            if src is not None:
                print(f"{name}: timing {kind} ...", file=sys.stderr)
                out[row][kind] = seconds_512(timing_denoiser(name, ch), image_512(datasets / src, ch), repeats)
    return out


def _has_bm3d() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def has_markers(readme: Path, start: str, end: str) -> bool:
    """True when the file exists and holds `start` followed by `end`."""
    if not readme.is_file():
        return False
    doc = readme.read_text()
    return 0 <= doc.find(start) < doc.find(end)


def replace_readme_table(readme: Path, text: str, markers: tuple[str, str] = (README_START, README_END)) -> None:
    """Put `text` between the markers (default: the quality-table ones) of the README (atomically);
    the markers must exist."""
    from imdenoise.atomic import write_bytes_atomic

    doc = readme.read_text()
    start, end = doc.find(markers[0]), doc.find(markers[1])
    if start < 0 or end < start:
        raise SystemExit(f"error: {readme}: no {markers[0]} ... {markers[1]} markers to put the table between")
    write_bytes_atomic(readme, doc[:start + len(markers[0])] + "\n" + text + "\n" + doc[end:])


def _seconds(value) -> str:
    return f"{value:.2f}" if value is not None else "-"


def _cell(values) -> str:
    if values is None:
        return "-"
    return " / ".join("-" if v is None else f"{v:.2f}" for v in values)


def table(measured: dict, sets: list[str], sigmas: list[float], limit: int | None,
          reference: dict[str, dict] | None = None, threads: int = 2) -> str:
    """The markdown table: measured rows, then the published reference rows (with measured seconds)."""
    reference = reference or {}
    head = ["method"] + [f"{SETS.get(s, s)} (sigma {' / '.join(f'{x:g}' for x in sigmas)})" for s in sets]
    head += ["s / 512x512 gray", "s / 512x512 color"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in measured.items():
        cells = [f"{name} (measured)"]
        for s in sets:
            psnr = res["psnr"].get(s)
            cells.append(_cell(None if psnr is None else [psnr.get(x) for x in sigmas]))
        cells += [_seconds(res["seconds"].get(c)) for c in ("gray", "color")]
        lines.append("| " + " | ".join(cells) + " |")
    for name, figs in PUBLISHED.items():
        cells = [f"{name} (published)"]
        for s in sets:
            vals = figs.get(s)
            cells.append(_cell(None if vals is None else
                               [vals[PUBLISHED_SIGMAS.index(x)] if x in PUBLISHED_SIGMAS else None for x in sigmas]))
        secs = reference.get(name, {})
        lines.append("| " + " | ".join(cells + [_seconds(secs.get(c)) for c in ("gray", "color")]) + " |")
    timed = ", ".join(f"{row}: {'BM3D (`bm3d` package)' if row.startswith('BM3D') else 'the DnCNN-17 architecture'}"
                      for row in reference)
    note = (f"\nPSNR dB under BENCHMARK.md (true sigma given; `blind`: estimated from the image; `xN self-ensemble`: "
            "the mean of N flipped/rotated passes); measured rows on "
            f"{'the first ' + str(limit) + ' images of each set' if limit else 'the full sets'}; "
            "published rows: the papers' figures (BENCHMARK.md). Seconds: median per 512x512 image at sigma 25, "
            f"{threads} torch thread{'s' if threads != 1 else ''}, this machine, measured in the same run"
            + (f" (published rows' seconds: {timed}, timed here)." if timed else "."))
    return "\n".join(lines) + "\n" + note


def measure_real(label: str, denoiser, ds, sigma: float | None, threads: int = 2) -> dict | None:
    """One row of the real-noise table: `denoiser` on the pairs of `ds`, blind (sigma None) or at `sigma`."""
    from imdenoise.evaluation.evaluate import EvalSettings, EvaluationError, evaluate, summarize

    try:
        records = evaluate({label: denoiser}, [ds], [], EvalSettings(fixed_sigma=sigma, threads=threads))
    except EvaluationError as exc:
        print(f"note: {label} skipped on {ds.name}: {exc}", file=sys.stderr)
        return None
    (row,) = summarize(records)
    return {"label": label, "method": getattr(denoiser, "name", label), "sigma": sigma, "images": row["images"],
            "psnr": row["psnr"], "ssim": row["ssim"], "gain": row["psnr"] - row["psnr_noisy"],
            "seconds": row["seconds"]}


def noisy_row(ds) -> dict:
    """The noisy photos themselves against their references (the protocol's 8-bit PSNR / SSIM)."""
    from imdenoise.metrics import psnr_uint8, ssim_uint8

    psnr = [psnr_uint8(c, n) for c, n in zip(ds.images, ds.noisy)]
    ssim = [ssim_uint8(c, n) for c, n in zip(ds.images, ds.noisy)]
    return {"label": "noisy photo (input)", "method": None, "sigma": None, "images": len(ds.images),
            "psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)), "gain": 0.0, "seconds": None}


def measure_real_table(ds_dir: Path, blind: list[str], fixed: list[str], sigmas: list[float], limit: int | None,
                       bm3d_best: bool = False, dncnn_seconds: float | None = None, time_dncnn: bool = False,
                       repeats: int = 3, threads: int = 2) -> dict:
    """The rows of the real-noise table (see the module doc) and the best fixed sigma of each --real-fixed method."""
    from imdenoise.denoisers.catalog import load
    from imdenoise.evaluation.evaluate import EvaluationError, load_dataset

    ds = load_dataset(ds_dir, limit=limit)
    if not ds.real:
        raise EvaluationError(f"--real-dataset {ds_dir}: not a folder of real noisy pairs "
                              "(<name>_real.* beside <name>_mean.*, or noisy/ and clean/ subfolders)")
    rows, best = [noisy_row(ds)], {}
    loaded: dict[str, object] = {}

    def get(name: str):
        if name not in loaded:
            loaded[name] = load(name)
        return loaded[name]

    def fixed_rows(name: str) -> None:
        group = []
        for sigma in sigmas:
            print(f"{name}, sigma {sigma:g}: {ds.name} ...", file=sys.stderr)
            group.append(measure_real(f"{name}, sigma {sigma:g}", get(name), ds, sigma, threads))
        done = [r for r in group if r is not None]
        if done:
            top = max(done, key=lambda r: r["psnr"])
            top["best"] = True
            best[name] = top["sigma"]
        rows.extend(group)

    # each blind row followed by the same method's fixed-sigma rows; then fixed-only methods
    for name in blind + [f for f in fixed if f not in blind]:
        if name == "bm3d" and not _has_bm3d():
            print("note: bm3d is not installed; no BM3D row", file=sys.stderr)
            continue
        if name in blind:
            print(f"{name}, blind: {ds.name} ...", file=sys.stderr)
            rows.append(measure_real(f"{name}, blind", get(name), ds, None, threads))
        if name in fixed:
            fixed_rows(name)
    if bm3d_best and best:
        sigma = next(iter(best.values()))
        if _has_bm3d():
            print(f"bm3d, sigma {sigma:g}: {ds.name} ...", file=sys.stderr)
            rows.append(measure_real(f"bm3d, sigma {sigma:g}", get("bm3d"), ds, sigma, threads))
        else:
            print("note: bm3d is not installed; no BM3D row at the best sigma", file=sys.stderr)
    if time_dncnn and dncnn_seconds is None:
        print("dncnn: timing color (512x512) ...", file=sys.stderr)
        dncnn_seconds = seconds_512(timing_denoiser("dncnn", 3), image_512(ds_dir, 3), repeats)
    sizes = {f"{a.shape[1]}x{a.shape[0]}" for a in ds.images}
    return {"dataset": str(ds_dir), "images": len(ds.images), "limit": limit, "sigmas": sigmas, "threads": threads,
            "size": sizes.pop() if len(sizes) == 1 else "mixed sizes",
            "rows": [r for r in rows if r is not None], "best_sigma": best,
            "dncnn_seconds": dncnn_seconds if time_dncnn else None,
            "reported": [{"label": lab, "psnr": p, "sigma": sg, "source": src} for lab, p, sg, src in REAL_REPORTED]}


def real_table(res: dict) -> str:
    """Markdown of the real-noise table: measured rows, the reported figures, the DnCNN-17 timing."""
    head = ["method", "PSNR dB", "gain over noisy dB", "SSIM", "s / image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in res["rows"]:
        label = r["label"] + (" (best fixed sigma)" if r.get("best") else "")
        gain = "-" if r["method"] is None else f"{r['gain']:+.2f}"
        lines.append(f"| {label} | {r['psnr']:.2f} | {gain} | {r['ssim']:.4f} | {_seconds(r['seconds'])} |")
    for quoted in res["reported"]:
        lines.append(f"| {quoted['label']} ({quoted['source']}) | {quoted['psnr']:.2f} | - | - | - |")
    if res.get("dncnn_seconds") is not None:
        lines.append(f"| DnCNN-17 architecture (timing only, random weights, 512x512 color) | - | - | - | "
                     f"{_seconds(res['dncnn_seconds'])} |")
    name = Path(res["dataset"]).name
    note = (f"\nReal noise: {res['images']} noisy/reference pairs of {name}"
            f"{' (the first ' + str(res['limit']) + ' by name)' if res['limit'] else ''}, no synthetic noise; "
            "PSNR / SSIM of the 8-bit output against the reference (BENCHMARK.md); `blind`: the method "
            "estimates the noise, `sigma S`: S given; gain over the noisy photo. Seconds: median per image "
            f"({res['size']} color), {res['threads']} torch thread{'s' if res['threads'] != 1 else ''}, "
            "measured in the same run. Reported rows are quoted, not measured here.")
    return "\n".join(lines) + "\n" + note


def main(argv: list[str] | None = None) -> int:
    """Measure the available methods and print the quality table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", help="comma-separated methods (default: shipped models + bm3d if installed)")
    ap.add_argument("--limit", type=int, default=None, help="first N images of each set")
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated set folders under --datasets")
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="folder holding the test sets")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per 512x512 image")
    ap.add_argument("--output", type=Path, help="also write the markdown table here")
    ap.add_argument("--json", type=Path, help="write the measured numbers here")
    ap.add_argument("--blind", action="store_true", help="methods estimate sigma themselves (not given the true one)")
    ap.add_argument("--blind-too", action="store_true", help="a second row per model with sigma estimated")
    ap.add_argument("--ensemble-too", type=int, default=1, metavar="N",
                    help="a further row per model averaging N (2, 4 or 8) flipped/rotated passes")
    ap.add_argument("--time-only", default=None,
                    help=f"reference methods timed for the published rows (of: {', '.join(TIME_ONLY_ROWS)}; "
                         "default: both with --readme, none otherwise)")
    ap.add_argument("--readme", type=Path, help="replace the table between the quality-table markers of this file")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the protocol uses 2)")
    ap.add_argument("--real-dataset", type=Path, help=f"folder of real noisy pairs for the real-noise table "
                    f"(e.g. {DEFAULT_REAL})")
    ap.add_argument("--real-methods", default="default,color,bm3d", help="methods run blind on the real pairs")
    ap.add_argument("--real-fixed", default="color", help="methods run at each of --real-sigmas on the real pairs")
    ap.add_argument("--real-sigmas", default="5,10,15", help="fixed sigmas (0-255) for --real-fixed")
    ap.add_argument("--real-bm3d-best", action="store_true", help="also BM3D at the best fixed sigma")
    ap.add_argument("--real-only", action="store_true", help="only the real-noise table, not the main one")
    ap.add_argument("--real-output", type=Path, help="also write the real-noise table here")
    ap.add_argument("--real-json", type=Path, help="write the real-noise numbers here")
    ap.add_argument("--real-readme", type=Path,
                    help=f"replace the text between {REAL_START} and {REAL_END} of this file (markers must exist)")
    args = ap.parse_args(argv)
    if (args.real_only or args.real_readme or args.real_output or args.real_json) and args.real_dataset is None:
        print("error: --real-only/--real-output/--real-json/--real-readme need --real-dataset", file=sys.stderr)
        return 2
    if args.real_only and (args.readme or args.output or args.json):
        print("error: --real-only makes no main table: drop --readme/--output/--json (use --real-*)", file=sys.stderr)
        return 2
    if args.real_dataset is not None and not args.real_dataset.is_dir():
        print(f"error: --real-dataset {args.real_dataset}: no such directory", file=sys.stderr)
        return 2
    if args.real_readme and not has_markers(args.real_readme, REAL_START, REAL_END):
        print(f"error: {args.real_readme}: no {REAL_START} ... {REAL_END} markers to put the real-noise table "
              "between (add them first)", file=sys.stderr)
        return 2

    import torch

    from imdenoise.denoisers.catalog import load
    from imdenoise.denoisers.network import AutoDenoiser, ModelDenoiser
    from imdenoise.errors import ImDenoiseError

    if args.threads < 1:
        print("error: --threads must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    sets = [] if args.real_only else [s.strip().lower() for s in args.sets.split(",") if s.strip()]
    sigmas = [float(x) for x in args.sigmas.split(",")]
    try:
        real_sigmas = [float(x) for x in args.real_sigmas.split(",") if x.strip()]
    except ValueError:
        print(f"error: --real-sigmas {args.real_sigmas!r}: expected numbers, e.g. 5,10,15", file=sys.stderr)
        return 2
    missing = [s for s in sets if not (args.datasets / s).is_dir()]
    if missing:
        print(f"error: dataset folder(s) not found under {args.datasets}: {', '.join(missing)}", file=sys.stderr)
        return 2
    names = [] if args.real_only else [m.strip() for m in args.methods.split(",")] if args.methods else default_methods()
    if not names and not args.real_only:
        print("note: no method available to measure; printing the published rows only", file=sys.stderr)
    if args.readme and args.readme.is_file() and README_START not in args.readme.read_text():
        print(f"error: {args.readme}: no {README_START} marker to put the table after", file=sys.stderr)
        return 2
    time_only = args.time_only if args.time_only is not None else (
        ",".join(TIME_ONLY_ROWS) if args.readme or args.real_readme else "")
    timed = [t.strip() for t in time_only.split(",") if t.strip()]
    # (blind, ensemble) of each row per method: true sigma, then estimated, then self-ensembled
    variants = [(args.blind, 1)] + ([(True, 1)] if args.blind_too and not args.blind else [])
    variants += [(args.blind, args.ensemble_too)] if args.ensemble_too > 1 else []
    measured: dict = {}
    try:
        for name in names:
            loaded: dict[int, object] = {}  # one denoiser per ensemble size, shared by its true/blind rows
            for blind, ensemble in variants:
                if ensemble not in loaded:
                    loaded[ensemble] = load(name, ensemble=ensemble)
                den = loaded[ensemble]
                if ensemble > 1 and not isinstance(den, (ModelDenoiser, AutoDenoiser)):
                    continue  # self-ensemble is a network option
                label = name + (", blind" if blind else "") + (f", x{ensemble} self-ensemble" if ensemble > 1 else "")
                res = {"psnr": {}, "seconds": {}}
                for s in sets:
                    print(f"{label}: {s} ...", file=sys.stderr)
                    res["psnr"][s] = measure_quality(name, den, args.datasets / s, sigmas, args.limit, blind,
                                                     args.threads)
                if not blind or args.blind:  # the estimate's cost is timed with the true-sigma row
                    for kind, ch, pick in (("gray", 1, GRAY_SETS), ("color", 3, set(SETS) - GRAY_SETS)):
                        src = next((s for s in sets if s in pick), None)
                        if src is not None:
                            res["seconds"][kind] = seconds_512(den, image_512(args.datasets / src, ch), args.repeats)
                measured[label] = res
        reference = {} if args.real_only else reference_seconds(timed, sets, args.datasets, args.repeats)
        real = None
        if args.real_dataset is not None:
            split = lambda text: [m.strip() for m in text.split(",") if m.strip()]  # noqa: E731
            real = measure_real_table(args.real_dataset, split(args.real_methods), split(args.real_fixed), real_sigmas,
                                      args.limit, args.real_bm3d_best, reference.get("DnCNN", {}).get("color"),
                                      "dncnn" in timed, args.repeats, args.threads)
    except ImDenoiseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.real_only:
        text = table(measured, sets, sigmas, args.limit, reference, args.threads)
        print(text)
        if args.output:
            args.output.write_text(text + "\n")
        if args.readme:
            replace_readme_table(args.readme, text)
            print(f"wrote the table into {args.readme}", file=sys.stderr)
        if args.json:
            args.json.write_text(json.dumps({"limit": args.limit, "sigmas": sigmas, "measured": measured,
                                             "reference_seconds": reference}, indent=2) + "\n")
    if real is not None:
        real_text = real_table(real)
        print(("\n" if not args.real_only else "") + real_text)
        if args.real_output:
            args.real_output.write_text(real_text + "\n")
        if args.real_readme:
            replace_readme_table(args.real_readme, real_text, (REAL_START, REAL_END))
            print(f"wrote the real-noise table into {args.real_readme}", file=sys.stderr)
        if args.real_json:
            args.real_json.write_text(json.dumps(real, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
