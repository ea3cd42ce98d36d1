"""Watching a run: Play animates a finished run, watch mode paces a live one,
the chart tells which tokens each step committed, and a run exports as JSON
lines and an animated GIF."""
from __future__ import annotations

import json
import time

from PIL import Image

from lacuna.app.infill_controller import fills_label
from tests.app.test_window import TEXT, run_to_preview
from tests.app.conftest import set_text_and_masks


def _eight_steps(w, qtbot):
    set_text_and_masks(w, TEXT, ["heaven and the earth"])
    w.editor.masks[0].length = 8
    w.settings_panel.steps.setValue(8)
    run_to_preview(qtbot, w)
    return w.infill.current.events


def test_play_animates_a_finished_run_through_the_preview(window, qtbot):
    events = _eight_steps(window, qtbot)
    panel = window.panel
    play = window.findChild(type(panel.play_button), "timelinePlay")
    assert play is panel.play_button and play.isEnabled()
    panel.speed.setValue(30)
    seen = []
    panel.stepRequested.connect(seen.append)
    play.click()  # at the last step, Play starts over from the first
    assert panel.slider.value() == 1
    assert window.preview.text().count("\u2591") == 7
    qtbot.waitUntil(lambda: not play.isChecked(), timeout=5000)
    assert seen == list(range(1, len(events) + 1))
    assert window.preview.text() == window.infill.current.result.text
    assert panel.chart.cursor is None  # back at the end: no cursor over a finished chart


def test_pause_keeps_the_step(window, qtbot):
    _eight_steps(window, qtbot)
    panel = window.panel
    panel.slider.setValue(1)
    panel.speed.setValue(2)
    panel.play_button.click()
    qtbot.waitUntil(lambda: panel.slider.value() == 2, timeout=3000)
    panel.play_button.click()
    step = panel.slider.value()
    qtbot.wait(600)  # more than one tick at 2 steps/s: a paused timeline must not move
    assert panel.slider.value() == step and not panel.play_timer.isActive()
    assert panel.chart.cursor == step


def test_watch_mode_paces_a_live_run(window, qtbot):
    set_text_and_masks(window, TEXT, ["heaven and the earth"])
    window.editor.masks[0].length = 4
    window.settings_panel.steps.setValue(4)
    window.panel.watch.setValue(150)
    frames = []
    window.frameRendered.connect(lambda: frames.append(time.perf_counter()))
    t0 = time.perf_counter()
    with qtbot.waitSignal(window.runFinished, timeout=10000):
        window.infill.start()
    shown = time.perf_counter() - t0
    assert len(frames) == 4  # every step drawn, none coalesced away
    gaps = [b - a for a, b in zip(frames, frames[1:])]
    assert min(gaps) >= 0.14  # each step stayed on screen for the pace (timer slack allowed)
    assert shown >= 4 * 0.14
    assert window.state == "preview"


def test_stop_during_watch_mode_restores_at_once(window, qtbot):
    set_text_and_masks(window, TEXT, ["heaven and the earth"])
    before = window.editor.toPlainText()
    window.editor.masks[0].length = 6
    window.settings_panel.steps.setValue(6)
    window.panel.watch.setValue(1000)
    with qtbot.waitSignal(window.frameRendered, timeout=5000):
        window.infill.start()
    window.infill.stop()
    assert window.state == "idle"
    assert not window.infill.watch_queue and not window.infill.watch_timer.isActive()
    assert window.editor.toPlainText() == before


def test_chart_hover_names_the_tokens_of_a_step(window, qtbot):
    events = _eight_steps(window, qtbot)
    chart = window.panel.chart
    chart.resize(400, 160)
    chart.grab()  # lay out the plot
    words = [c.text.strip() for c in events[2].committed]
    x = chart._plot.left() + chart._plot.width() * (2.5 / 8)
    assert chart.step_at(x) == 3
    tip = chart.tooltip_for(3)
    assert tip.startswith("Step 3:") and all(w in tip for w in words)
    assert chart.step_at(chart._plot.left() - 5) is None


def test_saved_nfe_is_shown_when_the_plan_had_spare_steps(window, qtbot):
    set_text_and_masks(window, TEXT, ["heaven"])
    window.editor.masks[0].length = 2
    window.settings_panel.steps.setValue(2)
    run_to_preview(qtbot, window)
    assert window.panel.saved_label.text() == ""  # every planned step was needed
    from dataclasses import replace

    last = replace(window.infill.current.events[-1], steps=6)
    window.panel.show_event(last)
    assert "4 of 6 planned NFE saved" in window.panel.saved_label.text()
    assert window.panel.chart.finished


