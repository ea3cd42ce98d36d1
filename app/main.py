"""Entry point: ``lacuna [FILE]``. The window appears first; the engine (torch) is
imported and the model loaded on a worker thread afterwards."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

_T0 = time.perf_counter()
# The freedesktop/AppStream id: the .desktop file and metainfo in packaging/linux are named for it.
APP_ID = "io.github.lacuna_editor.Lacuna"


def _style_sheet() -> str:
    try:
        from lacuna.engine import resources  # engine.resources is stdlib-only

        p = resources.path("style.qss")
        return p.read_text(encoding="utf-8") if p.is_file() else ""
    except Exception:  # noqa: BLE001 - the style is optional
        return ""


def _icon():
    try:
        from PySide6.QtGui import QIcon

        from lacuna.engine import resources

        p = resources.path("icons", "lacuna.svg")
        return QIcon(str(p)) if p.is_file() else None
    except Exception:  # noqa: BLE001 - the icon is optional
        return None


def build_window(**kwargs):
    """Build the main window (a QApplication must exist); does not show it or run the loop.

    Keyword arguments (for tests and automation): ``stream`` (replaces
    engine.stream_infill), ``loader`` (replaces engine.load_model), ``autoload``
    (load the last model at start; default True), ``state_dir`` (autosave folder).
    """
    from .window import MainWindow

    return MainWindow(**kwargs)


def _parse(argv: list[str]):
    import argparse

    from lacuna.engine import __version__

    parser = argparse.ArgumentParser(
        prog="lacuna", description="A desktop editor for infilling text with diffusion language models.")
    parser.add_argument("file", nargs="?", help="a text file to open")
    parser.add_argument("--version", action="version", version=f"Lacuna {__version__}")
    parser.add_argument("--self-test", action="store_true",
                        help="load the starter model, fill one span without a window, print versions, exit")
    # Qt's own options (-platform offscreen, -style fusion, ...) pass through to QApplication;
    # those taking a value are set aside first, or their value would be read as the file.
    ours, qt = [], []
    args = iter(argv[1:])
    for arg in args:
        if arg in _QT_VALUE_OPTIONS:
            qt += [arg, next(args, "")]
        else:
            ours.append(arg)
    options, rest = parser.parse_known_args(ours)
    return options, qt + rest


_QT_VALUE_OPTIONS = frozenset({
    "-platform", "-platformpluginpath", "-platformtheme", "-plugin", "-style", "-stylesheet", "-session",
    "-display", "-geometry", "-qwindowgeometry", "-qwindowtitle", "-qwindowicon", "-qmljsdebugger",
})


def display_problem(env=os.environ, platform: str = sys.platform) -> str | None:
    """Why Qt could not open a window here, in one line, or None (app.qt_check: the
    missing system libraries by name, or an unreachable display). Qt itself would
    abort with exit 134 and blame libxcb-cursor0 whatever is missing."""
    from .qt_check import display_problem as problem

    return problem(env, platform)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    logging.basicConfig(level=os.environ.get("LACUNA_LOG", "WARNING"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options, qt_args = _parse(argv)
    if options.self_test:
        from .selftest import run

        return run()
    problem = display_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    argv = argv[:1] + qt_args
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Lacuna")
    app.setOrganizationName("lacuna")
    app.setApplicationDisplayName("Lacuna")
    app.setDesktopFileName(APP_ID)
    qss = _style_sheet()
    if qss:
        app.setStyleSheet(qss)
    icon = _icon()
    if icon is not None:
        app.setWindowIcon(icon)
    window = build_window()
    if options.file:
        window.files.open_path(options.file)
    window.show()
    launched = os.environ.get("LACUNA_STARTUP_TIME")  # `date +%s.%N` at launch, to measure start-up
    if launched:
        def _report() -> None:
            sys.stderr.write(f"lacuna: window shown {time.time() - float(launched):.3f} s after launch "
                             f"({time.perf_counter() - _T0:.3f} s after importing app.main); "
                             f"torch imported: {'torch' in sys.modules}\n")
        QTimer.singleShot(0, _report)

        def _ready(info) -> None:
            sys.stderr.write(f"lacuna: model {info.name} ready {time.time() - float(launched):.3f} s after launch\n")
        window.modelReady.connect(_ready)
    QTimer.singleShot(0, window.files.offer_recovery)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
