"""Find and replace bar under the editor (Ctrl+F, Ctrl+H)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor, QTextDocument
from PySide6.QtWidgets import QCheckBox, QGridLayout, QLabel, QLineEdit, QPushButton, QToolButton, QWidget

from . import positions


class FindBar(QWidget):
    def __init__(self, editor, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("findBar")
        self.editor = editor
        g = QGridLayout(self)
        g.setContentsMargins(6, 2, 6, 2)
        self.find_edit = QLineEdit(objectName="findEdit", placeholderText="Find")
        self.replace_edit = QLineEdit(objectName="replaceEdit", placeholderText="Replace with")
        self.case = QCheckBox("Match case", objectName="matchCaseCheck")
        self.status = QLabel("", objectName="findStatus")
        prev_b = QPushButton("Previous")
        next_b = QPushButton("Next")
        self.replace_b = QPushButton("Replace", objectName="replaceButton")
        self.replace_all_b = QPushButton("Replace all", objectName="replaceAllButton")
        close = QToolButton(text="✕", toolTip="Close (Esc)")
        g.addWidget(self.find_edit, 0, 0)
        g.addWidget(prev_b, 0, 1)
        g.addWidget(next_b, 0, 2)
        g.addWidget(self.case, 0, 3)
        g.addWidget(self.status, 0, 4)
        g.addWidget(close, 0, 5)
        g.addWidget(self.replace_edit, 1, 0)
        g.addWidget(self.replace_b, 1, 1)
        g.addWidget(self.replace_all_b, 1, 2)
        g.setColumnStretch(0, 1)
        self.find_edit.returnPressed.connect(self.find_next)
        self.find_edit.textChanged.connect(lambda _: self.status.clear())
        next_b.clicked.connect(self.find_next)
        prev_b.clicked.connect(self.find_previous)
        self.replace_b.clicked.connect(self.replace_one)
        self.replace_all_b.clicked.connect(self.replace_all)
        close.clicked.connect(self.close_bar)
        esc = QShortcut(QKeySequence(Qt.Key.Key_Escape), self, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        esc.activated.connect(self.close_bar)
        self.hide()

    def open(self, replace: bool = False) -> None:
        sel = self.editor.textCursor().selectedText()
        if sel and "\u2029" not in sel:
            self.find_edit.setText(sel)
        for w in (self.replace_edit, self.replace_b, self.replace_all_b):
            w.setVisible(replace)
        self.show()
        (self.replace_edit if replace and self.find_edit.text() else self.find_edit).setFocus()
        self.find_edit.selectAll()

    def close_bar(self) -> None:
        self.editor.clear_find_highlight()
        self.hide()
        self.editor.setFocus()

    def _flags(self, backward: bool = False) -> QTextDocument.FindFlag:
        f = QTextDocument.FindFlag(0)
        if self.case.isChecked():
            f |= QTextDocument.FindFlag.FindCaseSensitively
        if backward:
            f |= QTextDocument.FindFlag.FindBackward
        return f

    def _find(self, backward: bool) -> bool:
        needle = self.find_edit.text()
        if not needle:
            return False
        doc = self.editor.document()
        c = doc.find(needle, self.editor.textCursor(), self._flags(backward))
        if c.isNull():  # wrap around
            start = QTextCursor(doc)
            if backward:
                start.movePosition(QTextCursor.MoveOperation.End)
            c = doc.find(needle, start, self._flags(backward))
            if not c.isNull():
                self.status.setText("wrapped")
        if c.isNull():
            self.status.setText("not found")
            self.editor.clear_find_highlight()
            return False
        self.editor.setTextCursor(c)
        self.editor.set_find_highlight(*positions.selection(c))
        return True

    def find_next(self) -> bool:
        return self._find(False)

    def find_previous(self) -> bool:
        return self._find(True)

    def _matches(self, c: QTextCursor) -> bool:
        a, b = c.selectedText(), self.find_edit.text()
        return bool(b) and (a == b if self.case.isChecked() else a.lower() == b.lower())

    def replace_one(self) -> None:
        if self.editor.isReadOnly():
            return
        c = self.editor.textCursor()
        if self._matches(c):
            c.insertText(self.replace_edit.text())
        self.find_next()

    def replace_all(self) -> int:
        if self.editor.isReadOnly() or not self.find_edit.text():
            return 0
        doc = self.editor.document()
        needle, repl, n = self.find_edit.text(), self.replace_edit.text(), 0
        edit = QTextCursor(doc)
        edit.beginEditBlock()  # one undo step
        c = doc.find(needle, 0, self._flags())
        while not c.isNull():
            c.insertText(repl)
            n += 1
            c = doc.find(needle, c, self._flags())
        edit.endEditBlock()
        self.status.setText(f"{n} replaced")
        self.editor.clear_find_highlight()
        return n