def _export(window, qtbot, base):
    with qtbot.waitSignal(window.infill.exportFinished, timeout=30000) as done:
        assert window.infill.export_run(str(base))
    return done.args[0]


def test_export_writes_json_lines_and_an_animated_gif(window, qtbot, tmp_path):
    events = _eight_steps(window, qtbot)
    window.panel.slider.setValue(3)
    shown = window.preview.text()
    out = tmp_path / "out"
    out.mkdir()
    gif, lines = _export(window, qtbot, out / "run")
    assert window.panel.slider.value() == 3 and window.preview.text() == shown  # the view is left alone
    rows = [json.loads(line) for line in lines.read_text(encoding="utf-8").splitlines()]
    assert rows[0]["run"]["request"]["text"] == TEXT
    assert [r["step"] for r in rows[1:]] == [e.step for e in events]
    assert rows[-1]["result"]["text"] == window.infill.current.result.text
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == len(events) and im.info.get("loop") == 0
        first = im.convert("RGB").tobytes()
        im.seek(im.n_frames - 1)
        assert im.convert("RGB").tobytes() != first  # the frames show different steps
    assert sorted(p.name for p in out.iterdir()) == ["run.gif", "run.jsonl"]  # no temporary file left


def test_export_to_an_unwritable_place_is_one_message(window, qtbot, tmp_path, monkeypatch):
    _eight_steps(window, qtbot)
    errors = []
    monkeypatch.setattr(window, "show_error", errors.append)
    assert _export(window, qtbot, tmp_path / "missing" / "run") is None
    assert len(errors) == 1 and "could not be exported" in errors[0] and "run.gif" in errors[0]
    assert "Error" not in errors[0] and "Traceback" not in errors[0]


def test_panel_forgets_the_run_after_reject_and_after_opening_a_file(window, qtbot, tmp_path):
    _eight_steps(window, qtbot)
    assert window.panel.chart.counts
    window.infill.reject()
    assert not window.panel.chart.counts and window.panel.step_label.text().startswith("Step –")
    _eight_steps(window, qtbot)
    window.infill.accept()
    window.editor.document().setModified(False)  # no "save changes?" question
    other = tmp_path / "other.txt"
    other.write_text("Another text.\n", encoding="utf-8")
    window.files.open_path(str(other))
    assert not window.panel.chart.counts and not window.panel.slider.isEnabled()
    assert not window.panel.play_button.isEnabled()


def test_candidate_label_shows_every_span():
    label = fills_label(["light", "a very long fill " * 10, "end"])
    assert label.count("“") == 3 and "“light”" in label and "“end”" in label and "…" in label
    assert len(label) <= 100
    assert fills_label([]) == ""


def test_accepting_a_fill_keeps_its_chart_until_the_next_run(window, qtbot):
    events = _eight_steps(window, qtbot)
    counts = list(window.panel.chart.counts)
    assert window.infill.accept()
    panel = window.panel
    assert panel.chart.counts == counts and panel.step_label.text() == f"Step {len(events)} / {events[-1].steps}"
    assert not panel.slider.isEnabled() and not panel.play_button.isEnabled()  # nothing to replay into
    assert not panel.export_button.isEnabled() and window.candidates_list.count() == 0
    set_text_and_masks(window, window.editor.toPlainText(), ["earth"])
    window.editor.masks[0].length = 2
    window.settings_panel.steps.setValue(2)
    run_to_preview(qtbot, window)
    assert len(panel.chart.counts) == 2  # a new run, its own chart


def test_candidate_label_counts_the_steps_taken_and_keeps_figures_whole(window, qtbot):
    set_text_and_masks(window, TEXT, ["heaven and the earth"])
    window.editor.masks[0].length = 5
    window.settings_panel.steps.setValue(16)  # more steps than tokens: the run takes 5
    run_to_preview(qtbot, window)
    first, setup, fills = window.candidates_list.item(0).text().split("\n")
    assert "5\u00a0of\u00a016\u00a0steps" in first and "16" not in setup and "steps" not in setup
    # the figures are held together: a narrow list wraps between them (at " · "), never inside one
    figures = first.split(" · ")[2:]
    assert len(figures) == 3 and figures[1].endswith("\u00a0NFE") and figures[2].endswith("\u00a0s")
    assert all(" " not in part for part in figures)
    window.infill.reject()
    window.settings_panel.steps.setValue(5)
    run_to_preview(qtbot, window)
    assert " · 5\u00a0steps · " in window.candidates_list.item(0).text().split("\n")[0]
