"""The one place where Qt positions become text positions and back.

Qt counts positions in UTF-16 code units: a character outside the Basic
Multilingual Plane (an emoji, a mathematical letter, a rare CJK ideograph)
takes two. Python strings, the engine and ``Span`` count code points. Every
other module of the app speaks code points of ``document_text(doc)``; only
this module calls ``QTextCursor.setPosition``/``position`` with numbers (a
test in tests/app/test_positions.py keeps it that way).

The map of a document is built at first use (one regex scan of the text, about
10 ms per megabyte of text with astral characters) and then updated from each
change's range alone (Open and Reload of a large file build it on their reading
thread); texts without astral characters, the usual case, convert in O(1).
"""
from __future__ import annotations

import re
from bisect import bisect_left, bisect_right

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


class _Offsets:
    """The UTF-16 offsets of a list of astral code points, as a read-only sequence for
    bisect: the k-th astral character of a run lies ``k`` surrogate units further on."""

    __slots__ = ("cps", "extra")

    def __init__(self, cps: list[int], extra: int) -> None:
        self.cps, self.extra = cps, extra

    def __len__(self) -> int:
        return len(self.cps)

    def __getitem__(self, k: int) -> int:
        return self.cps[k] + k + self.extra


class PositionMap:
    """Code points <-> UTF-16 code units for one text, kept up to date through edits.

    The code point of every astral character is held in a gap buffer at the last edit
    (the gap buffer of text editors, applied to the list of astral characters): those
    before the gap by their index from the start, those after it by their distance
    from the end, which an edit before them does not change. An edit (``replace``)
    moves the gap to itself, drops the astral characters it removed and adds those it
    inserted: O(edit + log n) when edits follow one another (typing), plus the astral
    characters between the old and the new place when it jumps. A query is O(log n).

    A Qt position inside a surrogate pair (Qt never puts a cursor there, but a
    number can) is rounded to the start of its character, or to its end with
    ``up=True``.
    """

    __slots__ = ("_before", "_after", "length", "qt_length")

    def __init__(self, text: str) -> None:
        self.length = len(text)
        # before the gap: ascending code points; after it: distances from the end, ascending
        # (the astral character nearest the gap last). The k-th of ``_before`` is at UTF-16
        # offset cp + k; the k-th of ``_after`` at UTF-16 distance d + k + 1 from the end.
        self._before = [] if text.isascii() else [m.start() for m in _ASTRAL.finditer(text)]
        self._after: list[int] = []
        self.qt_length = self.length + len(self._before)

    @property
    def astral(self) -> list[int]:
        """Code point of every astral character, ascending (a copy: O(n))."""
        return self._before + [self.length - d for d in reversed(self._after)]

    def _count_before_cp(self, cp: int) -> int:
        """Astral characters starting before code point ``cp``."""
        k = bisect_left(self._before, cp)
        if k < len(self._before) or not self._after:
            return k
        return k + len(self._after) - bisect_right(self._after, self.length - cp)

    def _count_before_qt(self, qt: int) -> int:
        """Astral characters starting before UTF-16 offset ``qt``."""
        k = bisect_left(_Offsets(self._before, 0), qt)
        if k < len(self._before) or not self._after:
            return k
        return k + len(self._after) - bisect_right(_Offsets(self._after, 1), self.qt_length - qt)

    def _starts_at_qt(self, qt: int) -> bool:
        """Whether an astral character starts at UTF-16 offset ``qt``."""
        before = _Offsets(self._before, 0)
        k = bisect_left(before, qt)
        if k < len(before):
            return before[k] == qt
        after, d = _Offsets(self._after, 1), self.qt_length - qt
        j = bisect_left(after, d)
        return j < len(after) and after[j] == d

    def to_qt(self, cp: int) -> int:
        cp = max(0, min(cp, self.length))
        return cp + self._count_before_cp(cp) if self.qt_length != self.length else cp

    def to_cp(self, qt: int, up: bool = False) -> int:
        if self.qt_length == self.length:
            return max(0, min(qt, self.length))
        k = self._count_before_qt(qt)
        cp = qt - k
        if up and k and self._starts_at_qt(qt - 1):  # inside a surrogate pair
            cp += 1
        return max(0, min(cp, self.length))

    def _move_gap(self, cp: int) -> None:
        """Put the gap at code point ``cp``: the astral characters before it on the left."""
        before, after, n = self._before, self._after, self.length
        k = bisect_left(before, cp)
        if k < len(before):  # leftwards: the tail of the left side crosses over
            after.extend([n - x for x in reversed(before[k:])])
            del before[k:]
            return
        j = bisect_right(after, n - cp)  # after[j:] start before cp
        if j < len(after):  # rightwards
            before.extend([n - d for d in reversed(after[j:])])
            del after[j:]

    def replace(self, cp: int, removed: int, added: str) -> None:
        """The text's code points [cp, cp + removed) became ``added``.

        Raises ValueError if the range does not lie in the text."""
        if not (0 <= cp and 0 <= removed and cp + removed <= self.length):
            raise ValueError(f"[{cp}, {cp + removed}) is not inside a text of {self.length} code points")
        self._move_gap(cp)
        after = self._after
        gone = len(after) - bisect_right(after, self.length - cp - removed)  # astral ones removed
        if gone:
            del after[-gone:]
        self.length += len(added) - removed
        self.qt_length += utf16_len(added) - (removed + gone)
        if not added.isascii():
            self._before.extend([cp + m.start() for m in _ASTRAL.finditer(added)])


