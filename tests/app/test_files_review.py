"""Files after review (issue 20): the window refuses links another user planted in /tmp,
tells what a crash left when the file changed since, never undoes a later edit, keeps
working with a state folder that refuses, gives every name of a file one save lock,
keeps autosave linear in the document's length, and exports never replace a file of a
third kind."""
from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtGui import QTextCursor

from lacuna.app import autosave, fileio
from lacuna.app.paths import save_locks_dir, state_dir
from lacuna.engine import safe_write
from tests.app.conftest import set_text_and_masks
from tests.app.test_window import run_to_preview

ROOT = Path(__file__).resolve().parents[2]
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="lchown needs root")
NOBODY = 65534


def _open_and_edit(make_window, f: Path, show=False):
    w = make_window(show=show)
    assert w.files.open_path(str(f))
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    w.editor.insertPlainText("added\n")
    return w


# ---- 1. links another user planted --------------------------------------------------------------
@as_root
def test_save_as_and_open_refuse_a_link_another_user_planted(make_window, tmp_path):
    victim = tmp_path / "config"
    victim.write_text("root's config\n")
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    link = shared / "notes.txt"
    link.symlink_to(victim)
    os.lchown(link, NOBODY, NOBODY)
    w = make_window(show=False)
    w.editor.insertPlainText("typed\n")
    assert not w.files.save_as(str(link))
    assert "symbolic link that another user made" in w.banner_label.text() and w.files.path is None
    assert victim.read_text() == "root's config\n" and w.editor.document().isModified()
    opened = make_window(show=False)
    assert not opened.files.open_path(str(link)) and "another user" in opened.banner_label.text()
    assert opened.editor.toPlainText() == "" and opened.files.path is None


# ---- 2. a crash in the middle of an in-place save ---------------------------------------------------
FINISHED_THEN_KILLED = """
import os, sys
from pathlib import Path
from lacuna.engine import safe_write
real = safe_write._rewrite_in_place
def then_killed(*args):
    real(*args)
    print("rewritten", flush=True)
    sys.stdin.readline()  # killed here: the file is whole, its copy not yet removed
safe_write._rewrite_in_place = then_killed
safe_write.write_bytes(sys.argv[1], b"version 2 (Lacuna)\\n", journal=Path(sys.argv[2]))
"""


def test_a_file_changed_after_a_crash_is_not_overwritten_at_the_next_start(make_window, qtbot, tmp_path):
    """The reviewer's input: a save killed after its in-place rewrite, then `echo ... > doc.txt`."""
    f = tmp_path / "doc.txt"
    f.write_bytes(b"version 1\n")
    os.link(f, tmp_path / "link.txt")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", FINISHED_THEN_KILLED, str(f), str(state_dir() / "saving")],
                            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "rewritten"
    finally:
        proc.kill()
        proc.wait()
    with open(f, "w") as out:  # same inode
        out.write("version 3 (typed later in another program)\n")
    w = make_window()
    [copy] = tmp_path.glob(".lacuna-*.copy")
    assert f.read_bytes() == b"version 3 (typed later in another program)\n"
    assert copy.read_bytes() == b"version 2 (Lacuna)\n"
    qtbot.waitUntil(lambda: w.banner.isVisibleTo(w))  # once the window is up
    message = w.banner_label.text()
    assert str(f) in message and str(copy) in message and "changed by another program" in message
    assert not list((state_dir() / "saving").iterdir())  # told once: the next start has nothing to say
    assert copy.exists()


# ---- 3. export names, end to end --------------------------------------------------------------------
def _finished_run(window, qtbot):
    set_text_and_masks(window, "In the beginning God created the heaven and the earth.", ["heaven"])
    window.editor.masks[0].length = 3
    window.settings_panel.steps.setValue(3)
    run_to_preview(qtbot, window)


def test_an_export_asks_before_replacing_the_companion_the_dialog_did_not_name(window, qtbot, tmp_path,
                                                                             monkeypatch):
    """The reviewer's input: data.gif chosen while data.jsonl holds the user's data."""
    _finished_run(window, qtbot)
    (tmp_path / "data.jsonl").write_text("precious user data\n")
    asked = []
    monkeypatch.setattr(window.infill, "ask_replace", lambda paths: asked.append(paths) or False)
    assert not window.infill.export_run(str(tmp_path / "data.gif"))
    assert asked == [[tmp_path / "data.jsonl"]] and not (tmp_path / "data.gif").exists()
    assert (tmp_path / "data.jsonl").read_text() == "precious user data\n"
    # chosen as the .jsonl, the .gif is the one asked about; said yes, both are written
    (tmp_path / "data.gif").write_bytes(b"GIF89a an older export")
    monkeypatch.setattr(window.infill, "ask_replace", lambda paths: asked.append(paths) or True)
    with qtbot.waitSignal(window.infill.exportFinished, timeout=60000) as done:
        assert window.infill.export_run(str(tmp_path / "data.jsonl"))
    assert done.args[0] == (tmp_path / "data.gif", tmp_path / "data.jsonl") and asked[-1] == [tmp_path / "data.gif"]
    assert (tmp_path / "data.gif").read_bytes()[:6] == b"GIF89a" != (tmp_path / "data.gif").read_bytes()[6:13]
    assert b"older" not in (tmp_path / "data.gif").read_bytes()[:40]
    assert "precious" not in (tmp_path / "data.jsonl").read_text()


