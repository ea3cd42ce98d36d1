"""The first-run card: what the bundled starter is for, and the model that suits this machine.

Shown once, at the first start (a settings flag, app.settings.first_run_done), and again from
Help ▸ Choose a Model for This Machine…. The recommendation (engine.hub.advice.recommend: the
largest catalog model that fits this machine and fills a sentence within 30 s, with its download
size, verdict and expected seconds per fill) is computed on a worker thread once the window's
model has loaded, since the first time ever it times the starter to measure this machine's speed.
"""
from __future__ import annotations

import logging
import traceback
from html import escape
from typing import Any, Callable

from PySide6.QtCore import QEvent, QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QLayout, QPushButton, QVBoxLayout, QWidget

from .settings import first_run_done, mark_first_run_done

log = logging.getLogger(__name__)

CARD_WIDTH = 640  # pixels of text
# Held-out single words the starter restores: 18.9% of 1,000 (resources/models/starter/MODEL_CARD.md).
STARTER_RESTORES = "about one held-out word in five"


def starter_text(parameters: int | None) -> str:
    """One or two plain sentences on what the starter is for."""
    from lacuna.engine.hub.fmt import human_count

    size = f"a {human_count(parameters)}-parameter demonstration" if parameters else "a small demonstration"
    return (f"The model Lacuna starts with is {size}, bundled so the editor works at once and offline: it shows "
            f"how a diffusion model fills masks step by step, but its words are rarely the right ones (it restores "
            f"{STARTER_RESTORES}). For fills that read well, use a larger model.")


def advice_html(advice: Any) -> str:
    """The recommendation as the card shows it (rich text)."""
    from lacuna.engine.hub.advice import PRECISION_LABEL, seconds_text, size_text

    if advice is None:
        return "No model in the catalog fits this machine's memory; the starter is all it can run."

    def facts(option: Any) -> str:
        if option.device == "cpu":
            where = "this machine"
        elif option.device_name.endswith(" GB card"):
            where = option.device_name
        else:
            where = f"{option.device} ({option.device_name})"
        parts = [f"Download {size_text(option.size, option.size_estimated)}",
                 f"{option.verdict} in {PRECISION_LABEL.get(option.precision, option.precision)} on {where} "
                 f"(needs {_bytes(option.need)})"]
        parts.append(f"about {seconds_text(option.seconds)} per fill of a sentence (estimated)"
                     if option.seconds is not None else "its speed on a GPU is not measured here")
        text = " · ".join(escape(p) for p in parts)
        if option.note:
            text += f"<br><i>{escape(option.note)}</i>"
        return text

    description = escape(str(advice.entry.get("description") or ""))
    if not advice.bundled:
        return (f"<b>Recommended for this machine: {escape(advice.name)}</b><br>{description}<br>{facts(advice)}"
                f"<br><small>{escape(advice.reason)}</small>")
    alt = advice.alternative
    if alt is None:
        return f"<b>{escape(advice.reason)}</b>"
    return (f"<b>No model in the catalog fills a sentence within {advice.max_seconds:g} s on this machine.</b><br>"
            f"The quickest that writes real text here is <b>{escape(alt.name)}</b>: "
            f"{escape(str(alt.entry.get('description') or ''))}<br>{facts(alt)}<br>"
            f"Keep the starter to try the editor, or download {escape(alt.name)} and expect to wait for each fill.")


def _bytes(n: int) -> str:
    from lacuna.engine.hub.fmt import human_bytes

    return human_bytes(n)


def default_advisor() -> Any:
    """lacuna.engine.hub.advice.recommend for this machine (imports torch the first time: a worker thread only)."""
    from lacuna.engine.hub import advice, fit

    return advice.recommend(fit.detect_devices(), advice.machine_rate())


class _AdviceWorker(QObject):
    done = Signal(object)  # Advice, or None; (None, message) when it failed

    def __init__(self, advisor: Callable[[], Any]) -> None:
        super().__init__()
        self._advisor = advisor

    @Slot()
    def run(self) -> None:
        try:
            self.done.emit(self._advisor())
        except Exception as err:  # noqa: BLE001 - the card says so instead
            log.error("model advice failed:\n%s", traceback.format_exc())
            self.done.emit((None, str(err)))


