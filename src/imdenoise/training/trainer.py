"""One Trainer for every mode (supervised, masked, self-supervised), on one CPU or many ranks."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist

from imdenoise.atomic import write_bytes_atomic
from imdenoise.denoisers.shuffle import from_sub_images, to_sub_images
from imdenoise.errors import ConfigError, ImDenoiseError, RunWriteError
from imdenoise.models.base import DenoisingNet
from imdenoise.models.registry import build_model, get_architecture
from imdenoise.optim import optimizer_step, run_steps
from imdenoise.paths import portable
from imdenoise.precision import autocast
from imdenoise.training import checkpoints as ckpt
from imdenoise.training.checkpoints import write_failure
from imdenoise.training.config import TrainConfig
from imdenoise.training.data import build_datasets
from imdenoise.training.datasets import IndexStream
from imdenoise.training.modes import make_step_inputs

log = logging.getLogger(__name__)


class TrainingDivergedError(ImDenoiseError):
    """The loss became NaN or infinite; the message names the step."""


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Learning-rate multiplier at `step`: linear warm-up, then cosine, step or constant decay."""
    o = cfg.optim
    if o.warmup_steps and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    if o.schedule == "step":
        return o.gamma ** (step // o.step_size)
    if o.schedule == "cosine":
        t = min(1.0, (step - o.warmup_steps) / max(1, o.steps - o.warmup_steps))
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


def _dist_env() -> tuple[int, int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


class Trainer:
    """Builds model, data and optimizer from a config; `fit()` trains, checkpoints, resumes, exports."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False,
                 model: DenoisingNet | None = None) -> None:
        """`model`: train this network (e.g. a pruned one, whose shapes no registry config describes)
        instead of building `cfg.model`'s architecture."""
        self.cfg = cfg
        self.run_dir = Path(run_dir or cfg.output_dir)
        self.rank, self.world, local_rank = _dist_env()
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
        if cfg.optim.threads:
            torch.set_num_threads(cfg.optim.threads)
        if self.is_main:
            if self.run_dir.exists() and any(self.run_dir.iterdir()) and not resume:
                raise ConfigError(f"run directory {self.run_dir} already exists: resume it with "
                                  f"`imdenoise train --resume {self.run_dir}`, start it over with "
                                  f"`imdenoise train --restart {self.run_dir}` (deletes its checkpoints and logs), "
                                  f"or choose another output_dir")
        torch.manual_seed(cfg.optim.seed)
        self.model = model if model is not None else build_model(cfg.model.architecture, in_channels=cfg.data.channels,
                                                                 **cfg.model.config)
        if cfg.model.init_weights and model is None:
            from imdenoise.models.grow import load_grown
            from imdenoise.models.weights import SHIPPED_DIR, load_model

            init = cfg.model.init_weights  # a path, or a shipped model's name ("color")
            shipped = SHIPPED_DIR / f"{init}.safetensors"
            src, _ = load_model(shipped if "/" not in init and shipped.is_file() else init)
            added = load_grown(self.model, src, cfg.model.init_weights)
            if added and self.is_main:
                log.info("grew %s by %d branches that start as no-ops (residual blocks): %s",
                         cfg.model.init_weights, len(added), ", ".join(added))
        self.model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack Module.to(memory_format=)
        self.ema = [p.detach().clone() for p in self.model.parameters()] if cfg.optim.ema else None
        opt_cls = torch.optim.AdamW if cfg.optim.optimizer == "adamw" else torch.optim.Adam
        wd = cfg.optim.weight_decay if cfg.optim.optimizer == "adamw" else 0.0
        self.optimizer = opt_cls(self.model.parameters(), lr=cfg.optim.lr, weight_decay=wd)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(cfg, s))
        from imdenoise.training.losses import parse_loss

        self.loss_fn = parse_loss(cfg.optim.loss, cfg.optim.vgg_weights)
        from imdenoise.precision import resolve_precision

        self.precision = resolve_precision(cfg.optim.precision, self.device)
        if self.is_main:
            log.info("precision %s (config: %s)", self.precision, cfg.optim.precision)
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none (the scaler is a no-op)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.step = 0
        self.best_psnr = -math.inf
        self.history: list[dict[str, Any]] = []
        if resume:
            self._resume()
        self.net: Any = self.model  # what a step runs: the model, wrapped for data parallelism or compiled
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        if cfg.optim.compile:
            self.net = torch.compile(self.net)
        self.train_set, self.val_images = build_datasets(cfg)
        if self.is_main:  # only once model and data are built: a failed start leaves no stale run folder
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(self.run_dir / "config.yaml", _yaml(cfg.model_dump(mode="json")))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly: weights, EMA, optimizer, schedule, RNG."""
        return {
            "format": 1, "step": self.step, "best_psnr": self.best_psnr,
            "config": self.cfg.model_dump(mode="json"),
            "model": self.model.state_dict(),
            "ema": self.ema, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(), "history": self.history,
        }

    def _resume(self) -> None:
        if self.is_main:
            ckpt.remove_stale_temps(self.run_dir)
        path = ckpt.latest_good(self.run_dir)
        if path is None:
            raise ConfigError(f"{self.run_dir}: no intact checkpoint to resume from (the run stopped before "
                              f"writing one); start it over with `imdenoise train --restart {self.run_dir}`")
        state = ckpt.load_checkpoint(path)
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema = [t.to(self.device) for t in state["ema"]]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.best_psnr = int(state["step"]), float(state["best_psnr"])
        self.history = list(state.get("history", []))
        log.info("resumed %s at step %d", path, self.step)

    def save(self, best: bool = False) -> None:
        """Write a step checkpoint (and best.pt when validation improved); rank 0 only."""
        if not self.is_main:
            return
        state = self.state_dict()
        ckpt.save_checkpoint(state, self.run_dir / "checkpoints" / f"ckpt-{self.step:08d}.pt")
        ckpt.prune(self.run_dir, self.cfg.log.keep_last)
        if best:
            ckpt.save_checkpoint(state, self.run_dir / "checkpoints" / "best.pt")

    # ----------------------------------------------------------------- steps
    def ema_decay(self) -> float:
        """The EMA decay of this step, warmed up as (1 + step) / (10 + step) up to optim.ema: without the
        warm-up the average of a short run still holds much of the random initial weights
        (0.999 ** 1500 = 22% after 1,500 steps)."""
        return min(float(self.cfg.optim.ema or 0.0), (1 + self.step) / (10 + self.step))

    def _ema_update(self) -> None:
        if self.ema is None:
            return
        with torch.no_grad():
            torch._foreach_lerp_(self.ema, [p.detach() for p in self.model.parameters()], 1.0 - self.ema_decay())

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        """One optimisation step; raises TrainingDivergedError on a non-finite loss."""
        batch = sub_image_batch({k: v.to(self.device, non_blocking=True) for k, v in batch.items()},
                                self.cfg.data.shuffle)
        gen = torch.Generator().manual_seed(self.cfg.optim.seed * 1_000_003 + self.step * self.world + self.rank)
        step = make_step_inputs(self.cfg, batch, gen, self.step)
        inp = step.inp.contiguous(memory_format=torch.channels_last)
        extra = {"mask": step.net_mask} if step.net_mask is not None and self.model.mask_aware else {}
        with autocast(self.precision, self.device):
            out = self.net(inp, batch["sigma"], **extra).float()
        loss = cast(torch.Tensor, sum(w * self.loss_fn(out, step.target, m) for w, m in step.loss_terms))
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"loss is {loss.item()} at step {self.step}: training diverged "
                                        f"(lower optim.lr or enable optim.grad_clip); last good checkpoint kept")
        optimizer_step(loss, self.optimizer, self.model.parameters(), scaler=self.scaler,
                       grad_clip=self.cfg.optim.grad_clip or 0.0)
        self.scheduler.step()
        self._ema_update()
        return loss.item()

    def _preview(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The EMA model's output for a few training patches, on the CPU (the logger's image grid)."""
        s = self.cfg.data.shuffle
        subs = to_sub_images(noisy.to(self.device), s)
        out = self.ema_model()(subs, sigma.to(self.device).repeat_interleave(s * s)).float()
        return from_sub_images(out, s).cpu()

    # ----------------------------------------------------------------- loop
    def fit(self, stop_at: int | None = None) -> Path | None:
        """Train to cfg.optim.steps (or pause at `stop_at`, checkpointed), validating and checkpointing.

        Returns the exported weights path when the run is complete (rank 0), else None."""
        from imdenoise.training.logger import RunLogger
        from imdenoise.training.validation import validate

        cfg = self.cfg
        loader = torch.utils.data.DataLoader(
            self.train_set, batch_size=cfg.data.batch_size,
            sampler=IndexStream(self.step, cfg.data.batch_size, self.rank, self.world),
            num_workers=cfg.data.workers, persistent_workers=cfg.data.workers > 0,
            prefetch_factor=4 if cfg.data.workers else None)
        logger = RunLogger(self.run_dir, cfg.log, cfg.name, cfg.optim.steps, self.step, enabled=self.is_main)
        last_ckpt_time = time.monotonic()
        it = iter(loader)
        batch: dict[str, torch.Tensor] = {}

        def step(_: int) -> float:
            nonlocal batch
            batch = next(it)
            return self.train_step(batch)

        def after(done: int, loss: float) -> bool:
            nonlocal last_ckpt_time
            self.step = done
            logger.step(self.step, loss, self.optimizer.param_groups[0]["lr"], batch, self._preview)
            if (self.step % cfg.log.val_every == 0 or self.step == cfg.optim.steps) and self.is_main:
                metrics, samples = validate(self.ema_model(), self.val_images, cfg.data.val_noise, self.device,
                                            cfg.data.blind_level, cfg.data.shuffle)
                improved = metrics["psnr"] > self.best_psnr
                self.best_psnr = max(self.best_psnr, metrics["psnr"])
                if not math.isnan(metrics["psnr"]):  # no reference images (self-supervised): nothing measured
                    self.history.append({"step": self.step, **metrics})
                logger.validation(self.step, metrics, samples)
                self.save(best=improved)
                last_ckpt_time = time.monotonic()
            elif (self.step % cfg.log.ckpt_every == 0
                  or time.monotonic() - last_ckpt_time > 60 * cfg.log.ckpt_minutes):
                self.save()
                last_ckpt_time = time.monotonic()
            return False

        try:
            run_steps(step, self.step, min(cfg.optim.steps, stop_at or cfg.optim.steps), after)
        finally:
            logger.close()
        if self.step < cfg.optim.steps:
            self.save()
            return None
        if self.world > 1:
            self.check_ranks_in_sync()
        out = self.export() if self.is_main else None
        if self.world > 1:
            # Keep every rank in the group until rank 0 has written the weights: a rank that tears
            # the gloo group down while a peer still holds its connections aborts the process.
            dist.barrier()
        return out

    def parameter_digest(self) -> str:
        """SHA-256 of all parameters' bytes: equal digests mean bit-identical models."""
        import hashlib

        h = hashlib.sha256()
        for p in self.model.parameters():
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def check_ranks_in_sync(self) -> None:
        """Data-parallel ranks must end with bit-identical parameters; raise if they do not."""
        digests: list[str | None] = [None] * self.world
        dist.all_gather_object(digests, self.parameter_digest())
        if len(set(digests)) != 1:
            raise ImDenoiseError(f"data-parallel ranks diverged: parameter digests {digests}")
        if self.is_main:
            log.info("parameters identical on all %d ranks (sha256 %s)", self.world, str(digests[0])[:16])

    def ema_model(self) -> DenoisingNet:
        """A copy of the model carrying the EMA weights (or the raw weights without EMA)."""
        import copy

        m = copy.deepcopy(self.model)
        if self.ema is not None:
            with torch.no_grad():
                for p, e in zip(m.parameters(), self.ema):
                    p.copy_(e)
        return m.eval()

    def export(self, path: Path | None = None) -> Path:
        """Write the EMA weights with a model card in the shipped safetensors format."""
        return write_run_weights(self.cfg, self.ema_model(), self.step, self.history,
                                 path or self.run_dir / f"{self.cfg.name}.safetensors")


def sub_image_batch(batch: dict[str, torch.Tensor], stride: int) -> dict[str, torch.Tensor]:
    """A batch of patches as the batch of their stride x stride pixel-shuffled sub-images (data.shuffle),
    each with its patch's level."""
    if stride <= 1:
        return batch
    return {k: v.repeat_interleave(stride * stride, dim=0) if v.ndim < 4 else to_sub_images(v, stride)
            for k, v in batch.items()}


def write_run_weights(cfg: TrainConfig, model: DenoisingNet, step: int, history: list[dict[str, Any]],
                      path: Path) -> Path:
    """Save a run's model with a card naming its architecture, data, steps and last validation."""
    from imdenoise.models.weights import ModelCard, save_weights

    card = ModelCard(
        name=cfg.name, architecture=cfg.model.architecture,
        config={**get_architecture(cfg.model.architecture).defaults, **cfg.model.config,
                "in_channels": cfg.data.channels},
        in_channels=cfg.data.channels, parameters=sum(p.numel() for p in model.parameters()),
        description=cfg.description,
        training_data=", ".join(portable(p) for p in cfg.data.train or cfg.data.noisy or list(cfg.data.paired or [])),
        training_steps=step, blind_level=cfg.data.blind_level, shuffle=cfg.data.shuffle,
        noise_range=(0.0, cfg.data.blind_level.max_level) if cfg.data.blind_level else _noise_range(cfg.data.noise),
        validation=history[-1] if history else {},
    )
    out = save_weights(path, model, card)
    log.info("wrote %s", out)
    return out


def export_run(run_dir: str | Path, path: str | Path | None = None) -> Path:
    """Weights of a stopped or running run from its newest intact checkpoint (EMA weights if kept)."""
    from imdenoise.training.config import load_config

    run_dir = Path(run_dir)
    cfg = load_config(run_dir / "config.yaml", paths_from_file=False)
    found = ckpt.latest_good(run_dir)
    if found is None:
        raise ConfigError(f"{run_dir}: no intact checkpoint to export")
    state = ckpt.load_checkpoint(found)
    model = build_model(cfg.model.architecture, in_channels=cfg.data.channels, **cfg.model.config)
    model.load_state_dict(state["model"])
    if state.get("ema") is not None:
        with torch.no_grad():
            for p, e in zip(model.parameters(), state["ema"]):
                p.copy_(e)
    out = Path(path) if path else run_dir / f"{cfg.name}-step{state['step']}.safetensors"
    return write_run_weights(cfg, model.eval(), int(state["step"]), list(state.get("history", [])), out)


def _noise_range(specs: list[str]) -> tuple[float, float]:
    from imdenoise.noise.models import parse_noise

    lo, hi = math.inf, -math.inf
    for s in specs:
        rng = getattr(parse_noise(s), "sigma_range", None)
        if rng:
            lo, hi = min(lo, rng[0]), max(hi, rng[1])
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def _yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)


