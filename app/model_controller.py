"""Which model fills the masks: loading it, the model picker, the model folder and the Model manager."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QFileDialog

from .workers import ModelInfo
from .workers.messages import LoadFailed, ModelLoaded

if TYPE_CHECKING:
    from .window import MainWindow

OPEN_FOLDER = "__open_folder__"
STARTER = "starter"
STARTER_LABEL = "Lacuna starter (demo)"
STARTER_TIP = ("A small demonstration bundled with Lacuna: it shows how diffusion infilling works, fast and "
               "offline, but its fills are rarely sensible text. Help ▸ Choose a Model for This Machine… "
               "or the Model Manager finds one that writes well here.")


def spec_label(spec: str) -> str:
    if spec == STARTER:
        return STARTER_LABEL
    p = Path(spec)
    return p.name if p.is_absolute() else spec


def _message(outcome) -> ModelLoaded | LoadFailed:
    """lacuna.app.workers.model reports (model, ModelInfo) or the failure's message: as a message type."""
    return LoadFailed(outcome) if isinstance(outcome, str) else ModelLoaded(*outcome)


class ModelController(QObject):
    _load_requested = Signal(str)
    _load_reported = Signal(object, object)  # (ModelLoad, ModelLoaded or LoadFailed), from its thread
    _load_progressed = Signal(object, str, int, object)  # (ModelLoad, stage, done, total or None), from its thread
    _list_requested = Signal()
    _clean_requested = Signal()
    loadingChanged = Signal()  # a load started or ended (the window's state label says "Loading model")

    def __init__(self, window: MainWindow, worker) -> None:
        super().__init__(window)
        self.w = window
        self.model = None
        self.model_info: ModelInfo | None = None
        self.model_spec: str | None = None
        self.loading_spec: str | None = None
        self.pending_infill = False  # Infill was asked for while the model loaded: run it when ready
        self.manager_dialog = None
        self._watching_downloads = False
        self._worker = worker
        self._loads: set = set()  # ModelLoad jobs under way, kept alive until they report
        queued = Qt.ConnectionType.QueuedConnection
        self._load_requested.connect(self._start_load)
        self._load_reported.connect(self._on_load_reported, queued)
        self._load_progressed.connect(self._on_load_progressed, queued)
        self._list_requested.connect(worker.list_models, queued)
        self._clean_requested.connect(worker.clean_stale_partials, queued)
        worker.listed.connect(self.on_models_listed, queued)
        window.stateChanged.connect(self.update_actions)

    def update_actions(self, state: str) -> None:
        """No switching models while a run uses one."""
        self.w.model_picker.setEnabled(state != "running")

    def startup(self) -> None:
        self._list_requested.emit()
        self.load_model(str(self.w.s.value("model/spec", STARTER) or STARTER))
        # after the load, on the engine thread: the model the user waits for comes first
        self._clean_requested.emit()

    def refresh_picker(self) -> None:
        self._list_requested.emit()

    def label_starter(self) -> None:
        """Say in the model picker what the starter is: a demonstration."""
        picker = self.w.model_picker
        i = picker.findData(STARTER)
        if i >= 0:
            picker.setItemText(i, STARTER_LABEL)
            picker.setItemData(i, STARTER_TIP, Qt.ItemDataRole.ToolTipRole)

    def load_model(self, spec: str) -> None:
        w = self.w
        if w.state == "running":
            w.show_error("Stop the run before switching models.")
            return
        self.loading_spec = spec
        w.model_label.setText(f"Model: {spec_label(spec)} (loading…)")
        w.device_label.setText("")
        self.loadingChanged.emit()
        self._load_requested.emit(spec)

    def _start_load(self, spec: str) -> None:
        job = self._worker.make_load(spec, lambda job, outcome: self._load_reported.emit(job, _message(outcome)),
                                     self._load_progressed.emit)
        self._loads.add(job)
        job.start()

    @Slot(object, object)
    def _on_load_reported(self, job, outcome: ModelLoaded | LoadFailed) -> None:
        self._loads.discard(job)
        if job.spec != self.loading_spec:
            return  # a newer load was asked for, or the window closed
        if isinstance(outcome, LoadFailed):
            self._on_failed(job.spec, outcome.message)
        else:
            self._on_loaded(outcome.model, outcome.info)

    @Slot(object, str, int, object)
    def _on_load_progressed(self, job, stage: str, done: int, total) -> None:
        """A long load says how far it is, in the status bar (transformers' bars on stderr are silenced)."""
        if job.spec != self.loading_spec or job not in self._loads:
            return
        if total:
            where = f"{stage.lower()} {done}/{total} ({100 * done // total}%)"
        else:
            where = f"{stage.lower()}…"
        label = spec_label(job.spec)
        self.w.statusBar().showMessage(f"Loading {label}: {where}")
        self.w.model_label.setText(f"Model: {label} (loading… {100 * done // total}%)" if total
                                   else f"Model: {label} (loading…)")

    def abandon_loads(self) -> None:
        """The window closes: loads under way are left to end on their own, unheard."""
        self.loading_spec = None
        self.pending_infill = False
        self._loads.clear()

    @Slot(object, object)
    def _on_loaded(self, model, info: ModelInfo) -> None:
        w = self.w
        if "/" in info.name or "\\" in info.name:  # a folder: show its name
            info = replace(info, name=Path(info.name).name or info.name)
        if info.spec == STARTER:
            info = replace(info, name=STARTER_LABEL)
        self.model, self.model_info, self.model_spec = model, info, info.spec
        self.loading_spec = None
        w.s.setValue("model/spec", info.spec)
        w.model_label.setText(f"Model: {info.name}")
        w.model_label.setToolTip(STARTER_TIP if info.spec == STARTER else "")
        w.device_label.setText(f"{info.device}{' · ' + info.dtype if info.dtype else ''}")
        w.device_label.setToolTip(f"context {info.context_length} tokens · loaded in {info.seconds:.1f} s")
        self.select_picker(info.spec)
        w.statusBar().showMessage(f"Loaded {info.name} on {info.device} in {info.seconds:.1f} s", 5000)
        self.loadingChanged.emit()
        w.modelReady.emit(info)
        if self.pending_infill:
            self.pending_infill = False
            w.infill.start(False)

    @Slot(str, str)
    def _on_failed(self, spec: str, message: str) -> None:
        w = self.w
        self.loading_spec = None
        self.pending_infill = False
        if self.model_info is not None:
            w.model_label.setText(f"Model: {self.model_info.name}")
            self.select_picker(self.model_info.spec)
            message += f"; {self.model_info.name} is still loaded."
        else:
            w.model_label.setText("Model: none")
            message += "."
        if spec == STARTER:
            message += ("\nThe starter model ships with Lacuna; if it is missing from this installation, "
                        "choose another model with Model ▸ Open Model Folder… or the Model Manager.")
        self.loadingChanged.emit()
        w.show_error(message)
        w.modelFailed.emit(message)

    # --------------------------------------------------------------- picker
    @Slot(object)
    def on_models_listed(self, models) -> None:
        picker = self.w.model_picker
        for label, spec in models:
            if picker.findData(spec) < 0:
                picker.insertItem(picker.count() - 1, label, spec)
        if self.model_spec:
            self.select_picker(self.model_spec)

    def select_picker(self, spec: str) -> None:
        picker = self.w.model_picker
        i = picker.findData(spec)
        if i < 0:
            picker.insertItem(picker.count() - 1, spec_label(spec), spec)
            i = picker.findData(spec)
        picker.setCurrentIndex(i)

    def on_picker_activated(self, index: int) -> None:
        spec = self.w.model_picker.itemData(index)
        if spec == OPEN_FOLDER:
            if self.model_spec:  # "Open folder…" is a command, not a choice to leave selected
                self.select_picker(self.model_spec)
            self.choose_model_folder()
        elif spec and spec != self.model_spec:
            self.load_model(spec)

    def choose_model_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.w, "Open a model folder (config.json, weights, tokenizer)")
        if folder:
            self.load_model(folder)

    # -------------------------------------------------------- model manager
    def open_model_manager(self, select: str | None = None, download: bool = False) -> None:
        """Open the Model manager; ``select``: a model id to select, ``download``: and start its download."""
        try:
            from lacuna.app.models import ModelManager, ModelManagerDialog
        except Exception as exc:  # noqa: BLE001 - a build may leave the manager out
            self.w.show_error(f"The model manager is not available in this build ({exc}).")
            return
        manager = ModelManager.instance()
        if not self._watching_downloads:
            # downloads outlive the dialog; only the manager can start one, so watching from
            # its first opening on catches them all without creating it (and importing the hub) at start-up
            manager.jobFinished.connect(self._on_download_finished)
            self._watching_downloads = True
        if self.manager_dialog is None:
            dlg = ModelManagerDialog(manager, self.w)
            dlg.loadRequested.connect(self.load_model)
            dlg.finished.connect(lambda _: self.refresh_picker())
            self.manager_dialog = dlg
        self.manager_dialog.open()
        if isinstance(select, str) and select:  # a QAction's triggered(bool) may arrive here as a bool
            self.manager_dialog.select(select)
            if download:
                self.manager_dialog.trigger("download", select)

    @Slot(object)
    def _on_download_finished(self, outcome) -> None:
        self.refresh_picker()
