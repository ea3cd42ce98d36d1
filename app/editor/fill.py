"""Putting a large text into the editor without freezing the window.

QTextDocument builds a block per line on the GUI thread: 50 MB of short lines
took 3.5-10 s in one setPlainText call, with no event handled meanwhile. Here
the text goes in piece by piece at the document's end, and the caller's
``step`` runs between pieces (it handles events, shows progress, and may
cancel): the same 50 MB went in with no piece longer than 0.13 s, in about the
same total time. The viewport does not paint the half-filled text meanwhile.

A piece ends at a line end, so no line is split; a line longer than a piece
goes in whole (Qt lays out a block as a whole, so splitting it would lay the
block out again at every piece).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QPlainTextEdit

PIECE = 1 << 18  # characters: about 25 ms of Qt's work on one core of a loaded 2-core machine


def pieces(text: str, size: int) -> Iterator[str]:
    """``text`` cut after the first line end at or past every ``size`` characters
    (the last piece holds the rest). Joined, the pieces are ``text``."""
    k = 0
    while k < len(text):
        j = text.find("\n", k + size - 1)
        j = len(text) if j < 0 else j + 1
        yield text[k:j]
        k = j


def fill(editor: QPlainTextEdit, text: str, step: Callable[[int], bool], size: int | None = None) -> bool:
    """Replace the editor's text with ``text`` as setPlainText does (cursor at the start,
    no undo step recorded while the caller keeps undo off), in pieces of about ``size``
    characters (None: PIECE), calling ``step(characters_done)`` after each; ``step`` returning False
    stops (the document then holds a prefix of ``text``) and fill returns False.
    A text of one piece goes in at once and ``step`` is not called."""
    size = size or PIECE
    if len(text) <= size:
        editor.setPlainText(text)
        return True
    editor.setPlainText("")
    viewport = editor.viewport()
    viewport.setUpdatesEnabled(False)
    try:
        end = QTextCursor(editor.document())
        done = 0
        for piece in pieces(text, size):
            end.movePosition(QTextCursor.MoveOperation.End)
            end.insertText(piece)
            done += len(piece)
            if not step(done):
                return False
    finally:
        viewport.setUpdatesEnabled(True)
        editor.moveCursor(QTextCursor.MoveOperation.Start)
        viewport.update()
    return True