def run_training(config: TrainConfig, run_dir: str | Path | None = None, resume: bool = False) -> Path | None:
    """Train from a validated config (the CLI's `imdenoise train`); returns the weights path on rank 0.
    A folder that cannot be written (read-only, full disk) is a one-line RunWriteError."""
    try:
        return Trainer(config, run_dir, resume=resume).fit()
    except OSError as exc:
        where = Path(run_dir or config.output_dir)
        raise RunWriteError(f"{exc.filename or where}: cannot write the run's files ({write_failure(exc)}); "
                            f"make {where} writable and free disk space, or choose another --output-dir "
                            f"(a run with checkpoints continues with `imdenoise train --resume {where}`)") from None
    finally:
        # The trainer (and its DistributedDataParallel wrapper, which holds the process group) is
        # gone by now; tear the group down only after it, so no C++ worker outlives its group.
        import gc

        gc.collect()
        if dist.is_initialized():
            dist.destroy_process_group()


# What a run writes into its folder (see Trainer, RunLogger, checkpoints, export): `--restart`
# deletes these and nothing else.
RUN_FILES = ("config.yaml", "train_log.jsonl")
RUN_FOLDERS = {"checkpoints": ("ckpt-*.pt", "ckpt-*.pt.sha256", "best.pt", "best.pt.sha256", ".*.tmp"),
               "samples": ("step-*.png", ".*.tmp"), "tensorboard": ("events.out.tfevents.*",)}


