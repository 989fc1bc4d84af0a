"""Structured channel pruning that really removes channels, then a short fine-tune.

In every block whose body is `conv, norm, act, conv, ...` (the U-Net's ResBlock and PlainBlock), the
first conv's output channels are only read by the second conv, so they can be removed (keeping the
filters of largest L1 norm) without touching the block's input, output or shortcut shapes. The
pruned widths are recorded in the model card (`pruned`: module name -> kept channels), so
`models.weights.load_model` rebuilds the smaller network from a weights file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imdenoise.deploy.options import PRUNE
from imdenoise.errors import ImDenoiseError
from imdenoise.models.base import DenoisingNet
from imdenoise.models.pruning import apply_pruned_shapes, prunable_blocks, prune_channels  # noqa: F401
from imdenoise.models.weights import ModelCard

log = logging.getLogger(__name__)


def fine_tune(model: DenoisingNet, train_dir: str | Path, *, steps: int = PRUNE.steps, batch: int = PRUNE.batch,
              patch: int = PRUNE.patch, lr: float = PRUNE.lr, noise: str = PRUNE.noise,
              limit: int | None = 200, seed: int = 0) -> list[float]:
    """A short supervised fine-tune (Adam, L1, constant rate, no EMA or clipping) on synthetic-noise patches
    of a training folder, run by the training loop (`Trainer`) in a temporary run folder; returns the
    logged losses."""
    import json
    import tempfile

    from imdenoise.training.config import load_config
    from imdenoise.training.trainer import Trainer

    if steps <= 0:
        return []
    if "test" in Path(train_dir).parts:
        raise ImDenoiseError(f"{train_dir}: refusing to fine-tune on a test set")
    with tempfile.TemporaryDirectory(prefix="imdenoise-prune-") as tmp:
        raw = {
            "name": "prune-fine-tune", "output_dir": tmp,
            "data": {"train": [str(Path(train_dir).resolve())], "channels": model.in_channels, "noise": [noise],
                     "patch_size": patch, "batch_size": batch, "workers": 0, "holdout": 0, "limit": limit},
            "optim": {"steps": steps, "optimizer": "adam", "lr": lr, "schedule": "constant", "warmup_steps": 0,
                      "grad_clip": None, "ema": None, "precision": "fp32", "loss": "l1", "seed": seed, "threads": None},
            "log": {"every": 10, "val_every": steps, "ckpt_every": steps, "tensorboard": False, "progress": False,
                    "images_every": steps + 1},
        }
        Trainer(load_config(raw=raw), model=model).fit()
        records = [json.loads(line) for line in (Path(tmp) / "train_log.jsonl").read_text().splitlines()]
    return [float(r["loss"]) for r in records if "loss" in r]


def eval_psnr(model: DenoisingNet, folder: str | Path, sigma: float = PRUNE.sigma, limit: int = PRUNE.eval_limit) -> float:
    """Mean protocol PSNR (BENCHMARK.md AWGN, 8-bit output) of the model on the first `limit` images."""
    from imdenoise.denoisers.network import InferenceOptions, ModelDenoiser
    from imdenoise.evaluation.evaluate import protocol_psnr
    from imdenoise.io.datasets import list_images, load_images

    den = ModelDenoiser(model.eval(), "eval", None, InferenceOptions(device="cpu"))
    return protocol_psnr(den, load_images(list_images(folder)[:limit], model.in_channels), sigma)


def time_model(model: DenoisingNet, size: int = 512, repeats: int = 3) -> float:
    """Megapixels per second of the engine on one size x size image (after a warm-up call)."""
    from imdenoise.denoisers.network import InferenceOptions, ModelDenoiser, median_seconds

    den = ModelDenoiser(model.eval(), "speed", None, InferenceOptions(device="cpu"))
    img = np.random.default_rng(0).random((size, size, model.in_channels), dtype=np.float32)
    return size * size / 1e6 / median_seconds(den, img, 25.0, repeats)


# Card fields that describe the parent's measured quality or storage: a pruned model must not claim them.
PARENT_ONLY_FIELDS = ("psnr_blind", "measured_by", "validation", "storage")


def pruned_card(card: ModelCard, spec: dict[str, int], keep: float, steps: int, parameters: int,
                psnr: dict[str, float] | None = None, sigma: float = 25.0,
                evaluated: dict[str, Any] | None = None) -> ModelCard:
    """The card of a pruned (and fine-tuned) child: the parent's PSNR tables and measurement notes are
    dropped (`psnr` is emptied: re-measure with `imdenoise eval`); what prune itself measured, if anything,
    goes to `prune_eval` with its images and noise level."""
    extra = {k: v for k, v in (card.model_extra or {}).items() if k not in PARENT_ONLY_FIELDS}
    extra.update({"pruned": spec, "pruned_keep": keep, "pruned_from": card.name, "fine_tune_steps": steps,
                  "storage": "float32"})
    if psnr and evaluated:
        extra["prune_eval"] = {**evaluated, "noise": f"gaussian:{sigma:g}", "psnr": dict(psnr),
                               "note": "protocol PSNR on the first eval_limit images: before pruning, right "
                                       "after, after fine-tuning (not a full-set figure)"}
    base = card.model_dump(exclude=set(card.model_extra or {}))
    desc = f"{card.description or card.name}; pruned (keep {keep:g} of inner channels), fine-tuned {steps} steps"
    return ModelCard(**{**base, **extra, "name": f"{card.name}-pruned{int(round(keep * 100))}",
                        "parameters": parameters, "training_steps": card.training_steps + steps,
                        "psnr": {}, "description": desc})


@dataclass
class PruneReport:
    """Parameters, speed and PSNR (before pruning, pruned, pruned + fine-tuned)."""

    path: Path
    keep: float
    steps: int
    params: tuple[int, int]
    mpx_s: tuple[float, float]
    sigma: float = 25.0
    psnr: dict[str, float] = field(default_factory=dict)  # "before", "pruned", "after"

    def markdown(self) -> str:
        """The report as a small markdown table."""
        p = {k: f"{v:.2f}" for k, v in self.psnr.items()}
        rows = [("parameters", f"{self.params[0]:,}", "", f"{self.params[1]:,}"),
                ("speed 512x512 (Mpx/s)", f"{self.mpx_s[0]:.3f}", "", f"{self.mpx_s[1]:.3f}")]
        if p:
            rows.append((f"PSNR sigma {self.sigma:g} (dB)", p.get("before", ""), p.get("pruned", ""),
                         p.get("after", "")))
        head = (f"| keep {self.keep:g} | before | pruned | pruned + {self.steps} fine-tune steps |\n"
                "|---|---|---|---|\n")
        return head + "\n".join("| " + " | ".join(r) + " |" for r in rows)


def prune_model(src: str | Path, out: str | Path, keep: float = PRUNE.keep, *, steps: int = PRUNE.steps,
                train_dir: str | Path | None = None, eval_dir: str | Path | None = None,
                eval_limit: int = PRUNE.eval_limit, sigma: float = PRUNE.sigma, channels: int = 1,
                **tune: Any) -> PruneReport:
    """Prune a model (weights file or registry name), fine-tune it, measure, and save it as safetensors."""
    from imdenoise.deploy.quantize import default_calibration_dir
    from imdenoise.models.weights import load_network, save_weights

    model, card = load_network(src, channels)
    p0 = sum(p.numel() for p in model.parameters())
    speed0 = time_model(model)
    psnr: dict[str, float] = {}
    if eval_dir:
        psnr["before"] = eval_psnr(model, eval_dir, sigma, eval_limit)
    spec = prune_channels(model, keep)
    if eval_dir:
        psnr["pruned"] = eval_psnr(model, eval_dir, sigma, eval_limit)
    fine_tune(model, train_dir or default_calibration_dir(model.in_channels), steps=steps, **tune)
    model.eval()
    if eval_dir:
        psnr["after"] = eval_psnr(model, eval_dir, sigma, eval_limit)
    p1 = sum(p.numel() for p in model.parameters())
    speed1 = time_model(model)
    new = pruned_card(card, spec, keep, steps, p1, psnr, sigma,
                      {"eval_dir": str(eval_dir), "eval_limit": eval_limit} if eval_dir else None)
    path = save_weights(out, model.float().to(memory_format=torch.contiguous_format), new)  # type: ignore[call-overload]  # torch stubs lack Module.to(memory_format=)
    return PruneReport(path, keep, steps, (p0, p1), (speed0, speed1), sigma, psnr)
