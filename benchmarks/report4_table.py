"""Report 4's table from the evaluation JSONs: each arm's mean PSNR over seeds 6 and 7 (each seed's value
in brackets), the masked arms minus the unmasked one per seed, and the images where a masked arm wins.

    python benchmarks/report4_table.py [--set kodak24|polyu-canon]

Reads benchmarks/results/no_clean_data_report4_<set>.json (`benchmarks/no_clean_data.py --reports 4`)
and no_clean_data_report4_wide_<set>.json (the mask_ratio_min=0 arm; commands in docs/no_clean_data.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = ("masked-attn-sigma15", "masked-attn-wide", "unmasked-attn-sigma15")
SEEDS = ("6", "7")


def arm_seed(method: str) -> tuple[str, str]:
    """('masked-attn-sigma15', '6') from 'runs/masked-attn-sigma15-s6/masked-attn-sigma15.safetensors'."""
    arm, _, seed = method.split("/")[1].rpartition("-s")
    return arm, seed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="kodak24")
    args = ap.parse_args()
    docs = [json.loads((RESULTS / f"no_clean_data_report4{tag}_{args.set}.json").read_text()) for tag in ("", "_wide")]
    summary = [r for d in docs for r in d["summary"]]
    images = {(*arm_seed(r["method"]), r["noise"], r["image"]): r["psnr"] for d in docs for r in d["images"]}
    by: dict[str, dict] = {}
    for r in summary:
        by.setdefault(r["noise"], {})[arm_seed(r["method"])] = r
    print("| noise | noisy input | " + " | ".join(ARMS) + " | masked - unmasked per seed | wide - unmasked per seed "
          "| images where masked / wide wins |")
    print("|---|---|" + "---|" * (len(ARMS) + 3))
    for noise, rows in by.items():
        cells = [noise, f"{rows[(ARMS[0], SEEDS[0])]['psnr_noisy']:.2f}"]
        for arm in ARMS:
            p = [rows[(arm, s)]["psnr"] for s in SEEDS]
            cells.append(f"{np.mean(p):.2f} ({', '.join(f'{x:.2f}' for x in p)})")
        for arm in ARMS[:2]:
            cells.append(", ".join(f"{rows[(arm, s)]['psnr'] - rows[(ARMS[2], s)]['psnr']:+.2f}" for s in SEEDS))
        names = {k[3] for k in images if k[2] == noise}
        wins = [sum(images[(arm, s, noise, i)] > images[(ARMS[2], s, noise, i)] for s in SEEDS for i in names)
                for arm in ARMS[:2]]
        cells.append(f"{wins[0]} / {wins[1]} of {len(names) * len(SEEDS)}")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
