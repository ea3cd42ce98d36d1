"""The position map follows edits instead of rescanning the text (issue 20, leftovers).

A keystroke in a large document with astral characters rebuilt the map from the
whole text (about 0.4 s of GUI time at 50 MB). The map is now updated from the
changed range alone; these tests hold it equal to a rebuilt one under any edit
and count the whole-text scans a run of keystrokes makes.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPlainTextEdit

from lacuna.app import positions
from lacuna.app.positions import PositionMap, document_text, for_document

ASTRAL = ["\U0001f642", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001d400", "\U00020000"]
PLAIN = ["a", "bc", "é", "日", " ", "\n", "\u00a0"]
texts = st.lists(st.sampled_from(ASTRAL + PLAIN), max_size=20).map("".join)


def same(pm: PositionMap, text: str) -> None:
    """``pm`` answers every query as a map built from ``text`` does."""
    fresh = PositionMap(text)
    assert (pm.length, pm.qt_length, pm.astral) == (fresh.length, fresh.qt_length, fresh.astral)
    for cp in range(len(text) + 2):
        assert pm.to_qt(cp) == fresh.to_qt(cp)
    for qt in range(fresh.qt_length + 2):
        assert (pm.to_cp(qt), pm.to_cp(qt, up=True)) == (fresh.to_cp(qt), fresh.to_cp(qt, up=True))


@given(texts, st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), texts), max_size=8))
def test_a_map_replaced_piece_by_piece_equals_a_rebuilt_one(text, edits):
    pm = PositionMap(text)
    for where, span, added in edits:
        cp = int(where * len(text))
        removed = int(span * (len(text) - cp))
        text = text[:cp] + added + text[cp + removed:]
        pm.replace(cp, removed, added)
        same(pm, text)


def test_a_replace_outside_the_text_says_so():
    pm = PositionMap("ab\U0001f642")
    for cp, removed in [(-1, 0), (2, 2), (4, 0)]:
        try:
            pm.replace(cp, removed, "x")
        except ValueError as exc:
            assert "not inside a text of 3 code points" in str(exc)
        else:
            raise AssertionError(f"replace({cp}, {removed}) was accepted")


def qt_offset(text: str, cp: int) -> int:
    return len(text[:cp].encode("utf-16-le")) // 2


# one edit: (kind, where, span, text); undo/redo and edit blocks are Qt's own bookkeeping
edit = st.tuples(st.sampled_from(["replace", "block", "undo", "redo"]), st.floats(0, 1), st.floats(0, 1), texts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts, st.lists(edit, max_size=8), st.booleans())
def test_a_documents_map_after_any_edits_equals_a_rebuilt_one(qapp, text, edits, query_between):
    doc = QTextDocument()
    doc.setPlainText(text)
    helper = for_document(doc)
    helper.map()
    for kind, where, span, added in edits:
        now = document_text(doc)
        cp = int(where * len(now))
        removed = int(span * (len(now) - cp))
        c = QTextCursor(doc)
        if kind == "undo":
            doc.undo()
        elif kind == "redo":
            doc.redo()
        elif kind == "replace":
            c.setPosition(qt_offset(now, cp))
            c.setPosition(qt_offset(now, cp + removed), QTextCursor.MoveMode.KeepAnchor)
            c.insertText(added)
        else:  # two edits in one block: Qt reports their union once, at the block's end
            c.beginEditBlock()
            c.setPosition(qt_offset(now, cp))
            c.insertText(added)
            if query_between:
                helper.map()  # asked in the middle of a block: the map is of the half-edited text
            c.movePosition(QTextCursor.MoveOperation.End)
            c.deletePreviousChar()
            c.endEditBlock()
        if query_between or kind == "block":
            same(helper.map(), document_text(doc))
    same(helper.map(), document_text(doc))


def test_typing_in_a_large_document_with_astral_characters_never_rescans_it(qtbot, monkeypatch):
    line = "a line with an emoji \U0001f642 and \U00020000 a rare ideograph\n"
    text = line * 20000  # 1 MB; the count, not the time, is what is checked
    editor = QPlainTextEdit()
    qtbot.addWidget(editor)
    editor.setPlainText(text)
    helper = for_document(editor.document())
    start = len(text) // 2
    editor.setTextCursor(positions.cursor_at(editor.document(), start))
    assert helper.rebuilds == 1
    scans = []
    monkeypatch.setattr(positions, "document_text", lambda doc: scans.append(doc) or document_text(doc))
    typed = "hi \U0001f642\n"
    for ch in typed * 5:
        if ch == "\n":
            QTest.keyClick(editor, Qt.Key.Key_Return)
        elif ch.isascii():
            QTest.keyClicks(editor, ch)
        else:  # QTest types one UTF-16 unit at a time: an emoji comes as input methods give it
            editor.textCursor().insertText(ch)
        positions.position(editor.textCursor())  # what every slot listening to the cursor asks
    QTest.keyClick(editor, Qt.Key.Key_Backspace)
    QTest.keyClick(editor, Qt.Key.Key_Backspace)
    editor.undo()
    assert positions.position(editor.textCursor()) == start + len(typed) * 5 - 1
    assert (helper.rebuilds, scans) == (1, [])
    now, fresh = helper.map(), PositionMap(document_text(editor.document()))
    assert (now.length, now.qt_length, now.astral) == (fresh.length, fresh.qt_length, fresh.astral)
