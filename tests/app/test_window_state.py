"""Issue 22 §4: the window holds the state and emits it; each controller keeps its own
actions; workers send frozen messages; the editor applies fills as one undo step."""
from __future__ import annotations

import dataclasses

import pytest
from PySide6.QtTest import QTest

from lacuna.app import window as window_module
from lacuna.app.editor import Editor
from lacuna.app.workers import messages

def test_the_window_forwards_nothing():
    """Issue 22: callers address the controllers (window.files, .infill, .models); the window
    declares no property that hands back a controller's attribute."""
    properties = {name for name, v in vars(window_module.MainWindow).items() if isinstance(v, property)}
    assert properties == set()


@pytest.mark.parametrize("state", ["running", "preview", "idle"])
def test_each_controller_follows_the_state_signal(make_window, state):
    w = make_window()
    w.editor.setPlainText("one two three")
    w.editor.add_mask(4, 7)
    heard = []
    w.stateChanged.connect(heard.append)
    w.set_state(state)
    assert heard == [state]
    idle, running, preview = state == "idle", state == "running", state == "preview"
    # the file controller's
    assert [a.isEnabled() for a in (w.new_action, w.open_action, w.reopen_encoding_action)] == [idle] * 3
    # the infill controller's (masks present, no candidate)
    assert w.mask_action.isEnabled() == idle and w.clear_masks_action.isEnabled() == idle
    assert w.infill_action.isEnabled() == (idle or preview) and w.stop_action.isEnabled() == running
    assert w.reject_action.isEnabled() == preview and not w.accept_action.isEnabled()
    assert w.tint_action.isEnabled() == (not running)
    # the model controller's
    assert w.model_picker.isEnabled() == (not running)
    # the window's own
    assert w.cut_action.isEnabled() == idle and w.editor.isReadOnly() == (not idle)
    if not running:  # "Running k/n" needs a run
        assert w.state_label.text() == {"idle": "Idle", "preview": "Preview"}[state]


def test_masks_update_the_infill_actions_without_the_window(make_window):
    w = make_window()
    w.editor.setPlainText("one two")
    assert not w.infill_action.isEnabled()
    w.editor.add_mask(0, 3)
    assert w.infill_action.isEnabled() and w.clear_masks_action.isEnabled()
    assert "1 mask" in w.hint.text()
    w.infill.clear_masks()
    assert not w.infill_action.isEnabled() and "Ctrl+M" in w.hint.text()


def test_worker_messages_are_frozen_plain_data():
    for cls in (messages.Steps, messages.CandidateRun, messages.Finished, messages.Failed,
                messages.ModelLoaded, messages.LoadFailed):
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    done = messages.Finished(3, "result")
    assert done.others == () and done.run_id == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.run_id = 4
    assert messages.Failed(1, "No.") == messages.Failed(1, "No.")


def test_the_editor_applies_fills_as_one_undo_step(qtbot):
    ed = Editor()
    qtbot.addWidget(ed)
    text = "a 🙂 b c d"
    ed.setPlainText(text)
    # a range (the emoji's neighbour "b"), and an insertion right after the range before it
    ed.apply_fills(text, [(4, 5), (5, 5), (8, 9)], ["BEE", "+", "DEE"])
    assert ed.toPlainText() == "a 🙂 BEE+ c DEE"
    ed.setFocus()
    QTest.keyClicks(ed, "x")  # typed after the fill: its own undo step
    ed.undo()
    assert ed.toPlainText() == "a 🙂 BEE+ c DEE"
    ed.undo()
    assert ed.toPlainText() == text


def test_apply_fills_leaves_the_masks_to_the_caller(qtbot):
    ed = Editor()
    qtbot.addWidget(ed)
    ed.setPlainText("one two three")
    m = ed.add_mask(4, 7)
    changed = []
    ed.masksChanged.connect(lambda: changed.append(1))
    ed.apply_fills("one two three", [(4, 7)], ["2"])
    assert ed.toPlainText() == "one 2 three" and changed == []
    assert m in ed.masks  # the fill replaced its text; the caller (Accept) clears it
