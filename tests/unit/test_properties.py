"""Property-based tests (hypothesis): IO round trips, damaged files, noise specs, configs, CLI argv.

Each property is the promise to users: an image written is read back as it was; a damaged file,
a random noise spec, a random config or override, a random command line gives an `ImDenoiseError`
(or a usage message), never another exception or a traceback. Example counts are kept small so
the file runs in well under a minute on a loaded 2-core machine.
"""

from __future__ import annotations

import io
import string
from pathlib import Path

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image as PILImage

from imdenoise.cli.main import main as cli_main
from imdenoise.errors import ConfigError, ImageReadError, NoiseSpecError
from imdenoise.io.images import read_image, write_image
from imdenoise.noise.models import NOISE_KINDS, parse_noise
from imdenoise.training.config import apply_overrides, load_config

pytestmark = pytest.mark.timeout(120)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _scratch(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    return tmp_path_factory.mktemp(name)


# ----------------------------------------------------------------------------- image IO round trips

FORMATS = {  # extension -> sample types it stores exactly, and whether it stores alpha
    ".png": (("uint8", "uint16"), True),
    ".bmp": (("uint8",), False),
    ".tif": (("uint8", "uint16", "float32"), True),
    ".npy": (("uint8", "uint16", "float32"), True),
}


@st.composite
def image_arrays(draw) -> tuple[str, np.ndarray]:
    ext = draw(st.sampled_from(sorted(FORMATS)))
    dtypes, alpha_ok = FORMATS[ext]
    dtype = draw(st.sampled_from(dtypes))
    channels = draw(st.sampled_from([1, 3] + ([2, 4] if alpha_ok else [])))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    if dtype == "float32":
        elements = st.floats(-4, 4, width=32, allow_nan=False)
    else:
        elements = st.integers(0, np.iinfo(dtype).max)
    shape = (h, w) if channels == 1 and draw(st.booleans()) else (h, w, channels)
    return ext, draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))


@FAST
@given(case=image_arrays())
def test_write_then_read_is_exact(tmp_path_factory: pytest.TempPathFactory, case) -> None:
    ext, arr = case
    path = _scratch(tmp_path_factory, "rt") / f"img{ext}"
    write_image(path, arr)
    img = read_image(path)
    hwc = arr[..., None] if arr.ndim == 2 else arr
    color = hwc[..., :-1] if hwc.shape[-1] in (2, 4) else hwc
    assert img.dtype == arr.dtype and img.data.shape == color.shape and img.data.dtype == np.float32
    scale = {"uint8": 255.0, "uint16": 65535.0}.get(arr.dtype.name)
    if scale:
        np.testing.assert_array_equal(np.round(img.data * scale).astype(arr.dtype), color)
    else:
        np.testing.assert_array_equal(img.data, color)  # float: kept as stored, never clipped
    if hwc.shape[-1] in (2, 4):
        got = img.alpha * scale if scale else img.alpha
        np.testing.assert_array_equal(np.round(got) if scale else got, hwc[..., -1])
    else:
        assert img.alpha is None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(h=st.integers(1, 40), w=st.integers(1, 40), color=st.booleans(), seed=st.integers(0, 2**16))
def test_jpeg_round_trip_is_close(tmp_path_factory: pytest.TempPathFactory, h, w, color, seed) -> None:
    rng = np.random.default_rng(seed)
    base = rng.random((1, 1, 3 if color else 1)) * 0.6 + 0.2  # smooth content: JPEG's error stays small
    arr = np.broadcast_to(base, (h, w, base.shape[-1])).astype(np.float32)
    path = _scratch(tmp_path_factory, "jpg") / "x.jpg"
    write_image(path, arr)
    img = read_image(path)
    assert img.data.shape == arr.shape and img.dtype == np.uint8
    assert np.abs(img.data - arr).max() < 0.05


# ----------------------------------------------------------------------------- damaged files


