"""Issue 21 item 6: while tokens resolve, the lines below a span (and the text after
it) stay where they are; the layout changes once, when the finished fill is shown."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from PySide6.QtGui import QFont, QFontMetricsF, QTextCharFormat, QTextLayout

from lacuna.app import positions
from lacuna.app.editor.preview import CELL, NBSP, WJ, ZWSP, Cells, graphemes
from lacuna.app.editor.widget import editor_font
from tests.app import fakes
from tests.app.conftest import set_text_and_masks
from tests.app.test_window import run_to_preview

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, "
        "and void; and darkness was upon the face of the deep.\n"
        "And the Spirit of God moved upon the face of the waters.\n"
        "And God said, Let there be light: and there was light.\n")


def _layout(w) -> tuple:
    """Where every block of the preview is and how many lines it has, and where the
    text after the first span is drawn."""
    view = w.preview
    blocks = []
    block = view.document().firstBlock()
    while block.isValid():
        geo = view.blockBoundingGeometry(block)
        blocks.append((block.blockNumber(), round(geo.top()), round(geo.height()), block.layout().lineCount()))
        block = block.next()
    after = view.spans.ranges[0][1]
    c = positions.qt_cursor(view.document(), after, after)
    r = view.cursorRect(c)
    return tuple(blocks), (r.left() + view.horizontalScrollBar().value(), r.top() + view.verticalScrollBar().value())


def _run(window, qtbot, length=14):
    window.resize(700, 500)
    set_text_and_masks(window, TEXT, ["heaven and the earth"])
    window.editor.masks[0].length = length
    window.settings_panel.steps.setValue(length)
    seen = []
    window.panel.watch.setValue(1)  # every step is drawn
    window.frameRendered.connect(lambda: seen.append(_layout(window)))
    run_to_preview(qtbot, window)
    return seen


def test_lines_below_a_resolving_span_do_not_move(window, qtbot):
    seen = _run(window, qtbot)
    assert len(seen) == 14
    assert len(set(seen)) == 1, seen  # every step of the live run: the same layout
    # the timeline replays the steps the same way
    for step in range(1, 14):
        window.panel.slider.setValue(step)
        assert _layout(window) == seen[0]
    assert "\u2591" in window.preview.text() or window.panel.slider.value() == 13
    # the finished fill is shown at its own width (once)
    window.panel.slider.setValue(14)
    assert window.preview.text() == window.infill.current.result.text


def test_long_tokens_line_breaks_and_wide_characters_keep_it_calm(window, qtbot, monkeypatch):
    # a fallback font draws Hebrew and CJK at widths that are no whole column
    words = [" understanding", "\n", " 日本語", " a", "\t", " שלום", " 🙂🙂🙂🙂", "-"]
    monkeypatch.setattr(fakes, "WORDS", words)
    seen = _run(window, qtbot, length=16)
    assert len(seen) == 16 and len(set(seen)) == 1
    text = window.preview.text()
    assert "understanding" in text  # shown in full once the run is done
    window.panel.slider.setValue(15)  # all but one token committed
    shown = window.preview.text().replace(WJ, "")
    assert "und\u2026" in shown and "understanding" not in shown  # too long: cut while the run goes
    assert "\u21b5" in shown  # a committed line break is a mark in its cell


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=20), st.booleans())
def test_a_cell_is_always_as_wide_and_breaks_only_after_itself(qapp, text, bold):
    font = editor_font()
    cells = Cells(font)
    cell, spacing = cells.cell(text, bold)
    assert cell.endswith(ZWSP) and ZWSP not in cell[:-1]
    body = cell[:-1]
    assert not any(ch.isspace() and ch != NBSP for ch in body)
    # between two grapheme clusters of a cell there is a no-break space or a word joiner (a
    # cluster stays whole: "0" + U+1082, a flag's two regional indicators)
    clusters = graphemes(body)
    assert all(WJ in (a, b) or NBSP in (a, b) for a, b in zip(clusters, clusters[1:]))
    if bold:
        font.setWeight(QFont.Weight.Bold)
    width = QFontMetricsF(font).horizontalAdvance(body) + spacing
    assert abs(width - cells.target) < 0.02, (text, cell, width)
    assert cells.target == CELL * QFontMetricsF(editor_font()).horizontalAdvance(NBSP)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text("abcXYZ .,;:!?'-\t\nשל日🙂é", min_size=1, max_size=12), min_size=1, max_size=40), st.data())
def test_any_tokens_in_any_order_break_the_lines_where_placeholders_did(qapp, tokens, data):
    font = editor_font()
    cells = Cells(font)

    def breaks(slots):
        """The line of each cell, and the line and x of the text after them."""
        before = "Some words before it "
        made = [cells.cell(s) for s in slots]
        lay = QTextLayout(before + "".join(c for c, _ in made) + " and words after it here.", font)
        ranges, k = [], len(before)
        for c, spacing in made:
            k += positions.utf16_len(c)  # QTextLayout counts UTF-16 units
            if spacing:  # on the cell's last no-break space, as the preview sets it
                r = QTextLayout.FormatRange()
                r.start, r.length, r.format = k - 2, 1, QTextCharFormat()
                r.format.setFontLetterSpacingType(QFont.SpacingType.AbsoluteSpacing)
                r.format.setFontLetterSpacing(spacing)
                ranges.append(r)
        lay.setFormats(ranges)
        cells_text = [c for c, _ in made]
        lay.beginLayout()
        while (line := lay.createLine()).isValid():
            line.setLineWidth(260)
        lay.endLayout()
        starts, k = [], len(before)
        for c in cells_text:  # (a right-to-left cell starts at its right: its line is what counts)
            starts.append(lay.lineForTextPosition(k).lineNumber())
            k += positions.utf16_len(c)
        after = lay.lineForTextPosition(k)
        starts.append((after.lineNumber(), round(after.cursorToX(k)[0], 2)))
        return starts, lay.lineCount()

    slots = ["\u2591"] * len(tokens)
    first = breaks(slots)
    order = data.draw(st.permutations(range(len(tokens))))
    for k in order[: data.draw(st.integers(1, len(tokens)))]:
        slots[k] = tokens[k]
    assert breaks(slots) == first
