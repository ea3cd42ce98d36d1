"""Files, round 2 (issue 20): Restore then Save keeps endings and sees changes made after
the crash; two windows or processes saving one file both get asked; a failing autosave
says so until it works again."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtGui import QTextCursor

from lacuna.app import autosave, fileio
from lacuna.app.paths import autosave_dir, save_locks_dir
from lacuna.app.positions import document_text

ROOT = Path(__file__).resolve().parents[2]
MIXED = b"alpha\r\nbeta\ngamma\r\ndelta\r\n"  # the file


def _edit(w, old: str, new: str) -> None:
    c = w.editor.document().find(old)
    assert not c.isNull()
    c.insertText(new)


def _crash(make_window, f: Path, data: bytes, old: str, new: str, encoding=None) -> autosave.Recovered:
    """Open ``f`` holding ``data``, replace ``old`` by ``new``, autosave, and "crash":
    the autosave is then an orphan, as for a process that died."""
    f.write_bytes(data)
    w = make_window()
    assert w.files.open_path(str(f), encoding)
    _edit(w, old, new)
    assert w.files.autosave_now()
    [rec] = autosave.find_orphans(alive=lambda pid: False)
    return rec


# ---- Restore, then Save ------------------------------------------------------------------------
def test_restore_then_save_keeps_the_endings_of_lines_the_user_did_not_touch(make_window, tmp_path):
    f = tmp_path / "mixed.txt"
    rec = _crash(make_window, f, MIXED, "delta", "DELTA")
    w = make_window()
    w.files.restore(rec)
    assert w.format_label.text() == "UTF-8 · CRLF (mixed)"
    assert w.files.save()
    assert f.read_bytes() == b"alpha\r\nbeta\ngamma\r\nDELTA\r\n"  # beta keeps its LF


def test_restore_keeps_encoding_bom_and_endings_through_further_edits(make_window, tmp_path):
    data = "\ufeffeins\r\nzwei\nдрей\rvier\r\nfünf\r\n".encode("utf-16-le")
    f = tmp_path / "utf16.txt"
    rec = _crash(make_window, f, data, "eins", "EINS")
    w = make_window()
    w.files.restore(rec)
    c = w.editor.document().find("fünf")
    c.movePosition(QTextCursor.MoveOperation.EndOfBlock)
    c.insertText("\nsechs")  # typed after the restore: a new line takes the majority ending
    assert w.files.save()
    assert f.read_bytes() == "\ufeffEINS\r\nzwei\nдрей\rvier\r\nfünf\r\nsechs\r\n".encode("utf-16-le")
    assert w.files.fmt.encoding == "utf-16-le" and w.files.fmt.bom


endings = st.sampled_from(["\n", "\r\n", "\r", "\u2029"])
lines = st.lists(st.tuples(st.text(st.sampled_from("ab é"), max_size=4), endings), min_size=1, max_size=10)


def _unambiguous(parts) -> bool:
    # a "\r" ending, then an empty line ending in "\n", reads back as one "\r\n"
    return not any(e == "\r" and not b and f.startswith("\n") for (_, e), (b, f) in zip(parts, parts[1:]))


@settings(max_examples=150, deadline=None)
@given(lines.filter(_unambiguous), st.data())
def test_an_autosave_restores_exactly_the_endings_a_save_would_have_written(parts, data):
    raw = "".join(a + e for a, e in parts)
    text, fmt = fileio.decode(raw.encode("utf-8"))
    rows = text.split("\n")
    k = data.draw(st.integers(0, len(rows) - 1))
    how = data.draw(st.sampled_from(["edit", "insert", "delete"]))
    if how == "edit":
        rows[k] += "X"
    elif how == "insert":
        rows.insert(k, "new")
    elif len(rows) > 1:
        del rows[k]
    edited = "\n".join(rows)
    # what the autosave keeps, through JSON as the file holds it
    kept = json.loads(json.dumps([[i, e] for i, e in fileio.settled_endings(edited, fmt)]))
    restored = fileio.with_endings(fileio.TextFormat(fmt.encoding, fmt.bom, fmt.newline), edited,
                                   [tuple(x) for x in kept])
    assert fileio.encode(edited, restored) == fileio.encode(edited, fmt)


def test_restore_then_save_asks_when_another_program_changed_the_file_after_the_crash(make_window, tmp_path,
                                                                                      monkeypatch):
    f = tmp_path / "mixed.txt"
    rec = _crash(make_window, f, MIXED, "delta", "DELTA")
    f.write_bytes(b"written by another program after the crash\n")
    w = make_window()
    w.files.restore(rec)
    asked = []
    monkeypatch.setattr(w.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert not w.files.save()
    assert asked == ["changed"] and f.read_bytes() == b"written by another program after the crash\n"
    monkeypatch.setattr(w.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "overwrite")
    assert w.files.save()
    assert f.read_bytes() == b"alpha\r\nbeta\ngamma\r\nDELTA\r\n"


def test_a_change_after_the_crash_keeping_size_and_mtime_is_seen(make_window, tmp_path, monkeypatch):
    f = tmp_path / "same.txt"
    rec = _crash(make_window, f, b"abcd\n", "abcd", "ABCD")
    st0 = f.stat()
    f.write_bytes(b"wxyz\n")
    os.utime(f, ns=(st0.st_atime_ns, st0.st_mtime_ns))
    w = make_window()
    w.files.restore(rec)
    asked = []
    monkeypatch.setattr(w.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert not w.files.save() and asked == ["changed"] and f.read_bytes() == b"wxyz\n"


def test_restore_then_save_of_an_unchanged_file_asks_nothing(make_window, tmp_path, monkeypatch):
    f = tmp_path / "calm.txt"
    rec = _crash(make_window, f, b"one\ntwo\n", "two", "TWO")
    w = make_window()
    w.files.restore(rec)
    asked = []
    monkeypatch.setattr(w.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert w.files.save() and asked == [] and f.read_bytes() == b"one\nTWO\n"


def test_an_autosave_without_a_stamp_asks_before_replacing_its_file(make_window, tmp_path, monkeypatch):
    f = tmp_path / "old.txt"
    f.write_bytes(b"what is on disk now\n")
    folder = autosave_dir()
    folder.mkdir(parents=True)
    (folder / "999999999-0000abcd.json").write_text(json.dumps(  # an older Lacuna's autosave: no stamp
        {"version": 1, "path": str(f), "text": "recovered\n", "saved_at": 1.0}), encoding="utf-8")
    [rec] = autosave.find_orphans()
    w = make_window()
    w.files.restore(rec)
    asked = []
    monkeypatch.setattr(w.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert not w.files.save() and asked == ["changed"] and f.read_bytes() == b"what is on disk now\n"


def test_a_damaged_endings_list_costs_the_endings_not_the_text(make_window):
    folder = autosave_dir()
    folder.mkdir(parents=True)
    (folder / "999999999-0000abce.json").write_text(json.dumps(
        {"version": 2, "path": None, "text": "a\nb\n", "saved_at": 1.0, "newline": "\r\n",
         "endings": [[0, "\n"], "junk", [99, "\n"], [1, "nonsense"]], "stamp": {"size": "x"}}), encoding="utf-8")
    [rec] = autosave.find_orphans()
    w = make_window()
    w.files.restore(rec)
    assert document_text(w.editor.document()) == "a\nb\n"
    assert fileio.encode(document_text(w.editor.document()), w.files.fmt) == b"a\nb\r\n"


# ---- two windows, two processes ----------------------------------------------------------------------
def _two_windows(make_window, f: Path):
    f.write_bytes(b"base\n")
    a, b = make_window(show=False), make_window(show=False)
    for w, line in ((a, "from A\n"), (b, "from B\n")):
        assert w.files.open_path(str(f))
        w.editor.moveCursor(QTextCursor.MoveOperation.End)
        w.editor.insertPlainText(line)
    return a, b


def test_two_windows_pressing_save_together_both_edits_survive_or_are_asked(make_window, tmp_path, monkeypatch):
    f = tmp_path / "shared.txt"
    a, b = _two_windows(make_window, f)
    asked = []
    monkeypatch.setattr(b.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    monkeypatch.setattr(fileio, "LOCK_TIMEOUT", 0)
    real = fileio.write_text_atomic
    b_saved = []

    def a_writes(*args, **kwargs):
        # B presses Save after A checked the disk and before A writes: the moment that lost an edit
        monkeypatch.setattr(fileio, "write_text_atomic", real)
        b_saved.append(b.files.save())
        return real(*args, **kwargs)

    monkeypatch.setattr(fileio, "write_text_atomic", a_writes)
    assert a.files.save()
    assert b_saved == [False] and "being saved by another" in b.banner_label.text()
    assert f.read_bytes() == b"base\nfrom A\n" and b.editor.document().isModified()
    assert not b.files.save()  # A's save is a change B has not seen: B asks
    assert asked == ["changed"] and f.read_bytes() == b"base\nfrom A\n"


def test_overwrite_overwrites_only_the_version_the_user_was_shown(make_window, tmp_path, monkeypatch):
    f = tmp_path / "shared.txt"
    a, b = _two_windows(make_window, f)
    f.write_bytes(b"a third program\n")
    assert b.files.reload() and b.editor.insertPlainText("B on top\n") is None
    answers = []

    def ask(name, kind):
        # while A's question is up (a nested event loop), B saves
        if not answers:
            assert b.files.save()
        answers.append(kind)
        return "overwrite" if len(answers) == 1 else "cancel"

    monkeypatch.setattr(a.files, "ask_file_conflict", ask)
    assert not a.files.save()
    assert answers == ["changed", "changed"]  # asked again: B's save came after the version shown
    assert f.read_bytes() == b"a third program\nB on top\n"


HOLDER = """
import sys
from pathlib import Path
from lacuna.app import fileio
real = fileio.write_text_atomic
def held(*args, **kwargs):
    print("checked", flush=True)  # the lock is held and the disk compared; the write waits for the test
    sys.stdin.readline()
    return real(*args, **kwargs)
