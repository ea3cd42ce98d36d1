"""The main window: editor, live preview, denoising panel, candidates, settings."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from PySide6.QtCore import QMetaMethod, QPoint, Qt, QThread, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QTextCursor
from PySide6.QtWidgets import (
    QComboBox, QDockWidget, QFileDialog, QFrame, QHBoxLayout, QLabel,
    QListWidget, QListWidgetItem, QMainWindow, QMessageBox, QPushButton, QStackedWidget,
    QToolBar, QToolButton, QVBoxLayout, QWidget,
)

from . import autosave, fileio
from .editor import Editor, MaskPopup, PreviewView, document_text
from .findbar import FindBar
from .settings import RunSettings, SettingsPanel, qsettings
from .viz import DenoisePanel
from .workers import InfillWorker, ModelInfo, ModelWorker

log = logging.getLogger(__name__)

FRAME_MS = 66  # the live view redraws at most 15 times a second
CHART_MS = 200  # the chart and figures, a summary, at most 5 times a second
MAX_RECENT = 10
OPEN_FOLDER = "__open_folder__"
STARTER = "starter"


@dataclass
class Candidate:
    number: int
    request: object  # InfillRequest
    settings: RunSettings
    key: tuple  # (document revision, mask ranges) it was made from
    events: list = field(default_factory=list)
    result: object | None = None  # InfillResult

    @property
    def seed(self) -> int:
        return self.request.seed

    def label(self) -> str:
        r = self.result
        first = r.span_text(0).strip().replace("\n", " ") if r is not None and r.spans else ""
        if len(first) > 60:
            first = first[:57] + "…"
        extra = f"{r.nfe} NFE · {r.seconds:.1f} s" if r is not None else ""
        return f"#{self.number}  seed {self.seed}  ·  {self.settings.describe()}  ·  {extra}\n“{first}”"


class MainWindow(QMainWindow):
    _run_requested = Signal(int, object, object, object)
    _load_requested = Signal(str)
    _list_requested = Signal()

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
        self.path: str | None = None
        self.fmt = fileio.TextFormat()
        self.state = "idle"  # idle | running | preview
        self.model = None
        self.model_info: ModelInfo | None = None
        self.model_spec: str | None = None
        self._loading_spec: str | None = None
        self._pending_infill = False
        self._run_id = 0
        self._cancel: threading.Event | None = None
        self._batch: list[Candidate] = []
        self._current: Candidate | None = None  # running, or shown in preview
        self._candidates: list[Candidate] = []
        self._pending_event = None
        self._last_accept: list[tuple[int, int, float]] = []
        self._accept_revision = -1
        self._autosave_revision = -1
        self.frames = 0
        self.store = autosave.AutosaveStore(None if state_dir is None else Path(state_dir) / "autosave")

        self._build_ui()
        self._build_actions()
        self._start_engine_thread(stream, loader)
        self._connect()
        self._update_title()
        self._update_actions()
        geometry, layout = self.s.value("window/geometry"), self.s.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if layout is not None:
            self.restoreState(layout)

        self._frame_timer = QTimer(self)
        self._frame_timer.setSingleShot(True)
        self._last_frame = 0.0
        self._last_chart = 0.0
        self._frame_listeners = False
        self._frame_timer.timeout.connect(self._render_frame)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(autosave.INTERVAL_MS)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self._autosave_timer.start()
        if autoload:
            QTimer.singleShot(0, self._startup_load)

    # ------------------------------------------------------------------ UI
    def _build_ui(self) -> None:
        central = QWidget(self)
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.banner = QFrame(objectName="errorBanner")
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner.setStyleSheet("#errorBanner { background: #fde2e1; border-bottom: 1px solid #f5a3a0; }")
        bl = QHBoxLayout(self.banner)
        bl.setContentsMargins(10, 6, 6, 6)
        self.banner_label = QLabel(objectName="errorLabel", wordWrap=True)
        self.banner_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(text="✕", toolTip="Dismiss")
        close.clicked.connect(self.banner.hide)
        bl.addWidget(self.banner_label, 1)
        bl.addWidget(close)
        self.banner.hide()
        lay.addWidget(self.banner)
        self.hint = QLabel(objectName="hintLabel")  # one line: the text below must not jump
        self.hint.setStyleSheet("#hintLabel { background: #ede9fe; color: #4c1d95; padding: 5px 10px; }")
        lay.addWidget(self.hint)
        self.stack = QStackedWidget(objectName="editorStack")
        self.editor = Editor()
        self.preview = PreviewView()
        self.stack.addWidget(self.editor)
        self.stack.addWidget(self.preview)
        lay.addWidget(self.stack, 1)
        self.findbar = FindBar(self.editor)
        lay.addWidget(self.findbar)
        self.setCentralWidget(central)

        self.panel = DenoisePanel()
        self.denoise_dock = self._dock("Denoising", self.panel, "denoiseDock")
        cand = QWidget()
        cl = QVBoxLayout(cand)
        cl.setContentsMargins(4, 4, 4, 4)
        self.candidates_list = QListWidget(objectName="candidatesList")
        self.candidates_list.setWordWrap(True)
        self.candidates_list.setToolTip("Each sample with its seed and settings; click one to preview it in place")
        cl.addWidget(self.candidates_list, 1)
        row = QHBoxLayout()
        self.reuse_seed_button = QPushButton("Reuse seed", objectName="reuseSeedButton")
        self.reuse_seed_button.setToolTip("Fix the seed in the settings to this candidate's seed")
        row.addWidget(self.reuse_seed_button)
        row.addStretch(1)
        cl.addLayout(row)
        self.cand_dock = self._dock("Candidates", cand, "candidatesDock")
        self.settings_panel = SettingsPanel(self.run_settings)
        self.settings_dock = self._dock("Settings", self.settings_panel, "settingsDock")
        self.tabifyDockWidget(self.cand_dock, self.settings_dock)
        self.cand_dock.raise_()

        sb = self.statusBar()
        self.model_label = QLabel("Model: none", objectName="modelStatus")
        self.device_label = QLabel("", objectName="deviceStatus")
        self.state_label = QLabel("Idle", objectName="runStatus")
        self.format_label = QLabel("UTF-8 · LF", objectName="formatStatus")
        for w in (self.state_label, self.model_label, self.device_label, self.format_label):
            sb.addPermanentWidget(w)

    def _dock(self, title: str, widget: QWidget, name: str) -> QDockWidget:
        d = QDockWidget(title, self, objectName=name)
        d.setWidget(widget)
        d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
                      | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, d)
        return d

    def _act(self, text: str, name: str, slot=None, shortcut=None, tip: str = "", checkable=False) -> QAction:
        a = QAction(text, self, objectName=name)
        if shortcut is not None:
            if isinstance(shortcut, (list, tuple)):
                a.setShortcuts([QKeySequence(s) for s in shortcut])
            else:
                a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(f"{tip} ({a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})" if not a.shortcut().isEmpty() else tip)
        a.setCheckable(checkable)
        if slot is not None:
            a.triggered.connect(slot)
        self.addAction(a)
        return a

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        m = self.menuBar().addMenu("&File")
        self.new_action = self._act("&New", "newAction", self.new_file, K.New)
        self.open_action = self._act("&Open…", "openAction", self.open_dialog, K.Open)
        self.recent_menu = m.addMenu("Open &Recent")
        self.recent_menu.setObjectName("recentMenu")
        self.save_action = self._act("&Save", "saveAction", self.save, K.Save)
        self.save_as_action = self._act("Save &As…", "saveAsAction", self.save_as, K.SaveAs)
        self.quit_action = self._act("&Quit", "quitAction", self.close, K.Quit)
        m.insertAction(self.recent_menu.menuAction(), self.new_action)
        m.insertAction(self.recent_menu.menuAction(), self.open_action)
        m.addSeparator()
        m.addActions([self.save_action, self.save_as_action])
        m.addSeparator()
        m.addAction(self.quit_action)

        e = self.menuBar().addMenu("&Edit")
        ed = self.editor
        self.undo_action = self._act("&Undo", "undoAction", ed.undo, K.Undo)
        self.redo_action = self._act("&Redo", "redoAction", ed.redo, [K.Redo, "Ctrl+Y"])
        self.cut_action = self._act("Cu&t", "cutAction", ed.cut, K.Cut)
        self.copy_action = self._act("&Copy", "copyAction", self._copy, K.Copy)
        self.paste_action = self._act("&Paste", "pasteAction", ed.paste, K.Paste)
        self.select_all_action = self._act("Select &All", "selectAllAction", ed.selectAll, K.SelectAll)
        self.find_action = self._act("&Find…", "findAction", lambda: self.findbar.open(False), K.Find)
        self.replace_action = self._act("Find and &Replace…", "replaceAction", lambda: self.findbar.open(True), "Ctrl+H")
        e.addActions([self.undo_action, self.redo_action])
        e.addSeparator()
        e.addActions([self.cut_action, self.copy_action, self.paste_action, self.select_all_action])
        e.addSeparator()
        e.addActions([self.find_action, self.replace_action])
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)

        i = self.menuBar().addMenu("&Infill")
        self.mask_action = self._act("&Mask Selection", "maskAction", self.mask_selection, "Ctrl+M",
                                     "Mask the selected text (or insert a mask at the cursor)")
        self.clear_masks_action = self._act("C&lear Masks", "clearMasksAction", self.clear_masks, "Ctrl+Shift+M",
                                            "Remove every mask")
        self.infill_action = self._act("&Infill", "infillAction", lambda: self.start_infill(False),
                                       ["Ctrl+Return", "Ctrl+Enter"], "Fill the masks with the model")
        self.stop_action = self._act("&Stop", "stopAction", self.stop, "Esc", "Stop the run and restore the text")
        self.accept_action = self._act("&Accept", "acceptAction", self.accept, ["Return", "Enter"],
                                       "Keep the previewed fill (one undo step)")
        self.reject_action = self._act("&Reject", "rejectAction", self.reject, "Esc", "Discard the fill")
        self.regenerate_action = self._act("Re&generate", "regenerateAction", lambda: self.start_infill(True),
                                           "Ctrl+R", "Run again with a new seed")
        self.tint_action = self._act("Confidence &Tint", "tintAction", self._toggle_tint, "Ctrl+T",
                                     "Tint the accepted tokens by confidence until the next edit", checkable=True)
        self.tint_action.setChecked(self.s.value("view/tint", True) in (True, "true"))
        i.addActions([self.mask_action, self.clear_masks_action])
        i.addSeparator()
        i.addActions([self.infill_action, self.stop_action, self.accept_action, self.reject_action,
                      self.regenerate_action])
        i.addSeparator()
        i.addAction(self.tint_action)

        mm = self.menuBar().addMenu("&Model")
        self.model_manager_action = self._act("Model &Manager…", "modelManagerAction", self.open_model_manager,
                                              tip="Download and manage models")
        self.open_model_folder_action = self._act("Open Model &Folder…", "openModelFolderAction",
                                                  self.choose_model_folder, tip="Load a model from a local folder")
        mm.addActions([self.model_manager_action, self.open_model_folder_action])

        v = self.menuBar().addMenu("&View")
        for d in (self.denoise_dock, self.cand_dock, self.settings_dock):
            v.addAction(d.toggleViewAction())
        h = self.menuBar().addMenu("&Help")
        h.addAction(self._act("&How to use Lacuna", "helpAction", self.show_help, K.HelpContents))
        h.addAction(self._act("&About Lacuna", "aboutAction", self.show_about))

        tb = QToolBar("Infill", self, objectName="mainToolbar")
        tb.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        tb.setMovable(False)
        self.addToolBar(tb)
        tb.addActions([self.open_action, self.save_action])
        tb.addSeparator()
        tb.addActions([self.mask_action, self.clear_masks_action, self.infill_action, self.stop_action,
                       self.accept_action, self.reject_action, self.regenerate_action, self.tint_action])
        tb.addSeparator()
        tb.addWidget(QLabel(" Model "))
        self.model_picker = QComboBox(objectName="modelPicker")
        self.model_picker.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.model_picker.setMinimumContentsLength(14)
        self.model_picker.setToolTip("The model that fills the masks")
        self.model_picker.addItem("Lacuna starter", STARTER)
        self.model_picker.addItem("Open folder…", OPEN_FOLDER)
        tb.addWidget(self.model_picker)
        self._rebuild_recent()

    def _copy(self) -> None:
        (self.preview if self.stack.currentWidget() is self.preview else self.editor).copy()

    # ------------------------------------------------------- engine thread
    def _start_engine_thread(self, stream, loader) -> None:
        import os

        # Leave one core to the GUI: torch's intra-op threads spin at barriers, so with
        # every core given to torch, any other work (the window, another process) stalls
        # each parallel region. Measured on 2 cores (tests/app/bench_live_view.py): one
        # thread ran a starter infill in ~0.75 s, two threads beside a busy process in
        # ~60 s. LACUNA_TORCH_THREADS overrides it.
        env = os.environ.get("LACUNA_TORCH_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else max(1, (os.cpu_count() or 2) - 1)
        self.engine_thread = QThread(self)
        self.engine_thread.setObjectName("engineThread")
        self.model_worker = ModelWorker(loader=loader, threads=threads)
        self.infill_worker = InfillWorker(stream=stream)
        self.model_worker.moveToThread(self.engine_thread)
        self.infill_worker.moveToThread(self.engine_thread)
        self.engine_thread.finished.connect(self.model_worker.deleteLater)
        self.engine_thread.finished.connect(self.infill_worker.deleteLater)
        self._run_requested.connect(self.infill_worker.run, Qt.ConnectionType.QueuedConnection)
        self._load_requested.connect(self.model_worker.load, Qt.ConnectionType.QueuedConnection)
        self._list_requested.connect(self.model_worker.list_models, Qt.ConnectionType.QueuedConnection)
        # results come back queued, to slots run on the GUI thread
        queued = Qt.ConnectionType.QueuedConnection
        self.model_worker.loaded.connect(self._on_model_loaded, queued)
        self.model_worker.failed.connect(self._on_model_failed, queued)
        self.model_worker.listed.connect(self._on_models_listed, queued)
        self.infill_worker.step.connect(self._on_step, queued)
        self.infill_worker.finished.connect(self._on_finished, queued)
        self.infill_worker.cancelled.connect(self._on_cancelled, queued)
        self.infill_worker.failed.connect(self._on_failed, queued)
        self.engine_thread.start()

    def shutdown(self) -> None:
        """Stop the run, end the engine thread (quit + wait; never terminate)."""
        if self._cancel is not None:
            self._cancel.set()
        self._frame_timer.stop()
        self._autosave_timer.stop()
        if self.engine_thread.isRunning():
            self.engine_thread.quit()
            self.engine_thread.wait()

    def _connect(self) -> None:
        doc = self.editor.document()
        doc.modificationChanged.connect(self._update_title)
        doc.undoAvailable.connect(lambda ok: self.undo_action.setEnabled(ok and self.state == "idle"))
        doc.redoAvailable.connect(lambda ok: self.redo_action.setEnabled(ok and self.state == "idle"))
        self.editor.masksChanged.connect(self._update_actions)
        self.editor.maskEditRequested.connect(self.edit_mask)
        self.editor.copyAvailable.connect(lambda _: None)
        self.settings_panel.changed.connect(self._on_settings_changed)
        self.candidates_list.itemClicked.connect(self._on_candidate_clicked)
        self.candidates_list.currentRowChanged.connect(lambda _: self._update_actions())
        self.reuse_seed_button.clicked.connect(self.reuse_seed)
        self.panel.stepRequested.connect(self._on_timeline)
        self.model_picker.activated.connect(self._on_picker_activated)

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
        self.mask_action.setEnabled(idle)
        self.clear_masks_action.setEnabled(idle and has_masks)
        self.infill_action.setEnabled((idle or preview) and has_masks)
        self.stop_action.setEnabled(running)
        self.accept_action.setEnabled(preview and self._current is not None and self._current.result is not None)
        self.reject_action.setEnabled(preview)
        self.regenerate_action.setEnabled((idle or preview) and has_masks)
        for a in (self.cut_action, self.paste_action, self.new_action, self.open_action, self.replace_action):
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
        if self.state == "running" and self._current is not None:
            n = len(self._batch)
            k = self._batch.index(self._current) + 1 if self._current in self._batch else 1
            self.state_label.setText(f"Running{f' {k}/{n}' if n > 1 else ''}")
        elif self.state == "preview":
            self.state_label.setText("Preview")
        elif self._loading_spec:
            self.state_label.setText("Loading model")
        else:
            self.state_label.setText("Idle")

    def _update_title(self, *_: object) -> None:
        name = Path(self.path).name if self.path else "Untitled"
        self.setWindowTitle(f"{name}[*] — Lacuna")
        self.setWindowModified(self.editor.document().isModified())

    def show_error(self, message: str) -> None:
        """Every error ends here: a readable banner above the text (non-modal)."""
        log.warning("%s", message)
        self.banner_label.setText(message)
        self.banner.show()
        self.statusBar().showMessage(message.split("\n")[0], 8000)

    # ---------------------------------------------------------------- masks
    def mask_selection(self) -> None:
        if self.state != "idle":
            return
        self.editor.mask_selection(self.run_settings.insertion_length)
        self._update_actions()

    def clear_masks(self) -> None:
        if self.state == "idle":
            self.editor.clear_masks()
            self._update_actions()

    def token_count(self, start: int, end: int) -> int | None:
        if self.model is None or start == end:
            return None
        try:
            from engine import token_count

            return int(token_count(self.model, document_text(self.editor.document()), start, end))
        except Exception:  # noqa: BLE001 - a count is a hint only
            return None

    def edit_mask(self, mask, global_pos: QPoint | None = None) -> MaskPopup:
        popup = MaskPopup(mask, self.token_count(mask.start, mask.end), self)
        popup.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        popup.changed.connect(lambda: (self.editor.refresh_selections(), self._update_actions()))
        popup.removeRequested.connect(lambda m: (self.editor.remove_mask(m), self._update_actions()))
        if global_pos is None:
            c = QTextCursor(self.editor.document())
            c.setPosition(mask.start)
            global_pos = self.editor.viewport().mapToGlobal(self.editor.cursorRect(c).bottomLeft())
        popup.move(global_pos)
        popup.show()
        return popup

    # ---------------------------------------------------------------- model
    def _startup_load(self) -> None:
        spec = str(self.s.value("model/spec", STARTER) or STARTER)
        self._list_requested.emit()
        self.load_model(spec)

    def load_model(self, spec: str) -> None:
        if self.state == "running":
            self.show_error("Stop the run before switching models.")
            return
        self._loading_spec = spec
        self.model_label.setText(f"Model: {self._spec_label(spec)} (loading…)")
        self.device_label.setText("")
        self._update_state_label()
        self._load_requested.emit(spec)

    def _spec_label(self, spec: str) -> str:
        if spec == STARTER:
            return "Lacuna starter"
        p = Path(spec)
        return p.name if p.is_absolute() else spec

    @Slot(object, object)
    def _on_model_loaded(self, model, info: ModelInfo) -> None:
        if "/" in info.name or "\\" in info.name:  # a folder: show its name
            info = replace(info, name=Path(info.name).name or info.name)
        self.model, self.model_info, self.model_spec = model, info, info.spec
        self._loading_spec = None
        self.s.setValue("model/spec", info.spec)
        self.model_label.setText(f"Model: {info.name}")
        self.device_label.setText(f"{info.device}{' · ' + info.dtype if info.dtype else ''}")
        self.device_label.setToolTip(f"context {info.context_length} tokens · loaded in {info.seconds:.1f} s")
        self._select_picker(info.spec)
        self.statusBar().showMessage(f"Loaded {info.name} on {info.device} in {info.seconds:.1f} s", 5000)
        self._update_state_label()
        self.modelReady.emit(info)
        if self._pending_infill:
            self._pending_infill = False
            self.start_infill(False)

    @Slot(str, str)
    def _on_model_failed(self, spec: str, message: str) -> None:
        self._loading_spec = None
        self._pending_infill = False
        if self.model_info is not None:
            self.model_label.setText(f"Model: {self.model_info.name}")
            self._select_picker(self.model_info.spec)
        else:
            self.model_label.setText("Model: none")
        if spec == STARTER:
            message += ("\nThe starter model ships with Lacuna; if it is missing from this installation, "
                        "choose another model with Model ▸ Open Model Folder… or the Model Manager.")
        self._update_state_label()
        self.show_error(message)
        self.modelFailed.emit(message)

    @Slot(object)
    def _on_models_listed(self, models) -> None:
        for label, spec in models:
            if self.model_picker.findData(spec) < 0:
                self.model_picker.insertItem(self.model_picker.count() - 1, label, spec)
        if self.model_spec:
            self._select_picker(self.model_spec)

    def _select_picker(self, spec: str) -> None:
        i = self.model_picker.findData(spec)
        if i < 0:
            self.model_picker.insertItem(self.model_picker.count() - 1, self._spec_label(spec), spec)
            i = self.model_picker.findData(spec)
        self.model_picker.setCurrentIndex(i)

    def _on_picker_activated(self, index: int) -> None:
        spec = self.model_picker.itemData(index)
        if spec == OPEN_FOLDER:
            if self.model_spec:
                self._select_picker(self.model_spec)
            self.choose_model_folder()
        elif spec and spec != self.model_spec:
            self.load_model(spec)

    def choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a model folder (config.json, weights, tokenizer)")
        if folder:
            self.load_model(folder)

    def open_model_manager(self) -> None:
        try:
            from app.models import ModelManagerDialog  # written separately; may be absent
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"The model manager is not available in this build ({exc}).")
            return
        try:
            dlg = ModelManagerDialog(self)
        except TypeError:
            dlg = ModelManagerDialog()
        for sig in ("modelChosen", "modelSelected", "useModel"):
            s = getattr(dlg, sig, None)
            if s is not None and hasattr(s, "connect"):
                s.connect(lambda spec: self.load_model(str(spec)))
        dlg.finished.connect(lambda _: self._list_requested.emit())
        dlg.open()
        self._model_manager = dlg

    # ---------------------------------------------------------------- runs
    def _snapshot_key(self) -> tuple:
        return (self.editor.document().revision(), tuple((m.start, m.end) for m in self.editor.masks))

    def _make_requests(self, n: int, fresh_seeds: bool):
        from engine.types import InfillRequest, Span  # plain dataclasses

        text = document_text(self.editor.document())
        spans = []
        for m in sorted(self.editor.masks, key=lambda m: (m.start, m.end)):
            if m.insertion:
                spans.append(Span(m.start, m.end, m.length or self.run_settings.insertion_length))
            else:
                spans.append(Span(m.start, m.end, m.length if m.strength >= 1 else None, m.strength))
        rs = self.run_settings
        if fresh_seeds or rs.random_seed:
            seeds = [RunSettings(random_seed=True).next_seed() for _ in range(n)]
        else:
            seeds = [(rs.seed + k) % (2**31 - 1) for k in range(n)]
        revision = self.editor.document().revision()
        return [
            InfillRequest(text=text, spans=tuple(spans), steps=rs.steps, sampler=rs.sampler,
                          temperature=rs.temperature, top_p=rs.top_p,
                          block_length=rs.block_length or None, threshold=rs.threshold,
                          seed=seed, revision=revision)
            for seed in seeds
        ]

    def start_infill(self, regenerate: bool = False) -> bool:
        if self.state == "running":
            return False
        if not self.editor.masks:
            self.show_error("Nothing to fill: select some text and press Ctrl+M to mask it first.")
            return False
        if self.model is None:
            if self._loading_spec:
                self._pending_infill = True
                self.statusBar().showMessage("The model is still loading; the infill starts when it is ready.")
                return True
            self.show_error("No model is loaded. Choose one in the model picker on the toolbar.")
            return False
        if self.state == "preview":
            self._set_state("idle")
        try:
            requests = self._make_requests(self.run_settings.candidates, fresh_seeds=regenerate)
        except Exception as exc:  # noqa: BLE001 - InputError and friends
            from .workers import readable_error

            self.show_error(readable_error(exc))
            return False
        self.banner.hide()
        if not regenerate:
            self._candidates.clear()
            self.candidates_list.clear()
        key = self._snapshot_key()
        first = len(self._candidates) + 1
        self._batch = [Candidate(first + k, r, self.run_settings, key) for k, r in enumerate(requests)]
        self._launch(self._batch[0])
        self.runStarted.emit()
        return True

    def _launch(self, cand: Candidate) -> None:
        self._current = cand
        self._pending_event = None
        req = cand.request
        self.preview.start(req.text, [(s.start, s.end) for s in req.spans])
        self.preview.verticalScrollBar().setValue(self.editor.verticalScrollBar().value())
        self._set_state("running")
        self.panel.reset(f"candidate {cand.number}" if len(self._batch) > 1 else "")
        self._run_id += 1
        self._cancel = threading.Event()
        # frameRendered is for tests and automation: skip the emit (a GIL round trip) when unused
        self._frame_listeners = self.isSignalConnected(QMetaMethod.fromSignal(self.frameRendered))
        self._t_launch = time.perf_counter()
        self._run_requested.emit(self._run_id, self.model, req, self._cancel)

    @Slot(object)
    def _on_step(self, payload) -> None:
        run_id, events = payload
        if run_id != self._run_id or self._current is None:
            return
        self._current.events.extend(events)
        for ev in events:
            self.panel.record(ev)
        self._pending_event = events[-1]
        if self._frame_timer.isActive():
            return  # coalesce: a frame is already due, it will draw the newest event
        wait = FRAME_MS - (time.perf_counter() - self._last_frame) * 1000
        if wait <= 0:
            self._render_frame()  # draw now: no extra wake-up (each costs the engine a GIL hand-over)
        else:
            self._frame_timer.start(int(wait))

    def _render_frame(self) -> None:
        ev, self._pending_event = self._pending_event, None
        if ev is None or self.state != "running":
            return
        self._last_frame = time.perf_counter()
        self.preview.render_event(ev)
        now = time.perf_counter()
        chart = now - self._last_chart >= CHART_MS / 1000 or ev.done
        if chart:
            self._last_chart = now
        self.panel.show_event(ev, chart=chart)
        self.frames += 1
        if self._frame_listeners:
            self.frameRendered.emit()

    @Slot(object)
    def _on_finished(self, payload) -> None:
        run_id, result = payload
        if run_id != self._run_id or self._current is None:
            return
        cand = self._current
        cand.result = result
        self._pending_event = None
        if cand.events:
            self.panel.show_event(cand.events[-1])
        self._candidates.append(cand)
        item = QListWidgetItem(cand.label())
        item.setData(Qt.ItemDataRole.UserRole, len(self._candidates) - 1)
        item.setToolTip(f"seed {cand.seed} — click to preview; Reuse seed fixes this seed in the settings")
        self.candidates_list.addItem(item)
        idx = self._batch.index(cand)
        if idx + 1 < len(self._batch):
            self.preview.render_result(result)
            self._launch(self._batch[idx + 1])
            return
        self._frame_timer.stop()
        self._cancel = None
        first_new = self._candidates.index(self._batch[0])
        self.state = "finished"
        self.show_candidate(first_new)
        self.runFinished.emit()

    @Slot(int)
    def _on_cancelled(self, run_id: int) -> None:
        # Stop already restored the view; this only reports that the worker is free
        self.workerCancelled.emit()

    @Slot(object)
    def _on_failed(self, payload) -> None:
        run_id, message = payload
        if run_id != self._run_id:
            return
        self._frame_timer.stop()
        self._cancel = None
        self._current = None
        self._set_state("idle")
        self.show_error(message)
        self.runFailed.emit(message)

    def stop(self) -> None:
        """End the run: the engine stops before its next forward pass; the text and masks are as before."""
        if self.state != "running":
            return
        if self._cancel is not None:
            self._cancel.set()
        self._run_id += 1  # late events of the stopped run are ignored
        self._frame_timer.stop()
        self._pending_event = None
        self._current = None
        self._cancel = None
        self._set_state("idle")
        self.statusBar().showMessage("Stopped; the text is as it was.", 4000)
        self.runStopped.emit()

    # -------------------------------------------------------- preview/result
    def show_candidate(self, index: int) -> bool:
        if self.state == "running" or not (0 <= index < len(self._candidates)):
            return False
        cand = self._candidates[index]
        if cand.key != self._snapshot_key():
            self.show_error("The text or the masks changed since this candidate was made; run Infill again.")
            return False
        req = cand.request
        self.preview.start(req.text, [(s.start, s.end) for s in req.spans])
        self.preview.render_result(cand.result)
        self._current = cand
        self.panel.load_history(cand.events)
        self.panel.set_timeline(len(cand.events))
        if self.candidates_list.currentRow() != index:
            self.candidates_list.setCurrentRow(index)
        if self.state != "preview":
            self.preview.verticalScrollBar().setValue(self.editor.verticalScrollBar().value())
        self._set_state("preview")
        return True

    def _on_candidate_clicked(self, item: QListWidgetItem) -> None:
        self.show_candidate(int(item.data(Qt.ItemDataRole.UserRole)))

    def _on_timeline(self, step: int) -> None:
        cand = self._current
        if self.state != "preview" or cand is None or not cand.events:
            return
        step = max(1, min(step, len(cand.events)))
        ev = cand.events[step - 1]
        if step == len(cand.events) and cand.result is not None:
            self.preview.render_result(cand.result)
        else:
            self.preview.render_event(ev)
        committed = sum(len(e.committed) for e in cand.events[:step])
        self.panel.show_event(ev, committed)

    def reuse_seed(self) -> None:
        row = self.candidates_list.currentRow()
        if 0 <= row < len(self._candidates):
            self.settings_panel.use_seed(self._candidates[row].seed)
            self.statusBar().showMessage(f"Seed fixed to {self._candidates[row].seed}", 4000)

    def accept(self) -> bool:
        """Apply the previewed fill to the document as one undo step."""
        cand = self._current
        if self.state != "preview" or cand is None or cand.result is None:
            return False
        if cand.key != self._snapshot_key():
            self.show_error("The text changed since this fill was made; it was not applied.")
            return False
        result, req = cand.result, cand.request
        doc = self.editor.document()
        c = QTextCursor(doc)
        self.editor._applying = True
        try:
            c.beginEditBlock()
            for i in range(len(req.spans) - 1, -1, -1):
                s = req.spans[i]
                c.setPosition(s.start)
                c.setPosition(s.end, QTextCursor.MoveMode.KeepAnchor)
                c.insertText(result.span_text(i))
            c.endEditBlock()
        finally:
            self.editor._applying = False
        self.editor.clear_masks()
        self._last_accept = [(p.start, p.end, p.confidence) for ps in result.pieces for p in ps
                             if p.confidence is not None]
        self._accept_revision = doc.revision()
        self._candidates.clear()
        self.candidates_list.clear()
        self._current = None
        self._set_state("idle")
        if result.spans:
            c = self.editor.textCursor()
            c.setPosition(result.spans[-1].end)
            self.editor.setTextCursor(c)
        if self.tint_action.isChecked():
            self.editor.set_tint(self._last_accept)
        self.statusBar().showMessage("Applied. Ctrl+Z undoes the whole fill.", 5000)
        return True

    def reject(self) -> None:
        if self.state != "preview":
            return
        self._current = None
        self._set_state("idle")

    def _toggle_tint(self, on: bool) -> None:
        self.s.setValue("view/tint", on)
        if on and self._last_accept and self.editor.document().revision() == self._accept_revision:
            self.editor.set_tint(self._last_accept)
        elif not on:
            self.editor.clear_tint()

    def _on_settings_changed(self, s: RunSettings) -> None:
        self.run_settings = s

    # ---------------------------------------------------------------- files
    def _confirm_discard(self) -> bool:
        """Ask to save unsaved changes; False: the user cancelled."""
        if not self.editor.document().isModified():
            return True
        name = Path(self.path).name if self.path else "Untitled"
        answer = self.ask_save_changes(name)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def ask_save_changes(self, name: str) -> QMessageBox.StandardButton:
        return QMessageBox.warning(
            self, "Unsaved changes", f"Save the changes to “{name}” before closing it?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)

    def _leave_run(self) -> None:
        if self.state == "running":
            self.stop()
        elif self.state == "preview":
            self.reject()

    def new_file(self) -> None:
        self._leave_run()
        if not self._confirm_discard():
            return
        self._set_text("", None, fileio.TextFormat())

    def open_dialog(self) -> None:
        start = str(Path(self.path).parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a text file", start, "Text files (*.txt *.md *.*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> bool:
        self._leave_run()
        if not self._confirm_discard():
            return False
        try:
            text, fmt = fileio.read_text(path)
        except fileio.FileError as exc:
            self.show_error(str(exc))
            self._remove_recent(path)
            return False
        self._set_text(text, str(Path(path).resolve()), fmt)
        self._add_recent(self.path)
        return True

    def _set_text(self, text: str, path: str | None, fmt: fileio.TextFormat) -> None:
        self.editor.clear_masks()
        self.editor.clear_tint()
        self._candidates.clear()
        self.candidates_list.clear()
        self._last_accept = []
        doc = self.editor.document()
        doc.setUndoRedoEnabled(False)
        self.editor.setPlainText(text)
        doc.setUndoRedoEnabled(True)
        doc.setModified(False)
        self.store.discard()
        self.path, self.fmt = path, fmt
        self.format_label.setText(fmt.label)
        self.banner.hide()
        self._update_title()
        self._update_actions()

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self, path: str | None = None) -> bool:
        if not path:
            path, _ = QFileDialog.getSaveFileName(self, "Save as", self.path or "untitled.txt")
            if not path:
                return False
        return self.save_to(path)

    def save_to(self, path: str) -> bool:
        text = document_text(self.editor.document())
        try:
            fileio.write_text_atomic(path, text, self.fmt)
        except fileio.FileError as exc:
            self.show_error(str(exc))
            return False
        self.path = str(Path(path).resolve())
        self.editor.document().setModified(False)
        self.store.discard()
        self._add_recent(self.path)
        self._update_title()
        self.statusBar().showMessage(f"Saved {self.path}", 4000)
        return True

    def _recent(self) -> list[str]:
        v = self.s.value("files/recent", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def _add_recent(self, path: str) -> None:
        items = [path] + [p for p in self._recent() if p != path]
        self.s.setValue("files/recent", items[:MAX_RECENT])
        self._rebuild_recent()

    def _remove_recent(self, path: str) -> None:
        p = str(Path(path).resolve())
        self.s.setValue("files/recent", [x for x in self._recent() if x != p])
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        items = self._recent()
        for k, p in enumerate(items):
            a = self.recent_menu.addAction(f"&{k + 1} {Path(p).name}  —  {Path(p).parent}")
            a.triggered.connect(lambda _=False, p=p: self.open_path(p))
        if items:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear Recent", lambda: (self.s.setValue("files/recent", []), self._rebuild_recent()))
        self.recent_menu.setEnabled(bool(items))

    # ------------------------------------------------------------- autosave
    def autosave_now(self) -> bool:
        doc = self.editor.document()
        if not doc.isModified():
            return False
        if doc.revision() == self._autosave_revision:
            return False
        try:
            self.store.write(document_text(doc), self.path, self.fmt.encoding, self.fmt.bom, self.fmt.newline)
        except OSError as exc:
            self.statusBar().showMessage(f"Autosave failed: {exc}", 8000)
            return False
        self._autosave_revision = doc.revision()
        return True

    def restore(self, rec: autosave.Recovered) -> None:
        """Load recovered work as unsaved changes to its file (or an untitled text)."""
        fmt = fileio.TextFormat(rec.encoding, rec.bom, rec.newline)
        self._set_text("", rec.path, fmt)
        c = QTextCursor(self.editor.document())
        c.insertText(rec.text)  # undoable, and the document is modified
        self._update_title()
        try:
            rec.file.unlink()
        except OSError:
            pass
        self.autosave_now()

    def offer_recovery(self) -> None:
        orphans = autosave.find_orphans(self.store.folder)
        if not orphans:
            return
        rec = orphans[0]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.saved_at))
        name = Path(rec.path).name if rec.path else "an untitled text"
        box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved work?",
                          f"Lacuna did not close properly last time. Unsaved work on {name} "
                          f"(autosaved {when}) can be restored.", parent=self)
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        if box.clickedButton() is restore:
            self.restore(rec)
        elif box.clickedButton() is discard:
            for r in orphans:
                try:
                    r.file.unlink()
                except OSError:
                    pass

    # ----------------------------------------------------------------- help
    def show_help(self) -> None:
        QMessageBox.information(self, "How to use Lacuna", (
            "1. Open a text (Ctrl+O) or type one.\n"
            "2. Select words and press Ctrl+M to mask them; with no selection Ctrl+M inserts a mask "
            "at the cursor. Double-click a mask to set its length and strength.\n"
            "3. Press Ctrl+Enter: the model fills every mask, token by token.\n"
            "4. Enter keeps the fill, Esc discards it, Ctrl+R samples again. Ctrl+Z undoes an accepted fill.\n"
            "5. Save with Ctrl+S."))

    def show_about(self) -> None:
        QMessageBox.about(self, "About Lacuna",
                          "Lacuna — fill masked spans of text with masked diffusion language models, "
                          "and watch every token resolve.")

    # ----------------------------------------------------------------- close
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        self._leave_run()
        if not self._confirm_discard():
            event.ignore()
            return
        self.store.discard()
        self.s.setValue("window/geometry", self.saveGeometry())
        self.s.setValue("window/state", self.saveState())
        self.shutdown()
        event.accept()
