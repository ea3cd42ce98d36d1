"""Issue 20: an accepted fill is one undo step of its own; what the user does next
(typing, pasting, deleting) is another, so Ctrl+Z takes back only that."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

from lacuna.app import positions
from tests.app.conftest import set_text_and_masks
from tests.app.test_window import TEXT, run_to_preview


def _accept(window, qtbot, words):
    set_text_and_masks(window, TEXT, words)
    run_to_preview(qtbot, window)
    filled = window.infill.current.result.text
    assert window.infill.accept()
    assert window.editor.toPlainText() == filled
    window.editor.setFocus()
    return filled


def _undo(window):
    QTest.keyClick(window.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    return window.editor.toPlainText()


def _type(window):
    QTest.keyClicks(window.editor, " now")


def _paste(window):
    QGuiApplication.clipboard().setText(" pasted")
    window.paste_action.trigger()


def _backspace(window):
    QTest.keyClick(window.editor, Qt.Key.Key_Backspace)


@pytest.mark.parametrize("act", [_type, _paste, _backspace], ids=["type", "paste", "backspace"])
def test_the_next_edit_after_accept_is_undone_alone(window, qtbot, act):
    filled = _accept(window, qtbot, ["heaven"])
    act(window)
    edited = window.editor.toPlainText()
    assert edited != filled
    assert _undo(window) == filled  # the edit goes, the fill stays
    assert _undo(window) == TEXT  # then the fill
    window.redo_action.trigger()
    window.redo_action.trigger()
    assert window.editor.toPlainText() == edited


def test_typing_at_the_end_of_the_first_of_two_spans(window, qtbot):
    # the spans are replaced last first, so the block's last insertion is the first span's
    filled = _accept(window, qtbot, ["heaven", "form"])
    first_end = filled.index(" and the earth.")  # where the first fill ends
    window.editor.setTextCursor(positions.cursor_at(window.editor.document(), first_end))
    _type(window)
    assert _undo(window) == filled
    assert _undo(window) == TEXT
