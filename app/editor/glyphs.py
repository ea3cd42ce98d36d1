"""Where glyphs are drawn, for the chips of insertion masks in text of either direction.

QTextLine.cursorToX answers for cursor positions, which at a change of
direction lie at the other run's edge; the glyph runs of a layout say where
each character's glyphs are and which way they run. Qt adds letter spacing on
the right of a glyph whatever its direction, which decides which character
gets an insertion's gap (app.editor.gaps).
"""
from __future__ import annotations

import re

from PySide6.QtGui import QFont, QTextLayout, QTextLine

# right-to-left scripts and marks: a block without them needs no bidi layout for its gaps
RTL = re.compile("[\u0590-\u08ff\u200f\u202b\u202e\u2067\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff"
                 "\U0001e800-\U0001efff]")


def cursor_x(line: QTextLine, offset: int) -> float:
    x = line.cursorToX(offset)
    return x[0] if isinstance(x, tuple) else x  # PySide returns (x, offset) for this overload


def glyph_box(layout: QTextLayout, offset: int, units: int = 1) -> tuple[float, float, bool] | None:
    """(left x, left x + the glyphs' own advance, right to left) of the character at UTF-16
    ``offset`` (``units`` long) as ``layout`` draws it, or None (no glyph: a tab). Letter
    spacing is not in the box: Qt adds it on the glyph's right."""
    edges = []
    for run in layout.glyphRuns(offset, max(1, units)):
        advances = run.rawFont().advancesForGlyphIndexes(run.glyphIndexes())
        edges += [(p.x(), p.x() + a.x()) for p, a in zip(run.positions(), advances)]
        rtl = run.isRightToLeft()
    if not edges:
        return None
    return min(a for a, _ in edges), max(b for _, b in edges), rtl


def glyph_left_of(layout: QTextLayout, line: QTextLine, x: float, other_than: int) -> int | None:
    """The UTF-16 offset of the character of ``line`` drawn just left of ``x`` (its advance,
    spacing included, ends there), or None at the line's left end."""
    if x <= line.x() + 0.5:
        return None
    j = line.xToCursor(x - 0.5, QTextLine.CursorPosition.CursorOnCharacter)
    if j == other_than or not line.textStart() <= j < line.textStart() + line.textLength():
        return None
    box = glyph_box(layout, j)
    return j if box is not None and box[0] < x <= box[1] + 0.75 + spacing_at(layout, j) else None


def blank_around(layout: QTextLayout, line: QTextLine, x: float) -> tuple[float, float]:
    """(left, right) of the blank stretch of ``line`` that holds ``x``: between the glyphs
    drawn nearest either side of it (a tab's blank space). The cursor positions beside a
    tab are not its edges in a line of mixed direction: one can lie past a neighbour's glyph."""
    lo, hi = line.x(), line.x() + line.width()
    for run in layout.glyphRuns(line.textStart(), max(1, line.textLength())):
        advances = run.rawFont().advancesForGlyphIndexes(run.glyphIndexes())
        for p, a in zip(run.positions(), advances):
            left, right = p.x(), p.x() + a.x()
            if a.x() <= 0:
                continue
            if right <= x + 0.5:
                lo = max(lo, right)
            elif left >= x - 0.5:
                hi = min(hi, left)
    return lo, hi


def spacing_at(layout: QTextLayout, offset: int) -> float:
    """The letter spacing (pixels) the editor set on the character at ``offset`` (0 if none)."""
    for r in layout.formats():
        if r.start <= offset < r.start + r.length:
            return r.format.fontLetterSpacing()
    return 0.0


class BidiLine:
    """One block laid out on a single line without gaps, to ask which glyph is left of an
    insertion point: Qt resolves each character's direction (the Unicode bidirectional
    algorithm) as the editor will."""

    def __init__(self, text: str, font: QFont, doc) -> None:
        self._layout = QTextLayout(text, font)
        self._layout.setTextOption(doc.defaultTextOption())
        self._layout.beginLayout()
        self._line = self._layout.createLine()
        self._layout.endLayout()

    def gap_char(self, before: int) -> int | None:
        """The UTF-16 offset of the character that gets the gap of an insertion after the
        character at ``before``: that character when it runs left to right (the gap opens
        on its right), else the glyph left of it, None at the line's left end."""
        box = glyph_box(self._layout, before) if self._line.isValid() else None
        if box is None or not box[2]:
            return before
        return glyph_left_of(self._layout, self._line, box[0], before)
