"""Files: nothing rewritten, nothing lost (issue 8, item 6)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtGui import QTextCursor

from lacuna.app import autosave, fileio
from lacuna.app.paths import autosave_dir, state_dir
from lacuna.app.positions import document_text
from lacuna.engine import safe_write

ROOT = Path(__file__).resolve().parents[2]


# ---- line endings ------------------------------------------------------------------------
MIXED = {
    "crlf_lf_crlf": b"line one\r\nline two\nline three\r\n",
    "crlf_cr_crlf": b"a\r\nb\rc\r\n",
    "lone_crs": b"one\rtwo\rthree",
    "cr_then_lf": b"x\ry\n\nz",
    "paragraph_separator": "p1\u2029p2\np3\u2029".encode("utf-8"),
    "cr_cr_lf": b"a\r\r\nb\n\r",
    "utf16_mixed": "\ufeffé\r\nü\nö".encode("utf-16-le"),
}


@pytest.mark.parametrize("name", sorted(MIXED))
def test_mixed_endings_survive_an_unedited_save(window, tmp_path, name):
    src = tmp_path / f"{name}.txt"
    src.write_bytes(MIXED[name])
    assert window.files.open_path(str(src))
    assert not window.editor.document().isModified()
    assert window.files.save_as(str(tmp_path / "copy.txt"))
    assert (tmp_path / "copy.txt").read_bytes() == MIXED[name]
    # and once more over the original, now that its format was settled by a save
    window.editor.document().setModified(True)
    assert window.files.save_to(str(src))
    assert src.read_bytes() == MIXED[name]


endings = st.sampled_from(["\n", "\r\n", "\r", "\u2029"])
lines = st.lists(st.tuples(st.text(st.sampled_from("ab é\t\u2028\x0b\x0c"), max_size=6), endings), max_size=12)


@given(lines, st.booleans())
def test_decode_encode_is_the_identity(parts, last_line):
    raw = "".join(a + e for a, e in parts) + ("tail" if last_line else "")
    data = raw.encode("utf-8")
    text, fmt = fileio.decode(data)
    assert "\r" not in text and "\u2029" not in text
    assert fileio.encode(text, fmt) == data


def _unambiguous(parts) -> bool:
    # a "\r" ending, then an empty line ending in "\n", reads back as one "\r\n"
    return len(parts) >= 2 and not any(e == "\r" and not b and f.startswith("\n")
                                       for (_, e), (b, f) in zip(parts, parts[1:]))


@given(lines.filter(_unambiguous), st.data())
def test_an_edited_line_takes_the_majority_ending_and_the_others_keep_theirs(parts, data):
    raw = "".join(a + e for a, e in parts)
    text, fmt = fileio.decode(raw.encode("utf-8"))
    k = data.draw(st.integers(0, len(parts) - 1))
    new_lines = text.split("\n")
    new_lines[k] = new_lines[k] + "EDIT"
    out = fileio.encode("\n".join(new_lines), fmt).decode("utf-8")
    expected = "".join((a + "EDIT" if j == k else a) + (fmt.newline if j == k else e)
                       for j, (a, e) in enumerate(parts))
    assert out == expected


def test_edited_lines_in_the_window_take_the_majority(window, tmp_path):
    src = tmp_path / "mixed.txt"
    src.write_bytes(b"a\r\nb\nc\r\nd\r\n")
    window.files.open_path(str(src))
    c = window.editor.document().find("d")
    c.insertText("D")
    c.movePosition(QTextCursor.MoveOperation.End)
    c.insertText("new\n")
    assert window.files.save()
    assert src.read_bytes() == b"a\r\nb\nc\r\nD\r\nnew\r\n"  # b keeps its LF


# ---- another program changed the file ----------------------------------------------------
def _open_edited(window, path: Path, content: bytes = b"mine\n"):
    path.write_bytes(content)
    assert window.files.open_path(str(path))
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    window.editor.insertPlainText("typed\n")


@pytest.mark.parametrize("answer", ["cancel", "overwrite", "reload"])
def test_a_file_changed_on_disk_is_never_silently_overwritten(window, tmp_path, monkeypatch, answer):
    f = tmp_path / "shared.txt"
    _open_edited(window, f)
    f.write_bytes(b"theirs, written by another program\n")
    asked = []
    monkeypatch.setattr(window.files, "ask_file_conflict", lambda name, kind: asked.append((name, kind)) or answer)
    saved = window.files.save()
    assert asked == [("shared.txt", "changed")]
    if answer == "cancel":
        assert not saved and f.read_bytes() == b"theirs, written by another program\n"
        assert document_text(window.editor.document()) == "mine\ntyped\n"
    elif answer == "overwrite":
        assert saved and f.read_bytes() == b"mine\ntyped\n"
        asked.clear()
        window.editor.insertPlainText("x")
        assert window.files.save() and asked == []  # the save took a new stamp
    else:
        assert not saved and f.read_bytes() == b"theirs, written by another program\n"
        assert document_text(window.editor.document()) == "theirs, written by another program\n"
        assert not window.editor.document().isModified()
        window.editor.undo()  # the user's version is one undo away
        assert document_text(window.editor.document()) == "mine\ntyped\n"


def test_a_change_keeping_size_and_mtime_is_still_seen_and_a_touch_is_not(window, tmp_path, monkeypatch):
    f = tmp_path / "same-size.txt"
    _open_edited(window, f, b"abcd\n")
    st0 = f.stat()
    asked = []
    monkeypatch.setattr(window.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns + 5_000_000_000))  # a touch: same bytes
    assert window.files.save() and asked == []
    st1 = f.stat()
    f.write_bytes(b"wxyz\n")  # same size...
    os.utime(f, ns=(st1.st_atime_ns, st1.st_mtime_ns))  # ...and the same mtime: only the hash tells
    window.editor.insertPlainText("more")
    assert not window.files.save() and asked == ["changed"]
    assert f.read_bytes() == b"wxyz\n"


def test_save_as_is_offered_for_a_changed_file(window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    f, other = tmp_path / "a.txt", tmp_path / "b.txt"
    _open_edited(window, f)
    f.write_bytes(b"theirs\n")
    monkeypatch.setattr(window.files, "ask_file_conflict", lambda name, kind: "save_as")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(other), "")))
    assert window.files.save()
    assert f.read_bytes() == b"theirs\n" and other.read_bytes() == b"mine\ntyped\n"
    assert window.files.path == str(other.resolve())


def test_a_read_only_file_is_not_overwritten_without_asking(window, tmp_path, monkeypatch):
    f = tmp_path / "locked.txt"
    _open_edited(window, f)
    f.chmod(0o444)
    asked = []
    monkeypatch.setattr(window.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert not window.files.save()
    assert asked == ["readonly"] and f.read_bytes() == b"mine\n"
    monkeypatch.setattr(window.files, "ask_file_conflict", lambda name, kind: "overwrite")
    assert window.files.save() and f.read_bytes() == b"mine\ntyped\n"
    assert stat.S_IMODE(f.stat().st_mode) == 0o444  # still read-only


# ---- files that are not text files ----------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_at_once(window, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def unblock():  # only reached if the open blocked: then the test fails instead of hanging
        fd = os.open(fifo, os.O_WRONLY)
        os.close(fd)

    rescue = threading.Timer(10, unblock)
    rescue.daemon = True
    rescue.start()
    try:
        assert not window.files.open_path(str(fifo))
    finally:
        rescue.cancel()
    assert "named pipe" in window.banner_label.text()


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero here")
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_without_reading_it(window, device):
    assert not window.files.open_path(device)
    assert "device" in window.banner_label.text()


def test_vertical_tab_and_form_feed_are_text(window, tmp_path):
    data = b"page one\x0cpage two\x0bcolumn\n\x0c\n"
    f = tmp_path / "pages.txt"
    f.write_bytes(data)
    assert window.files.open_path(str(f))
    assert document_text(window.editor.document()) == data.decode()
    assert window.files.save_as(str(tmp_path / "copy.txt"))
    assert (tmp_path / "copy.txt").read_bytes() == data


# ---- a save killed half way -----------------------------------------------------------------
KILLED_SAVE = """
import os, sys
from pathlib import Path
from lacuna.app import fileio
def stuck(fd):
    print("writing", flush=True)
    sys.stdin.readline()  # the test kills us here: the temp file exists, the rename never happens
