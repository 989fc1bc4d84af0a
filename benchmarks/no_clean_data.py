"""Denoising without clean data: reports 1, 2 (issue 6), 4 (masked training with mask attention, 2 seeds)
and 5 (noise curriculum A/B, 2 seeds; issue 26).

Usage:
  python benchmarks/no_clean_data.py [--reports 1,2,4,5] [--steps N] [--limit N] [--threads 1]
                                     [--skip-train] [--kodak-limit N] [--bsd-limit N] [--seeds 6,7]

Report 1: `configs/masked-sigma15.yaml` (mode: masked) and its twin `configs/unmasked-sigma15.yaml`
(mode: supervised), color, trained on CBSD432 with Gaussian sigma 15 only, same architecture,
budget and seed; then `imdenoise eval` of both on Kodak24 under Gaussian 15 (in distribution) and
unseen noise (Poisson, speckle, salt-and-pepper, mixed).

Report 2: a folder of noisy Train400 images (Gaussian sigma 25, written by `imdenoise noise
--dtype float32` as unclipped .npy, seed NOISY_SEED_BASE + index), `configs/selfsup-train400.yaml`
(mode: selfsupervised, data.noisy, unet-blind) against `configs/supervised-train400-budget.yaml`
(clean Train400 + gaussian:25, same architecture and budget); `imdenoise eval` of both on BSD68
at sigma 25.

Every training and evaluation is a subprocess running the project's own CLI (`imdenoise train`,
`imdenoise eval`), with OMP_NUM_THREADS and torch threads set to --threads; the commands are
printed as they run. The noisy input's PSNR is computed with `imdenoise.evaluation.evaluate`'s own protocol
(make_noisy, quantize, psnr_uint8). Prints the markdown tables at the end (and the CPU seconds of
each step). `--skip-train` reuses a run's finished weights when they exist.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT.parent / "shared" / "datasets"
IMDENOISE = str(Path(sys.executable).with_name("imdenoise"))

NOISY_DIR = ROOT / "runs" / "noisy-train400-s25"
NOISY_SPEC = "gaussian:25"
# Seeds of the noisy training set: far from the evaluation protocol's 1000 * level + index, so no
# training noise field repeats a test image's noise.
NOISY_SEED_BASE = 7_000_000

REPORT1_NOISE = "gaussian:15;poisson:30;speckle:0.1;saltpepper:0.05;mixed"
REPORT2_NOISE = "gaussian:25"


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], threads: int, log: Path | None = None) -> tuple[float, float]:
    """Run a CLI command (printed first); (wall seconds, CPU seconds of the child)."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cpu0, t0 = cpu_children(), time.perf_counter()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    else:
        proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"command failed (exit {proc.returncode}): {' '.join(cmd)}" + (f"; log: {log}" if log else ""))
    return time.perf_counter() - t0, cpu_children() - cpu0


def make_noisy_folder(src: Path = DATASETS / "train" / "train400", dst: Path = NOISY_DIR,
                      spec: str = NOISY_SPEC, seed_base: int = NOISY_SEED_BASE) -> Path:
    """`imdenoise noise IN -o OUT.npy --noise SPEC --seed BASE+i --dtype float32` for every image, in-process."""
    from typer.testing import CliRunner

    from imdenoise.cli.main import app
    from imdenoise.io.datasets import list_images

    dst.mkdir(parents=True, exist_ok=True)
    files = list_images(src)
    runner = CliRunner()
    made = 0
    for i, f in enumerate(files):
        out = dst / f"{f.stem}.npy"
        if out.exists():
            continue
        res = runner.invoke(app, ["noise", str(f), "-o", str(out), "--noise", spec, "--seed", str(seed_base + i),
                                  "--dtype", "float32"])
        if res.exit_code != 0:
            raise SystemExit(f"imdenoise noise failed on {f}: {res.output}")
        made += 1
    print(f"noisy folder {dst}: {len(files)} files ({made} written now), `imdenoise noise --noise {spec} "
          f"--seed {seed_base}+i --dtype float32` (.npy, unclipped)", flush=True)
    return dst


def weights_of(config: Path, output_dir: str | None) -> Path:
    from imdenoise.training.config import load_config

    cfg = load_config(config, [f"output_dir={output_dir}"] if output_dir else [])
    return ROOT / cfg.output_dir / f"{cfg.name}.safetensors"


