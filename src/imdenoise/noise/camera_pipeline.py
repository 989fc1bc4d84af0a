"""Realistic camera noise: sRGB taken back to raw, shot and read noise added there, then a camera's
processing forward again (demosaicing, white balance, colour correction, tone, in-camera noise
reduction and sharpening, JPEG).

The unprocessing follows Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019):
their colour matrices, white-balance gains, tone curve, gamma and shot/read noise relation, fitted
on real sensors. The forward path adds what CBDNet (Guo et al., CVPR 2019) and the degradation
pipelines of BSRGAN / SCUNet (Zhang et al.) add on top: several demosaicing methods, in-camera
denoising (chroma noise reduction blurs colour noise into blotches) and sharpening, and JPEG at a
random quality. The ranges and their sources are listed in docs/noise.md.

Everything draws its randomness from the ``np.random.Generator`` it is given and works on float32
HxWx3 arrays on the [0, 1] scale.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

# XYZ -> camera matrices of four cameras (Brooks et al., from the Darmstadt Noise Dataset's
# cameras); a random convex combination gives a plausible unseen camera.
XYZ2CAMS = np.array([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.613, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.838, -0.263, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.097, 0.1581, 0.5181]],
])
RGB2XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                    [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]])
# Shot noise gain: Brooks et al. sample log(shot) uniformly in [log 1e-4, log 1.2e-2] (raw on [0, 1]);
# read noise variance follows log(read) = 2.18 log(shot) + 1.20 + N(0, 0.26), their fit on real sensors.
SHOT_RANGE = (1e-4, 1.2e-2)
READ_SLOPE, READ_INTERCEPT, READ_STD = 2.18, 1.20, 0.26
DEMOSAIC_METHODS = ("bilinear", "malvar", "menon")


@dataclass(frozen=True)
class CameraParams:
    """One simulated camera and exposure: everything the pipeline draws for an image."""

    rgb2cam: np.ndarray  # 3x3, rows sum to 1
    rgb_gain: float  # overall brightness gain undone by unprocessing
    red_gain: float
    blue_gain: float
    shot: float  # shot-noise variance per unit of raw signal
    read: float  # read-noise variance
    demosaic: str
    chroma_nr: float  # Gaussian sigma (pixels) of in-camera chroma noise reduction; 0 = off
    luma_nr: float  # Gaussian sigma of in-camera luma noise reduction; 0 = off
    sharpen: float  # unsharp-mask amount (radius 1 pixel); 0 = off
    quality: int  # JPEG quality; 0 = no JPEG
    reference_sharpen: float = 1.0  # share of the sharpening the reference gets (0: an unsharpened target)
    reference_blur: float = 0.0  # Gaussian sigma (pixels) softening the reference, as a burst's mean is softer


def random_params(rng: np.random.Generator, shot: float, quality: int, sharpen: float, chroma_nr: float,
                  luma_nr: float, reference_sharpen: float = 1.0, reference_blur: float = 0.0) -> CameraParams:
    """A random camera (colour matrix, white balance, demosaicing) with the given noise and processing."""
    weights = rng.uniform(1e-8, 1.0, size=len(XYZ2CAMS))
    xyz2cam = np.tensordot(weights / weights.sum(), XYZ2CAMS, axes=1)
    rgb2cam = xyz2cam @ RGB2XYZ
    rgb2cam = rgb2cam / rgb2cam.sum(axis=-1, keepdims=True)
    log_read = READ_SLOPE * np.log(shot) + READ_INTERCEPT + rng.normal(0.0, READ_STD)
    return CameraParams(
        rgb2cam=rgb2cam, rgb_gain=float(1.0 / max(rng.normal(0.8, 0.1), 0.4)),
        red_gain=float(rng.uniform(1.9, 2.4)), blue_gain=float(rng.uniform(1.5, 1.9)),
        shot=float(shot), read=float(np.exp(log_read)),
        demosaic=DEMOSAIC_METHODS[int(rng.integers(len(DEMOSAIC_METHODS)))],
        chroma_nr=float(chroma_nr), luma_nr=float(luma_nr), sharpen=float(sharpen), quality=int(quality),
        reference_sharpen=float(reference_sharpen), reference_blur=float(reference_blur))


def _inverse_smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * x) / 3.0)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    return 3.0 * x ** 2 - 2.0 * x ** 3


def _gains(p: CameraParams) -> np.ndarray:
    return np.array([p.red_gain, 1.0, p.blue_gain]) * p.rgb_gain


def unprocess(srgb: np.ndarray, p: CameraParams) -> np.ndarray:
    """sRGB HxWx3 -> linear camera RGB before white balance (HxWx3), highlights kept (Brooks et al.)."""
    lin = np.maximum(_inverse_smoothstep(srgb.astype(np.float64)), 1e-8) ** 2.2
    cam = lin @ p.rgb2cam.T
    gains = 1.0 / _gains(p)
    gray = cam.mean(axis=-1, keepdims=True)
    mask = (np.maximum(gray - 0.9, 0.0) / 0.1) ** 2  # fade the inverse gains out towards white
    safe = np.maximum(mask + (1.0 - mask) * gains, gains)
    return np.clip(cam * safe, 0.0, 1.0)


def mosaic(rgb: np.ndarray) -> np.ndarray:
    """RGGB Bayer mosaic of an HxWx3 image (HxW)."""
    from colour_demosaicing import mosaicing_CFA_Bayer

    return np.asarray(mosaicing_CFA_Bayer(rgb, "RGGB"), dtype=np.float64)


def add_raw_noise(raw: np.ndarray, p: CameraParams, rng: np.random.Generator) -> np.ndarray:
    """Heteroscedastic Gaussian approximation of Poisson-Gaussian noise: variance shot * x + read."""
    std = np.sqrt(np.maximum(raw, 0.0) * p.shot + p.read)
    return np.maximum(raw + std * rng.standard_normal(raw.shape), 0.0)


def demosaic(raw: np.ndarray, method: str) -> np.ndarray:
    """Bayer RGGB -> HxWx3 with one of colour-demosaicing's methods (bilinear, Malvar 2004, Menon 2007)."""
    import colour_demosaicing as cd

    fn = {"bilinear": cd.demosaicing_CFA_Bayer_bilinear, "malvar": cd.demosaicing_CFA_Bayer_Malvar2004,
          "menon": cd.demosaicing_CFA_Bayer_Menon2007}[method]
    return np.asarray(fn(raw, "RGGB"), dtype=np.float64)


