"""Benchmark: the GUI thread's work in an autosave of a mixed-ending document (issue 20).

    QT_QPA_PLATFORM=offscreen python -m benchmarks.bench_autosave_endings [--root CHECKOUT]
        [--lines 10000,20000,50000] [--shapes prose,repeated,rewritten] [--window]

An autosave of a file with mixed line endings computes, on the GUI thread, which
line breaks keep their own ending (fileio.settled_endings: unchanged lines are
matched against the text as last read). Two documents, each with two lines edited:

  prose     prose lines with a blank line between each two, its last 10 lines
            ending in CRLF, the others in LF (the reviewer's perf3)
  repeated  "x" and blank lines alternating, every third ending in LF, the
            others in CRLF (the reviewer's perf2): no line occurs only once
  rewritten "a" and "b" lines at random, every seventh edited: no line occurs
            once and the edits are many, the worst case (the diff's budget runs out)

Prints the CPU time (time.process_time) of settled_endings, and with --window of
the window's whole autosave_now (document text, endings, the synced write), per
document size, and the load average before each figure (the machine is shared).
``--root`` imports ``app`` from another checkout (an older commit, to compare).
Not collected by pytest (no test_ prefix).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

WORDS = "the of and to in is was that for it with as his on be at by had are but from or have an they which".split()


def prose(n: int) -> tuple[bytes, list[int]]:
    rng = random.Random(0)
    lines = ["" if i % 2 else " ".join(rng.choice(WORDS) for _ in range(12)) + f" {i}" for i in range(n)]
    return ("\n".join(lines[:-10]) + "\r\n" + "\r\n".join(lines[-10:])).encode(), [2, n - 20]


def repeated(n: int) -> tuple[bytes, list[int]]:
    raw = "".join(("" if i % 2 else "x") + ("\r\n" if i % 3 else "\n") for i in range(n))
    return raw.encode(), [6, n - 6]


def rewritten(n: int) -> tuple[bytes, list[int]]:
    rng = random.Random(1)
    raw = "".join(rng.choice("ab") + ("\r\n" if i % 3 else "\n") for i in range(n))
    return raw.encode(), list(range(0, n, 7))


SHAPES = {"prose": prose, "repeated": repeated, "rewritten": rewritten}


def _edited(text: str, rows: list[int]) -> str:
    lines = text.split("\n")
    for k in rows:
        lines[k] += " edited"
    return "\n".join(lines)


def bench_function(fileio, shape: str, n: int) -> float:
    data, rows = SHAPES[shape](n)
    text, fmt = fileio.decode(data)
    assert fmt.endings is not None, "the document must have mixed endings"
    edited = _edited(text, rows)
    t0 = time.process_time()
    fileio.settled_endings(edited, fmt)
    return time.process_time() - t0


def bench_window(shape: str, n: int, folder: Path) -> float:
    from PySide6.QtGui import QTextCursor

    from lacuna.app.main import build_window
    from tests.app.fakes import fake_loader, make_stream

    data, rows = SHAPES[shape](n)
    f = folder / f"{shape}-{n}.txt"
    f.write_bytes(data)
    w = build_window(stream=make_stream(), loader=fake_loader, autoload=False)
    try:
        assert w.files.open_path(str(f))
        doc = w.editor.document()
        for k in rows:
            c = QTextCursor(doc.findBlockByNumber(k))
            c.movePosition(QTextCursor.MoveOperation.EndOfBlock)
            c.insertText(" edited")
        t0 = time.process_time()
        assert w.files.autosave_now()
        return time.process_time() - t0
    finally:
        doc.setModified(False)
        w.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", help="a checkout to import app from (default: this one)")
    p.add_argument("--lines", default="10000,20000,50000")
    p.add_argument("--shapes", default="prose,repeated,rewritten")
    p.add_argument("--window", action="store_true", help="also time the window's autosave_now")
    args = p.parse_args(argv)
    if args.root:
        sys.path.insert(0, str(Path(args.root).resolve()))
    folder = Path(tempfile.mkdtemp(prefix="lacuna-bench-"))
    os.environ["LACUNA_STATE_DIR"] = str(folder / "state")
    from lacuna.app import fileio

    if args.window:
        from PySide6.QtCore import QSettings
        from PySide6.QtWidgets import QApplication

        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder / "config"))
        app = QApplication.instance() or QApplication([])  # noqa: F841 - kept alive for the windows
    print(f"app from {Path(fileio.__file__).parents[1]}")
    for shape in args.shapes.split(","):
        for n in (int(x) for x in args.lines.split(",")):
            load = os.getloadavg()[0]
            cpu = bench_function(fileio, shape, n)
            line = f"{shape:9} {n:6} lines: settled_endings {cpu:8.3f} s CPU (load {load:.2f})"
            if args.window:
                load = os.getloadavg()[0]
                line += f"; autosave_now {bench_window(shape, n, folder):8.3f} s CPU (load {load:.2f})"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
