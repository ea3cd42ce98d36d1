"""Issue 20, leftovers: Replace All in a large document.

Replace All of a word on every line of 50 MB (694,444 hits, astral characters in the
text) held the GUI thread for 17 s: each hit compiled the search pattern again, and
the replacements ran with no event handled. Now the pattern is compiled once and
matched in one pass, and many replacements go in pieces behind a progress dialog
with Cancel, still one undo step.
"""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from PySide6.QtWidgets import QProgressDialog

from lacuna.app import findbar, positions
from tests.app.fakes import StallProbe

LINE = "a wizard \U0001f642 met Wizards and wizards \U00020000\n"


@pytest.fixture
def window(make_window):
    return make_window()


def replace_all(w, needle: str, repl: str) -> int:
    w.findbar.open(True)
    w.findbar.find_edit.setText(needle)
    w.findbar.replace_edit.setText(repl)
    return w.findbar.replace_all()


def test_many_replacements_go_in_pieces_as_one_undo_step(window, monkeypatch):
    monkeypatch.setattr(findbar, "REPLACE_PIECE", 50)
    text = LINE * 1000
    window.editor.setPlainText(text)
    findbar._pattern.cache_clear()
    probe = StallProbe(interval_ms=0)  # a tick at every pass of the event loop
    probe.start()
    assert replace_all(window, "wizards", "witches") == 2000  # case-insensitive: "Wizards" too
    probe.stop()
    assert len(probe.gaps) > 20  # events ran between the pieces
    info = findbar._pattern.cache_info()
    assert info.hits + info.misses == 1  # the pattern was made once, not once per hit
    doc = window.editor.document()
    expected = ("a wizard \U0001f642 met witches and witches \U00020000\n") * 1000
    assert positions.document_text(doc) == expected
    assert window.findbar.status.text() == "2000 replaced"
    window.editor.undo()  # one step back
    assert positions.document_text(doc) == text and not doc.isUndoAvailable()


def test_cancel_during_replace_all_leaves_the_text(window, monkeypatch):
    monkeypatch.setattr(findbar, "REPLACE_PIECE", 50)
    text = LINE * 1000
    window.editor.setPlainText(text)
    window.editor.textCursor().insertText("mine ")  # an edit before: still the last undo step after
    seen = []

    def cancel_at_the_fifth_piece(done, total):
        seen.append(done)
        if len(seen) == 5:
            (dialog,) = [d for d in window.findChildren(QProgressDialog, "openProgress") if d.isVisible()]
            dialog.cancel()

    from lacuna.app import opening

    counter = opening.OpenProgress.counter
    monkeypatch.setattr(opening.OpenProgress, "counter",
                        lambda self, verb, total, step: counter(self, verb, total, cancel_at_the_fifth_piece))
    assert replace_all(window, "wizards", "witches") == 0
    doc = window.editor.document()
    assert positions.document_text(doc) == "mine " + text and not doc.isRedoAvailable()
    assert "cancelled" in window.findbar.status.text()
    window.editor.undo()
    assert positions.document_text(doc) == text


# ---- the second input: one pass of the pattern finds what a search per hit found --------------
words = st.lists(st.sampled_from(["ab", "AB", "a b", "a\u00a0b", "\U0001f642", "ß", "ẞ", "İ", "i", "\n", " "]),
                 max_size=30).map("".join)


@given(words, st.sampled_from(["ab", "a b", "b", "ß", "i", "\U0001f642a", "bA"]), st.booleans())
def test_find_all_in_one_pass_equals_a_search_per_hit(text, needle, case):
    hay = findbar._Haystack(text)
    one_by_one, k = [], hay.find(needle, 0, case)
    while k >= 0:
        one_by_one.append(k)
        k = hay.find(needle, k + len(needle), case)
    assert hay.find_all(needle, case) == one_by_one


@pytest.mark.parametrize("change", ["run started", "field edited"])
def test_replace_all_does_nothing_if_a_run_starts_or_the_fields_change_while_the_text_is_read(window, monkeypatch,
                                                                                                change):
    """Review of issue 20: reading a large text handles events, so Ctrl+Enter (the editor goes
    read-only) or typing in the find field can come between the check and the replacement."""
    text = LINE * 50
    window.editor.setPlainText(text)
    bar = window.findbar
    read = bar.haystack

    def haystack():
        hay = read()
        if change == "run started":
            window.editor.setReadOnly(True)
        else:
            bar.find_edit.setText("met")
        return hay

    monkeypatch.setattr(bar, "haystack", haystack)
    assert replace_all(window, "wizard", "witch") == 0
    assert window.editor.toPlainText() == text and "not done" in bar.status.text()
    window.editor.setReadOnly(False)


def test_find_searches_what_the_field_holds_after_a_long_read(window, monkeypatch):
    window.editor.setPlainText("alpha beta gamma\n" * 20)
    bar = window.findbar
    bar.open(False)
    bar.find_edit.setText("beta")
    read = bar.haystack
    typed = []

    def haystack():
        if not typed:
            typed.append(1)
            bar.find_edit.setText("gamma")  # typed while the text was read
        return read()

    monkeypatch.setattr(bar, "haystack", haystack)
    assert bar.find_next()
    assert window.editor.textCursor().selectedText() == "gamma"
