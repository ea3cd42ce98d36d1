"""The main window: puts the widgets, the engine thread and the three controllers together.

The controllers (files, infill, models) hold the behaviour; the window keeps the
idle/running/preview state the actions follow, and the names tests and automation use.
"""
from __future__ import annotations

import logging
import os

from PySide6.QtCore import QThread, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QMainWindow, QMessageBox

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
    # each parallel region. Measured on 2 cores (tests/app/bench_live_view.py): one
    # thread ran an infill of the first starter in ~0.75 s, two threads beside a busy
    # process in ~60 s. LACUNA_TORCH_THREADS overrides it.
    env = os.environ.get("LACUNA_TORCH_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 2) - 1)


def _forward(controller: str, name: str) -> property:
    """A read-only window attribute that is the controller's, under the name it has always had."""
    return property(lambda self: getattr(getattr(self, controller), name), doc=f"self.{controller}.{name}")


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
        self._update_title()
        self._update_actions()
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
        doc = self.editor.document()
        doc.modificationChanged.connect(self._update_title)
        doc.undoAvailable.connect(lambda ok: self.undo_action.setEnabled(ok and self.state == "idle"))
        doc.redoAvailable.connect(lambda ok: self.redo_action.setEnabled(ok and self.state == "idle"))
        self.editor.masksChanged.connect(self._update_actions)
        self.editor.maskEditRequested.connect(self.infill.edit_mask)
        self.settings_panel.changed.connect(self._on_settings_changed)
        self.candidates_list.itemClicked.connect(self.infill.on_candidate_clicked)
        self.candidates_list.currentRowChanged.connect(lambda _: self._update_actions())
        self.reuse_seed_button.clicked.connect(self.infill.reuse_seed)
        self.panel.stepRequested.connect(self.infill.on_timeline)
        self.panel.exportRequested.connect(lambda: self.infill.export_run())
        self.model_picker.activated.connect(self.models.on_picker_activated)
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

    # ------------------------------------------------- the names tests use
    path = _forward("files", "path")
    fmt = _forward("files", "fmt")
    store = _forward("files", "store")
    _autosave_timer = _forward("files", "autosave_timer")
    new_file = _forward("files", "new_file")
    open_dialog = _forward("files", "open_dialog")
    open_path = _forward("files", "open_path")
    save = _forward("files", "save")
    save_as = _forward("files", "save_as")
    save_to = _forward("files", "save_to")
    autosave_now = _forward("files", "autosave_now")
    restore = _forward("files", "restore")
    offer_recovery = _forward("files", "offer_recovery")
    reload = _forward("files", "reload")
    reopen_with_encoding = _forward("files", "reopen_with_encoding")

    frames = _forward("infill", "frames")
    _batch = _forward("infill", "batch")
    _current = _forward("infill", "current")
    _candidates = _forward("infill", "candidates")
    _render_frame = _forward("infill", "render_frame")
    mask_selection = _forward("infill", "mask_selection")
    clear_masks = _forward("infill", "clear_masks")
    token_count = _forward("infill", "token_count")
    edit_mask = _forward("infill", "edit_mask")
    start_infill = _forward("infill", "start")
    stop = _forward("infill", "stop")
    show_candidate = _forward("infill", "show_candidate")
    reuse_seed = _forward("infill", "reuse_seed")
    accept = _forward("infill", "accept")
    reject = _forward("infill", "reject")

    model = _forward("models", "model")
    model_info = _forward("models", "model_info")
    model_spec = _forward("models", "model_spec")
    _model_manager = _forward("models", "manager_dialog")
    _on_models_listed = _forward("models", "on_models_listed")
    load_model = _forward("models", "load_model")
    choose_model_folder = _forward("models", "choose_model_folder")
    open_model_manager = _forward("models", "open_model_manager")

    def ask_save_changes(self, name: str) -> QMessageBox.StandardButton:
        # a method of the window, not a forward: tests replace it here to answer the question
        return self.files.ask_save_changes(name)

    def ask_file_conflict(self, name: str, kind: str) -> str:
        # like ask_save_changes: "reload", "overwrite", "save_as" or "cancel"
        return self.files.ask_file_conflict(name, kind)

    def ask_recovery(self, rec, k: int, n: int) -> str:
        # like ask_save_changes: "restore", "discard" or "later"
        return self.files.ask_recovery(rec, k, n)

    # ---------------------------------------------------------------- state
    def _set_state(self, state: str) -> None:
        self.state = state
        running = state == "running"
        self.editor.setReadOnly(state != "idle")
        self.stack.setCurrentWidget(self.editor if state == "idle" else self.preview)
        if state == "idle":
            self.editor.setFocus()
        else:
            self.preview.setFocus()
        self.model_picker.setEnabled(not running)
        if state != "preview":  # the timeline replays a finished run shown in the preview only
            self.panel.slider.setEnabled(False)
            self.panel.chart.set_cursor(None)
        self._update_actions()

    def _update_actions(self) -> None:
        idle, running, preview = self.state == "idle", self.state == "running", self.state == "preview"
        has_masks = bool(self.editor.masks)
        current = self.infill.current
        self.mask_action.setEnabled(idle)
        self.clear_masks_action.setEnabled(idle and has_masks)
        self.infill_action.setEnabled((idle or preview) and has_masks)
        self.stop_action.setEnabled(running)
        self.accept_action.setEnabled(preview and current is not None and current.result is not None)
        self.reject_action.setEnabled(preview)
        self.regenerate_action.setEnabled((idle or preview) and has_masks)
        for a in (self.cut_action, self.paste_action, self.new_action, self.open_action, self.replace_action,
                  self.reopen_encoding_action):
            a.setEnabled(idle)
        doc = self.editor.document()
        self.undo_action.setEnabled(idle and doc.isUndoAvailable())
        self.redo_action.setEnabled(idle and doc.isRedoAvailable())
        self.reuse_seed_button.setEnabled(self.candidates_list.currentRow() >= 0)
        self.tint_action.setEnabled(not running)
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

    def _update_title(self, *_: object) -> None:
        self.setWindowTitle(f"{self.files.display_name}[*] — Lacuna")
        self.setWindowModified(self.editor.document().isModified())

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

    def ask_encoding(self, name: str, current: str | None) -> str | None:
        # like ask_save_changes: a codec of app.fileio.ENCODINGS, or None
        return self.files.ask_encoding(name, current)

    def copy(self) -> None:
        (self.preview if self.stack.currentWidget() is self.preview else self.editor).copy()

    # ----------------------------------------------------------------- close
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self.infill.leave_run()
        if not self.files.confirm_discard():
            event.ignore()
            return
        self.files.store.close()
        self.s.setValue("window/geometry", self.saveGeometry())
        self.s.setValue("window/state", self.saveState())
        self.shutdown()
        event.accept()

