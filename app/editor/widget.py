"""The editor: a QPlainTextEdit that holds masks as overlays.

Masks never change the text: they are QTextCursor anchors drawn with
ExtraSelections (range masks) and painted chips (insertion masks), each in a
gap of its own in the line (app.editor.gaps), so a chip never hides text.
"""
from __future__ import annotations

from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import (
    QAction, QBrush, QColor, QFont, QFontMetrics, QPainter, QPen, QTextCharFormat, QTextCursor,
)
from PySide6.QtWidgets import QMenu, QPlainTextEdit, QTextEdit, QWidget

from .. import positions
from ..positions import document_text
from . import colors
from .gaps import InsertionGaps
from .masks import Mask

CHIP_PAD = 2  # pixels between a chip and the glyphs on either side


def editor_font() -> QFont:
    font = QFont("DejaVu Sans Mono")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setFixedPitch(True)
    font.setPointSize(11)
    return font


class Editor(QPlainTextEdit):
    masksChanged = Signal()
    maskEditRequested = Signal(object, QPoint)  # Mask, global position

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("editor")
        self.setFont(editor_font())
        self.setTabStopDistance(4 * self.fontMetrics().horizontalAdvance(" "))
        self.masks: list[Mask] = []
        self._tint: list[QTextEdit.ExtraSelection] = []
        self._find: list[QTextEdit.ExtraSelection] = []
        self._applying = False
        positions.for_document(self.document())  # first to hear of a change: positions are fresh for the slots below
        self.document().contentsChange.connect(self._on_contents_change)
        self._gaps = InsertionGaps(self.document())
        self._chip_cache: tuple[float, QFont, QFontMetrics] | None = None

    # ---- masks ---------------------------------------------------------
    def add_mask(self, start: int, end: int, length: int | None = None, strength: float = 1.0) -> Mask:
        start, end = min(start, end), max(start, end)
        for m in [m for m in self.masks if m.overlaps(start, end) or (m.insertion and start < m.start < end)]:
            self.masks.remove(m)
        mask = Mask(self.document(), start, end, length, strength)
        self.masks.append(mask)
        self.masks.sort(key=lambda m: (m.start, m.end))
        self.refresh_selections()
        self.masksChanged.emit()
        return mask

    def mask_selection(self, insertion_length: int) -> Mask:
        """Mask the selection, or insert an insertion mask at the cursor."""
        c = self.textCursor()
        if c.hasSelection():
            start, end = positions.selection(c)
            first = start
            text = document_text(self.document())
            # word-wise selection (Ctrl+Shift+Right, double-click) takes the space after a
            # word: keep spaces at the edges outside the mask, so the fill keeps its neighbours apart
            while end > start and text[end - 1] in " \t\n":
                end -= 1
            while start < end and text[start] in " \t\n":
                start += 1
            if start == end:  # only whitespace selected: an insertion where it began
                return self.add_mask(first, first, length=insertion_length)
            mask = self.add_mask(start, end)
            self.setTextCursor(positions.cursor_at(self.document(), mask.end))
            return mask
        pos = positions.position(c)
        return self.add_mask(pos, pos, length=insertion_length)

    def remove_mask(self, mask: Mask) -> None:
        if mask in self.masks:
            self.masks.remove(mask)
            self.refresh_selections()
            self.masksChanged.emit()

    def clear_masks(self) -> None:
        if self.masks:
            self.masks.clear()
            self.refresh_selections()
            self.masksChanged.emit()

    def mask_at(self, pos: int) -> Mask | None:
        hits = [m for m in self.masks if m.contains(pos)]
        return hits[0] if hits else None

    def mask_ranges(self) -> list[tuple[int, int, int | None, float]]:
        return [(m.start, m.end, m.length, m.strength) for m in self.masks]

    def _selection(self, cursor: QTextCursor, fmt: QTextCharFormat) -> QTextEdit.ExtraSelection:
        sel = QTextEdit.ExtraSelection()
        sel.cursor = cursor
        sel.format = fmt
        return sel

    # ---- tint after Accept ----------------------------------------------
    def set_tint(self, pieces: list[tuple[int, int, float]]) -> None:
        sels = []
        for start, end, conf in pieces:
            fmt = QTextCharFormat()
            fmt.setBackground(colors.confidence_color(conf))
            fmt.setToolTip(f"confidence {conf:.0%}")
            sels.append(self._selection(positions.cursor_over(self.document(), start, end), fmt))
        self._tint = sels
        self.refresh_selections()

    def clear_tint(self) -> None:
        if self._tint:
            self._tint = []
            self.refresh_selections()

    @property
    def has_tint(self) -> bool:
        return bool(self._tint)

    def set_find_highlight(self, start: int, end: int) -> None:
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(253, 224, 71, 160))
        self._find = [self._selection(positions.cursor_over(self.document(), start, end), fmt)]
        self.refresh_selections()

    def clear_find_highlight(self) -> None:
        if self._find:
            self._find = []
            self.refresh_selections()

    # ---- drawing -------------------------------------------------------
    def refresh_selections(self) -> None:
        sels = list(self._tint)
        for m in self.masks:
            if m.insertion:
                continue
            fmt = QTextCharFormat()
            fmt.setBackground(colors.MASK_BG)
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
            fmt.setUnderlineColor(colors.MASK_EDGE)
            fmt.setToolTip(m.describe() + " — double-click to edit")
            sels.append(self._selection(m.cursor(), fmt))
        sels.extend(self._find)
        self.setExtraSelections(sels)
        self._relayout_gaps()
        self.viewport().update()

    def _chip_font(self) -> QFont:
        size = self.font().pointSizeF() * 0.8
        if self._chip_cache is None or self._chip_cache[0] != size:
            small = QFont(self.font())
            small.setPointSizeF(size)
            self._chip_cache = (size, small, QFontMetrics(small))
        return self._chip_cache[1]

    @staticmethod
    def chip_label(mask: Mask) -> str:
        return f"+{mask.length or '?'}"

    def _chip_width(self, mask: Mask) -> int:
        self._chip_font()
        return self._chip_cache[2].horizontalAdvance(self.chip_label(mask)) + 8

    # These run on every paint and relayout: they query the mask's anchor or a copy of
    # it and call no Qt method that returns void (shiboken6 6.12.0 on Python 3.11 drops
    # a reference to None on each such call, and None's count running out aborts).
    @staticmethod
    def _at_block_start(mask: Mask) -> bool:
        return mask.anchor().atBlockStart()

    @staticmethod
    def _after_tab(mask: Mask) -> bool:
        c = QTextCursor(mask.anchor())
        c.movePosition(QTextCursor.MoveOperation.PreviousCharacter, QTextCursor.MoveMode.KeepAnchor)
        return c.selectedText() == "\t"

    def _gap_widths(self) -> dict[tuple[int, int], int]:
        """{(block number, UTF-16 offset in it): gap width} of every insertion mask with a
        character before it on its line. A tab absorbs letter spacing (it still ends at its tab stop), so the
        chip of an insertion after a tab goes in the tab's own blank space instead."""
        # one insertion mask per position (add_mask replaces one at the same place)
        return {(m.anchor().blockNumber(), m.anchor().positionInBlock()): self._chip_width(m) + 2 * CHIP_PAD
                for m in self.masks if m.insertion and not self._at_block_start(m) and not self._after_tab(m)}

    def _relayout_gaps(self) -> None:
        self._gaps.set(self._gap_widths())

    def insertion_rect(self, mask: Mask) -> QRect:
        """Where the chip of an insertion mask is drawn, in viewport pixels: in the gap
        opened for it after the character before it (in a tab's blank space after a tab).
        Where there is no room for the label (the start of a line, a narrow tab) it is a
        thin bar: in the document margin at a line's start. Either way it covers no glyph."""
        c = mask.anchor()
        after = self.cursorRect(c)
        if self._at_block_start(mask):
            left = max(0, after.left() - int(self.document().documentMargin()) + 1)
            return QRect(left, after.top() + 1, max(2, after.left() - left - 1), after.height() - 2)
        w = self._chip_width(mask)
        before_c = QTextCursor(c)
        before_c.movePosition(QTextCursor.MoveOperation.PreviousCharacter)
        before = self.cursorRect(before_c)
        if self._after_tab(mask):
            if before.top() != after.top():
                return QRect(before.left() + CHIP_PAD, before.top() + 1, 2, before.height() - 2)
            room = after.left() - before.left()  # the tab's blank space
            pad = min(CHIP_PAD, max(0, (room - 1) // 2))
            w = max(1, min(w, room - 2 * pad))
            return QRect(after.left() - w - pad, after.top() + 1, w, after.height() - 2)
        if before.top() == after.top():  # the gap ends where the next character starts
            x = after.left() - w - CHIP_PAD
            top, height = after.top(), after.height()
        else:  # the point wrapped to the next visual line: the gap ends the line above
            before_c.movePosition(QTextCursor.MoveOperation.NextCharacter, QTextCursor.MoveMode.KeepAnchor)
            x = before.left() + self.fontMetrics().horizontalAdvance(before_c.selectedText()) + CHIP_PAD
            top, height = before.top(), before.height()
        return QRect(x, top + 1, w, height - 2)

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        inserts = [m for m in self.masks if m.insertion]
        if not inserts:
            return
        p = QPainter(self.viewport())
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setFont(self._chip_font())
        for m in inserts:
            r = self.insertion_rect(m)
            if not r.intersects(event.rect()):
                continue
            if r.width() < self._chip_width(m):  # no room for the label: a bar
                p.fillRect(r, colors.MASK_EDGE)
                continue
            p.setPen(QPen(colors.MASK_EDGE, 1))
            p.setBrush(QBrush(colors.MASK_BG))
            p.drawRoundedRect(r, 3, 3)
            p.setPen(colors.MASK_EDGE)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, self.chip_label(m))
        p.end()

    # ---- interaction -----------------------------------------------------
    def _mask_under(self, viewport_pos: QPoint) -> Mask | None:
        for m in self.masks:
            if m.insertion and self.insertion_rect(m).contains(viewport_pos):
                return m
        pos = positions.position(self.cursorForPosition(viewport_pos))
        m = self.mask_at(pos)
        return None if m is not None and m.insertion else m

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        m = self._mask_under(event.position().toPoint())
        if m is not None:
            self.maskEditRequested.emit(m, event.globalPosition().toPoint())
            return
        super().mouseDoubleClickEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        menu: QMenu = self.createStandardContextMenu(event.pos())
        m = self._mask_under(event.pos())
        if m is not None:
            menu.insertSeparator(menu.actions()[0])
            edit = _menu_action(menu, "Mask length and strength…", lambda: self.maskEditRequested.emit(m, event.globalPos()))
            remove = _menu_action(menu, "Remove this mask", lambda: self.remove_mask(m))
            menu.insertActions(menu.actions()[0], [edit, remove])
        menu.exec(event.globalPos())
        menu.deleteLater()

    def _on_contents_change(self, pos: int, removed: int, added: int) -> None:
        if self._applying:
            return
        gone = [m for m in self.masks if m.collapsed]
        for m in gone:
            self.masks.remove(m)
        if self._tint:
            self._tint = []
        if gone or removed or added:
            self.refresh_selections()
            self._gaps.set(self._gap_widths(), force=True)
        if gone:
            self.masksChanged.emit()


def _menu_action(parent, text, slot) -> QAction:
    a = QAction(text, parent)
    a.triggered.connect(slot)
    return a
