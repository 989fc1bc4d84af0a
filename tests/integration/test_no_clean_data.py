"""Noisy-only training data keeps float noise unclipped (issue 6, report 2); fast."""

from __future__ import annotations

import numpy as np

from imdenoise.io.datasets import load_images
from imdenoise.training.config import load_config
from imdenoise.training.data import build_datasets
from imdenoise.training.datasets import NoisyOnlyDataset


def _noisy_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "noisy"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"n{i}.npy", (0.5 + 0.4 * rng.standard_normal((24, 20))).astype(np.float32))
    return folder


def test_float_noisy_files_stay_float_and_unclipped(tmp_path):
    folder = _noisy_folder(tmp_path)
    images = load_images(sorted(folder.iterdir()), 1, keep_float=True)
    assert images[0].dtype == np.float32 and images[0].shape == (24, 20, 1)
    assert images[0].min() < 0 and images[0].max() > 1
    np.testing.assert_array_equal(images[0][..., 0], np.load(folder / "n0.npy"))
    assert load_images(sorted(folder.iterdir()), 1)[0].dtype == np.uint8  # the default is unchanged


def test_selfsupervised_dataset_sees_the_unclipped_noise(tmp_path):
    folder = _noisy_folder(tmp_path)
    cfg = load_config(raw={"mode": "selfsupervised", "data": {"noisy": [str(folder)], "channels": 1,
                                                              "patch_size": 16, "holdout": 1}})
    dataset, val = build_datasets(cfg)
    assert isinstance(dataset, NoisyOnlyDataset) and val == []
    values = np.concatenate([dataset[i]["noisy"].numpy().ravel() for i in range(8)])
    assert values.min() < 0 and values.max() > 1
    # uint8 sources are still scaled to [0, 1]
    u8 = NoisyOnlyDataset([np.full((20, 20, 1), 255, np.uint8)], 16, 0)
    assert float(u8[0]["noisy"].max()) == 1.0
