"""The window's widgets: error banner, hint line, editor and preview, docks and status bar."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget, QFrame, QHBoxLayout, QLabel, QListWidget, QPushButton, QStackedWidget, QToolButton,
    QVBoxLayout, QWidget,
)

from .editor import Editor, PreviewView
from .findbar import FindBar
from .settings import SettingsPanel
from .viz import DenoisePanel

if TYPE_CHECKING:
    from .window import MainWindow


def build_layout(w: MainWindow) -> None:
    """Create the widgets as attributes of ``w``, where the controllers and tests reach them."""
    central = QWidget(w)
    lay = QVBoxLayout(central)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.setSpacing(0)
    lay.addWidget(_banner(w))
    w.hint = QLabel(objectName="hintLabel")  # one line: the text below must not jump
    w.hint.setStyleSheet("#hintLabel { background: #ede9fe; color: #4c1d95; padding: 5px 10px; }")
    lay.addWidget(w.hint)
    w.stack = QStackedWidget(objectName="editorStack")
    w.editor = Editor()
    w.preview = PreviewView()
    w.stack.addWidget(w.editor)
    w.stack.addWidget(w.preview)
    lay.addWidget(w.stack, 1)
    w.findbar = FindBar(w.editor)
    lay.addWidget(w.findbar)
    w.setCentralWidget(central)

    w.panel = DenoisePanel()
    w.denoise_dock = _dock(w, "Denoising", w.panel, "denoiseDock")
    w.cand_dock = _dock(w, "Candidates", _candidates(w), "candidatesDock")
    w.settings_panel = SettingsPanel(w.run_settings)
    w.settings_dock = _dock(w, "Settings", w.settings_panel, "settingsDock")
    w.tabifyDockWidget(w.cand_dock, w.settings_dock)
    w.cand_dock.raise_()

    sb = w.statusBar()
    w.model_label = QLabel("Model: none", objectName="modelStatus")
    w.device_label = QLabel("", objectName="deviceStatus")
    w.state_label = QLabel("Idle", objectName="runStatus")
    w.format_label = QLabel("UTF-8 · LF", objectName="formatStatus")
    for label in (w.state_label, w.model_label, w.device_label, w.format_label):
        sb.addPermanentWidget(label)


def _banner(w: MainWindow) -> QFrame:
    w.banner = QFrame(objectName="errorBanner")
    w.banner.setFrameShape(QFrame.Shape.StyledPanel)
    w.banner.setStyleSheet("#errorBanner { background: #fde2e1; border-bottom: 1px solid #f5a3a0; }")
    bl = QHBoxLayout(w.banner)
    bl.setContentsMargins(10, 6, 6, 6)
    w.banner_label = QLabel(objectName="errorLabel", wordWrap=True)
    w.banner_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    # an action the message offers (File ▸ Reopen with Encoding… for a file refused as not UTF-8)
    w.banner_action = QPushButton(objectName="bannerActionButton")
    w.banner_action.hide()
    close = QToolButton(text="✕", toolTip="Dismiss")
    close.clicked.connect(w.banner.hide)
    bl.addWidget(w.banner_label, 1)
    bl.addWidget(w.banner_action)
    bl.addWidget(close)
    w.banner.hide()
    return w.banner


def _candidates(w: MainWindow) -> QWidget:
    cand = QWidget()
    cl = QVBoxLayout(cand)
    cl.setContentsMargins(4, 4, 4, 4)
    w.candidates_list = QListWidget(objectName="candidatesList")
    w.candidates_list.setWordWrap(True)
    w.candidates_list.setToolTip("Each sample with its seed and settings; click one to preview it in place")
    cl.addWidget(w.candidates_list, 1)
    row = QHBoxLayout()
    w.reuse_seed_button = QPushButton("Reuse seed", objectName="reuseSeedButton")
    w.reuse_seed_button.setToolTip("Fix the seed in the settings to this candidate's seed")
    row.addWidget(w.reuse_seed_button)
    row.addStretch(1)
    cl.addLayout(row)
    return cand


def _dock(w: MainWindow, title: str, widget: QWidget, name: str) -> QDockWidget:
    d = QDockWidget(title, w, objectName=name)
    d.setWidget(widget)
    d.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable | QDockWidget.DockWidgetFeature.DockWidgetClosable
                  | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, d)
    return d