def test_an_export_to_another_suffix_never_replaces_a_gif_of_that_stem(window, qtbot, tmp_path, monkeypatch):
    """The reviewer's input: run.v2 chosen while run.gif exists."""
    _finished_run(window, qtbot)
    tmp_path = tmp_path / "exports"
    tmp_path.mkdir()
    (tmp_path / "run.gif").write_bytes(b"GIF89a precious")
    monkeypatch.setattr(window.infill, "ask_replace", lambda paths: pytest.fail(f"asked about {paths}"))
    with qtbot.waitSignal(window.infill.exportFinished, timeout=60000) as done:
        assert window.infill.export_run(str(tmp_path / "run.v2"))
    assert done.args[0] == (tmp_path / "run.v2.gif", tmp_path / "run.v2.jsonl")
    assert (tmp_path / "run.gif").read_bytes() == b"GIF89a precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.gif", "run.v2.gif", "run.v2.jsonl"]


# ---- 5. autosave is linear in the document's length ----------------------------------------------------
class _Line(str):
    """A line that counts the comparisons and hashes made of it."""

    ops = 0

    def __eq__(self, other):
        _Line.ops += 1
        return str.__eq__(self, other)

    def __hash__(self):
        _Line.ops += 1
        return str.__hash__(self)


def _prose(n: int) -> tuple[list[str], list[str]]:
    """The reviewer's perf3 document (prose, a blank line between lines) and two lines edited."""
    rng = random.Random(0)
    words = "the of and to in is was that for it with as his on be at by had are but".split()
    old = ["" if i % 2 else " ".join(rng.choice(words) for _ in range(12)) + f" {i}" for i in range(n)]
    new = list(old)
    new[2] += " edited"
    new[n - 20] += " edited too"
    return old, new


def _repeated(n: int) -> tuple[list[str], list[str]]:
    """The reviewer's perf2 document: no line occurs once."""
    old = ["" if i % 2 else "x" for i in range(n)]
    new = list(old)
    new[6] += "X"
    new[n - 6] += "Y"
    return old, new


def _random(n: int) -> tuple[list[str], list[str]]:
    """Two unrelated texts of two lines: the worst case, where the work budget runs out."""
    rng = random.Random(1)
    return [rng.choice("ab") for _ in range(n)], [rng.choice("ab") for _ in range(n)]


@pytest.mark.parametrize("shape", [_prose, _repeated, _random])
def test_matching_lines_does_linear_work(shape):
    work = {}
    for n in (10_000, 20_000):
        old, new = shape(n)
        _Line.ops = 0
        match = fileio.matched_lines([_Line(x) for x in old], [_Line(x) for x in new])
        work[n] = _Line.ops
        if shape is not _random:  # every line but the two edited is found
            assert len(match) == n - 2 and all(old[i] == new[j] for j, i in match.items())
    # the budget of the diff, one comparison a step, and a few hashes a line for the anchors
    assert work[20_000] <= 2.2 * work[10_000] and work[20_000] <= (2 * fileio._DIFF_WORK + 16) * 20_000, work


def test_an_autosave_of_the_reviewers_document_keeps_its_crlf_lines(make_window, tmp_path):
    """perf3's 10,000 lines, its last ten in CRLF: the autosave took 4.6 s on the GUI thread."""
    old, _ = _prose(10_000)
    raw = "\n".join(old[:-10]) + "\r\n" + "\r\n".join(old[-10:])
    f = tmp_path / "prose.txt"
    f.write_bytes(raw.encode())
    w = make_window(show=False)
    assert w.files.open_path(str(f))
    doc = w.editor.document()
    for k in (2, 10_000 - 20):
        c = QTextCursor(doc.findBlockByNumber(k))
        c.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        c.insertText(" edited")
    assert w.files.autosave_now()
    [rec] = autosave.find_orphans(alive=lambda pid: False)
    assert rec.endings == tuple((k, "\r\n") for k in range(10_000 - 11, 10_000 - 1))
    assert w.files.save() and f.read_bytes().endswith(b"\r\n".join(x.encode() for x in old[-10:]))


