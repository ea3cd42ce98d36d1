"""Files in Windows-1252, Latin-1 and UTF-16 without a BOM: refused as UTF-8 with an offer
to reopen them with their encoding, which saving keeps byte for byte (issue 14)."""
from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PySide6.QtGui import QTextCursor

from lacuna.app import autosave, fileio
from lacuna.app.paths import autosave_dir

# "Café — naïve “quoted” façade" in Windows-1252: 0x97 em dash, 0x93/0x94 curly quotes
CP1252 = "Café — naïve “quoted” façade\r\nsecond line €5\r\n".encode("cp1252")
LATIN1 = "Gr\u00fc\u00dfe aus K\u00f6ln \u0085 \u00a4\n".encode("latin-1")  # 0x85 is a C1 control in Latin-1


def test_a_windows_1252_file_is_refused_with_an_offer_then_reopened(window, tmp_path, monkeypatch):
    f = tmp_path / "legacy.txt"
    f.write_bytes(CP1252)
    asked = []
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: asked.append((name, current)) or "cp1252")
    assert not window.files.open_path(str(f))
    assert window.banner.isVisibleTo(window) and "not valid UTF-8" in window.banner_label.text()
    assert "Windows-1252" in window.banner_label.text()  # the suggestion
    button = window.banner_action
    assert button.isVisibleTo(window) and button.text() == "Reopen with Encoding…"
    button.click()  # the refusal message itself offers the way out
    assert asked == [("legacy.txt", "cp1252")]
    assert window.editor.toPlainText() == "Café — naïve “quoted” façade\nsecond line €5\n"
    assert window.files.path == str(f.resolve()) and window.files.fmt.encoding == "cp1252"
    assert window.format_label.text() == "Windows-1252 · CRLF"
    assert not window.banner.isVisibleTo(window)
    # an unchanged save writes the same bytes
    window.editor.document().setModified(True)
    assert window.files.save()
    assert f.read_bytes() == CP1252
    # an edit is written in Windows-1252 too, the other bytes unchanged
    c = QTextCursor(window.editor.document())
    c.movePosition(QTextCursor.MoveOperation.End)
    c.insertText("déjà vu\n")
    assert window.files.save()
    assert f.read_bytes() == CP1252 + "déjà vu\r\n".encode("cp1252")


def test_reopen_with_encoding_from_the_file_menu(window, tmp_path, monkeypatch):
    from PySide6.QtGui import QAction

    f = tmp_path / "latin.txt"
    f.write_bytes(LATIN1)
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: "cp1252")
    assert not window.files.open_path(str(f))  # not UTF-8
    action = window.findChild(QAction, "reopenEncodingAction")
    assert action in window.menuBar().actions()[0].menu().actions()
    action.trigger()  # 0x85 decodes in Windows-1252 too ("…"), so this opens
    assert window.files.fmt.encoding == "cp1252" and "…" in window.editor.toPlainText()
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: current == "cp1252" and "latin-1")
    action.trigger()  # the open file, read again; the question starts at its encoding
    assert window.files.fmt.encoding == "latin-1" and window.format_label.text().startswith("Latin-1")
    assert window.editor.toPlainText() == LATIN1.decode("latin-1")
    window.editor.document().setModified(True)
    assert window.files.save() and f.read_bytes() == LATIN1


def test_only_what_cannot_be_decoded_is_refused(window, tmp_path, monkeypatch):
    f = tmp_path / "undefined.txt"
    f.write_bytes(b"abc \x81 def\n")  # 0x81 has no character in Windows-1252
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: "cp1252")
    assert not window.files.open_path(str(f), "cp1252")
    text = window.banner_label.text()
    assert "not Windows-1252 text" in text and "0x81" in text and "offset 4" in text
    assert window.files.path is None
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: "latin-1")
    window.banner_action.click()
    assert window.editor.toPlainText() == "abc \x81 def\n" and window.files.fmt.encoding == "latin-1"


def test_cancelling_the_question_changes_nothing(window, tmp_path, monkeypatch):
    f = tmp_path / "a.txt"
    f.write_bytes("plain é\n".encode("utf-8"))
    assert window.files.open_path(str(f))
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: None)
    assert not window.files.reopen_with_encoding()
    assert window.files.fmt.encoding == "utf-8" and window.editor.toPlainText() == "plain é\n"


def test_utf16_without_bom_reopened_as_utf16(window, tmp_path, monkeypatch):
    data = "Zeile eins\r\nzwei ü\r\n".encode("utf-16-be")
    f = tmp_path / "u16.txt"
    f.write_bytes(data)
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: current)
    assert not window.files.open_path(str(f))  # NUL bytes: refused...
    assert window.files.reopen_with_encoding()  # ...the menu offers UTF-16 for the refused file
    assert window.files.fmt.encoding == "utf-16-be" and not window.files.fmt.bom
    assert window.editor.toPlainText() == "Zeile eins\nzwei ü\n"
    window.editor.document().setModified(True)
    assert window.files.save() and f.read_bytes() == data


