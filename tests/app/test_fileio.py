"""Files: exact round trips, atomic saves, refusals."""
from __future__ import annotations

import codecs
import os

import pytest

from lacuna.app import fileio

SAMPLES = {
    "utf8_lf": "héllo wörld\nsecond line\n".encode("utf-8"),
    "utf8_bom": codecs.BOM_UTF8 + "héllo\nwörld".encode("utf-8"),
    "utf8_crlf": "one\r\ntwo\r\nthree\r\n".encode("utf-8"),
    "utf16le_bom": codecs.BOM_UTF16_LE + "ünïcode\r\nline 2\r\n".encode("utf-16-le"),
    "utf16be_bom": codecs.BOM_UTF16_BE + "big endian\nzwei".encode("utf-16-be"),
    "nbsp_tabs": "a\u00a0b\tc\u2028d\n".encode("utf-8"),
    "empty": b"",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_decode_encode_roundtrip(name):
    data = SAMPLES[name]
    text, fmt = fileio.decode(data)
    assert "\r\n" not in text
    assert fileio.encode(text, fmt) == data


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_window_open_save_unedited_is_byte_identical(window, tmp_path, name):
    src = tmp_path / f"{name}.txt"
    src.write_bytes(SAMPLES[name])
    assert window.files.open_path(str(src))
    assert not window.editor.document().isModified()
    out = tmp_path / f"{name}-copy.txt"
    assert window.files.save_as(str(out))
    assert out.read_bytes() == SAMPLES[name]


def test_edit_keeps_encoding_and_newlines(window, tmp_path):
    src = tmp_path / "crlf16.txt"
    src.write_bytes(SAMPLES["utf16le_bom"])
    window.files.open_path(str(src))
    window.editor.moveCursor(window.editor.textCursor().MoveOperation.End)
    window.editor.insertPlainText("added\n")
    assert window.windowTitle() == "crlf16.txt[*] — Lacuna" and window.isWindowModified()
    assert window.files.save()
    assert not window.isWindowModified()
    assert src.read_bytes() == codecs.BOM_UTF16_LE + "ünïcode\r\nline 2\r\nadded\r\n".encode("utf-16-le")


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", bytes(range(256)) * 4,
                                  "caf\xe9 latin-1".encode("latin-1")])
def test_binary_or_undecodable_is_refused_with_a_message(window, tmp_path, data):
    window.editor.setPlainText("keep me")
    window.editor.document().setModified(False)
    f = tmp_path / "blob.bin"
    f.write_bytes(data)
    assert not window.files.open_path(str(f))
    assert window.banner.isVisible()
    msg = window.banner_label.text()
    assert "blob.bin" in msg and ("binary" in msg or "not valid" in msg)
    assert window.editor.toPlainText() == "keep me"


def test_missing_file_message(window, tmp_path):
    assert not window.files.open_path(str(tmp_path / "nope.txt"))
    assert "Could not read" in window.banner_label.text()


def test_atomic_save_never_truncates(tmp_path, monkeypatch):
    target = tmp_path / "doc.txt"
    target.write_bytes(b"original")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(fileio.FileError, match="No space left"):
        fileio.write_text_atomic(target, "new text", fileio.TextFormat())
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["doc.txt"]  # no temp file left behind


def test_five_megabyte_file_opens_quickly(window, tmp_path, qtbot):
    import time

    line = "The quick brown fox jumps over the lazy dog, again and again. " * 2 + "\n"
    data = (line * (5_000_000 // len(line) + 1)).encode()
    f = tmp_path / "big.txt"
    f.write_bytes(data)
    t = time.perf_counter()
    assert window.files.open_path(str(f))
    qtbot.wait(1)  # let it lay out and paint once
    elapsed = time.perf_counter() - t
    assert elapsed < 1.5, elapsed
    assert window.editor.document().characterCount() - 1 == len(data)


def test_recent_files_menu(window, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("A")
    b.write_text("B")
    window.files.open_path(str(a))
    window.files.open_path(str(b))
    names = [act.text() for act in window.recent_menu.actions() if act.text()]
    assert names[0].startswith("&1 b.txt") and names[1].startswith("&2 a.txt")
    window.recent_menu.actions()[1].trigger()
    assert window.editor.toPlainText() == "A"


def test_unsaved_changes_prompt_can_cancel_close(window, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window.editor.insertPlainText("unsaved")
    asked = []
    monkeypatch.setattr(window.files, "ask_save_changes", lambda name: asked.append(name) or QMessageBox.StandardButton.Cancel)
    assert not window.close()
    assert asked == ["Untitled"] and window.isVisible()
    monkeypatch.setattr(window.files, "ask_save_changes", lambda name: QMessageBox.StandardButton.Discard)
    assert window.close()
