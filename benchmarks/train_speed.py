"""Training throughput on this machine: patches per second, fp32 vs bf16, eager vs compiled, 1 vs 2 processes.

    python benchmarks/train_speed.py [--arch unet] [--steps 30] [--patch 128] [--batch 16] [--no-compile] [--no-ddp]

Every row runs the project's own Trainer (`imdenoise.training.trainer.Trainer.train_step`) on synthetic-noise
patches of a few real training images; the first steps are warm-up and are not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT.parent / "shared" / "datasets" / "train" / "train400"


def make_images(folder: Path, n: int = 6) -> None:
    """A few training images (real ones when the datasets are present, else noise patterns)."""
    folder.mkdir(parents=True, exist_ok=True)
    real = sorted(TRAIN.glob("*.png"))[:n] if TRAIN.is_dir() else []
    for i in range(n):
        if real:
            Image.open(real[i]).save(folder / f"{i}.png")
        else:
            Image.fromarray(np.random.default_rng(i).integers(0, 255, (180, 180), dtype=np.uint8)).save(folder / f"{i}.png")


def config(images: Path, out: Path, args: argparse.Namespace, precision: str, compile_: bool, batch: int) -> dict:
    return {
        "name": "bench", "output_dir": str(out),
        "model": {"architecture": args.arch},
        "data": {"train": [str(images)], "channels": 1, "noise": ["gaussian:0-55"], "patch_size": args.patch,
                 "batch_size": batch, "workers": 1, "holdout": 1},
        "optim": {"steps": args.warmup + args.steps, "precision": precision, "compile": compile_, "threads": args.threads},
        "log": {"every": args.steps, "val_every": 10**9, "ckpt_every": 10**9, "ckpt_minutes": 10**6,
                "tensorboard": False, "progress": False},
    }


def single_process(images: Path, tmp: Path, args: argparse.Namespace, precision: str, compile_: bool) -> float:
    """Patches per second of one process over `args.steps` timed steps."""
    from imdenoise.training.config import load_config
    from imdenoise.training.datasets import IndexStream
    from imdenoise.training.trainer import Trainer

    cfg = load_config(raw=config(images, tmp / f"{precision}-{compile_}", args, precision, compile_, args.batch))
    trainer = Trainer(cfg)
    loader = torch.utils.data.DataLoader(trainer.train_set, batch_size=args.batch, num_workers=1,
                                         sampler=IndexStream(0, args.batch))
    it = iter(loader)
    for _ in range(args.warmup):
        trainer.train_step(next(it))
        trainer.step += 1
    start = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step(next(it))
        trainer.step += 1
    return args.steps * args.batch / (time.perf_counter() - start)


def two_processes(images: Path, tmp: Path, args: argparse.Namespace, precision: str) -> float:
    """Patches per second of a 2-process torchrun (gloo) run with the same global batch, 1 thread each."""
    out = tmp / f"ddp-{precision}"
    raw = config(images, out, args, precision, False, args.batch // 2)
    raw["optim"]["threads"] = 1
    cfg_path = tmp / f"ddp-{precision}.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                    "-m", "imdenoise", "train", str(cfg_path)], check=True, capture_output=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    its = [r["it_per_s"] for r in log if "it_per_s" in r][-1]
    return its * args.batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="unet")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-ddp", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        make_images(tmp / "images")
        for precision in ("fp32", "bf16"):
            for compile_ in (False, True):
                if compile_ and args.no_compile:
                    continue
                pps = single_process(tmp / "images", tmp, args, precision, compile_)
                rows.append((f"1 process, {args.threads} threads", precision, "compiled" if compile_ else "eager", pps))
                print(f"  measured {rows[-1]}", file=sys.stderr, flush=True)
        if not args.no_ddp:
            for precision in ("fp32", "bf16"):
                rows.append(("2 processes (torchrun, gloo), 1 thread each", precision, "eager",
                             two_processes(tmp / "images", tmp, args, precision)))
    px = args.patch * args.patch
    print(f"\nTraining throughput, architecture {args.arch!r}, {args.patch}x{args.patch} patches, global batch {args.batch}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs\n")
    print("| processes | precision | mode | patches/s | Mpx/h |")
    print("|---|---|---|---:|---:|")
    for procs, precision, mode, pps in rows:
        print(f"| {procs} | {precision} | {mode} | {pps:.1f} | {pps * px * 3600 / 1e6:.0f} |")


if __name__ == "__main__":
    main()
