"""`pip install lacuna-editor` from a built wheel gives working programs: the
wheel goes into a fresh virtual environment (its dependencies come from the
folders the test's own interpreter uses, a virtual environment's or the system's,
so no network is needed) and its own `lacuna-cli` and `lacuna`
run from there, away from the checkout."""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _dependency_dirs() -> list[str]:
    """Where this interpreter finds torch, Qt and the rest: its own site folders (a virtual
    environment's, or the system's) and the user site when it is on."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


@pytest.fixture(scope="module")
def installed(built_wheel, tmp_path_factory):
    # Not system_site_packages: from inside a virtual environment that is the base interpreter's
    # site, which has none of the dependencies. A .pth file lends the new environment the folders
    # this interpreter uses (as plain paths: their own .pth files, such as the checkout's editable
    # install, are not run there).
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, system_site_packages=False, with_pip=False)
    purelib = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "lacuna_test_dependencies.pth").write_text("\n".join(_dependency_dirs()) + "\n")
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


def _other_wheel(folder: Path) -> Path:
    """A wheel of another distribution whose top-level packages are called app and engine
    (generic names many projects use)."""
    wheel = folder / "other_project-1.0-py3-none-any.whl"
    files = {"app/__init__.py": "WHO = 'other app'\n", "engine/__init__.py": "WHO = 'other engine'\n",
             "other_project-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: other-project\nVersion: 1.0\n",
             "other_project-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{name},," for name in files] + ["other_project-1.0.dist-info/RECORD,,"]
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("other_project-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def test_the_installed_package_is_used(installed):
    run = _run(installed, "python", "-c", "import lacuna, lacuna.engine, lacuna.app, lacuna.engine.resources as r; "
               "print(lacuna.engine.__file__); print(lacuna.app.__file__); print(r.root())")
    assert run.returncode == 0, run.stderr
    for line in run.stdout.split():
        assert line.startswith(str(installed)), line


def test_another_distributions_app_package_installs_beside_lacuna(installed, tmp_path):
    """Issue 22: Lacuna installs only under its own name, so a distribution with top-level app and
    engine packages installs beside it and both run."""
    run = subprocess.run([sys.executable, "-m", "pip", "--python", str(installed / "bin" / "python"), "install",
                          "--no-deps", "--no-index", "-q", str(_other_wheel(tmp_path))],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    try:
        other = _run(installed, "python", "-c", "import app, engine; print(app.WHO); print(engine.WHO)")
        assert other.returncode == 0 and other.stdout.split("\n")[:2] == ["other app", "other engine"], other
        ours = _run(installed, "lacuna-cli", "--help")
        assert ours.returncode == 0 and "infill" in ours.stdout, ours
        api = _run(installed, "python", "-c", "from lacuna import load_model, Span, InfillRequest, infill, stream_infill; "
                   "import lacuna.app.main; print(Span.__module__)")
        assert api.returncode == 0 and api.stdout.strip() == "lacuna.engine.types", api
    finally:
        subprocess.run([sys.executable, "-m", "pip", "--python", str(installed / "bin" / "python"), "uninstall",
                        "-y", "-q", "other-project"], capture_output=True, timeout=300)


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
