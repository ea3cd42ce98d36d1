"""The live preview: a read-only copy of the document that the live view rewrites.

While a run goes, and while its result waits for Accept or Reject, the editor
area shows this view instead of the editor. Only the masked spans are rewritten
(cursor edits on the copy, last span first), so a frame costs the size of the
spans, not of the document. Spans come in code points; the copy keeps its
ranges in Qt's UTF-16 units, converted once per run by app.positions.

A calm layout while tokens resolve: every token slot of a step (a placeholder,
or a token once committed) is a cell of the same width, ``CELL`` columns of the
monospace editor font, with a line-break opportunity only between cells (spaces
inside a cell do not break: they are no-break spaces; a zero-width space ends
each cell). So a step changes what the cells show, never where the lines break:
the text after a span and the lines below it stay where they are for the whole
run, and move once, when the finished fill is shown at its own width. Chosen
over the alternatives: laying tokens out at their own width re-wraps the
paragraph at every step (issue 21); reserving the final width is impossible
(it is not known until the end); painting tokens over a frozen layout needs
the same fixed cells, plus a paint pass per token. A cell is 6 columns: with
the starter's tokenizer, 91% of the tokens of a passage of plain prose fit in 6
(84% in 5, 95% in 7); a longer one shows its first five columns and an
ellipsis until the run ends. A line break the model commits is a ↵ in its cell
until then. A model that grows and shrinks its canvas (DreamOn) changes the
number of cells between steps: each frame draws the event's own slots, so the
span (and only the text after it) moves by whole cells.
"""
from __future__ import annotations

import unicodedata
from bisect import bisect_left

from PySide6.QtCore import QTextBoundaryFinder
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QTextCharFormat, QTextDocument
from PySide6.QtWidgets import QPlainTextDocumentLayout, QPlainTextEdit, QWidget

from .. import positions
from . import colors
from .widget import editor_font

NEWLINE_MARK = "\u21b5"  # ↵, a committed line break while the run goes
CELL = 6  # columns one token slot takes while a run resolves
NBSP, ZWSP, WJ, ELLIPSIS = "\u00a0", "\u200b", "\u2060", "\u2026"

# one fragment: (text, kind, confidence, new[, letter spacing of its last character in pixels])
# with kind "tok", "mask" or "plain"
Fragment = tuple


