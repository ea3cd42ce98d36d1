"""The first-run card (issue 21): it says what the starter is for, recommends a model for this
machine with its download size, verdict and expected seconds per fill, is shown once, comes back
from Help, and its buttons lead to the model manager. The advice is computed by an injected
advisor on fake devices, so the test does not depend on this machine."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from lacuna.app import first_run
from lacuna.app.settings import first_run_done
from lacuna.engine.hub import advice, catalog, fit

GIB = 1 << 30


def _laptop() -> fit.Device:
    return fit.Device("cpu", 0, "A 2-core laptop", 16 * GIB, 12 * GIB, True)


def _rate(model_id: str, seconds: float) -> float:
    entry = catalog.catalog_entry(model_id)
    return advice.fill_seconds(entry, 1.0, advice.TYPICAL, "bf16", _laptop()) / seconds


@pytest.fixture(scope="module")
def mdlm_advice():
    return advice.recommend([_laptop()], _rate("mdlm-owt", 12))


@pytest.fixture(scope="module")
def starter_advice():
    return advice.recommend([_laptop()], _rate("mdlm-owt", 120))


def show(window, qtbot, result):
    """The card over ``window`` with ``result`` as the advice, once it is shown."""
    card = first_run.FirstRunCard(window, advisor=lambda: result)
    qtbot.addWidget(card)
    if card.advice is None:
        with qtbot.waitSignal(card.adviceShown, timeout=10_000):
            card.show()
    return card


def test_the_card_says_what_the_starter_is_and_recommends_a_model_with_its_size_verdict_and_speed(
        window, qtbot, mdlm_advice, tmp_path):
    assert mdlm_advice.id == "mdlm-owt"
    card = show(window, qtbot, mdlm_advice)
    starter = card.starter_label.text()
    assert "4.9M-parameter demonstration" in starter and "rarely the right ones" in starter
    text = card.advice_label.text()
    assert "Recommended for this machine: MDLM (OpenWebText)" in text
    assert "Download 679 MB" in text                                   # the size
    assert "fits in bf16 on this machine (needs " in text              # the verdict
    assert "about 12 s per fill of a sentence (estimated)" in text     # the speed
    assert card.download_button.isEnabled() and card.download_button.text() == "Download MDLM (OpenWebText)"
    assert card.keep_button.text() == "Keep the starter"
    for label in (card.starter_label, card.advice_label):  # the card grew with its text, none clipped
        assert label.height() >= label.heightForWidth(label.width())
    folder = Path(os.environ.get("LACUNA_SCREENSHOT_DIR") or tmp_path)
    assert card.grab().save(str(folder / "first-run.png"))


def test_when_nothing_is_fast_enough_the_card_says_so_and_offers_the_quickest_writer(window, qtbot,
                                                                                    starter_advice):
    assert starter_advice.bundled and starter_advice.alternative.id == "mdlm-owt"
    card = show(window, qtbot, starter_advice)
    text = card.advice_label.text()
    assert "No model in the catalog fills a sentence within 30 s on this machine" in text
    assert "about 2 min per fill of a sentence (estimated)" in text and "Download 679 MB" in text
    assert card.download_button.text() == "Download MDLM (OpenWebText)"


def test_the_buttons_open_the_model_manager_on_the_model(window, qtbot, mdlm_advice, monkeypatch):
    calls = []
    monkeypatch.setattr(window.models, "open_model_manager", lambda **kw: calls.append(kw))
    card = show(window, qtbot, mdlm_advice)
    card.download_button.click()
    assert calls == [{"select": "mdlm-owt", "download": True}] and not card.isVisible()
    card = show(window, qtbot, mdlm_advice)
    card.manager_button.click()
    assert calls[-1] == {"select": "mdlm-owt"} and not card.isVisible()
    card = show(window, qtbot, mdlm_advice)
    card.keep_button.click()
    assert len(calls) == 2 and not card.isVisible()


def test_shown_once_then_from_help(window, qtbot, mdlm_advice, monkeypatch):
    monkeypatch.setattr(first_run, "default_advisor", lambda: mdlm_advice)
    assert not first_run_done(window.s)
    card = first_run.maybe_show(window)
    assert card is not None and card.isVisible() and first_run_done(window.s)
    with qtbot.waitSignal(card.adviceShown, timeout=10_000, raising=False):
        pass
    card.reject()
    assert first_run.maybe_show(window) is None
    action = window.findChild(type(window.model_manager_action), "firstRunAction")
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text().replace("&", "") == "Help")
    assert action in help_menu.actions()
    action.trigger()
    assert window.first_run_card.isVisible()
    window.first_run_card.reject()


def test_the_advice_waits_for_the_model_the_user_is_loading(make_window, qtbot, mdlm_advice):
    w = make_window()
    asked = threading.Event()

    def advisor():
        asked.set()
        return mdlm_advice

    w.models.loading_spec = "fake"  # as while the window's model loads
    card = first_run.FirstRunCard(w, advisor=advisor)
    qtbot.addWidget(card)
    assert not asked.wait(0.2)
    with qtbot.waitSignal(card.adviceShown, timeout=10_000):
        w.models.load_model("fake")
    assert asked.is_set() and card.advice is mdlm_advice


def test_a_failing_advisor_is_one_sentence(window, qtbot):
    def advisor():
        raise OSError("the starter is missing")

    card = first_run.FirstRunCard(window, advisor=advisor)
    qtbot.addWidget(card)
    with qtbot.waitSignal(card.adviceShown, timeout=10_000):
        card.show()
    assert "Could not size up this machine (the starter is missing)" in card.advice_label.text()
    assert not card.download_button.isEnabled()