lines = st.lists(st.sampled_from(["", "x", "y", "x y", "-"]), max_size=40)
edits = st.lists(st.tuples(st.sampled_from(["substitute", "insert", "delete"]), st.integers(0, 40)), max_size=6)


@given(lines, edits)
@settings(max_examples=300, deadline=None)
def test_matched_lines_keep_every_line_the_edits_did_not_touch(old, ops):
    """Edits bring lines of new text (never equal to an old line): every untouched line is
    matched, and only equal lines, in order. Texts of repeated lines are the hard case."""
    new, touched, fresh = list(old), 0, 0
    for op, at in ops:
        fresh += 1
        if op == "insert":
            new.insert(min(at, len(new)), f"new {fresh}")
        elif new:
            k = at % len(new)
            touched += not new[k].startswith("new ")
            if op == "delete":
                del new[k]
            else:
                new[k] = f"new {fresh}"
    match = fileio.matched_lines(old, new)
    pairs = sorted(match.items())
    assert all(old[i] == new[j] for j, i in pairs)
    assert [i for _, i in pairs] == sorted(set(i for _, i in pairs))
    assert len(match) >= len(old) - touched


# ---- 6. a state folder that refuses ---------------------------------------------------------------
def _refusing_state(monkeypatch, code=errno.EROFS):
    """Removing anything in the state folder fails, as on a read-only file system."""
    root = str(state_dir())
    real_unlink, real_path_unlink = os.unlink, Path.unlink

    def unlink(path, *a, **k):
        if os.fspath(path).startswith(root):
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_unlink(path, *a, **k)

    def path_unlink(self, missing_ok=False):
        if str(self).startswith(root):
            raise OSError(code, os.strerror(code), str(self))
        return real_path_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(os, "unlink", unlink)
    monkeypatch.setattr(os, "remove", unlink)
    monkeypatch.setattr(Path, "unlink", path_unlink)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_open_save_and_close_work_with_a_state_folder_that_refuses(make_window, tmp_path, monkeypatch, code):
    f = tmp_path / "doc.txt"
    f.write_bytes(b"hello\n")
    w = make_window(show=False)
    w.editor.insertPlainText("unsaved\n")
    assert w.files.autosave_now()
    _refusing_state(monkeypatch, code)
    w.editor.document().setModified(False)  # "Discard"
    assert w.files.open_path(str(f)) and w.editor.toPlainText() == "hello\n"
    w.editor.insertPlainText("more ")
    assert w.files.save() and f.read_bytes() == b"more hello\n"
    w.close()  # closeEvent ended before shutdown(): "QThread destroyed while running"
    assert not w.engine_thread.isRunning()


def test_clicking_the_warning_saves_when_the_autosave_folder_is_a_file(make_window, tmp_path):
    """The reviewer's input: NotADirectoryError escaped after the save."""
    f = tmp_path / "notes.txt"
    f.write_bytes(b"saved\n")
    w = make_window()
    assert w.files.open_path(str(f))
    w.editor.insertPlainText("unsaved ")
    folder = w.files.store.folder
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.write_text("")
    assert not w.files.autosave_now() and w.files.autosave_warning.isVisible()
    w.files.autosave_warning.click()
    assert f.read_bytes() == b"unsaved saved\n" and not w.editor.document().isModified()
    assert not w.files.autosave_warning.isVisible()  # saved: nothing left unprotected
    folder.unlink()


def test_undoing_back_to_the_saved_text_ends_the_warning(make_window, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_bytes(b"saved\n")
    w = make_window()
    assert w.files.open_path(str(f))
    w.editor.insertPlainText("unsaved ")
    folder = w.files.store.folder
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    folder.write_text("")
    assert not w.files.autosave_now() and w.files.autosave_warning.isVisible()
    w.editor.undo()
    assert not w.editor.document().isModified() and not w.files.autosave_warning.isVisible()
    folder.unlink()
    w.editor.redo()  # unsaved again: the next autosave writes it, although this revision was seen before
    assert w.files.autosave_now()


# ---- 7. one lock for every name of a file -------------------------------------------------------------
HOLDER = """
import sys
from pathlib import Path
from lacuna.app import fileio
real = fileio.write_text_atomic
def held(*args, **kwargs):
    print("checked", flush=True)
    sys.stdin.readline()
    return real(*args, **kwargs)
fileio.write_text_atomic = held
path, locks = sys.argv[1], Path(sys.argv[2])
text, fmt, stamp = fileio.open_text(path)
fileio.save_text(path, text + "from process 2\\n", fmt, stamp, None, locks)
print("saved", flush=True)
"""


def test_two_hard_link_names_of_one_file_share_its_save_lock(make_window, tmp_path, monkeypatch):
    """The reviewer's input: doc.txt and link.txt, one inode; 55 of 60 races lost an edit."""
    f, link = tmp_path / "doc.txt", tmp_path / "link.txt"
    f.write_bytes(b"base\n")
    os.link(f, link)
    w = _open_and_edit(make_window, f)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(link), str(save_locks_dir())], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "checked"
        monkeypatch.setattr(fileio, "LOCK_TIMEOUT", 0)
        assert not w.files.save() and "being saved by another" in w.banner_label.text()
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "saved"
    finally:
        proc.kill()
        proc.wait()
    asked = []
    monkeypatch.setattr(w.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "cancel")
    assert not w.files.save() and asked == ["changed"] and f.read_bytes() == b"base\nfrom process 2\n"
    assert not list(save_locks_dir().iterdir())  # a lock file lives as long as its save