class Cells:
    """Calm-layout cells for one font: each exactly ``width`` columns of its space wide, in
    pixels (a glyph from a fallback font is measured, not counted), with no break inside
    (no-break spaces, a word joiner between characters) and a break opportunity after it
    (a zero-width space). Line breaks show as ↵ and tabs as →; a token too long keeps what
    fits beside an ellipsis. What a whole number of no-break spaces cannot fill (a glyph of
    a fallback font is rarely a whole column) is letter spacing on the last one."""

    def __init__(self, font: QFont, width: int = CELL) -> None:
        bold = QFont(font)
        bold.setWeight(QFont.Weight.Bold)
        self._metrics = {False: QFontMetricsF(font), True: QFontMetricsF(bold)}
        self._pad = {k: m.horizontalAdvance(NBSP) for k, m in self._metrics.items()}
        self.target = width * self._pad[False]
        self._cache: dict[tuple[str, bool], tuple[str, float]] = {}

    def cell(self, text: str, bold: bool = False) -> tuple[str, float]:
        """(the cell's text, the letter spacing of its last character in pixels: 0 mostly)."""
        key = (text, bold)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) > 8192:  # tokens repeat: a vocabulary's worth is plenty
                self._cache.clear()
            hit = self._cache[key] = self._make(text, bold)
        return hit

    def _make(self, text: str, bold: bool) -> tuple[str, float]:
        fm, pad = self._metrics[bold], self._pad[bold]
        flat = text.replace("\r\n", NEWLINE_MARK).replace("\n", NEWLINE_MARK).replace("\t", "\u2192")
        # a control character draws nothing (and stops Qt measuring the rest): show U+FFFD
        cut = len(flat) > 16 * CELL  # more than 4 * CELL clusters can take: no need to look further
        flat = "".join(NBSP if ch.isspace() else "\ufffd" if unicodedata.category(ch) == "Cc" else ch
                       for ch in flat[: 16 * CELL])
        # a word joiner goes between whole grapheme clusters: one inside ("e" + WJ + U+0301,
        # a flag's two halves, an emoji and its skin tone) would draw them apart
        clusters = graphemes(flat)
        chars = clusters[: 4 * CELL]
        body = WJ.join(chars)
        width = fm.horizontalAdvance(body)
        if width > self.target + 0.01 or cut or len(clusters) > 4 * CELL:
            while chars and fm.horizontalAdvance(WJ.join(chars + [ELLIPSIS])) > self.target + 0.01:
                chars.pop()
            body = WJ.join(chars + [ELLIPSIS])
            width = fm.horizontalAdvance(body)
        # pad with no-break spaces, measured with the cell: next to a glyph of a fallback
        # font they can take that font's width
        n = int(max(0.0, self.target - width) // pad)

        def padded(k: int) -> str:
            return body + (WJ + NBSP * k if k else "")

        while n > 0 and fm.horizontalAdvance(padded(n)) > self.target + 0.01:
            n -= 1
        width = fm.horizontalAdvance(padded(n))
        if abs(self.target - width) <= 0.01:
            return padded(n) + ZWSP, 0.0
        if n == 0:  # a no-break space to carry the spacing
            n = 1
            width = fm.horizontalAdvance(padded(1))
        return padded(n) + ZWSP, self.target - width


def graphemes(text: str) -> list[str]:
    """``text`` cut into extended grapheme clusters (what a reader sees as one character), by
    Qt's QTextBoundaryFinder: the library that draws them, so both agree (Unicode UAX #29);
    a combining mark (or what follows a zero-width joiner) is never a cluster of its own."""
    if text.isascii():
        return list(text)
    finder = QTextBoundaryFinder(QTextBoundaryFinder.BoundaryType.Grapheme, text)
    units = text.encode("utf-16-le")
    out, a = [], 0
    b = finder.toNextBoundary()
    while b > 0:  # Qt's positions count UTF-16 units
        if 0xD800 <= int.from_bytes(units[2 * b - 2:2 * b], "little") < 0xDC00 and 2 * b < len(units):
            # Qt puts a boundary inside the surrogate pair of some unassigned astral code
            # points (U+18D1F): a character is never cut
            b = finder.toNextBoundary()
            continue
        piece = units[2 * a:2 * b].decode("utf-16-le")
        # Qt's Thai (and some other) script rules part a base from a mark UAX #29 keeps on it
        if out and (unicodedata.category(piece[0]).startswith("M") or out[-1].endswith("\u200d")):
            out[-1] += piece
        else:
            out.append(piece)
        a, b = b, finder.toNextBoundary()
    return out


def event_fragments(ev, span_after_space: list[bool], highlight_new: bool = True,
                    cells: Cells | None = None) -> list[list[Fragment]]:
    """The fragments of each span for a StepEvent: committed tokens tinted by confidence
    (bold and underlined when new this step), a placeholder per masked token; with
    ``cells`` each slot is a calm-layout cell (see the module's note)."""
    n = len(span_after_space)
    per_span: list[list[Fragment]] = [[] for _ in range(n)]
    new = new_slots(ev) if highlight_new else set()
    for j, (tok, conf, si) in enumerate(zip(ev.tokens, ev.confidence, ev.slot_span)):
        if si >= n:
            continue
        if tok is None:
            text, spacing = cells.cell(colors.PLACEHOLDER) if cells is not None else (colors.PLACEHOLDER, 0.0)
            per_span[si].extend(_fragments(text, "mask", None, False, spacing))
            continue
        if not per_span[si] and span_after_space[si] and tok[:1] in (" ", "\u0120"):
            tok = tok[1:]  # the span already follows a space in the text
        spacing = 0.0
        if cells is not None:
            tok, spacing = cells.cell(tok, bold=j in new)
        elif "\n" in tok:  # make a line break the model chose visible
            tok = tok.replace("\n", NEWLINE_MARK + "\n")
        per_span[si].extend(_fragments(tok, "tok", conf, j in new, spacing))
    return per_span


def new_slots(ev) -> set[int]:
    """The slots of ``ev.tokens`` committed in this step. A canvas that grows and shrinks
    (DreamOn) numbers its commits as the slots stood when the step began: a deleted slot
    shifts the later ones left, an expanded one (two masks now) shifts them right."""
    if not (ev.deleted or ev.expanded):
        return {c.index for c in ev.committed}
    deleted, expanded = sorted(ev.deleted), sorted(ev.expanded)
    gone, doubled = set(deleted), set(expanded)
    out = set()
    for c in ev.committed:
        if c.index in gone:
            continue
        j = c.index - bisect_left(deleted, c.index)
        if j not in doubled:  # an expanded slot holds masks, nothing committed
            out.add(j + bisect_left(expanded, j))
    return out


def _fragments(text: str, kind: str, conf, new: bool, spacing: float) -> list[Fragment]:
    if not spacing:
        return [(text, kind, conf, new)]
    # the cell's last no-break space (before the zero-width space) carries the spacing
    return [(text[:-2], kind, conf, new), (text[-2:-1], kind, conf, new, spacing), (text[-1:], kind, conf, new)]


def result_fragments(result, tint: bool = True) -> list[list[Fragment]]:
    """The fragments of each span of a finished result: its final text, tokens tinted by confidence."""
    per_span: list[list[Fragment]] = []
    for i, rs in enumerate(result.spans):
        frags: list[Fragment] = []
        pos = rs.start
        pieces = result.pieces[i] if i < len(result.pieces) else ()
        for p in pieces:
            if p.start > pos:
                frags.append((result.text[pos:p.start], "plain", None, False))
            kind = "tok" if (tint and p.confidence is not None) else "plain"
            end = min(p.end, rs.end)
            if end > max(p.start, pos):
                frags.append((result.text[max(p.start, pos):end], kind, p.confidence, False))
            pos = max(pos, end)
        if pos < rs.end:
            frags.append((result.text[pos:rs.end], "plain", None, False))
        per_span.append(frags)
    return per_span


class SpanWriter:
    """Rewrites spans of a QTextDocument in place: no widget, so the GIF export uses it
    on a thread of its own (a QTextDocument belongs to the thread that made it)."""

    def __init__(self, doc: QTextDocument) -> None:
        self.doc = doc
        self.ranges: list[list[int]] = []  # Qt (UTF-16) ranges of the spans in the copy
        self._last: list[tuple | None] = []
        self.base_text = ""
        self.base_spans: list[tuple[int, int]] = []
        self.after_space: list[bool] = []
        self._format_cache: dict[tuple, QTextCharFormat] = {}
        self.cells = Cells(doc.defaultFont())

    def start(self, text: str, spans: list[tuple[int, int]]) -> None:
        """Hold ``text`` with the given spans [start, end) (code points) about to be rewritten."""
        restored = False
        if self.ranges and text == self.base_text:
            # the copy already holds this text except inside the spans drawn last:
            # put their original text back instead of copying the whole document again
            self.write([[(text[a:b], "plain", None, False)] for a, b in self.base_spans])
            restored = self.doc.characterCount() - 1 == positions.utf16_len(text)
        if not restored and (self.doc.characterCount() - 1 != positions.utf16_len(text)
                             or positions.document_text(self.doc) != text):
            self.doc.setPlainText(text)
        self.base_text = text
        self.base_spans = [(s, e) for s, e in spans]
        pm = positions.PositionMap(text)
        self.ranges = [[pm.to_qt(s), pm.to_qt(e)] for s, e in spans]
        self._last = [None] * len(spans)
        self.after_space = [s > 0 and text[s - 1] in " \t\n" for s, _ in spans]

    def _formats(self, key: tuple) -> QTextCharFormat:
        """The format of fragments with ``key`` (kind, confidence in 20ths, new, letter spacing)."""
        fmt = self._format_cache.get(key)
        if fmt is None:
            kind, q, new, spacing = key
            conf = None if q is None else q / 20
            fmt = QTextCharFormat()
            if spacing:
                fmt.setFontLetterSpacingType(QFont.SpacingType.AbsoluteSpacing)
                fmt.setFontLetterSpacing(spacing)
            if kind == "mask":
                fmt.setForeground(colors.PLACEHOLDER_FG)
                fmt.setBackground(colors.PLACEHOLDER_BG)
            elif kind == "tok":
                fmt.setBackground(colors.confidence_color(conf))
                if new:
                    fmt.setFontWeight(QFont.Weight.Bold)
                    fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
                    fmt.setUnderlineColor(colors.NEW_TOKEN_EDGE)
                    fmt.setForeground(QColor(30, 58, 138))
            self._format_cache[key] = fmt
        return fmt

    @staticmethod
    def _merged(frags: list[Fragment]) -> list[tuple[str, tuple]]:
        """Adjacent fragments that look the same become one insertion (fewer Qt calls per frame:
        each one hands the GIL over to the engine thread and back)."""
        out: list[tuple[str, tuple]] = []
        for text, kind, conf, new, *spacing in frags:
            if not text:
                continue
            key = (kind, None if conf is None else round(conf * 20), new, spacing[0] if spacing else 0.0)
            if out and out[-1][1] == key:
                out[-1] = (out[-1][0] + text, key)
            else:
                out.append((text, key))
        return out

    def write(self, spans: list[list[Fragment]]) -> None:
        """Replace span i by its fragments; spans unchanged since the last write are skipped."""
        doc = self.doc
        deltas = [0] * len(spans)
        for i in range(len(spans) - 1, -1, -1):
            frags = spans[i]
            key = tuple(frags)
            if self._last[i] == key:
                continue
            self._last[i] = key
            s, e = self.ranges[i]
            c = positions.qt_cursor(doc, s, e)
            c.beginEditBlock()
            c.removeSelectedText()
            n = 0
            for text, key in self._merged(frags):
                c.insertText(text, self._formats(key))
                n += positions.utf16_len(text)
            c.endEditBlock()
            deltas[i] = n - (e - s)
            self.ranges[i][1] = s + n
        shift = 0
        for i in range(len(spans)):
            self.ranges[i][0] += shift
            self.ranges[i][1] += shift
            shift += deltas[i]

    def write_event(self, ev, highlight_new: bool = True) -> None:
        self.write(event_fragments(ev, self.after_space, highlight_new, self.cells))

    def write_result(self, result, tint: bool = True) -> None:
        self.write(result_fragments(result, tint))


class PreviewView(QPlainTextEdit):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("preview")
        self.setReadOnly(True)
        self.setFont(editor_font())
        self.setTabStopDistance(4 * self.fontMetrics().horizontalAdvance(" "))
        self.setTextInteractionFlags(self.textInteractionFlags())
        doc = QTextDocument(self)
        doc.setDocumentLayout(QPlainTextDocumentLayout(doc))
        doc.setUndoRedoEnabled(False)
        doc.setDefaultFont(editor_font())
        self.setDocument(doc)
        self.spans = SpanWriter(doc)

    # ---- the copy ------------------------------------------------------
    def start(self, text: str, spans: list[tuple[int, int]]) -> None:
        """Show ``text`` with the given spans [start, end) about to be rewritten."""
        self.spans.start(text, spans)

    def text(self) -> str:
        return positions.document_text(self.document())

    # ---- rendering -----------------------------------------------------
    def render_spans(self, spans: list[list[Fragment]]) -> None:
        """Replace span i by its fragments; spans unchanged since the last frame are skipped."""
        bar = self.verticalScrollBar().value()
        self.spans.write(spans)
        if self.verticalScrollBar().value() != bar:
            self.verticalScrollBar().setValue(bar)

    def render_event(self, ev, highlight_new: bool = True) -> None:
        """Draw a StepEvent: committed tokens in place, one placeholder per masked token,
        each in a cell of the calm layout."""
        self.render_spans(event_fragments(ev, self.spans.after_space, highlight_new, self.spans.cells))

    def render_result(self, result, tint: bool = True) -> None:
        """Draw a finished result: each span's final text, tokens tinted by confidence."""
        self.render_spans(result_fragments(result, tint))
