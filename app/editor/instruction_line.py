"""The instruction line of the mask popup: one line of text with its recent
instructions a keystroke away (Up: older, Down: newer), as a shell's history."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLineEdit, QWidget

from lacuna.engine.types import MAX_INSTRUCTION  # plain data, no torch


class InstructionLine(QLineEdit):
    """A QLineEdit whose Up and Down keys walk ``history`` (newest first).

    Down past the newest entry gives back what was being typed before Up, so
    looking through the history loses nothing."""

    def __init__(self, history: Sequence[str] = (), parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("instructionEdit")
        self.setMaxLength(MAX_INSTRUCTION)  # the engine's bound: a longer line could not be run
        self.setClearButtonEnabled(True)
        self.history = list(history)
        self._index = -1  # -1: the draft, not an entry of the history
        self._draft = ""
        # typing makes the line a new draft: Up starts again from the newest entry
        self.textEdited.connect(self._restart)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key.Key_Up and self._index + 1 < len(self.history):
            if self._index == -1:
                self._draft = self.text()
            self._show(self._index + 1)
        elif key == Qt.Key.Key_Down and self._index >= 0:
            self._show(self._index - 1)
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            event.accept()  # at either end: stay, as a shell does
        else:
            super().keyPressEvent(event)

    def _restart(self, *_: object) -> None:
        self._index = -1

    def _show(self, index: int) -> None:
        self._index = index
        self.setText(self._draft if index < 0 else self.history[index])
