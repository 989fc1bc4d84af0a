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