def train(config: str, args: argparse.Namespace, timings: list, seed: int | None = None) -> Path:
    """Train a recipe through the CLI (with `seed`: optim.seed and its own run folder <stem>-s<seed>)."""
    cfg_path = ROOT / "configs" / config
    stem = f"{cfg_path.stem}-s{seed}" if seed is not None else cfg_path.stem
    out_dir = f"{args.runs or 'runs'}/{stem}" if (args.runs or seed is not None) else None
    weights = weights_of(cfg_path, out_dir)
    if weights.is_file():
        if not args.skip_train:
            raise SystemExit(f"{weights.relative_to(ROOT)} exists: pass --skip-train to reuse it, or --runs DIR")
        print(f"reusing {weights.relative_to(ROOT)} (--skip-train)", flush=True)
        return weights
    cmd = [IMDENOISE, "train", f"configs/{config}", "--set", f"optim.threads={args.threads}",
           "--set", "log.progress=false"]
    if args.steps:
        cmd += ["--set", f"optim.steps={args.steps}"]
    if out_dir:
        cmd += ["--set", f"output_dir={out_dir}"]
    if seed is not None:
        cmd += ["--set", f"optim.seed={seed}"]
    if (weights.parent / "checkpoints").exists():  # an interrupted run: continue it exactly
        cmd = [IMDENOISE, "train", "--resume", str(weights.parent.relative_to(ROOT))]
    wall, cpu = run(cmd, args.threads, log=weights.parent.with_suffix(".train.log"))
    timings.append((f"train {stem}", wall, cpu))
    if not weights.is_file():
        raise SystemExit(f"training finished without {weights}")
    return weights


def evaluate(weights: list[Path], dataset: Path, noise: str, limit: int | None, args: argparse.Namespace,
             json_path: Path, timings: list) -> list[dict]:
    cmd = [IMDENOISE, "eval", "--method", ",".join(str(w.relative_to(ROOT)) for w in weights),
           "--dataset", str(dataset), "--noise", noise, "--threads", str(args.threads),
           "--json", str(json_path.relative_to(ROOT)), "--overwrite", "--no-progress"]
    if limit:
        cmd += ["--limit", str(limit)]
    wall, cpu = run(cmd, args.threads)
    timings.append((f"eval {dataset.name}", wall, cpu))
    return json.loads(json_path.read_text())["summary"]


def noisy_psnr(dataset: Path, noise: str, limit: int | None) -> dict[str, float]:
    """Mean PSNR of the protocol's noisy input (clipped and quantized like an output), per noise label."""
    from imdenoise.evaluation.evaluate import load_dataset, make_noisy, noise_label, parse_levels
    from imdenoise.metrics import psnr_uint8
    from imdenoise.metrics import quantize_8bit as quantize

    ds = load_dataset(dataset, limit=limit)
    out = {}
    for model in parse_levels(noise):
        vals = [psnr_uint8(u8, quantize(make_noisy(u8.astype(np.float32) / 255, model, i)[0]))
                for i, u8 in enumerate(ds.images)]
        out[noise_label(model)] = float(np.mean(vals))
    return out


def side_by_side(summary: list[dict], names: dict[str, str], noisy: dict[str, float], in_dist: str) -> str:
    """Markdown: one row per noise, PSNR (SSIM) of each method, the difference, the noisy input."""
    rows = {}
    for r in summary:
        rows.setdefault(r["noise"], {})[names[r["method"]]] = r
    a, b = list(names.values())
    lines = [f"| noise | images | noisy input PSNR | {a} PSNR / SSIM | {b} PSNR / SSIM | {a} - {b} (dB) |",
             "|---|---|---|---|---|---|"]
    for noise, by in rows.items():
        ra, rb = by[a], by[b]
        tag = " (trained on)" if noise == in_dist else ""
        lines.append(f"| {noise}{tag} | {ra['images']} | {noisy[noise]:.2f} | {ra['psnr']:.2f} / {ra['ssim']:.4f} "
                     f"| {rb['psnr']:.2f} / {rb['ssim']:.4f} | {ra['psnr'] - rb['psnr']:+.2f} |")
    return "\n".join(lines)


def report(first: tuple[str, str], second: tuple[str, str], dataset: Path, noise: str, in_dist: str,
           limit: int, title: str, json_path: Path, args: argparse.Namespace, timings: list) -> str:
    """Train two recipes (config, display name), evaluate both on one dataset; the report's markdown."""
    weights = [train(config, args, timings) for config, _ in (first, second)]
    lim = limit or None
    summary = evaluate(weights, dataset, noise, lim, args, json_path, timings)
    names = {str(w.relative_to(ROOT)): name for w, (_, name) in zip(weights, (first, second))}
    return (f"### {title}{f' (first {lim})' if lim else ''}\n\n"
            + side_by_side(summary, names, noisy_psnr(dataset, noise, lim), in_dist))


