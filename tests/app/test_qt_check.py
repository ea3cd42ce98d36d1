"""`lacuna` names exactly the system libraries Qt's xcb plugin lacks, or says the display
is unreachable, in one line with exit 1, where Qt would abort with a core dump blaming
libxcb-cursor0 (the first-hour report: libxcb-icccm4 and libxcb-keysyms1 were missing)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from lacuna.app import qt_check

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb check is for Linux")
PLUGIN = qt_check.xcb_plugin()
needs_plugin = pytest.mark.skipif(PLUGIN is None, reason="this PySide6 has no xcb plugin")


@needs_plugin
def test_the_plugins_dependencies_are_read_from_its_elf_header():
    needed = qt_check.elf_needed(PLUGIN)
    assert "libQt6XcbQpa.so.6" in needed
    every = set()
    qt_check.missing_libraries(PLUGIN, loads=lambda name: every.add(name))
    assert {"libxcb.so.1", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"} <= every


@needs_plugin
@pytest.mark.skipif(shutil.which("ldd") is None, reason="no ldd to compare with")
def test_what_is_missing_here_agrees_with_ldd():
    out = subprocess.run(["ldd", str(PLUGIN)], capture_output=True, text=True).stdout
    not_found = list(dict.fromkeys(line.split()[0] for line in out.splitlines() if "not found" in line))
    assert qt_check.missing_libraries(PLUGIN) == not_found


@needs_plugin
@pytest.mark.parametrize("absent", [
    ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"],  # the report's machine
    ["libxcb-cursor.so.0"],
    ["libxkbcommon-x11.so.0", "libxcb-icccm.so.4", "libEGL.so.1"],
])
def test_the_message_names_exactly_the_missing_libraries_and_packages(absent):
    problem = qt_check.display_problem({"DISPLAY": ":0"}, "linux",
                                       loads=lambda name: name if name in absent else None,
                                       display_error=lambda d: None)
    assert problem.count("\n") == 0 and problem.startswith("lacuna: ")
    for name in absent:
        assert name in problem and qt_check.debian_package(name) in problem
    if "libxcb-cursor.so.0" not in absent:
        assert "libxcb-cursor" not in problem


@pytest.mark.parametrize("soname, package", [
    ("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    ("libxcb-cursor.so.0", "libxcb-cursor0"), ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    ("libEGL.so.1", "libegl1"), ("libxcb-render-util.so.0", "libxcb-render-util0"), ("libX11-xcb.so.1", "libx11-xcb1"),
])
def test_debian_package_names(soname, package):
    assert qt_check.debian_package(soname) == package


def test_an_unreachable_display_is_said():
    problem = qt_check.display_problem({"DISPLAY": ":97"}, "linux", loads=lambda name: None,
                                       display_error=qt_check.x_display_error)
    try:
        import ctypes

        ctypes.CDLL("libxcb.so.1")
    except OSError:
        pytest.skip("no libxcb here to try the connection with")
    assert problem is not None and "cannot open the X display ':97'" in problem and problem.count("\n") == 0


def test_lacuna_exits_1_with_one_line_on_an_unreachable_display():
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":97"
    run = subprocess.run([sys.executable, "-m", "app", "story.txt"], env=env, capture_output=True, text=True,
                         timeout=60)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1, run.stderr
    assert lines[0].startswith("lacuna: ") and ("missing" in lines[0] or "cannot open the X display" in lines[0])
