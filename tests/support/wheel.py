"""Build Lacuna's wheel from a copy of the checkout (an in-tree build would
leave build/ and egg-info behind)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(out: Path) -> Path:
    source = out / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis"))
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    if run.returncode != 0:
        raise AssertionError(f"pip wheel failed:\n{run.stderr[-2000:]}")
    shutil.rmtree(source)
    return next(out.glob("lacuna_editor-*.whl"))
