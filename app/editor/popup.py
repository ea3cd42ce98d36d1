"""The small popup that edits one mask: its length (the model chooses it, about N
tokens, exactly N, or as the covered text; issue 23), its strength, and the
instruction an Instruct model fills the masks under (issue 24)."""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QFrame, QHBoxLayout, QLabel, QPushButton, QSlider, QSpinBox, QWidget,
)

from .instruction_line import InstructionLine
from .masks import ABOUT, AUTO, EXACT, Mask

INSTRUCTION_HINT = "e.g. make it more formal — Enter fills the masks"
REFUSED_HINT = "needs an instruction-tuned model (hover for which)"
INSTRUCTION_TIP = ("What the model should write here: an instruction-tuned model fills the masks under it, "
                   "reading the text on both sides. Up and Down recall recent instructions; Enter fills.")
TEXT = "text"  # the mode combo's "as the text": a range mask as long as its covered text
LENGTH_TIP = ("Auto: the model tries a few lengths and keeps the one it scores best (the candidates list "
              "shows the others). About N: it tries lengths near N. Exactly N: N tokens. As the text: "
              "as many tokens as the covered text has.")


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

        self.auto_count = auto_count
        self.mode = QComboBox(objectName="maskLengthMode")
        self.mode.addItem("Auto (model chooses)", AUTO)
        self.mode.addItem("About", ABOUT)
        self.mode.addItem("Exactly", EXACT)
        if not mask.insertion:
            self.mode.addItem("As the text", TEXT)
        self.mode.setToolTip(LENGTH_TIP)
        self.length = QSpinBox(objectName="maskLengthSpin", minimum=0 if not mask.insertion else 1,
                               maximum=max(1, max_length))
        self.length.setSuffix(" tokens")
        if not mask.insertion:
            text = f"as the text ({auto_count} tokens)" if auto_count is not None else "as the text"
            self.length.setSpecialValueText(text)
        self.length.setValue(mask.length or 0)
        self.length.setToolTip(f"How many tokens the model writes here, exactly or about (at most "
                               f"{self.length.maximum()} with this model, so its context keeps room for the "
                               "text around the mask)")
        mode = TEXT if mask.mode == EXACT and not mask.length and not mask.insertion else mask.mode
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))
        length_row = QHBoxLayout()
        length_row.addWidget(self.mode)
        length_row.addWidget(self.length, 1)
        form.addRow("Length", length_row)

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
        self._enable()
        self.length.valueChanged.connect(self._count_changed)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self.strength.valueChanged.connect(self._apply)
        remove.clicked.connect(self._remove)

    def _set_quietly(self, mode: str | None = None, count: int | None = None) -> None:
        for w in (self.mode, self.length):
            w.blockSignals(True)
        if mode is not None:
            self.mode.setCurrentIndex(self.mode.findData(mode))
        if count is not None:
            self.length.setValue(count)
        for w in (self.mode, self.length):
            w.blockSignals(False)

    def _count_changed(self, *_: object) -> None:
        # a number typed means exactly that many, unless "about" is chosen; 0 is "as the text"
        v, mode = self.length.value(), self.mode.currentData()
        if v == 0 and not self.mask.insertion:
            self._set_quietly(TEXT)
        elif mode in (AUTO, TEXT):
            self._set_quietly(EXACT)
        self._apply()

    def _mode_changed(self, *_: object) -> None:
        mode = self.mode.currentData()
        if mode in (ABOUT, EXACT) and self.length.value() == 0:
            self._set_quietly(count=self.auto_count or 1)  # a number to start from: the text's count
        elif mode == TEXT:
            self._set_quietly(count=0)
        self._apply()

    def _apply(self, *_: object) -> None:
        v, mode = self.length.value(), self.mode.currentData()
        self.mask.strength = 1.0 if self.mask.insertion else self.strength.value() / 100
        if self.mask.strength < 1:
            # an edit keeps the covered tokens: its length is the covered text's
            self.mask.length = None
            self._set_quietly(TEXT, 0)
        elif mode == AUTO:
            if v > 0:
                self.mask.length = v  # kept for a switch back to a number
            self.mask.set_span_length("auto")
        elif mode == ABOUT:
            self.mask.set_span_length(f"~{max(1, v)}")
        else:
            self.mask.length = v if v > 0 else None
        self._enable()
        self.strength_label.setText(f"{self.strength.value()}%")
        self.changed.emit()

    def _enable(self) -> None:
        # the count is greyed where it does not count: the model chooses, or the text decides
        edit = self.mask.strength < 1
        self.mode.setEnabled(not edit)
        self.length.setEnabled(not edit and self.mode.currentData() in (ABOUT, EXACT))

    def _submit(self) -> None:
        text = self.instruction.text().strip()
        if text:
            self.instructionSubmitted.emit(text)

    def _remove(self) -> None:
        self.removeRequested.emit(self.mask)
        self.close()
