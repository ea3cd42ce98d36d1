"""The main window: puts the widgets, the engine thread and the three controllers together.

The controllers (window.files, window.infill, window.models) hold the behaviour
and each keeps its own actions enabled as they should be: the window holds the
idle/running/preview state and emits ``stateChanged`` when it changes (as
Frescobaldi's plugins follow their main window), and keeps only the edit
actions, the hint and the state label itself.
"""
from __future__ import annotations

import logging
import os

from PySide6.QtCore import QThread, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow

from . import first_run
from .actions import build_actions
from .file_controller import FileController
from .infill_controller import InfillController
from .layout import build_layout
from .model_controller import ModelController
from .settings import RunSettings, qsettings
from .workers import InfillWorker, ModelWorker

log = logging.getLogger(__name__)


def _torch_threads() -> int:
    # Leave one core to the GUI: torch's intra-op threads spin at barriers, so with
    # every core given to torch, any other work (the window, another process) stalls
    # each parallel region. Measured on 2 cores (benchmarks/bench_live_view.py): one
    # thread ran an infill of the first starter in ~0.75 s, two threads beside a busy
    # process in ~60 s. LACUNA_TORCH_THREADS overrides it.
    env = os.environ.get("LACUNA_TORCH_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 2) - 1)


class MainWindow(QMainWindow):
    # emitted on the GUI thread, for tests and automation
    runStarted = Signal()
    runFinished = Signal()  # every candidate of the batch is done; preview shown
    runStopped = Signal()
    runFailed = Signal(str)
    workerCancelled = Signal()  # the worker has returned from a stopped run
    modelReady = Signal(object)  # ModelInfo
    modelFailed = Signal(str)
    frameRendered = Signal()
    stateChanged = Signal(str)  # idle | running | preview; the controllers' actions follow it

    def __init__(self, stream=None, loader=None, autoload: bool = True, state_dir=None) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.resize(1240, 780)
        self.s = qsettings()
        self.run_settings = RunSettings.load(self.s)
        self.state = "idle"  # idle | running | preview (| finished, for the moment a batch ends)

        build_layout(self)
        self._start_engine_thread(stream, loader)
        self.files = FileController(self, state_dir)
        self.infill = InfillController(self, self.infill_worker)
        self.models = ModelController(self, self.model_worker)
        build_actions(self)
        self.models.label_starter()
        first_run.install(self)
        self._connect()
        self.files.update_title()
        self.refresh_actions()
        geometry, layout = self.s.value("window/geometry"), self.s.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if layout is not None:
            self.restoreState(layout)
        if autoload:
            QTimer.singleShot(0, self.models.startup)
            QTimer.singleShot(0, lambda: first_run.maybe_show(self))

    def _start_engine_thread(self, stream, loader) -> None:
        self.engine_thread = QThread(self)
        self.engine_thread.setObjectName("engineThread")
        self.model_worker = ModelWorker(loader=loader, threads=_torch_threads())
        self.infill_worker = InfillWorker(stream=stream)
        for worker in (self.model_worker, self.infill_worker):
            worker.moveToThread(self.engine_thread)
            self.engine_thread.finished.connect(worker.deleteLater)
        self.engine_thread.start()

    def _connect(self) -> None:
        # the controllers connect their own widgets and follow stateChanged (see their __init__)
        doc = self.editor.document()
        doc.undoAvailable.connect(lambda ok: self.undo_action.setEnabled(ok and self.state == "idle"))
        doc.redoAvailable.connect(lambda ok: self.redo_action.setEnabled(ok and self.state == "idle"))
        self.stateChanged.connect(self._update_own_actions)
        self.stateChanged.connect(lambda _state: self._update_hint())  # a new model can change it too
        self.editor.masksChanged.connect(self._update_hint)
        self.models.loadingChanged.connect(self._update_state_label)
        self.settings_panel.changed.connect(self._on_settings_changed)
        self._banner_callback = None
        self.banner_action.clicked.connect(self._on_banner_action)
        self.modelReady.connect(lambda info: self.settings_panel.set_context_length(info.context_length))

    def shutdown(self) -> None:
        """Stop the run, end the engine thread (quit + wait; never terminate)."""
        self.infill.shutdown()
        self.models.abandon_loads()
        self.files.autosave_timer.stop()
        if self.engine_thread.isRunning():
            self.engine_thread.quit()
            self.engine_thread.wait()

    # ---------------------------------------------------------------- state
    def set_state(self, state: str) -> None:
        """Enter ``state`` (idle, running or preview): the view that shows it, then stateChanged."""
        self.state = state
        self.editor.setReadOnly(state != "idle")
        self.stack.setCurrentWidget(self.editor if state == "idle" else self.preview)
        if state == "idle":
            self.editor.setFocus()
        else:
            self.preview.setFocus()
        if state != "preview":  # the timeline replays a finished run shown in the preview only
            self.panel.slider.setEnabled(False)
            self.panel.chart.set_cursor(None)
        self.stateChanged.emit(state)

    def refresh_actions(self) -> None:
        """Every action follows the state again (something else they depend on changed)."""
        self.stateChanged.emit(self.state)

    def _update_own_actions(self, state: str) -> None:
        idle = state == "idle"
        for a in (self.cut_action, self.paste_action, self.replace_action):
            a.setEnabled(idle)
        doc = self.editor.document()
        self.undo_action.setEnabled(idle and doc.isUndoAvailable())
        self.redo_action.setEnabled(idle and doc.isRedoAvailable())
        self._update_hint()
        self._update_state_label()

    def _update_hint(self) -> None:
        if self.state == "running":
            text = "Filling the masks… watch the tokens resolve. <b>Esc</b> stops and restores the text."
        elif self.state == "preview":
            text = ("Preview: <b>Enter</b> keeps it (one undo step) · <b>Esc</b> discards it · "
                    "<b>Ctrl+R</b> samples again · click a candidate, drag the timeline")
        elif not self.editor.masks:
            text = ("Select text and press <b>Ctrl+M</b> to mask it (no selection: a mask at the cursor), "
                    "then <b>Ctrl+Enter</b> to fill the masks")
        else:
            n = len(self.editor.masks)
            text = (f"{n} mask{'s' if n != 1 else ''}: <b>Ctrl+Enter</b> fills {'them' if n != 1 else 'it'} · "
                    "double-click a mask to set its length and strength")
            if self.infill.refusal is None:  # an Instruct model is loaded
                text += " · <b>Ctrl+Shift+M</b> fills under an instruction"
        self.hint.setText(text)

    def _update_state_label(self) -> None:
        batch, current = self.infill.batch, self.infill.current
        if self.state == "running" and current is not None:
            n = len(batch)
            k = batch.index(current) + 1 if current in batch else 1
            self.state_label.setText(f"Running{f' {k}/{n}' if n > 1 else ''}")
        elif self.state == "preview":
            self.state_label.setText("Preview")
        elif self.models.loading_spec:
            self.state_label.setText("Loading model")
        else:
            self.state_label.setText("Idle")

    def _on_settings_changed(self, s: RunSettings) -> None:
        self.run_settings = s

    def show_error(self, message: str, action: tuple[str, object] | None = None) -> None:
        """Every error ends here: a readable banner above the text (non-modal).
        ``action``: (button text, callable) that the banner offers as a way out."""
        log.warning("%s", message)
        self.banner_label.setText(message)
        self._banner_callback = action[1] if action else None
        self.banner_action.setText(action[0] if action else "")
        self.banner_action.setVisible(action is not None)
        self.banner.show()
        self.statusBar().showMessage(message.split("\n")[0], 8000)

    def _on_banner_action(self) -> None:
        callback, self._banner_callback = self._banner_callback, None
        self.banner.hide()
        if callback is not None:
            callback()

    def copy(self) -> None:
        (self.preview if self.stack.currentWidget() is self.preview else self.editor).copy()

    # ----------------------------------------------------------------- close
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.files.loading:  # closed while a large file goes in: stop that, then close
            self.files.cancel_load()
            QTimer.singleShot(0, self.close)
            event.ignore()
            return
        self.infill.leave_run()
        if not self.files.confirm_discard():
            event.ignore()
            return
        self.files.store.close()
        self.s.setValue("window/geometry", self.saveGeometry())
        self.s.setValue("window/state", self.saveState())
        self.shutdown()
        event.accept()

