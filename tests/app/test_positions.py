"""One coordinate system at the Qt boundary (issue 8, item 1).

Qt counts UTF-16 code units, the engine code points. The tests select text
the way Qt does (QTextDocument.find, keyboard), so the positions they start
from are Qt's own, never computed by app.positions.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest

from lacuna.app.positions import PositionMap, document_text, utf16_len
from tests.app.fakes import make_stream

SMILE = "Smile \U0001f642 in the beginning God created the heaven and the earth."
FOX = "\U0001f600 The quick brown fox"

# astral characters of several kinds: emoji, a ZWJ family, a flag, math letters, rare CJK
ASTRAL = ["\U0001f642", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f1eb\U0001f1f7",
          "\U0001d400\U0001d401", "\U00020000", "\U0002a6d6"]
PLAIN = ["the", "heaven", "ünï", "日本", " ", " ", "\n", ",", "\u00a0"]


def qt_offset(text: str, cp: int) -> int:
    """Independent of app.positions: the UTF-16 offset of code point ``cp``."""
    return len(text[:cp].encode("utf-16-le")) // 2


def recording(stream):
    seen = []

    def wrapped(model, request, cancel=None):
        seen.append(request)
        yield from stream(model, request, cancel)

    wrapped.requests = seen
    return wrapped


@pytest.fixture
def rec_window(make_window, qtbot):
    stream = recording(make_stream())
    w = make_window(stream=stream)
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("fake")
    w.requests = stream.requests
    return w


def select_found(w, word: str) -> QTextCursor:
    """Select ``word`` as a user would (Qt's own find), and return the cursor."""
    c = w.editor.document().find(word)
    assert not c.isNull()
    w.editor.setTextCursor(c)
    return c


def ctrl(widget, key) -> None:
    QTest.keyClick(widget, key, Qt.KeyboardModifier.ControlModifier)


# ---- the map itself ----------------------------------------------------------------
texts = st.lists(st.sampled_from(ASTRAL + PLAIN + ["a", "b", "é"]), max_size=30).map("".join)


@given(texts, st.data())
def test_position_map_agrees_with_utf16(text, data):
    pm = PositionMap(text)
    cp = data.draw(st.integers(0, len(text)))
    qt = qt_offset(text, cp)
    assert pm.to_qt(cp) == qt
    assert pm.to_cp(qt) == cp
    assert utf16_len(text) == qt_offset(text, len(text))
    # a number inside a surrogate pair rounds to the character's start (or end with up=True)
    if cp < len(text) and ord(text[cp]) > 0xFFFF:
        assert pm.to_cp(qt + 1) == cp and pm.to_cp(qt + 1, up=True) == cp + 1


# ---- the inputs of the issue --------------------------------------------------------
def test_heaven_after_an_emoji_is_asked_for_as_heaven(rec_window, qtbot):
    w = rec_window
    w.editor.setPlainText(SMILE)
    select_found(w, "heaven")
    w.editor.setFocus()
    ctrl(w.editor, Qt.Key.Key_M)
    assert [document_text(w.editor.document())[slice(*m.range())] for m in w.editor.masks] == ["heaven"]
    with qtbot.waitSignal(w.runFinished, timeout=5000):
        QTest.keyClick(w.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    (req,) = w.requests
    (span,) = req.spans
    assert req.text[span.start:span.end] == "heaven"
    result = w.infill.current.result
    assert w.preview.text() == result.text  # the preview replaced the right characters
    QTest.keyClick(w.preview, Qt.Key.Key_Return)
    i = SMILE.index("heaven")
    assert document_text(w.editor.document()) == SMILE[:i] + result.span_text(0) + SMILE[i + len("heaven"):]
    # the tint lies over the fill, not one character to its left
    tinted = [s.cursor.selectedText() for s in w.editor._tint]
    assert "".join(tinted).split() == result.span_text(0).split()


def test_brown_after_an_emoji_masks_brown(rec_window):
    w = rec_window
    w.editor.setPlainText(FOX)
    select_found(w, "brown")
    w.mask_action.trigger()
    (m,) = w.editor.masks
    assert FOX[m.start:m.end] == "brown"
    # the mask's overlay covers the same characters on screen
    overlay = [s.cursor.selectedText() for s in w.editor.extraSelections()]
    assert overlay == ["brown"]


def test_mask_near_the_end_after_emoji_and_insertion_at_the_very_end(rec_window, qtbot):
    w = rec_window
    text = "\U0001f642\U0001f642\U0001f642 and a last word"
    w.editor.setPlainText(text)
    select_found(w, "word")
    w.mask_action.trigger()  # used to raise IndexError (a UTF-16 index into a Python string)
    c = w.editor.textCursor()
    c.movePosition(QTextCursor.MoveOperation.End)
    w.editor.setTextCursor(c)
    w.mask_action.trigger()  # an insertion at the very end
    assert [(m.start, m.end, m.insertion) for m in w.editor.masks] == [
        (text.index("word"), len(text), False), (len(text), len(text), True)]
    with qtbot.waitSignal(w.runFinished, timeout=5000):
        assert w.infill.start()  # used to fail: "outside the text"
    assert not w.banner.isVisible()
    req = w.requests[-1]
    assert [req.text[s.start:s.end] for s in req.spans] == ["word", ""]
    assert req.spans[-1].start == len(text)


def test_mask_popup_counts_the_masked_text(rec_window, monkeypatch):
    from lacuna import engine

    asked = []
    monkeypatch.setattr(engine, "token_count", lambda model, text, a, b: asked.append(text[a:b]) or 7, raising=False)
    w = rec_window
    w.editor.setPlainText(SMILE)
    select_found(w, "heaven")
    w.mask_action.trigger()
    popup = w.infill.edit_mask(w.editor.masks[0])
    assert asked == ["heaven"] and "7 tokens" in popup.length.specialValueText()
    popup.close()


def test_find_highlights_the_match_after_astral_characters(rec_window):
    w = rec_window
    w.editor.setPlainText("\U0001d400\U0001d401 \U0002a6d6 find me here")
    w.findbar.open()
    w.findbar.find_edit.setText("me")
    assert w.findbar.find_next()
    assert [s.cursor.selectedText() for s in w.editor._find] == ["me"]


def test_masks_from_code_points_move_with_edits_before_them(rec_window):
    w = rec_window
    w.editor.setPlainText(FOX)
    w.editor.add_mask(FOX.index("quick"), FOX.index("quick") + 5)
    c = QTextCursor(w.editor.document())
    c.insertText("\U0001f468\u200d\U0001f469\u200d\U0001f467 ")  # 5 code points, 8 UTF-16 units
    text = document_text(w.editor.document())
    (m,) = w.editor.masks
    assert text[m.start:m.end] == "quick"


# ---- the property: any text, any selection ------------------------------------------
pieces = st.lists(st.sampled_from(ASTRAL + PLAIN + ["x", "y"]), min_size=1, max_size=24)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces, st.data())
def test_request_and_accept_touch_exactly_the_selection(rec_window, qtbot, parts, data):
    w = rec_window
    text = "".join(parts)
    if w.state != "idle":
        w.infill.reject()
    w.editor.clear_masks()
    w.editor.setPlainText(text)
    # a selection of whole pieces that does not start or end with white space (those stay outside a mask)
    bounds = [sum(len(p) for p in parts[:k]) for k in range(len(parts) + 1)]
    a = data.draw(st.integers(0, len(parts) - 1))
    b = data.draw(st.integers(a + 1, len(parts)))
    start, end = bounds[a], bounds[b]
    selected = text[start:end]
    if not selected.strip() or selected != selected.strip(" \t\n"):
        return
    c = QTextCursor(w.editor.document())
    c.setPosition(qt_offset(text, start))
    c.setPosition(qt_offset(text, end), QTextCursor.MoveMode.KeepAnchor)
    w.editor.setTextCursor(c)
    assert c.selectedText().replace("\u2029", "\n") == selected
    w.mask_action.trigger()
    n = len(w.requests)
    with qtbot.waitSignal(w.runFinished, timeout=5000):
        assert w.infill.start()
    req = w.requests[n]
    assert [req.text[s.start:s.end] for s in req.spans] == [selected]
    result = w.infill.current.result
    assert w.preview.text() == result.text
    assert w.infill.accept()
    after = document_text(w.editor.document())
    fill = result.span_text(0)
    assert after == text[:start] + fill + text[end:]
    assert not w.editor.masks
    w.editor.undo()  # one undo step gives the text back
    assert document_text(w.editor.document()) == text


# ---- the boundary stays one module --------------------------------------------------
def test_no_other_app_module_handles_qt_positions():
    app = Path(__file__).resolve().parents[2] / "app"
    pattern = re.compile(r"setPosition\(|selectionStart\(|selectionEnd\(|(?<!event)\.position\(\)")
    offenders = []
    for f in app.rglob("*.py"):
        if f.name == "positions.py":
            continue
        for k, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{f.relative_to(app)}:{k}: {line.strip()}")
    assert offenders == []


def test_accept_with_an_insertion_right_after_a_mask_and_emoji_before(rec_window, qtbot):
    w = rec_window
    text = "\U0001f468\u200d\U0001f469\u200d\U0001f467 one two three \U0001d400 four"
    w.editor.setPlainText(text)
    a = text.index("two")
    w.editor.add_mask(a, a + 3)
    w.editor.add_mask(a + 3, a + 3, length=2)  # an insertion where the mask ends
    b = text.index("four")
    w.editor.add_mask(b, b + 4)
    with qtbot.waitSignal(w.runFinished, timeout=5000):
        assert w.infill.start()
    req, result = w.requests[-1], w.infill.current.result
    assert [req.text[s.start:s.end] for s in req.spans] == ["two", "", "four"]
    assert w.infill.accept()
    assert document_text(w.editor.document()) == result.text
