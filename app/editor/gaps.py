"""Room in the line for insertion masks' chips, so a chip never hides text.

An insertion mask has no text of its own: its chip ("+8") needs a gap in the
line at the insertion point. The gap is letter spacing added after the
character before the point, set as an additional format on that block's
QTextLayout (what QSyntaxHighlighter does, without running Python for every
block of the document): it changes how the line is laid out (text after the
point moves right, and wraps as usual) but not the document's text, its undo
stack or its modified flag. Qt does not move such formats with edits, so they
are set again at every change of the text or the masks (a few blocks: cheap).
An insertion at the start of a line has no character before it; its chip is a
thin bar in the document margin instead (see Editor).
"""
from __future__ import annotations

from PySide6.QtGui import QFont, QTextCharFormat, QTextDocument, QTextLayout

from .. import positions
from ..positions import utf16_len


class InsertionGaps:
    """Opens the gaps ``{(block number, UTF-16 offset in the block): width in pixels}``
    given to ``set`` and closes the ones no longer given."""

    def __init__(self, document: QTextDocument) -> None:
        self._doc = document
        self._gaps: dict[tuple[int, int], int] = {}

    def set(self, gaps: dict[tuple[int, int], int], force: bool = False) -> None:
        """``force``: set them again even if unchanged (the text of their blocks changed)."""
        if gaps == self._gaps and not force:
            return
        old = {block for block, _ in self._gaps}
        self._gaps = dict(gaps)
        for n in sorted(old | {block for block, _ in gaps}):
            self._apply(n)

    def _apply(self, number: int) -> None:
        block = self._doc.findBlockByNumber(number)
        if not block.isValid():
            return
        text = block.text()
        ranges = []
        for (n, offset), width in sorted(self._gaps.items()):
            if n != number or offset <= 0:
                continue
            # the character before the point (two UTF-16 units for one outside the BMP)
            before = _char_before(text, offset)
            r = QTextLayout.FormatRange()
            r.start, r.length = offset - utf16_len(before), utf16_len(before)
            r.format = QTextCharFormat()
            r.format.setFontLetterSpacingType(QFont.SpacingType.AbsoluteSpacing)
            r.format.setFontLetterSpacing(width)
            ranges.append(r)
        block.layout().setFormats(ranges)
        positions.relayout(block)


def _char_before(text: str, qoffset: int) -> str:
    """The character of ``text`` (a Python str) that ends at UTF-16 offset ``qoffset``."""
    units = 0
    for ch in text:
        units += utf16_len(ch)
        if units >= qoffset:
            return ch
    return text[-1:] or " "
