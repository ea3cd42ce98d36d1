"""The small popup that edits one mask: its length in tokens, its strength, and the
instruction an Instruct model fills the masks under (issue 24)."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QFrame, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QWidget

from .instruction_line import InstructionLine
from .masks import Mask

INSTRUCTION_HINT = "e.g. make it more formal — Enter fills the masks"
REFUSED_HINT = "needs an instruction-tuned model (hover for which)"
INSTRUCTION_TIP = ("What the model should write here: an instruction-tuned model fills the masks under it, "
                   "reading the text on both sides. Up and Down recall recent instructions; Enter fills.")


class MaskPopup(QFrame):
    changed = Signal()
    removeRequested = Signal(object)
    instructionSubmitted = Signal(str)  # Enter in the instruction line, with its text stripped

    def __init__(self, mask: Mask, auto_count: int | None, parent: QWidget | None = None,
                 max_length: int = 4096, refusal: str | None = None, history: Sequence[str] = ()) -> None:
        """``refusal``: why the loaded model cannot follow an instruction (the line is then
        disabled, with that sentence as its tooltip), or None; ``history``: recent
        instructions, newest first."""
        super().__init__(parent, Qt.WindowType.Popup)
        self.setObjectName("maskPopup")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.mask = mask
        form = QFormLayout(self)
        title = QLabel("<b>Insertion</b>" if mask.insertion else "<b>Mask</b>")
        form.addRow(title)

        self.length = QSpinBox(objectName="maskLengthSpin", minimum=0 if not mask.insertion else 1,
                               maximum=max(1, max_length))
        self.length.setSuffix(" tokens")
        if not mask.insertion:
            auto = f"auto ({auto_count} tokens)" if auto_count is not None else "auto (as the covered text)"
            self.length.setSpecialValueText(auto)
        self.length.setValue(mask.length or 0)
        self.length.setToolTip(f"How many tokens the model writes here (at most {self.length.maximum()} "
                               "with this model, so its context keeps room for the text around the mask)")
        form.addRow("Length", self.length)

        row = QHBoxLayout()
        self.strength = QSlider(Qt.Orientation.Horizontal, objectName="maskStrengthSlider")
        self.strength.setRange(5, 100)
        self.strength.setValue(round(mask.strength * 100))
        self.strength.setToolTip("100%: rewrite the whole span; less: re-mask only that fraction of its tokens")
        self.strength_label = QLabel(f"{self.strength.value()}%")
        row.addWidget(self.strength, 1)
        row.addWidget(self.strength_label)
        form.addRow("Strength", row)
        # an insertion has no text to keep: only a range mask can be a partial edit
        form.setRowVisible(row, not mask.insertion)

        self.instruction = InstructionLine(history)
        self.instruction.setPlaceholderText(INSTRUCTION_HINT if refusal is None else REFUSED_HINT)
        self.instruction.setMinimumWidth(self.fontMetrics().horizontalAdvance(INSTRUCTION_HINT) + 40)
        self.instruction.setEnabled(refusal is None)
        self.instruction.setToolTip(refusal or INSTRUCTION_TIP)
        form.addRow("Instruction", self.instruction)
        self.instruction.returnPressed.connect(self._submit)

        remove = QPushButton("Remove mask", objectName="maskRemoveButton")
        form.addRow(remove)
        self.length.valueChanged.connect(self._apply)
        self.strength.valueChanged.connect(self._apply)
        remove.clicked.connect(self._remove)

    def _apply(self, *_: object) -> None:
        v = self.length.value()
        self.mask.length = v if v > 0 else None
        self.mask.strength = 1.0 if self.mask.insertion else self.strength.value() / 100
        if self.mask.strength < 1 and self.mask.length is not None:
            # an edit keeps the covered tokens: its length is the covered text's
            self.mask.length = None
            self.length.blockSignals(True)
            self.length.setValue(0)
            self.length.blockSignals(False)
        self.length.setEnabled(self.mask.strength >= 1)
        self.strength_label.setText(f"{self.strength.value()}%")
        self.changed.emit()

    def _submit(self) -> None:
        text = self.instruction.text().strip()
        if text:
            self.instructionSubmitted.emit(text)

    def _remove(self) -> None:
        self.removeRequested.emit(self.mask)
        self.close()
