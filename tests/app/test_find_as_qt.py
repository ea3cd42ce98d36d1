"""Find and Replace match what QTextDocument.find matches (no-break spaces, Qt's case
folding), and a replacement is an undo step of its own (review of f29b0de)."""
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtTest import QTest

from lacuna.app import positions

# characters whose case folding differs between Python and Qt, and the no-break space
ALPHABET = "aAiI \u00a0\u0130\u0131\u00df\u1e9e\u017fsS\u212akK\u03c3\u03c2\u03a3\U00010400\U00010428"


def _undo(w):
    QTest.keyClick(w.editor, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    return w.editor.toPlainText()


def _qt_hit(ed, needle, case):
    flags = QTextDocument.FindFlag.FindCaseSensitively if case else QTextDocument.FindFlag(0)
    c = ed.document().find(needle, 0, flags)
    return None if c.isNull() else positions.selection(c)


def test_a_space_finds_a_no_break_space_and_replace_all_replaces_it(window):
    ed, bar = window.editor, window.findbar
    ed.setPlainText("Run 10\u00a0km today. \u0130stanbul is big.\n")
    bar.open(True)
    for needle in ("10 km", "istanbul"):
        bar.find_edit.setText(needle)
        ed.setTextCursor(positions.cursor_at(ed.document(), 0))
        assert bar.find_next() == (_qt_hit(ed, needle, False) is not None)
    assert ed.textCursor().selectedText() == ""  # "istanbul" is not "İstanbul" to Qt
    bar.find_edit.setText("10 km")
    bar.replace_edit.setText("ten km")
    assert bar.replace_all() == 1
    assert ed.toPlainText() == "Run ten km today. \u0130stanbul is big.\n"
    bar.find_edit.setText("istanbul")
    assert bar.replace_all() == 0 and "\u0130stanbul" in ed.toPlainText()


def test_replace_agrees_with_find(window):
    ed, bar = window.editor, window.findbar
    ed.setPlainText("\u0130stanbul, istanbul, 5\u00a0kg\n")
    bar.open(True)
    bar.find_edit.setText("istanbul")
    bar.replace_edit.setText("Ankara")
    ed.setTextCursor(positions.cursor_at(ed.document(), 0))
    assert bar.find_next() and ed.textCursor().selectedText() == "istanbul"
    bar.replace_one()
    assert positions.document_text(ed.document()) == "\u0130stanbul, Ankara, 5\u00a0kg\n"
    bar.find_edit.setText("5 KG")
    assert bar.find_next() and ed.textCursor().selectedText() == "5\u00a0kg"
    bar.replace_edit.setText("6 kg")
    bar.replace_one()
    assert ed.toPlainText() == "\u0130stanbul, Ankara, 6 kg\n"


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(ALPHABET, max_size=20), st.text(ALPHABET, min_size=1, max_size=3), st.booleans())
def test_find_and_replace_all_agree_with_qt_property(window, text, needle, case):
    ed, bar = window.editor, window.findbar
    ed.setPlainText(text)
    bar.case.setChecked(case)
    bar.find_edit.setText(needle)
    ed.setTextCursor(positions.cursor_at(ed.document(), 0))
    want = _qt_hit(ed, needle, case)
    assert bar.find_next() == (want is not None)
    if want is not None:
        assert positions.selection(ed.textCursor()) == want
    bar.replace_edit.setText("#")
    n = bar.replace_all()
    assert (n > 0) == (want is not None)
    assert _qt_hit(ed, needle, case) is None  # every match went ("#" is not in ALPHABET)


def test_typing_after_replace_all_is_its_own_undo_step(window):
    ed, bar = window.editor, window.findbar
    t = "cat dog cat\n"
    ed.setPlainText(t)
    bar.open(True)
    bar.find_edit.setText("cat")
    bar.replace_edit.setText("bird")
    assert bar.replace_all() == 2
    after = ed.toPlainText()
    ed.setTextCursor(positions.cursor_at(ed.document(), 4))  # after the first "bird"
    ed.setFocus()
    QTest.keyClicks(ed, "s")
    assert ed.toPlainText() == "birds dog bird\n"
    assert _undo(window) == after
    assert _undo(window) == t


def test_typing_after_replace_is_its_own_undo_step(window):
    ed, bar = window.editor, window.findbar
    t = "one two\n"
    ed.setPlainText(t)
    bar.open(True)
    bar.find_edit.setText("two")
    bar.replace_edit.setText("three")
    ed.setTextCursor(positions.cursor_at(ed.document(), 0))
    assert bar.find_next()
    bar.replace_one()
    after = ed.toPlainText()
    assert after == "one three\n"
    ed.setTextCursor(positions.cursor_at(ed.document(), 9))
    ed.setFocus()
    QTest.keyClicks(ed, "s")
    assert _undo(window) == after
    assert _undo(window) == t