def _sources() -> dict[str, bytes]:
    import imagecodecs

    rng = np.random.default_rng(7)
    rgb = (rng.random((20, 27, 3)) * 255).astype(np.uint8)
    out = {}
    for ext, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".bmp", "BMP")):
        bio = io.BytesIO()
        PILImage.fromarray(rgb).save(bio, format=fmt)
        out[ext] = bio.getvalue()
    out["16.png"] = imagecodecs.png_encode((rng.random((9, 11, 4)) * 65535).astype(np.uint16))
    for ext, kw in ((".tif", {}), ("z.tif", {"compression": "zlib", "tile": (16, 16)}),
                    ("f.tif", {"photometric": "rgb"})):
        bio = io.BytesIO()
        data = rgb.astype(np.float32) / 255 if ext == "f.tif" else rgb
        tifffile.imwrite(bio, data, **kw)
        out[ext] = bio.getvalue()
    bio = io.BytesIO()
    np.save(bio, rgb)
    out[".npy"] = bio.getvalue()
    return out


SOURCES = _sources()


@st.composite
def damaged(draw) -> tuple[str, bytes]:
    key = draw(st.sampled_from(sorted(SOURCES)))
    data = bytearray(SOURCES[key])
    kind = draw(st.sampled_from(["truncate", "header", "anywhere"]))
    if kind == "truncate":
        data = data[: draw(st.integers(1, len(data) - 1))]
    else:
        hi = min(len(data), 200) if kind == "header" else len(data)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, hi - 1))] = draw(st.integers(0, 255))
    return key, bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=damaged())
def test_damaged_files_read_or_raise_image_read_error(tmp_path_factory: pytest.TempPathFactory, case) -> None:
    key, data = case
    path = _scratch(tmp_path_factory, "dmg") / ("x" + key[-4:])
    path.write_bytes(data)
    try:
        img = read_image(path)
    except ImageReadError as exc:
        assert str(path) in str(exc)
    else:
        assert img.data.ndim == 3 and img.data.dtype == np.float32


# ----------------------------------------------------------------------------- noise specs

SPEC_ALPHABET = string.ascii_lowercase + string.digits + ":,=.-+eE &_ \t\n" + "é∞"


@settings(max_examples=100, deadline=None)
@given(spec=st.one_of(
    st.text(alphabet=SPEC_ALPHABET, max_size=40),
    st.text(max_size=30),
    st.builds(lambda k, r: f"{k}{r}", st.sampled_from(sorted(NOISE_KINDS) + ["awgn", "sp", "s&p"]),
              st.text(alphabet=":,=.-0123456789eE sigmapeakountvrl", max_size=30)),
))
def test_random_noise_specs_raise_only_noise_spec_error(spec: str) -> None:
    try:
        model = parse_noise(spec)
    except NoiseSpecError:
        return
    assert parse_noise(model.spec) == model


def _param_values(lo: float, hi: float):
    finite = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return st.one_of(finite, st.tuples(finite, finite).map(lambda t: (min(t), max(t))))


@st.composite
def valid_models(draw):
    kind = draw(st.sampled_from(sorted(NOISE_KINDS)))
    cls = NOISE_KINDS[kind]
    values = {name: draw(_param_values(lo, hi)) for name, (lo, hi, _) in cls.limits.items()}
    return cls(**values)


@settings(max_examples=100, deadline=None)
@given(model=valid_models(), named=st.booleans())
def test_valid_noise_models_round_trip_through_spec(model, named: bool) -> None:
    assert parse_noise(model.spec) == model
    if not named:  # the positional form of the same values parses to the same model
        values = model.spec.split(":", 1)[1].split(",")
        positional = f"{model.kind}:" + ":".join(v.split("=", 1)[1] for v in values)
        assert parse_noise(positional) == model


# ----------------------------------------------------------------------------- configs

_KEYS = ["name", "mode", "output_dir", "model", "data", "optim", "log", "selfsup", "architecture", "config",
         "train", "noise", "patch_size", "batch_size", "steps", "lr", "widths", "channels", "paired",
         "ckpt_every", "precision", "!!python/object", "__class__", "", "x" * 300]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                     st.text(max_size=20), st.sampled_from(["unet", "supervised", "bf16", "gaussian:25", "/tmp"]))
_values = st.recursive(_scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                          st.dictionaries(st.sampled_from(_KEYS), kids, max_size=4)),
                       max_leaves=12)
_raw_configs = st.dictionaries(st.sampled_from(_KEYS), _values, max_size=6)


@settings(max_examples=100, deadline=None)
@given(raw=_raw_configs)
def test_random_config_dicts_raise_only_config_error(raw) -> None:
    try:
        load_config(raw=raw)
    except ConfigError:
        pass


