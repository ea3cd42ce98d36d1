"""Where glyphs are drawn, for the chips of insertion masks in text of either direction.

QTextLine.cursorToX answers for cursor positions, which at a change of
direction lie at the other run's edge; the glyph runs of a layout say where
each character's glyphs are and which way they run. Qt adds letter spacing on
the right of a glyph whatever its direction, which decides which character
gets an insertion's gap (app.editor.gaps).
"""
from __future__ import annotations

import bisect
import re

from PySide6.QtGui import QFont, QTextLayout, QTextLine

# right-to-left scripts and marks: a block without them needs no bidi layout for its gaps
RTL = re.compile("[\u0590-\u08ff\u200f\u202b\u202e\u2067\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff"
                 "\U0001e800-\U0001efff]")
_RUN_FLAGS = (QTextLayout.GlyphRunRetrievalFlag.RetrieveGlyphIndexes
              | QTextLayout.GlyphRunRetrievalFlag.RetrieveGlyphPositions
              | QTextLayout.GlyphRunRetrievalFlag.RetrieveStringIndexes)


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


def glyph_left_of(layout: QTextLayout, line: QTextLine, x: float, other_than: int,
                  ends: list[tuple[float, int]] | None = None) -> int | None:
    """The UTF-16 offset of the character of ``line`` (not ``other_than``) whose glyph is drawn
    nearest left of ``x``: its advance, spacing included, ends at ``x``, or only blank space
    (a tab's) lies between them. None where no glyph is left of ``x`` on the line.

    A tab has no glyph and absorbs letter spacing, so the glyph left of its blank gets the
    gap instead: that spacing lies between the glyph and the tab, so the blank left of ``x``
    grows by at least the spacing (issue 20: in "11111וש\t11" the digits after the tab are
    drawn left of the Hebrew, the paragraph being right to left). ``ends``: the line's
    ``glyph_ends``, when the caller asks about one layout many times."""
    if x <= line.x() + 0.5:
        return None
    j = line.xToCursor(x - 0.5, QTextLine.CursorPosition.CursorOnCharacter)
    if j != other_than and line.textStart() <= j < line.textStart() + line.textLength():
        box = glyph_box(layout, j)
        if box is not None and box[0] < x <= box[1] + 0.75 + spacing_at(layout, j):
            return j
    # xToCursor answers with a cursor position, which beside a tab or where runs of either
    # direction meet (neutrals, digits) need not be the character drawn there
    ends = glyph_ends(layout, line) if ends is None else ends
    i = bisect.bisect_right(ends, (x + 0.75, float("inf")))
    while i:
        i -= 1
        if ends[i][1] != other_than:
            return ends[i][1]
    return None


def glyph_ends(layout: QTextLayout, line: QTextLine) -> list[tuple[float, int]]:
    """(right x of the glyph's own advance, UTF-16 offset of its character) of every glyph of
    ``line`` that has an advance, sorted: one pass over the line for many ``glyph_left_of``."""
    out = []
    for run in layout.glyphRuns(line.textStart(), max(1, line.textLength()), _RUN_FLAGS):
        advances = run.rawFont().advancesForGlyphIndexes(run.glyphIndexes())
        out += [(p.x() + a.x(), k) for k, p, a in zip(run.stringIndexes(), run.positions(), advances) if a.x() > 0]
    return sorted(out)


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
        self._ends: list[tuple[float, int]] | None = None

    def _glyph_ends(self) -> list[tuple[float, int]]:
        if self._ends is None:
            self._ends = glyph_ends(self._layout, self._line)
        return self._ends

    def gap_char(self, before: int) -> int | None:
        """The UTF-16 offset of the character that gets the gap of an insertion after the
        character at ``before``: that character when it runs left to right (the gap opens
        on its right), else the glyph drawn left of it (of its blank, for a tab), None
        where no glyph is left of it on the line."""
        if not self._line.isValid():
            return before
        box = glyph_box(self._layout, before)
        if box is None:
            return self._left_of_blank(before)
        if not box[2]:
            return before
        return glyph_left_of(self._layout, self._line, box[0], before, self._glyph_ends())

    def _left_of_blank(self, tab: int) -> int | None:
        # a tab absorbs letter spacing: the glyph left of its blank gets the gap, which widens
        # the blank by at least the spacing however the tab stops fall
        lead, end = cursor_x(self._line, tab), cursor_x(self._line, tab + 1)
        right = blank_around(self._layout, self._line, lead + (0.5 if end >= lead else -0.5))[1]
        return glyph_left_of(self._layout, self._line, right, -1, self._glyph_ends())
