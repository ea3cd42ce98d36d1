"""Issue 20, leftovers: Reload and crash recovery put a large text in as Open does.

Both inserted the whole text in one step on the GUI thread (an Open of 50 MB held
it for 3.8-11 s that way). They now go through app.editor.fill.replace: the old
text leaves and the new one goes in piece by piece inside one edit block, so the
edit stays one undo step. These tests check the pieces (a heartbeat's CPU time
per gap and the progress signal), the undo, modified and format state Reload and
restore always left, and that Cancel or closing the window leaves the old text.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPlainTextEdit, QProgressDialog

from lacuna.app import positions
from lacuna.app.autosave import Recovered
from lacuna.app.editor import fill
from tests.app.fakes import StallProbe

LINES = [f"line {k} \U0001f642 has\u00a0words é{'x' * (k % 40)}" for k in range(5000)]  # about 0.2 MB


@pytest.fixture
def window(make_window):
    return make_window()


def text_of(window) -> str:
    return positions.document_text(window.editor.document())


def test_reload_of_a_large_file_goes_in_pieces_and_is_one_undo_step(window, tmp_path, monkeypatch):
    monkeypatch.setattr(fill, "PIECE", 4096)
    path = tmp_path / "big.txt"
    path.write_bytes(("\n".join(LINES) + "\n").encode("utf-8"))
    assert window.files.open_path(str(path))
    window.editor.textCursor().insertText("my edit ")  # the window's own version, modified
    ours = text_of(window)
    theirs = "\r\n".join(reversed(LINES)) + "\r\n"
    path.write_bytes(theirs.encode("utf-8"))  # another program rewrote it, with CRLF
    progress = []
    window.files.loadProgress.connect(lambda done, total: progress.append((done, total)))
    probe = StallProbe(interval_ms=0)  # a tick at every pass of the event loop
    probe.start()
    assert window.files.reload()
    probe.stop()
    assert len(progress) > 20 and progress[-1][0] == progress[-1][1]  # it went in pieces, to the end
    assert len(probe.gaps) > 20  # the event loop ran between them
    doc = window.editor.document()
    assert text_of(window) == theirs.replace("\r\n", "\n")
    assert not doc.isModified() and window.files.fmt.newline == "\r\n" and not window.files.loading
    assert "Reloaded big.txt" in window.statusBar().currentMessage()
    doc.undo()  # one step gives back what the window held
    assert text_of(window) == ours and doc.isModified()
    doc.redo()
    assert text_of(window) == theirs.replace("\r\n", "\n") and not doc.isModified()
    assert window.files.save() and path.read_bytes() == theirs.encode("utf-8")


def test_cancel_during_a_reload_keeps_the_windows_version(window, tmp_path, monkeypatch):
    monkeypatch.setattr(fill, "PIECE", 4096)
    path = tmp_path / "big.txt"
    path.write_text("\n".join(LINES), encoding="utf-8")
    assert window.files.open_path(str(path))
    window.editor.textCursor().insertText("my edit ")
    ours = text_of(window)
    path.write_text("other\n" * 30000, encoding="utf-8")
    seen = []

    def cancel(done, total):
        seen.append(done)
        if len(seen) == 40:  # the old text is gone and part of the new one is in
            (dialog,) = [d for d in window.findChildren(QProgressDialog, "openProgress") if d.isVisible()]
            dialog.cancel()

    window.files.loadProgress.connect(cancel)
    assert not window.files.reload()
    doc = window.editor.document()
    assert text_of(window) == ours and doc.isModified()
    assert not doc.isRedoAvailable()  # no redo brings the partial text back
    assert "cancelled" in window.statusBar().currentMessage() and not window.files.loading
    doc.undo()  # the edit before the reload is still the last undo step
    assert text_of(window) == "\n".join(LINES)


def test_restore_of_a_large_autosave_goes_in_pieces_as_one_undo_step(window, tmp_path, monkeypatch):
    monkeypatch.setattr(fill, "PIECE", 4096)
    f = tmp_path / "a.autosave"
    f.write_text("x")
    text = "\n".join(LINES)
    progress = []
    window.files.loadProgress.connect(lambda done, total: progress.append(done))
    probe = StallProbe(interval_ms=0)  # a tick at every pass of the event loop
    probe.start()
    assert window.files.restore(Recovered(file=f, path=None, text=text, saved_at=0.0))
    probe.stop()
    assert len(progress) > 20 and len(probe.gaps) > 20
    ed = window.editor
    assert text_of(window) == text and ed.document().isModified() and not f.exists()
    ed.moveCursor(QTextCursor.MoveOperation.End)
    ed.setFocus()
    QTest.keyClicks(ed, " more")  # typing next is its own undo step (the restore is sealed)
    ed.undo()
    assert text_of(window) == text
    ed.undo()
    assert text_of(window) == "" and not ed.document().isUndoAvailable()


def test_closing_the_window_during_a_restore_keeps_the_autosave(window, tmp_path, qtbot, monkeypatch):
    monkeypatch.setattr(fill, "PIECE", 4096)
    f = tmp_path / "a.autosave"
    f.write_text("x")
    asked = []
    window.files.ask_save_changes = lambda name: asked.append(name)  # a partial text is never offered for saving
    window.files.loadProgress.connect(lambda *_: window.close(), type=Qt.ConnectionType.SingleShotConnection)
    assert not window.files.restore(Recovered(file=f, path=None, text="\n".join(LINES), saved_at=0.0))
    qtbot.waitUntil(lambda: not window.isVisible())
    assert asked == [] and f.exists()  # the next start offers it again


# ---- the second input: any old and new text, any piece size, cancelled anywhere -----------------
lines = st.lists(st.sampled_from(["", "a", "\U0001f642", "bc d", "x" * 30, "\u00a0é"]), max_size=40).map("\n".join)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines, lines, st.integers(1, 40), st.one_of(st.none(), st.integers(1, 30)), st.booleans())
def test_replace_is_select_all_and_insert_or_nothing(qtbot, old, new, size, stop_at, seal):
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    editor.setPlainText(old)
    steps = []

    def step(done):
        steps.append(done)
        return len(steps) != stop_at

    done = fill.replace(editor, new, step, size=size, seal=seal)
    doc = editor.document()
    if stop_at is not None and stop_at <= len(steps) and not done:
        assert positions.document_text(doc) == old and not doc.isRedoAvailable() and not doc.isUndoAvailable()
        return
    assert done and positions.document_text(doc) == new
    assert steps == sorted(steps)  # progress only grows
    doc.undo()  # one step back
    assert positions.document_text(doc) == old and not doc.isUndoAvailable()


def test_the_map_of_a_large_file_is_built_with_its_reading_not_at_the_first_keystroke(window, tmp_path, monkeypatch):
    from lacuna.app import opening

    monkeypatch.setattr(opening, "READ_ON_THREAD", 1)  # every file is "large": read on a thread
    monkeypatch.setattr(fill, "PIECE", 4096)
    path = tmp_path / "big.txt"
    text = "\n".join(LINES)
    path.write_text(text, encoding="utf-8")
    for act in (lambda: window.files.open_path(str(path)), window.files.reload):
        assert act()
        helper = positions.for_document(window.editor.document())
        built = helper.rebuilds
        window.editor.setTextCursor(positions.cursor_at(window.editor.document(), len(text) - 3))
        window.editor.textCursor().insertText("\U0001f642")
        assert positions.position(window.editor.textCursor()) == len(text) - 2
        assert helper.rebuilds == built  # never scanned on the GUI thread
        window.editor.undo()