def seeded_report(arms: list[tuple[str, str]], datasets: list[tuple[Path, str | None]], in_dist: str,
                  title: str, json_stem: str, args: argparse.Namespace, timings: list) -> str:
    """Train each (config, name) arm once per seed, evaluate them all on each (dataset, noise); a table
    with each arm's mean PSNR over the seeds, every seed's value, and the first-minus-second difference
    per seed (paired by seed), so the spread is shown."""
    seeds = [int(x) for x in args.seeds.split(",")]
    weights = {(name, s): train(config, args, timings, seed=s) for config, name in arms for s in seeds}
    label = {str(w.relative_to(ROOT)): key for key, w in weights.items()}
    (a, _), (b, _) = [(n, c) for c, n in arms]
    lines = [f"### {title}\n", f"seeds {', '.join(map(str, seeds))}; PSNR in dB, mean over the seeds "
             f"(each seed's value in brackets)\n",
             f"| set | noise | images | noisy input | {a} | {b} | {a} - {b} per seed |", "|---|---|---|---|---|---|---|"]
    results = ROOT / "benchmarks" / "results"
    for dataset, noise in datasets:
        json_path = results / f"{json_stem}_{dataset.name}.json"
        cmd = [IMDENOISE, "eval", "--method", ",".join(label), "--dataset", str(dataset), "--threads",
               str(args.threads), "--json", str(json_path.relative_to(ROOT)), "--overwrite", "--no-progress"]
        if noise:
            cmd += ["--noise", noise]
        if args.eval_limit:
            cmd += ["--limit", str(args.eval_limit)]
        wall, cpu = run(cmd, args.threads)
        timings.append((f"eval {dataset.name}", wall, cpu))
        rows: dict[str, dict] = {}
        for r in json.loads(json_path.read_text())["summary"]:
            rows.setdefault(r["noise"], {})[label[r["method"]]] = r
        noisy = noisy_psnr(dataset, noise, args.eval_limit or None) if noise else {}
        for nz, by in rows.items():
            pa, pb = ([by[(n, s)]["psnr"] for s in seeds] for n in (a, b))
            diffs = ", ".join(f"{x - y:+.2f}" for x, y in zip(pa, pb))
            tag = " (trained on)" if nz == in_dist else ""
            first = by[(a, seeds[0])]
            noisy_in = noisy.get(nz, first.get("psnr_noisy", float("nan")))  # real pairs: the photos' own
            lines.append(f"| {dataset.name} | {nz}{tag} | {first['images']} | "
                         f"{noisy_in:.2f} | {np.mean(pa):.2f} ({', '.join(f'{x:.2f}' for x in pa)}) | "
                         f"{np.mean(pb):.2f} ({', '.join(f'{x:.2f}' for x in pb)}) | {diffs} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", default="1,2", help="which reports: 1, 2, 4, 5, comma-separated")
    ap.add_argument("--steps", type=int, default=0, help="training steps of every run (0: the recipes' 1500)")
    ap.add_argument("--threads", type=int, default=1, help="torch / OpenMP threads of every subprocess")
    ap.add_argument("--kodak-limit", type=int, default=0, help="report 1: first N Kodak24 images (0: all 24)")
    ap.add_argument("--bsd-limit", type=int, default=0, help="report 2: first N BSD68 images (0: all 68)")
    ap.add_argument("--runs", default="", help="write the runs under this folder (default: the recipes' output_dir)")
    ap.add_argument("--skip-train", action="store_true", help="reuse finished weights when present")
    ap.add_argument("--seeds", default="6,7", help="reports 4 and 5: the seeds every arm is trained with")
    ap.add_argument("--eval-limit", type=int, default=0, help="reports 4 and 5: first N images of each set (0: all)")
    args = ap.parse_args()
    reports = {int(x) for x in args.reports.split(",")}
    timings: list[tuple[str, float, float]] = []
    tables = []
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)

    if 1 in reports:
        tables.append(report(("masked-sigma15.yaml", "masked"), ("unmasked-sigma15.yaml", "unmasked"),
                             DATASETS / "test" / "kodak24", REPORT1_NOISE, "gaussian:15", args.kodak_limit,
                             "Report 1: masked vs unmasked training, color, trained on Gaussian sigma 15, Kodak24",
                             results / "no_clean_data_report1.json", args, timings))
    if 2 in reports:
        t0, c0 = time.perf_counter(), time.process_time()
        make_noisy_folder()
        timings.append(("imdenoise noise x400", time.perf_counter() - t0, time.process_time() - c0))
        tables.append(report(("selfsup-train400.yaml", "self-supervised (noisy only)"),
                             ("supervised-train400-budget.yaml", "supervised"),
                             DATASETS / "test" / "bsd68", REPORT2_NOISE, "gaussian:25", args.bsd_limit,
                             "Report 2: blind-spot self-supervised vs supervised, gray, BSD68",
                             results / "no_clean_data_report2.json", args, timings))

    if 4 in reports:
        tables.append(seeded_report(
            [("masked-attn-sigma15.yaml", "masked"), ("unmasked-attn-sigma15.yaml", "unmasked")],
            [(DATASETS / "test" / "kodak24", REPORT1_NOISE), (DATASETS / "real" / "polyu-canon", None)],
            "gaussian:15", "Report 4: masked image training with mask attention vs unmasked, equal budget",
            "no_clean_data_report4", args, timings))
    if 5 in reports:
        tables.append(seeded_report(
            [("curriculum-on.yaml", "curriculum"), ("curriculum-off.yaml", "uniform")],
            [(DATASETS / "test" / "bsd68", "gaussian:15,25,50")], "",
            "Report 5: noise curriculum vs uniform noise, equal budget", "curriculum_report5", args, timings))

    print()
    for t in tables:
        print(t + "\n")
    print("| step | wall s | CPU s |\n|---|---|---|")
    for name, wall, cpu in timings:
        print(f"| {name} | {wall:.0f} | {cpu:.0f} |")


if __name__ == "__main__":
    main()
