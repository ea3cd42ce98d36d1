"""Find and replace bar under the editor (Ctrl+F, Ctrl+H).

The search runs over the document's text in Python: str.find over the text as
QTextDocument.find compares it (a no-break space as a space, Qt's one-to-one
case folding where case does not matter), kept between searches until the next
edit. QTextDocument.find walks the document block by block, about a second for
50 MB, and twice that for a word that is absent (it wraps around). Matches never
span lines, as with QTextDocument.find. A large document is read for the search
in pieces, with events handled between them, so the window never waits on the
whole text at once.
"""
from __future__ import annotations

import re
from functools import lru_cache

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor, QTextDocument
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QLineEdit, QPushButton, QToolButton, QWidget

from . import opening, positions

READ_PIECE = 1 << 20  # characters of the document read at a time for a search (about 30 ms each)
# replacements made between two passes of the event loop: Replace All of 694,444 hits in 50 MB took 13 s of CPU
REPLACE_PIECE = 10_000


class FindBar(QWidget):
    def __init__(self, editor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findBar")
        self.editor = editor
        g = QGridLayout(self)
        g.setContentsMargins(6, 2, 6, 2)
        self.find_edit = QLineEdit(objectName="findEdit", placeholderText="Find")
        self.replace_edit = QLineEdit(objectName="replaceEdit", placeholderText="Replace with")
        self.case = QCheckBox("Match case", objectName="matchCaseCheck")
        self.status = QLabel("", objectName="findStatus")
        prev_b = QPushButton("Previous")
        next_b = QPushButton("Next")
        self.replace_b = QPushButton("Replace", objectName="replaceButton")
        self.replace_all_b = QPushButton("Replace all", objectName="replaceAllButton")
        close = QToolButton(text="✕", toolTip="Close (Esc)")
        g.addWidget(self.find_edit, 0, 0)
        g.addWidget(prev_b, 0, 1)
        g.addWidget(next_b, 0, 2)
        g.addWidget(self.case, 0, 3)
        g.addWidget(self.status, 0, 4)
        g.addWidget(close, 0, 5)
        g.addWidget(self.replace_edit, 1, 0)
        g.addWidget(self.replace_b, 1, 1)
        g.addWidget(self.replace_all_b, 1, 2)
        g.setColumnStretch(0, 1)
        self.find_edit.returnPressed.connect(self.find_next)
        self.find_edit.textChanged.connect(lambda _: self.status.clear())
        next_b.clicked.connect(self.find_next)
        prev_b.clicked.connect(self.find_previous)
        self.replace_b.clicked.connect(self.replace_one)
        self.replace_all_b.clicked.connect(self.replace_all)
        close.clicked.connect(self.close_bar)
        esc = QShortcut(QKeySequence(Qt.Key.Key_Escape), self, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        esc.activated.connect(self.close_bar)
        self._haystack: _Haystack | None = None
        self._reading = False
        self._last_match: tuple[QTextCursor, tuple[int, int]] | None = None  # Find's cursor, its code points
        editor.document().contentsChange.connect(self._forget_text)
        self.hide()

    def _forget_text(self, *_: object) -> None:
        self._haystack = None
        self._last_match = None

    def _selection(self) -> tuple[int, int]:
        """positions.selection of the editor's cursor. Where the document has no position
        map yet, making one reads the whole document (0.4 s of CPU for 50 MB), so the cursor
        Find itself placed, and the start of the document, are answered without it."""
        c = self.editor.textCursor()
        if self._last_match is not None and c == self._last_match[0]:
            return self._last_match[1]
        if not c.hasSelection() and c.atStart():
            return 0, 0
        return positions.selection(c)

    def haystack(self) -> _Haystack:
        """The document's text as searched (made again after an edit). A large document
        is read piece by piece, handling events between pieces (see _read_in_pieces)."""
        if self._haystack is None:
            doc = self.editor.document()
            if doc.characterCount() <= READ_PIECE:
                self._haystack = _Haystack(positions.document_text(doc))
            else:
                self._haystack = self._read_in_pieces()
        return self._haystack

    def _read_in_pieces(self) -> _Haystack:
        # One toRawText of 50 MB held the GUI thread for 0.4-0.6 s, and its ASCII lower-case
        # copy 0.2 s more; read in pieces of READ_PIECE, no event waits longer than a piece
        # (about 30 ms). An edit made meanwhile starts the reading again.
        doc = self.editor.document()
        self._reading = True
        try:
            while True:
                n, k = doc.characterCount() - 1, 0
                # the lower-case copy is filled in place, piece by piece: no join of 50 MB at the end
                revision, pieces, folded = doc.revision(), [], bytearray(n)
                while k < n and doc.revision() == revision:
                    j = min(n, k + READ_PIECE)
                    if "\ud800" <= doc.characterAt(j - 1) <= "\udbff":  # never half a surrogate pair
                        j += 1
                    piece = positions.qt_cursor(doc, k, j).selectedText().replace("\u2029", "\n")
                    pieces.append(piece)
                    if folded is not None and piece.isascii():
                        folded[k:j] = piece.encode("ascii").lower()
                    else:
                        folded = None
                    k = j
                    QCoreApplication.processEvents()
                if doc.revision() == revision:
                    break
            text = "".join(pieces)
            # the document's own map when it is current (built with the file's reading, kept up to
            # date by edits); else one built here, which the document keeps: 0.5 s at 50 MB, once
            helper = positions.for_document(doc)
            where = helper.current()
            if where is None:
                where = positions.PositionMap(text)
                helper.adopt(where)
            hay = _Haystack(text, where)
            if folded is not None:
                hay._folded = folded
            return hay
        finally:
            self._reading = False

    def open(self, replace: bool = False) -> None:
        sel = self.editor.textCursor().selectedText()
        if sel and "\u2029" not in sel:
            self.find_edit.setText(sel)
        for w in (self.replace_edit, self.replace_b, self.replace_all_b):
            w.setVisible(replace)
        self.show()
        (self.replace_edit if replace and self.find_edit.text() else self.find_edit).setFocus()
        self.find_edit.selectAll()

    def close_bar(self) -> None:
        self.editor.clear_find_highlight()
        self._haystack = None  # the text of a large document is not kept for nothing
        self.hide()
        self.editor.setFocus()

    def _find(self, backward: bool) -> bool:
        needle = self.find_edit.text()
        if not needle or self._reading:  # a search asked for while the text is being read: the first one answers
            return False
        hay, case = self.haystack(), self.case.isChecked()
        if self.find_edit.text() != needle:  # typed into while a large text was read: search what is there now
            return self._find(backward)
        # where QTextDocument.find starts: after the selection, or before it going back
        first, last = self._selection()
        start = first if backward else last
        hit = hay.find(needle, start, case, backward)
        if hit < 0:  # wrap around
            hit = hay.find(needle, len(hay.text) if backward else 0, case, backward)
            if hit >= 0:
                self.status.setText("wrapped")
        if hit < 0:
            self.status.setText("not found")
            self.editor.clear_find_highlight()
            return False
        c = positions.qt_cursor(self.editor.document(), hay.to_qt(hit), hay.to_qt(hit + len(needle)))
        self.editor.setTextCursor(c)
        self.editor.set_find_cursor(c)
        self._last_match = (QTextCursor(c), (hit, hit + len(needle)))
        return True

    def find_next(self) -> bool:
        return self._find(False)

    def find_previous(self) -> bool:
        return self._find(True)

    def _matches(self, c: QTextCursor) -> bool:
        a, b, case = c.selectedText(), self.find_edit.text(), self.case.isChecked()
        return bool(b) and as_searched(a, case) == (b if case else fold(b))

    def replace_one(self) -> None:
        if self.editor.isReadOnly():
            return
        c = self.editor.textCursor()
        if self._matches(c):
            c.beginEditBlock()
            c.insertText(self.replace_edit.text())
            c.setBlockFormat(c.blockFormat())  # typing next is its own undo step (see replace_all)
            c.endEditBlock()
        self.find_next()

    def replace_all(self) -> int:
        if self.editor.isReadOnly() or not self.find_edit.text() or self._reading:
            return 0
        doc = self.editor.document()
        needle, repl = self.find_edit.text(), self.replace_edit.text()
        hay = self.haystack()
        # Reading a large text handles events: a run may have started (the editor is read-only
        # then) or the fields changed meanwhile; replace nothing rather than under a run.
        if self.editor.isReadOnly() or (self.find_edit.text(), self.replace_edit.text()) != (needle, repl):
            self.status.setText("Replace all was not done: the document or the fields changed while it was read")
            return 0
        hits = hay.find_all(needle, self.case.isChecked())
        if not hits:  # no undo step (nor a modified document) for nothing
            self.status.setText("not found")
            return 0
        many = len(hits) > REPLACE_PIECE
        progress = opening.OpenProgress(self.window(), f"“{needle}”") if many else None
        step = progress.counter("Replacing", len(hits), lambda *_: None) if progress else None
        viewport = self.editor.viewport()
        viewport.setUpdatesEnabled(not many)  # the layout is stale until the edit block ends
        edit = QTextCursor(doc)
        edit.beginEditBlock()  # one undo step
        done = 0
        try:
            # last first: the earlier hits' positions still hold (the map is of the text before)
            for k in reversed(hits):
                positions.qt_cursor(doc, hay.to_qt(k), hay.to_qt(k + len(needle))).insertText(repl)
                done += 1
                if step is not None and done % REPLACE_PIECE == 0 and done < len(hits) and not step(done):
                    break
            else:
                # end the block on a command Qt does not merge typing into (as Accept does), so the
                # next keystroke is its own undo step: setting a block's format to itself changes nothing
                edit.setBlockFormat(edit.blockFormat())
        finally:
            edit.endEditBlock()
            viewport.setUpdatesEnabled(True)
            if progress is not None:
                progress.close()
        if done < len(hits):  # cancelled: nothing replaced, and no redo brings half of it back
            doc.undo()
            doc.clearUndoRedoStacks(QTextDocument.Stacks.RedoStack)
            self.status.setText("Replace all was cancelled")
            return 0
        self.status.setText(f"{len(hits)} replaced")
        self.editor.clear_find_highlight()
        return len(hits)


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    # Qt folds one UTF-16 character to one (QChar::toCaseFolded, Unicode's simple case
    # folding): "İ" stays itself while str.casefold gives two characters, "ẞ" becomes "ß".
    full = ch.casefold()
    if len(full) == 1:
        return full
    low = ch.lower()
    if len(low) == 1:
        again = low.casefold()
        return again if len(again) == 1 else low
    return ch


def fold(text: str) -> str:
    """``text`` case-folded as QTextDocument.find compares it without FindCaseSensitively:
    one character to one, so positions still agree."""
    return text.translate({ord(c): _fold_char(c) for c in set(text) if _fold_char(c) != c})


def as_searched(text: str, case: bool) -> str:
    """A piece of the document as QTextDocument.find sees it: a no-break space is a space
    (Qt replaces U+00A0 in the block's text, not in the needle), folded unless ``case``."""
    text = text.replace("\u00a0", " ")
    return text if case else fold(text)


@lru_cache(maxsize=1)
def _same_when_folded() -> dict[str, str]:
    # folded character -> every character that folds to it; no case mapping lies past U+1E9FF
    groups: dict[str, set[str]] = {}
    for cp in range(0x1F000):
        c = chr(cp)
        if not 0xD800 <= cp < 0xE000 and (f := _fold_char(c)) != c:
            groups.setdefault(f, {f}).add(c)
    return {f: "".join(sorted(g)) for f, g in groups.items()}


@lru_cache(maxsize=64)
def _pattern(needle: str, case: bool) -> re.Pattern:
    # one class per character of the needle, so a match is as long as the needle
    groups = {} if case else _same_when_folded()
    parts = []
    for ch in needle:
        same = " \u00a0" if ch == " " else ch if case else groups.get(_fold_char(ch), _fold_char(ch)) + ch
        parts.append(re.escape(same) if len(same) == 1 else "[" + "".join(map(re.escape, sorted(set(same)))) + "]")
    return re.compile("".join(parts))


class _Haystack:
    """A document's text and what searching it needs."""

    CHUNK = 1 << 20  # a backward search looks at this many characters at a time

    def __init__(self, text: str, where: positions.PositionMap | None = None) -> None:
        """``where``: the PositionMap of ``text`` if one is at hand (it is not copied: the
        haystack is dropped at the document's next change, before the map would follow it)."""
        self.text = text
        self._map = where if where is not None else positions.PositionMap(text)
        self._folded: bytes | bytearray | None = None  # the ASCII text in lower case, made on first use
        self._nbsp: bool | None = None  # whether the text holds a no-break space, looked up on first use

    def _by_pattern(self, needle: str, case: bool) -> bool:
        """Whether ``needle`` is looked for with a regular expression (not str.find or bytes.find)."""
        if self.text.isascii() and not case:
            return False
        if case and " " in needle and self._nbsp is None:
            self._nbsp = "\u00a0" in self.text
        return not (case and (" " not in needle or not self._nbsp))

    def to_qt(self, cp: int) -> int:
        return self._map.to_qt(cp)

    def find(self, needle: str, start: int, case: bool, backward: bool = False) -> int:
        """The code point where ``needle`` next occurs from ``start`` (going back: the last
        one that starts before ``start``), or -1, as QTextDocument.find matches: within a
        line, a space matching a no-break space in the text (one in the needle matches
        nothing), Qt's one-to-one case folding."""
        if "\n" in needle or "\u2029" in needle or "\u00a0" in needle:
            return -1
        if backward and start <= 0:
            return -1
        hay: str | bytes = self.text
        pin: str | bytes = needle
        if self.text.isascii() and not case:
            # bytes.lower() is a table lookup; a regular expression takes ~20x longer
            pin = fold(needle)
            if not pin.isascii():
                return -1
            if self._folded is None:
                self._folded = self.text.encode("ascii").lower()
            hay, pin = self._folded, pin.encode("ascii")
        elif self._by_pattern(needle, case):
            return self._search(_pattern(needle, case), len(needle), start, backward)
        # going back, the match must start before ``start``
        return hay.rfind(pin, 0, max(0, start - 1) + len(pin)) if backward else hay.find(pin, start)

    def _search(self, pattern: re.Pattern, n: int, start: int, backward: bool) -> int:
        if not backward:
            m = pattern.search(self.text, start)
            return m.start() if m else -1
        end = start - 1 + n  # the match must start before ``start``
        while end > 0:
            lo = max(0, end - self.CHUNK)
            hits = [m.start() for m in pattern.finditer(self.text, lo, end) if m.start() < start]
            if hits:
                return hits[-1]
            end = lo + n - 1 if lo > 0 else 0
        return -1

    def find_all(self, needle: str, case: bool) -> list[int]:
        """Where ``needle`` occurs, left to right, without overlaps."""
        if self._by_pattern(needle, case) and not ("\n" in needle or "\u2029" in needle or "\u00a0" in needle):
            # one pass of the pattern: a search per match compiled it and scanned for NBSP each time
            return [m.start() for m in _pattern(needle, case).finditer(self.text)]
        out, k = [], self.find(needle, 0, case)
        while k >= 0:
            out.append(k)
            k = self.find(needle, k + len(needle), case)
        return out