_override_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda k, v: f"{k}={v}",
              st.lists(st.sampled_from(_KEYS), min_size=1, max_size=4).map(".".join),
              st.text(alphabet=string.printable, max_size=30)),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["optim.steps", "data.patch_size", "model.config.widths",
                                                        "data", "optim.lr.x", "log"]),
              st.sampled_from(["[8, 16]", "{a: 1}", "!!python/object/apply:os.system [echo hi]", "1e400",
                               "null", "[", "'", "- a\n- b", "&a [*a]", "*x", ".nan"])),
)


@settings(max_examples=100, deadline=None)
@given(overrides=st.lists(_override_text, max_size=4))
def test_random_overrides_raise_only_config_error(overrides) -> None:
    raw = {"data": {"train": ["/nonexistent"]}, "optim": {"steps": 5}}
    try:
        load_config(raw=raw, overrides=overrides)
    except ConfigError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(max_size=200),
                      st.sampled_from(["a: [", "- 1\n- 2", "!!python/object/apply:os.system ['true']", "? x",
                                       "data: !!binary AAAA", "&a [*a, *a]", "data:\n  train: 5", "\x00", "---\n---"])))
def test_random_yaml_files_raise_only_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = _scratch(tmp_path_factory, "yaml") / "c.yaml"
    try:
        path.write_text(text)
    except UnicodeEncodeError:
        assume(False)
    try:
        load_config(path)
    except ConfigError:
        pass


def test_overrides_apply_to_nested_sections() -> None:
    raw = apply_overrides({}, ["optim.steps=7", "model.config.widths=[8, 16]", "log.tensorboard=false"])
    assert raw == {"optim": {"steps": 7}, "model": {"config": {"widths": [8, 16]}}, "log": {"tensorboard": False}}
    cfg = load_config(raw={"data": {"train": ["x"]}}, overrides=["optim.lr=1e-3"])  # YAML 1.1 string, coerced
    assert cfg.optim.lr == 1e-3


# ----------------------------------------------------------------------------- CLI argv

_COMMANDS = ["noise", "metrics", "denoise", "models", "eval", "train", "zeroshot", "export", "prune",
             "bogus", "--help", "--version", ""]
_TOKENS = ["-o", "--output", "--method", "--model", "--sigma", "-s", "--noise", "--seed", "--set", "--resume",
           "--tile", "--overlap", "--dtype", "--device", "--precision", "--backend", "--threads", "--suffix",
           "--overwrite", "--arch", "--dataset", "--limit", "--json", "--help",
           "mean", "median", "nope", "default", "gaussian:25", "gaussian:abc", "25", "-1", "nan", "inf", "1e999",
           "0", "uint16", "float64", "cuda", "bf16", "onnxruntime", "x=1", "optim.steps=abc", ".png",
           "missing.png", "out.png", "out", "-", "--", "*.png", "[", "é", "\x00x"]


@st.composite
def argvs(draw, image: str):
    cmd = draw(st.sampled_from(_COMMANDS))
    rest = draw(st.lists(st.one_of(st.sampled_from(_TOKENS + [image]), st.text(max_size=8)), max_size=7))
    return ([cmd] if cmd else []) + rest


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(3)
    PILImage.fromarray((rng.random((24, 24)) * 255).astype(np.uint8)).save(folder / "img.png")
    return folder


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_argv_never_gives_a_traceback(cli_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture, data) -> None:
    argv = data.draw(argvs(str(cli_dir / "img.png")))  # NUL bytes included: a clear error, not a traceback
    monkeypatch.chdir(cli_dir)  # anything written lands in the scratch folder
    try:
        cli_main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, err)
    assert code in (0, 1, 2, None), (argv, code, err)  # 2: user or usage error (message or help shown)


def test_exit_codes_are_documented_ones(cli_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """Sanity for the property above: a user error exits 2 with `error: ...`, a usage error exits 2."""
    for argv, fragment in ((["denoise", "missing.png", "-o", "x.png", "--method", "mean"], "error: missing.png"),
                           (["noise", str(cli_dir / "img.png"), "-o", "y.png", "--noise", "gaussian:abc"],
                            "error: bad noise spec"),
                           (["denoise", "--sigma", "abc"], "Invalid value")):
        with pytest.raises(SystemExit) as info:
            cli_main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and fragment in err and "Traceback" not in err, err
