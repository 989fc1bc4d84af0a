"""Training progress: a tqdm bar (loss, it/s, ETA), a JSON-lines log, TensorBoard scalars and images."""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

if TYPE_CHECKING:
    from imdenoise.training.config import LogSection

Preview = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (noisy, sigma) -> denoised, on the CPU

log = logging.getLogger(__name__)


def sample_grid(samples: list) -> np.ndarray:
    """Rows of noisy | denoised | clean uint8 crops (padded to a common size) as one float image."""
    h = max(s[0].shape[0] for s in samples)
    w = max(s[0].shape[1] for s in samples)
    c = samples[0][0].shape[2]
    rows = []
    for triple in samples:
        cells = [np.pad(a, ((0, h - a.shape[0]), (0, w - a.shape[1]), (0, 0))) for a in triple]
        rows.append(np.concatenate(cells, axis=1))
    grid = np.concatenate(rows, axis=0).astype(np.float32) / 255.0
    return np.repeat(grid, 3, axis=2) if c == 1 else grid


class RunLogger:
    """Everything a run reports, written by rank 0 only; quiet progress bar when not on a terminal."""

    def __init__(self, run_dir: Path, cfg: "LogSection", name: str, total_steps: int, start_step: int,
                 enabled: bool) -> None:
        self.run_dir, self.cfg, self.total_steps, self.enabled = run_dir, cfg, total_steps, enabled
        self.losses: list[float] = []
        self.tick = time.monotonic()
        self.tick_step = start_step
        self.bar = None
        self.tb = None
        self.jsonl = None
        if not enabled:
            return
        from tqdm import tqdm

        self.jsonl = open(run_dir / "train_log.jsonl", "a", buffering=1)
        self.bar = tqdm(total=total_steps, initial=start_step, dynamic_ncols=True,
                        disable=not (self.cfg.progress and sys.stderr.isatty()), desc=name)
        if self.cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_step)
            except ImportError:  # pragma: no cover - tensorboard is a core dependency
                log.warning("tensorboard not installed: no TensorBoard logs")

    def _write(self, record: dict[str, Any]) -> None:
        if self.jsonl:
            self.jsonl.write(json.dumps(record) + "\n")

    def step(self, step: int, loss: float, lr: float, batch: dict[str, torch.Tensor], preview: Preview) -> None:
        """Record step `step`'s loss; every `log.every` steps write averages, lr and speed (`preview`
        denoises the image grid's patches)."""
        if not self.enabled:
            return
        self.losses.append(loss)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if step % self.cfg.every == 0:
            now = time.monotonic()
            its = (step - self.tick_step) / max(1e-9, now - self.tick)
            mean_loss = sum(self.losses) / len(self.losses)
            record = {"step": step, "loss": mean_loss, "lr": lr, "it_per_s": its, "time": time.time()}
            self._write(record)
            if not (self.bar and not self.bar.disable):
                eta = (self.total_steps - step) / max(its, 1e-9)
                log.info("step %d  loss %.5f  lr %.2e  %.2f it/s  ETA %.1f min", step, mean_loss, lr, its, eta / 60)
            if self.tb:
                self.tb.add_scalar("train/loss", mean_loss, step)
                self.tb.add_scalar("train/lr", lr, step)
                self.tb.add_scalar("train/it_per_s", its, step)
            self.losses.clear()
            self.tick, self.tick_step = now, step
        if self.tb and step % self.cfg.images_every == 0:
            self._images(step, batch, preview)

    def _images(self, step: int, batch: dict[str, torch.Tensor], preview: Preview) -> None:
        """A grid of noisy / denoised / clean training patches (first 4 of the batch)."""
        noisy, target, sigma = batch["noisy"][:4], batch["target"][:4], batch["sigma"][:4]
        with torch.inference_mode():
            out = preview(noisy, sigma)
        rows = torch.cat([noisy, out, target], dim=3).clamp(0, 1)  # each row: noisy | denoised | clean
        grid = torch.cat(list(rows), dim=1)
        if grid.shape[0] == 1:
            grid = grid.repeat(3, 1, 1)
        assert self.tb is not None
        self.tb.add_image("train/noisy_denoised_clean", grid, step)

    def validation(self, step: int, metrics: dict[str, float], samples: list | None = None) -> None:
        """Record validation PSNR/SSIM and save a noisy | denoised | clean grid of validation samples."""
        if not self.enabled:
            return
        if samples:
            grid = sample_grid(samples)
            from imdenoise.io.images import write_image

            (self.run_dir / "samples").mkdir(exist_ok=True)
            write_image(self.run_dir / "samples" / f"step-{step:08d}.png", grid, dtype="uint8",
                        overwrite=True)
            if self.tb:
                self.tb.add_image("val/noisy_denoised_clean", grid, step, dataformats="HWC")
        if math.isnan(metrics["psnr"]):  # nothing to compare with: say so rather than print "nan dB"
            log.info("step %d  no validation PSNR: no clean reference images (self-supervised training on noisy "
                     "images; data.val or data.val_pairs would give some)", step)
            return
        self._write({"step": step, **{f"val_{k}": v for k, v in metrics.items()}, "time": time.time()})
        log.info("step %d  validation PSNR %.3f dB (noisy %.2f)  SSIM %.4f", step, metrics["psnr"],
                 metrics["noisy_psnr"], metrics["ssim"])
        if self.tb:
            for k, v in metrics.items():
                self.tb.add_scalar(f"val/{k}", v, step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb:
            self.tb.close()
        if self.jsonl:
            self.jsonl.close()
