"""Masks whose length the model chooses (issue 23) in the editor: the default, the
popup, the request, and the lengths tried in the candidates list."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from tests.app.conftest import set_text_and_masks
from tests.app.fakes import STARTER

TEXT = "In the beginning God created the heaven and the earth."


def select(w, word: str) -> None:
    text = w.editor.toPlainText()
    i = text.index(word)
    c = w.editor.textCursor()
    c.setPosition(i)
    c.setPosition(i + len(word), c.MoveMode.KeepAnchor)
    w.editor.setTextCursor(c)


def fill(w, qtbot, regenerate: bool = False) -> None:
    with qtbot.waitSignal(w.runFinished, timeout=60000):
        assert w.infill.start(regenerate=regenerate)


def test_a_new_mask_and_an_insertion_default_to_auto_and_the_request_carries_it(window, qtbot):
    w = window
    set_text_and_masks(w, TEXT, [])
    select(w, "heaven")
    w.mask_action.trigger()
    c = w.editor.textCursor()
    c.setPosition(len(TEXT) - 1)  # before the full stop: an insertion
    w.editor.setTextCursor(c)
    w.mask_action.trigger()
    word, ins = w.editor.masks
    assert (word.mode, word.span_length, ins.insertion, ins.span_length) == ("auto", "auto", True, "auto")
    assert ins.length == w.run_settings.insertion_length  # the count a switch to a number starts from
    assert w.editor.chip_label(ins) == "+auto" and "auto length" in word.describe()
    fill(w, qtbot)
    assert [s.length for s in w.infill.current.request.spans] == ["auto", "auto"]
    # Regenerate keeps the masks' auto setting
    fill(w, qtbot, regenerate=True)
    assert [s.length for s in w.infill.current.request.spans] == ["auto", "auto"]
    assert word.mode == "auto" and ins.mode == "auto"


def test_the_settings_default_goes_back_to_fixed_lengths(window, qtbot):
    from lacuna.app.settings import RunSettings, qsettings

    w = window
    w.settings_panel.auto_length.setChecked(False)
    assert w.run_settings.auto_length is False and RunSettings.load(qsettings()).auto_length is False
    set_text_and_masks(w, TEXT, [])
    select(w, "heaven")
    w.mask_action.trigger()
    w.editor.setTextCursor(w.editor.cursorForPosition(w.editor.rect().topLeft()))
    w.mask_action.trigger()
    ins, word = w.editor.masks
    assert (word.span_length, ins.span_length) == (None, w.run_settings.insertion_length)
    fill(w, qtbot)
    assert [s.length for s in w.infill.current.request.spans] == [w.run_settings.insertion_length, None]
    assert w.infill.lengths_box.isHidden()  # fixed lengths: nothing was chosen


def test_the_popup_sets_about_n_exact_n_as_the_text_and_auto(window, qtbot):
    w = window
    set_text_and_masks(w, TEXT, [])
    select(w, "heaven")
    w.mask_action.trigger()
    m = w.editor.masks[0]
    popup = w.infill.edit_mask(m)
    assert popup.mode.currentData() == "auto" and not popup.length.isEnabled()  # the model chooses
    popup.mode.setCurrentIndex(popup.mode.findData("about"))
    assert popup.length.isEnabled()
    popup.length.setValue(5)
    assert m.span_length == "~5" and w.editor.chip_label(m) == "+~5" and "~5 tokens" in m.describe()
    popup.mode.setCurrentIndex(popup.mode.findData("exact"))
    assert m.span_length == 5 and m.describe().startswith("mask (5 tokens")
    popup.length.setValue(0)  # the spin's lowest value is "as the text"
    assert m.span_length is None and popup.mode.currentData() == "text" and "as the text" in m.describe()
    popup.mode.setCurrentIndex(popup.mode.findData("auto"))
    assert m.span_length == "auto"
    popup.length.setValue(3)  # a number typed under auto means exactly that many
    assert m.span_length == 3 and popup.mode.currentData() == "exact"
    popup.mode.setCurrentIndex(popup.mode.findData("auto"))
    popup.strength.setValue(50)  # an edit keeps the covered text's length
    assert (m.strength, m.span_length) == (0.5, None) and not popup.mode.isEnabled()
    fill(w, qtbot)
    assert w.infill.current.request.spans[0].length is None
    popup.close()


def test_the_lengths_tried_are_one_click_away_and_accept_applies_the_one_shown(window, qtbot):
    w = window
    set_text_and_masks(w, TEXT, [])
    select(w, "heaven")
    w.mask_action.trigger()
    fill(w, qtbot)
    cand = w.infill.current
    tried = cand.result.lengths[0]
    lst = w.infill.lengths_list
    assert not w.infill.lengths_box.isHidden() and lst.count() == len(tried) == 3
    rows = [lst.item(k).text().replace("\u00a0", " ") for k in range(lst.count())]
    assert rows[0].startswith(f"{tried[0].length} token") and f"score {tried[0].score:.2f}" in rows[0]
    assert [t.score for t in tried] == sorted((t.score for t in tried), reverse=True)
    runs: list[int] = []
    w.runStarted.connect(lambda: runs.append(1))
    other = tried[1].result
    lst.itemClicked.emit(lst.item(1))
    assert w.preview.text() == other.text != cand.result.text and lst.currentRow() == 1
    assert w.state == "preview" and runs == [] and w.infill.current is cand  # no new run: already computed
    lst.itemClicked.emit(lst.item(0))  # and back to the best
    assert w.preview.text() == cand.result.text
    lst.itemClicked.emit(lst.item(2))
    w.accept_action.trigger()
    assert w.editor.toPlainText() == tried[2].result.text
    w.undo_action.trigger()  # one undo step
    assert w.editor.toPlainText() == TEXT


def test_with_a_tiny_llada_the_candidates_show_the_lengths_tried(make_window, qtbot, tiny_llada_dir):
    from lacuna.engine import load_model, stream_infill

    w = make_window(stream=stream_infill, loader=load_model)
    with qtbot.waitSignal(w.modelReady, timeout=60000):
        w.models.load_model(str(tiny_llada_dir))
    set_text_and_masks(w, TEXT, [])
    select(w, "heaven")
    w.mask_action.trigger()
    w.settings_panel.steps.setValue(4)
    fill(w, qtbot)
    cand = w.infill.current
    tried = cand.result.lengths[0]
    assert cand.request.spans[0].length == "auto" and len(tried) >= 2
    assert len({t.length for t in tried}) == len(tried) and cand.result.spans[0].length == tried[0].length
    lst = w.infill.lengths_list
    assert lst.count() == len(tried)
    k = next(k for k, t in enumerate(tried) if t.result.text != cand.result.text)
    lst.itemClicked.emit(lst.item(k))
    assert w.preview.text() == tried[k].result.text
    w.accept_action.trigger()
    assert w.editor.toPlainText() == tried[k].result.text
    w.undo_action.trigger()
    assert w.editor.toPlainText() == TEXT


def test_with_a_tiny_dreamon_an_auto_insertion_grows_its_own_canvas(make_window, qtbot, tmp_path):
    from lacuna.engine import load_model, stream_infill
    from tests.support.tiny_dreamon import build_tiny_dreamon

    folder = build_tiny_dreamon(tmp_path / "m", seed=2, expand=0.05, delete=0.1)
    w = make_window(stream=stream_infill, loader=load_model)
    with qtbot.waitSignal(w.modelReady, timeout=60000):
        w.models.load_model(str(folder))
    set_text_and_masks(w, TEXT, [])
    c = w.editor.textCursor()
    c.setPosition(TEXT.index(" the heaven"))
    w.editor.setTextCursor(c)
    w.mask_action.trigger()
    w.settings_panel.steps.setValue(8)
    fill(w, qtbot)
    cand = w.infill.current
    assert cand.request.spans[0].length == "auto"
    # DreamOn chose its length while denoising: there are no other lengths to offer
    assert not any(cand.result.lengths) and w.infill.lengths_box.isHidden()
    assert len({len(ev.tokens) for ev in cand.events}) > 1  # the canvas changed length
    w.accept_action.trigger()
    assert w.editor.toPlainText() == cand.result.text


def test_with_a_tiny_llada_two_auto_masks_fill_together(make_window, qtbot, tiny_llada_dir):
    from lacuna.engine import load_model, stream_infill

    w = make_window(stream=stream_infill, loader=load_model)
    with qtbot.waitSignal(w.modelReady, timeout=60000):
        w.models.load_model(str(tiny_llada_dir))
    set_text_and_masks(w, TEXT, [])
    for word in ("heaven", "earth"):
        select(w, word)
        w.mask_action.trigger()
    w.settings_panel.steps.setValue(4)
    ended: list[str] = []
    w.runFinished.connect(lambda: ended.append("finished"))
    w.runFailed.connect(lambda message: ended.append(message))
    assert w.infill.start()
    qtbot.waitUntil(lambda: bool(ended), timeout=60000)
    assert ended == ["finished"] and all(w.infill.current.result.lengths)


@pytest.mark.slow
@pytest.mark.skipif(not STARTER.is_file(), reason="the starter model is not trained yet")
def test_with_the_starter_a_word_gets_a_fill_of_a_sensible_length(make_window, qtbot):
    from lacuna.engine import load_model, stream_infill

    w = make_window(stream=stream_infill, loader=load_model)
    with qtbot.waitSignal(w.modelReady, timeout=60000):
        w.models.load_model("starter")
    set_text_and_masks(w, TEXT, [])
    select(w, "heaven")
    w.mask_action.trigger()
    w.settings_panel.random_seed.setChecked(False)
    fill(w, qtbot)
    cand = w.infill.current
    tried = cand.result.lengths[0]
    assert len(tried) >= 2 and w.infill.lengths_list.count() == len(tried)
    assert 1 <= len(cand.result.span_text(0).split()) <= 4  # one word's mask: a few words at most
    w.infill.lengths_list.itemClicked.emit(w.infill.lengths_list.item(1))
    assert w.preview.text() == tried[1].result.text


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.none(), st.just("auto"), st.integers(1, 4096), st.integers(1, 4096).map(lambda n: f"~{n}")))
def test_a_mask_keeps_every_span_length_form_the_engine_takes(qapp, length):
    from PySide6.QtGui import QTextDocument

    from lacuna.app.editor.masks import Mask
    from lacuna.engine.types import Span

    doc = QTextDocument(TEXT)
    m = Mask(doc, 4, 13, length)
    assert m.span_length == length and m.auto == (isinstance(length, str))
    assert Span(4, 13, m.span_length).length == length
    m.length = 7  # a number set on its own is exact
    assert m.span_length == 7 and not m.auto
