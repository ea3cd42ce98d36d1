"""Issue 14's seams: the insertion length follows the model's context, and the
insertion popup shows only what an insertion has."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from lacuna.app.settings import max_mask_length
from tests.app.conftest import set_text_and_masks
from tests.app.fakes import FakeModel

TEXT = "The old man stood by the door and looked out at the rain.\n"


def _loader_with_context(contexts: dict[str, int]):
    def load(spec: str):
        m = FakeModel()
        m.context_length = contexts[spec]
        m.name = spec
        return m
    return load


def test_insertion_length_is_bounded_by_the_model_context_and_follows_it(make_window, qtbot):
    w = make_window(loader=_loader_with_context({"short": 256, "long": 2048}))
    spin = w.settings_panel.insertion
    spin.setValue(256)  # chosen before any model is known
    assert w.run_settings.insertion_length == 256
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("short")
    assert spin.maximum() == 192 < 256  # a 256-token model keeps room for the context around it
    assert spin.value() == 192 and w.run_settings.insertion_length == 192
    w.editor.setPlainText(TEXT)
    w.editor.setTextCursor(w.editor.textCursor())
    w.infill.mask_selection()
    assert w.editor.masks[0].length == 192
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("long")
    assert spin.maximum() == max_mask_length(2048) == 1536
    assert spin.value() == 256 and w.run_settings.insertion_length == 256  # the user's choice comes back
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("short")
    spin.setValue(100)  # a choice within the bound is the new choice
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("long")
    assert spin.value() == 100


def test_insertion_popup_is_bounded_and_hides_strength(make_window, qtbot):
    w = make_window(loader=_loader_with_context({"short": 256}))
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("short")
    w.editor.setPlainText(TEXT)
    ins = w.editor.add_mask(10, 10, length=8)
    popup = w.infill.edit_mask(ins)
    assert popup.isVisible()
    assert popup.length.maximum() == 192
    popup.length.setValue(500)
    assert ins.length == 192
    assert not popup.strength.isVisible() and not popup.strength_label.isVisible()
    popup.close()
    set_text_and_masks(w, TEXT, ["door"])
    popup = w.infill.edit_mask(w.editor.masks[0])
    assert popup.strength.isVisible()  # a range mask can be a partial edit
    assert popup.length.maximum() == 192
    popup.close()


@hsettings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=1 << 20))
def test_max_mask_length_leaves_room_for_context(n):
    m = max_mask_length(n)
    assert 1 <= m <= 4096
    if n > 32:
        assert m <= n - 16 and n - m >= n // 4 or m == 4096


# ---- model loads report progress in the status bar, not on stderr -------------------------
def test_load_progress_shows_in_the_status_bar(make_window, qtbot):
    def slow_loader(spec, progress=None):
        for k in range(5):
            progress("Loading weights", k, 4)
        return FakeModel()

    w = make_window(loader=slow_loader)
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("slow")
    assert "Loading slow: loading weights 2/4 (50%)" in messages
    assert messages.index("Loading slow: loading weights 4/4 (100%)") < len(messages) - 1  # then "Loaded …"
    assert w.statusBar().currentMessage().startswith("Loaded fake-model")


def test_real_load_reports_in_the_status_bar_and_draws_nothing_on_stderr(make_window, qtbot, tiny_model_dir, capfd):
    from lacuna.engine import load_model

    w = make_window(loader=load_model)
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    capfd.readouterr()
    with qtbot.waitSignal(w.modelReady, timeout=30000):
        w.models.load_model(str(tiny_model_dir))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err
    name = tiny_model_dir.name
    assert any(m.startswith(f"Loading {name}: loading weights") and m.endswith("(100%)") for m in messages), messages
    assert f"Loading {name}: reading the tokenizer…" in messages


def test_a_stale_load_does_not_report(make_window, qtbot):
    import threading

    go = threading.Event()

    def loader(spec, progress=None):
        if spec == "old":
            go.wait(5)
            progress("Loading weights", 1, 2)
        return FakeModel()

    w = make_window(loader=loader)
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    w.models.load_model("old")
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("new")
    go.set()
    qtbot.waitUntil(lambda: not w.models._loads, timeout=5000)
    assert not any(m.startswith("Loading old") for m in messages)


# ---- an insertion mask's chip never hides text ----------------------------------------------
def _glyph_rects(ed):
    """The box of every character of the document as laid out: from where it starts,
    its own advance wide (no wider than the room the layout gave it: a character from
    a fallback font is measured by the layout), the line high. Letter spacing that
    opens a gap after a character is not part of its box. (Walks with movePosition,
    which returns a bool: see the note on void calls in app/editor/widget.py.)"""
    from PySide6.QtCore import QRect
    from PySide6.QtGui import QTextCursor

    doc, fm, rects = ed.document(), ed.fontMetrics(), []
    c = QTextCursor(doc)
    while not c.atEnd():
        q, r = c.position(), ed.cursorRect(c)
        c.movePosition(QTextCursor.MoveOperation.NextCharacter)
        units = "".join(doc.characterAt(k) for k in range(q, c.position()))
        glyph = units.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
        # a tab draws nothing and is as wide as its tab stop says: only ink can be hidden
        if glyph in ("\u2029", "\n", "\t"):
            continue
        width = fm.horizontalAdvance(glyph)
        nxt = ed.cursorRect(c)
        if nxt.top() == r.top() and nxt.left() > r.left():
            width = min(width, nxt.left() - r.left())
        rects.append((q, glyph, QRect(r.left(), r.top(), max(1, width), r.height())))
    return rects


def _assert_chips_clear(ed):
    for m in ed.masks:
        chip = ed.insertion_rect(m)
        assert chip.width() > 0
        for q, ch, g in _glyph_rects(ed):
            assert not chip.intersects(g), (m.start, ch, q, chip, g)


TEXTS = ["The old man stood by the door.\nHe looked out at the rain 🙂 and sighed.\n"]


def test_insertion_chip_in_a_word_and_between_words_hides_no_text(window, qtbot):
    ed = window.editor
    text = TEXTS[0]
    ed.setPlainText(text)
    s = text.index("stood")
    ed.add_mask(s + 1, s + 1, length=8)  # inside "stood": "s|tood", the case of the issue
    ed.add_mask(text.index(" by"), text.index(" by"), length=128)  # between words
    ed.add_mask(text.index("🙂") + 1, text.index("🙂") + 1, length=3)  # after a character outside the BMP
    ed.add_mask(text.index("\n"), text.index("\n"), length=5)  # at the end of a line
    ed.add_mask(text.index("He"), text.index("He"), length=4)  # at the start of a line: a bar in the margin
    qtbot.waitUntil(lambda: ed.isVisible())
    _assert_chips_clear(ed)
    assert ed.toPlainText() == text and not ed.document().isModified()
    assert not ed.document().isUndoAvailable()
    # the chip sits between "s" and "tood"
    from PySide6.QtGui import QTextCursor

    m = ed.mask_at(s + 1)
    c = QTextCursor(ed.document())
    c.setPosition(s)
    s_left = ed.cursorRect(c).left()
    c.setPosition(s + 1)
    t_left = ed.cursorRect(c).left()
    chip = ed.insertion_rect(m)
    assert s_left < chip.left() and chip.right() < t_left
    # a longer label widens its gap; removing a mask closes it
    m.length = 1024
    ed.refresh_selections()
    _assert_chips_clear(ed)
    ed.remove_mask(m)
    c.setPosition(s + 1)
    assert ed.cursorRect(c).left() - s_left == ed.fontMetrics().horizontalAdvance("s")


def test_chips_stay_clear_while_typing_and_wrapping(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QTextCursor

    ed = window.editor
    ed.setPlainText("word " * 60)
    for k in (7, 33, 101, 200):
        ed.add_mask(k, k, length=16)
    _assert_chips_clear(ed)
    c = QTextCursor(ed.document())
    c.setPosition(0)
    c.insertText("typed before them all, so they move and wrap elsewhere ")
    ed.setTextCursor(c)
    qtbot.keyClicks(ed, "more")
    qtbot.keyClick(ed, Qt.Key.Key_Return)
    _assert_chips_clear(ed)
    # typing after a mask in its own line leaves its offset alone: the gap must stay
    c.setPosition(ed.masks[0].cursor().position() + 3)
    ed.setTextCursor(c)
    qtbot.keyClicks(ed, "xyz")
    _assert_chips_clear(ed)
    ed.undo()
    ed.undo()
    _assert_chips_clear(ed)
    assert [m.start for m in ed.masks] == sorted(m.start for m in ed.masks)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=4),
       st.text(st.sampled_from("ab é日🙂\n\t"), min_size=1, max_size=80))
def test_chips_never_hide_text_property(window, where, text):
    ed = window.editor
    ed.clear_masks()
    ed.setPlainText(text)
    for k in where:
        p = k % (len(text) + 1)
        ed.add_mask(p, p, length=k % 300 + 1)
    _assert_chips_clear(ed)
