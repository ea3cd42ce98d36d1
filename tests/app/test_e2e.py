"""End to end with the real engine: a tiny random ModernBERT now, the starter model when present."""
from __future__ import annotations

import time

import pytest

from tests.app.conftest import set_text_and_masks
from tests.app.fakes import STARTER, StallProbe

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep.\r\nAnd God said, Let there be light: and there was light.\n")


def real_window(make_window, qtbot, spec):
    from lacuna.engine import load_model, stream_infill

    w = make_window(stream=stream_infill, loader=load_model)
    with qtbot.waitSignal(w.modelReady, timeout=60000) as sig:
        w.models.load_model(str(spec))
    info = sig.args[0]
    assert info.device and info.context_length > 0
    return w


def mask_two_and_fill(w, qtbot, tmp_path, steps=8):
    path = tmp_path / "genesis.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    assert w.files.open_path(str(path))
    text = w.editor.toPlainText()
    set_text_and_masks(w, text, [])
    w.settings_panel.auto_length.setChecked(False)  # masks as long as their text: the fills checked here
    for word in ("heaven", "darkness"):
        i = text.index(word)
        c = w.editor.textCursor()
        c.setPosition(i)
        c.setPosition(i + len(word), c.MoveMode.KeepAnchor)
        w.editor.setTextCursor(c)
        w.mask_action.trigger()
    assert len(w.editor.masks) == 2 and w.editor.toPlainText() == text
    w.settings_panel.steps.setValue(steps)
    w.settings_panel.random_seed.setChecked(False)
    w.settings_panel.seed.setValue(3)
    with qtbot.waitSignal(w.runFinished, timeout=60000):
        assert w.infill.start()
    return path, text


def check_accept_undo_save(w, path, text):
    cand = w.infill.current
    result = cand.result
    req = cand.request
    assert req.text == text
    # outside the spans the result is the text byte for byte
    assert result.text[: result.spans[0].start] == text[: req.spans[0].start]
    assert result.text[result.spans[0].end: result.spans[1].start] == text[req.spans[0].end: req.spans[1].start]
    assert result.text[result.spans[1].end:] == text[req.spans[1].end:]
    assert w.preview.text() == result.text
    assert w.editor.toPlainText() == text
    assert cand.events[-1].done and cand.events[-1].masked == 0
    w.accept_action.trigger()
    assert w.editor.toPlainText() == result.text
    w.undo_action.trigger()
    assert w.editor.toPlainText() == text
    w.redo_action.trigger()
    assert w.files.save()
    assert path.read_bytes() == result.text.replace("\n", "\r\n").encode() or \
        path.read_bytes().decode() .replace("\r\n", "\n") == result.text


@pytest.mark.parametrize("model_dir", ["tiny_model_dir", "tiny_bert_dir"])
def test_mask_two_spans_infill_accept_undo_save_tiny(make_window, qtbot, tmp_path, model_dir, request):
    """Byte-level BPE (ModernBERT) and WordPiece (BERT) tokenizers."""
    w = real_window(make_window, qtbot, request.getfixturevalue(model_dir))
    path, text = mask_two_and_fill(w, qtbot, tmp_path)
    check_accept_undo_save(w, path, text)


def test_stop_with_real_engine(make_window, qtbot, tiny_model_dir):
    w = real_window(make_window, qtbot, tiny_model_dir)
    text = TEXT.replace("\r\n", "\n")
    set_text_and_masks(w, text, ["heaven", "darkness"])
    w.editor.add_mask(5, 5, length=100)
    before = (w.editor.toPlainText(), w.editor.mask_ranges())
    w.settings_panel.steps.setValue(104)
    with qtbot.waitSignal(w.frameRendered, timeout=30000):
        w.infill.start()
    with qtbot.waitSignal(w.workerCancelled, timeout=10000):
        w.stop_action.trigger()
    assert len(w.infill.batch[0].events) < 104
    assert (w.editor.toPlainText(), w.editor.mask_ranges()) == before
    assert w.state == "idle" and not w.editor.document().isModified()


def _long_run(w):
    text = TEXT.replace("\r\n", "\n") * 3
    set_text_and_masks(w, text, ["heaven", "darkness"])
    w.editor.add_mask(text.index("light"), text.index("light"), length=48)
    w.settings_panel.steps.setValue(60)