os.fsync = stuck
fileio.write_text_atomic(sys.argv[1], "new text", fileio.TextFormat(), Path(sys.argv[2]))
"""


def test_a_killed_saves_temp_file_is_removed_at_the_next_start(make_window, tmp_path):
    target = tmp_path / "doc.txt"
    target.write_bytes(b"old text")
    journal = state_dir() / "saving"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(target), str(journal)], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.kill()
        proc.wait()
    temps = list(tmp_path.glob(".lacuna-*.tmp"))
    assert len(temps) == 1 and target.read_bytes() == b"old text"
    # a save under way in another window keeps its temp file
    running_tmp = tmp_path / ".lacuna-0123456789abcdef.tmp"
    running_tmp.write_bytes(b"half")
    running = safe_write._Journal(journal, {"tmp": str(running_tmp)})
    try:
        make_window(show=False)
        assert list(tmp_path.glob(".lacuna-*.tmp")) == [running_tmp]
        assert target.read_bytes() == b"old text"
    finally:
        running.close()


# ---- crash recovery ------------------------------------------------------------------------
def _orphan(name: str, text: str, saved_at: float, lock: bool = True) -> Path:
    folder = autosave_dir()
    folder.mkdir(parents=True, exist_ok=True)
    f = folder / f"{name}.json"
    f.write_text(json.dumps({"version": 1, "path": None, "text": text, "saved_at": saved_at}), encoding="utf-8")
    if lock:  # the lock file a crashed window leaves, held by nobody now
        f.with_suffix(".lock").write_text("")
    return f


def test_every_crashed_windows_autosave_is_offered_even_when_its_pid_is_reused(make_window, monkeypatch):
    reused = _orphan(f"{os.getppid()}-aaaa0001", "from a window whose pid now belongs to another process", 2.0)
    older = _orphan("999999999-aaaa0002", "an older crash", 1.0)
    w = make_window()
    offered = []
    monkeypatch.setattr(w.files, "ask_recovery", lambda rec, k, n: offered.append((rec.text, k, n)) or "later")
    w.files.offer_recovery()
    assert offered == [("from a window whose pid now belongs to another process", 0, 2), ("an older crash", 1, 2)]
    assert reused.exists() and older.exists()  # "Not now" keeps them
    # restoring one leaves the other to be offered again
    monkeypatch.setattr(w.files, "ask_recovery", lambda rec, k, n: "restore")
    w.files.offer_recovery()
    assert document_text(w.editor.document()) == "from a window whose pid now belongs to another process"
    assert not reused.exists() and older.exists()
    assert "1 more autosaved text" in w.banner_label.text()


def test_discard_removes_only_what_the_user_was_shown(make_window, monkeypatch):
    shown = _orphan("999999999-bbbb0001", "shown and discarded", 3.0)
    rewritten = _orphan("999999998-bbbb0002", "shown, then rewritten", 2.0)
    w = make_window()
    late = []

    def answer(rec, k, n):
        if k == 0:
            # while the question is up, another crashed window's autosave appears
            late.append(_orphan("999999997-bbbb0003", "never shown", 1.0))
            data = json.loads(rewritten.read_text(encoding="utf-8"))
            data["text"] = "newer words nobody saw"
            rewritten.write_text(json.dumps(data), encoding="utf-8")
            os.utime(rewritten, ns=(time.time_ns(), time.time_ns() + 10**9))
        return "discard"

    monkeypatch.setattr(w.files, "ask_recovery", answer)
    w.files.offer_recovery()
    assert not shown.exists()
    assert rewritten.exists() and late[0].exists()


def test_an_open_window_in_this_process_is_not_a_crash(make_window):
    a = make_window()
    a.editor.insertPlainText("typing")
    a.files.autosave_now()
    make_window()
    assert autosave.find_orphans() == []


# ---- closing while a model loads ------------------------------------------------------------------
def test_closing_while_a_model_loads_closes_at_once(make_window, qtbot):
    from tests.app.fakes import FakeModel

    release, started, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_loader(spec):
        started.set()
        release.wait(20)  # a regression waits here; the timeout keeps the suite from hanging
        finished.set()
        return FakeModel()

    w = make_window(loader=slow_loader)
    w.models.load_model("slow")
    assert started.wait(5)
    assert w.close()
    # the window closed (its engine thread joined) while the load was still under way
    assert not finished.is_set() and not w.engine_thread.isRunning()
    release.set()
    assert finished.wait(5)
