"""The model picker: starter, models in the local Hugging Face cache, a chosen folder."""
from __future__ import annotations

import json

from lacuna.app.workers.model import scan_hf_cache


def _fake_repo(cache, repo, model_type, weights=True):
    snap = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"model_type": model_type}))
    if weights:
        (snap / "model.safetensors").write_bytes(b"\0")
    return snap


def test_scan_hf_cache_lists_loadable_models_only(tmp_path):
    _fake_repo(tmp_path, "answerdotai/ModernBERT-base", "modernbert")
    _fake_repo(tmp_path, "GSAI-ML/LLaDA-8B-Instruct", "llada")
    _fake_repo(tmp_path, "openai-community/gpt2", "gpt2")
    _fake_repo(tmp_path, "someone/bert-no-weights", "bert", weights=False)
    assert scan_hf_cache(tmp_path) == [("GSAI-ML/LLaDA-8B-Instruct", "GSAI-ML/LLaDA-8B-Instruct"),
                                       ("answerdotai/ModernBERT-base", "answerdotai/ModernBERT-base")]


def test_picker_lists_cache_models_and_loads_the_choice(window, qtbot, tmp_path, monkeypatch):
    picker = window.model_picker
    assert picker.itemData(0) == "starter" and picker.itemData(picker.count() - 1) == "__open_folder__"
    window.models.on_models_listed((("org/model-a", "org/model-a"),))
    i = picker.findData("org/model-a")
    assert 0 < i < picker.count() - 1
    with qtbot.waitSignal(window.modelReady) as sig:
        picker.setCurrentIndex(i)
        picker.activated.emit(i)
    assert sig.args[0].spec == "org/model-a"
    # "Open folder…" asks for a folder and loads it
    from PySide6.QtWidgets import QFileDialog

    folder = tmp_path / "my-model"
    folder.mkdir()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    with qtbot.waitSignal(window.modelReady) as sig:
        picker.activated.emit(picker.count() - 1)
    assert sig.args[0].spec == str(folder)
    assert picker.currentData() == str(folder) and picker.currentText() == "my-model"


def test_failed_load_keeps_the_previous_model(window, qtbot):
    with qtbot.waitSignal(window.modelFailed):
        window.models.load_model("broken")
    assert window.models.model is not None and "fake-model" in window.model_label.text()
    assert "broken" in window.banner_label.text()


def test_mask_length_defaults_to_token_count_of_covered_text(make_window, qtbot, tiny_model_dir):
    from lacuna.engine import load_model, stream_infill, token_count

    w = make_window(stream=stream_infill, loader=load_model)
    with qtbot.waitSignal(w.modelReady, timeout=60000):
        w.models.load_model(str(tiny_model_dir))
    text = "The quick brown fox jumps over the lazy dog."
    w.editor.setPlainText(text)
    m = w.editor.add_mask(4, 19)
    n = token_count(w.models.model, text, 4, 19)
    assert w.infill.token_count(4, 19) == n
    popup = w.infill.edit_mask(m)
    assert popup.length.specialValueText() == f"as the text ({n} tokens)" and m.length is None
    popup.close()


def test_double_click_on_mask_opens_popup(window, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QTextCursor
    from PySide6.QtTest import QTest

    window.editor.setPlainText("alpha beta gamma")
    m = window.editor.add_mask(6, 10)
    c = QTextCursor(window.editor.document())
    c.setPosition(8)
    pos = window.editor.cursorRect(c).center()
    with qtbot.waitSignal(window.editor.maskEditRequested) as sig:
        QTest.mouseDClick(window.editor.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert sig.args[0] is m
    from lacuna.app.editor import MaskPopup

    popups = window.findChildren(MaskPopup)
    assert len(popups) == 1 and popups[0].mask is m and popups[0].isVisible()
    popups[0].close()


def test_close_during_a_run_stops_and_joins_the_thread(make_window, qtbot):
    from tests.app.conftest import set_text_and_masks
    from tests.app.fakes import make_stream

    w = make_window(stream=make_stream(step_delay=0.2))
    with qtbot.waitSignal(w.modelReady):
        w.models.load_model("fake")
    set_text_and_masks(w, "one two three four", ["two"])
    w.editor.masks[0].length = 30
    w.settings_panel.steps.setValue(30)
    w.infill.start()
    assert w.state == "running"
    assert w.close()
    assert not w.engine_thread.isRunning()


def test_the_picker_and_the_model_label_say_the_starter_is_a_demonstration(window, qtbot):
    """Issue 21: the app presented the starter as if it could write."""
    from PySide6.QtCore import Qt

    picker = window.model_picker
    i = picker.findData("starter")
    assert picker.itemText(i) == "Lacuna starter (demo)"
    assert "demonstration" in picker.itemData(i, Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(window.modelReady) as sig:
        window.models.load_model("starter")
    assert sig.args[0].name == "Lacuna starter (demo)"
    assert window.model_label.text() == "Model: Lacuna starter (demo)"
    assert "demonstration" in window.model_label.toolTip()
    with qtbot.waitSignal(window.modelReady):
        window.models.load_model("fake")
    assert window.model_label.toolTip() == ""
    assert picker.itemText(picker.findData("starter")) == "Lacuna starter (demo)"
