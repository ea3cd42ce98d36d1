"""Build the one-folder desktop bundle in one command, then prove it runs.

    python packaging/build.py [--skip-self-test]

Renders the icons (make_icons.py), runs PyInstaller on packaging/lacuna.spec
into packaging/dist/lacuna/, runs the bundle's `lacuna --self-test` and prints
the bundle's size. Needs the `packaging` extra: pip install -e ".[packaging]".
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIST = HERE / "dist"
WORK = HERE / "build"


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def self_test(bundle: Path) -> float:
    exe = bundle / ("lacuna.exe" if sys.platform == "win32" else "lacuna")
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    t0 = time.perf_counter()
    run = subprocess.run([str(exe), "--self-test"], env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    sys.stdout.write(run.stdout)
    if run.returncode != 0:
        sys.stderr.write(run.stderr)
        raise SystemExit(f"build: the bundle's self-test failed (exit {run.returncode})")
    return seconds


def add_desktop_files(bundle: Path) -> None:
    """Ship the per-user installer beside the programs: linux/install.sh finds the
    bundle's lacuna one folder up, and its icons in linux/icons."""
    target = bundle / "linux"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(HERE / "linux", target)
    shutil.copytree(WORK / "icons", target / "icons", ignore=shutil.ignore_patterns("*.ico", "*.icns"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-self-test", action="store_true")
    args = parser.parse_args(argv)
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        raise SystemExit('build: PyInstaller is missing; run pip install -e ".[packaging]"') from None
    subprocess.run([sys.executable, str(HERE / "make_icons.py"), str(WORK / "icons")], check=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
                    "--distpath", str(DIST), "--workpath", str(WORK / "pyinstaller"),
                    str(HERE / "lacuna.spec")],
                   check=True, env=dict(os.environ, LACUNA_ICONS=str(WORK / "icons")))
    bundle = DIST / "lacuna"
    if sys.platform.startswith("linux"):
        add_desktop_files(bundle)
    print(f"build: {bundle} built in {time.perf_counter() - t0:.0f} s, "
          f"{folder_size(bundle) / 2**20:.0f} MiB on disk")
    if not args.skip_self_test:
        print(f"build: self-test passed in {self_test(bundle):.1f} s (cold start to a finished fill)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