class DocumentPositions(QObject):
    """The PositionMap of one QTextDocument, built at first use and then updated
    at every change from the changed range alone (a keystroke in a 50 MB text with
    astral characters once rebuilt the map from the whole text: about 0.4 s)."""

    def __init__(self, doc: QTextDocument) -> None:
        super().__init__(doc)
        self.setObjectName(_HELPER_NAME)
        self._doc = doc
        self._map: PositionMap | None = None
        self._count = -1
        self.rebuilds = 0  # whole-text scans so far (tests count the work with it)
        doc.documentLayout()  # Qt reports contentsChange only to a document with a layout
        doc.contentsChange.connect(self._changed)

    def _changed(self, pos: int, removed: int, added: int) -> None:
        """Qt's UTF-16 range [pos, pos + removed) became [pos, pos + added). Qt sometimes
        reports more than changed (the final block separator, a whole setPlainText, a
        format change): a range is clamped to the text, and the map is dropped (rebuilt
        at next use) when the lengths do not add up or a bound splits a surrogate pair."""
        m = self._map
        if m is None:
            return
        self._map = None
        new_qt = self._doc.characterCount() - 1  # Qt counts the last block's separator too
        removed = max(0, min(removed, m.qt_length - pos))
        added = max(0, min(added, new_qt - pos))
        if pos < 0 or m.qt_length - removed + added != new_qt:
            return
        if added > max(1 << 20, new_qt // 2):  # most of the text is new: reading it costs a rebuild
            return
        cp, cp_end = m.to_cp(pos), m.to_cp(pos + removed)
        if m.to_qt(cp) != pos or m.to_qt(cp_end) != pos + removed:
            return
        text = ""
        if added:
            c = QTextCursor(self._doc)
            c.setPosition(pos)
            c.setPosition(pos + added, QTextCursor.MoveMode.KeepAnchor)
            text = c.selectedText()  # a block separator comes as U+2029: one code point either way
        m.replace(cp, cp_end - cp, text)
        if m.qt_length != new_qt:  # the read did not give what Qt counted
            return
        self._map, self._count = m, new_qt + 1

    def adopt(self, m: PositionMap) -> bool:
        """Take ``m``, built from the document's present text elsewhere (a reading thread
        builds it with the text: 0.5 s for 50 MB with 1.4 million astral characters), as
        the map. False, and nothing changes, if its length is not the document's."""
        count = self._doc.characterCount()
        if m.qt_length != count - 1:
            return False
        self._map, self._count = m, count
        return True

    def current(self) -> PositionMap | None:
        """The map if it is up to date, else None (never builds one)."""
        return self._map if self._map is not None and self._doc.characterCount() == self._count else None

    def map(self) -> PositionMap:
        count = self._doc.characterCount()
        if self._map is None or count != self._count:
            self._map = PositionMap(document_text(self._doc))
            self._count = count
            self.rebuilds += 1
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
