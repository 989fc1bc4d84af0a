"""Where a masked-training model stands: PSNR of its output on the full noisy input (mask all zero, as at
test time) and on inputs masked like its training ones (ratio r, the mask given to mask-aware nets).

    python benchmarks/masked_diagnosis.py WEIGHTS... [--image kodim05.png] [--sigma 15] [--crop 256]

Prints one markdown row per weights file; the noise and masks are seeded (seed 0), the same for all.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (0.3, 0.6, 0.85)


def main() -> None:
    from imdenoise.io.images import read_image
    from imdenoise.metrics import psnr_uint8, quantize_8bit
    from imdenoise.models.weights import load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="+", type=Path)
    ap.add_argument("--image", type=Path, default=ROOT.parent / "shared" / "datasets" / "test" / "kodak24" / "kodim05.png")
    ap.add_argument("--sigma", type=float, default=15.0)
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    img = read_image(args.image).data[: args.crop, : args.crop]
    clean = torch.from_numpy(img.transpose(2, 0, 1)[None].copy())
    gen = torch.Generator().manual_seed(0)
    noisy = clean + args.sigma / 255 * torch.randn(clean.shape, generator=gen)
    masks = [(torch.rand(1, 1, *clean.shape[2:], generator=gen) < r).float() for r in RATIOS]
    u8 = lambda t: quantize_8bit(t[0].numpy().transpose(1, 2, 0))  # noqa: E731
    print(f"{args.image.name} {args.crop}x{args.crop}, Gaussian sigma {args.sigma:g}: noisy input "
          f"{psnr_uint8(u8(clean), u8(noisy)):.2f} dB\n")
    print("| weights | full input (test) | " + " | ".join(f"{int(r * 100)}% masked" for r in RATIOS) + " |")
    print("|---|---|" + "---|" * len(RATIOS))
    for path in args.weights:
        model, _ = load_model(path)
        with torch.no_grad():
            row = [psnr_uint8(u8(clean), u8(model(noisy)))]
            for mask in masks:
                extra = {"mask": mask} if model.mask_aware else {}
                row.append(psnr_uint8(u8(clean), u8(model(noisy * (1 - mask), None, **extra))))
        print(f"| {path} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
