"""`pip install lacuna-editor` from a built wheel gives working programs: the
wheel goes into a fresh virtual environment (its dependencies come from the
system site, so no network is needed) and its own `lacuna-cli` and `lacuna`
run from there, away from the checkout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import venv

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(built_wheel, tmp_path_factory):
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    run = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--no-deps",
         "--no-index", "--force-reinstall", "-q", str(built_wheel)],
        capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return env_dir


def _run(installed, *argv, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run([str(installed / "bin" / argv[0]), *argv[1:]], cwd=installed, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_installed_package_is_used(installed):
    run = _run(installed, "python", "-c", "import engine, app, engine.resources as r; "
               "print(engine.__file__); print(app.__file__); print(r.root())")
    assert run.returncode == 0, run.stderr
    for line in run.stdout.split():
        assert line.startswith(str(installed)), line


def test_installed_cli_fills_a_span(installed):
    run = _run(installed, "lacuna-cli", "infill", "--json", "In the beginning God created the [[heaven]] and the earth.")
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["text"].startswith("In the beginning God created the ")
    assert out["text"].endswith(" and the earth.")
    assert out["nfe"] >= 1


def test_installed_self_test_passes(installed):
    run = _run(installed, "lacuna", "--self-test")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "self-test passed" in run.stdout
    for key in ("lacuna:", "torch:", "transformers:", "qt:", "device:"):
        assert key in run.stdout
