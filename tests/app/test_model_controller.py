"""The model controller's links to the Model manager and the start-up housekeeping."""
from __future__ import annotations

import threading

import pytest


@pytest.fixture
def listing(monkeypatch):
    """What the picker's listing finds on disk, set by the test."""
    import lacuna.app.workers.model as model_worker

    class Listing(list):
        calls = 0  # counted after the copy: once it moves, that listing no longer sees later changes

    found = Listing()

    def list_local_models():
        copy = list(found)
        found.calls += 1
        return copy

    monkeypatch.setattr(model_worker, "list_local_models", list_local_models)
    return found


def test_picker_refreshes_when_a_download_finishes_after_the_dialog_closed(window, qtbot, listing):
    from lacuna.app.models import ModelManager, Outcome

    window.model_manager_action.trigger()
    dlg = window.models.manager_dialog
    before = listing.calls
    dlg.close()  # closing refreshes the picker too: let that listing pass before a download "finishes"
    qtbot.waitUntil(lambda: listing.calls > before)
    assert not dlg.isVisible() and window.model_picker.findData("org/fresh-model") < 0

    listing.append(("org/fresh-model", "org/fresh-model"))
    ModelManager.instance().jobFinished.emit(Outcome("org/fresh-model", "installed"))
    qtbot.waitUntil(lambda: window.model_picker.findData("org/fresh-model") >= 0)
    picker = window.model_picker
    assert picker.itemData(picker.count() - 1) == "__open_folder__"  # still last


def test_load_in_the_dialog_loads_the_model_once(window, qtbot):
    window.model_manager_action.trigger()
    dlg = window.models.manager_dialog
    asked: list[str] = []
    window.models._load_requested.connect(asked.append)
    with qtbot.waitSignal(window.modelReady) as sig:
        dlg.trigger("load", "org/chosen")
    assert asked == ["org/chosen"] and sig.args[0].spec == "org/chosen"
    window.model_manager_action.trigger()  # opening it again shows the same window
    assert window.models.manager_dialog is dlg and dlg.isVisible()
    dlg.close()


def test_startup_cleans_stale_partials_off_the_gui_thread_and_ignores_errors(qtbot, monkeypatch):
    import lacuna.engine.hub.cache
    from lacuna import engine

    from lacuna.app.main import build_window
    from tests.app.conftest import close_window
    from tests.app.fakes import fake_loader, make_stream

    threads: list[int] = []

    def clean(*a, **k):
        threads.append(threading.get_ident())
        raise OSError("the cache is not readable")

    monkeypatch.setattr(engine.hub.cache, "clean_stale_partials", clean)
    w = build_window(stream=make_stream(), loader=fake_loader, autoload=True)
    qtbot.addWidget(w, before_close_func=lambda w: w.editor.document().setModified(False))
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.show()
    qtbot.waitUntil(lambda: bool(threads))
    assert threads == [threads[0]] and threads[0] != threading.get_ident()
    assert not w.banner.isVisible()
    close_window(w)
    assert not w.engine_thread.isRunning()
