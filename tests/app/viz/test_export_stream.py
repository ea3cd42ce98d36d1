"""Issue 20: exporting a long run streams its frames off the GUI thread, holds one frame
at a time, shows progress, and a cancel leaves no file. Issue 21: the GIF is cropped
to the masked spans and a few lines around them."""
from __future__ import annotations

import io
import threading

from PIL import Image
from PySide6.QtWidgets import QPushButton

from lacuna.app.viz.export import GifStream
from lacuna.app.workers import export as export_worker
from tests.app.conftest import set_text_and_masks
from tests.app.test_window import run_to_preview

LONG = "".join(f"Line {k} of a long document that nobody wants in a GIF.\n" for k in range(200))


def _run(window, qtbot, tokens: int, text: str = LONG, word: str = "Line 120"):
    set_text_and_masks(window, text, [word])
    window.editor.masks[0].length = tokens
    window.settings_panel.steps.setValue(tokens)
    run_to_preview(qtbot, window)
    return window.infill.current


def test_frames_are_drawn_off_the_gui_thread_and_written_as_they_come(window, qtbot, tmp_path, monkeypatch):
    cand = _run(window, qtbot, 60)
    log, threads = [], set()
    real_frame, real_add = export_worker.FrameRenderer.frame, GifStream.add

    def frame(self, ev=None, result=None):
        threads.add(threading.current_thread() is threading.main_thread())
        log.append("frame")
        return real_frame(self, ev, result)

    def add(self, rgb, ms):
        real_add(self, rgb, ms)
        log.append(("written", self._f.tell()))

    monkeypatch.setattr(export_worker.FrameRenderer, "frame", frame)
    monkeypatch.setattr(GifStream, "add", add)
    progress = []
    window.infill.exportProgress.connect(lambda done, total: progress.append((done, total)))
    with qtbot.waitSignal(window.infill.exportFinished, timeout=60000) as done:
        assert window.infill.export_run(str(tmp_path / "run"))
        assert window.infill.exporter.busy() or log  # export_run returned while the worker draws
    gif, lines = done.args[0]
    assert threads == {False}  # not one frame drawn on the GUI thread
    # streamed: the file grows while frames are still being drawn, one frame behind at most
    sizes = [x[1] for x in log if isinstance(x, tuple)]
    assert sizes[len(sizes) // 2] > sizes[1] > 0
    assert log.count("frame") == len(cand.events)  # one per step
    assert progress[-1] == (len(cand.events), len(cand.events)) and len(progress) >= 10
    with Image.open(gif) as im:
        assert im.n_frames == len(cand.events)
        durations = []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
        assert durations[-1] == 1500 and set(durations[:-1]) == {120}  # 8 steps/s, in GIF centiseconds


def test_the_gif_shows_the_spans_and_a_few_lines_around_them(window, qtbot, tmp_path):
    _run(window, qtbot, 6)
    with qtbot.waitSignal(window.infill.exportFinished, timeout=30000) as done:
        window.infill.export_run(str(tmp_path / "run"))
    gif = done.args[0][0]
    line = window.preview.fontMetrics().lineSpacing()
    with Image.open(gif) as im:
        assert im.height < 12 * line  # the span's line, two above, two below: not 200 lines
        assert im.width <= 760


def test_crop_keeps_context_joins_far_pieces_and_maps_the_spans():
    from lacuna.app.workers.export import GAP, crop

    text = "".join(f"line {k}\n" for k in range(50))
    a, b = text.index("line 10"), text.index("line 40")
    cropped, spans = crop(text, [(a, a + 4), (b + 5, b + 7)], lines=2)
    assert cropped.startswith("line 8\nline 9\nline 10") and GAP in cropped
    assert cropped.endswith("line 42")
    assert [cropped[s:e] for s, e in spans] == ["line", "40"]
    # a long line is cut around the span, and says so
    long = "x" * 1000 + " target " + "y" * 1000
    cut, [(s, e)] = crop(long, [(1001, 1007)], reach=50)
    assert cut[s:e] == "target" and cut.startswith("\u2026") and cut.endswith("\u2026") and len(cut) < 120


def test_cancel_stops_the_export_and_leaves_no_file(window, qtbot, tmp_path, monkeypatch):
    _run(window, qtbot, 120)
    out = tmp_path / "out"
    out.mkdir()
    reached, gate, drawn = threading.Event(), threading.Event(), []
    real = export_worker.FrameRenderer.frame

    def frame(self, ev=None, result=None):
        drawn.append(1)
        if len(drawn) == 4:  # the worker waits here until the user has pressed Cancel
            reached.set()
            gate.wait(10)
        return real(self, ev, result)

    monkeypatch.setattr(export_worker.FrameRenderer, "frame", frame)
    with qtbot.waitSignal(window.infill.exportFinished, timeout=60000) as done:
        assert window.infill.export_run(str(out / "run"))
        qtbot.waitUntil(reached.is_set, timeout=10000)
        window.infill._export_dialog.findChild(QPushButton).click()  # the dialog's Cancel button
        gate.set()
    assert done.args[0] is None and len(drawn) < 10
    assert list(out.iterdir()) == []  # no GIF, no JSON lines, no temporary file
    assert "cancelled" in window.statusBar().currentMessage()
    assert not window.infill.exporter.busy()


def test_a_second_export_while_one_runs_is_refused_and_close_waits(window, qtbot, tmp_path):
    _run(window, qtbot, 80)
    gate = threading.Event()
    real = export_worker.FrameRenderer.frame
    export_worker.FrameRenderer.frame = lambda self, ev=None, result=None: (gate.wait(5), real(self, ev, result))[1]
    try:
        assert window.infill.export_run(str(tmp_path / "a"))
        assert not window.infill.export_run(str(tmp_path / "b"))
        assert "already running" in window.statusBar().currentMessage()
        gate.set()
        with qtbot.waitSignal(window.infill.exportFinished, timeout=60000):
            pass
    finally:
        export_worker.FrameRenderer.frame = real
    assert (tmp_path / "a.gif").exists() and not (tmp_path / "b.gif").exists()


def test_gif_stream_holds_one_frame_and_merges_repeats():
    f = io.BytesIO()
    gif = GifStream(f)
    red, blue = Image.new("RGB", (40, 20), (255, 0, 0)), Image.new("RGB", (40, 20), (0, 0, 255))
    half = red.copy()
    half.paste((0, 0, 255), (0, 0, 10, 20))
    for im in (red, red, half, blue):
        gif.add(im, 100)
    gif.close()
    f.seek(0)
    with Image.open(f) as im:
        assert im.n_frames == 3 and im.info["loop"] == 0
        assert im.info["duration"] == 200  # two identical frames became one, twice as long
        im.seek(1)
        assert im.convert("RGB").getpixel((5, 5)) == (0, 0, 255) and im.convert("RGB").getpixel((30, 5)) == (255, 0, 0)
        im.seek(2)
        assert im.convert("RGB").getpixel((30, 5)) == (0, 0, 255)


def test_an_existing_companion_file_is_asked_about_first(window, qtbot, tmp_path, monkeypatch):
    _run(window, qtbot, 4)
    (tmp_path / "data.jsonl").write_text("keep me\n", encoding="utf-8")
    asked = []
    monkeypatch.setattr(window.infill, "ask_replace", lambda paths: asked.append(paths) or False)
    assert not window.infill.export_run(str(tmp_path / "data.gif"))  # the user said no
    assert asked == [[tmp_path / "data.jsonl"]] and (tmp_path / "data.jsonl").read_text() == "keep me\n"
    assert not (tmp_path / "data.gif").exists()
