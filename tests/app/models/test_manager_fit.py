"""The Model manager's verdicts for the open document (issue 19): its tokens (the loaded model's
tokenizer, else characters / 4), its masked tokens and the run settings, and per precision the
longest document that fits."""
from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from lacuna.app.models import ModelManager, ModelManagerDialog
from lacuna.app.models.document import DocumentWork, from_window
from lacuna.app.models.table import BF16, INT4
from lacuna.engine.hub import fit

from .conftest import fast_options

GIB = 1 << 30
TIMEOUT = 20_000


@pytest.fixture
def manager(hub, qtbot, monkeypatch):
    monkeypatch.setattr(fit, "bitsandbytes_available", lambda: True)
    gpu = fit.Device("cuda", 0, "Simulated 8 GiB card", 8 * GIB, 8 * GIB, True)
    m = ModelManager(options=fast_options(), devices=[gpu])
    yield m
    m.shutdown()
    m.deleteLater()


def _open(manager, window, qtbot) -> ModelManagerDialog:
    with qtbot.waitSignal(manager.fitsReady, timeout=TIMEOUT):
        dialog = ModelManagerDialog(manager, window)
        dialog.show()
    while manager._fit_job is not None:  # a document change computes again after the first pass
        with qtbot.waitSignal(manager.fitsReady, timeout=TIMEOUT):
            pass
    return dialog


def _cell(dialog: ModelManagerDialog, name: str, col: int, role=None):
    from PySide6.QtCore import Qt

    model = dialog.table_model
    return model.data(model.index(model.row_of(name), col), role or Qt.ItemDataRole.DisplayRole)


def test_a_long_document_without_a_model_is_counted_by_characters(make_window, manager, qtbot):
    w = make_window()
    w.editor.setPlainText("word " * 4000)   # 20,000 characters: about 5,000 tokens and 32 masked, past LLaDA's 4,096
    w.editor.add_mask(100, 100, length=32)
    dialog = _open(manager, w, qtbot)
    label = dialog.work_label.text()
    assert "about 5,032 tokens (counted as characters / 4: no model is loaded), 32 masked" in label
    work = manager.work()
    assert (work.tokens, work.hole, work.counted_by) == (5032, 32, "")
    int4 = _cell(dialog, "llada-8b-instruct", INT4)
    assert int4.startswith("won't fit · up to "), int4   # 4,096 tokens with the 2 GiB cache on an 8 GiB card
    longest = int(int4.rsplit(" ", 1)[1].replace(",", ""))
    assert 1000 < longest < 4096
    from PySide6.QtCore import Qt

    tip = _cell(dialog, "llada-8b-instruct", INT4, Qt.ItemDataRole.ToolTipRole)
    assert "4,096 tokens with 32 masked" in tip and f"The longest document that fits: {longest:,} tokens." in tip
    assert "context cache off" in tip
    assert _cell(dialog, "llada-8b-instruct", BF16) == "won't fit"  # 16 GB of weights: no document fits

    for mask in list(w.editor.masks):
        w.editor.remove_mask(mask)
    w.editor.setPlainText("word " * 200)   # 1,000 characters: this one fits
    w.editor.add_mask(10, 10, length=32)
    with qtbot.waitSignal(manager.fitsReady, timeout=TIMEOUT):
        dialog.refresh_work()
    assert "about 282 tokens" in dialog.work_label.text()
    assert _cell(dialog, "llada-8b-instruct", INT4) == "fits · up to {:,}".format(longest)


def test_the_loaded_models_tokenizer_counts_and_the_run_settings_count(make_window, manager, qtbot):
    from lacuna.engine import resources
    from lacuna.engine.models import vocab
    from lacuna.engine.models.native import load_tokenizer

    folder = resources.path("models", "starter")
    if not (folder / "tokenizer.json").is_file():
        pytest.skip("the starter model is not in this installation")
    tokenizer = load_tokenizer(folder, json.loads((folder / "config.json").read_text()), "starter", 512)
    w = make_window()
    w.models.model = SimpleNamespace(tokenizer=tokenizer)
    w.models.model_info = SimpleNamespace(name="Lacuna starter")
    text = "In the beginning God created the heaven and the earth. " * 20
    w.editor.setPlainText(text)
    start = text.index("heaven")
    w.editor.add_mask(start, start + len("heaven"))          # covers its own tokens
    w.editor.add_mask(len(text), len(text), length=40)       # an insertion of 40
    w.run_settings = replace(w.run_settings, block_length=16, candidates=2, cache="none")
    work = from_window(w)
    covered = len(vocab.encode(tokenizer, "heaven"))
    assert work.counted_by == "Lacuna starter"
    assert work.tokens == len(vocab.encode(tokenizer, text)) - covered + covered + 40
    assert (work.masked, work.hole) == (covered + 40, 16)    # one block of 16 is scored at a time
    assert (work.cache, work.candidates, work.sampling) == (False, 2, True)
    dialog = _open(manager, w, qtbot)
    assert f"{work.tokens:,} tokens (counted by Lacuna starter's tokenizer), {covered + 40} masked" \
        in dialog.work_label.text()
    f = next(f for f in manager.fits("llada-8b-instruct") if f.precision == "int4")
    assert (f.context, f.hole, f.estimate.cache) == (work.tokens, 16, 0)
    assert f.estimate.sampler == 16 * 126464 * fit.sampler_bytes(False, 2, sampling=True)


def test_without_a_document_the_verdicts_and_speeds_are_for_a_sentence(make_window, manager, qtbot):
    """Issue 21: the verdicts and the seconds per fill describe the same work; with no document
    open that is the editor's usual fill, a sentence (engine.hub.advice.TYPICAL)."""
    from lacuna.engine.hub.advice import TYPICAL

    w = make_window()
    assert from_window(w) is None and from_window(None) is None
    dialog = _open(manager, w, qtbot)
    assert "a sentence of 32 masked tokens in a 512-token document" in dialog.work_label.text()
    f = next(f for f in manager.fits("llada-8b-instruct") if f.precision == "int4")
    assert (f.context, f.hole) == (TYPICAL.context, TYPICAL.hole)
    assert manager.sizing().work == TYPICAL
    assert DocumentWork(10, None, 0, "").describe().endswith(
        "no mask yet, sized with a 32-token one (a sentence), 16 steps")
    assert DocumentWork(10, None, 0, "").fit_kwargs()["hole"] == TYPICAL.hole
