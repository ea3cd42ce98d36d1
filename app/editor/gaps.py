"""Room in the line for insertion masks' chips, so a chip never hides text.

An insertion mask has no text of its own: its chip ("+8") needs a gap in the
line at the insertion point. The gap is letter spacing added to one character,
set as an additional format on that block's QTextLayout (what
QSyntaxHighlighter does, without running Python for every block of the
document): it changes how the line is laid out (text after the point moves
aside, and wraps as usual) but not the document's text, its undo stack or its
modified flag. Qt adds letter spacing on the right of a glyph whatever its
direction, so the editor gives it to the glyph whose right edge is at the
insertion point: the character before the point in left-to-right text, its
left-hand neighbour in right-to-left text, the glyph left of a tab's blank where
that neighbour is a tab, which absorbs spacing (see app.editor.glyphs). Qt does not
move such formats with edits, so the editor sets them again on the blocks an
edit touched (one block for a typed key), never on the whole document. An
insertion at the start of a line has no character before it; its chip is a
thin bar in the document margin instead.
"""
from __future__ import annotations

from PySide6.QtGui import QFont, QTextBlock, QTextCharFormat, QTextLayout

from .. import positions
from ..positions import utf16_len

Gap = tuple[int, int]  # (UTF-16 offset in the block of the character that gets the gap, width in pixels)


def set_gaps(block: QTextBlock, gaps: list[Gap], in_change: bool = False) -> bool:
    """Open exactly ``gaps`` in ``block`` (closing any others); True if its formats changed.

    ``in_change``: called from a ``contentsChange`` slot, where the layout of the
    changed blocks is about to be redone anyway (relaying it out here would make
    Qt lay out every block between this one and the edited one). A block that
    has no gap and is to have none is not touched (a long line is not laid out
    again)."""
    layout = block.layout()
    current = [(r.start, r.length, r.format.fontLetterSpacing()) for r in layout.formats()]
    if not gaps and not current:
        return False
    text = block.text()
    where = positions.PositionMap(text)
    ranges, wanted = [], []
    for offset, width in sorted(gaps):
        if offset < 0:
            continue
        # the character there (two UTF-16 units for one outside the BMP)
        cp = where.to_cp(offset)
        units = utf16_len(text[cp: cp + 1] or " ")
        r = QTextLayout.FormatRange()
        r.start, r.length = offset, units
        r.format = QTextCharFormat()
        r.format.setFontLetterSpacingType(QFont.SpacingType.AbsoluteSpacing)
        r.format.setFontLetterSpacing(width)
        ranges.append(r)
        wanted.append((r.start, r.length, float(width)))
    if wanted == current:
        return False
    layout.setFormats(ranges)
    if not in_change:
        positions.relayout(block)
    return True

