"""Render the main window mid-infill to a PNG (the README's picture).

    QT_QPA_PLATFORM=offscreen python -m tests.app.make_screenshot OUT.png [--model SPEC] [--at 0.45]

Loads the model (default: the starter when present, else a tiny random
ModernBERT, whose fills are gibberish), opens a short public-domain text
(Hamlet), masks three spans and an insertion, runs Infill and holds the run at the given
fraction of its steps while the window is grabbed with QWidget.grab().
Not collected by pytest.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.app.fakes import STARTER

TEXT = """HAMLET.
To be, or not to be, that is the question:
Whether 'tis nobler in the mind to suffer
The slings and arrows of outrageous fortune,
Or to take arms against a sea of troubles,
And by opposing end them? To die: to sleep;
No more; and by a sleep to say we end
The heart-ache and the thousand natural shocks
That flesh is heir to, 'tis a consummation
Devoutly to be wish'd. To die, to sleep;
To sleep: perchance to dream: ay, there's the rub;
For in that sleep of death what dreams may come
When we have shuffled off this mortal coil,
Must give us pause.
"""
MASKED = ("outrageous fortune", "a sea of troubles", "what dreams may come")
ANCHOR = "Must give us pause."


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--model")
    ap.add_argument("--at", type=float, default=0.45)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--size", default="1280x800")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--candidates", type=int, default=1)
    ap.add_argument("--insertion", type=int, default=12, help="tokens inserted after the last line (0: none)")
    args = ap.parse_args()

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    from lacuna.app.main import _style_sheet, build_window

    qss = _style_sheet()
    if qss:
        app.setStyleSheet(qss)
    from lacuna.engine import load_model, stream_infill

    spec = args.model
    if spec is None:
        if STARTER.is_file():
            spec = "starter"
        else:
            from tests.support.tiny import build_tiny_modernbert

            spec = str(build_tiny_modernbert(Path(tempfile.mkdtemp())))

    hold, grabbed = threading.Event(), threading.Event()
    target = max(1, int(args.steps * args.at))

    def held_stream(model, request, cancel=None):
        for ev in stream_infill(model, request, cancel=cancel):
            if ev.step == target:
                time.sleep(0.1)  # like a slow step: the worker sends this event at once, unbatched
            yield ev
            if ev.step == target:
                hold.set()
                grabbed.wait(30)

    w = build_window(stream=held_stream, loader=load_model, autoload=False)
    wd, ht = (int(x) for x in args.size.split("x"))
    w.resize(wd, ht)
    folder = Path(tempfile.mkdtemp())
    doc = folder / "hamlet.txt"
    doc.write_text(TEXT, encoding="utf-8")
    w.files.open_path(str(doc))
    w.show()
    loop = QEventLoop()
    w.modelReady.connect(loop.quit)
    w.modelFailed.connect(loop.quit)
    w.models.load_model(spec)
    loop.exec()
    text = w.editor.toPlainText()
    for phrase in MASKED:
        i = text.index(phrase)
        w.editor.add_mask(i, i + len(phrase))
    if args.insertion:
        i = text.index(ANCHOR) + len(ANCHOR)
        w.editor.add_mask(i, i, length=args.insertion)
    w.settings_panel.steps.setValue(args.steps)
    w.settings_panel.random_seed.setChecked(False)
    w.settings_panel.seed.setValue(args.seed)
    w.settings_panel.temperature.setValue(args.temperature)
    w.settings_panel.candidates.setValue(args.candidates)

    def poll():
        if hold.is_set():
            timer.stop()
            QTimer.singleShot(120, shoot)  # let the coalesced frame land

    def shoot():
        w.infill.render_frame()
        w.grab().save(args.out)
        print(f"saved {args.out} at step {target}/{args.steps} with {w.models.model_info.name if w.models.model_info else spec}")
        grabbed.set()
        w.runFinished.connect(loop.quit)

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(10)
    w.infill.start()
    loop.exec()
    w.editor.document().setModified(False)
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
