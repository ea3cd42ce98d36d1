"""Files, round 2 (issue 20): a save or an export changes the file's bytes and nothing else.
Special files are refused, a symlink is written through, the mode, owner and hard links
stay, a killed save's temporary file goes at the next save, long names save in place,
and an export never replaces a file it was not told to."""
from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtGui import QImage, QTextCursor

from lacuna.app import fileio
from lacuna.app.paths import state_dir
from lacuna.app.viz.export import export_paths, replaced_unasked, write_events, write_gif
from lacuna.engine import safe_write

ROOT = Path(__file__).resolve().parents[2]
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown needs root")


def _typed(make_window, text: str = "typed text\n"):
    w = make_window(show=False)
    w.editor.insertPlainText(text)
    return w


def _open_and_edit(make_window, f: Path):
    w = make_window(show=False)
    assert w.files.open_path(str(f))
    w.editor.moveCursor(QTextCursor.MoveOperation.End)
    w.editor.insertPlainText("added\n")
    return w


# ---- special files and symbolic links -------------------------------------------------------------
@needs_fifo
def test_save_as_onto_a_fifo_is_refused_and_the_fifo_stays(make_window, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    w = _typed(make_window)
    assert not w.files.save_as(str(fifo))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert "named pipe" in w.banner_label.text() and "Choose another name" in w.banner_label.text()
    assert w.editor.document().isModified() and w.files.path is None


def test_save_as_onto_a_socket_or_a_device_is_refused(make_window, tmp_path):
    w = _typed(make_window)
    sock_path = tmp_path / "s"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    try:
        assert not w.files.save_as(str(sock_path))
        assert stat.S_ISSOCK(os.lstat(sock_path).st_mode) and "a socket" in w.banner_label.text()
    finally:
        sock.close()
    node = tmp_path / "null"
    try:  # a device node of our own: a bug here must not cost the machine its /dev/null
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (OSError, AttributeError):
        pytest.skip("cannot make a device node here")
    assert not w.files.save_as(str(node))
    assert stat.S_ISCHR(os.lstat(node).st_mode) and "a device" in w.banner_label.text()


def test_save_through_a_symlink_keeps_the_link(make_window, tmp_path):
    real = tmp_path / "real.txt"
    real.write_bytes(b"old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(real.name)
    w = _open_and_edit(make_window, link)
    assert w.files.save()
    assert link.is_symlink() and real.read_bytes() == b"old\nadded\n"
    # Save As onto a chain of links, one of them dangling: the last target is created
    chain, dangling = tmp_path / "chain", tmp_path / "dangling"
    dangling.symlink_to("made.txt")
    chain.symlink_to(dangling.name)
    assert w.files.save_as(str(chain))
    assert chain.is_symlink() and dangling.is_symlink() and (tmp_path / "made.txt").read_bytes() == b"old\nadded\n"


# ---- modes, owners, hard links --------------------------------------------------------------------
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_new_saved_and_exported_files_take_the_umask_mode(make_window, qtbot, tmp_path, umask, mode):
    w = _typed(make_window)
    old = os.umask(umask)
    try:
        assert w.files.save_as(str(tmp_path / "new.txt"))
        write_events([], tmp_path / "run.jsonl", {"request": {}})
        image = QImage(4, 4, QImage.Format.Format_RGB32)
        image.fill(0)
        write_gif([image], tmp_path / "run.gif")
    finally:
        os.umask(old)
    for name in ("new.txt", "run.jsonl", "run.gif"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_a_saved_file_keeps_its_mode_and_its_hard_links(make_window, tmp_path):
    f = tmp_path / "doc.txt"
    f.write_bytes(b"one\n")
    f.chmod(0o640)
    other = tmp_path / "other-name.txt"
    os.link(f, other)
    inode = f.stat().st_ino
    w = _open_and_edit(make_window, f)
    assert w.files.save()
    assert other.read_bytes() == b"one\nadded\n" and f.stat().st_ino == inode and f.stat().st_nlink == 2
    assert stat.S_IMODE(f.stat().st_mode) == 0o640
    assert not list(tmp_path.glob(".lacuna-*"))  # the safety copy went once the file was whole
    w.editor.insertPlainText("again\n")  # the second save checks against the stamp of the first
    assert w.files.save() and other.read_bytes() == b"one\nadded\nagain\n"


@as_root
def test_saving_as_root_keeps_the_files_owner_and_group(make_window, tmp_path):
    f = tmp_path / "theirs.txt"
    f.write_bytes(b"theirs\n")
    os.chown(f, 4321, 4322)
    f.chmod(0o600)
    w = _open_and_edit(make_window, f)
    assert w.files.save()
    st = f.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4322, 0o600)
    assert f.read_bytes() == b"theirs\nadded\n"


def test_an_owner_the_new_file_cannot_take_is_kept_by_writing_in_place(tmp_path, monkeypatch):
    """Not root: the new inode would be ours, so the file is rewritten through its own inode."""
    f = tmp_path / "shared.txt"
    f.write_bytes(b"old contents, longer than the new\n")
    before = f.stat()

    def refuse(fd, uid, gid):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", refuse)
    target, real_lstat = str(f.resolve()), os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **k: _foreign(real_lstat(p, *a, **k), p, target))
    fileio.write_text_atomic(f, "new\n", fileio.TextFormat())
    assert f.read_bytes() == b"new\n" and f.stat().st_ino == before.st_ino
    assert not list(tmp_path.glob(".lacuna-*"))


def _foreign(st: os.stat_result, path, target: str) -> os.stat_result:
    # the target as another user's file: the same stat with another owner
    if os.fspath(path) != target:
        return st
    fields = list(st)
    fields[stat.ST_UID] = st.st_uid + 1
    return os.stat_result(fields)


# ---- a killed save --------------------------------------------------------------------------------
KILLED = """
import os, sys
from lacuna.app import fileio
def stuck(fd):
    print("writing", flush=True)
    sys.stdin.readline()  # killed here: the temp file exists, the rename never happens
os.fsync = stuck
fileio.write_text_atomic(sys.argv[1], "new text", fileio.TextFormat())
"""


def _killed_save(target: Path, script: str = KILLED, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script, str(target), *args], cwd=ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() in ("writing", "rewriting")
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_saves_temp_file_goes_at_the_next_save_in_its_folder(make_window, tmp_path):
    target = tmp_path / "doc.txt"
    target.write_bytes(b"old text")
    _killed_save(target)  # no journal: found by its name, and by nobody holding its lock
    [stale] = tmp_path.glob(".lacuna-*.tmp")
    fd, running = safe_write._new_temp(tmp_path, 0o600)  # a save under way keeps its file
    try:
        w = _typed(make_window)
        assert w.files.save_as(str(tmp_path / "other.txt"))
        assert not stale.exists() and running.exists()
    finally:
        os.close(fd)
        running.unlink()
    assert target.read_bytes() == b"old text"


def test_a_killed_saves_temp_file_goes_when_a_file_beside_it_is_opened(make_window, tmp_path):
    target = tmp_path / "doc.txt"
    target.write_bytes(b"old text")
    _killed_save(target)
    [stale] = tmp_path.glob(".lacuna-*.tmp")
    foreign = tmp_path / ".lacuna-notours.tmp"  # not our name pattern: never touched
    foreign.write_bytes(b"x")
    w = make_window(show=False)
    assert w.files.open_path(str(target))
    assert list(tmp_path.glob(".lacuna-*")) == [foreign]


KILLED_IN_PLACE = """
import os, sys
from pathlib import Path
from lacuna.engine import safe_write
def cut_short(target, source, inode):
    fd = os.open(target, os.O_WRONLY)
    source.seek(0)
    os.write(fd, source.read(safe_write.PAGE))  # the first page of the new text, and no more
    os.close(fd)
    print("rewriting", flush=True)
    sys.stdin.readline()  # killed here: the file is torn, its safety copy is whole
safe_write._rewrite_in_place = cut_short
safe_write.write_bytes(sys.argv[1], Path(sys.argv[3]).read_bytes(), journal=Path(sys.argv[2]))
"""
OLD_TEXT, NEW_TEXT = b"the old text, quite long\n" * 400, b"the whole new text\n" * 700  # 10,000 and 13,300 bytes


def _torn(f: Path, tmp_path: Path) -> None:
    """``f`` (hard-linked) rewritten in place by a save killed after its first page."""
    f.write_bytes(OLD_TEXT)
    os.link(f, tmp_path / "second-link.txt")
    new = tmp_path / "new.bin"
    new.write_bytes(NEW_TEXT)
    _killed_save(f, KILLED_IN_PLACE, str(state_dir() / "saving"), str(new))
    new.unlink()
    assert f.read_bytes() == NEW_TEXT[:4096] + OLD_TEXT[4096:]
    assert len(list(tmp_path.glob(".lacuna-*.copy"))) == 1


def test_a_killed_in_place_rewrite_is_finished_at_the_next_start(make_window, tmp_path):
    f = tmp_path / "linked.txt"
    _torn(f, tmp_path)
    w = make_window(show=False)  # the start cleans the journal
    assert f.read_bytes() == NEW_TEXT == (tmp_path / "second-link.txt").read_bytes()
    assert not list(tmp_path.glob(".lacuna-*")) and not w.banner.isVisibleTo(w)


# ---- long names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a" * 231 + ".txt", "n" * 251 + ".txt", "é" * 125 + ".txt"])
def test_a_file_with_a_long_name_saves_in_place(make_window, tmp_path, name):
    assert len(name.encode()) in (235, 255, 254)
    f = tmp_path / name
    f.write_bytes(b"short text\n")
    w = _open_and_edit(make_window, f)
    assert w.files.save(), w.banner_label.text()
    assert f.read_bytes() == b"short text\nadded\n"


# ---- export names -----------------------------------------------------------------------------------
def test_an_export_lists_the_siblings_it_would_replace_unasked(tmp_path):
    (tmp_path / "data.jsonl").write_text("precious\n")
    gif, lines = export_paths(tmp_path / "data.gif")
    assert (gif.name, lines.name) == ("data.gif", "data.jsonl")
    assert replaced_unasked(tmp_path / "data.gif", (gif, lines)) == [lines]
    (tmp_path / "notes.gif").write_bytes(b"GIF89a")
    (tmp_path / "notes.jsonl").write_text("chosen in the dialog\n")
    gif, lines = export_paths(tmp_path / "notes.jsonl")
    assert replaced_unasked(tmp_path / "notes.jsonl", (gif, lines)) == [gif]
    assert [p.name for p in export_paths(tmp_path / "run.v2")] == ["run.v2.gif", "run.v2.jsonl"]
    assert replaced_unasked(tmp_path / "fresh", export_paths(tmp_path / "fresh")) == []


@given(st.text(st.sampled_from("ab.-_ é"), min_size=1, max_size=12).filter(lambda s: s.strip(". ")),
       st.sampled_from(["", ".gif", ".GIF", ".jsonl", ".txt", ".json", ".v2"]))
def test_export_names_share_a_stem_and_only_the_chosen_file_is_replaced_unasked(stem, suffix):
    chosen = Path("/nowhere") / (stem + suffix)
    gif, lines = export_paths(chosen)
    assert gif.suffix.lower() == ".gif" and lines.suffix == ".jsonl"
    assert gif.name[:-len(gif.suffix)] == lines.name[:-len(".jsonl")]
    assert (chosen in (gif, lines)) == (suffix.lower() in (".gif", ".jsonl"))
    assert chosen.name.startswith(gif.name[:-4])  # nothing of the chosen name is lost


@needs_fifo
def test_an_export_onto_a_fifo_is_refused_with_a_sentence(tmp_path):
    fifo = tmp_path / "run.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as err:
        write_events([], fifo, {"request": {}})
    assert "named pipe" in str(err.value) and "Errno" not in str(err.value)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="no posix_fallocate here")
