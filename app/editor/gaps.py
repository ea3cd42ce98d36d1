"""Room in the line for insertion masks' chips, so a chip never hides text.

An insertion mask has no text of its own: its chip ("+8") needs a gap in the
line at the insertion point. The gap is letter spacing added after the
character before the point, applied as a layout format by a
QSyntaxHighlighter: it changes how the line is laid out (text after the point
moves right, and wraps as usual) but not the document's text, its undo stack or
its modified flag. An insertion at the start of a line has no character before
it; its chip is a thin bar in the document margin instead (see Editor).
"""
from __future__ import annotations

from PySide6.QtGui import QFont, QSyntaxHighlighter, QTextCharFormat, QTextDocument


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


class InsertionGaps(QSyntaxHighlighter):
    """``gaps()`` gives {(block number, UTF-16 offset in the block): width in pixels}
    of the gaps to open."""

    def __init__(self, document: QTextDocument, gaps) -> None:
        super().__init__(document)
        self._gaps = gaps
        self._blocks: set[int] = set()  # block numbers laid out with a gap

    def highlightBlock(self, text: str) -> None:  # noqa: N802
        number = self.currentBlock().blockNumber()
        for (block, offset), width in self._gaps().items():
            if block != number or offset <= 0:
                continue
            # the character before the point (two UTF-16 units for one outside the BMP)
            before = _char_before(text, offset)
            fmt = QTextCharFormat()
            fmt.setFontLetterSpacingType(QFont.SpacingType.AbsoluteSpacing)
            fmt.setFontLetterSpacing(width)
            self.setFormat(offset - utf16_len(before), utf16_len(before), fmt)

    def refresh(self) -> None:
        """Lay out again the blocks that had a gap or need one now."""
        doc = self.document()
        now = {block for block, _ in self._gaps()}
        for n in sorted(now | self._blocks):
            block = doc.findBlockByNumber(n)
            if block.isValid():
                self.rehighlightBlock(block)
        self._blocks = now


def _char_before(text: str, qoffset: int) -> str:
    """The character of ``text`` (a Python str) that ends at UTF-16 offset ``qoffset``."""
    units = 0
    for ch in text:
        units += utf16_len(ch)
        if units >= qoffset:
            return ch
    return text[-1:] or " "
