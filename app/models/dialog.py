"""The Model manager window: the table, the actions, and the consent questions."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel,
                               QMessageBox, QPushButton, QTableView, QVBoxLayout, QWidget)

from .document import from_window, whole_context_text
from .manager import ModelManager, Outcome
from .table import STATUS, ModelTableModel

ACTIONS = ("download", "pause", "resume", "cancel", "verify", "delete", "load")


class ModelManagerDialog(QDialog):
    """``ModelManagerDialog(manager, parent)``; ``ModelManagerDialog(parent)`` uses the app's manager.

    Closing the window does not stop downloads: the manager owns them.
    """

    loadRequested = Signal(str)
    modelChosen = Signal(str)  # same as loadRequested, for callers that look for this name

    def __init__(self, manager: ModelManager | QWidget | None = None, parent: QWidget | None = None) -> None:
        if manager is not None and not isinstance(manager, ModelManager):
            manager, parent = None, manager
        super().__init__(parent)
        self.setObjectName("modelManagerDialog")
        self.setWindowTitle("Model manager")
        self.manager = manager or ModelManager.instance()
        self.table_model = ModelTableModel(self.manager, self)
        self.view = QTableView(self, objectName="modelTable")
        self.view.setModel(self.table_model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(STATUS, QHeaderView.ResizeMode.Stretch)
        self.devices_label = QLabel("Checking this machine…", self, objectName="devicesLabel")
        self.work_label = QLabel(whole_context_text(), self, objectName="workLabel")
        self.work_label.setWordWrap(True)
        self.message_label = QLabel("", self, objectName="messageLabel")
        self.message_label.setWordWrap(True)

        self.buttons: dict[str, QPushButton] = {}
        row = QHBoxLayout()
        for action in ACTIONS:
            button = QPushButton(action.capitalize(), self, objectName=f"{action}Button")
            button.clicked.connect(lambda _=False, a=action: self.trigger(a))
            row.addWidget(button)
            self.buttons[action] = button
        row.addStretch(1)
        add = QPushButton("Add…", self, objectName="addButton")
        add.setToolTip("Add a Hugging Face repo id (org/name) or a local model folder")
        add.clicked.connect(self.ask_add)
        row.addWidget(add)

        layout = QVBoxLayout(self)
        layout.addWidget(self.devices_label)
        layout.addWidget(self.work_label)
        layout.addWidget(self.view, 1)
        layout.addLayout(row)
        layout.addWidget(self.message_label)
        self.resize(1040, 560)

        self.view.selectionModel().selectionChanged.connect(self.update_buttons)
        self.manager.rowChanged.connect(self._on_row_changed)
        self.manager.modelsChanged.connect(self.update_buttons)
        self.manager.jobFinished.connect(self._on_finished)
        self.manager.consentNeeded.connect(self._ask_consent)
        self.manager.fitsReady.connect(self._show_devices)
        self._show_devices()
        if not self.manager.devices():
            self.manager.compute_fits()
        self.update_buttons()

    # the open document -----------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.refresh_work()

    def refresh_work(self) -> None:
        """Size the verdicts up for the parent window's open document (each model's whole context without one)."""
        work = from_window(self.parentWidget())
        self.work_label.setText(work.describe() if work is not None else whole_context_text())
        self.manager.set_work(work)

    # selection and buttons -------------------------------------------------
    def selected(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        return self.table_model.id_at(rows[0].row()) if rows else None

    def select(self, name: str) -> None:
        row = self.table_model.row_of(name)
        if row >= 0:
            self.view.selectRow(row)

    def enabled_actions(self, name: str | None) -> set[str]:
        if name is None:
            return set()
        info = self.manager.model(name)
        if info is None:
            return set()
        live = self.manager.live(name)
        active = self.manager.is_active(name)
        out: set[str] = set()
        if active:
            if live is not None and live.state == "downloading":
                out |= {"pause", "cancel"}
            return out
        paused = (live is not None and live.state == "paused") or info.status == "partial"
        if paused:
            out |= {"resume", "cancel", "delete"}
        elif info.repo and info.status in ("available", "corrupt", "cached"):
            out.add("download")
        if live is not None and live.state == "failed" and info.repo:
            out.add("download")
        if info.status in ("installed", "corrupt"):
            out |= {"verify", "delete"}
        if info.status == "cached":
            out.add("delete")
        if info.loadable and info.status in ("installed", "bundled", "local", "cached"):
            out.add("load")
        return out

    def update_buttons(self, *args: Any) -> None:
        allowed = self.enabled_actions(self.selected())
        for action, button in self.buttons.items():
            button.setEnabled(action in allowed)

    def _on_row_changed(self, name: str) -> None:
        if name == self.selected():
            self.update_buttons()

    # actions ----------------------------------------------------------------
    def trigger(self, action: str, name: str | None = None) -> None:
        name = name or self.selected()
        if name is None:
            return
        if action in ("download", "resume"):
            self.manager.download(name)
        elif action == "pause":
            self.manager.pause(name)
        elif action == "cancel":
            self.manager.cancel(name)
        elif action == "verify":
            self.manager.verify(name)
        elif action == "delete":
            info = self.manager.model(name)
            if info is not None and info.status in ("installed", "corrupt", "cached") and not self._confirm(
                    f"Delete {info.name} from the Hugging Face cache?"):
                return
            self.message_label.setText(self.manager.delete(name))
        elif action == "load":
            self.loadRequested.emit(name)
            self.modelChosen.emit(name)
        self.update_buttons()

    def ask_add(self) -> None:
        text, ok = QInputDialog.getText(self, "Add a model", "Hugging Face repo id (org/name) or a local folder:")
        if ok and text.strip():
            try:
                name = self.manager.add(text.strip())
            except Exception as err:  # noqa: BLE001 - shown to the user
                self.message_label.setText(str(err))
                return
            self.select(name)

    def _confirm(self, text: str) -> bool:
        if getattr(self, "auto_confirm", None) is not None:
            return bool(self.auto_confirm)
        return QMessageBox.question(self, "Model manager", text) == QMessageBox.StandardButton.Yes

    def _on_finished(self, outcome: Outcome) -> None:
        if outcome.state in ("failed", "corrupt", "installed", "verified", "cancelled"):
            self.message_label.setText(f"{outcome.name}: {outcome.message}")
        self.update_buttons()

    def _ask_consent(self, outcome: Outcome) -> None:
        if not self.isVisible():
            self.message_label.setText(f"{outcome.name}: {outcome.message}")
            return
        if outcome.consent == "remote_code":
            files = "\n".join(f"  {path}  ({size} bytes)\n    sha256 {sha}" for path, size, sha in outcome.files)
            text = (f"{outcome.name} ships its own Python code, at commit {outcome.commit}:\n\n{files}\n\n"
                    "Lacuna itself never runs it. Keep this code on disk and record your consent "
                    "for this commit? You will be asked again if the commit changes.")
            if self._confirm(text):
                self.manager.grant_remote_code(outcome)
        elif outcome.consent == "pickle":
            text = (f"{outcome.name} has only pickled weights ({', '.join(p for p, _, _ in outcome.files)}), "
                    "which can run code when loaded. Download them anyway?")
            if self._confirm(text):
                self.manager.download(outcome.name, allow_pickle=True)

    def _show_devices(self) -> None:
        from engine.hub.fmt import human_bytes

        devices = self.manager.devices()
        if devices:
            self.devices_label.setText("   ".join(
                f"{d.label}: {d.name}, {human_bytes(d.available)} free of {human_bytes(d.total)}" for d in devices))

    # screenshots -------------------------------------------------------------
    def screenshot(self, path: str | Path) -> Path:
        """Render the window (works offscreen) to a PNG file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        return path
