"""Noise models (gaussian, poisson, salt-and-pepper, speckle, mixed, rician, poisson-gaussian, camera), seeded.

Spec grammar (documented in docs/noise.md)::

    KIND[:VALUE[:VALUE...]]          positional values, in the kind's parameter order
    KIND:NAME=VALUE[,NAME=VALUE...]  named values (positional ones may come first)
    VALUE := NUMBER | NUMBER-NUMBER  a range: drawn uniformly per call (e.g. gaussian:0-55)

Every model works on float32 HxWxC (or HxW) arrays and draws all randomness from the
``np.random.Generator`` it is given; outputs are float32 and never clipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Callable, ClassVar, Union

import numpy as np

from imdenoise.arrays import rgb_to_gray
from imdenoise.errors import NoiseSpecError
from imdenoise.noise.estimation import estimate_sigma

__all__ = [
    "NoiseModel", "GaussianNoise", "PoissonNoise", "SaltPepperNoise", "SpeckleNoise", "MixedNoise", "CameraNoise",
    "RicianNoise", "PoissonGaussianNoise", "rician_moments",
    "NOISE_KINDS", "parse_noise", "parse_noise_levels", "benchmark_rng", "benchmark_noisy",
    "estimate_sigma",
]

Param = Union[float, tuple[float, float]]
"""A parameter: a fixed value, or a (low, high) range drawn uniformly on every call."""


def _draw(value: Param, rng: np.random.Generator) -> float:
    """A fixed value as is (no draw, so seeded streams stay aligned); a range sampled uniformly."""
    if isinstance(value, tuple):
        lo, hi = value
        return float(lo) if lo == hi else float(rng.uniform(lo, hi))
    return float(value)


def _bounds(value: Param) -> tuple[float, float]:
    return (float(value[0]), float(value[1])) if isinstance(value, tuple) else (float(value), float(value))


def _num(x: float) -> str:
    """Short form of a number that parses back to exactly the same float (':g' alone keeps 6 digits)."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def _fmt(value: Param) -> str:
    if isinstance(value, tuple):
        return f"{_num(value[0])}-{_num(value[1])}"
    return _num(value)


@dataclass(frozen=True)
class NoiseModel:
    """Base of every noise kind: ``model(clean, rng)`` gives the noisy image, ``sample`` also its level."""

    kind: ClassVar[str] = ""
    required: ClassVar[int] = 1  # how many leading parameters a spec must give
    limits: ClassVar[dict[str, tuple[float, float, str]]] = {}  # name -> (min, max, meaning)
    weaker_high: ClassVar[frozenset[str]] = frozenset()  # parameters whose larger values mean weaker noise

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return ``clean`` with noise added: float32, same shape, not clipped."""
        return self.sample(clean, rng)[0]

    def sample(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        """Noisy image and its noise level on the 0-255 scale (the drawn sigma, or the realized RMS)."""
        clean = np.asarray(clean, dtype=np.float32)
        values = {f.name: _draw(getattr(self, f.name), rng) for f in fields(self)}
        noisy = self._apply(clean, rng, **values).astype(np.float32, copy=False)
        return noisy, self._level(clean, noisy, values)

    # each kind's _apply(clean, rng, **its fields as drawn) -> the noisy image
    _apply: ClassVar[Callable[..., np.ndarray]]

    def sample_pair(self, clean: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, float | None]:
        """(noisy, training target, level): the target is ``clean`` itself except for kinds that
        change the image beyond the noise (camera: the clean image through the same camera)."""
        noisy, level = self.sample(clean, rng)
        return noisy, np.asarray(clean, dtype=np.float32), level

    def _level(self, clean: np.ndarray, noisy: np.ndarray, values: dict[str, float]) -> float | None:
        """Equivalent AWGN level: RMS of the realized noise, 0-255 scale."""
        return float(np.sqrt(np.mean((noisy.astype(np.float64) - clean) ** 2)) * 255.0)

    @property
    def nominal_sigma(self) -> float | None:
        """Equivalent AWGN sigma (0-255) when the model has one fixed value, else None."""
        return None

    @property
    def level(self) -> float:
        """The kind's main parameter (sigma, peak, amount, var): the ``level`` in benchmark_rng."""
        lo, hi = _bounds(getattr(self, fields(self)[0].name))
        return (lo + hi) / 2.0

    def at_strength(self, f: float) -> "NoiseModel":
        """This model with every range parameter cut to the weakest share ``f`` of its span (the
        curriculum's easy start); fixed values are kept."""
        if f >= 1.0:
            return self
        changes: dict[str, Param] = {}
        for fl in fields(self):
            value = getattr(self, fl.name)
            if isinstance(value, tuple):
                lo, hi = value
                changes[fl.name] = (hi - f * (hi - lo), hi) if fl.name in self.weaker_high else (lo, lo + f * (hi - lo))
        return replace(self, **changes) if changes else self

    @property
    def spec(self) -> str:
        """The canonical spec string that parses back to this model."""
        args = ",".join(f"{f.name}={_fmt(getattr(self, f.name))}" for f in fields(self))
        return f"{self.kind}:{args}"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            lo_lim, hi_lim, meaning = self.limits[f.name]
            lo, hi = _bounds(value)
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or lo < lo_lim or hi > hi_lim:
                raise NoiseSpecError(
                    f"{self.kind} noise: {f.name}={_fmt(value)} is out of range; {f.name} ({meaning}) "
                    f"must be in [{lo_lim:g}, {hi_lim:g}]" + (" with low <= high" if lo > hi else ""))


