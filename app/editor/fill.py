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

``replace`` does the same as one undoable edit (Reload, crash recovery): the
pieces go in inside one edit block, which Qt records as one undo step and lays
out at its end in about 0.01 s (the per-piece work is the same as outside a
block); the old text leaves in pieces from the end first, since removing 10 MB
at once took 0.46 s.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from PySide6.QtGui import QTextCursor, QTextDocument
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


def _tail(doc: QTextDocument, size: int) -> QTextCursor:
    """A cursor selecting the document's last lines of about ``size`` characters
    (at least one line; the whole document if it is shorter), from a line start."""
    block = doc.lastBlock()
    total = block.length()
    while total < size and block.previous().isValid():
        block = block.previous()
        total += block.length()
    c = QTextCursor(block)
    if block.previous().isValid():  # take the line end before it too, so no empty line is left
        c.movePosition(QTextCursor.MoveOperation.PreviousCharacter)
    c.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
    return c


def replace(editor: QPlainTextEdit, text: str, step: Callable[[int], bool], size: int | None = None,
            seal: bool = False) -> bool:
    """Replace the editor's whole text with ``text`` as one undoable edit, as
    selecting all and inserting ``text`` does, in pieces of about ``size`` characters
    (None: PIECE): the old text is removed from its end, then ``text`` goes in at the
    end, ``step(done)`` called after each piece (``done`` counts the removed
    UTF-16 units and the inserted characters: at the end it is
    ``document.characterCount() - 1`` of before plus ``len(text)``). ``seal``: the
    edit ends with an empty format change, so typing next is an undo step of its own.

    ``step`` returning False stops: the partial edit is undone (the editor holds its
    old text again) and replace returns False. A short text and document are replaced
    at once, without calling ``step``."""
    size = size or PIECE
    doc = editor.document()
    c = QTextCursor(doc)
    c.beginEditBlock()
    done = 0
    if len(text) <= size and doc.characterCount() <= size:
        c.select(QTextCursor.SelectionType.Document)
        c.insertText(text)
        if seal:
            c.setBlockFormat(c.blockFormat())
        c.endEditBlock()
        return True
    viewport = editor.viewport()
    viewport.setUpdatesEnabled(False)
    ok = True
    try:
        while ok and doc.characterCount() > 1:
            before = doc.characterCount()
            _tail(doc, size).removeSelectedText()
            done += before - doc.characterCount()
            ok = step(done)
        for piece in pieces(text, size) if ok else ():
            c.movePosition(QTextCursor.MoveOperation.End)
            c.insertText(piece)
            done += len(piece)
            if not step(done):
                ok = False
                break
        if ok and seal:
            c.setBlockFormat(c.blockFormat())
    finally:
        c.endEditBlock()
        if not ok:
            doc.undo()
            doc.clearUndoRedoStacks(QTextDocument.Stacks.RedoStack)  # a redo would bring the partial text back
        viewport.setUpdatesEnabled(True)
        viewport.update()
    return ok
