"""A mask: a span of the document to fill, held as QTextCursor anchors.

The cursors belong to the document, so the mask moves with edits around it.
Text typed at either edge stays outside the mask. A range mask whose text is
deleted entirely disappears; an insertion mask (start == end) has a length.
A mask's length is exact (N tokens, or a range mask's "as the text": the
covered text's own count), or chosen by the model (issue 23): "auto", or
"about N" (``span_length`` gives engine.types.Span's form of each).
``start`` and ``end`` are code points of the document text (app.positions
converts to and from Qt's UTF-16 positions).
"""
from __future__ import annotations

import itertools

from PySide6.QtGui import QTextCursor, QTextDocument

from .. import positions

_ids = itertools.count(1)


AUTO = "auto"  # the model chooses the length (engine.types.AUTO)
ABOUT = "about"  # the model chooses near ``length`` tokens ("~N")
EXACT = "exact"  # ``length`` tokens; None on a range mask: as many as the covered text has


class Mask:
    def __init__(self, document: QTextDocument, start: int, end: int,
                 length: int | str | None = None, strength: float = 1.0) -> None:
        """``length``: N (exactly N tokens), None (a range mask: as the covered text),
        "auto" or "~N" (the model chooses; engine.types.Span's forms)."""
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
        self.mode = EXACT
        self._length: int | None = None
        self.set_span_length(length)
        self.strength = strength

    @property
    def length(self) -> int | None:
        """Tokens: exactly this many (mode EXACT; None: as the covered text), about this
        many (ABOUT), or under AUTO the count kept for a switch back to a number."""
        return self._length

    @length.setter
    def length(self, value: int | None) -> None:
        # a number set on its own means exactly that many: the model no longer chooses
        self._length = value
        self.mode = EXACT

    @property
    def auto(self) -> bool:
        """Whether the model chooses the length ("auto" or "about N")."""
        return self.mode != EXACT

    @property
    def span_length(self) -> int | str | None:
        """The length as engine.types.Span takes it: N, None, "auto" or "~N"."""
        if self.mode == AUTO:
            return AUTO
        if self.mode == ABOUT:
            return f"~{self._length}"
        return self._length

    def set_span_length(self, value: int | str | None) -> None:
        """Set the length from Span's forms: N, None, "auto" or "~N" (N >= 1)."""
        if value == AUTO:
            self.mode = AUTO
        elif isinstance(value, str) and value.startswith("~") and value[1:].isdigit() and int(value[1:]) > 0:
            self._length, self.mode = int(value[1:]), ABOUT
        elif value is None or (isinstance(value, int) and value > 0):
            self.length = value
        else:
            raise ValueError(f"a mask length is N tokens, None, 'auto' or '~N', not {value!r}")

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

    def length_label(self) -> str:
        """The length in a few characters: "auto", "~N", "N tokens" or "as the text"."""
        if self.mode == AUTO:
            return "auto"
        if self.mode == ABOUT:
            return f"~{self._length} tokens"
        return f"{self._length} tokens" if self._length else "as the text"

    def describe(self) -> str:
        n = self.length_label() if self.mode != AUTO else "auto length"
        s = "" if self.strength >= 1 else f", strength {self.strength:.0%}"
        return f"{'insertion' if self.insertion else 'mask'} ({n}{s})"
