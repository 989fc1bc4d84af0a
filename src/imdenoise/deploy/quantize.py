"""int8 quantization of an exported ONNX denoiser with onnxruntime (static calibrated, or dynamic).

Static quantization (QDQ, per-channel int8 weights, uint8 activations) is calibrated on noisy patches
of a few *training* images; only convolutions are quantized, so the residual subtraction, the skip
additions and the padding stay in float32 and the output is not rounded to 8 bits. By default the
whole first level of the U-Net (head, tail and the first encoder / last decoder stage, at the highest
resolution) also stays float32 (`keep_float="level0"`): a per-layer sensitivity scan on held-out
training images put nearly all of the int8 loss there; the coarser levels are quantized.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from imdenoise.deploy.options import INT8
from imdenoise.errors import ImDenoiseError

log = logging.getLogger(__name__)

DEFAULT_CALIB_DIRS = {1: "train/train400", 3: "train/cbsd432"}
CALIB_SIGMAS = (5.0, 15.0, 25.0, 35.0, 50.0)


def default_calibration_dir(channels: int) -> Path:
    """The standard training set matching the channel count, under $IMDENOISE_DATASETS (never a test set)."""
    from imdenoise.paths import datasets_root

    return datasets_root() / DEFAULT_CALIB_DIRS.get(channels, DEFAULT_CALIB_DIRS[3])


def calibration_source(calib_dir: str | Path | None, channels: int, n_images: int) -> tuple[Path, int]:
    """(folder, crops per image): the given folder, else the bundled sample photos cut into n_images crops.

    Checked before anything is exported, so that a bad folder fails before a file is written."""
    from imdenoise.io.datasets import list_images
    from imdenoise.paths import ASSETS_DIR

    if calib_dir is not None:
        folder = Path(calib_dir)
        if "test" in folder.parts:
            raise ImDenoiseError(f"{folder}: refusing to calibrate on a test set; use training images")
        list_images(folder)  # a missing or empty folder: its own one-line error
        return folder, 1
    bundled = len(list_images(ASSETS_DIR))
    return ASSETS_DIR, max(1, -(-n_images // bundled))


def calibration_batches(folder: str | Path, channels: int, n_images: int = 8, patch: int = 128,
                        seed: int = 0, sigmas: Sequence[float] = CALIB_SIGMAS,
                        per_image: int = 1) -> list[dict[str, np.ndarray]]:
    """Noisy patches (`per_image` per image, sigma cycling over `sigmas`) of the first `n_images` files."""
    from imdenoise.io.datasets import list_images, load_images
    from imdenoise.training.datasets import random_crop

    folder = Path(folder)
    images = load_images(list_images(folder)[:n_images], channels)
    rng = np.random.default_rng(seed)
    out = []
    k = 0
    for img in images:
        for _ in range(per_image):
            (crop,) = random_crop(rng, [img], patch)
            clean = crop.astype(np.float32) / 255.0
            sigma = float(sigmas[k % len(sigmas)])
            k += 1
            noisy = clean + (sigma / 255.0) * rng.standard_normal(clean.shape, dtype=np.float32)
            out.append({"input": np.ascontiguousarray(noisy.transpose(2, 0, 1)[None]),
                        "sigma": np.array([sigma / 255.0], dtype=np.float32)})
    return out


def _reader(batches: list[dict[str, np.ndarray]], input_names: Sequence[str]):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        """Feeds the calibration batches once each."""

        def __init__(self) -> None:
            self._it = iter([{k: v for k, v in b.items() if k in input_names} for b in batches])

        def get_next(self):  # noqa: ANN201 - onnxruntime's interface
            return next(self._it, None)

    return Reader()


CALIBRATIONS = ("minmax", "percentile", "entropy")


KEEP_FLOAT = ("none", "ends", "level0", "encoder0", "decoder0")


def float_convs(path: Path, keep_float: str = "level0") -> list[str]:
    """Conv nodes left in float32: none; the first and last ('ends': the image-facing layers); or
    'level0': also every conv of the U-Net's first encoder and last decoder stage (the highest-resolution
    level, named /encoders.0/ and /decoders.0/ by the exporter; other nets fall back to 'ends')."""
    import onnx

    if keep_float not in KEEP_FLOAT:
        raise ImDenoiseError(f"unknown keep-float choice {keep_float!r}; choose from {', '.join(KEEP_FLOAT)}")
    convs = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    if keep_float == "none" or len(convs) <= 2:
        return []
    keep = [convs[0], convs[-1]]
    stages = {"level0": ("/encoders.0/", "/decoders.0/"), "encoder0": ("/encoders.0/",),
              "decoder0": ("/decoders.0/",)}.get(keep_float, ())
    keep += [c for c in convs[1:-1] if any(st in c for st in stages)]
    return keep


def _quantize(method: str, src: Path, dst: Path, reader: object, calibration: str = "percentile",
              keep_float: str = "level0", percentile: float = 99.999) -> None:
    """Run onnxruntime's static (QDQ, per-channel, Conv only) or dynamic quantizer."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static

    if method == "static":
        if calibration not in CALIBRATIONS:
            raise ImDenoiseError(f"unknown calibration {calibration!r}; choose from {', '.join(CALIBRATIONS)}")
        cal = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}[calibration]
        quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=cal, nodes_to_exclude=float_convs(src, keep_float) or None,
                        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                       "CalibPercentile": percentile})
    elif method == "dynamic":
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["Conv"], weight_type=QuantType.QUInt8)
    else:
        raise ImDenoiseError(f"unknown quantization method {method!r}; choose 'static' or 'dynamic'")


