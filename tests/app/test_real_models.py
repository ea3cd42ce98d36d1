"""The GUI's model path on the real repository layouts: the Model manager pulls a
catalog model from a Hub serving its real files (tests/support/real_checkpoints.py),
the editor loads it by its catalog id and fills two spans, accept, undo, save."""
from __future__ import annotations

import sys

import pytest

from tests.app.test_e2e import check_accept_undo_save, mask_two_and_fill
from tests.support.real_checkpoints import GPT2, MODELS, publish


@pytest.fixture(scope="module")
def mock_hub():
    from tests.engine.hub.mockhub import MockHub

    hub = MockHub()
    yield hub
    hub.close()


@pytest.fixture
def real_hub(mock_hub, monkeypatch, tmp_path):
    """The mock Hub, emptied; a fresh Hugging Face cache and Lacuna data folder."""
    mock_hub.reset()
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_ENDPOINT", mock_hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "lacuna-data"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    yield mock_hub
    mock_hub.release_all()


@pytest.mark.parametrize("model_id, family", [
    ("llada-8b-instruct", "llada"), ("llada-1.5", "llada"), ("dream-7b-instruct", "dream"),
    ("llada-moe-7b-a1b-instruct", "llada_moe"), ("mdlm-owt", "mdlm"), ("sedd-small", "sedd"),
])
def test_the_model_manager_pulls_and_the_editor_fills(real_hub, make_window, qtbot, tmp_path, model_id, family):
    from lacuna.engine import load_model, stream_infill

    model_repo, *companion = publish(real_hub, model_id)
    w = make_window(stream=stream_infill, loader=load_model)
    w.model_manager_action.trigger()
    dlg = w.models.manager_dialog
    dlg.auto_confirm = True  # the user says yes to the pickle question (SEDD's weights are a pickle)
    asked = []
    record = asked.append
    dlg.manager.consentNeeded.connect(record)  # the manager outlives this window: disconnected below
    with qtbot.waitSignal(dlg.manager.jobFinished, timeout=60000,
                          check_params_cb=lambda o: o.name == model_id and o.state != "consent") as done:
        dlg.trigger("download", model_id)
    dlg.manager.consentNeeded.disconnect(record)
    assert done.args[0].state == "installed", done.args[0].message
    # consent is asked for the model's own pickle only, never for its tokenizer companion
    assert [(o.name, o.consent, [f[0] for f in o.files]) for o in asked] == (
        [("sedd-small", "pickle", ["pytorch_model.bin"])] if model_id == "sedd-small" else [])
    assert real_hub.fetched(model_repo.repo) == model_repo.built, "the model's own files, no code, nothing else"
    if companion:
        assert MODELS[model_id].companion == GPT2 and real_hub.fetched(GPT2) == companion[0].built
    assert real_hub.violations == []

    real_hub.clear_log()
    with qtbot.waitSignal(w.modelReady, timeout=60000) as ready:
        dlg.trigger("load", model_id)
    dlg.close()
    assert ready.args[0].spec == model_id and w.models.model.family == family
    path, text = mask_two_and_fill(w, qtbot, tmp_path, steps=4)
    filled = w.infill.current.result
    assert filled.text != text and all(s.end > s.start for s in filled.spans)
    check_accept_undo_save(w, path, text)
    assert real_hub.log == [], "loading and filling ask the Hub nothing"