@dataclass(frozen=True)
class GaussianNoise(NoiseModel):
    """Additive white Gaussian noise, sigma on the 0-255 scale; a (low, high) sigma is drawn per call."""

    sigma: Param = 25.0
    kind: ClassVar[str] = "gaussian"
    limits: ClassVar = {"sigma": (0.0, 255.0, "standard deviation on the 0-255 scale")}

    def _apply(self, clean: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
        return clean + (sigma / 255) * rng.standard_normal(clean.shape, dtype=np.float32)

    def _level(self, clean: np.ndarray, noisy: np.ndarray, values: dict[str, float]) -> float:
        return values["sigma"]

    @property
    def sigma_range(self) -> tuple[float, float]:
        """(low, high) sigma on the 0-255 scale; low == high for a fixed level."""
        return _bounds(self.sigma)

    @property
    def nominal_sigma(self) -> float | None:
        lo, hi = self.sigma_range
        return lo if lo == hi else None


@dataclass(frozen=True)
class PoissonNoise(NoiseModel):
    """Shot noise: ``Poisson(x * peak) / peak`` (peak = photon count at intensity 1; lower is noisier)."""

    peak: Param = 30.0
    kind: ClassVar[str] = "poisson"
    limits: ClassVar = {"peak": (1e-3, 1e6, "photon count at intensity 1")}
    weaker_high: ClassVar = frozenset({"peak"})

    def _apply(self, clean: np.ndarray, rng: np.random.Generator, peak: float) -> np.ndarray:
        return (rng.poisson(np.clip(clean, 0, None) * peak) / peak).astype(np.float32)


def _impulse(clean: np.ndarray, rng: np.random.Generator, amount: float, salt: float) -> np.ndarray:
    """Each sample independently replaced with probability ``amount``: by 1 (salt, prob. ``salt``) or 0."""
    hit = rng.random(clean.shape) < amount
    is_salt = rng.random(clean.shape) < salt
    out = clean.copy()
    out[hit & is_salt] = 1.0
    out[hit & ~is_salt] = 0.0
    return out


@dataclass(frozen=True)
class SaltPepperNoise(NoiseModel):
    """Impulse noise: a fraction ``amount`` of samples set to 1 (a share ``salt`` of them) or to 0."""

    amount: Param = 0.05
    salt: Param = 0.5
    kind: ClassVar[str] = "saltpepper"
    limits: ClassVar = {"amount": (0.0, 1.0, "fraction of corrupted samples"),
                        "salt": (0.0, 1.0, "share of corrupted samples set to 1")}

    def _apply(self, clean: np.ndarray, rng: np.random.Generator, amount: float, salt: float) -> np.ndarray:
        return _impulse(clean, rng, amount, salt)


@dataclass(frozen=True)
class SpeckleNoise(NoiseModel):
    """Multiplicative noise: ``x + x * n`` with ``n ~ N(0, var)``."""

    var: Param = 0.1
    kind: ClassVar[str] = "speckle"
    limits: ClassVar = {"var": (0.0, 10.0, "variance of the multiplicative factor")}

    def _apply(self, clean: np.ndarray, rng: np.random.Generator, var: float) -> np.ndarray:
        return clean + clean * (math.sqrt(var) * rng.standard_normal(clean.shape, dtype=np.float32))


@dataclass(frozen=True)
class MixedNoise(NoiseModel):
    """Poisson (peak; 0 = off), then Gaussian (sigma), then impulse (amount, salt): a camera-like mix."""

    sigma: Param = 10.0
    peak: Param = 100.0
    amount: Param = 0.01
    salt: Param = 0.5
    kind: ClassVar[str] = "mixed"
    required: ClassVar[int] = 0
    limits: ClassVar = {"sigma": (0.0, 255.0, "Gaussian standard deviation on the 0-255 scale"),
                        "peak": (0.0, 1e6, "Poisson photon count at intensity 1; 0 turns it off"),
                        "amount": (0.0, 1.0, "fraction of impulse-corrupted samples"),
                        "salt": (0.0, 1.0, "share of impulses set to 1")}
    weaker_high: ClassVar = frozenset({"peak"})

    def _apply(self, clean: np.ndarray, rng: np.random.Generator, sigma: float, peak: float,
               amount: float, salt: float) -> np.ndarray:
        noisy = clean
        if peak > 0:
            noisy = (rng.poisson(np.clip(clean, 0, None) * peak) / peak).astype(np.float32)
        if sigma > 0:
            noisy = noisy + (sigma / 255) * rng.standard_normal(clean.shape, dtype=np.float32)
        if amount > 0:
            noisy = _impulse(noisy, rng, amount, salt)
        return noisy

    @property
    def level(self) -> float:
        lo, hi = _bounds(self.sigma)
        return (lo + hi) / 2.0


@dataclass(frozen=True)
class RicianNoise(NoiseModel):
    """Magnitude-MRI noise: ``|x + n1 + i n2|`` with n1, n2 ~ N(0, (sigma/255)^2): biased upward in dark areas."""

    sigma: Param = 10.0
    kind: ClassVar[str] = "rician"
    limits: ClassVar = {"sigma": (0.0, 255.0, "standard deviation of each quadrature channel, 0-255 scale")}

    def _apply(self, clean: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
        s = sigma / 255
        real = clean + s * rng.standard_normal(clean.shape, dtype=np.float32)
        imag = s * rng.standard_normal(clean.shape, dtype=np.float32)
        return np.hypot(real, imag)


def rician_moments(signal: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of Rician noise of scale ``s`` on ``signal`` (both on the same scale): the
    closed forms through the Laguerre polynomial L_1/2, for tests and bias correction."""
    from scipy.special import i0e, i1e

    t = -np.asarray(signal, dtype=np.float64) ** 2 / (2 * s * s)
    # L_1/2(t) = exp(t/2) ((1 - t) I0(-t/2) - t I1(-t/2)); i0e/i1e carry the exp factor stably
    lag = (1 - t) * i0e(-t / 2) - t * i1e(-t / 2)
    mean = s * np.sqrt(np.pi / 2) * lag
    return mean, 2 * s * s + np.asarray(signal, dtype=np.float64) ** 2 - mean ** 2


@dataclass(frozen=True)
class PoissonGaussianNoise(NoiseModel):
    """Fluorescence-microscopy noise: ``x - s + gain * Poisson(s / gain) + N(0, (sigma/255)^2)``, s = max(x - offset, 0).

    Mean ``x``, variance ``gain * max(x - offset, 0) + (sigma/255)^2`` on the 0-1 scale (gain: intensity per
    photo-electron, 0 = no shot noise; offset: the camera's dark level, no shot noise below it)."""

    gain: Param = 0.01
    sigma: Param = 5.0
    offset: Param = 0.0
    kind: ClassVar[str] = "poisson-gaussian"
    required: ClassVar[int] = 2
    limits: ClassVar = {"gain": (0.0, 1.0, "intensity per photo-electron on the 0-1 scale; 0 = no shot noise"),
                        "sigma": (0.0, 255.0, "read-noise standard deviation on the 0-255 scale"),
                        "offset": (0.0, 1.0, "dark level on the 0-1 scale")}

    def _apply(self, clean: np.ndarray, rng: np.random.Generator, gain: float, sigma: float,
               offset: float) -> np.ndarray:
        signal = np.clip(clean - offset, 0, None)  # photo-electrons come from above the dark level only
        shot = gain * rng.poisson(signal / gain) - signal if gain > 0 else 0.0
        return (clean + shot + (sigma / 255) * rng.standard_normal(clean.shape)).astype(np.float32)


@dataclass(frozen=True)
class CameraNoise(NoiseModel):
    """Real camera noise: unprocess to raw, shot + read noise, camera pipeline and JPEG (camera_pipeline).

    ``shot`` is the raw shot-noise gain, drawn log-uniformly in its range (Brooks et al.: 1e-4 for a
    low ISO to 1.2e-2 for a very high one); read noise follows it. ``quality`` 0 skips JPEG. The
    noise-free reference through the same camera is :meth:`sample_pair`'s target."""

    shot: Param = (1e-4, 1.2e-2)
    quality: Param = (75.0, 98.0)
    sharpen: Param = (0.0, 1.0)
    chroma: Param = (0.0, 4.0)
    luma: Param = (0.0, 1.5)
    refsharpen: Param = 1.0
    refblur: Param = 0.0
    kind: ClassVar[str] = "camera"
    required: ClassVar[int] = 0
    limits: ClassVar = {"shot": (1e-6, 0.1, "raw shot-noise gain, drawn log-uniformly"),
                        "quality": (0.0, 100.0, "JPEG quality; 0 = no JPEG"),
                        "sharpen": (0.0, 3.0, "in-camera unsharp-mask amount"),
                        "chroma": (0.0, 8.0, "in-camera chroma noise reduction, blur sigma in pixels"),
                        "luma": (0.0, 4.0, "in-camera luma noise reduction, blur sigma in pixels"),
                        "refsharpen": (0.0, 1.0, "share of the sharpening the training reference gets"),
                        "refblur": (0.0, 2.0, "Gaussian blur sigma (pixels) of the training reference")}
    weaker_high: ClassVar = frozenset({"quality"})

    def sample_pair(self, clean: np.ndarray, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, float | None]:
        """(noisy, reference, level): the reference is the clean image through the same camera."""
        from imdenoise.noise.camera_pipeline import random_params, simulate

        clean = np.asarray(clean, dtype=np.float32)
        lo, hi = _bounds(self.shot)
        shot = lo if lo == hi else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        quality = int(round(_draw(self.quality, rng)))
        params = random_params(rng, shot, quality, _draw(self.sharpen, rng), _draw(self.chroma, rng),
                               _draw(self.luma, rng), _draw(self.refsharpen, rng), _draw(self.refblur, rng))
        gray = clean.ndim == 3 and clean.shape[2] == 1
        rgb = np.repeat(clean, 3, axis=2) if gray else clean
        noisy, reference = simulate(rgb, params, rng)
        if gray:  # a gray photo: the luma of the colour one
            noisy, reference = rgb_to_gray(noisy)[..., None], rgb_to_gray(reference)[..., None]
        return noisy, reference, self._level(reference, noisy, {})

    def sample(self, clean: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float | None]:
        noisy, _, level = self.sample_pair(clean, rng)
        return noisy, level

    @property
    def level(self) -> float:
        """The geometric middle of the shot range, times 1000 (the benchmark seeding rule's level)."""
        lo, hi = _bounds(self.shot)
        return 1000.0 * math.sqrt(lo * hi)


NOISE_KINDS: dict[str, type[NoiseModel]] = {
    cls.kind: cls for cls in (GaussianNoise, PoissonNoise, SaltPepperNoise, SpeckleNoise, MixedNoise, RicianNoise,
                              PoissonGaussianNoise, CameraNoise)
}
_ALIASES = {"awgn": "gaussian", "gauss": "gaussian", "salt_pepper": "saltpepper", "sp": "saltpepper",
            "s&p": "saltpepper", "impulse": "saltpepper", "shot": "poisson", "rice": "rician",
            "poisson_gaussian": "poisson-gaussian", "poissongaussian": "poisson-gaussian", "pg": "poisson-gaussian"}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_VALUE_RE = re.compile(rf"^\s*({_NUMBER})\s*(?:-\s*({_NUMBER})\s*)?$")


def valid_forms() -> str:
    """Human-readable list of accepted spec forms, for error messages and help texts."""
    lines = []
    for kind, cls in NOISE_KINDS.items():
        names = [f.name for f in fields(cls)]
        pos = "".join(f":<{n}>" if i < cls.required else f"[:<{n}>]" for i, n in enumerate(names))
        ranges = ", ".join(f"{n} in [{lo:g}, {hi:g}]" for n, (lo, hi, _) in cls.limits.items())
        lines.append(f"{kind}{pos} ({ranges})")
    return ("; ".join(lines) + ". Named form: KIND:name=value,...; a value 'a-b' is drawn uniformly "
            "per call (e.g. gaussian:0-55)")


def _value(text: str, spec: str) -> Param:
    m = _VALUE_RE.match(text)
    if not m:
        raise NoiseSpecError(f"bad noise spec {spec!r}: {text!r} is not a number or a range 'a-b'. "
                             f"Valid forms: {valid_forms()}")
    lo = float(m.group(1))
    return (lo, float(m.group(2))) if m.group(2) is not None else lo


def parse_noise(spec: "str | NoiseModel") -> NoiseModel:
    """A noise model from a spec such as ``gaussian:25``, ``gaussian:0-55``, ``mixed:sigma=10,peak=50``."""
    if isinstance(spec, NoiseModel):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise NoiseSpecError(f"empty noise spec {spec!r}. Valid forms: {valid_forms()}")
    head, _, rest = spec.strip().partition(":")
    kind = _ALIASES.get(head.strip().lower(), head.strip().lower())
    if kind not in NOISE_KINDS:
        raise NoiseSpecError(f"unknown noise kind {head!r} in spec {spec!r}; valid kinds: "
                             f"{', '.join(NOISE_KINDS)}. Valid forms: {valid_forms()}")
    cls = NOISE_KINDS[kind]
    names = [f.name for f in fields(cls)]
    items = [t for t in re.split(r"[:,]", rest)] if rest.strip() else []
    values: dict[str, Param] = {}
    for i, item in enumerate(items):
        if "=" in item:
            name, _, text = item.partition("=")
            name = name.strip().lower()
            if name not in names:
                raise NoiseSpecError(f"bad noise spec {spec!r}: {kind} has no parameter {name!r} "
                                     f"(parameters: {', '.join(names)})")
        else:
            if values and any("=" in t for t in items[:i]):
                raise NoiseSpecError(f"bad noise spec {spec!r}: positional value {item!r} after a named one")
            if i >= len(names):
                raise NoiseSpecError(f"bad noise spec {spec!r}: {kind} takes at most {len(names)} values "
                                     f"({', '.join(names)}). Valid forms: {valid_forms()}")
            name, text = names[i], item
        if name in values:
            raise NoiseSpecError(f"bad noise spec {spec!r}: {name} given twice")
        values[name] = _value(text, spec)
    missing = [n for n in names[: cls.required] if n not in values]
    if missing:
        raise NoiseSpecError(f"noise spec {spec!r} needs {', '.join(missing)}. Valid forms: {valid_forms()}")
    try:
        return cls(**values)
    except NoiseSpecError as e:
        raise NoiseSpecError(f"bad noise spec {spec!r}: {e}") from None


def parse_noise_levels(spec: str) -> list[NoiseModel]:
    """Several models from one list spec: ``gaussian:15,25,50`` -> three; anything else -> [parse_noise]."""
    head, _, rest = spec.partition(":")
    parts = [p for p in rest.split(",")]
    if len(parts) > 1 and not any("=" in p or ":" in p for p in parts):
        return [parse_noise(f"{head}:{p}") for p in parts]
    return [parse_noise(spec)]


def benchmark_rng(level: float, index: int) -> np.random.Generator:
    """The protocol's generator: ``default_rng(1000 * level + index)`` with 1000 * level made an int."""
    return np.random.default_rng(int(round(1000 * float(level))) + int(index))


def benchmark_noisy(clean: np.ndarray, sigma: float, index: int) -> np.ndarray:
    """BENCHMARK.md's AWGN: clean + (sigma / 255) * N(0, 1) from benchmark_rng(sigma, index); unclipped."""
    clean = np.asarray(clean, dtype=np.float32)
    rng = benchmark_rng(sigma, index)
    return clean + (sigma / 255) * rng.standard_normal(clean.shape, dtype=np.float32)
