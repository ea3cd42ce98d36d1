"""The window's file: new, open, save, the recent list, autosave and recovery after a crash.

A save never silently overwrites what another program wrote: under a lock
every Lacuna window and process takes for that file (fileio.save_text), the
file's stamp (modification time, size, SHA-256) from the last open or save,
or from the autosave a text was restored from, is compared with the disk
first, and a change, or a file made read-only, is put to the user (reload,
overwrite, save as). "Overwrite" overwrites the version the user was told
about; a newer change is asked about again.

When autosave fails (a full or read-only state folder) the user is told once
in the banner and, for as long as it keeps failing and something is unsaved,
by a warning button in the status bar that saves the file. A state folder
that refuses never stops Open, Save or Close.

At start, an in-place save (of a hard-linked file) that a crash cut short is
finished (engine.safe_write.clean_journal); if the file was changed since, it
is left as it is and the banner says where the text being saved is kept.
"""
from __future__ import annotations

import dataclasses
import os
import stat
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QMessageBox, QPushButton

from lacuna.engine.safe_write import display

from . import autosave, fileio, opening, paths, positions
from .editor import document_text

if TYPE_CHECKING:
    from .window import MainWindow

MAX_RECENT = 10


AUTOSAVE_POLL_MS = 50  # how often the window looks whether an autosave written on a thread has ended


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _interrupted(kept) -> str:
    """The message for in-place saves a crash cut short that were left as they are."""
    return " ".join(f"Lacuna was stopped while saving {display(target)}, and {reason}, so it was left as it "
                    f"is; the text Lacuna was saving is kept in {display(copy)}." for target, copy, reason in kept)


