"""Screenshots of one run's denoising view at three of its steps (early, middle, final).

    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py OUT_FOLDER [--model starter] [--steps 24]

Opens the main window offscreen (any platform works; offscreen needs no
display), puts a short public-domain text in the editor, masks two spans and
adds an insertion, fills them with the model (the bundled starter by default,
``load_model("starter")``), and once the run is finished moves the timeline to
an early, a middle and the last step of that same run, saving
``QWidget.grab()`` of the main window each time as
OUT_FOLDER/step-NN-of-MM.png. Prints the paths it wrote.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

TEXT = """It was the best of times, it was the worst of times, it was the age of
wisdom, it was the age of foolishness, it was the epoch of belief, it was the
epoch of incredulity, it was the season of Light, it was the season of
Darkness, it was the spring of hope, it was the winter of despair.
"""
MASKED = ("the age of foolishness", "the season of\nDarkness")
INSERT_AFTER = "the spring of hope,"


def _wait(signal_ok, signal_fail=None, timeout_ms: int = 600_000) -> None:
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    signal_ok.connect(loop.quit)
    if signal_fail is not None:
        signal_fail.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    loop.exec()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the PNGs (created if missing)")
    ap.add_argument("--model", default="starter", help="what load_model takes (default: the bundled starter)")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--insertion", type=int, default=8, help="tokens of the insertion mask (0: none)")
    ap.add_argument("--size", default="1280x800")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    # settings and autosaves of this run stay out of the user's own
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    from lacuna.app.main import _style_sheet, build_window
    from lacuna.engine import load_model

    qss = _style_sheet()
    if qss:
        app.setStyleSheet(qss)
    w = build_window(loader=load_model, autoload=False, state_dir=tempfile.mkdtemp())
    width, height = (int(x) for x in args.size.split("x"))
    w.resize(width, height)
    w.show()
    w.models.load_model(args.model)
    _wait(w.modelReady, w.modelFailed)
    if w.models.model is None:
        print(f"could not load {args.model}: {w.banner_label.text()}", file=sys.stderr)
        return 1

    w.editor.setPlainText(TEXT)
    for phrase in MASKED:
        i = TEXT.index(phrase)
        w.editor.add_mask(i, i + len(phrase))
    if args.insertion:
        i = TEXT.index(INSERT_AFTER) + len(INSERT_AFTER)
        w.editor.add_mask(i, i, length=args.insertion)
    panel = w.settings_panel
    panel.steps.setValue(args.steps)
    panel.random_seed.setChecked(False)
    panel.seed.setValue(args.seed)
    panel.temperature.setValue(0.0)
    panel.candidates.setValue(1)
    w.editor.document().setModified(False)

    w.infill.start()
    _wait(w.runFinished, w.runFailed)
    if w.state != "preview":
        print(f"the run did not finish: {w.banner_label.text()}", file=sys.stderr)
        return 1
    n = w.panel.slider.maximum()  # the run's steps, one event each
    picks = sorted({max(1, round(n * 0.2)), max(1, round(n * 0.55)), n})
    args.out.mkdir(parents=True, exist_ok=True)
    for step in picks:
        w.panel.slider.setValue(step)  # the timeline: preview, tint and chart follow
        app.processEvents()
        path = args.out / f"step-{step:02d}-of-{n:02d}.png"
        if not w.grab().save(str(path)):
            print(f"could not write {path}", file=sys.stderr)
            return 1
        print(path)
    w.editor.document().setModified(False)
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
