"""Typing after Restore is its own undo step (a reviewer found one Ctrl+Z emptied the document)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from lacuna.app.autosave import Recovered


def _restore_then_type(window, tmp_path, text: str, typed: str):
    f = tmp_path / "a.autosave"
    f.write_text("x")
    window.files.restore(Recovered(file=f, path=None, text=text, saved_at=0.0))
    ed = window.editor
    c = ed.textCursor()
    c.movePosition(c.MoveOperation.End)
    ed.setTextCursor(c)
    ed.setFocus()
    QTest.keyClicks(ed, typed)
    return ed


def test_typing_after_restore_undoes_alone(window, tmp_path):
    ed = _restore_then_type(window, tmp_path, "recovered work", " more")
    QTest.keyClick(ed, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ed.toPlainText() == "recovered work"


def test_a_second_undo_takes_the_restored_text(window, tmp_path):
    ed = _restore_then_type(window, tmp_path, "line one\nline two", "!")
    QTest.keyClick(ed, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ed.toPlainText() == "line one\nline two"
    QTest.keyClick(ed, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert ed.toPlainText() == ""
