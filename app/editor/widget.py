"""The editor: a QPlainTextEdit that holds masks as overlays.

Masks never change the text: they are QTextCursor anchors drawn with
ExtraSelections (range masks) and painted chips (insertion masks), each in a
gap of its own in the line (app.editor.gaps), so a chip never hides text.
"""
from __future__ import annotations

import math

from bisect import bisect_left, bisect_right

from PySide6.QtCore import QPoint, QRect, Qt, Signal
from PySide6.QtGui import (
    QAction, QBrush, QColor, QFont, QFontMetrics, QPainter, QPen, QTextBlock, QTextCharFormat, QTextCursor,
)
from PySide6.QtWidgets import QMenu, QPlainTextEdit, QTextEdit, QWidget

from .. import positions
from ..positions import document_text
from . import colors
from .gaps import Gap, set_gaps
from .glyphs import RTL, BidiLine, blank_around, cursor_x, glyph_box, glyph_left_of
from .masks import ABOUT, AUTO, Mask

CHIP_PAD = 2  # pixels between a chip and the glyphs on either side


def editor_font() -> QFont:
    font = QFont("DejaVu Sans Mono")
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setFixedPitch(True)
    font.setPointSize(11)
    return font


class Editor(QPlainTextEdit):
    """The text, with masks drawn over it.

    ``masks`` stays sorted by position (their cursors keep their order through
    edits), so the masks an edit or a paint concerns are found by bisection: a
    key costs the masks of the edited block, not every mask of the document."""

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
        self._mask_sels: dict[int, tuple[str, QTextEdit.ExtraSelection]] = {}  # mask id: (describe(), selection)
        self._applying = False
        positions.for_document(self.document())  # first to hear of a change: positions are fresh for the slots below
        self.document().contentsChange.connect(self._on_contents_change)
        self._chip_cache: tuple[float, QFont, QFontMetrics] | None = None

    # ---- the sorted masks ------------------------------------------------
    def _index(self, cursor: QTextCursor, right: bool = False) -> int:
        """Where a mask starting at ``cursor`` goes in ``masks`` (QTextCursors compare by position)."""
        return (bisect_right if right else bisect_left)(self.masks, cursor, key=Mask.anchor)

    def _masks_between(self, a: QTextCursor, b: QTextCursor) -> list[Mask]:
        """The masks that start from ``a`` to ``b``, both included."""
        return self.masks[self._index(a): self._index(b, right=True)]

    def _block_masks(self, block: QTextBlock) -> list[Mask]:
        first = QTextCursor(block)
        last = QTextCursor(block)
        last.movePosition(QTextCursor.MoveOperation.EndOfBlock)
        return self._masks_between(first, last)

    # ---- masks ---------------------------------------------------------
    def add_mask(self, start: int, end: int, length: int | str | None = None, strength: float = 1.0) -> Mask:
        """``length``: as Mask takes it (N, None: as the covered text, "auto" or "~N")."""
        start, end = min(start, end), max(start, end)
        doc = self.document()
        # masks never overlap each other, so only the one before ``start`` can reach into the new one
        lo = max(0, self._index(positions.cursor_at(doc, start)) - 1)
        hi = self._index(positions.cursor_at(doc, end), right=True)
        gone = [m for m in self.masks[lo:hi] if m.overlaps(start, end) or (m.insertion and start < m.start < end)]
        for m in gone:
            self.masks.remove(m)
        mask = Mask(doc, start, end, length, strength)
        k = bisect_right(self.masks, (mask.anchor(), mask.end_anchor()), key=lambda m: (m.anchor(), m.end_anchor()))
        self.masks.insert(k, mask)
        self._masks_edited([mask, *gone])
        return mask

    def mask_selection(self, insertion_length: int, auto: bool = False) -> Mask:
        """Mask the selection, or insert an insertion mask at the cursor. ``auto``: the
        model chooses the new mask's length (an insertion keeps ``insertion_length`` as
        the count a switch to a number starts from); else a range mask is as long as
        its text and an insertion ``insertion_length`` tokens."""
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
                return self._insert_mask(first, insertion_length, auto)
            mask = self.add_mask(start, end, AUTO if auto else None)
            self.setTextCursor(positions.cursor_at(self.document(), mask.end))
            return mask
        return self._insert_mask(positions.position(c), insertion_length, auto)

    def _insert_mask(self, pos: int, insertion_length: int, auto: bool) -> Mask:
        mask = self.add_mask(pos, pos, length=insertion_length)
        if auto:
            mask.set_span_length(AUTO)
            self._masks_edited([mask])  # its chip says so
        return mask

    def remove_mask(self, mask: Mask) -> None:
        if mask in self.masks:
            self.masks.remove(mask)
            self._masks_edited([mask])

    def clear_masks(self) -> None:
        if self.masks:
            gone, self.masks = self.masks, []
            self._masks_edited(gone)

    def mask_changed(self, mask: Mask) -> None:
        """``mask``'s length or strength changed (its tooltip, and an insertion's chip, follow)."""
        self._masks_edited([mask])

    def _masks_edited(self, masks: list[Mask]) -> None:
        """Masks were added, removed or changed: redraw their highlights and their blocks' gaps."""
        blocks = {m.anchor().blockNumber(): m.anchor().block() for m in masks if m.insertion}
        for block in blocks.values():
            self._set_block_gaps(block)
        if any(not m.insertion for m in masks):
            self._set_selections()
        self.viewport().update()
        self.masksChanged.emit()

    def apply_fills(self, source: str, spans: list[tuple[int, int]], fills: list[str]) -> None:
        """Replace each span [start, end) (code points of ``source``, which must be the
        document's text) with its fill, as one undo step that typing after it does not
        join. Masks are not touched here (the caller clears them)."""
        doc = self.document()
        # Qt ranges of ``source``, replaced last first so the earlier ones still hold;
        # cursors made up front would drift when an insertion sits at the end of the span before it
        pm = positions.PositionMap(source)
        ranges = [(pm.to_qt(a), pm.to_qt(b)) for a, b in spans]
        order = sorted(range(len(ranges)), key=lambda i: ranges[i], reverse=True)
        edit = positions.qt_cursor(doc, 0, 0)
        self._applying = True
        try:
            edit.beginEditBlock()  # one undo step for every span
            for i in order:
                positions.qt_cursor(doc, *ranges[i]).insertText(fills[i])
            # Qt merges an insertion typed (or pasted) right after an edit block's last
            # insertion into that block, so one Ctrl+Z would take the fill with it. The
            # block must end on another kind of command: setting a block's format to
            # what it already is records one and changes nothing.
            edit.setBlockFormat(edit.blockFormat())
            edit.endEditBlock()
        finally:
            self._applying = False

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

    def _mask_selection(self, m: Mask) -> QTextEdit.ExtraSelection:
        # made once per mask (and again when its tooltip changes): its cursor moves with
        # edits as the mask does, so an edit needs no new highlight
        described = m.describe()
        cached = self._mask_sels.get(m.id)
        if cached is None or cached[0] != described:
            fmt = QTextCharFormat()
            fmt.setBackground(colors.MASK_BG)
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
            fmt.setUnderlineColor(colors.MASK_EDGE)
            fmt.setToolTip(described + " — double-click to edit")
            cached = (described, self._selection(m.cursor(), fmt))
            self._mask_sels[m.id] = cached
        return cached[1]

    # ---- tint after Accept ----------------------------------------------
    def set_tint(self, pieces: list[tuple[int, int, float]]) -> None:
        sels = []
        for start, end, conf in pieces:
            fmt = QTextCharFormat()
            fmt.setBackground(colors.confidence_color(conf))
            fmt.setToolTip(f"confidence {conf:.0%}")
            sels.append(self._selection(positions.cursor_over(self.document(), start, end), fmt))
        self._tint = sels
        self._set_selections()

    def clear_tint(self) -> None:
        if self._tint:
            self._tint = []
            self._set_selections()

    @property
    def has_tint(self) -> bool:
        return bool(self._tint)

    def set_find_highlight(self, start: int, end: int) -> None:
        """Highlight code points [start, end) as the match of Find."""
        self.set_find_cursor(positions.cursor_over(self.document(), start, end))

    def set_find_cursor(self, cursor: QTextCursor) -> None:
        """Highlight what ``cursor`` selects as the match of Find."""
        fmt = QTextCharFormat()
        fmt.setBackground(QColor(253, 224, 71, 160))
        self._find = [self._selection(cursor, fmt)]
        self._set_selections()

    def clear_find_highlight(self) -> None:
        if self._find:
            self._find = []
            self._set_selections()

    # ---- drawing -------------------------------------------------------
    def refresh_selections(self) -> None:
        """Draw every mask, the tint and the find match again, and set every gap again."""
        self._set_selections()
        blocks = {m.anchor().blockNumber(): m.anchor().block() for m in self.masks if m.insertion}
        for block in blocks.values():
            self._set_block_gaps(block)
        self.viewport().update()

    def _set_selections(self) -> None:
        sels = list(self._tint)
        live = set()
        for m in self.masks:
            if not m.insertion:
                sels.append(self._mask_selection(m))
                live.add(m.id)
        for gone in set(self._mask_sels) - live:
            del self._mask_sels[gone]
        sels.extend(self._find)
        self.setExtraSelections(sels)

    def _chip_font(self) -> QFont:
        size = self.font().pointSizeF() * 0.8
        if self._chip_cache is None or self._chip_cache[0] != size:
            small = QFont(self.font())
            small.setPointSizeF(size)
            self._chip_cache = (size, small, QFontMetrics(small))
        return self._chip_cache[1]

    @staticmethod
    def chip_label(mask: Mask) -> str:
        if mask.mode == AUTO:
            return "+auto"
        if mask.mode == ABOUT:
            return f"+~{mask.length}"
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

    def _block_gaps(self, block: QTextBlock) -> list[Gap]:
        """The gaps of the insertion masks in ``block`` with a character before them on
        their line. A tab absorbs letter spacing (it still ends at its tab stop), so an
        insertion after a tab opens its gap at the glyph left of the tab's blank, which
        widens the blank: its chip goes there."""
        # one insertion mask per position (add_mask replaces one at the same place)
        inserts = [m for m in self._block_masks(block) if m.insertion and not self._at_block_start(m)]
        if not inserts:
            return []
        text = block.text()
        bidi = BidiLine(text, self.font(), self.document()) if RTL.search(text) or "\t" in text else None
        gaps: dict[int, int] = {}
        for m in inserts:
            before = QTextCursor(m.anchor())
            before.movePosition(QTextCursor.MoveOperation.PreviousCharacter)
            i = before.positionInBlock()
            j = i if bidi is None else bidi.gap_char(i)
            if j is not None:
                # two points on either side of one glyph (an insertion after a Latin letter and
                # one after the Hebrew letter right of it) share its gap, one chip at each end
                gaps[j] = gaps.get(j, 0) + self._chip_width(m) + 2 * CHIP_PAD
        return list(gaps.items())

    def _set_block_gaps(self, block: QTextBlock, in_change: bool = False) -> None:
        if block.isValid():
            set_gaps(block, self._block_gaps(block), in_change)

    def insertion_rect(self, mask: Mask) -> QRect:
        """Where the chip of an insertion mask is drawn, in viewport pixels: in the gap
        opened for it at the insertion point, which is the trailing edge of the character
        before it (its right in left-to-right text, its left in right-to-left text; in a
        tab's blank space after a tab), on that character's line even when the point
        wrapped to the next. Where there is no room for the label (the start of a line,
        a narrow tab, the far end of a right-to-left line) it is a thin bar: in the
        document margin beside a line's first character. Either way it covers no glyph.
        Positions come from the glyphs the line's layout draws, which know their direction."""
        c = mask.anchor()
        block = c.block()
        layout = block.layout()
        # QPlainTextEdit draws a block's layout at its bounding geometry (the lines carry the margin)
        origin = self.blockBoundingGeometry(block).translated(self.contentOffset()).topLeft()
        margin = max(3, int(self.document().documentMargin()))
        if self._at_block_start(mask):
            line = layout.lineForTextPosition(0)
            if not line.isValid():
                return self._fallback_rect(mask)
            # beside the line's text on the side where the paragraph starts
            content = line.naturalTextRect()
            rtl = block.textDirection() == Qt.LayoutDirection.RightToLeft
            x = content.right() + 1 if rtl else content.left() - margin + 1
            return QRect(round(origin.x() + x), round(origin.y() + line.y()) + 1, max(2, margin - 2),
                         round(line.height()) - 2)
        before = QTextCursor(c)
        before.movePosition(QTextCursor.MoveOperation.PreviousCharacter)
        i = before.positionInBlock()
        line = layout.lineForTextPosition(i)
        if not line.isValid():
            return self._fallback_rect(mask)
        top, height = round(origin.y() + line.y()), round(line.height())
        w = self._chip_width(mask)
        if self._after_tab(mask):
            # the tab's blank space, from where it starts to where the point is (a tab has no
            # glyph; the cursor positions on either side of it bound it)
            lead, end = cursor_x(line, i), cursor_x(line, i + 1)
            # the whole blank between the glyphs nearest the tab (in a mixed-direction line a
            # cursor position beside the tab can lie past a glyph), rounded inward to pixels
            lo, hi = blank_around(layout, line, lead + (0.5 if end >= lead else -0.5))
            lo, hi = math.ceil(origin.x() + lo), math.floor(origin.x() + hi)
            room = hi - lo
            pad = min(CHIP_PAD, max(0, (room - 1) // 2))
            w = max(1, min(w, room - 2 * pad))
            x = hi - w - pad if end >= lead else lo + pad
            return QRect(x, top + 1, w, height - 2)
        box = glyph_box(layout, i, c.positionInBlock() - i)
        if box is None:
            return self._fallback_rect(mask)
        left, right, rtl = box
        if not rtl:  # the gap follows the glyph's own advance
            return QRect(round(origin.x() + right) + CHIP_PAD, top + 1, w, height - 2)
        # right to left: the gap is the end of the advance of the glyph left of this one
        j = glyph_left_of(layout, line, left, i)
        if j is None or left - glyph_box(layout, j, 1)[1] < w:
            # the far end of a right-to-left line: no glyph there to open a gap after
            return QRect(round(origin.x() + left) - margin + 1, top + 1, max(2, margin - 2), height - 2)
        return QRect(round(origin.x() + left) - w - CHIP_PAD, top + 1, w, height - 2)

    def _fallback_rect(self, mask: Mask) -> QRect:
        # a block not laid out yet (it cannot be on screen): where its cursor is
        r = self.cursorRect(mask.anchor())
        return QRect(r.left(), r.top() + 1, 2, max(1, r.height() - 2))

    def _visible_insertions(self, area: QRect) -> list[Mask]:
        """The insertion masks of the blocks that ``area`` (viewport pixels) shows."""
        out: list[Mask] = []
        block = self.firstVisibleBlock()
        offset = self.contentOffset()
        while block.isValid():
            geo = self.blockBoundingGeometry(block).translated(offset)
            if geo.top() > area.bottom():
                break
            if geo.bottom() >= area.top() and block.isVisible():
                out.extend(m for m in self._block_masks(block) if m.insertion)
            block = block.next()
        return out

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if not self.masks:
            return
        inserts = self._visible_insertions(event.rect())
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
        for m in self._visible_insertions(self.viewport().rect()):
            if self.insertion_rect(m).contains(viewport_pos):
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
        """Qt positions [pos, pos + added) now hold what replaced ``removed`` units.

        Only the masks that start in that range can have lost their text, and only
        the blocks it spans (and those of insertion masks inside it) can need their
        gaps set again: the work is the edit's size, not the document's."""
        if self._applying or not (removed or added):
            return
        doc = self.document()
        last = min(pos + added, doc.characterCount() - 1)
        a, b = positions.qt_cursor(doc, pos, pos), positions.qt_cursor(doc, last, last)
        near = self._masks_between(a, b)
        gone = [m for m in near if m.collapsed]
        for m in gone:
            self.masks.remove(m)
        blocks = {a.blockNumber(): a.block(), b.blockNumber(): b.block()}
        blocks.update((m.anchor().blockNumber(), m.anchor().block()) for m in near if m.insertion)
        for block in blocks.values():
            self._set_block_gaps(block, in_change=True)
        tinted = bool(self._tint)
        self._tint = []
        if gone or tinted:
            self._set_selections()
        if gone:
            self.masksChanged.emit()


def _menu_action(parent, text, slot) -> QAction:
    a = QAction(text, parent)
    a.triggered.connect(slot)
    return a