class FileController(QObject):
    loadProgress = Signal(int, int)  # characters put in, of how many (Open, Reload, restore of a large text)

    def __init__(self, window: MainWindow, state_dir=None) -> None:
        super().__init__(window)
        self.w = window
        self.path: str | None = None
        self.fmt = fileio.TextFormat()
        self.stamp: fileio.FileStamp | None = None  # the file on disk as last read or written
        self.refused: tuple[str, str | None] | None = None  # (path, suggested codec) of the last file not decoded
        root = Path(state_dir) if state_dir is not None else None
        self.journal = (root or paths.state_dir()) / "saving"
        self.locks = root / "locks" if root is not None else paths.save_locks_dir()
        self.store = autosave.AutosaveStore(None if root is None else root / "autosave")
        self.autosave_warning = QPushButton("⚠ Unsaved work is not protected: Save", objectName="autosaveWarning")
        self.autosave_warning.setFlat(True)
        self.autosave_warning.setStyleSheet("color: #b3261e; font-weight: bold;")
        self.autosave_warning.clicked.connect(lambda: self.save())
        self.autosave_warning.hide()
        window.statusBar().addPermanentWidget(self.autosave_warning)
        self._autosave_warned = False  # the banner was shown for the failure going on now
        # what a killed save or autosave left behind; journal entries of running saves are locked
        cleaned = fileio.clean_stale_temps(self.journal)
        autosave.clean_stale_temps(self.store.folder)
        if cleaned.kept:  # told once the window is up
            QTimer.singleShot(0, self, lambda: self.w.show_error(_interrupted(cleaned.kept)))
        self._autosave_revision = -1
        self._opening: opening.OpenProgress | None = None  # the open under way
        # undone back to the saved text: nothing is left to protect
        window.editor.document().modificationChanged.connect(self._on_modification_changed)
        window.editor.document().modificationChanged.connect(self.update_title)
        window.stateChanged.connect(self.update_actions)
        self.autosave_timer = QTimer(self)
        self.autosave_timer.setInterval(autosave.INTERVAL_MS)
        self.autosave_timer.timeout.connect(self.autosave_now)
        self.autosave_timer.start()

    @property
    def display_name(self) -> str:
        return Path(self.path).name if self.path else "Untitled"

    def update_title(self, *_: object) -> None:
        """The window's title: the file's name, marked while it has unsaved changes."""
        self.w.setWindowTitle(f"{self.display_name}[*] — Lacuna")
        self.w.setWindowModified(self.w.editor.document().isModified())

    def update_actions(self, state: str) -> None:
        """The file actions replace the text: only while no run or preview is shown."""
        w = self.w
        for a in (w.new_action, w.open_action, w.reopen_encoding_action):
            a.setEnabled(state == "idle")

    def confirm_discard(self) -> bool:
        """Ask to save unsaved changes; False: the user cancelled."""
        if not self.w.editor.document().isModified():
            return True
        # a method of its own: tests and automation replace the question there
        answer = self.ask_save_changes(self.display_name)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def ask_save_changes(self, name: str) -> QMessageBox.StandardButton:
        return QMessageBox.warning(
            self.w, "Unsaved changes", f"Save the changes to “{name}” before closing it?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)

    def new_file(self) -> None:
        self.w.infill.leave_run()
        if not self.confirm_discard():
            return
        self._set_text("", None, fileio.TextFormat())

    def open_dialog(self) -> None:
        start = str(Path(self.path).parent) if self.path else ""
        path, _ = QFileDialog.getOpenFileName(self.w, "Open a text file", start, "Text files (*.txt *.md *.*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str, encoding: str | None = None) -> bool:
        """Open ``path``; ``encoding`` None: UTF-8 or what a BOM names, else a codec of
        fileio.ENCODINGS. A file that is not text in it is refused with an offer to
        reopen it with another encoding."""
        if self._opening is not None:  # asked again while a large file opens (events run meanwhile)
            return False
        self.w.infill.leave_run()
        if not self.confirm_discard():
            return False
        self._opening = progress = opening.OpenProgress(self.w, Path(path).name)
        try:
            return self._open(path, encoding, progress)
        finally:
            progress.close()
            self._opening = None

    @property
    def loading(self) -> bool:
        """A file is being opened: the event loop runs behind its progress dialog, and
        the document is not that file yet."""
        return self._opening is not None

    def cancel_load(self) -> None:
        """Stop the open under way (a large file), as its Cancel button does."""
        if self._opening is not None:
            self._opening.cancel()

    def _read(self, path: str, encoding: str | None, progress: opening.OpenProgress):
        """fileio.open_text, and the text's positions.PositionMap. A large regular file is
        read on a thread, behind the progress dialog, which builds the map too (0.5 s of
        CPU for 50 MB with astral characters: not on the GUI thread at the first keystroke);
        for a small one the map is None (built at first use, in milliseconds)."""
        try:
            st = os.stat(path)
            large = stat.S_ISREG(st.st_mode) and st.st_size >= opening.READ_ON_THREAD
        except OSError:
            large = False  # open_text says what is wrong
        if not large:
            return (*fileio.open_text(path, encoding), None)

        def read():
            text, fmt, stamp = fileio.open_text(path, encoding)
            return text, fmt, stamp, positions.PositionMap(text)

        return progress.run(read)

    def _open(self, path: str, encoding: str | None, progress: opening.OpenProgress) -> bool:
        try:
            text, fmt, stamp, where = self._read(path, encoding, progress)
            real = fileio.real_path(path)
        except opening.Cancelled:  # nothing changed yet: the window keeps what it showed
            self.w.statusBar().showMessage(f"Opening {Path(path).name} was cancelled.", 6000)
            return False
        except fileio.EncodingError as exc:
            self.refused = (fileio.real_path(path), exc.suggestion)
            self.w.show_error(str(exc), ("Reopen with Encoding…",
                                         lambda: self.reopen_with_encoding(*self.refused)))
            return False
        except fileio.FileError as exc:
            self.w.show_error(str(exc))
            self._remove_recent(path)
            return False
        self.refused = None
        if not self._set_text(text, real, fmt, progress):
            self.w.statusBar().showMessage(f"Opening {Path(real).name} was cancelled.", 6000)
            return False
        if where is not None:
            positions.for_document(self.w.editor.document()).adopt(where)
        self.stamp = stamp
        self._add_recent(self.path)
        return True

    def ask_encoding(self, name: str, current: str | None) -> str | None:
        """Which encoding to read ``name`` with: a codec of fileio.ENCODINGS, or None (cancelled)."""
        codecs_, labels = zip(*fileio.ENCODINGS)
        k = codecs_.index(current) if current in codecs_ else 0
        label, ok = QInputDialog.getItem(self.w, "Reopen with Encoding", f"Read “{name}” as:", list(labels), k, False)
        return codecs_[labels.index(label)] if ok and label in labels else None

    def reopen_with_encoding(self, path: str | None = None, suggestion: str | None = None) -> bool:
        """Read the file again in an encoding the user picks (the open one, or the one just
        refused). Saving writes that encoding back."""
        if path is None:
            path = self.path
            if path is None and self.refused is not None:
                path, suggestion = self.refused
        if path is None:
            self.w.show_error("Open a file first: Reopen with Encoding reads the open file again in another encoding.")
            return False
        if suggestion is None and path == self.path:
            suggestion = "utf-16" if self.fmt.encoding.startswith("utf-16") else self.fmt.encoding
        encoding = self.ask_encoding(Path(path).name, suggestion)
        if encoding is None:
            return False
        return self.open_path(path, encoding)

    def _encoding_to_reread(self) -> str | None:
        # UTF-8 is also what a file without a BOM opens as; the others were chosen, or named by a BOM
        return None if self.fmt.encoding == "utf-8" else self.fmt.encoding

    def reload(self) -> bool:
        """Read the file again (it changed on disk), as one undoable edit: Ctrl+Z gives back
        what the window held. A large file is read on a thread and goes in piece by piece
        behind a progress dialog; Cancel (or closing the window) leaves the window's text."""
        if self.path is None or self._opening is not None:
            return False
        self.w.infill.leave_run()
        self._opening = progress = opening.OpenProgress(self.w, self.display_name)
        try:
            return self._reload(progress)
        finally:
            progress.close()
            self._opening = None

    def _reload(self, progress: opening.OpenProgress) -> bool:
        try:
            text, fmt, stamp, where = self._read(self.path, self._encoding_to_reread(), progress)
        except opening.Cancelled:
            self.w.statusBar().showMessage(f"Reloading {self.display_name} was cancelled.", 6000)
            return False
        except fileio.FileError as exc:
            self.w.show_error(str(exc))
            return False
        editor = self.w.editor
        editor.clear_masks()
        editor.clear_tint()
        self.w.infill.clear_candidates()
        if not progress.replace(editor, text, self.loadProgress.emit, "Reloading"):
            self.w.statusBar().showMessage(f"Reloading {self.display_name} was cancelled; the window "
                                           "keeps your version.", 6000)
            return False
        if where is not None:
            positions.for_document(editor.document()).adopt(where)
        editor.document().setModified(False)
        self.fmt, self.stamp = fmt, stamp
        self.w.format_label.setText(fmt.label)
        self.update_title()
        self.w.statusBar().showMessage(f"Reloaded {self.display_name} from disk; Ctrl+Z brings back your version.", 6000)
        return True

    def _set_text(self, text: str, path: str | None, fmt: fileio.TextFormat,
                  progress: opening.OpenProgress | None = None) -> bool:
        """Show ``text`` as the unmodified contents of ``path`` with no undo history. A
        large text goes in piece by piece behind ``progress``; False: the user cancelled
        it (or closed the window), and the window holds an empty untitled text."""
        w, editor = self.w, self.w.editor
        editor.clear_masks()
        editor.clear_tint()
        w.infill.clear_candidates()
        w.infill.last_accept = []
        doc = editor.document()
        doc.setUndoRedoEnabled(False)
        if progress is None:
            editor.setPlainText(text)
            filled = True
        else:
            filled = progress.fill(editor, text, self.loadProgress.emit)
        if not filled:
            path, fmt = None, fileio.TextFormat()
            editor.setPlainText("")
        doc.setUndoRedoEnabled(True)
        doc.setModified(False)
        self._autosave_unneeded()
        self.path, self.fmt, self.stamp = path, fmt, None
        w.format_label.setText(fmt.label)
        w.banner.hide()
        self.update_title()
        w.refresh_actions()
        return filled

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self.save_to(self.path)

    def save_as(self, path: str | None = None) -> bool:
        if not path:
            path, _ = QFileDialog.getSaveFileName(self.w, "Save as", self.path or "untitled.txt")
            if not path:
                return False
        return self.save_to(path)

    def ask_file_conflict(self, name: str, kind: str) -> str:
        """Ask what to do: ``kind`` "changed" (another program changed the file) or
        "readonly". Returns "reload", "overwrite", "save_as" or "cancel"."""
        box = QMessageBox(self.w)
        box.setIcon(QMessageBox.Icon.Warning)
        if kind == "changed":
            box.setWindowTitle("File changed on disk")
            box.setText(f"“{name}” was changed by another program since Lacuna opened or saved it.")
            box.setInformativeText("Reload it (your version stays one Ctrl+Z away), overwrite it with "
                                   "your version, or save yours under another name?")
            buttons = [("Reload", "reload"), ("Overwrite", "overwrite"), ("Save As…", "save_as")]
        else:
            box.setWindowTitle("File is read-only")
            box.setText(f"“{name}” is read-only.")
            box.setInformativeText("Replace it anyway, or save your text under another name?")
            buttons = [("Overwrite", "overwrite"), ("Save As…", "save_as")]
        answers = {box.addButton(label, QMessageBox.ButtonRole.ActionRole): key for label, key in buttons}
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        return answers.get(box.clickedButton(), "cancel")

    def save_to(self, path: str) -> bool:
        doc = self.w.editor.document()
        try:
            target = fileio.real_path(path)
        except fileio.FileError as exc:  # a link another user planted in /tmp
            self.w.show_error(str(exc))
            return False
        # Save As to another file: its dialog asked about replacing it
        expected = self.stamp if target == self.path else None
        if not fileio.writable(target):
            answer = self.ask_file_conflict(Path(target).name, "readonly")
            if answer == "save_as":
                return self.save_as()
            if answer != "overwrite":
                return False
        while True:
            try:
                self.fmt, self.stamp = fileio.save_text(target, document_text(doc), self.fmt, expected,
                                                        self.journal, self.locks)
                break
            except fileio.Conflict as exc:
                answer = self.ask_file_conflict(Path(target).name, "changed")
                if answer == "reload":
                    self.reload()
                    return False
                if answer == "save_as":
                    return self.save_as()
                if answer != "overwrite":
                    return False
                expected = exc.current  # that version, and no newer one, is overwritten
            except fileio.CannotEncode as exc:
                self.w.show_error(str(exc), ("Save as UTF-8", lambda: self.save_as_utf8(target)))
                return False
            except fileio.FileError as exc:
                self.w.show_error(str(exc))
                return False
        self.path = target
        self.w.format_label.setText(self.fmt.label)
        doc.setModified(False)
        self._autosave_unneeded()
        self._add_recent(self.path)
        self.update_title()
        self.w.statusBar().showMessage(f"Saved {self.path}", 4000)
        return True

    def save_as_utf8(self, path: str | None = None) -> bool:
        """Save in UTF-8 (no BOM), keeping every line's ending: the way out when
        the text holds characters the file's encoding cannot store."""
        previous = self.fmt
        self.fmt = dataclasses.replace(self.fmt, encoding="utf-8", bom=False)
        target = path or self.path
        if self.save_to(target) if target else self.save_as():
            return True
        self.fmt = previous
        return False

    # --------------------------------------------------------------- recent
    def _recent(self) -> list[str]:
        v = self.w.s.value("files/recent", [])
        if isinstance(v, str):  # QSettings gives a one-item list back as a plain string
            v = [v]
        return [str(x) for x in (v or [])]

    def _set_recent(self, items: list[str]) -> None:
        self.w.s.setValue("files/recent", items[:MAX_RECENT])
        self.rebuild_recent()

    def _add_recent(self, path: str) -> None:
        self._set_recent([path] + [p for p in self._recent() if p != path])

    def _remove_recent(self, path: str) -> None:
        p = str(Path(path).resolve())
        self._set_recent([x for x in self._recent() if x != p])

    def rebuild_recent(self) -> None:
        menu = self.w.recent_menu
        menu.clear()
        items = self._recent()
        for k, p in enumerate(items):
            a = menu.addAction(f"&{k + 1} {Path(p).name}  —  {Path(p).parent}")
            a.triggered.connect(lambda _=False, p=p: self.open_path(p))
        if items:
            menu.addSeparator()
            menu.addAction("Clear Recent", lambda: self._set_recent([]))
        menu.setEnabled(bool(items))

    # ------------------------------------------------------------- autosave
    def _on_modification_changed(self, modified: bool) -> None:
        if not modified:
            self._autosave_unneeded()

    def _autosave_unneeded(self) -> None:
        """Nothing unsaved is left (saved, or undone back to the saved text): no autosave, no warning."""
        self.store.discard()
        self._autosave_revision = -1
        self.autosave_warning.hide()

    def autosave_now(self) -> bool:
        """Write the unsaved text to this window's autosave; False if there was nothing to
        write or the write failed. A large text is written on a thread (True: under way),
        and a failure is reported when it ends."""
        doc = self.w.editor.document()
        if not doc.isModified() or self.loading or self.store.busy:
            return False
        if doc.revision() == self._autosave_revision:
            return False
        text, fmt = document_text(doc), self.fmt
        args = (text, self.path, fmt.encoding, fmt.bom, fmt.newline, fileio.settled_endings(text, fmt), self.stamp)
        if len(text) >= opening.READ_ON_THREAD:
            self.store.write_behind(*args)
            self._autosave_revision = doc.revision()
            QTimer.singleShot(AUTOSAVE_POLL_MS, self, self._autosave_written)
            return True
        try:
            self.store.write(*args)
        except (OSError, ValueError) as exc:
            self._autosave_failed(exc)
            return False
        self._autosave_written()
        self._autosave_revision = doc.revision()
        return True

    def _autosave_written(self) -> None:
        """An autosave ended (a write_behind is looked at again until it has)."""
        if self.store.busy:
            QTimer.singleShot(AUTOSAVE_POLL_MS, self, self._autosave_written)
            return
        error = self.store.wait()
        if error is not None:
            self._autosave_revision = -1  # written again at the next tick
            self._autosave_failed(error)
            return
        self._autosave_warned = False
        self.autosave_warning.hide()

    def _autosave_failed(self, exc: Exception) -> None:
        """Say, and keep saying until it works again, that a crash would lose the unsaved work."""
        folder = self.store.folder
        reason = getattr(exc, "strerror", None) or str(exc)
        message = (f"Unsaved work is not protected: autosave cannot write to {folder} ({reason}), so a crash "
                   f"now would lose every change since the last save. Save now, and free space on that disk "
                   f"or fix the permissions of {folder}.")
        self.autosave_warning.setToolTip(message)
        self.autosave_warning.show()
        if not self._autosave_warned:
            self._autosave_warned = True
            self.w.show_error(message, ("Save Now", lambda: self.save()))

    def restore(self, rec: autosave.Recovered) -> bool:
        """Load recovered work as unsaved changes to its file (or an untitled text), with the
        endings, encoding and stamp its autosave kept: Save keeps the endings of untouched lines
        and asks if the file changed after the crash. A large text goes in piece by piece
        behind a progress dialog; Cancel (or closing the window) leaves an empty untitled
        text and keeps the autosave for the next offer (False)."""
        encoding = rec.encoding if rec.encoding in fileio.LABELS else "utf-8"
        newline = rec.newline if rec.newline in ("\n", "\r\n", "\r", "\u2029") else "\n"
        fmt = fileio.with_endings(fileio.TextFormat(encoding, rec.bom, newline), rec.text, rec.endings)
        self._set_text("", rec.path, fmt)
        name = Path(rec.path).name if rec.path else "the recovered text"
        self._opening = progress = opening.OpenProgress(self.w, name)
        try:
            # undoable, and the document is modified; sealed: typing next is its own undo step (as Accept does)
            restored = progress.replace(self.w.editor, rec.text, self.loadProgress.emit, "Restoring", seal=True)
        finally:
            progress.close()
            self._opening = None
        if not restored:
            self._set_text("", None, fileio.TextFormat())
            self.w.statusBar().showMessage(f"Restoring {name} was cancelled; File ▸ Recover Unsaved Work… "
                                           "offers it again.", 6000)
            return False
        self.stamp = rec.stamp if rec.path else None
        self.update_title()
        _unlink_quietly(rec.file)
        _unlink_quietly(rec.file.with_suffix(".lock"))
        self.autosave_now()
        return True

    def ask_recovery(self, rec: autosave.Recovered, k: int, n: int) -> str:
        """Offer one crashed window's autosave: "restore", "discard" or "later"."""
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(rec.saved_at))
        name = Path(rec.path).name if rec.path else "an untitled text"
        count = f" ({k + 1} of {n})" if n > 1 else ""
        box = QMessageBox(QMessageBox.Icon.Question, "Restore unsaved work?",
                          f"Lacuna did not close properly. Unsaved work on {name} "
                          f"(autosaved {when}) can be restored{count}.", parent=self.w)
        restore = box.addButton("Restore", QMessageBox.ButtonRole.AcceptRole)
        discard = box.addButton("Discard", QMessageBox.ButtonRole.DestructiveRole)
        box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        return {restore: "restore", discard: "discard"}.get(box.clickedButton(), "later")

    def offer_recovery(self) -> None:
        """Offer every crashed window's autosave, newest first. One can be restored into
        this window; the others stay on disk and File ▸ Recover Unsaved Work offers them
        again. Discard deletes only the autosave it named."""
        orphans = autosave.find_orphans(self.store.folder)
        for k, rec in enumerate(orphans):
            answer = self.ask_recovery(rec, k, len(orphans))
            if answer == "discard":
                autosave.remove(rec)
            elif answer == "restore":
                if not self.confirm_discard():
                    return
                self.restore(rec)
                left = len(autosave.find_orphans(self.store.folder))
                if left:
                    self.w.show_error(f"{left} more autosaved text{'s' if left > 1 else ''} from a crash "
                                      f"{'are' if left > 1 else 'is'} kept: File ▸ Recover Unsaved Work… "
                                      "offers them again.")
                return