def run_files(run_dir: Path) -> list[Path]:
    """Every file of a run folder that the run itself wrote; a ConfigError naming anything else found
    there (or a folder without config.yaml), so that `--restart` never deletes a user's file."""
    import fnmatch

    from imdenoise.training.config import load_config

    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir}: not a run folder (no config.yaml); refusing to delete anything in it")
    name = load_config(run_dir / "config.yaml").name
    exported = (f"{name}.safetensors", f"{name}-step*.safetensors", f".{name}*.safetensors.*.tmp")
    own: list[Path] = []
    foreign: list[Path] = []
    for entry in sorted(run_dir.iterdir()):
        if entry.is_dir() and not entry.is_symlink() and entry.name in RUN_FOLDERS:
            for sub in sorted(entry.iterdir()):
                ok = sub.is_file() and any(fnmatch.fnmatch(sub.name, pat) for pat in RUN_FOLDERS[entry.name])
                (own if ok else foreign).append(sub)
        elif entry.is_file() and (entry.name in RUN_FILES or any(fnmatch.fnmatch(entry.name, p) for p in exported)):
            own.append(entry)
        else:
            foreign.append(entry)
    if foreign:
        more = f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else ""
        raise ConfigError(f"{foreign[0]}: not a file this run wrote{more}; refusing to restart {run_dir} "
                          f"(move it away, or choose another output_dir)")
    return own


def clear_run(run_dir: Path) -> int:
    """Delete a run folder's own files (and its then-empty subfolders) so it can start over; returns
    how many files went. Refuses, deleting nothing, when the folder holds anything else."""
    files = run_files(run_dir)
    for path in files:
        path.unlink()
    for sub in RUN_FOLDERS:
        if (run_dir / sub).is_dir():
            (run_dir / sub).rmdir()
    log.info("restart: deleted %d files of the run in %s", len(files), run_dir)
    return len(files)
