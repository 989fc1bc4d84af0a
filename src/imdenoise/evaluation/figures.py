"""Figures shared by the demo and the docs: side-by-side before/after panels (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def before_after_figure(path: str | Path, clean: np.ndarray, noisy: np.ndarray, denoised: np.ndarray,
                        titles: Sequence[str] = ("noisy", "denoised", "clean")) -> Path:
    """Save noisy | denoised | clean side by side as a PNG and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [noisy, denoised, clean]
    h, w = clean.shape[:2]
    fig, axes = plt.subplots(1, 3, figsize=(3 * 4, 4 * h / w + 0.4), dpi=100)
    for ax, img, title in zip(axes, panels, titles):
        img = np.clip(img, 0, 1)
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
