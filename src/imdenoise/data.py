"""Training data: images decoded once into memory (uint8), random patches, flips/rotations, noise.

Every sample is a pure function of (seed, global sample index): the stream of batches is the same
whatever the number of workers or ranks, and a resumed run sees exactly the batches it would have
seen, which is what makes resume exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from imdenoise.errors import ConfigError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy"}


def missing_data_hint(path: Path) -> str:
    """How to provide a missing standard set, for paths under the datasets' root (else nothing)."""
    from imdenoise.paths import DATASETS_HINT, under_datasets_root

    return f"; {DATASETS_HINT}" if under_datasets_root(path) else ""


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted by name (the benchmark protocol's order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"data folder not found: {folder}{missing_data_hint(folder)}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def is_idx_file(path: str | Path) -> bool:
    """True for an IDX image file such as MNIST's `t10k-images-idx3-ubyte(.gz)`."""
    return "idx3-ubyte" in Path(path).name


def read_idx_images(path: str | Path) -> list[np.ndarray]:
    """Images of an IDX3 file (MNIST format, optionally gzipped) as uint8 HxWx1 arrays."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        hint = missing_data_hint(Path(path)) if not Path(path).exists() else ""
        raise ConfigError(f"{path}: cannot read IDX file ({exc.strerror or exc}){hint}") from None
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise ConfigError(f"{path}: not an IDX3 image file (bad magic number)")
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * h * w:
        raise ConfigError(f"{path}: truncated IDX file ({len(raw)} bytes for {n} images of {h}x{w})")
    data = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w, 1)
    return list(data)


def is_array_stack(path: str | Path) -> bool:
    """True for a .npy file (not a folder), taken as a stack of images such as the MNIST tutorial's
    `x_train.npy` (N x 28 x 28)."""
    p = Path(path)
    return p.suffix.lower() == ".npy" and p.is_file()


def read_array_stack(path: str | Path) -> list[np.ndarray]:
    """Images of an N x H x W (gray) or N x H x W x C .npy stack as float32 HxWxC in [0, 1]: uint8 and
    uint16 are scaled by their range, floats are taken as [0, 1] (or 0-255 if their maximum is above 1.5)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"{path}: cannot read the .npy image stack ({exc})") from None
    if data.ndim == 3 and data.shape[-1] > 4:
        data = data[..., None]
    if data.ndim != 4 or data.shape[-1] not in (1, 3, 4) or 0 in data.shape:
        raise ConfigError(f"{path}: a .npy training file must be a stack of images, N x H x W or N x H x W x C "
                          f"(C = 1, 3 or 4), got shape {data.shape}")
    if data.dtype.kind in "ui":
        scale = 65535.0 if data.dtype.itemsize > 1 else 255.0
    elif data.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(data)) > 1.5 else 1.0
    else:
        raise ConfigError(f"{path}: unsupported array type {data.dtype} for images")
    images = (data.astype(np.float32) / scale)
    if not np.isfinite(images).all():
        raise ConfigError(f"{path}: the image stack holds NaN or infinite values")
    return list(images)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Float HxWxC -> float32 HxWxchannels (RGB -> gray by ITU-R 601 luma, gray -> RGB by copy)."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] != channels:
        if channels == 1:
            image = (image[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
        else:
            image = np.repeat(image[..., :1], channels, axis=-1)
    return image


def to_uint8(image: np.ndarray, channels: int) -> np.ndarray:
    """Float HxWxC in [0, 1] -> uint8 HxWxchannels (RGB -> gray by ITU-R 601 luma, gray -> RGB by copy)."""
    return np.round(np.clip(to_channels(image, channels), 0.0, 1.0) * 255.0).astype(np.uint8)


def load_images(paths: Sequence[Path], channels: int, keep_float: bool = False) -> list[np.ndarray]:
    """Decode each file once into a uint8 HxWxC array (held in memory for the whole run).

    With `keep_float`, float sources (float32 TIFF / NPY) stay float32 and unclipped: noisy-only
    data keeps its noise as written (clipping at 0 and 1 would bias it); integer sources stay uint8."""
    from imdenoise.io import read_image

    out = []
    for p in paths:
        img = read_image(p)
        is_float = np.issubdtype(np.dtype(img.dtype), np.floating)
        out.append(to_channels(img.data, channels) if keep_float and is_float else to_uint8(img.data, channels))
    log.info("loaded %d images (%.1f MB in memory)", len(out), sum(a.nbytes for a in out) / 1e6)
    return out


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
        gray = out @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        out = (out - gray[..., None]) * s + gray[..., None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of one training sample: a pure function of the run seed and the sample index."""
    return np.random.default_rng([seed, index])


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


@dataclass
class Sample:
    """One training example: network input, target (None for self-supervised), noise level (0-1)."""

    noisy: torch.Tensor
    target: torch.Tensor
    sigma: torch.Tensor


class SyntheticNoiseDataset(Dataset):
    """Clean images + noise models: a random patch, a random dihedral transform, a random noise model."""

    def __init__(self, images: list[np.ndarray], noises: Sequence[str], patch_size: int, seed: int,
                 length: int = 10**12, augment: bool = True, color_jitter: float = 0.0,
                 strength: Callable[[int], float] | None = None, blind_level: Any = None) -> None:
        """`strength(index)`: the curriculum's share of each noise range for the sample at `index`
        (None: the full ranges); `color_jitter`: see :func:`jitter_colors`; `blind_level`: a
        `BlindLevel` giving the level input from the noisy patch instead of the true level."""
        from imdenoise.noise import parse_noise

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


def match_pairs(noisy_dir: Path, clean_dir: Path) -> tuple[list[Path], list[Path]]:
    """Pair files of two folders by stem; unmatched files are listed in the error."""
    noisy = {p.stem: p for p in list_images(noisy_dir)}
    clean = {p.stem: p for p in list_images(clean_dir)}
    only_noisy = sorted(noisy[k].name for k in set(noisy) - set(clean))
    only_clean = sorted(clean[k].name for k in set(clean) - set(noisy))
    if only_noisy or only_clean:
        raise ConfigError(f"unmatched files: in {noisy_dir} only: {only_noisy[:10]}; "
                          f"in {clean_dir} only: {only_clean[:10]}")
    stems = sorted(noisy)
    return [noisy[s] for s in stems], [clean[s] for s in stems]


REAL_PAIR_TAGS = (("_real", "_mean"), ("_noisy", "_clean"), ("_noisy", "_gt"))


def real_pairs(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(noisy, reference) files of a folder of real noisy pairs, sorted by name.

    Two layouts: files named ``<stem>_real.*`` / ``<stem>_mean.*`` (PolyU; also ``_noisy`` / ``_clean``
    or ``_gt``) side by side, or a ``noisy/`` and a ``clean/`` subfolder with the same file names."""
    folder = Path(folder)
    if (folder / "noisy").is_dir() and (folder / "clean").is_dir():
        return match_pairs(folder / "noisy", folder / "clean")
    files = list_images(folder)
    for noisy_tag, clean_tag in REAL_PAIR_TAGS:
        noisy = {p.stem[: -len(noisy_tag)]: p for p in files if p.stem.endswith(noisy_tag)}
        clean = {p.stem[: -len(clean_tag)]: p for p in files if p.stem.endswith(clean_tag)}
        if noisy and clean:
            unmatched = sorted((noisy.get(k) or clean[k]).name for k in set(noisy) ^ set(clean))
            if unmatched:
                raise ConfigError(f"{folder}: no partner for {unmatched[0]}"
                                  + (f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else "")
                                  + f"; expected <name>{noisy_tag}.* beside <name>{clean_tag}.*")
            stems = sorted(noisy)
            return [noisy[s] for s in stems], [clean[s] for s in stems]
    raise ConfigError(f"{folder}: not a folder of real noisy pairs: expected <name>_real.* beside <name>_mean.* "
                      "(or _noisy/_clean), or noisy/ and clean/ subfolders with the same file names")


def is_real_pairs(folder: str | Path) -> bool:
    """True for a folder that :func:`real_pairs` reads (no noise is to be synthesised on it)."""
    try:
        real_pairs(folder)
    except ConfigError:
        return False
    return True


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