fileio.write_text_atomic = held
path, locks = sys.argv[1], Path(sys.argv[2])
text, fmt, stamp = fileio.open_text(path)
fileio.save_text(path, text + "from process 2\\n", fmt, stamp, None, locks)
print("saved", flush=True)
"""


def test_two_processes_saving_one_file_take_turns_and_the_second_is_asked(make_window, tmp_path, monkeypatch):
    f = tmp_path / "shared.txt"
    f.write_bytes(b"base\n")
    w = make_window(show=False)
    assert w.files.open_path(str(f))
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    w.editor.insertPlainText("from the window\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(f.resolve()), str(save_locks_dir())], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "checked"
        monkeypatch.setattr(fileio, "LOCK_TIMEOUT", 0)
        assert not w.files.save()  # the other process holds the file's lock
        assert "being saved by another" in w.banner_label.text() and f.read_bytes() == b"base\n"
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "saved"
    finally:
        proc.kill()
        proc.wait()
    asked = []
    monkeypatch.setattr(w.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert not w.files.save() and asked == ["changed"]
    assert f.read_bytes() == b"base\nfrom process 2\n"


def test_an_unusable_lock_folder_still_checks_the_stamp(make_window, tmp_path, monkeypatch):
    locks = save_locks_dir()
    locks.parent.mkdir(parents=True, exist_ok=True)
    locks.write_text("a file where the lock folder should be")
    f = tmp_path / "doc.txt"
    a, b = _two_windows(make_window, f)
    assert a.files.save()
    asked = []
    monkeypatch.setattr(b.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert not b.files.save() and asked == ["changed"] and f.read_bytes() == b"base\nfrom A\n"


# ---- a failing autosave ---------------------------------------------------------------------------
def test_a_failing_autosave_warns_until_it_works_again(make_window, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_bytes(b"saved\n")
    w = make_window()
    assert w.files.open_path(str(f))
    w.editor.insertPlainText("unsaved ")
    folder = w.files.store.folder
    shutil.rmtree(folder)
    folder.write_text("")  # the state folder cannot take an autosave (root ignores a read-only mode)
    assert not w.files.autosave_now()
    warning = w.files.autosave_warning
    assert warning.isVisible() and str(folder) in warning.toolTip()
    message = w.banner_label.text()
    assert w.banner.isVisible() and "not protected" in message and str(folder) in message
    assert w.banner_action.text() == "Save Now"
    w.banner.hide()  # the user closes the banner
    w.editor.insertPlainText("more ")
    assert not w.files.autosave_now()
    assert warning.isVisible() and not w.banner.isVisible()  # it stays; the banner does not come back every 30 s
    folder.unlink()
    assert w.files.autosave_now()
    assert not warning.isVisible()


def test_a_full_disk_autosave_warning_saves_when_clicked(make_window, tmp_path, monkeypatch):
    f = tmp_path / "notes.txt"
    f.write_bytes(b"saved\n")
    w = make_window()
    assert w.files.open_path(str(f))
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    w.editor.insertPlainText("unsaved\n")
    full = [True]
    real_fsync = os.fsync

    def fsync(fd):
        if full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert not w.files.autosave_now()
    assert w.files.autosave_warning.isVisible() and "No space left on device" in w.banner_label.text()
    assert not list(autosave_dir().glob("*.json"))
    full[0] = False  # the user freed some space
    w.files.autosave_warning.click()
    assert f.read_bytes() == b"saved\nunsaved\n" and not w.files.autosave_warning.isVisible()
