"""How `default` sets the level for photos: a sweep of fixed levels on the PolyU Canon crops, the rule
fitted on the first 22 crops and scored on the other 33.

    python benchmarks/photo_levels.py [--model color|WEIGHTS] [--dataset DIR] [--levels 4,5,6,7,8,9,10,12]
                                      [--threads 2] [--fit 22]

For every crop: the model on the 2x2 pixel-shuffled sub-images at each fixed level (`color`, as the
photo rule runs it, or a model trained on sub-images, `data.shuffle`), `color` on the whole image at sigma 10 (the best fixed sigma on whole images), and `screen`'s
stride-2 estimate. The rule ``offset + scale x estimate`` is fitted on the first 22 crops (PSNR
interpolated between the swept levels) and compared with the best fixed level on the held-out 33 and
with `default` itself (run, not interpolated). Prints markdown tables; about 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
import torch

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import photo_rule
from imdenoise.denoisers.shuffle import pixel_shuffled
from imdenoise.evaluation.evaluate import load_pairs
from imdenoise.metrics import psnr_uint8, quantize_8bit
from imdenoise.noise.estimation import estimate_noise
from imdenoise.paths import datasets_root

FIT = 22  # crops the rule is fitted on; the rest are held out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=str(datasets_root() / "real" / "polyu-canon"))
    ap.add_argument("--levels", default="4,5,6,7,8,9,10,12")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="color", help="a white-noise model (run on sub-images) or one trained on them")
    ap.add_argument("--fit", type=int, default=FIT, help="fit the rule on the first N crops")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    levels = [float(v) for v in args.levels.split(",")]
    ds = load_pairs(args.dataset)
    assert ds.noisy is not None
    color, default, model = load("color"), load("default"), load(args.model)
    on_subs = model.denoise if getattr(model, "shuffle", 1) > 1 else functools.partial(pixel_shuffled, model.denoise)
    noisy_psnr, whole10, own, coarse, grid = [], [], [], [], []
    for i, (ref, noisy) in enumerate(zip(ds.images, ds.noisy)):
        x = noisy.astype(np.float32) / 255

        def score(out: np.ndarray, ref: np.ndarray = ref) -> float:
            return psnr_uint8(ref, quantize_8bit(out))

        noisy_psnr.append(psnr_uint8(ref, noisy))
        coarse.append(estimate_noise(x).sigma_coarse)
        whole10.append(score(color.denoise(x, 10.0)))
        own.append(score(default.denoise(x)))
        grid.append([score(on_subs(x, s)) for s in levels])
        print(f"{i + 1}/{len(ds.images)} {ds.files[i].name}: stride-2 {coarse[-1]:.2f}, default {own[-1]:.2f} dB", flush=True)
    g, c = np.array(grid), np.array(coarse)

    def rule_psnr(offset: float, scale: float, idx: np.ndarray) -> float:
        return float(np.mean([np.interp(offset + scale * c[i], levels, g[i]) for i in idx]))

    fit, held, every = np.arange(args.fit), np.arange(args.fit, len(g)), np.arange(len(g))
    best = max((rule_psnr(a, b, fit), a, b) for a in np.arange(0.0, 10.01, 0.5) for b in np.arange(0.0, 4.01, 0.25))
    _, a, b = best
    shipped = photo_rule()
    print(f"\n{args.model}: rule fitted on the first {args.fit} crops: {a:g} + {b:g} x stride-2 estimate "
          f"(shipped: {shipped.offset:g} + {shipped.scale:g} x)\n")
    print("| PolyU Canon crops | noisy | color, whole image, sigma 10 | sub-images, best fixed level | "
          "sub-images, fitted rule | default (run) | per-crop best level |")
    print("|---|---|---|---|---|---|---|")
    for name, idx in ((f"first {args.fit} (fitted here)", fit), (f"other {len(held)} (held out)", held), (f"all {len(g)}", every)):
        fixed = g[idx].mean(axis=0)
        print(f"| {name} | {np.mean(np.array(noisy_psnr)[idx]):.3f} | {np.mean(np.array(whole10)[idx]):.3f} | "
              f"{fixed.max():.3f} (level {levels[int(fixed.argmax())]:g}) | {rule_psnr(a, b, idx):.3f} | "
              f"{np.mean(np.array(own)[idx]):.3f} | {g[idx].max(axis=1).mean():.3f} |")
    print("\n| fixed level on sub-images | " + " | ".join(f"{s:g}" for s in levels) + " |")
    print("|---|" + "---|" * len(levels))
    print(f"| all {len(g)} crops, PSNR dB | " + " | ".join(f"{v:.3f}" for v in g.mean(axis=0)) + " |")


if __name__ == "__main__":
    main()