def test_unsavable_character_is_one_clear_message_and_loses_nothing(window, tmp_path, monkeypatch):
    f = tmp_path / "legacy.txt"
    f.write_bytes(CP1252)
    assert window.files.open_path(str(f), "cp1252")
    window.editor.insertPlainText("🙂")
    assert not window.files.save()
    assert "cannot be saved as Windows-1252" in window.banner_label.text() and "🙂" in window.banner_label.text()
    assert f.read_bytes() == CP1252 and window.editor.document().isModified()


@pytest.mark.parametrize("encoding, data, typed", [
    ("cp1252", CP1252, "🙂"),
    ("latin-1", "Grüße\r\nzwei\r\n".encode("latin-1"), "an — em dash, “quoted”, 5 €"),
])
def test_the_unsavable_message_offers_utf8_which_keeps_the_text_and_its_endings(window, tmp_path, encoding,
                                                                                data, typed):
    f = tmp_path / "legacy.txt"
    f.write_bytes(data)
    assert window.files.open_path(str(f), encoding)
    window.editor.moveCursor(QTextCursor.MoveOperation.End)
    window.editor.insertPlainText(typed)
    assert not window.files.save()
    assert window.banner_action.isVisible() and window.banner_action.text() == "Save as UTF-8"
    window.banner_action.click()
    expected = data.decode(encoding) + typed
    assert f.read_bytes() == expected.encode("utf-8")  # CRLF endings kept as they were
    assert not window.editor.document().isModified() and "UTF-8" in window.format_label.text()


def test_a_bom_with_bytes_utf8_cannot_hold_suggests_an_encoding():
    with pytest.raises(fileio.EncodingError) as err:
        fileio.decode(b"\xef\xbb\xbfcaf\xe9\n", "f")
    assert err.value.suggestion == "cp1252" and "Reopen it with its encoding" in str(err.value)


def test_disk_change_reload_and_read_only_keep_the_encoding(window, tmp_path, monkeypatch):
    f = tmp_path / "legacy.txt"
    f.write_bytes(CP1252)
    assert window.files.open_path(str(f), "cp1252")
    changed = "Ç'est changé\r\n".encode("cp1252")
    f.write_bytes(changed)
    window.editor.insertPlainText("mine ")
    asked = []
    monkeypatch.setattr(window.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "reload")
    assert not window.files.save()
    assert asked == ["changed"]
    assert window.editor.toPlainText() == "Ç'est changé\n" and window.files.fmt.encoding == "cp1252"
    os.chmod(f, stat.S_IREAD)
    try:
        window.editor.moveCursor(QTextCursor.MoveOperation.Start)
        window.editor.insertPlainText("x")
        monkeypatch.setattr(window.files, "ask_file_conflict", lambda name, kind: asked.append(kind) or "overwrite")
        if os.access(f, os.W_OK) and os.geteuid() != 0:
            pytest.skip("cannot make a read-only file here")
        assert window.files.save()
        assert asked[-1] == "readonly"
        assert f.read_bytes() == ("x" + "Ç'est changé\r\n").encode("cp1252")
    finally:
        os.chmod(f, stat.S_IREAD | stat.S_IWRITE)


def test_autosave_and_recovery_remember_the_encoding(make_window, tmp_path):
    f = tmp_path / "legacy.txt"
    f.write_bytes(CP1252)
    w = make_window()
    assert w.files.open_path(str(f), "cp1252")
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    w.editor.insertPlainText("après\n")
    assert w.files.autosave_now()
    data = json.loads(next(autosave_dir().glob("*.json")).read_text(encoding="utf-8"))
    assert data["encoding"] == "cp1252"
    orphans = autosave.find_orphans(alive=lambda pid: False)
    w2 = make_window()
    w2.files.restore(orphans[0])
    assert w2.files.fmt.encoding == "cp1252" and w2.format_label.text() == "Windows-1252 · CRLF"
    assert w2.files.save()
    assert f.read_bytes() == CP1252 + "après\r\n".encode("cp1252")


def test_recovery_of_an_unknown_encoding_falls_back_to_utf8(make_window):
    from pathlib import Path

    w = make_window()
    rec = autosave.Recovered(Path("/nonexistent/x.json"), None, "text", 1.0, "klingon")
    w.files.restore(rec)
    assert w.files.fmt.encoding == "utf-8"


# ---- fileio, without a window -----------------------------------------------------------
@pytest.mark.parametrize("data, expected", [
    (CP1252, "cp1252"), (LATIN1, "cp1252"), (b"abc \x81\n", "latin-1"),
    ("ascii text".encode("utf-16-le"), "utf-16"), (b"\xff\xfeh\x00i\x00", "utf-16"),
])
def test_suggest_encoding(data, expected):
    assert fileio.suggest_encoding(data) == expected


