"""The live preview: a read-only copy of the document that the live view rewrites.

While a run goes, and while its result waits for Accept or Reject, the editor
area shows this view instead of the editor. Only the masked spans are rewritten
(cursor edits on the copy, last span first), so a frame costs the size of the
spans, not of the document. Spans come in code points; the copy keeps its
ranges in Qt's UTF-16 units, converted once per run by app.positions.
"""
from __future__ import annotations

from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextDocument
from PySide6.QtWidgets import QPlainTextDocumentLayout, QPlainTextEdit, QWidget

from .. import positions
from . import colors
from .widget import editor_font

NEWLINE_MARK = "\u21b5"  # ↵, drawn before a committed line break during a run

# one fragment: (text, kind, confidence, new) with kind "tok", "mask" or "plain"
Fragment = tuple[str, str, "float | None", bool]


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
        self._ranges: list[list[int]] = []  # Qt (UTF-16) ranges of the spans in the copy
        self._last: list[tuple] = []
        self._base_text = ""
        self._base_spans: list[tuple[int, int]] = []
        self._span_after_space: list[bool] = []
        self._format_cache: dict[tuple, QTextCharFormat] = {}

    # ---- the copy ------------------------------------------------------
    def start(self, text: str, spans: list[tuple[int, int]]) -> None:
        """Show ``text`` with the given spans [start, end) about to be rewritten."""
        restored = False
        if self._ranges and text == self._base_text:
            # the copy already holds this text except inside the spans drawn last:
            # put their original text back instead of copying the whole document again
            self.render_spans([[(text[a:b], "plain", None, False)] for a, b in self._base_spans])
            restored = self.document().characterCount() - 1 == positions.utf16_len(text)
        if not restored and (self.document().characterCount() - 1 != positions.utf16_len(text)
                             or self.text() != text):
            self.document().setPlainText(text)
        self._base_text = text
        self._base_spans = [(s, e) for s, e in spans]
        pm = positions.PositionMap(text)
        self._ranges = [[pm.to_qt(s), pm.to_qt(e)] for s, e in spans]
        self._last = [None] * len(spans)
        self._span_after_space = [s > 0 and text[s - 1] in " \t\n" for s, _ in spans]

    def text(self) -> str:
        return positions.document_text(self.document())

    # ---- rendering -----------------------------------------------------
    def _formats(self, kind: str, conf, new: bool) -> QTextCharFormat:
        key = (kind, None if conf is None else round(conf * 20), new)
        fmt = self._format_cache.get(key)
        if fmt is None:
            fmt = QTextCharFormat()
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
        for text, kind, conf, new in frags:
            if not text:
                continue
            key = (kind, None if conf is None else round(conf * 20), new)
            if out and out[-1][1] == key:
                out[-1] = (out[-1][0] + text, key)
            else:
                out.append((text, key))
        return out

    def render_spans(self, spans: list[list[Fragment]]) -> None:
        """Replace span i by its fragments; spans unchanged since the last frame are skipped."""
        doc = self.document()
        deltas = [0] * len(spans)
        bar = self.verticalScrollBar().value()
        for i in range(len(spans) - 1, -1, -1):
            frags = spans[i]
            key = tuple(frags)
            if self._last[i] == key:
                continue
            self._last[i] = key
            s, e = self._ranges[i]
            c = positions.qt_cursor(doc, s, e)
            c.beginEditBlock()
            c.removeSelectedText()
            n = 0
            for text, (kind, q, new) in self._merged(frags):
                c.insertText(text, self._formats(kind, None if q is None else q / 20, new))
                n += positions.utf16_len(text)
            c.endEditBlock()
            deltas[i] = n - (e - s)
            self._ranges[i][1] = s + n
        shift = 0
        for i in range(len(spans)):
            self._ranges[i][0] += shift
            self._ranges[i][1] += shift
            shift += deltas[i]
        if self.verticalScrollBar().value() != bar:
            self.verticalScrollBar().setValue(bar)

    def render_event(self, ev, highlight_new: bool = True) -> None:
        """Draw a StepEvent: committed tokens in place, one placeholder per masked token."""
        n = len(self._ranges)
        per_span: list[list[Fragment]] = [[] for _ in range(n)]
        new = {c.index for c in ev.committed} if highlight_new else set()
        for j, (tok, conf, si) in enumerate(zip(ev.tokens, ev.confidence, ev.slot_span)):
            if si >= n:
                continue
            if tok is None:
                per_span[si].append((colors.PLACEHOLDER, "mask", None, False))
            else:
                if not per_span[si] and self._span_after_space[si] and tok[:1] in (" ", "\u0120"):
                    tok = tok[1:]  # the span already follows a space in the text
                if "\n" in tok:  # make a line break the model chose visible while it runs
                    tok = tok.replace("\n", NEWLINE_MARK + "\n")
                per_span[si].append((tok, "tok", conf, j in new))
        self.render_spans(per_span)

    def render_result(self, result, tint: bool = True) -> None:
        """Draw a finished result: each span's final text, tokens tinted by confidence."""
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
        self.render_spans(per_span)
