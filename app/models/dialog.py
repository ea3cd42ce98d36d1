"""The Model manager window: the table, the actions, and the consent questions."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QHBoxLayout, QHeaderView, QInputDialog,
                               QLabel, QMessageBox, QPushButton, QTableView, QVBoxLayout, QWidget)

from .details import best_text, details_text, devices_text
from .document import from_window, typical_text
from .manager import ModelManager, Outcome
from .sizing import CARD_SIZES
from .table import CARD_COLUMNS, NOTE, ModelTableModel

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
        header.setSectionResizeMode(NOTE, QHeaderView.ResizeMode.Stretch)
        self.devices_label = QLabel("Checking this machine…", self, objectName="devicesLabel")
        self.devices_label.setWordWrap(True)
        self.work_label = QLabel(typical_text(), self, objectName="workLabel")
        self.work_label.setWordWrap(True)
        self.card_picker = QComboBox(self, objectName="cardPicker")
        self.card_picker.addItem("no card (this machine only)", None)
        for gb in CARD_SIZES:
            self.card_picker.addItem(f"{gb} GB", gb)
        self.card_picker.setToolTip("Size the models up for a GPU you do not have here, all of its memory free")
        self.card_picker.currentIndexChanged.connect(self._on_card_picked)
        self.best_label = QLabel("Finding the best model for this machine…", self, objectName="bestLabel")
        self.best_label.setWordWrap(True)
        self.details_label = QLabel("Select a model to read what it is.", self, objectName="detailsLabel")
        self.details_label.setWordWrap(True)
        self.details_label.setTextFormat(Qt.TextFormat.RichText)
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

        cards = QHBoxLayout()
        cards.addWidget(QLabel("Also size up a GPU card:", self))
        cards.addWidget(self.card_picker)
        cards.addStretch(1)

        layout = QVBoxLayout(self)
        layout.addWidget(self.devices_label)
        layout.addWidget(self.work_label)
        layout.addLayout(cards)
        layout.addWidget(self.best_label)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.details_label)
        layout.addLayout(row)
        layout.addWidget(self.message_label)
        self.resize(1180, 640)

        self.view.selectionModel().selectionChanged.connect(self.update_buttons)
        self.view.selectionModel().selectionChanged.connect(self._show_details)
        self.manager.rowChanged.connect(self._on_row_changed)
        self.manager.modelsChanged.connect(self.update_buttons)
        self.manager.jobFinished.connect(self._on_finished)
        self.manager.consentNeeded.connect(self._ask_consent)
        self.manager.fitsReady.connect(self._show_devices)
        self._show_card_columns()
        self._show_devices()
        if not self.manager.devices():
            self.manager.compute_fits()
        self.update_buttons()

    # the open document -----------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.refresh_work()

    def refresh_work(self) -> None:
        """Size the verdicts and speeds up for the parent window's open document (a typical fill without one)."""
        work = from_window(self.parentWidget())
        self.work_label.setText(work.describe() if work is not None else typical_text())
        self.manager.set_work(work)

    # the card size ---------------------------------------------------------
    def set_card(self, gb: float | None) -> None:
        """Size the models up for a GPU of ``gb`` GB as well (None: none), as the picker does."""
        i = self.card_picker.findData(gb) if gb else 0
        if i < 0:
            self.card_picker.addItem(f"{gb:g} GB", gb)
            i = self.card_picker.count() - 1
        self.card_picker.setCurrentIndex(i)

    def _on_card_picked(self, index: int) -> None:
        self.manager.set_card(self.card_picker.itemData(index))
        self._show_card_columns()

    def _show_card_columns(self) -> None:
        for col in CARD_COLUMNS:
            self.view.setColumnHidden(col, not self.manager.card_gb())

    # selection and buttons -------------------------------------------------
    def selected(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        return self.table_model.id_at(rows[0].row()) if rows else None

    def select(self, name: str) -> None:
        row = self.table_model.row_of(name)
        if row >= 0:
            self.view.selectRow(row)
            self._keep_selection_visible()

    def _keep_selection_visible(self) -> None:
        """Scroll the selected row into view once the labels around the table are laid out
        (they grow as the details, the verdicts and the speeds arrive)."""
        def scroll() -> None:
            rows = self.view.selectionModel().selectedRows()
            if rows:
                self.view.scrollTo(rows[0])

        scroll()
        QTimer.singleShot(0, self.view, scroll)  # dropped with the view if the window goes first

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
        sizing = self.manager.sizing()
        if sizing.devices:
            self.devices_label.setText(devices_text(sizing))
            self.best_label.setText(best_text(sizing))
        self._show_details()
        self._keep_selection_visible()

    def _show_details(self, *args: Any) -> None:
        name = self.selected()
        info = self.manager.model(name) if name else None
        if info is not None:
            self.details_label.setText(details_text(self.manager, info))

    # screenshots -------------------------------------------------------------
    def screenshot(self, path: str | Path) -> Path:
        """Render the window (works offscreen) to a PNG file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            raise OSError(f"could not write {path}")
        return path
