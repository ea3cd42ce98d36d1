"""The candidate label counts steps in good English ("1 step", not "1 steps")."""
from tests.app.conftest import set_text_and_masks
from tests.app.test_window import TEXT, run_to_preview


def _first_line(window):
    return window.candidates_list.item(0).text().split("\n")[0].replace("\u00a0", " ")


def test_a_one_step_run_says_1_step(window, qtbot):
    set_text_and_masks(window, TEXT, ["heaven"])
    window.editor.masks[0].length = 1
    window.settings_panel.steps.setValue(1)
    run_to_preview(qtbot, window)
    line = _first_line(window)
    assert " 1 step " in line + " " and "1 steps" not in line
    assert "steps" not in window.candidates_list.item(0).text().split("\n")[1]


def test_a_run_of_several_steps_says_steps(window, qtbot):
    set_text_and_masks(window, TEXT, ["heaven"])
    window.editor.masks[0].length = 3
    window.settings_panel.steps.setValue(3)
    run_to_preview(qtbot, window)
    assert "3 steps" in _first_line(window)
