"""Turn a config's data section into the training dataset and the held-out validation images."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from imdenoise.errors import ConfigError
from imdenoise.io.datasets import (
    is_array_stack,
    is_idx_file,
    list_images,
    load_images,
    match_pairs,
    read_array_stack,
    read_idx_images,
    real_pairs,
    to_uint8,
)
from imdenoise.training.config import CurriculumSection, TrainConfig
from imdenoise.training.datasets import NoisyOnlyDataset, PairedDataset, SyntheticNoiseDataset, rescaled_copies

log = logging.getLogger(__name__)


def _split(items: list, holdout: int, limit: int | None, source: str) -> tuple[list, list]:
    """Last `holdout` items of each source go to validation; never train on them."""
    if holdout >= len(items):
        raise ConfigError(f"data.holdout={holdout} leaves no training images in {source} (only {len(items)})")
    train, val = (items[:-holdout], items[-holdout:]) if holdout else (items, [])
    return (train[:limit] if limit else train), val


def load_source(source: str, channels: int, holdout: int, limit: int | None, val_limit: int,
                keep_float: bool = False) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training, validation) uint8 images of a folder, an IDX file or a .npy stack, split by `holdout`
    (float files stay float32 and unclipped with `keep_float`: noisy-only data)."""
    if is_idx_file(source) or is_array_stack(source):  # one file holding many images (MNIST)
        stack = ([a.astype(np.float32) / 255.0 for a in read_idx_images(source)] if is_idx_file(source)
                 else read_array_stack(source))
        return _split([to_uint8(a, channels) for a in stack], holdout, limit, source)
    train, val = _split(list_images(source), holdout, limit, source)
    return load_images(train, channels, keep_float), load_images(val[:val_limit], channels, keep_float)


def clean_sources(images: list[np.ndarray], cap: float) -> list[np.ndarray]:
    """Each uint8 image through `default`'s white-noise models as `default` plans it (a photo's grain on
    pixel-shuffled sub-images; never the blind `photo` model, so the cap holds), the level capped at
    `cap`, back to uint8.

    The BSD sources are scanned film: their flat regions read 1.35 at the pixel scale and 2.5 at stride 2
    (CBSD432 medians), above a low-ISO camera JPEG's noise (PolyU: 0.48 and 1.7), so a photo model
    trained on them learns to keep noise of that level. The cap keeps texture that reads as noise. Results
    are cached by image, cap and the shipped weights (docs/training.md, "The clean sources")."""
    import hashlib
    import io
    import math
    from dataclasses import replace

    from imdenoise.atomic import write_bytes_atomic
    from imdenoise.denoisers.catalog import load
    from imdenoise.denoisers.network import AutoDenoiser, photo_rule
    from imdenoise.metrics import quantize_8bit
    from imdenoise.models.weights import shipped_path
    from imdenoise.paths import cache_dir

    default: AutoDenoiser | None = None  # loaded on the first image not in the cache
    base = hashlib.sha256(f"cap={cap:g}".encode())
    for name in ("gray", "color"):
        path = shipped_path(name)
        base.update(path.read_bytes() if path else name.encode())
    folder = cache_dir("clean-sources")
    out, made = [], 0
    for img in images:
        key = base.copy()
        key.update(repr(img.shape).encode() + img.tobytes())
        cached = folder / f"{key.hexdigest()[:24]}.npy"
        if cached.is_file():
            out.append(np.load(cached))
            continue
        default = default or AutoDenoiser(load("gray"), load("color"),  # type: ignore[arg-type]
                                          photo_rule=replace(photo_rule(), photo_from=math.inf))
        x = img.astype(np.float32) / 255.0
        plan = default.plan(x)
        plan = replace(plan, sigma=min(float(plan.sigma or 0.0), cap))
        clean = quantize_8bit(default.run(plan, x)).reshape(img.shape)
        buf = io.BytesIO()
        np.save(buf, clean)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(cached, buf.getvalue())
        except OSError as e:  # a read-only cache costs time on the next run, not this one
            log.warning("clean_sources: cannot cache in %s (%s)", folder, e)
        out.append(clean)
        made += 1
        if made % 50 == 0:
            log.info("clean_sources: %d of %d images denoised", len(out), len(images))
    log.info("clean_sources: %d images, %d denoised now, the rest from %s", len(out), made, folder)
    return out


class CurriculumStrength:
    """Sample index -> the curriculum's factor at that sample's step (picklable for data workers)."""

    def __init__(self, curriculum: CurriculumSection, total_steps: int, samples_per_step: int) -> None:
        self.curriculum, self.total_steps, self.samples_per_step = curriculum, total_steps, samples_per_step

    def __call__(self, index: int) -> float:
        return self.curriculum.factor(index // self.samples_per_step, self.total_steps)


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, list]:
    """The training dataset for the config's mode and the validation images: uint8 clean images
    (noise is added by the validation), or (noisy, reference) uint8 pairs with data.val_pairs."""
    d = cfg.data
    seed = cfg.optim.seed
    if d.paired:
        noisy_paths, clean_paths = match_pairs(Path(d.paired[0]), Path(d.paired[1]))
        n_train = len(clean_paths) - d.holdout
        if n_train < 1:
            raise ConfigError(f"data.holdout={d.holdout} leaves no training pairs")
        noisy = load_images(noisy_paths[:n_train], d.channels)
        clean = load_images(clean_paths[:n_train], d.channels)
        val = load_images(clean_paths[n_train:][: d.val_limit], d.channels)
        dataset: Dataset = PairedDataset(noisy, clean, d.patch_size, seed, augment=d.augment)
    else:
        images, val = [], []
        for source in d.train or d.noisy:
            t, v = load_source(source, d.channels, d.holdout, d.limit, d.val_limit,
                               keep_float=bool(d.noisy) and cfg.mode == "selfsupervised")
            images += t
            val += v
        val = val[: d.val_limit] if cfg.mode != "selfsupervised" else []  # noisy images are no reference
        if cfg.mode == "selfsupervised":
            dataset = NoisyOnlyDataset(images, d.patch_size, seed, augment=d.augment)
        else:
            if d.clean_sources:
                images = clean_sources(images, d.clean_sources)
            images = rescaled_copies(images, d.scales, d.patch_size)
            cur = cfg.optim.curriculum
            world = int(os.environ.get("WORLD_SIZE", 1))  # IndexStream: batch * world samples per step
            strength = (CurriculumStrength(cur, cfg.optim.steps, d.batch_size * world)
                        if cur and "noise" in cur.apply_to else None)
            dataset = SyntheticNoiseDataset(images, d.noise, d.patch_size, seed, augment=d.augment,
                                            color_jitter=d.color_jitter, strength=strength,
                                            blind_level=d.blind_level)
    for folder in d.val:
        val += load_images(list_images(folder)[: d.val_limit], d.channels)
    if d.val_pairs:
        noisy_paths, clean_paths = real_pairs(d.val_pairs)
        step = max(1, len(clean_paths) // d.val_limit)  # spread over the set: its scenes come in runs
        picked = list(range(0, len(clean_paths), step))[: d.val_limit]
        val = list(zip(load_images([noisy_paths[i] for i in picked], d.channels),  # type: ignore[arg-type]
                       load_images([clean_paths[i] for i in picked], d.channels)))
    log.info("training on %s, validating on %d images", type(dataset).__name__, len(val))
    return dataset, val
