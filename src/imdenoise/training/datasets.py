"""Training samples: random patches, flips/rotations, noise, and the datasets that draw them.

Every sample is a pure function of (seed, global sample index): the stream of batches is the same
whatever the number of workers or ranks, and a resumed run sees exactly the batches it would have
seen, which is what makes resume exact.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from imdenoise.arrays import rgb_to_gray
from imdenoise.errors import ConfigError

log = logging.getLogger(__name__)

def rescaled_copies(images: list[np.ndarray], scales: Sequence[float], min_size: int) -> list[np.ndarray]:
    """Each image at each scale (bicubic, antialiased), as DnCNN's patch generation does: downscaled
    copies add detail density and wash out the JPEG artifacts of the clean sources. Copies whose
    shorter side would fall below `min_size` (the patch size) are left out."""
    from PIL import Image

    out = []
    for scale in scales:
        for img in images:
            h, w = img.shape[:2]
            size = (round(w * scale), round(h * scale))
            if scale == 1.0:
                out.append(img)
            elif min(size) >= min_size:
                pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
                small = np.asarray(pil.resize(size, Image.Resampling.BICUBIC))
                out.append(small.reshape(size[1], size[0], img.shape[2]))
    if len(scales) > 1 or scales[0] != 1.0:
        log.info("scales %s: %d training images from %d", list(scales), len(out), len(images))
    return out


def augment(patch: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 dihedral transforms (k in 0..7): k % 4 quarter turns, then a flip if k >= 4."""
    patch = np.rot90(patch, k % 4, axes=(0, 1))
    return patch[:, ::-1] if k >= 4 else patch


def random_crop(rng: np.random.Generator, arrays: Sequence[np.ndarray], size: int) -> list[np.ndarray]:
    """The same random size x size window of each array (padding by reflection if an image is smaller)."""
    h, w = arrays[0].shape[:2]
    if h < size or w < size:
        ph, pw = max(0, size - h), max(0, size - w)
        arrays = [np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="reflect") for a in arrays]
        h, w = arrays[0].shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return [a[y:y + size, x:x + size] for a in arrays]


def draw_transform(rng: np.random.Generator, enabled: bool) -> int:
    """The dihedral transform of a sample (always drawn, so the random stream is the same either way)."""
    k = int(rng.integers(8))
    return k if enabled else 0


def jitter_colors(clean: np.ndarray, amount: float, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter of a clean [0, 1] patch: brightness, contrast and (colour only) saturation each
    scaled by a factor in [1 - amount, 1 + amount], clipped to [0, 1]: more varied training colours."""
    b, c, s = rng.uniform(1 - amount, 1 + amount, 3)
    out = clean * b
    out = (out - out.mean()) * c + out.mean()
    if out.shape[2] == 3:
        gray = rgb_to_gray(out)
        out = (out - gray[..., None]) * s + gray[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of one training sample: a pure function of the run seed and the sample index."""
    return np.random.default_rng([seed, index])


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


class SyntheticNoiseDataset(Dataset):
    """Clean images + noise models: a random patch, a random dihedral transform, a random noise model."""

    def __init__(self, images: list[np.ndarray], noises: Sequence[str], patch_size: int, seed: int,
                 length: int = 10**12, augment: bool = True, color_jitter: float = 0.0,
                 strength: Callable[[int], float] | None = None, blind_level: Any = None) -> None:
        """`strength(index)`: the curriculum's share of each noise range for the sample at `index`
        (None: the full ranges); `color_jitter`: see :func:`jitter_colors`; `blind_level`: a
        `BlindLevel` giving the level input from the noisy patch instead of the true level."""
        from imdenoise.noise.models import parse_noise

        if not images:
            raise ConfigError("no training images")
        self.images = images
        self.noises = [parse_noise(s) for s in noises]
        self.patch_size = patch_size
        self.seed = seed
        self.length = length
        self.augment = augment
        self.color_jitter = color_jitter
        self.strength = strength
        self.blind_level = blind_level

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = sample_rng(self.seed, index)
        image = self.images[int(rng.integers(len(self.images)))]
        (patch,) = random_crop(rng, [image], self.patch_size)
        clean = augment(patch, draw_transform(rng, self.augment)).astype(np.float32) / 255.0
        if self.color_jitter:  # its own generator: the patch, transform and noise streams stay the same
            clean = jitter_colors(clean, self.color_jitter, np.random.default_rng([self.seed, index, 1]))
        noise = self.noises[int(rng.integers(len(self.noises)))]
        if self.strength is not None:
            noise = noise.at_strength(self.strength(index))
        noisy, target, sigma = noise.sample_pair(clean, rng)
        if self.blind_level is not None:
            sigma = self.blind_level.of(np.clip(noisy, 0.0, 1.0))
        return {"noisy": _chw(noisy.astype(np.float32)), "target": _chw(target),
                "sigma": torch.tensor((sigma or 0.0) / 255.0, dtype=torch.float32)}


class PairedDataset(Dataset):
    """Noisy/clean pairs matched by file name; the same patch and transform cut from both."""

    def __init__(self, noisy: list[np.ndarray], clean: list[np.ndarray], patch_size: int, seed: int,
                 length: int = 10**12, augment: bool = True) -> None:
        self.noisy, self.clean = noisy, clean
        self.patch_size, self.seed, self.length, self.augment = patch_size, seed, length, augment

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = sample_rng(self.seed, index)
        i = int(rng.integers(len(self.clean)))
        n, c = random_crop(rng, [self.noisy[i], self.clean[i]], self.patch_size)
        k = draw_transform(rng, self.augment)
        n, c = (augment(a, k).astype(np.float32) / 255.0 for a in (n, c))
        sigma = float(np.std(n - c))  # the pair's actual noise level, for noise-conditioned nets
        return {"noisy": _chw(n), "target": _chw(c), "sigma": torch.tensor(sigma, dtype=torch.float32)}


class NoisyOnlyDataset(Dataset):
    """Noisy images without targets (self-supervised modes): patches and transforms only.

    Images are uint8 (0-255) or float32 on the 0-1 scale (unclipped noisy data)."""

    def __init__(self, images: list[np.ndarray], patch_size: int, seed: int, length: int = 10**12,
                 augment: bool = True) -> None:
        self.images, self.patch_size, self.seed, self.length = images, patch_size, seed, length
        self.augment = augment

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = sample_rng(self.seed, index)
        (patch,) = random_crop(rng, [self.images[int(rng.integers(len(self.images)))]], self.patch_size)
        noisy = augment(patch, draw_transform(rng, self.augment)).astype(np.float32)
        if patch.dtype == np.uint8:  # float32 sources (load_images(keep_float=True)) are on [0, 1] already
            noisy /= 255.0
        return {"noisy": _chw(noisy), "target": _chw(noisy), "sigma": torch.tensor(0.0)}


class IndexStream(torch.utils.data.Sampler[int]):
    """This rank's global sample indices from step `start`: sample k of rank r at step s is
    s * batch * world + r * batch + k, so 2 ranks x 8 see exactly the samples of 1 rank x 16."""

    def __init__(self, start_step: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start_step, self.batch, self.rank, self.world = start_step, batch, rank, world

    def __iter__(self):
        step = self.start_step
        while True:
            base = step * self.batch * self.world + self.rank * self.batch
            yield from range(base, base + self.batch)
            step += 1

    def __len__(self) -> int:  # pragma: no cover - infinite
        return 2**62