def test_unknown_encoding_is_a_clear_error():
    with pytest.raises(fileio.FileError, match="cannot read shift_jis"):
        fileio.decode(b"abc", "x.txt", "shift_jis")


single_byte = st.sampled_from(["cp1252", "latin-1"])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), single_byte)
def test_single_byte_round_trip_keeps_every_byte(data, encoding):
    """What decodes (all of Latin-1, all but five bytes of Windows-1252) saves back identically."""
    data = data.replace(b"\x00", b" ")  # NULs make it binary: refused in every encoding
    try:
        text, fmt = fileio.decode(data, "x", encoding)
    except fileio.NotText:
        return  # many control bytes: looks binary
    except fileio.EncodingError:
        assert encoding == "cp1252" and any(b in data for b in b"\x81\x8d\x8f\x90\x9d")
        return
    assert fileio.encode(text, fmt) == data


# ---- UTF-16 without a BOM holding mostly CJK text (issue 20) ----------------------------------------
CJK = "日本語のテキストです。\n中文文本，用于测试。\n한국어 텍스트입니다.\n"


@pytest.mark.parametrize("order", ["utf-16-le", "utf-16-be"])
def test_mostly_cjk_utf16_without_a_bom_is_offered_as_utf16_and_reopens(window, tmp_path, monkeypatch, order):
    data = CJK.encode(order)
    f = tmp_path / "cjk.txt"
    f.write_bytes(data)
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: current)
    assert not window.files.open_path(str(f))
    assert "looks like UTF-16" in window.banner_label.text() and "binary" not in window.banner_label.text()
    assert window.banner_action.text() == "Reopen with Encoding…"
    window.banner_action.click()  # the suggestion is UTF-16, and the byte order is found
    assert window.files.fmt.encoding == order and not window.files.fmt.bom
    assert window.editor.toPlainText() == CJK
    window.editor.document().setModified(True)
    assert window.files.save() and f.read_bytes() == data


@pytest.mark.parametrize("order", ["utf-16-le", "utf-16-be"])
def test_cjk_utf16_without_any_ascii_is_suggested_as_utf16(order):
    data = "これは日本語の文章です。改行がない長い文章でも正しく読めるはずです".encode(order)
    with pytest.raises(fileio.EncodingError) as err:
        fileio.decode(data, "x.txt")
    assert err.value.suggestion == "utf-16"
    assert fileio.decode(data, "x.txt", "utf-16")[1].encoding == order


def test_a_file_refused_as_binary_can_still_be_reopened_with_an_encoding(window, tmp_path, monkeypatch):
    f = tmp_path / "odd.txt"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    asked = []
    monkeypatch.setattr(window.files, "ask_encoding", lambda name, current: asked.append(name) or "latin-1")
    assert not window.files.open_path(str(f))
    assert "binary" in window.banner_label.text() and window.banner_action.text() == "Reopen with Encoding…"
    window.banner.hide()
    window.reopen_encoding_action.trigger()  # the menu reaches the refused file too
    assert asked == ["odd.txt"]  # latin-1 still finds NULs in it: refused again, with the same way out
    assert "binary" in window.banner_label.text() and window.banner_action.isVisibleTo(window)


cjk_chars = st.one_of(st.characters(min_codepoint=0x3041, max_codepoint=0x3096),
                      st.characters(min_codepoint=0x30A1, max_codepoint=0x30FA),
                      st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5),
                      st.characters(min_codepoint=0xAC00, max_codepoint=0xD7A3), st.sampled_from("、。，：「」（）"))
ascii_chars = st.sampled_from(list("abc 123\n.,"))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(cjk_chars, cjk_chars, cjk_chars, ascii_chars), min_size=30, max_size=200),
       st.sampled_from(["utf-16-le", "utf-16-be"]))
def test_mostly_cjk_text_is_read_in_its_byte_order(chars, order):
    text = "".join(chars)
    if len(set(text)) < 12 or sum(c in "abc 123\n.," for c in text) * 10 > len(text) * 3:
        return  # a handful of characters repeated has no byte order to find
    assert fileio.utf16_order(text.encode(order)) == order


latin_chars = st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFG      ,.éèüößàç—“”'\n\r0123456789"))


@settings(max_examples=300, deadline=None)
@given(st.lists(latin_chars, min_size=20, max_size=300))
def test_latin_text_in_windows_1252_is_never_taken_for_utf16(chars):
    text = "".join(chars)
    if (sum(c in "éèüößàç—“”" for c in text) * 10 > len(text) or sum(c in "\r\n" for c in text) * 20 > len(text)
            or sum(c.isdigit() for c in text) * 10 > len(text)):
        return  # prose: mostly letters and spaces
    assert fileio.utf16_order(text.encode("cp1252")) is None