def process(raw: np.ndarray, p: CameraParams) -> np.ndarray:
    """Bayer raw -> sRGB (no noise reduction or JPEG): white balance, demosaic, colour, gamma, tone."""
    gains = _gains(p)
    balanced = raw.copy()
    balanced[0::2, 0::2] *= gains[0]
    balanced[1::2, 1::2] *= gains[2]
    balanced[0::2, 1::2] *= gains[1]
    balanced[1::2, 0::2] *= gains[1]
    rgb = np.clip(demosaic(np.clip(balanced, 0.0, 1.0), p.demosaic), 0.0, 1.0)
    rgb = np.clip(rgb @ np.linalg.inv(p.rgb2cam).T, 0.0, 1.0)
    return _smoothstep(np.maximum(rgb, 1e-8) ** (1.0 / 2.2))


_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def noise_reduction(noise: np.ndarray, chroma_sigma: float, luma_sigma: float) -> np.ndarray:
    """In-camera noise reduction, idealised as edge-preserving: it smooths the noise, not the scene.

    The noise (noisy minus noise-free rendering) is blurred in luma and chroma separately: colour
    noise turns into blotches and grain grows coarser, the correlated noise of real JPEG photos."""
    if chroma_sigma <= 0 and luma_sigma <= 0:
        return noise
    ycc = noise @ _YCC.T
    for c, sigma in ((0, luma_sigma), (1, chroma_sigma), (2, chroma_sigma)):
        if sigma > 0:
            # a blur lowers white noise's std by about 1 / (2 sqrt(pi) sigma); luma gets some of it
            # back, as cameras tuned to keep fine grain do, chroma (removed hard by cameras) does not
            gain = min(1.0 + sigma, 3.0) if c == 0 else 1.0
            ycc[..., c] = gaussian_filter(ycc[..., c], sigma, mode="reflect") * gain
    return ycc @ np.linalg.inv(_YCC).T


def sharpen(rgb: np.ndarray, amount: float) -> np.ndarray:
    """Unsharp mask of radius 1 pixel: x + amount * (x - blur(x))."""
    if amount <= 0:
        return rgb
    blurred = gaussian_filter(rgb, (1.0, 1.0, 0.0), mode="reflect")
    return rgb + amount * (rgb - blurred)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Round trip through an 8-bit JPEG (4:2:0 chroma subsampling, as cameras and phones write)."""
    from PIL import Image

    from imdenoise.metrics import quantize_8bit

    u8 = quantize_8bit(rgb)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=int(quality), subsampling=2)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.float64) / 255.0


def simulate(clean: np.ndarray, p: CameraParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(noisy photo, its noise-free reference) of a clean sRGB HxWx3 image shot by camera ``p``.

    The reference goes through the same mosaic, demosaicing, colour path and sharpening without
    noise or noise reduction, and through JPEG's chroma subsampling at quality 100: what the scene
    looks like through this camera, noise aside (the PolyU and SIDD references are means of many
    processed shots in the same way)."""
    h, w = clean.shape[:2]
    ph, pw = h % 2, w % 2  # the Bayer pattern needs even sizes: reflect one row/column, cut it after
    src = np.pad(clean, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else clean
    raw = mosaic(unprocess(src, p))
    rendered = process(raw, p)
    reference = sharpen(rendered, p.sharpen * p.reference_sharpen)
    if p.reference_blur > 0:  # the mean of a hand-held or jittered burst is softer than any one frame
        reference = gaussian_filter(reference, (p.reference_blur, p.reference_blur, 0.0), mode="reflect")
    noise = noise_reduction(process(add_raw_noise(raw, p, rng), p) - rendered, p.chroma_nr, p.luma_nr)
    noisy = sharpen(rendered + noise, p.sharpen)
    noisy = jpeg(noisy, p.quality) if p.quality > 0 else np.clip(noisy, 0.0, 1.0)
    # A JPEG camera's reference keeps its chroma subsampling: the mean of many JPEG shots does.
    reference = jpeg(reference, 100) if p.quality > 0 else np.clip(reference, 0.0, 1.0)
    return noisy[:h, :w].astype(np.float32), reference[:h, :w].astype(np.float32)
