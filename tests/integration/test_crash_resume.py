"""Training survives being killed: SIGKILL while checkpointing, then `--resume` finishes the run.

A small U-Net run (`model.config.widths: [48, 96]`, 64x64 images, patch 32, batch 4; checkpoints of
about 7 MB) checkpoints every step in a subprocess; the test kills it (SIGKILL, no clean-up possible)
while a checkpoint's temporary file exists, i.e. in the middle of writing it, and checks that the
torn temporary file was indeed left behind (retrying, by resuming, until a kill lands mid-write).
`imdenoise train --resume RUN_DIR` must then remove the torn write, start from the newest intact
checkpoint and finish. A checkpoint whose bytes were flipped, one
without its checksum sidecar (killed between the rename and the sidecar) and a truncated one are
each detected by checksum, reported, and skipped in favour of the previous one.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from imdenoise.errors import ConfigError, WeightsError
from imdenoise.training import checkpoints as ckpt
from imdenoise.training.config import load_config
from imdenoise.training.trainer import Trainer

PY = sys.executable
pytestmark = pytest.mark.timeout(600)


def _images(folder: Path) -> Path:
    folder.mkdir()
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    for k in range(6):
        img = 0.5 + 0.3 * np.sin(xx / (3 + k)) * np.cos(yy / (5 + k)) + 0.1 * ((xx + yy + 8 * k) // 16 % 2)
        Image.fromarray(np.clip(img * 255, 0, 255).astype(np.uint8)).save(folder / f"img{k}.png")
    return folder


def _config(tmp: Path, images: Path) -> Path:
    raw = {
        "name": "crash", "output_dir": str(tmp / "run"),
        "model": {"architecture": "unet", "config": {"widths": [48, 96]}},
        "data": {"train": [str(images)], "channels": 1, "noise": ["gaussian:25"], "patch_size": 32,
                 "batch_size": 4, "workers": 0, "holdout": 2, "val_limit": 2},
        "optim": {"steps": 100_000, "lr": 1e-3, "precision": "fp32", "threads": 1},
        "log": {"every": 1, "val_every": 100_000, "ckpt_every": 1, "keep_last": 3, "tensorboard": False,
                "progress": False},
    }
    path = tmp / "crash.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _step(path: Path) -> int:
    return int(re.search(r"ckpt-(\d+)\.pt$", path.name).group(1))


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory whose training process was SIGKILLed while writing checkpoints."""
    tmp = tmp_path_factory.mktemp("crash")
    cfg = _config(tmp, _images(tmp / "images"))
    run = tmp / "run"
    for attempt in range(8):
        cmd = ["train", str(cfg)] if attempt == 0 else ["train", "--resume", str(run)]
        _kill_mid_write([PY, "-m", "imdenoise", *cmd], run, tmp / f"attempt{attempt}.log")
        if _torn_writes(run):
            break
    assert _torn_writes(run), "no SIGKILL landed in the middle of a checkpoint write in 8 attempts"
    return run


def _torn_writes(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob(".ckpt-*.tmp"))


def _kill_mid_write(cmd: list[str], run: Path, log_path: Path) -> None:
    """Start the training command; SIGKILL it once three checkpoints exist and a write is under way."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=run.parent)
        deadline = time.monotonic() + 300
        try:
            while True:
                assert proc.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint write caught after 300 s"
                folder = run / "checkpoints"
                if folder.is_dir() and len(list(folder.glob("ckpt-*.pt"))) >= 3 and _torn_writes(run):
                    proc.send_signal(signal.SIGKILL)  # a temporary file exists: a write is under way
                    break
                time.sleep(0.001)
        finally:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _resume(run: Path, steps: int) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "imdenoise", "train", "--resume", str(run), "--set", f"optim.steps={steps}"],
                          capture_output=True, text=True, timeout=300, env=_env(), cwd=run.parent)


def test_killed_run_resumes_from_last_intact_checkpoint(killed_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(killed_run, tmp_path / "run")
    torn = _torn_writes(run)
    assert torn  # the kill landed mid-write
    good = ckpt.latest_good(run)
    assert good is not None
    start = _step(good)
    assert start >= 2 or len(ckpt.step_checkpoints(run)) >= 2
    ckpt.load_checkpoint(good)  # intact: verifies and loads with weights_only=True
    target = start + 3
    proc = _resume(run, target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"resumed {good} at step {start}" in proc.stderr, proc.stderr[-3000:]
    assert not _torn_writes(run) and all(f"removing {t}" in proc.stderr for t in torn), proc.stderr[-3000:]
    assert (run / "crash.safetensors").is_file() and "weights:" in proc.stdout
    final = ckpt.latest_good(run)
    assert final is not None and _step(final) == target
    assert ckpt.load_checkpoint(final)["step"] == target
    from imdenoise.models.weights import read_card

    assert read_card(run / "crash.safetensors").training_steps == target


def test_corrupted_checkpoints_are_detected_and_skipped(killed_run: Path, tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    run = shutil.copytree(killed_run, tmp_path / "run")
    intact = [p for p in ckpt.step_checkpoints(run) if ckpt.verify(p)]
    assert len(intact) >= 2, [p.name for p in ckpt.step_checkpoints(run)]
    newest, previous = intact[-1], intact[-2]
    for stray in ckpt.step_checkpoints(run):  # drop what the kill left half-done: only our damage remains
        if _step(stray) > _step(newest):
            stray.unlink()
            stray.with_name(stray.name + ".sha256").unlink(missing_ok=True)
    data = bytearray(newest.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):  # flip bytes in the middle of the newest
        data[i] ^= 0xFF
    newest.write_bytes(bytes(data))
    step = _step(newest)
    no_sidecar = newest.with_name(f"ckpt-{step + 1:08d}.pt")  # killed after the rename, before the sidecar
    shutil.copyfile(previous, no_sidecar)
    truncated = newest.with_name(f"ckpt-{step + 2:08d}.pt")  # a torn write with a stale sidecar
    truncated.write_bytes(previous.read_bytes()[:1000])
    truncated.with_name(truncated.name + ".sha256").write_text(previous.with_name(previous.name + ".sha256").read_text())

    assert ckpt.latest_good(run) == previous
    with pytest.raises(WeightsError, match="checksum mismatch"):
        ckpt.load_checkpoint(newest)

    caplog.set_level(logging.INFO)
    trainer = Trainer(_run_config(run, _step(previous) + 2), run, resume=True)  # what --resume does
    for bad in (truncated, no_sidecar, newest):
        assert f"skipping corrupted checkpoint {bad} (checksum mismatch)" in caplog.text
    assert f"resumed {previous} at step {_step(previous)}" in caplog.text
    assert trainer.step == _step(previous)
    assert trainer.fit() == run / "crash.safetensors"
    assert ckpt.load_checkpoint(ckpt.latest_good(run))["step"] == _step(previous) + 2


def test_resume_with_no_intact_checkpoint_is_a_clear_error(killed_run: Path, tmp_path: Path) -> None:
    run = shutil.copytree(killed_run, tmp_path / "run")
    for side in (run / "checkpoints").glob("*.sha256"):
        side.write_text("0" * 64 + "\n")
    with pytest.raises(ConfigError, match=f"{re.escape(str(run))}: no intact checkpoint to resume from"):
        Trainer(_run_config(run, 50), run, resume=True)


def _run_config(run: Path, steps: int):
    """The run's saved recipe with optim.steps overridden, as `train --resume RUN --set ...` loads it."""
    return load_config(run / "config.yaml", [f"optim.steps={steps}"], paths_from_file=False)
