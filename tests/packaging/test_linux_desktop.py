"""The Linux desktop integration: the .desktop entry and AppStream metainfo are
valid, and install.sh writes a menu entry, icons and metainfo under the
user's data folder only, then --uninstall removes exactly those."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"
ID = "io.github.lacuna_editor.Lacuna"


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.skipif(shutil.which("desktop-file-validate") is None, reason="desktop-file-utils not installed")
def test_desktop_entry_is_valid():
    run = subprocess.run(["desktop-file-validate", str(LINUX / f"{ID}.desktop")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.skipif(shutil.which("appstreamcli") is None, reason="appstream not installed")
def test_metainfo_is_valid():
    run = subprocess.run(["appstreamcli", "validate", "--no-net", str(LINUX / f"{ID}.metainfo.xml")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_desktop_entry_opens_text_and_markdown():
    entry = (LINUX / f"{ID}.desktop").read_text()
    assert "MimeType=text/plain;text/markdown;" in entry
    assert f"Icon={ID}" in entry
    assert "Exec=lacuna %f" in entry


def test_install_and_uninstall_touch_only_the_data_folder(tmp_path):
    data = tmp_path / "data"
    home = tmp_path / "home"
    home.mkdir()
    program = tmp_path / "bin with space" / "lacuna"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    env = dict(os.environ, XDG_DATA_HOME=str(data), HOME=str(home))
    run = subprocess.run(["sh", str(LINUX / "install.sh"), "--exec", str(program)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    installed = _files(data)
    assert f"applications/{ID}.desktop" in installed
    assert f"metainfo/{ID}.metainfo.xml" in installed
    assert f"icons/hicolor/scalable/apps/{ID}.svg" in installed
    entry = (data / "applications" / f"{ID}.desktop").read_text()
    assert f'Exec="{program}" %f' in entry and f"TryExec={program}" in entry
    assert _files(home) == set()

    run = subprocess.run(["sh", str(LINUX / "install.sh"), "--uninstall"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    # Only caches the desktop tools may rebuild are left.
    assert {f for f in _files(data) if not f.endswith(("mimeinfo.cache", "icon-theme.cache"))} == set()


def test_install_refuses_a_missing_program(tmp_path):
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"))
    run = subprocess.run(["sh", str(LINUX / "install.sh"), "--exec", str(tmp_path / "nope")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "not an executable" in run.stderr
    assert not (tmp_path / "data").exists()
