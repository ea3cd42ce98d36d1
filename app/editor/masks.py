"""A mask: a span of the document to fill, held as QTextCursor anchors.

The cursors belong to the document, so the mask moves with edits around it.
Text typed at either edge stays outside the mask. A range mask whose text is
deleted entirely disappears; an insertion mask (start == end) has a length.
``start`` and ``end`` are code points of the document text (app.positions
converts to and from Qt's UTF-16 positions).
"""
from __future__ import annotations

import itertools

from PySide6.QtGui import QTextCursor, QTextDocument

from .. import positions

_ids = itertools.count(1)


class Mask:
    def __init__(self, document: QTextDocument, start: int, end: int,
                 length: int | None = None, strength: float = 1.0) -> None:
        self.id = next(_ids)
        self.insertion = start == end
        self._start = positions.cursor_at(document, start)
        if not self.insertion:
            self._end = positions.cursor_at(document, end)
            # typed at the end edge: stays outside; at the start edge: the start
            # cursor moves past it, so it is outside too.
            self._end.setKeepPositionOnInsert(True)
        else:
            self._end = self._start
        self.length = length  # tokens; None: as many as the covered text has
        self.strength = strength

    @property
    def start(self) -> int:
        return positions.position(self._start)

    @property
    def end(self) -> int:
        return positions.position(max(self._start, self._end))

    def range(self) -> tuple[int, int]:
        return self.start, self.end

    def anchor(self) -> QTextCursor:
        """The cursor the mask starts at (the document moves it with edits); for
        queries only: blockNumber(), atBlockStart(), a copy to move."""
        return self._start

    def end_anchor(self) -> QTextCursor:
        """The cursor the mask ends at (the same as ``anchor()`` for an insertion); for queries only."""
        return self._end

    def cursor(self) -> QTextCursor:
        """A cursor selecting the mask's text that moves with edits as the mask does: text
        typed at either edge stays outside it (so a highlight made with it stays right)."""
        c = positions.between(self._start, max(self._start, self._end))
        c.setKeepPositionOnInsert(True)
        return c

    @property
    def collapsed(self) -> bool:
        """A range mask whose text was deleted."""
        return not self.insertion and self._end <= self._start

    def contains(self, pos: int) -> bool:
        if self.insertion:
            return pos == self.start
        return self.start <= pos <= self.end

    def overlaps(self, start: int, end: int) -> bool:
        if self.insertion:
            return start <= self.start <= end if start != end else self.start == start
        if start == end:
            return self.start < start < self.end
        return self.start < end and start < self.end

    def describe(self) -> str:
        n = f"{self.length} tokens" if self.length else "auto length"
        s = "" if self.strength >= 1 else f", strength {self.strength:.0%}"
        return f"{'insertion' if self.insertion else 'mask'} ({n}{s})"
