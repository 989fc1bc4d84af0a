"""Before/after crops of real noisy photos through `default` (blind, no option), for the README.

    python benchmarks/real_photos.py --output docs/img/real_photos.jpg

Rows: a PolyU Canon crop (noisy shot | default | the mean of many shots) and crops of RNI6 photos
(noisy | default; they have no reference). Each row's title says what `default` chose (model, noise
kind and level) and, with a reference, the PSNR of the noisy crop and of the output.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POLYU = "real/polyu-canon/Canon5D2_5_160_6400_desk_10_real.JPG"
RNI6 = ("real/rni6/Marilyn.png", "real/rni6/Vinegar.png")


def crop(image: np.ndarray, size: int) -> np.ndarray:
    """The centre size x size window (the whole image if smaller)."""
    h, w = image.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[y:y + size, x:x + size]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imdenoise.denoisers.catalog import load
    from imdenoise.io.images import read_image
    from imdenoise.metrics import psnr_uint8, quantize_8bit
    from imdenoise.paths import datasets_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=datasets_root())
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "img" / "real_photos.jpg")
    ap.add_argument("--crop", type=int, default=200)
    args = ap.parse_args()
    d = load("default")
    u8 = quantize_8bit
    rows = []
    for rel in (POLYU, *RNI6):
        noisy = read_image(args.datasets / rel).data
        plan = d.plan(noisy)
        out = d.run(plan, noisy)
        ref_path = args.datasets / rel.replace("_real", "_mean")
        ref = read_image(ref_path).data if "_real" in rel and ref_path.is_file() else None
        n, o = crop(noisy, args.crop), crop(out, args.crop)
        title = f"{Path(rel).name}: {plan.describe()}"
        if ref is not None:
            r = crop(ref, args.crop)
            title += f"\nPSNR {psnr_uint8(u8(r), u8(n)):.2f} -> {psnr_uint8(u8(r), u8(o)):.2f} dB (this crop)"
        rows.append((title, [n, o] + ([crop(ref, args.crop)] if ref is not None else [])))
        print(title.replace("\n", "; "))
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 4.6 * len(rows)), dpi=90)
    for (title, panels), ax_row in zip(rows, axes):
        for ax, img, name in zip(ax_row, panels + [None] * (3 - len(panels)), ("noisy", "default", "reference")):
            ax.axis("off")
            if img is None:
                continue
            img = img[..., 0] if img.shape[-1] == 1 else img
            ax.imshow(np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_title(name, fontsize=10)
        ax_row[0].text(0, -0.04, title, transform=ax_row[0].transAxes, fontsize=9, va="top")
    fig.subplots_adjust(left=0.02, right=0.98, top=0.96, bottom=0.06, hspace=0.45, wspace=0.05)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, pil_kwargs={"quality": 90})
    plt.close(fig)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
