"""scripts/ship_model.py: a first stage, a continued stage, and shipping the same stage again."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import load_script

from imdenoise.models.registry import build_model
from imdenoise.models.weights import ModelCard, read_card, save_weights


@pytest.fixture
def ship(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """ship_model's main() with the repository root and shipped-weights folder moved into tmp_path."""
    mod = load_script("scripts/ship_model.py")  # a test of the shipping script itself
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "SHIPPED_DIR", tmp_path / "weights")

    def run(run_dir: Path, *options: str) -> ModelCard:
        monkeypatch.setattr(sys, "argv", ["ship_model.py", str(run_dir), "m", *options])
        mod.main()
        return read_card(tmp_path / "weights" / "m.safetensors")

    return run


def _run(root: Path, name: str, steps: int, seconds_per_100: float, init: str | None = None,
         blocks: int | list[int] = 1, loss: str | None = None, noise: list[str] | None = None) -> Path:
    """A finished run folder: weights, config.yaml (1 thread) and a log of `steps` steps."""
    run = root / name
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, widths=(8, 16, 32), blocks_per_level=blocks)
    save_weights(run / "m.safetensors", model, ModelCard(name="m", architecture="unet", description="recipe line",
                                                         config=model.config.model_dump(mode="json"), in_channels=1))
    cfg = {"name": "m", "optim": {"threads": 1} | ({"loss": loss} if loss else {}), "model": {"architecture": "unet"}}
    if noise:
        cfg["data"] = {"noise": noise}
    if blocks != 1:
        cfg["model"]["config"] = {"blocks_per_level": blocks}
    if init:
        cfg["model"]["init_weights"] = init
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    rows = [{"step": s, "loss": 0.1, "time": 1000 + s / 100 * seconds_per_100} for s in range(100, steps + 1, 100)]
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_stages_add_up_and_reshipping_is_idempotent(tmp_path: Path, ship) -> None:
    first = ship(_run(tmp_path, "r1", 1000, 100))  # 900 s between the first and last logged step
    assert first.training_steps == 1000 and first.cpu_hours == pytest.approx(0.25)
    second_run = _run(tmp_path, "r2", 500, 360, init="weights/m.safetensors")  # 1440 s
    second = ship(second_run)
    assert second.training_steps == 1500 and second.cpu_hours == pytest.approx(0.65)
    assert (tmp_path / "training-logs" / "m" / "stage-2" / "train_log.jsonl").read_bytes() == \
        (second_run / "train_log.jsonl").read_bytes()
    again = ship(second_run)  # the same stage shipped again: counted once, no stage-3
    assert again.training_steps == 1500 and again.cpu_hours == pytest.approx(0.65)
    assert not (tmp_path / "training-logs" / "m" / "stage-3").exists()
    card = (tmp_path / "weights" / "m.md").read_text()
    assert "stage 1 (from scratch): 1000 steps, 0.3 CPU-hours" in card  # 0.25 h plus float rounding
    assert "stage 2 (continuing the previous stage): 500 steps, 0.4 CPU-hours" in card


def test_a_stage_from_unshipped_weights_counts_every_stage(tmp_path: Path, ship) -> None:
    """A stage continuing an exported, never-shipped run (its card counts only itself) still counts the
    shipped history, and shipping it again does not drop the earlier stages."""
    ship(_run(tmp_path, "r1", 1000, 100))
    wip = _run(tmp_path, "wip", 500, 100, init="weights/m.safetensors")  # trained on, not shipped
    (tmp_path / "training-logs" / "m" / "stage-2").mkdir(parents=True)
    for f in ("config.yaml", "train_log.jsonl"):  # kept as a stage by hand, as a work-in-progress folder is
        (tmp_path / "training-logs" / "m" / "stage-2" / f).write_bytes((wip / f).read_bytes())
    final = _run(tmp_path, "r3", 300, 100, init="wip/m.safetensors")
    for card in (ship(final), ship(final)):
        assert card.training_steps == 1800 and card.cpu_hours == pytest.approx((900 + 400 + 200) / 3600, abs=0.005)


