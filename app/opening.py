"""Opening a large file without freezing the window: a modal progress dialog with
Cancel, behind which the file is read and decoded on a thread, then put into the
editor in pieces (app.editor.fill), the event loop running throughout. Reload and
crash recovery replace the text the same way, as one undoable edit.

Measured on 50 MB of short lines (a loaded 2-core machine): reading, hashing and
decoding took 0.25-0.5 s, setPlainText 3.5-10 s, all on the GUI thread; now the
longest stall is one piece (see benchmarks/bench_large_inputs.py).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from PySide6.QtCore import QCoreApplication, QEventLoop, Qt, QTimer
from PySide6.QtWidgets import QPlainTextEdit, QProgressDialog, QWidget

from .editor import fill

T = TypeVar("T")
READ_ON_THREAD = 4 << 20  # bytes: a smaller file is read on the GUI thread (a few ms)
POLL_MS = 10  # how often the event loop looks whether the read has ended


class Cancelled(Exception):
    """The user cancelled the open (or closed the window)."""


class OpenProgress:
    """One open of ``name``: its dialog appears on first use (a small file shows none)."""

    def __init__(self, parent: QWidget, name: str) -> None:
        self._parent, self._name = parent, name
        self._dialog: QProgressDialog | None = None
        self._cancel = False

    @property
    def shown(self) -> bool:
        return self._dialog is not None

    def cancel(self) -> None:
        self._cancel = True

    @property
    def cancelled(self) -> bool:
        return self._cancel or (self._dialog is not None and self._dialog.wasCanceled())

    def _show(self, label: str, total: int) -> QProgressDialog:
        if self._dialog is None:
            self._dialog = QProgressDialog(label, "Cancel", 0, total, self._parent)
            self._dialog.setObjectName("openProgress")
            self._dialog.setWindowModality(Qt.WindowModality.WindowModal)
            self._dialog.setMinimumDuration(0)
            self._dialog.setAutoReset(False)
            self._dialog.setAutoClose(False)
        self._dialog.setLabelText(label)
        self._dialog.setRange(0, total)
        return self._dialog

    def run(self, job: Callable[[], T]) -> T:
        """``job()`` on a thread of its own while the event loop runs; its result, or the
        exception it raised. Raises Cancelled if the user cancelled meanwhile (the job
        still ends on its thread; its result is dropped)."""
        self._show(f"Reading {self._name}…", 0)  # a busy indicator: a read has no steps to count
        outcome: list = []

        def work() -> None:
            try:
                outcome.append((True, job()))
            except BaseException as exc:  # noqa: BLE001 - handed back to the GUI thread
                outcome.append((False, exc))

        thread = threading.Thread(target=work, name="lacuna-open", daemon=True)
        loop = QEventLoop()
        poll = QTimer()
        poll.setInterval(POLL_MS)
        poll.timeout.connect(lambda: (outcome or self.cancelled) and loop.quit())
        thread.start()
        poll.start()
        loop.exec()
        poll.stop()
        if self.cancelled:
            raise Cancelled
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def counter(self, verb: str, total: int, step: Callable[[int, int], None]) -> Callable[[int], bool]:
        """A step for work of ``total`` units: ``each(done)`` shows "``verb`` name…" at ``done``
        in this dialog, handles events, calls ``step(done, total)`` and says whether to go on
        (False once the user cancelled)."""

        def each(done: int) -> bool:
            dialog = self._show(f"{verb} {self._name}…", total)
            dialog.setValue(min(done, total))  # a modal progress dialog handles events here
            QCoreApplication.processEvents()
            step(done, total)
            return not self.cancelled

        return each

    def fill(self, editor: QPlainTextEdit, text: str, step: Callable[[int, int], None]) -> bool:
        """lacuna.app.editor.fill of ``text`` with this dialog counting the pieces; ``step(done,
        total)`` hears each. False: cancelled (the editor holds a prefix of ``text``)."""
        return fill.fill(editor, text, self.counter("Opening", len(text), step))

    def replace(self, editor: QPlainTextEdit, text: str, step: Callable[[int, int], None], verb: str,
                seal: bool = False) -> bool:
        """lacuna.app.editor.fill.replace (one undoable edit) of the editor's text by ``text``, with
        this dialog, labelled "``verb`` name…", counting the pieces; ``step(done, total)``
        hears each. False: cancelled (the edit was undone: the editor holds its old text)."""
        total = editor.document().characterCount() - 1 + len(text)
        return fill.replace(editor, text, self.counter(verb, total, step), seal=seal)

    def close(self) -> None:
        dialog, self._dialog = self._dialog, None
        if dialog is not None:
            dialog.close()
            dialog.deleteLater()