def test_a_full_disk_fails_an_in_place_save_before_a_byte_changes(make_window, tmp_path, monkeypatch):
    f = tmp_path / "linked.txt"
    f.write_bytes(b"short\n")
    os.link(f, tmp_path / "second-link.txt")

    def full(fd, offset, length):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    w = _open_and_edit(make_window, f)
    assert not w.files.save()
    assert "No space left on device" in w.banner_label.text() and w.editor.document().isModified()
    assert f.read_bytes() == b"short\n" and not list(tmp_path.glob(".lacuna-*"))


def test_an_in_place_save_that_fails_half_way_names_its_safety_copy(make_window, tmp_path, monkeypatch):
    f = tmp_path / "linked.txt"
    f.write_bytes(b"short\n")
    os.link(f, tmp_path / "second-link.txt")

    def broken(src, dst, length=0):
        dst.write(b"HA")
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(safe_write.shutil, "copyfileobj", broken)
    w = _open_and_edit(make_window, f)
    assert not w.files.save()
    [copy] = tmp_path.glob(".lacuna-*.copy")
    assert copy.read_bytes() == b"short\nadded\n" and str(copy) in w.banner_label.text()


def test_an_export_that_cannot_be_written_names_the_users_file(tmp_path):
    target = tmp_path / "missing" / "run.jsonl"
    with pytest.raises(OSError) as err:
        write_events([], target, {"request": {}})
    message = str(err.value)
    assert str(target) in message and "No such file or directory" in message
    assert ".lacuna-" not in message and "Errno" not in message
