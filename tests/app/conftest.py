"""App test fixtures: isolated settings and state folders, strict Qt logging."""
from __future__ import annotations

import os
import sys

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/app" in str(item.fspath).replace("\\", "/") and "/models/" not in str(item.fspath):
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            # the offscreen platform plugin lacks window-manager features and says so
            item.add_marker(pytest.mark.qt_log_ignore("This plugin does not support"))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    cfg = tmp_path / "config"
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(cfg))
    monkeypatch.setenv("LACUNA_STATE_DIR", str(tmp_path / "state"))
    # the first-run card times the starter and records the machine's speed: never in the user's own folder
    if not os.environ.get("LACUNA_DATA_DIR", "").startswith(str(tmp_path.parent.parent)):
        monkeypatch.setenv("LACUNA_DATA_DIR", str(tmp_path / "lacuna-data"))
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    yield
    if "torch" in sys.modules:  # the window leaves a core to the GUI; give it back to other tests
        torch = sys.modules["torch"]
        torch.set_num_threads(threads or (os.cpu_count() or 1))


def close_window(w) -> None:
    w.editor.document().setModified(False)
    w.close()


@pytest.fixture
def make_window(qtbot):
    """Build windows with injectable stream/loader; closes them (threads joined) after."""
    from lacuna.app.main import build_window

    made = []

    def make(stream=None, loader=None, show=True, **kw):
        from tests.app.fakes import fake_loader, make_stream

        w = build_window(stream=stream or make_stream(), loader=loader or fake_loader, autoload=False, **kw)
        qtbot.addWidget(w, before_close_func=lambda w: w.editor.document().setModified(False))
        if show:
            w.show()
            qtbot.waitExposed(w)
        made.append(w)
        return w

    yield make
    for w in made:
        if w.engine_thread.isRunning():
            close_window(w)


@pytest.fixture
def window(make_window, qtbot):
    """A window with the fake model loaded."""
    w = make_window()
    with qtbot.waitSignal(w.modelReady, timeout=5000):
        w.models.load_model("fake")
    return w


def set_text_and_masks(w, text: str, words: list[str]):
    """Put ``text`` in the editor and mask each word of ``words`` (first occurrence)."""
    w.editor.setPlainText(text)
    for word in words:
        i = text.index(word)
        w.editor.add_mask(i, i + len(word))  # masksChanged updates the actions
