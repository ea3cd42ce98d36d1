"""Issue 14's seams: the insertion length follows the model's context, and the
insertion popup shows only what an insertion has."""
from __future__ import annotations

from hypothesis import given, settings as hsettings, strategies as st

from app.settings import max_mask_length
from tests.app.conftest import set_text_and_masks
from tests.app.fakes import FakeModel

TEXT = "The old man stood by the door and looked out at the rain.\n"


def _loader_with_context(contexts: dict[str, int]):
    def load(spec: str):
        m = FakeModel()
        m.context_length = contexts[spec]
        m.name = spec
        return m
    return load


def test_insertion_length_is_bounded_by_the_model_context_and_follows_it(make_window, qtbot):
    w = make_window(loader=_loader_with_context({"short": 256, "long": 2048}))
    spin = w.settings_panel.insertion
    spin.setValue(256)  # chosen before any model is known
    assert w.run_settings.insertion_length == 256
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.load_model("short")
    assert spin.maximum() == 192 < 256  # a 256-token model keeps room for the context around it
    assert spin.value() == 192 and w.run_settings.insertion_length == 192
    w.editor.setPlainText(TEXT)
    w.editor.setTextCursor(w.editor.textCursor())
    w.mask_selection()
    assert w.editor.masks[0].length == 192
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.load_model("long")
    assert spin.maximum() == max_mask_length(2048) == 1536
    assert spin.value() == 256 and w.run_settings.insertion_length == 256  # the user's choice comes back
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.load_model("short")
    spin.setValue(100)  # a choice within the bound is the new choice
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.load_model("long")
    assert spin.value() == 100


def test_insertion_popup_is_bounded_and_hides_strength(make_window, qtbot):
    w = make_window(loader=_loader_with_context({"short": 256}))
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.load_model("short")
    w.editor.setPlainText(TEXT)
    ins = w.editor.add_mask(10, 10, length=8)
    popup = w.edit_mask(ins)
    assert popup.isVisible()
    assert popup.length.maximum() == 192
    popup.length.setValue(500)
    assert ins.length == 192
    assert not popup.strength.isVisible() and not popup.strength_label.isVisible()
    popup.close()
    set_text_and_masks(w, TEXT, ["door"])
    popup = w.edit_mask(w.editor.masks[0])
    assert popup.strength.isVisible()  # a range mask can be a partial edit
    assert popup.length.maximum() == 192
    popup.close()


@hsettings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=1 << 20))
def test_max_mask_length_leaves_room_for_context(n):
    m = max_mask_length(n)
    assert 1 <= m <= 4096
    if n > 32:
        assert m <= n - 16 and n - m >= n // 4 or m == 4096


# ---- model loads report progress in the status bar, not on stderr -------------------------
def test_load_progress_shows_in_the_status_bar(make_window, qtbot):
    def slow_loader(spec, progress=None):
        for k in range(5):
            progress("Loading weights", k, 4)
        return FakeModel()

    w = make_window(loader=slow_loader)
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.load_model("slow")
    assert "Loading slow: loading weights 2/4 (50%)" in messages
    assert messages.index("Loading slow: loading weights 4/4 (100%)") < len(messages) - 1  # then "Loaded …"
    assert w.statusBar().currentMessage().startswith("Loaded fake-model")


def test_real_load_reports_in_the_status_bar_and_draws_nothing_on_stderr(make_window, qtbot, tiny_model_dir, capfd):
    from engine import load_model

    w = make_window(loader=load_model)
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    capfd.readouterr()
    with qtbot.waitSignal(w.modelReady, timeout=30000):
        w.load_model(str(tiny_model_dir))
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err, err
    name = tiny_model_dir.name
    assert any(m.startswith(f"Loading {name}: loading weights") and m.endswith("(100%)") for m in messages), messages
    assert f"Loading {name}: reading the tokenizer…" in messages


def test_a_stale_load_does_not_report(make_window, qtbot):
    import threading

    go = threading.Event()

    def loader(spec, progress=None):
        if spec == "old":
            go.wait(5)
            progress("Loading weights", 1, 2)
        return FakeModel()

    w = make_window(loader=loader)
    messages = []
    w.statusBar().messageChanged.connect(messages.append)
    w.load_model("old")
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.load_model("new")
    go.set()
    qtbot.waitUntil(lambda: not w.models._loads, timeout=5000)
    assert not any(m.startswith("Loading old") for m in messages)
