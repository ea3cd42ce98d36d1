"""Export review of f29b0de: both files or neither, a job's end closes only its own
dialog, and every span is in the GIF however far apart the spans are."""
from __future__ import annotations

import os
import threading

from PIL import Image

from lacuna.app.workers import export as export_worker
from tests.app.conftest import set_text_and_masks
from tests.app.test_window import run_to_preview

LONG = "".join(f"Line {k} of a long document that nobody wants in a GIF.\n" for k in range(200))


def _run(window, qtbot, tokens, words=("Line 120",), steps=None, text=LONG):
    set_text_and_masks(window, text, list(words))
    for m in window.editor.masks:
        m.length = tokens
    window.settings_panel.steps.setValue(steps or tokens)
    run_to_preview(qtbot, window)
    return window.infill.current


def _export(window, qtbot, base):
    with qtbot.waitSignal(window.infill.exportFinished, timeout=60000) as done:
        assert window.infill.export_run(str(base))
    return done.args[0]


def test_an_unwritable_jsonl_leaves_no_gif(window, qtbot, tmp_path):
    _run(window, qtbot, 4)
    out = tmp_path / "o"
    out.mkdir()
    os.mkfifo(out / "run.jsonl")  # refused by safe_write: not a regular file
    window.infill.ask_replace = lambda paths: True
    errors = []
    window.show_error = lambda msg, action=None: errors.append(msg)
    assert _export(window, qtbot, out / "run.gif") is None
    assert sorted(p.name for p in out.iterdir()) == ["run.jsonl"]
    assert len(errors) == 1 and "run.jsonl" in errors[0] and "Traceback" not in errors[0]


def test_a_failure_after_the_gif_is_drawn_leaves_neither_file(window, qtbot, tmp_path, monkeypatch):
    _run(window, qtbot, 4)
    from lacuna.app.viz import export as viz_export

    def broken(events, header=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(viz_export, "events_jsonl", broken)
    errors = []
    window.show_error = lambda msg, action=None: errors.append(msg)
    out = tmp_path / "o"
    out.mkdir()
    assert _export(window, qtbot, out / "run") is None
    assert list(out.iterdir()) == []  # nor a temporary file
    assert len(errors) == 1 and "could not write" in errors[0] and "run.jsonl" in errors[0]
    assert "No space left on device" in errors[0] and "was written" not in errors[0]


def test_a_job_that_ends_late_does_not_close_the_next_jobs_dialog(window, qtbot, tmp_path, monkeypatch):
    _run(window, qtbot, 6, text="".join(f"Line {k} of a short one.\n" for k in range(50)), words=("Line 20",))
    ex, infill = window.infill.exporter, window.infill
    ends = []
    infill.exportFinished.connect(ends.append)
    gate = threading.Event()
    real = export_worker.FrameRenderer.frame
    calls = []

    def frame(self, ev=None, result=None):
        calls.append(1)
        if len(calls) > 6:  # the second job waits here until the first job's end is handled
            gate.wait(30)
        return real(self, ev, result)

    monkeypatch.setattr(export_worker.FrameRenderer, "frame", frame)
    assert infill.export_run(str(tmp_path / "a"))
    assert ex.wait(30)  # done, its `finished` still queued for the GUI thread
    assert infill.export_run(str(tmp_path / "b"))
    second = infill._export_dialog
    try:
        qtbot.waitUntil(lambda: len(ends) == 1, timeout=10000)
        assert ends[0] == (tmp_path / "a.gif", tmp_path / "a.jsonl")
        assert infill._export_dialog is second and second is not None and ex.busy()
    finally:
        gate.set()
    qtbot.waitUntil(lambda: len(ends) == 2, timeout=30000)
    assert infill._export_dialog is None and ends[1] == (tmp_path / "b.gif", tmp_path / "b.jsonl")


def test_spans_far_apart_are_all_in_the_frame(window, qtbot, tmp_path):
    words = [f"Line {k} " for k in range(0, 200, 10)]  # 20 spans, ~2,100 px with full context
    cand = _run(window, qtbot, 2, words=words, steps=4)
    req = cand.request
    r = export_worker.FrameRenderer(export_worker.ExportJob(
        text=req.text, spans=tuple((s.start, s.end) for s in req.spans), events=tuple(cand.events),
        result=cand.result, gif=tmp_path / "x.gif", lines=tmp_path / "x.jsonl", request=req, record="",
        font=window.preview.font().toString(), width=window.preview.viewport().width()))
    assert r.height <= export_worker.MAX_HEIGHT + 1
    assert r.doc.size().height() * r.scale <= r.height + 1  # nothing below the frame's bottom
    shown = r.doc.toPlainText()
    assert all(f"Line {k} " in shown for k in range(0, 200, 10))
    gif, _ = _export(window, qtbot, tmp_path / "far")
    with Image.open(gif) as im:
        assert im.size == (r.width, r.height)


def test_spans_near_each_other_keep_their_context_and_size(window, qtbot, tmp_path):
    cand = _run(window, qtbot, 2, words=("Line 120 ", "Line 121 "), steps=2)
    req = cand.request
    r = export_worker.FrameRenderer(export_worker.ExportJob(
        text=req.text, spans=tuple((s.start, s.end) for s in req.spans), events=tuple(cand.events),
        result=cand.result, gif=tmp_path / "x.gif", lines=tmp_path / "x.jsonl", request=req, record="",
        font=window.preview.font().toString(), width=window.preview.viewport().width()))
    assert r.scale == 1.0 and r.context_lines == export_worker.CONTEXT_LINES
