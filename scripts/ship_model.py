"""Turn a finished training run into a shipped model: fp16 safetensors + model card (JSON and markdown).

    python scripts/ship_model.py runs/gray gray --quality quality.json [--quality-blind quality-blind.json]

Reads the run's EMA weights (`RUN/NAME.safetensors`, written by `imdenoise train`), its config and
training log; stores the weights in half precision (loaded back as float32) with the measured PSNR
table of `benchmarks/quality.py --json` in the card; writes `src/imdenoise/weights/NAME.safetensors`,
`NAME.md` (the human-readable model card) and copies the training log to `training-logs/NAME/`.

A run that continued a shipped model (`model.init_weights` in its recipe) is a further training
stage: the card counts the steps and CPU-hours of every stage, and the run's config and log go to
`training-logs/NAME/stage-K/` beside the earlier stages' logs, which are kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
import yaml

from imdenoise.models.weights import SHIPPED_DIR, ModelCard, load_model, save_weights

ROOT = Path(__file__).resolve().parents[1]


def cpu_hours(log: Path, threads: int) -> tuple[float, int]:
    """Wall hours x threads between logged steps. A gap over 10 minutes is a stop unless the logged speed
    (`it_per_s`) says the steps took that long: then the time those steps took at that speed is counted."""
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]
    hours = 0.0
    for a, b in zip(rows, rows[1:]):
        dt = b["time"] - a["time"]
        if 0 < dt < 600:
            hours += dt / 3600
        elif dt > 0 and b.get("it_per_s"):  # a slow run, or a stop: what the steps took at the logged speed
            hours += min(dt, (b["step"] - a["step"]) / b["it_per_s"]) / 3600
    return hours * threads, rows[-1]["step"] if rows else 0


SETS_BY_CHANNELS = {1: ("set12", "bsd68"), 3: ("cbsd68", "kodak24")}


def psnr_table(path: Path | None, key: str, channels: int) -> dict[str, float]:
    """'set/sigma' -> PSNR from a quality.py JSON file (the row of `key`, the sets of this model's kind)."""
    if path is None:
        return {}
    data = json.loads(path.read_text())["measured"][key]["psnr"]
    # rounded as the README table prints them (round and :.2f both round the exact binary value)
    return {f"{s}/{float(sig):g}": round(v, 2) for s, per in data.items()
            if per and s in SETS_BY_CHANNELS[channels] for sig, v in per.items()}


def real_psnr(path: Path | None, label: str) -> dict[str, dict[str, float]]:
    """'set' -> {images, noisy, psnr} from a quality.py --real-json file (the row labelled `label`)."""
    if path is None:
        return {}
    data = json.loads(path.read_text())
    rows = {r["label"]: r for r in data["rows"]}
    if label not in rows:
        raise SystemExit(f"error: {path} has no row {label!r} (rows: {', '.join(rows)})")
    noisy = next(r for r in data["rows"] if r["method"] is None)
    return {Path(data["dataset"]).name: {"images": rows[label]["images"], "noisy": round(noisy["psnr"], 2),
                                         "psnr": round(rows[label]["psnr"], 2),
                                         "gain": round(rows[label]["psnr"] - noisy["psnr"], 2)}}


def stage_summary(logs: Path) -> tuple[str, int, float]:
    """One phrase per training stage whose recipe and log are kept in `logs` (stage 1 at its top), and
    the steps and CPU-hours of all of them."""
    stages = [logs] + sorted((d for d in logs.glob("stage-*") if (d / "train_log.jsonl").is_file()),
                             key=lambda d: int(d.name.split("-")[1]))
    parts, shape, settings, steps, hours = [], {}, None, 0, 0.0
    for i, d in enumerate(stages, 1):
        recipe = yaml.safe_load((d / "config.yaml").read_text())
        threads = recipe["optim"].get("threads") or 2
        h, n = cpu_hours(d / "train_log.jsonl", threads)
        steps, hours = steps + n, hours + h
        changed = {k: v for k, v in ((recipe.get("model") or {}).get("config") or {}).items()
                   if shape.get(k) != v}
        shape.update(changed)
        init = (recipe.get("model") or {}).get("init_weights")
        if i == 1:  # a first stage may start from another model's weights (photo: from color)
            start = f"from `{init}`" if init else "from scratch"
        elif changed:  # model.init_weights into a larger architecture (models/grow.py)
            start = "growing the previous stage's model to " + ", ".join(f"{k} {v}" for k, v in changed.items())
        else:
            start = "continuing the previous stage"
        # the training settings a stage may change without changing the model: named where they do
        stage_settings = {"loss": recipe["optim"].get("loss", "l1"),
                          "noise": ", ".join((recipe.get("data") or {}).get("noise") or [])}
        if settings is not None:
            start += "".join(f", {k} {v}" for k, v in stage_settings.items() if v != settings[k])
        settings = stage_settings
        parts.append(f"stage {i} ({start}): {n} steps, {h:.1f} CPU-hours, recipe and log in `{d.relative_to(ROOT)}/`")
    return "; ".join(parts), steps, hours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("name")
    ap.add_argument("--quality", type=Path, help="benchmarks/quality.py --json output (true sigma)")
    ap.add_argument("--quality-blind", type=Path, help="the same with --blind")
    ap.add_argument("--description", help="the card's one-line description (default: the run's recipe's); "
                    "for a stage that changed what the line states, e.g. the architecture's cost")
    ap.add_argument("--key", default="default", help="the method name in the quality JSON")
    ap.add_argument("--real-json", type=Path, help="benchmarks/quality.py --real-json output (real noisy pairs)")
    ap.add_argument("--real-key", default="photo, blind", help="the row label in the real-noise JSON")
    ap.add_argument("--command", default="python benchmarks/quality.py --methods default --json quality.json")
    args = ap.parse_args()

    model, card = load_model(args.run / f"{args.name}.safetensors")
    cfg_text = (args.run / "config.yaml").read_text()
    cfg = yaml.safe_load(cfg_text)
    logs = ROOT / "training-logs" / args.name
    stage_dir = logs
    if (cfg.get("model") or {}).get("init_weights"):  # a further stage of an earlier model: keep its logs
        run_log = (args.run / "train_log.jsonl").read_bytes()
        same = [d for d in sorted(logs.glob("stage-*")) if (d / "train_log.jsonl").is_file()
                and (d / "train_log.jsonl").read_bytes() == run_log]  # shipping the same run again
        stage_dir = same[0] if same else logs / f"stage-{2 + sum(1 for d in logs.glob('stage-*') if d.is_dir())}"
    stage_dir.mkdir(parents=True, exist_ok=True)
    for f in ("config.yaml", "train_log.jsonl"):
        shutil.copy2(args.run / f, stage_dir / f)
    # every stage's recipe and log is kept: the card's totals are their sum
    stages, steps, hours = stage_summary(logs)
    card_data = card.model_dump(mode="json")
    card_data.update(
        name=args.name, description=args.description or card.description, version="1.0",
        cpu_hours=round(hours, 2), training_steps=steps,
        psnr=psnr_table(args.quality, args.key, card.in_channels),
        psnr_blind=psnr_table(args.quality_blind, f"{args.key}, blind", card.in_channels),
        measured_by=args.command, storage="float16 (loaded as float32)",
        psnr_real=real_psnr(args.real_json, args.real_key),
    )
    card = ModelCard(**card_data)
    out = save_weights(SHIPPED_DIR / f"{args.name}.safetensors", model, card, dtype=torch.float16)
    md = [f"# Model card: `{args.name}`", "", card.description, "",
          f"- architecture: `{card.architecture}` {json.dumps(card.config)}",
          f"- parameters: {card.parameters:,}; channels: {card.in_channels}; "
          + (f"noise range (sigma, 0-255): {card.noise_range}" if card.config.get("noise_map", True)
             else "blind: no noise-level input"),
          f"- training data: {card.training_data} (never the test sets); recipe: `configs/{args.name}.yaml`",
          f"- training: {steps} steps, {hours:.1f} CPU-hours (threads x wall hours) on a 2-core CPU; " + stages,
          f"- storage: float16 safetensors, loaded as float32; version {card.version}",
          "", "## Measured PSNR (dB), BENCHMARK.md protocol", "", f"Command: `{args.command}`", ""]
    if card.psnr:
        md += ["| set / sigma | true sigma given | blind (estimated) |", "|---|---|---|"]
        md += [f"| {k} | {v:.2f} | {card_data['psnr_blind'].get(k, float('nan')):.2f} |" for k, v in card.psnr.items()]
    if card_data["psnr_real"]:
        md += ["| real noisy pairs | images | noisy photo | denoised (blind) | gain |", "|---|---|---|---|---|"]
        md += [f"| {k} | {v['images']} | {v['noisy']:.2f} | {v['psnr']:.2f} | {v['gain']:+.2f} |"
               for k, v in card_data["psnr_real"].items()]
    (SHIPPED_DIR / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), {SHIPPED_DIR / (args.name + '.md')}, {stage_dir}")


if __name__ == "__main__":
    main()