class FirstRunCard(QDialog):
    """``FirstRunCard(window, advisor=None)``: the card, non-modal over ``window`` (the main window).

    ``advisor()`` returns the engine.hub.advice.Advice to show (default: this machine's); it runs on
    a worker thread once ``window``'s model has loaded. ``adviceShown`` is emitted when it is shown."""

    adviceShown = Signal(object)

    def __init__(self, window: QWidget, advisor: Callable[[], Any] | None = None) -> None:
        super().__init__(window)
        self.setObjectName("firstRunCard")
        self.setWindowTitle("Welcome to Lacuna")
        self.window_ = window
        self.advice: Any = None
        self._advisor = advisor or default_advisor
        self._thread: QThread | None = None
        self._worker: _AdviceWorker | None = None

        self.starter_label = QLabel(starter_text(_starter_parameters()), self, objectName="starterLabel")
        self.starter_label.setWordWrap(True)
        self.advice_label = QLabel("Measuring this machine to find the model that suits it…", self,
                                   objectName="adviceLabel")
        self.advice_label.setWordWrap(True)
        self.advice_label.setTextFormat(Qt.TextFormat.RichText)
        self.manager_button = QPushButton("Open the model manager", self, objectName="openManagerButton")
        self.download_button = QPushButton("Download a model", self, objectName="downloadButton")
        self.download_button.setEnabled(False)
        self.keep_button = QPushButton("Keep the starter", self, objectName="keepStarterButton")
        self.manager_button.clicked.connect(self.open_manager)
        self.download_button.clicked.connect(self.download)
        self.keep_button.clicked.connect(self.reject)

        buttons = QHBoxLayout()
        buttons.addWidget(self.manager_button)
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.keep_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.starter_label)
        layout.addSpacing(8)
        layout.addWidget(self.advice_label)
        layout.addStretch(1)
        layout.addLayout(buttons)
        # word-wrapped labels report their height for a width: a fixed width and a layout that
        # keeps the dialog at least its contents' size let the text grow the card, not be clipped
        for label in (self.starter_label, self.advice_label):
            label.setMinimumWidth(CARD_WIDTH)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetMinimumSize)
        self.finished.connect(lambda _: self._join())
        window.installEventFilter(self)  # the window closing joins the worker before the card goes with it

        models = getattr(window, "models", None)
        if models is not None and getattr(models, "loading_spec", None):
            # the model the user waits for comes first; then the starter may be timed alone
            window.modelReady.connect(self._start_once)
            window.modelFailed.connect(self._start_once)
        else:
            self._start_once()

    # the advice ------------------------------------------------------------
    def target(self) -> Any:
        """The model the Download button fetches: the advice, or the quickest writer when it is the starter."""
        if self.advice is None:
            return None
        return self.advice.alternative if self.advice.bundled else self.advice

    def _start_once(self, *_: Any) -> None:
        if self._thread is not None:
            return
        self._thread = QThread(self)
        self._thread.setObjectName("lacuna-first-run-advice")
        self._worker = _AdviceWorker(self._advisor)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.done.connect(self._thread.quit)
        self._worker.done.connect(self._show_advice)
        self._thread.start()

    @Slot(object)
    def _show_advice(self, advice: Any) -> None:
        if isinstance(advice, tuple):
            self.advice_label.setText(f"Could not size up this machine ({escape(advice[1])}); "
                                      "the model manager lists every model with its verdicts.")
            self.layout().activate()
            self.adjustSize()
            self.adviceShown.emit(None)
            return
        self.advice = advice
        self.advice_label.setText(advice_html(advice))
        target = self.target()
        if target is not None:
            installed = _installed(target.id)
            self.download_button.setText(f"{'Load' if installed else 'Download'} {target.name}")
            self.download_button.setEnabled(True)
        self.layout().activate()
        self.adjustSize()
        self.adviceShown.emit(advice)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        if watched is self.window_ and event.type() == QEvent.Type.Close:
            self._join()
        return False

    def _join(self) -> None:
        if self._thread is not None and self._thread.isRunning():
            self._thread.quit()
            self._thread.wait()

    # the buttons -----------------------------------------------------------
    def open_manager(self) -> None:
        target = self.target()
        self.window_.models.open_model_manager(select=target.id if target is not None else None)
        self.accept()

    def download(self) -> None:
        target = self.target()
        if target is None:
            return
        if _installed(target.id):
            self.window_.models.load_model(target.id)
        else:
            self.window_.models.open_model_manager(select=target.id, download=True)
        self.accept()


def _starter_parameters() -> int | None:
    try:
        from lacuna.engine.hub import fit

        shape = fit.shape_for("starter")
        return shape.parameters if shape is not None else None
    except Exception:  # noqa: BLE001 - the sentence reads well without the figure
        return None


def _installed(model_id: str) -> bool:
    try:
        from lacuna.engine.hub import local_snapshot

        return local_snapshot(model_id) is not None
    except Exception:  # noqa: BLE001
        return False


def show_card(window: Any, advisor: Callable[[], Any] | None = None) -> FirstRunCard:
    """Show the card over ``window`` (again, if it was shown before) and return it."""
    card = getattr(window, "first_run_card", None)
    if card is None or not card.isVisible():
        card = FirstRunCard(window, advisor)
        window.first_run_card = card
    mark_first_run_done(window.s)
    card.show()
    card.raise_()
    return card


def maybe_show(window: Any, advisor: Callable[[], Any] | None = None) -> FirstRunCard | None:
    """Show the card at the first start only."""
    if first_run_done(window.s):
        return None
    return show_card(window, advisor)


def install(window: Any) -> None:
    """Help ▸ Choose a Model for This Machine… (the card again)."""
    from .actions import make_action

    action = make_action(window, "&Choose a Model for This Machine…", "firstRunAction", lambda: show_card(window),
                         tip="What the starter is for, and the model that suits this machine")
    for menu_action in window.menuBar().actions():
        if menu_action.menu() is not None and menu_action.text().replace("&", "") == "Help":
            menu = menu_action.menu()
            first = menu.actions()[0] if menu.actions() else None
            if first is not None:
                menu.insertAction(first, action)
            else:
                menu.addAction(action)
            return
