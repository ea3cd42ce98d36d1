"""Benchmark: the window on large inputs (issue 20), one scenario per process.

    QT_QPA_PLATFORM=offscreen python -m benchmarks.bench_large_inputs SCENARIO [--mb N] [--steps N]

SCENARIO:
  open      open a generated file of --mb megabytes (default 50; --one-line: all in one line): the time of the
            open call and of its parts, and the longest gap of a 5 ms QTimer on the
            GUI thread (the longest stall)
  find      Find a word near the end of that file, then one that is absent (with the
            longest stall of the GUI thread)
  type      type 20 keys in the middle of that file
  line      type 20 keys in the middle of a single line of --mb megabytes (default 1)
  masks     type 20 keys in a text holding --masks insertion masks (default 2,000)
  export    export a finished run of --steps steps (default 1,000) as JSON lines and a GIF,
            with a 5 ms QTimer on the GUI thread: its longest gap is the longest stall

Prints wall times and the process's peak resident memory (sampled every 5 ms
from /proc/self/statm) above what it held before the measured action. The
typing figures include the repaint of each key (the event loop runs after each).
Works on older checkouts too (an export_run that returns when done), to compare.
Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches "
         "and every sphinx of black quartz hears my vow").split()


class PeakRSS:
    """The highest resident set size seen while active, sampled on a thread."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.now()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.now())

    def __enter__(self):
        self.base = self.peak = self.now()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())

    def report(self) -> str:
        return f"peak RSS +{(self.peak - self.base) / 2**20:.0f} MiB above {self.base / 2**20:.0f} MiB"


def make_text(mb: float, single_line: bool = False) -> str:
    """About ``mb`` MiB of twelve-word lines (or one line), ending in the word "zebracorn"."""
    words, out, line = WORDS, [], []
    target = int(mb * 2**20)
    k = size = 0
    while size < target:
        w = words[k % len(words)]
        k += 1
        line.append(w)
        size += len(w) + 1
        if not single_line and len(line) >= 12:
            out.append(" ".join(line))
            line = []
    out.append(" ".join(line))
    text = "\n".join(out) if not single_line else out[0]
    return text[:target - 40] + " zebracorn end\n"


def _app():
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    os.environ.setdefault("LACUNA_STATE_DIR", tempfile.mkdtemp())
    return app


def _window(**kw):
    from tests.app.fakes import FakeModel, make_stream

    from lacuna.app.main import build_window

    def loader(spec):
        m = FakeModel()
        m.context_length = 8192
        return m

    w = build_window(stream=kw.pop("stream", None) or make_stream(), loader=loader, autoload=False, **kw)
    w.show()
    return w


def _settle(app) -> None:
    for _ in range(3):
        app.processEvents()


def _type(app, w, keys: str = "abcdefghijklmnopqrst") -> list[float]:
    from PySide6.QtTest import QTest

    times = []
    for ch in keys:
        t = time.perf_counter()
        QTest.keyClicks(w.editor, ch)
        app.processEvents()
        times.append(time.perf_counter() - t)
    return times


def _report_keys(times: list[float]) -> None:
    print(f"typing: {len(times)} keys, median {statistics.median(times) * 1000:.1f} ms per key, "
          f"worst {max(times) * 1000:.1f} ms")


def scenario_open(args) -> None:
    app = _app()
    w = _window()
    _settle(app)
    path = Path(tempfile.mkdtemp()) / "big.txt"
    path.write_text(make_text(args.mb, single_line=args.one_line), encoding="utf-8")
    from lacuna.app import fileio

    t = time.perf_counter()
    fileio.open_text(str(path))
    read = time.perf_counter() - t
    from tests.app.fakes import StallProbe

    probe = StallProbe()
    with PeakRSS() as mem:
        probe.start()
        t = time.perf_counter()
        w.files.open_path(str(path))
        opened = time.perf_counter() - t
        t = time.perf_counter()
        _settle(app)
        shown = time.perf_counter() - t
        probe.stop()
    print(f"open {args.mb} MB{' in one line' if args.one_line else ''}: open_path {opened:.2f} s (of which fileio.open_text alone {read:.2f} s), "
          f"first paint after it {shown * 1000:.0f} ms, GUI thread's longest stall "
          f"{max(probe.gaps, default=opened + shown) * 1000:.0f} ms ({max(probe.busy, default=0) * 1000:.0f} ms of it "
          f"the GUI thread's CPU time); {mem.report()}")
    w.editor.document().setModified(False)
    w.close()


