"""Entry point: ``lacuna [FILE]``. The window appears first; the engine (torch) is
imported and the model loaded on a worker thread afterwards."""
from __future__ import annotations

import logging
import os
import sys
import time

_T0 = time.perf_counter()


def _style_sheet() -> str:
    try:
        from engine import resources  # engine.resources is stdlib-only

        p = resources.path("style.qss")
        return p.read_text(encoding="utf-8") if p.is_file() else ""
    except Exception:  # noqa: BLE001 - the style is optional
        return ""


def _icon():
    try:
        from PySide6.QtGui import QIcon

        from engine import resources

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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    logging.basicConfig(level=os.environ.get("LACUNA_LOG", "WARNING"),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Lacuna")
    app.setOrganizationName("lacuna")
    app.setApplicationDisplayName("Lacuna")
    app.setDesktopFileName("lacuna")
    qss = _style_sheet()
    if qss:
        app.setStyleSheet(qss)
    icon = _icon()
    if icon is not None:
        app.setWindowIcon(icon)
    window = build_window()
    files = [a for a in argv[1:] if not a.startswith("-")]
    if files:
        window.open_path(files[0])
    window.show()
    launched = os.environ.get("LACUNA_STARTUP_TIME")  # `date +%s.%N` at launch, to measure start-up
    if launched:
        def _report() -> None:
            sys.stderr.write(f"lacuna: window shown {time.time() - float(launched):.3f} s after launch "
                             f"({time.perf_counter() - _T0:.3f} s after importing app.main); "
                             f"torch imported: {'torch' in sys.modules}\n")
        QTimer.singleShot(0, _report)
    QTimer.singleShot(0, window.offer_recovery)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