def test_a_slow_run_is_not_counted_as_stopped(tmp_path: Path, ship) -> None:
    """Log rows 700 s apart (over the 10-minute stop limit) count when the logged speed accounts for them."""
    run = _run(tmp_path, "r1", 300, 700)
    rows = [json.loads(line) | {"it_per_s": 100 / 700} for line in (run / "train_log.jsonl").read_text().splitlines()]
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ship(run).cpu_hours == pytest.approx(1400 / 3600, abs=0.005)  # cards round to 0.01 h
    rows[-1]["time"] += 3600  # a one-hour stop before the last row: only the steps' own 700 s count
    (run / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ship(run).cpu_hours == pytest.approx(1400 / 3600, abs=0.005)  # cards round to 0.01 h


def test_description_comes_from_the_run_unless_given(tmp_path: Path, ship) -> None:
    run = _run(tmp_path, "r1", 300, 100)
    assert ship(run).description == "recipe line"
    card = ship(run, "--description", "grown U-Net (0.30 MFLOP/px)")
    assert card.description == "grown U-Net (0.30 MFLOP/px)"
    assert (tmp_path / "weights" / "m.md").read_text().splitlines()[2] == "grown U-Net (0.30 MFLOP/px)"


def test_a_grown_stage_names_its_new_shape(tmp_path: Path, ship) -> None:
    ship(_run(tmp_path, "r1", 300, 100))
    ship(_run(tmp_path, "r2", 200, 100, init="weights/m.safetensors", blocks=[2, 1, 1]))
    ship(_run(tmp_path, "r3", 400, 100, init="weights/m.safetensors", blocks=[2, 1, 1]))
    card = (tmp_path / "weights" / "m.md").read_text()
    assert "stage 2 (growing the previous stage's model to blocks_per_level [2, 1, 1]): 200 steps" in card
    assert "stage 3 (continuing the previous stage): 400 steps" in card


def test_a_stage_with_another_loss_names_it(tmp_path: Path, ship) -> None:
    ship(_run(tmp_path, "r1", 300, 100))  # no optim.loss: the recipe default, l1
    ship(_run(tmp_path, "r2", 200, 100, init="weights/m.safetensors", loss="l1"))  # stages differ in length:
    # a log identical to the last stage's is the same stage shipped again
    ship(_run(tmp_path, "r3", 300, 100, init="weights/m.safetensors", loss="psnr"))
    ship(_run(tmp_path, "r4", 400, 100, init="weights/m.safetensors", loss="psnr"))
    card = (tmp_path / "weights" / "m.md").read_text()
    assert "stage 2 (continuing the previous stage): 200 steps" in card
    assert "stage 3 (continuing the previous stage, loss psnr): 300 steps" in card
    assert "stage 4 (continuing the previous stage): 400 steps" in card


def test_card_psnr_reads_as_the_readme_table_does(tmp_path: Path, ship) -> None:
    # 31.39543 prints as 31.40 in quality.py's table; rounding to 3 places first would give 31.39
    table = {"set12": {"15.0": 31.39543}, "cbsd68": {"15.0": 33.0}}
    quality = tmp_path / "quality.json"
    quality.write_text(json.dumps({"measured": {"default": {"psnr": table}, "default, blind": {"psnr": table}}}))
    card = ship(_run(tmp_path, "r1", 300, 100), "--quality", str(quality), "--quality-blind", str(quality))
    assert card.psnr == {"set12/15": 31.40}  # a gray model's card keeps the gray sets only
    assert "| set12/15 | 31.40 | 31.40 |" in (tmp_path / "weights" / "m.md").read_text()


def test_a_stage_with_other_training_noise_names_it(tmp_path: Path, ship) -> None:
    ship(_run(tmp_path, "r1", 300, 100, noise=["gaussian:0-55"]))
    ship(_run(tmp_path, "r2", 200, 100, init="weights/m.safetensors", noise=["gaussian:0-55", "gaussian:5-30"],
              loss="psnr"))
    ship(_run(tmp_path, "r3", 400, 100, init="weights/m.safetensors", noise=["gaussian:0-55", "gaussian:5-30"],
              loss="psnr"))
    card = (tmp_path / "weights" / "m.md").read_text()
    assert "stage 2 (continuing the previous stage, loss psnr, noise gaussian:0-55, gaussian:5-30): 200 steps" in card
    assert "stage 3 (continuing the previous stage): 400 steps" in card
