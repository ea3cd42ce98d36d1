"""`lacuna`'s own options: --version, --self-test, and one clear line instead of
Qt's abort (exit 134) when no window can be opened."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lacuna import engine
from lacuna.app import main as app_main

ROOT = Path(__file__).resolve().parents[2]


def _lacuna(*args, env_update=None, drop=()):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = str(ROOT)
    env.update(env_update or {})
    return subprocess.run([sys.executable, "-m", "lacuna.app.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_version_is_the_package_version():
    run = _lacuna("--version")
    assert run.returncode == 0
    assert run.stdout.strip() == f"Lacuna {engine.__version__}"


def test_about_shows_the_version():
    from lacuna.app.actions import about_text

    assert engine.__version__ in about_text()


def test_version_has_one_source():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]


def test_no_display_is_one_line_not_an_abort():
    run = _lacuna(drop=("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is for Linux")
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0]


@pytest.mark.parametrize("env, expected", [
    ({}, "no display"),
    ({"DISPLAY": ":0"}, None),  # with every library and a display that answers
    ({"WAYLAND_DISPLAY": "wayland-0"}, None),
    ({"QT_QPA_PLATFORM": "offscreen"}, None),
])
def test_display_problem(env, expected):
    from lacuna.app import qt_check

    problem = qt_check.display_problem(env, "linux", loads=lambda name: None, display_error=lambda d: None)
    assert (problem is None) if expected is None else (expected in problem)
    assert qt_check.display_problem({"DISPLAY": ":0"}, "darwin") is None
@pytest.mark.slow
def test_self_test_runs_headless():
    run = _lacuna("--self-test", drop=("DISPLAY", "WAYLAND_DISPLAY"))
    assert run.returncode == 0, run.stderr[-2000:]
    assert "self-test passed" in run.stdout
    assert f"lacuna: {engine.__version__}" in run.stdout


def test_qt_options_pass_through_and_the_file_is_still_the_file():
    options, qt = app_main._parse(["lacuna", "-platform", "offscreen", "story.txt", "-reverse"])
    assert options.file == "story.txt"
    assert qt == ["-platform", "offscreen", "-reverse"]
    options, qt = app_main._parse(["lacuna", "-style", "fusion"])
    assert options.file is None and qt == ["-style", "fusion"]
