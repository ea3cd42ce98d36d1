"""The one place where Qt positions become text positions and back.

Qt counts positions in UTF-16 code units: a character outside the Basic
Multilingual Plane (an emoji, a mathematical letter, a rare CJK ideograph)
takes two. Python strings, the engine and ``Span`` count code points. Every
other module of the app speaks code points of ``document_text(doc)``; only
this module calls ``QTextCursor.setPosition``/``position`` with numbers (a
test in tests/app/test_positions.py keeps it that way).

The map of a document is rebuilt lazily after each change (one regex scan of
the text, a few ms for megabytes); texts without astral characters, the usual
case, convert in O(1).
"""
from __future__ import annotations

import re
from bisect import bisect_left

from PySide6.QtCore import QObject
from PySide6.QtGui import QTextBlock, QTextCursor, QTextDocument

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_HELPER_NAME = "lacunaPositions"


def document_text(doc: QTextDocument) -> str:
    """The document's exact text (toPlainText would turn NBSP into spaces); a
    block separator (U+2029 inside Qt) is one "\\n", so lengths agree with Qt's."""
    return doc.toRawText().replace("\u2029", "\n")


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (what Qt counts)."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


class PositionMap:
    """Code points <-> UTF-16 code units for one text.

    ``astral`` holds the code-point index of every astral character; a Qt
    position inside a surrogate pair (Qt never puts a cursor there, but a
    number can) is rounded to the start of its character, or to its end with
    ``up=True``.
    """

    __slots__ = ("astral", "astral_qt", "length")

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.astral = [] if text.isascii() else [m.start() for m in _ASTRAL.finditer(text)]
        self.astral_qt = [cp + k for k, cp in enumerate(self.astral)]

    def to_qt(self, cp: int) -> int:
        cp = max(0, min(cp, self.length))
        return cp + bisect_left(self.astral, cp) if self.astral else cp

    def to_cp(self, qt: int, up: bool = False) -> int:
        if not self.astral:
            return max(0, min(qt, self.length))
        k = bisect_left(self.astral_qt, qt)  # astral characters that start before qt
        cp = qt - k
        if up and k and self.astral_qt[k - 1] == qt - 1:  # inside a surrogate pair
            cp += 1
        return max(0, min(cp, self.length))


class DocumentPositions(QObject):
    """The PositionMap of one QTextDocument, dropped at every change."""

    def __init__(self, doc: QTextDocument) -> None:
        super().__init__(doc)
        self.setObjectName(_HELPER_NAME)
        self._doc = doc
        self._map: PositionMap | None = None
        self._count = -1
        doc.contentsChange.connect(self._changed)

    def _changed(self, *_: object) -> None:
        self._map = None

    def map(self) -> PositionMap:
        count = self._doc.characterCount()
        if self._map is None or count != self._count:
            self._map = PositionMap(document_text(self._doc))
            self._count = count
        return self._map


def for_document(doc: QTextDocument) -> DocumentPositions:
    """The document's position helper, made on first use. Make it before
    connecting other slots to ``contentsChange`` that convert positions, so it
    hears of a change first."""
    helper = doc.findChild(DocumentPositions, _HELPER_NAME)
    if helper is None:
        helper = DocumentPositions(doc)
    return helper


# ---- cursors: the only way the rest of the app touches Qt positions ----------
def cursor_at(doc: QTextDocument, pos: int) -> QTextCursor:
    """A cursor at code point ``pos`` of the document."""
    c = QTextCursor(doc)
    c.setPosition(for_document(doc).map().to_qt(pos))
    return c


def cursor_over(doc: QTextDocument, start: int, end: int) -> QTextCursor:
    """A cursor selecting code points [start, end) of the document."""
    m = for_document(doc).map()
    c = QTextCursor(doc)
    c.setPosition(m.to_qt(start))
    c.setPosition(m.to_qt(end), QTextCursor.MoveMode.KeepAnchor)
    return c


def move_to(cursor: QTextCursor, pos: int, keep_anchor: bool = False) -> None:
    """Move ``cursor`` to code point ``pos`` (keeping its anchor: extend the selection)."""
    mode = QTextCursor.MoveMode.KeepAnchor if keep_anchor else QTextCursor.MoveMode.MoveAnchor
    cursor.setPosition(for_document(cursor.document()).map().to_qt(pos), mode)


def position(cursor: QTextCursor) -> int:
    """The code point where ``cursor`` is."""
    return for_document(cursor.document()).map().to_cp(cursor.position())


def selection(cursor: QTextCursor) -> tuple[int, int]:
    """The code points [start, end) that ``cursor`` selects (start == end: none)."""
    m = for_document(cursor.document()).map()
    return m.to_cp(cursor.selectionStart()), m.to_cp(cursor.selectionEnd(), up=True)


def between(a: QTextCursor, b: QTextCursor) -> QTextCursor:
    """A cursor selecting from cursor ``a`` to cursor ``b`` (anchors that moved with edits)."""
    c = QTextCursor(a)
    c.setPosition(b.position(), QTextCursor.MoveMode.KeepAnchor)
    return c


def qt_cursor(doc: QTextDocument, qt_start: int, qt_end: int) -> QTextCursor:
    """A cursor over a range already in Qt units (the preview keeps its spans so)."""
    c = QTextCursor(doc)
    c.setPosition(qt_start)
    c.setPosition(qt_end, QTextCursor.MoveMode.KeepAnchor)
    return c


def relayout(block: QTextBlock) -> None:
    """Lay ``block`` out again (its layout's formats changed; its text did not)."""
    block.document().markContentsDirty(block.position(), block.length())
