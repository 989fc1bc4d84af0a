"""The README's quick tour runs as printed, from a fresh clone, with only what the package ships."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOUR_START, TOUR_END = "<!-- tour:start -->", "<!-- tour:end -->"


def tour() -> list[tuple[list[str], str]]:
    """(command, the output the README shows for it) for every `$ imdenoise ...` line of the tour."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(TOUR_START) + len(TOUR_START):text.index(TOUR_END)]
    steps: list[tuple[list[str], str]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((shlex.split(line[2:], comments=True), ""))
        elif steps and line and not line.startswith("```"):
            steps[-1] = (steps[-1][0], steps[-1][1] + line + "\n")
    return steps


def test_the_readme_tour_runs_from_a_fresh_checkout_without_the_sets(tmp_path: Path) -> None:
    steps = tour()
    assert len(steps) >= 5 and all(cmd[0] == "imdenoise" for cmd, _ in steps)
    (tmp_path / "src").symlink_to(ROOT / "src")  # the bundled sample, where the tour finds it
    env = {**os.environ, "IMDENOISE_DATASETS": str(tmp_path / "no-sets"), "OMP_NUM_THREADS": "1"}
    for cmd, shown in steps:
        proc = subprocess.run([sys.executable, "-m", "imdenoise", *cmd[1:]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        expect_error = shown.startswith("error:")
        assert (proc.returncode == 2) == expect_error, (cmd, proc.stdout, proc.stderr)
        if expect_error:
            assert proc.stderr.strip() == shown.strip().replace(" ", " "), (cmd, proc.stderr)
        else:
            first = shown.split(":")[0]  # the line names the same files (timings and digits may differ)
            assert first in proc.stdout, (cmd, proc.stdout, shown)


@pytest.mark.parametrize("path", ["README.md"])
def test_readme_is_a_short_front_door(path: str) -> None:
    assert len((ROOT / path).read_text().encode()) <= 12_000
