"""Fill with an instruction from the GUI (issue 24): the popup's instruction line and
Ctrl+Shift+M with an Instruct model, the disabled state with a base model, the
candidates that show the instruction, Regenerate keeping it, and the history."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtCore import QSettings, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from lacuna.engine import instruct
from tests.app.fakes import FakeModel
from tests.app.test_e2e import real_window

TEXT = "In the beginning the hills were green and the river ran clear to the sea.\n"
WORD = "green"
CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


def instruct_loader(folder):
    """A loader whose fake model comes from ``folder`` (only its tokenizer_config.json is read)."""
    def load(spec):
        model = FakeModel()
        model.path = str(folder)
        return model
    return load


def fake_instruct_window(make_window, qtbot, folder, stream=None):
    w = make_window(stream=stream, loader=instruct_loader(folder))
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("fake-instruct")
    return w


def select(w, word: str) -> int:
    w.editor.setPlainText(TEXT)
    i = TEXT.index(word)
    c = w.editor.textCursor()
    c.setPosition(i)
    c.setPosition(i + len(word), c.MoveMode.KeepAnchor)
    w.editor.setTextCursor(c)
    return i


def activate(qtbot, w) -> None:
    # the offscreen platform gives the activation back to no window when a popup closes
    w.activateWindow()
    qtbot.waitUntil(w.isActiveWindow, timeout=5000)


def open_instruct_popup(qtbot, w):
    """Ctrl+Shift+M on the editor, as a user presses it; the popup it opened."""
    activate(qtbot, w)
    QTest.keyClick(w.editor, Qt.Key.Key_M, CTRL_SHIFT)
    popup = QApplication.activePopupWidget()
    assert popup is not None and popup.objectName() == "maskPopup"
    return popup


def submit(qtbot, w, popup, text: str) -> None:
    QTest.keyClicks(popup.instruction, text)
    with qtbot.waitSignal(w.runFinished, timeout=60000):
        QTest.keyClick(popup.instruction, Qt.Key.Key_Return)


def labels(w) -> list[str]:
    return [w.candidates_list.item(i).text() for i in range(w.candidates_list.count())]


@pytest.mark.parametrize("folder", ["llada_instruct_dir", "dream_instruct_dir"])
def test_ctrl_shift_m_fills_under_the_instruction_in_the_models_chat(folder, make_window, qtbot, request):
    w = real_window(make_window, qtbot, request.getfixturevalue(folder))
    assert w.instruct_action.isEnabled() and w.infill.refusal is None
    w.editor.add_mask(0, 2)
    assert "Ctrl+Shift+M" in w.hint.text()  # the hint names the command once an Instruct model is loaded
    w.editor.clear_masks()
    w.settings_panel.cache.setCurrentIndex(w.settings_panel.cache.findData("none"))  # every pass: model.logits
    w.settings_panel.steps.setValue(2)
    sent, seen = [], []
    w.infill._run_requested.connect(lambda run_id, model, request, cancel: sent.append(request))
    model = w.models.model
    original = model.logits
    model.logits = lambda ids, positions: seen.append(ids.shape[-1]) or original(ids, positions)

    start = select(w, WORD)
    popup = open_instruct_popup(qtbot, w)
    assert popup.instruction.isEnabled() and popup.instruction.hasFocus()
    assert [(m.start, m.end) for m in w.editor.masks] == [(start, start + len(WORD))]  # masked first
    submit(qtbot, w, popup, "make it more formal")
    asked = sent[-1]
    assert asked.instruction == "make it more formal" and asked.instruct_layout == "quoted"
    chat = max(seen)
    result = w.infill.current.result
    assert result.text[:result.spans[0].start] == TEXT[:start]  # the outside text, byte for byte
    assert result.text[result.spans[0].end:] == TEXT[start + len(WORD):]
    assert "Asked: “make it more formal”" in labels(w)[0].split("\n")

    seen.clear()
    with qtbot.waitSignal(w.runFinished, timeout=60000):
        assert w.infill.start()  # Ctrl+Enter: the plain fill of the same mask
    assert sent[-1].instruction is None and "Asked:" not in labels(w)[0]
    assert chat > max(seen)  # the network saw the longer, chat canvas under the instruction


def test_regenerate_keeps_the_instruction_and_the_list_shows_it(make_window, qtbot, llada_instruct_dir):
    w = fake_instruct_window(make_window, qtbot, llada_instruct_dir)
    select(w, "river")
    submit(qtbot, w, open_instruct_popup(qtbot, w), "in French")
    with qtbot.waitSignal(w.runFinished, timeout=10000):
        w.regenerate_action.trigger()  # Ctrl+R
    assert [c.request.instruction for c in w.infill.candidates] == ["in French", "in French"]
    assert all(label.split("\n")[2] == "Asked: “in French”" for label in labels(w))
    assert "in French" in w.candidates_list.item(1).toolTip()
    # an instruction longer than the list's line is shortened there, whole in the tooltip
    w.infill.reject()
    popup = open_instruct_popup(qtbot, w)
    long = "rewrite this as a sonnet about the sea, with an internal rhyme in every single line"
    submit(qtbot, w, popup, long)
    line = labels(w)[0].split("\n")[2]
    assert line.startswith("Asked: “rewrite this") and line.endswith("…”") and len(line) < len(long)
    assert long in w.candidates_list.item(0).toolTip()


def test_the_history_is_one_keystroke_away_and_persists(make_window, qtbot, llada_instruct_dir):
    from lacuna.app.settings import qsettings, recent_instructions

    w = fake_instruct_window(make_window, qtbot, llada_instruct_dir)
    select(w, "river")
    for text in ("shorter", "in French"):
        submit(qtbot, w, open_instruct_popup(qtbot, w), text)
        w.infill.reject()
    assert recent_instructions(qsettings()) == ["in French", "shorter"]
    popup = open_instruct_popup(qtbot, w)
    line = popup.instruction
    QTest.keyClicks(line, "dra")
    keys = {"up": Qt.Key.Key_Up, "down": Qt.Key.Key_Down}
    seen = []
    for key in ("up", "up", "up", "down", "down", "down"):
        QTest.keyClick(line, keys[key])
        seen.append(line.text())
    assert seen == ["in French", "shorter", "shorter", "in French", "dra", "dra"]
    QTest.keyClick(line, Qt.Key.Key_Up)
    with qtbot.waitSignal(w.runFinished, timeout=10000):
        QTest.keyClick(line, Qt.Key.Key_Return)  # a recalled instruction runs as typed
    assert w.infill.current.request.instruction == "in French"
    assert recent_instructions(qsettings()) == ["in French", "shorter"]  # once, newest first


def test_an_empty_instruction_runs_nothing(make_window, qtbot, llada_instruct_dir):
    w = fake_instruct_window(make_window, qtbot, llada_instruct_dir)
    select(w, "river")
    popup = open_instruct_popup(qtbot, w)
    QTest.keyClicks(popup.instruction, "   ")
    QTest.keyClick(popup.instruction, Qt.Key.Key_Return)
    assert w.state == "idle" and popup.isVisible() and not w.infill.candidates


@pytest.mark.parametrize("source", ["tiny base LLaDA", "no folder"])
def test_a_base_model_keeps_the_option_visible_but_disabled(source, make_window, qtbot, tiny_llada_dir):
    if source == "tiny base LLaDA":
        w = real_window(make_window, qtbot, tiny_llada_dir)
        sentence = instruct.no_template_message(w.models.model.path)
        assert str(tiny_llada_dir) in sentence
    else:  # a model that came from no folder (the fake one): no template to read
        w = make_window()
        with qtbot.waitSignal(w.modelReady, timeout=5000):
            w.models.load_model("fake")
        sentence = instruct.no_template_message(None)
    assert "cannot follow instructions" in sentence and "LLaDA 8B Instruct" in sentence
    action = w.instruct_action
    assert action.isVisible() and not action.isEnabled() and action.toolTip() == sentence
    infill_menu = next(a.menu() for a in w.menuBar().actions() if a.text() == "&Infill")
    assert action in infill_menu.actions() and infill_menu.toolTipsVisible()
    select(w, WORD)
    activate(qtbot, w)
    QTest.keyClick(w.editor, Qt.Key.Key_M, CTRL_SHIFT)  # the user tries the shortcut
    assert QApplication.activePopupWidget() is None and not w.editor.masks
    assert w.statusBar().currentMessage() == sentence and w.banner_label.text() == sentence
    w.banner.hide()
    w.mask_action.trigger()
    popup = w.infill.edit_mask(w.editor.masks[0])
    assert popup.instruction.isVisible() and not popup.instruction.isEnabled()
    assert popup.instruction.toolTip() == sentence and "instruction-tuned" in popup.instruction.placeholderText()
    popup.close()
    # asked anyway (a Regenerate after a model change): the banner says it, nothing is lost
    assert not w.infill.start(instruction="shorter")
    assert w.banner.isVisible() and w.banner_label.text() == sentence
    assert w.editor.toPlainText() == TEXT and len(w.editor.masks) == 1


def test_an_engine_refusal_ends_in_the_banner_and_nothing_is_lost(make_window, qtbot, llada_instruct_dir):
    def refusing(model, request, cancel=None):
        raise instruct.InstructError(f"the chat template in {llada_instruct_dir} cannot be rendered (x); "
                                     "use the model's own tokenizer_config.json")
        yield  # a generator, as stream_infill is

    w = fake_instruct_window(make_window, qtbot, llada_instruct_dir, stream=refusing)
    start = select(w, WORD)
    popup = open_instruct_popup(qtbot, w)
    QTest.keyClicks(popup.instruction, "shorter")
    with qtbot.waitSignal(w.runFailed, timeout=10000) as failed:
        QTest.keyClick(popup.instruction, Qt.Key.Key_Return)
    message = failed.args[0]
    assert message.startswith("the chat template in") and "Error" not in message and "\n" not in message
    assert w.banner.isVisible() and w.banner_label.text() == message
    assert w.state == "idle" and w.editor.toPlainText() == TEXT
    assert [(m.start, m.end) for m in w.editor.masks] == [(start, start + len(WORD))]
    from lacuna.app.settings import qsettings, recent_instructions

    assert recent_instructions(qsettings()) == ["shorter"]  # what was typed is kept


@given(st.lists(st.text(min_size=1, max_size=12).filter(str.strip), max_size=30))
@settings(max_examples=40, deadline=None)
def test_the_history_round_trips_newest_first_unique_and_bounded(tmp_path_factory, items):
    from lacuna.app.settings import MAX_INSTRUCTIONS, recent_instructions, remember_instruction

    path = tmp_path_factory.mktemp("history") / "lacuna.ini"
    for text in items:
        remember_instruction(QSettings(str(path), QSettings.Format.IniFormat), text)
    got = recent_instructions(QSettings(str(path), QSettings.Format.IniFormat))  # as read after a restart
    expected = list(dict.fromkeys(reversed(items)))[:MAX_INSTRUCTIONS]
    assert got == expected


def test_a_damaged_history_reads_as_empty(tmp_path):
    from lacuna.app.settings import INSTRUCTIONS_KEY, recent_instructions

    s = QSettings(str(tmp_path / "lacuna.ini"), QSettings.Format.IniFormat)
    for value, kept in (("not json", []), (json.dumps({"a": 1}), []), (json.dumps(["ok", 3, "  "]), ["ok"]),
                        ("[" * 5000 + "]" * 5000, [])):  # review: nested deep enough for a RecursionError
        s.setValue(INSTRUCTIONS_KEY, value)
        assert recent_instructions(s) == kept


def test_an_instruction_asked_while_the_model_loads_never_becomes_a_plain_fill(make_window):
    """Review of issue 24: the pending-infill path ran a plain fill when the model arrived."""
    w = make_window()
    w.editor.setPlainText(TEXT)
    w.editor.add_mask(0, 2)
    w.models.model, w.models.loading_spec = None, "llada-8b-instruct"
    assert not w.infill.start(instruction="make it formal")
    assert not w.models.pending_infill and "still loading" in w.banner_label.text()
    w.models.loading_spec = None
