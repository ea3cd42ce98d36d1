"""Autosave of unsaved work and the offer to restore it after a crash."""
from __future__ import annotations

import json

from lacuna.app import autosave
from lacuna.app.paths import autosave_dir


def test_autosave_writes_only_unsaved_changes_and_restores(make_window, tmp_path, qtbot):
    w = make_window()
    assert w.files.autosave_timer.interval() == 30_000 and w.files.autosave_timer.isActive()
    assert not w.files.autosave_now()  # nothing unsaved
    doc = tmp_path / "notes.txt"
    doc.write_bytes("first line\r\n".encode("utf-8"))
    w.files.open_path(str(doc))
    w.editor.moveCursor(w.editor.textCursor().MoveOperation.End)
    w.editor.insertPlainText("unsaved work\n")
    assert w.files.autosave_now()
    assert not w.files.autosave_now()  # unchanged since the last autosave
    files = list(autosave_dir().glob("*.json"))
    assert len(files) == 1
    data = json.loads(files[0].read_text(encoding="utf-8"))
    assert data["text"] == "first line\nunsaved work\n" and data["path"] == str(doc.resolve())

    # the process "crashed": its file is an orphan for the next start
    orphans = autosave.find_orphans(alive=lambda pid: False)
    assert [o.text for o in orphans] == ["first line\nunsaved work\n"]
    w2 = make_window()
    w2.files.restore(orphans[0])
    assert w2.editor.toPlainText() == "first line\nunsaved work\n"
    assert w2.files.path == str(doc.resolve()) and w2.editor.document().isModified()
    assert w2.windowTitle() == "notes.txt[*] — Lacuna"
    assert w2.files.save()
    assert doc.read_bytes() == "first line\r\nunsaved work\r\n".encode("utf-8")  # CRLF kept
    assert not w2.files.store.file.exists()


def test_live_process_files_are_not_orphans(make_window):
    w = make_window()
    w.editor.insertPlainText("typing")
    w.files.autosave_now()
    assert autosave.find_orphans() == []  # our own pid is alive


def test_saving_or_discarding_removes_the_autosave(make_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    w = make_window()
    w.editor.insertPlainText("typing")
    w.files.autosave_now()
    assert w.files.store.file.exists()
    w.files.save_as(str(tmp_path / "saved.txt"))
    assert not w.files.store.file.exists()
    w.editor.insertPlainText(" more")
    w.files.autosave_now()
    monkeypatch.setattr(w.files, "ask_save_changes", lambda name: QMessageBox.StandardButton.Discard)
    assert w.close()
    assert not w.files.store.file.exists()


def test_offer_recovery_restores_on_request(make_window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    folder = autosave_dir()
    folder.mkdir(parents=True)
    (folder / "999999999-deadbeef.json").write_text(json.dumps(
        {"version": 1, "path": None, "text": "lost words", "saved_at": 1.0}), encoding="utf-8")
    w = make_window()

    def fake_exec(box):
        box.buttons()[0].click()  # "Restore"
        return 0

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    w.files.offer_recovery()
    assert w.editor.toPlainText() == "lost words" and w.editor.document().isModified()
    assert not (folder / "999999999-deadbeef.json").exists()


def test_a_lone_surrogate_in_the_text_does_not_stop_the_autosave(tmp_path):
    """Text pasted from a broken source can hold one; the autosave escapes it and gives it back."""
    store = autosave.AutosaveStore(tmp_path)
    store.write("before \udc80 after é", None)
    [rec] = autosave.find_orphans(tmp_path, alive=lambda pid: False)
    assert rec.text == "before \udc80 after é"
    store.write("plain é", None)  # the usual case stays readable UTF-8
    assert "é" in store.file.read_text(encoding="utf-8")