def test_every_name_of_a_file_takes_the_same_lock_and_it_follows_a_save_by_rename(tmp_path, monkeypatch):
    f = tmp_path / "doc.txt"
    f.write_bytes(b"base\n")
    os.link(f, tmp_path / "hard.txt")
    (tmp_path / "soft.txt").symlink_to("doc.txt")
    keys = {fileio._lock_key(Path(fileio.real_path(tmp_path / n))) for n in ("doc.txt", "hard.txt", "soft.txt")}
    assert len(keys) == 1
    monkeypatch.setattr(fileio, "LOCK_TIMEOUT", 0)
    locks = tmp_path / "locks"
    for name in ("hard.txt", "soft.txt"):
        with fileio._save_lock(locks, f), pytest.raises(fileio.Busy):
            fileio.save_text(tmp_path / name, "x\n", fileio.TextFormat(), None, None, locks)
    single = tmp_path / "single.txt"
    single.write_bytes(b"one name\n")
    before = fileio._lock_key(single)
    fileio.save_text(single, "saved by rename\n", fileio.TextFormat(), None, None, locks)
    assert fileio._lock_key(single) != before and not list(locks.iterdir())
    with fileio._save_lock(locks, single), pytest.raises(fileio.Busy):
        fileio.save_text(single, "y\n", fileio.TextFormat(), None, None, locks)


# ---- lesser: encodings and broken characters -------------------------------------------------------
@pytest.mark.parametrize("data", ["\ufeffab".encode("utf-16-le") + b"c", "\ufeff日本".encode("utf-16-be") + b"\n"])
def test_an_odd_length_utf16_file_with_a_bom_says_what_it_is(data):
    with pytest.raises(fileio.EncodingError) as err:
        fileio.decode(data, "odd.txt")
    message = str(err.value)
    assert "UTF-16" in message and "UTF-8" not in message and "half a character" in message
    assert f"offset {len(data) - 1}" in message


def test_an_odd_length_bomless_utf16_file_reopened_as_utf16_says_why_it_cannot_open():
    data = "これは日本語のテキストです。\r\n".encode("utf-16-le") * 5 + b"\n"  # the reviewer's u16.py
    with pytest.raises(fileio.EncodingError) as err:
        fileio.decode(data, "ja.txt")
    assert err.value.suggestion == "utf-16"
    with pytest.raises(fileio.EncodingError) as err:
        fileio.decode(data, "ja.txt", "utf-16")
    assert "half a character" in str(err.value) and "0x0A" in str(err.value)


def test_a_lone_surrogate_is_not_offered_a_utf8_save_that_cannot_store_it(tmp_path):
    with pytest.raises(fileio.FileError) as err:
        fileio.write_text_atomic(tmp_path / "s.txt", "a\udc80b\n", fileio.TextFormat())
    assert not isinstance(err.value, fileio.CannotEncode)
    assert "lone surrogate" in str(err.value) and "U+DC80" in str(err.value) and "UTF-8" not in str(err.value)
    assert not list(tmp_path.iterdir())
    with pytest.raises(fileio.CannotEncode, match="Save it as UTF-8"):  # a character Latin-1 lacks still is
        fileio.write_text_atomic(tmp_path / "l.txt", "€\n", fileio.TextFormat("latin-1"))


def test_a_save_into_a_folder_that_refuses_new_files_names_the_folder(make_window, tmp_path, monkeypatch):
    f = tmp_path / "doc.txt"
    f.write_bytes(b"old\n")
    w = _open_and_edit(make_window, f)
    real_open = os.open

    def refuse(path, flags, *a, **k):
        if flags & os.O_CREAT and Path(path).name.startswith(safe_write.PREFIX):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", refuse)
    assert not w.files.save()
    message = w.banner_label.text()
    assert f"folder {tmp_path}" in message and "somewhere else" in message and "writable" in message
