"""Turn a config's data section into the training dataset and the held-out validation images."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from imdenoise.data import (NoisyOnlyDataset, PairedDataset, SyntheticNoiseDataset, list_images, load_images,
                            match_pairs)
from imdenoise.errors import ConfigError
from imdenoise.train_config import TrainConfig

log = logging.getLogger(__name__)


def _split(paths: list[Path], holdout: int, limit: int | None) -> tuple[list[Path], list[Path]]:
    """Last `holdout` files of each folder listing go to validation; never train on them."""
    if holdout >= len(paths):
        raise ConfigError(f"data.holdout={holdout} leaves no training images (only {len(paths)} found)")
    train, val = (paths[:-holdout], paths[-holdout:]) if holdout else (paths, [])
    return (train[:limit] if limit else train), val


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, list[np.ndarray]]:
    """The training dataset for the config's mode and the uint8 clean validation images."""
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
        dataset: Dataset = PairedDataset(noisy, clean, d.patch_size, seed)
    else:
        folders = d.train or d.noisy
        train_paths: list[Path] = []
        val_paths: list[Path] = []
        for folder in folders:
            t, v = _split(list_images(folder), d.holdout, d.limit)
            train_paths += t
            val_paths += v
        images = load_images(train_paths, d.channels)
        val = load_images(val_paths[: d.val_limit], d.channels) if cfg.mode != "selfsupervised" else []
        if cfg.mode == "selfsupervised":
            dataset = NoisyOnlyDataset(images, d.patch_size, seed)
        else:
            dataset = SyntheticNoiseDataset(images, d.noise, d.patch_size, seed)
    for folder in d.val:
        val += load_images(list_images(folder)[: d.val_limit], d.channels)
    log.info("training on %s, validating on %d images", type(dataset).__name__, len(val))
    return dataset, val