def test_the_gui_thread_never_works_over_50ms_at_a_stretch_during_a_run(make_window, qtbot, tiny_model_dir):
    """A QTimer probe ticking every 5 ms. What the GUI thread itself computes
    between two ticks (its CPU time) must stay under 50 ms: the view's work per
    step and per frame. The wall-clock gaps are printed, not asserted: on a
    loaded machine they measure the scheduler (docs/benchmarks.md has the
    figures: 7.7 ms once on a quiet machine, 33-257 ms under load); a bound
    of 2 s still catches the model running on the GUI thread."""
    w = real_window(make_window, qtbot, tiny_model_dir)
    _long_run(w)
    w.settings_panel.candidates.setValue(16)  # sixteen runs back to back, ~1-2 s
    probe = StallProbe()
    with qtbot.waitSignal(w.runFinished, timeout=60000):
        # The click itself (sixteen requests and seed records built on the GUI thread) is
        # measured apart from the run, whose stalls the probe sees from its first step.
        t0 = time.thread_time()
        w.infill.start()
        click = time.thread_time() - t0
        probe.start()
    probe.stop()
    gaps, busy = probe.gaps, probe.busy
    print(f"\nprobe: {len(gaps)} ticks, worst stall {max(gaps) * 1000:.1f} ms wall, "
          f"{max(busy) * 1000:.1f} ms of GUI-thread CPU, top {sorted(round(g * 1000, 1) for g in gaps)[-5:]} ms, "
          f"frames {w.infill.frames}, runs {len(w.infill.candidates)}, start click {click * 1000:.1f} ms CPU")
    assert w.infill.frames >= 8
    # the last tick's gap holds the run's end (the candidate shown, the panel filled)
    assert max(busy[:-1] or [0.0]) < 0.050, f"the GUI thread computed {max(busy) * 1000:.0f} ms at a stretch"
    assert max(gaps) < 2.0, f"event loop stalled {max(gaps) * 1000:.0f} ms"
    assert click < 0.25, f"starting sixteen candidates took {click * 1000:.0f} ms of GUI-thread CPU"


def test_window_grabbed_mid_run_is_not_blank(make_window, qtbot, tiny_model_dir):
    w = real_window(make_window, qtbot, tiny_model_dir)
    _long_run(w)
    shots = []

    def grab_once():
        if not shots and w.state == "running":
            shots.append(w.grab().toImage())

    w.frameRendered.connect(grab_once)
    with qtbot.waitSignal(w.runFinished, timeout=60000):
        w.infill.start()
    assert shots, "no frame was rendered mid-run"
    img = shots[0]
    assert img.width() > 600 and img.height() > 400
    colors = {img.pixel(x, y) for x in range(0, img.width(), 7) for y in range(0, img.height(), 7)}
    assert len(colors) > 20, "the grabbed window looks blank"
    # still-masked tokens (placeholder background) are on screen mid-run
    from lacuna.app.editor import colors as pal

    target = pal.PLACEHOLDER_BG.rgb()
    assert any(img.pixel(x, y) == target for x in range(0, img.width(), 2) for y in range(0, img.height(), 2))


@pytest.mark.slow
@pytest.mark.skipif(not STARTER.is_file(), reason="the starter model (resources/models/starter/model.safetensors) "
                    "is not trained yet")
def test_mask_two_spans_infill_accept_undo_save_starter(make_window, qtbot, tmp_path):
    w = real_window(make_window, qtbot, "starter")
    assert "starter" in w.model_label.text().lower() or w.models.model_info.spec == "starter"
    path, text = mask_two_and_fill(w, qtbot, tmp_path, steps=16)
    result = w.infill.current.result
    assert [s.length for s in result.spans] == [sum(1 for j in w.infill.current.events[-1].slot_span if j == i)
                                                for i in range(2)]
    check_accept_undo_save(w, path, text)


def test_candidates_run_in_one_batch_and_equal_separate_runs(make_window, qtbot, tiny_model_dir, tmp_path):
    """The engine's own stream runs candidates that differ only in the seed as
    one batch (one forward pass per step for all); each equals a separate run."""
    import dataclasses

    from lacuna.engine import infill

    w = real_window(make_window, qtbot, tiny_model_dir)
    assert w.infill_worker.can_batch
    w.settings_panel.candidates.setValue(3)
    w.settings_panel.temperature.setValue(1.0)
    mask_two_and_fill(w, qtbot, tmp_path, steps=4)
    cands = w.infill.candidates
    assert len(cands) == 3 and w.candidates_list.count() == 3
    assert len(w.infill._group) == 3  # the three ran together
    model = w.models.model
    for cand in cands:
        alone = infill(model, dataclasses.replace(cand.request, seed=cand.seed))
        assert cand.result.text == alone.text
        assert cand.events and cand.events[-1].done


def test_stopping_a_batch_of_candidates_frees_the_worker_and_keeps_the_text(make_window, qtbot, tiny_model_dir):
    w = real_window(make_window, qtbot, tiny_model_dir)
    _long_run(w)
    w.settings_panel.candidates.setValue(4)
    w.settings_panel.temperature.setValue(1.0)
    text = w.editor.toPlainText()
    stopped = []

    def stop_once():
        if not stopped and w.state == "running":
            stopped.append(True)
            w.stop_action.trigger()

    w.frameRendered.connect(stop_once)
    with qtbot.waitSignal(w.workerCancelled, timeout=60000):
        assert w.infill.start()
    assert len(w.infill._group) == 4 and stopped
    assert w.state == "idle" and w.editor.toPlainText() == text and not w.infill.candidates
