"""The Trainer: learns, resumes exactly, validates configs, reports NaN, runs data-parallel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imdenoise.errors import ConfigError
from imdenoise.training.config import load_config
from imdenoise.training.trainer import Trainer, TrainingDivergedError, lr_factor

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory, gray_image: np.ndarray) -> Path:
    """Six 64x64 crops of a real image as PNG files (4 train + 2 held out)."""
    folder = tmp_path_factory.mktemp("train_images")
    u8 = np.round(gray_image[..., 0] * 255).astype(np.uint8)
    for k in range(6):
        y, x = 40 * (k % 3), 60 * (k // 3)
        Image.fromarray(u8[y:y + 64, x:x + 64]).save(folder / f"img{k}.png")
    return folder


def _raw(image_dir: Path, out: Path, **optim) -> dict:
    return {
        "name": "tiny", "output_dir": str(out),
        "model": {"architecture": "unet", "config": {"widths": [8, 16]}},
        "data": {"train": [str(image_dir)], "channels": 1, "noise": ["gaussian:25"], "patch_size": 32,
                 "batch_size": 4, "workers": 0, "holdout": 2, "val_noise": "gaussian:25", "val_limit": 2},
        "optim": {"steps": 20, "lr": 3e-3, "warmup_steps": 0, "precision": "fp32", "threads": 1, **optim},
        "log": {"every": 5, "val_every": 20, "ckpt_every": 5, "tensorboard": False, "progress": False},
    }


def _params(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_short_run_learns_and_beats_noisy_input(image_dir: Path, tmp_path: Path) -> None:
    raw = _raw(image_dir, tmp_path / "run")
    raw["optim"].update(steps=120, ema=None)
    raw["log"].update(val_every=120, tensorboard=True)
    trainer = Trainer(load_config(raw=raw))
    weights = trainer.fit()
    losses = [r["loss"] for r in map(eval_json, (tmp_path / "run" / "train_log.jsonl").read_text().splitlines())
              if "loss" in r]
    assert losses[-1] < 0.7 * losses[0]
    val = trainer.history[-1]
    assert val["psnr"] > val["noisy_psnr"] + 2.0, val
    assert weights is not None and weights.is_file()
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def eval_json(line: str) -> dict:
    import json

    return json.loads(line)


def test_stop_and_resume_equals_uninterrupted(image_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(load_config(raw=_raw(image_dir, tmp_path / "a")))
    straight.fit()
    first = Trainer(load_config(raw=_raw(image_dir, tmp_path / "b")))
    assert first.fit(stop_at=10) is None
    resumed = Trainer(load_config(raw=_raw(image_dir, tmp_path / "b")), resume=True)
    assert resumed.step == 10
    resumed.fit()
    for a, b in zip(_params(straight), _params(resumed)):
        assert torch.allclose(a, b, atol=1e-6), (a - b).abs().max()


def test_refuses_to_clobber_existing_run(image_dir: Path, tmp_path: Path) -> None:
    Trainer(load_config(raw=_raw(image_dir, tmp_path / "r", steps=5))).fit()
    with pytest.raises(ConfigError, match="already exists"):
        Trainer(load_config(raw=_raw(image_dir, tmp_path / "r", steps=5)))


def test_bad_configs_name_the_field(image_dir: Path, tmp_path: Path) -> None:
    raw = _raw(image_dir, tmp_path / "x")
    raw["optim"]["lrr"] = 1
    with pytest.raises(ConfigError, match="optim.lrr: unknown key"):
        load_config(raw=raw)
    raw = _raw(image_dir, tmp_path / "x")
    raw["optim"]["lr"] = -1
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(raw=raw)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(raw=_raw(image_dir, tmp_path / "x"), overrides=["optim.lr"])
    cfg = load_config(raw=_raw(image_dir, tmp_path / "x"), overrides=["optim.lr=5e-4", "data.batch_size=2"])
    assert cfg.optim.lr == 5e-4 and cfg.data.batch_size == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_nan_loss_is_reported_with_step(image_dir: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_config(raw=_raw(image_dir, tmp_path / "nan", steps=10)))
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDivergedError, match="at step 0"):
        trainer.fit()


def test_schedules() -> None:
    raw = {"data": {"train": ["x"]}, "optim": {"steps": 100, "warmup_steps": 10, "schedule": "cosine",
                                               "min_lr_ratio": 0.0}}
    cfg = load_config(raw=raw)
    assert lr_factor(cfg, 0) == pytest.approx(0.1)
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 100) == pytest.approx(0.0, abs=1e-9)
    raw["optim"].update(schedule="step", warmup_steps=0, step_size=30, gamma=0.5)
    cfg = load_config(raw=raw)
    assert [lr_factor(cfg, s) for s in (0, 29, 30, 65)] == [1.0, 1.0, 0.5, 0.25]


@pytest.mark.parametrize("mode", ["masked", "selfsupervised"])
def test_masked_and_selfsupervised_modes_improve_on_noisy(mode: str, image_dir: Path, tmp_path: Path,
                                                          gray_image: np.ndarray) -> None:
    raw = _raw(image_dir, tmp_path / mode)
    raw["mode"] = mode
    raw["optim"].update(steps=150, ema=None)
    raw["log"].update(val_every=150)
    if mode == "selfsupervised":  # train on a folder of noisy images only
        noisy_dir = tmp_path / "noisy"
        noisy_dir.mkdir()
        rng = np.random.default_rng(0)
        for p in sorted(image_dir.iterdir()):
            clean = np.asarray(Image.open(p), dtype=np.float32) / 255
            noisy = np.clip(clean + 25 / 255 * rng.standard_normal(clean.shape), 0, 1)
            Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(noisy_dir / p.name)
        raw["data"] = {**raw["data"], "train": [], "noisy": [str(noisy_dir)], "val": [str(image_dir)]}
        raw["model"]["architecture"] = "unet-blind"
        raw["selfsup"] = {"blind_spot_ratio": 0.05}
        raw["optim"]["steps"] = raw["log"]["val_every"] = 450
    trainer = Trainer(load_config(raw=raw))
    trainer.fit()
    val = trainer.history[-1]
    assert val["psnr"] > val["noisy_psnr"] + 1.0, val


def test_two_process_torchrun_gives_identical_parameters(image_dir: Path, tmp_path: Path) -> None:
    import yaml

    raw = _raw(image_dir, tmp_path / "ddp", steps=6)
    raw["data"]["batch_size"] = 2  # per rank: 2 ranks x 2 = the global batch
    raw["log"].update(val_every=6, ckpt_every=6)
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "imdenoise", "train", str(cfg_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "parameters identical on all 2 ranks" in proc.stderr
    assert (tmp_path / "ddp" / "tiny.safetensors").is_file()
    # the same run on one process with the same global batch ends with the same weights
    single = load_config(raw={**raw, "output_dir": str(tmp_path / "single"),
                              "data": {**raw["data"], "batch_size": 4}})
    trainer = Trainer(single)
    trainer.fit()
    from imdenoise.models.weights import load_model

    ddp_model, _ = load_model(tmp_path / "ddp" / "tiny.safetensors")
    for a, b in zip(ddp_model.parameters(), trainer.ema_model().parameters()):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("loader", ["train", "zeroshot"])
def test_binary_and_oversized_config_files_are_named_errors(tmp_path: Path, loader: str) -> None:
    from imdenoise.config_files import MAX_CONFIG_BYTES
    from imdenoise.denoisers import zeroshot

    load = load_config if loader == "train" else zeroshot.load_config
    png = tmp_path / "img.yaml"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ConfigError, match=r"img.yaml: not a text config file"):
        load(png)
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ConfigError, match=r"big.yaml: .* too large"):
        load(big)
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML: line 2, column 1") as info:
        load(bad)
    assert "\n" not in str(info.value)


def test_failed_start_leaves_no_run_folder(image_dir: Path, tmp_path: Path) -> None:
    raw = _raw(image_dir, tmp_path / "never")
    raw["data"]["train"] = [str(tmp_path / "no-such-folder")]
    with pytest.raises(ConfigError):
        Trainer(load_config(raw=raw))
    assert not (tmp_path / "never").exists()  # so the corrected recipe can start without --resume
    Trainer(load_config(raw=_raw(image_dir, tmp_path / "never", steps=2))).fit()


def test_checkpoints_keep_last_k_and_best_ema_and_sample_grids(image_dir: Path, tmp_path: Path) -> None:
    from imdenoise.training import checkpoints as ckpt

    raw = _raw(image_dir, tmp_path / "k", steps=20, ema=0.9)
    raw["log"].update(ckpt_every=4, val_every=10, keep_last=2, tensorboard=True, images_every=10)
    trainer = Trainer(load_config(raw=raw))
    trainer.fit()
    names = sorted(p.name for p in (tmp_path / "k" / "checkpoints").glob("ckpt-*.pt"))
    assert names == ["ckpt-00000016.pt", "ckpt-00000020.pt"]  # only the last 2 of 4, 8, ..., 20
    best = ckpt.load_checkpoint(tmp_path / "k" / "checkpoints" / "best.pt")
    best_val = max(trainer.history, key=lambda r: r["psnr"])
    assert best["step"] == best_val["step"] and best["best_psnr"] == pytest.approx(best_val["psnr"])
    # EMA weights are a decayed average: different from the raw weights, and what the export holds
    ema = best["ema"] if best["step"] == 20 else ckpt.load_checkpoint(tmp_path / "k" / "checkpoints" / "ckpt-00000020.pt")["ema"]
    raw_params = [p.detach() for p in trainer.model.parameters()]
    assert any(not torch.allclose(e, p) for e, p in zip(ema, raw_params))
    for e, p in zip(trainer.ema_model().parameters(), trainer.ema):
        assert torch.equal(e.detach(), p)
    assert sorted((tmp_path / "k" / "samples").glob("step-*.png"))  # noisy | denoised | clean grids
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "k" / "tensorboard"), size_guidance={"images": 0}).Reload()
    assert events.Tags()["images"] and {"train/loss", "train/lr", "val/psnr"} <= set(events.Tags()["scalars"])


def test_fp16_autocast_trains_with_loss_scaling(image_dir: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_config(raw=_raw(image_dir, tmp_path / "h", steps=8, precision="fp16")))
    assert trainer.scaler.is_enabled()
    trainer.fit()
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert trainer.state_dict()["scaler"]["scale"] > 0


def test_ema_warms_up_so_short_runs_do_not_keep_the_random_init(image_dir: Path, tmp_path: Path) -> None:
    trainer = Trainer(load_config(raw=_raw(image_dir, tmp_path / "e", steps=30, ema=0.999)))
    init = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.ema_decay() == pytest.approx(0.1)  # step 0: (1 + 0) / (10 + 0)
    trainer.fit()
    # without the warm-up the EMA would still be 0.999 ** 30 = 97% the random initial weights
    moved = sum(float((e - i).norm()) for e, i in zip(trainer.ema, init))
    trained = sum(float((p.detach() - i).norm()) for p, i in zip(trainer.model.parameters(), init))
    assert moved > 0.5 * trained
    trainer.step = 10_000_000
    assert trainer.ema_decay() == 0.999


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_the_hardware(image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             native: bool) -> None:
    from imdenoise import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": native)
    trainer = Trainer(load_config(raw=_raw(image_dir, tmp_path / f"auto-{native}", precision="auto")))
    assert trainer.precision == ("bf16" if native else "fp32")
    with precision.autocast(trainer.precision, trainer.device):
        assert torch.is_autocast_enabled("cpu") is native


def test_recipe_paths_are_read_from_the_recipe_folder_not_the_current_one(
        image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipe works from any folder: relative data paths from its own folder, $IMDENOISE_DATASETS
    from the environment, overrides from the current folder; a run's saved config is absolute."""
    import yaml

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    raw = _raw(image_dir, tmp_path / "run")
    raw["data"]["train"] = [os.path.relpath(image_dir, recipes)]
    raw["data"]["val"] = ["$IMDENOISE_DATASETS/val"]
    raw["model"]["init_weights"] = "gray"  # a shipped model's name stays a name
    (recipes / "r.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("IMDENOISE_DATASETS", str(tmp_path / "sets"))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(recipes / "r.yaml", ["data.noisy=[]", "data.paired=null"])
    assert Path(cfg.data.train[0]) == image_dir.resolve()
    assert cfg.data.val == [str(tmp_path / "sets" / "val")] and cfg.model.init_weights == "gray"
    cfg = load_config(recipes / "r.yaml", ["data.val=[here]"])
    assert cfg.data.val == [str(tmp_path / "here")]  # typed on the command line: the current folder's
    monkeypatch.setenv("IMDENOISE_DATASETS", str(tmp_path / "nowhere"))
    raw["data"]["train"] = ["$IMDENOISE_DATASETS/train400"]
    raw["model"]["init_weights"] = None
    (recipes / "r.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="data folder not found: .*nowhere/train400; .* set IMDENOISE_DATASETS"):
        Trainer(load_config(recipes / "r.yaml"))


def test_blind_level_feeds_the_rule_in_training_and_lands_in_the_card(image_dir: Path, tmp_path: Path) -> None:
    """`data.blind_level`: each patch's level input is the rule on its noisy input (not the true sigma),
    validation uses it too, and the exported card carries it, so inference gives the same levels."""
    from imdenoise.models.weights import read_card
    from imdenoise.noise.estimation import BlindLevel

    raw = _raw(image_dir, tmp_path / "run", steps=5)
    raw["data"].update(noise=["gaussian:5-40"], blind_level={"stride": 1, "scale": 2.0, "offset": 3.0})
    raw["log"].update(val_every=5)
    trainer = Trainer(load_config(raw=raw))
    rule = BlindLevel(stride=1, scale=2.0, offset=3.0)
    for i in range(3):
        item = trainer.train_set[i]
        noisy = item["noisy"].numpy().transpose(1, 2, 0)
        assert float(item["sigma"]) * 255 == pytest.approx(rule.of(np.clip(noisy, 0, 1)), rel=1e-5)
    card = read_card(trainer.fit())
    assert card.blind_level == rule and card.noise_range == (0.0, rule.max_level)


def test_shuffle_trains_on_sub_images_and_lands_in_the_card(image_dir: Path, tmp_path: Path) -> None:
    """`data.shuffle: 2`: each step's batch is the patches' 2x2 pixel-shuffled sub-images, each with its
    patch's level; the card says so, and a patch size that is not a multiple is refused."""
    from imdenoise.denoisers.shuffle import to_sub_images
    from imdenoise.models.weights import read_card
    from imdenoise.training.trainer import sub_image_batch

    raw = _raw(image_dir, tmp_path / "run", steps=4)
    raw["data"].update(shuffle=2, noise=["gaussian:5-40"])
    raw["log"].update(val_every=4)
    trainer = Trainer(load_config(raw=raw))
    batch = {k: torch.stack([trainer.train_set[i][k] for i in range(2)]) for k in ("noisy", "target", "sigma")}
    subs = sub_image_batch(batch, 2)
    assert subs["noisy"].shape == (8, 1, 16, 16) and torch.equal(subs["noisy"], to_sub_images(batch["noisy"], 2))
    assert torch.equal(subs["sigma"], batch["sigma"].repeat_interleave(4))
    seen: list[tuple[int, ...]] = []
    forward = trainer.net.forward
    trainer.net.forward = lambda x, s, **kw: (seen.append(tuple(x.shape)), forward(x, s, **kw))[1]  # type: ignore[method-assign]
    card = read_card(trainer.fit())
    assert seen[0] == (16, 1, 16, 16) and card.shuffle == 2 and trainer.history[-1]["psnr"] > 0
    raw["data"]["patch_size"] = 33
    with pytest.raises(ConfigError, match="patch_size=33 is not a multiple of data.shuffle=2"):
        load_config(raw=raw)


def test_a_shipped_name_as_init_weights_starts_from_that_model(image_dir: Path, tmp_path: Path) -> None:
    from imdenoise.models.weights import SHIPPED_DIR, load_model

    raw = _raw(image_dir, tmp_path / "run")
    raw["model"] = {"architecture": "unet", "init_weights": "gray",
                    "config": {"widths": [64, 96, 192], "blocks_per_level": [4, 2, 2]}}
    trainer = Trainer(load_config(raw=raw))
    shipped, _ = load_model(SHIPPED_DIR / "gray.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(trainer.model.state_dict().values(), shipped.state_dict().values()))


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates_and_points_into_the_datasets_root(
        recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMDENOISE_DATASETS", str(tmp_path / "sets"))
    monkeypatch.chdir(tmp_path)  # not the checkout: the recipe must not depend on the current folder
    cfg = load_config(recipe)
    sources = [*cfg.data.train, *cfg.data.noisy, *(cfg.data.paired or ()), *cfg.data.val, cfg.data.val_pairs]
    made = [s for s in sources if s and "/runs/" in s]  # made by a documented command into the checkout's runs/
    assert all(s.startswith(str(ROOT / "runs")) for s in made), made
    assert all(s.startswith(str(tmp_path / "sets")) for s in sources if s and s not in made), sources


def test_clean_sources_denoise_the_training_images_once(color_image: np.ndarray, gray_image: np.ndarray,
                                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`data.clean_sources`: grainy sources come out with a fraction of their noise (gray and colour),
    the cap limits how much is taken away, and a second run reads the cache instead of denoising again."""
    import imdenoise.denoisers.catalog as catalog
    from imdenoise.noise.models import estimate_sigma
    from imdenoise.training.data import clean_sources

    monkeypatch.setenv("IMDENOISE_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    grainy = [np.clip(np.round((img[:128, :128] + rng.normal(0, 5 / 255, img[:128, :128].shape)) * 255), 0, 255
                      ).astype(np.uint8) for img in (color_image, gray_image)]
    out = clean_sources(grainy, 8.0)
    for before, after in zip(grainy, out):
        assert after.shape == before.shape and after.dtype == np.uint8
        assert estimate_sigma(after / 255.0) < 0.5 * estimate_sigma(before / 255.0)
    light = clean_sources(grainy, 1.0)
    assert np.abs(light[0].astype(int) - grainy[0]).mean() < 0.75 * np.abs(out[0].astype(int) - grainy[0]).mean()
    assert len(list((tmp_path / "cache" / "clean-sources").glob("*.npy"))) == 4
    monkeypatch.setattr(catalog, "load", lambda *a, **k: pytest.fail("denoised again instead of read from the cache"))
    monkeypatch.setattr("imdenoise.denoisers.catalog.load", catalog.load)
    again = clean_sources(grainy, 8.0)
    assert all(np.array_equal(a, b) for a, b in zip(again, out))
