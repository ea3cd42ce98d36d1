"""Benchmark: what the window does with a large document after it is open (issue 20, leftovers).

    QT_QPA_PLATFORM=offscreen python -m benchmarks.bench_window_large SCENARIO [--mb N] [--old-map]

SCENARIO (one per process):
  keys        type 20 keys in the middle of --mb MB (default 50) of lines that each hold astral
              characters, each key followed by the code-point position of the cursor (what the
              window's slots ask); --old-map drops the position map at every change, as before
  reload      File > Reload after the file changed on disk, then Undo
  save        Save (the document modified by one key)
  replaceall  Replace All of a word found on every line
  mask        Select All, then Mask
  paste       paste --mb/5 MB at the end, then Undo
  autosave    one autosave of the modified document (the GUI thread's part; the write runs on a thread)
  close       close the window (unmodified)

Prints, per action, its wall time, the GUI thread's CPU time (time.thread_time, which the
machine's load inflates less than wall time), and the longest stall of a 5 ms QTimer on
the GUI thread with the CPU time of it. Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.bench_large_inputs import _app, _settle, _window

LINE = "the quick brown fox \U0001f642 jumps over a lazy dog \U00020000 while seven wizards judge"


def make_text(mb: float) -> str:
    """About ``mb`` MB (code points) of lines that each hold two astral characters."""
    n = int(mb * 1_000_000) // (len(LINE) + 1)
    return (LINE + "\n") * n


class Measure:
    """Wall time, GUI-thread CPU time and the longest event-loop stall of a block."""

    def __init__(self, app, name: str) -> None:
        from tests.app.fakes import StallProbe

        self.app, self.name, self.probe = app, name, StallProbe()

    def __enter__(self):
        self.probe.start()
        self.wall, self.cpu = time.perf_counter(), time.thread_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.thread_time() - self.cpu
        self.app.processEvents()
        self.probe.stop()
        gaps = self.probe.gaps or [self.wall]
        busy = self.probe.busy or [self.cpu]
        k = max(range(len(gaps)), key=gaps.__getitem__)
        print(f"{self.name}: wall {self.wall:.3f} s, GUI thread CPU {self.cpu:.3f} s, longest stall "
              f"{gaps[k] * 1000:.0f} ms ({busy[k] * 1000:.0f} ms CPU)", flush=True)


def _open(app, w, mb: float) -> tuple[str, Path]:
    text = make_text(mb)
    path = Path(tempfile.mkdtemp()) / "big.txt"
    path.write_text(text, encoding="utf-8")
    assert w.files.open_path(str(path))
    _settle(app)
    print(f"{len(text) / 1e6:.1f} MB (code points), {text.count(chr(10))} lines, "
          f"{len(text) // (len(LINE) + 1) * 2} astral characters", flush=True)
    return text, path


def scenario_keys(app, w, args) -> None:
    from PySide6.QtTest import QTest

    from lacuna.app import positions

    if args.old_map:
        positions.DocumentPositions._changed = lambda self, *_: setattr(self, "_map", None)
    text, _ = _open(app, w, args.mb)
    w.editor.setTextCursor(positions.cursor_at(w.editor.document(), len(text) // 2))
    w.editor.setFocus()
    _settle(app)
    import gc

    collections = []
    gc.callbacks.append(lambda phase, info: collections.append((phase, info["generation"], time.perf_counter())))
    cpu, wall = [], []
    for ch in "xabcdefghijklmnopqrst":  # the first key lays out the new view: not counted
        t, c = time.perf_counter(), time.thread_time()
        QTest.keyClicks(w.editor, ch)
        positions.position(w.editor.textCursor())
        app.processEvents()
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
    full = [t for (p, g, t) in collections if g == 2]  # start and stop of each full collection
    spans = [f"{(b - a) * 1000:.0f} ms" for a, b in zip(full[::2], full[1::2])]
    print("full GC passes during typing:", len(full) // 2, spans)
    print("per key CPU ms:", " ".join(f"{c * 1000:.1f}" for c in cpu))
    cpu, wall = cpu[1:], wall[1:]
    print(f"typing ({'old map: rebuilt after each change' if args.old_map else 'incremental map'}): "
          f"{len(cpu)} keys, GUI thread CPU per key median {statistics.median(cpu) * 1000:.1f} ms, "
          f"worst {max(cpu) * 1000:.1f} ms; wall median {statistics.median(wall) * 1000:.1f} ms, "
          f"worst {max(wall) * 1000:.1f} ms; map rebuilds {positions.for_document(w.editor.document()).rebuilds}")


def scenario_reload(app, w, args) -> None:
    text, path = _open(app, w, args.mb)
    path.write_text(text.replace("fox", "cat"), encoding="utf-8")
    with Measure(app, "reload"):
        assert w.files.reload()
    with Measure(app, "undo of the reload"):
        w.editor.undo()


def scenario_save(app, w, args) -> None:
    _open(app, w, args.mb)
    w.editor.textCursor().insertText("x")
    with Measure(app, "save"):
        assert w.files.save()


def scenario_replaceall(app, w, args) -> None:
    _open(app, w, args.mb)
    w.findbar.open(True)
    w.findbar.find_edit.setText("wizards")
    w.findbar.replace_edit.setText("witches")
    with Measure(app, "replace all"):
        n = w.findbar.replace_all()
    print(f"{n} replaced")
    with Measure(app, "undo of the replace all"):
        w.editor.undo()


def scenario_mask(app, w, args) -> None:
    _open(app, w, args.mb)
    with Measure(app, "select all"):
        w.editor.selectAll()
    with Measure(app, "mask"):
        w.mask_action.trigger()
    print(f"{len(w.editor.masks)} mask(s)")


def scenario_paste(app, w, args) -> None:
    from PySide6.QtGui import QTextCursor
    from PySide6.QtWidgets import QApplication

    _open(app, w, args.mb)
    QApplication.clipboard().setText(make_text(args.mb / 5))
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    with Measure(app, f"paste {args.mb / 5:.0f} MB"):
        w.editor.paste()
    with Measure(app, "undo of the paste"):
        w.editor.undo()


def scenario_autosave(app, w, args) -> None:
    _open(app, w, args.mb)
    w.editor.textCursor().insertText("x")
    with Measure(app, "autosave (GUI thread)"):
        assert w.files.autosave_now()
    t = time.perf_counter()
    while w.files.store.busy:
        app.processEvents()
    print(f"the write on its thread ended {time.perf_counter() - t:.3f} s later")


def scenario_close(app, w, args) -> None:
    _open(app, w, args.mb)
    with Measure(app, "close"):
        w.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=[n[9:] for n in globals() if n.startswith("scenario_")])
    p.add_argument("--mb", type=float, default=50)
    p.add_argument("--old-map", action="store_true")
    args = p.parse_args()
    app = _app()
    w = _window()
    _settle(app)
    globals()[f"scenario_{args.scenario}"](app, w, args)
    w.editor.document().setModified(False)
    w.close()


if __name__ == "__main__":
    main()