@dataclass
class QuantizeReport:
    """What was quantized, how, and how far the int8 output is from fp32 on the calibration patches."""

    path: Path
    method: str
    max_abs_diff: float
    psnr_vs_fp32: float
    bytes: int


def quantize_int8(fp32_path: str | Path, out: str | Path, *,
                  method: Literal["static", "dynamic"] = INT8.method,  # type: ignore[assignment]
                  calib_dir: str | Path | None = None, n_images: int = INT8.images, patch: int = 128,
                  calibration: str = INT8.calibration, keep_float: str = "level0", percentile: float = 99.999,
                  sigmas: Sequence[float] = CALIB_SIGMAS, per_image: int = 1) -> QuantizeReport:
    """int8 copy of an exported fp32 ONNX model (metadata kept), written atomically."""
    import onnx

    from imdenoise.atomic import write_bytes_atomic
    from imdenoise.denoisers.onnx import onnx_feeds, onnx_session, read_onnx_info

    fp32_path, out = Path(fp32_path), Path(out)
    if keep_float not in KEEP_FLOAT:
        raise ImDenoiseError(f"unknown keep-float choice {keep_float!r}; choose from {', '.join(KEEP_FLOAT)}")
    _, meta = read_onnx_info(fp32_path)
    channels = int(meta.get("imdenoise.in_channels", 1))
    folder, crops = calibration_source(calib_dir, channels, n_images)
    batches = calibration_batches(folder, channels, n_images, patch, sigmas=sigmas,
                                  per_image=per_image if calib_dir is not None else crops)
    names = [i.name for i in onnx_session(fp32_path).get_inputs()]
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        except Exception as exc:  # noqa: BLE001 - pre-processing is an optimisation only
            log.info("quantization pre-processing skipped (%s)", str(exc).splitlines()[0])
            pre = fp32_path
        q = Path(tmp) / "int8.onnx"
        root = logging.getLogger()
        level, root.level = root.level, max(root.level, logging.WARNING)  # onnxruntime logs per tensor at INFO
        try:
            try:
                _quantize(method, pre, q, _reader(batches, names), calibration, keep_float, percentile)
            except ValueError as exc:  # histogram calibration fails on a constant tensor: fall back to minmax
                if method != "static" or calibration == "minmax":
                    raise
                log.warning("%s calibration failed (%s); using minmax", calibration, str(exc).splitlines()[0])
                calibration = "minmax"
                _quantize(method, pre, q, _reader(batches, names), calibration, keep_float, percentile)
        finally:
            root.setLevel(level)
        proto = onnx.load(str(q))
    keep = {p.key: p.value for p in proto.metadata_props}
    keep.update({k: v for k, v in meta.items()})
    keep["imdenoise.precision"] = "int8"
    floats = {"none": "", "ends": ", first/last conv float32",
              "level0": ", first level (head, tail, first encoder and last decoder stage) float32",
              "encoder0": ", head, tail and first encoder stage float32",
              "decoder0": ", head, tail and last decoder stage float32"}[keep_float]
    keep["imdenoise.quantization"] = (f"static {calibration}"
                                      + (f" {percentile:g}" if calibration == "percentile" else "")
                                      + f", calibrated on {len(batches)} patches of "
                                      + (f"{n_images} images of {folder.name}" if calib_dir is not None
                                         else "the bundled sample photos")
                                      + floats if method == "static" else "dynamic")
    del proto.metadata_props[:]
    for k, v in keep.items():
        e = proto.metadata_props.add()
        e.key, e.value = k, v
    data = proto.SerializeToString()
    s32, s8 = onnx_session(fp32_path), onnx_session(data)
    diffs, mses = [], []
    for b in batches[:4]:
        ref = s32.run(None, onnx_feeds(s32, b["input"], b["sigma"]))[0]
        got = s8.run(None, onnx_feeds(s8, b["input"], b["sigma"]))[0]
        diffs.append(float(np.abs(got - ref).max()))
        mses.append(float(np.mean((got - ref) ** 2)))
    psnr = float(10 * np.log10(1.0 / max(float(np.mean(mses)), 1e-12)))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, data)
    log.info("wrote %s (%s int8; max |int8 - fp32| %.3g, PSNR int8 vs fp32 %.1f dB)", out, method, max(diffs), psnr)
    return QuantizeReport(out, method, max(diffs), psnr, len(data))