def scenario_find(args) -> None:
    app = _app()
    w = _window()
    w.editor.setPlainText(make_text(args.mb))
    _settle(app)
    from tests.app.fakes import StallProbe

    w.findbar.open(False)
    for word in ("zebracorn", "unicornfish"):
        w.findbar.find_edit.setText(word)
        probe = StallProbe()
        with PeakRSS() as mem:
            probe.start()
            t = time.perf_counter()
            found = w.findbar.find_next()
            first = time.perf_counter() - t
            t = time.perf_counter()
            again = w.findbar.find_next()
            second = time.perf_counter() - t
            app.processEvents()  # the probe's tick after the searches
            probe.stop()
        print(f"find {word!r} ({'found' if found else 'absent'}) in {args.mb} MB: {first:.3f} s, "
              f"again {second:.3f} s ({'found' if again else 'absent'}), GUI thread's longest stall "
              f"{max(probe.gaps) * 1000:.0f} ms ({max(probe.busy) * 1000:.0f} ms of it the GUI thread's CPU time); "
              f"{mem.report()}")
    w.editor.document().setModified(False)
    w.close()


def _type_in_middle(app, w, text: str) -> None:
    from lacuna.app import positions

    w.editor.setTextCursor(positions.cursor_at(w.editor.document(), len(text) // 2))
    w.editor.setFocus()
    _settle(app)
    _type(app, w, "x")  # the first key lays out the new view
    with PeakRSS() as mem:
        times = _type(app, w)
    _report_keys(times)
    print(mem.report())


def scenario_type(args) -> None:
    app = _app()
    w = _window()
    text = make_text(args.mb)
    w.editor.setPlainText(text)
    print(f"{args.mb} MB, {text.count(chr(10)) + 1} lines")
    _type_in_middle(app, w, text)
    w.editor.document().setModified(False)
    w.close()


def scenario_line(args) -> None:
    app = _app()
    w = _window()
    text = make_text(args.mb if args.mb != 50 else 1, single_line=True)
    w.editor.setPlainText(text)
    print(f"one line of {len(text) / 2**20:.2f} MB")
    _type_in_middle(app, w, text)
    w.editor.document().setModified(False)
    w.close()


def scenario_masks(args) -> None:
    app = _app()
    w = _window()
    text = make_text(args.masks * 60 / 2**20)
    w.editor.setPlainText(text)
    starts = [i + 1 for i, ch in enumerate(text) if ch == " "][: args.masks * 2: 2]
    t = time.perf_counter()
    for s in starts:
        w.editor.add_mask(s, s, length=4)
    added = time.perf_counter() - t
    print(f"{len(w.editor.masks)} insertion masks in {len(text)} characters (added in {added:.2f} s)")
    _type_in_middle(app, w, text)
    w.editor.document().setModified(False)
    w.close()


def scenario_export(args) -> None:
    from PySide6.QtCore import QEventLoop

    from tests.app.fakes import StallProbe

    app = _app()
    w = _window()
    loop = QEventLoop()
    w.modelReady.connect(loop.quit)
    w.models.load_model("fake")
    loop.exec()
    text = make_text(0.01)
    w.editor.setPlainText(text)
    w.editor.add_mask(200, 200, length=args.steps)
    w.settings_panel.steps.setValue(min(args.steps, 1024))
    w.runFinished.connect(loop.quit)
    w.infill.start()
    loop.exec()
    events = len(w.infill.current.events)
    out = Path(tempfile.mkdtemp()) / "run"
    probe = StallProbe()
    done = []
    finished = getattr(w.infill, "exportFinished", None)  # None: an export that ends before returning
    if finished is not None:
        finished.connect(lambda *a: (done.append(a), loop.quit()))
    with PeakRSS() as mem:
        probe.start()
        t = time.perf_counter()
        w.infill.export_run(str(out))
        if finished is not None:
            loop.exec()
        else:
            app.processEvents()  # let the probe see the stall the export made
        took = time.perf_counter() - t
        probe.stop()
    gif = out.with_suffix(".gif")
    size = gif.stat().st_size if gif.exists() else 0
    from PIL import Image

    with Image.open(gif) as im:
        frames, dims = im.n_frames, im.size
    print(f"export {events} steps: {took:.2f} s, GUI thread's longest stall {max(probe.gaps) * 1000:.0f} ms; "
          f"{mem.report()}; GIF {size / 2**20:.1f} MiB, {frames} frames of {dims[0]}x{dims[1]}")
    w.editor.document().setModified(False)
    w.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", choices=("open", "find", "type", "line", "masks", "export"))
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--masks", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--one-line", action="store_true", help="open: the file is one line")
    args = ap.parse_args()
    globals()[f"scenario_{args.scenario}"](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
