"""lacuna.engine.safe_write after review (issue 20): links and files another user planted in a
shared sticky folder are refused as the kernel would, an interrupted in-place save is
finished only while the file holds nothing but what that save left, and the writer
copes with file systems without flock and with a full journal folder."""
from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lacuna.engine import safe_write
from lacuna.engine.safe_write import PAGE, AtomicFile, WriteRefused

as_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="lchown needs root")
NOBODY = 65534


def _shared_folder(tmp_path: Path) -> Path:
    """A folder like /tmp: everyone may write to it, the sticky bit set, owned by us."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    return shared


def _planted_link(folder: Path, name: str, target: Path) -> Path:
    link = folder / name
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)  # made by another user
    return link


# ---- links and files another user planted ---------------------------------------------------
@as_root
def test_a_link_another_user_planted_in_a_shared_folder_is_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config").write_text("root's config\n")
    shared = _shared_folder(tmp_path)
    link = _planted_link(shared, "evil-events.jsonl", victim / "config")  # the reviewer's input
    with pytest.raises(WriteRefused) as err:
        AtomicFile(link, streams=True)
    message = str(err.value)
    assert str(link) in message and "another user" in message and "\n" not in message
    with pytest.raises(WriteRefused):
        safe_write.write_bytes(link, b"overwritten")
    assert (victim / "config").read_text() == "root's config\n"
    # a link to a folder, named as the middle of a path; and a dangling link, which would create a file
    into = _planted_link(shared, "dir", victim)
    dangling = _planted_link(shared, "new.txt", victim / "made-by-us.txt")
    for path in (into / "config", dangling):
        with pytest.raises(WriteRefused, match="another user"):
            safe_write.write_bytes(path, b"overwritten")
    assert (victim / "config").read_text() == "root's config\n" and not (victim / "made-by-us.txt").exists()


@as_root
def test_links_the_kernel_would_follow_are_followed(tmp_path):
    """Ours, or the folder owner's, or in a folder that is not both shared and sticky."""
    shared = _shared_folder(tmp_path)
    target = tmp_path / "target.txt"
    ours = shared / "ours.txt"
    ours.symlink_to(target)
    safe_write.write_bytes(ours, b"through our own link\n")
    assert target.read_bytes() == b"through our own link\n" and ours.is_symlink()
    os.chown(shared, NOBODY, NOBODY)  # the folder's owner made the link
    theirs = _planted_link(shared, "owners.txt", target)
    safe_write.write_bytes(theirs, b"through the owner's link\n")
    assert target.read_bytes() == b"through the owner's link\n"
    os.chown(shared, 0, 0)
    shared.chmod(0o777)  # not sticky: anyone could rename our files there anyway
    safe_write.write_bytes(theirs, b"no sticky bit\n")
    assert target.read_bytes() == b"no sticky bit\n"


@as_root
def test_a_file_another_user_planted_in_a_shared_folder_is_not_written(tmp_path):
    shared = _shared_folder(tmp_path)
    planted = shared / "run.jsonl"
    planted.write_text("theirs\n")
    os.chown(planted, NOBODY, NOBODY)
    planted.chmod(0o666)  # so that they could read what we would write
    for streams in (False, True):
        with pytest.raises(WriteRefused, match="belongs to another user"):
            AtomicFile(planted, streams=streams)
    assert planted.read_text() == "theirs\n" and planted.stat().st_uid == NOBODY


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "link", "up", "loop"]), min_size=1, max_size=6))
@settings(max_examples=150, deadline=None)
def test_resolve_agrees_with_realpath(parts):
    """Outside shared folders resolve is realpath(3), relative names, '..' and loops included."""
    with tempfile.TemporaryDirectory() as d:
        root = Path(os.path.realpath(d))
        (root / "a" / "b").mkdir(parents=True)
        (root / "a" / "link").symlink_to("b")
        (root / "a" / "b" / "up").symlink_to("../..")
        (root / "a" / "loop").symlink_to("loop")
        path = os.path.join(root, "a", *parts)
        expected = os.path.realpath(path)
        if "loop" in parts:  # where realpath stops on a loop is its own business; ours must not hang
            safe_write.resolve(path)
            return
        assert str(safe_write.resolve(path)) == expected


# ---- names of descriptors -------------------------------------------------------------------
@pytest.mark.parametrize("name, fd", [("/dev/stdout", 1), ("/dev/stderr", 2), ("/dev/fd/7", 7),
                                      ("/proc/self/fd/12", 12), (f"/proc/{os.getpid()}/fd/3", 3)])
def test_descriptor_names_are_recognised(name, fd):
    assert safe_write.descriptor(name) == fd


@pytest.mark.parametrize("name", ["/proc/self/cwd/p.jsonl", "/proc/1/fd/3", "/dev/fd/x", "/tmp/dev/stdout",
                                  "/proc/self/fd/3/more"])
def test_other_names_are_not_descriptors(name):
    assert safe_write.descriptor(name) is None


def test_a_descriptor_name_is_written_through_a_duplicate_at_its_offset(tmp_path):
    out = tmp_path / "out.txt"
    with open(out, "wb") as f:  # the shell's `> out.txt`: no O_APPEND
        f.write(b"printed before\n")
        f.flush()
        w = AtomicFile(f"/dev/fd/{f.fileno()}", streams=True)
        w.open().write(b"event\n")
        w.commit()
        f.write(b"printed after\n")
    assert out.read_bytes() == b"printed before\nevent\nprinted after\n"


def test_a_descriptor_that_is_not_open_for_writing_is_refused(tmp_path):
    with pytest.raises(WriteRefused, match="not have open"):
        AtomicFile("/dev/fd/987", streams=True)
    (tmp_path / "r.txt").write_text("x")
    with open(tmp_path / "r.txt", "rb") as f, pytest.raises(WriteRefused, match="reading only"):
        AtomicFile(f"/proc/self/fd/{f.fileno()}", streams=True)


# ---- an interrupted in-place save ------------------------------------------------------------
def _journal_entry(folder: Path, target: Path, old: bytes, new: bytes) -> dict:
    """What AtomicFile notes before rewriting ``target`` (holding ``old``) with ``new``."""
    target.write_bytes(old)
    copy = folder / f"{safe_write.PREFIX}{'0' * 16}{safe_write.COPY}"
    copy.write_bytes(new)
    with open(copy, "rb") as c:
        after = {"size": len(new), "sha256": safe_write._sha256(c)}
    return {"copy": str(copy), "target": str(target), "inode": target.stat().st_ino,
            "before": safe_write._before(target, target.stat(), len(new)), "after": after}


def _cut_short(old: bytes, new: bytes, written: set[int], reserved: bool, truncated: bool) -> bytes:
    """What a rewrite of ``old`` by ``new`` leaves when only the pages ``written`` reached the
    disk (in any order: a power cut), the space reserved or not, the truncate done or not."""
    out = bytearray(old)
    if reserved and len(new) > len(old):
        out.extend(bytes(len(new) - len(old)))
    for k in sorted(written):
        page = new[k * PAGE:(k + 1) * PAGE]
        if len(out) < k * PAGE:
            out.extend(bytes(k * PAGE - len(out)))  # a hole reads as zeros
        out[k * PAGE:k * PAGE + len(page)] = page
    return bytes(out[:len(new)] if truncated else out)


sizes = st.integers(0, 3 * PAGE + 100)


@given(sizes, sizes, st.data())
@settings(max_examples=120, deadline=None)
def test_what_an_interrupted_rewrite_leaves_is_finished_and_nothing_else(n_old, n_new, data):
    old, new = b"o" * n_old, b"n" * n_new
    pages = -(-n_new // PAGE)
    written = data.draw(st.sets(st.integers(0, max(0, pages - 1)), max_size=pages) if pages else st.just(set()))
    reserved, truncated = data.draw(st.booleans()), data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        target = folder / "doc.txt"
        entry = _journal_entry(folder, target, old, new)
        torn = _cut_short(old, new, written, reserved, truncated)
        target.write_bytes(torn)
        verdict = safe_write._judge(str(target), entry["copy"], entry)
        assert verdict == ("done" if torn == new else "ours")
        # another program wrote to it since: one byte neither version has, or a size no rewrite gives
        edit = data.draw(st.sampled_from(["byte", "append", "replace"]))
        if edit == "byte":
            assume(torn)
            at = data.draw(st.integers(0, len(torn) - 1))
            changed = torn[:at] + b"X" + torn[at + 1:]
        elif edit == "append":
            changed = torn + b"X" * (max(n_old, n_new) - len(torn) + 1)
        else:
            changed = b"typed later in another program\n"
            assume(not min(n_old, n_new) <= len(changed) <= max(n_old, n_new))
        target.write_bytes(changed)
        assert safe_write._judge(str(target), entry["copy"], entry) == "changed"


def test_a_journal_replay_leaves_a_file_changed_after_the_crash_and_keeps_the_copy(tmp_path):
    """The reviewer's input: the rewrite had finished, the copy was not yet removed, then
    `echo ... > doc.txt` (same inode) in a shell; the next start must not undo that."""
    journal = tmp_path / "journal"
    journal.mkdir()
    f = tmp_path / "doc.txt"
    entry = _journal_entry(tmp_path, f, b"version 1\n", b"version 2 (Lacuna)\n")
    (journal / "entry.json").write_text(json.dumps(entry))
    f.write_bytes(b"version 2 (Lacuna)\n")
    with open(f, "w") as out:
        out.write("version 3 (typed later in another program)\n")
    cleaned = safe_write.clean_journal(journal)
    assert f.read_bytes() == b"version 3 (typed later in another program)\n"
    [(target, copy, reason)] = cleaned.kept
    assert target == str(f) and Path(copy).read_bytes() == b"version 2 (Lacuna)\n" and "changed" in reason
    assert not list(journal.iterdir())  # told once
    assert safe_write.clean_journal(journal).kept == []


def test_a_finished_rewrite_only_loses_its_copy(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    f = tmp_path / "doc.txt"
    entry = _journal_entry(tmp_path, f, b"version 1\n", b"version 2\n")
    (journal / "entry.json").write_text(json.dumps(entry))
    f.write_bytes(b"version 2\n")
    inode = f.stat().st_ino
    cleaned = safe_write.clean_journal(journal)
    assert cleaned.finished == [] and cleaned.kept == [] and f.stat().st_ino == inode
    assert not Path(entry["copy"]).exists() and not list(journal.iterdir())


# ---- file systems and folders that refuse ------------------------------------------------------
def test_a_file_system_without_flock_still_saves_and_leaves_nothing(tmp_path, monkeypatch):
    """The reviewer's input (flock failing with ENOLCK): no leaked descriptor, no 0-byte temp."""
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(safe_write.fcntl, "flock", no_locks)
    f = tmp_path / "doc.txt"
    f.write_bytes(b"x\n")
    fds = len(os.listdir("/proc/self/fd"))
    for k in range(3):
        safe_write.write_bytes(f, b"try %d\n" % k)
    assert f.read_bytes() == b"try 2\n" and sorted(p.name for p in tmp_path.iterdir()) == ["doc.txt"]
    assert len(os.listdir("/proc/self/fd")) == fds


def test_a_lock_that_fails_otherwise_leaves_no_temp_file(tmp_path, monkeypatch):
    def broken(fd, op):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(safe_write.fcntl, "flock", broken)
    with pytest.raises(OSError):
        safe_write.write_bytes(tmp_path / "doc.txt", b"x")
    assert not list(tmp_path.iterdir())


def test_a_full_journal_folder_leaves_no_part_and_the_save_goes_on(tmp_path, monkeypatch):
    """The in-place case, where the journal is written twice: a note that fails drops the journal."""
    f = tmp_path / "doc.txt"
    f.write_bytes(b"linked\n")
    os.link(f, tmp_path / "link.txt")
    journal = tmp_path / "journal"
    real_dump = json.dump
    calls = []

    def full(obj, fp, *a, **k):
        calls.append(obj)
        if len(calls) == 2:  # the note naming the safety copy
            raise OSError(errno.ENOSPC, "No space left on device")
        real_dump(obj, fp, *a, **k)

    monkeypatch.setattr(safe_write.json, "dump", full)
    safe_write.write_bytes(f, b"new text\n", journal=journal)
    assert (tmp_path / "link.txt").read_bytes() == b"new text\n" and len(calls) == 2
    assert not list(journal.iterdir()) and not list(tmp_path.glob(".lacuna-*"))


def test_a_half_written_journal_entry_is_removed_at_the_next_start(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "0123.part").write_text('{"tmp": "/nowhere/.lacuna-')  # the disk filled up here
    assert safe_write.clean_journal(journal) == safe_write.Cleaned()
    assert not list(journal.iterdir())


def test_a_file_removed_while_it_is_written_gets_a_new_files_mode(tmp_path):
    f = tmp_path / "doc.txt"
    f.write_bytes(b"old\n")
    f.chmod(0o640)
    old = os.umask(0o022)
    try:
        w = AtomicFile(f)
        w.open().write(b"new\n")
        f.unlink()  # deleted by someone while Lacuna wrote
        w.commit()
    finally:
        os.umask(old)
    assert f.read_bytes() == b"new\n" and stat.S_IMODE(f.stat().st_mode) == 0o644


def test_a_folder_that_refuses_new_files_is_named_with_the_way_out(tmp_path, monkeypatch):
    f = tmp_path / "doc.txt"
    f.write_bytes(b"old\n")
    real_open = os.open

    def refuse(path, flags, *a, **k):
        if flags & os.O_CREAT and Path(path).name.startswith(safe_write.PREFIX):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OSError) as err:
        safe_write.write_bytes(f, b"new\n")
    assert f"folder {tmp_path}" in err.value.strerror and "Permission denied" in err.value.strerror
    assert "writable" in err.value.strerror and f.read_bytes() == b"old\n"


def test_names_with_control_characters_are_shown_escaped():
    assert safe_write.display("/tmp/a\nb\tc é") == "/tmp/a\\nb\\tc é"


def test_a_file_removed_after_the_crash_is_reported_once_with_its_copy(tmp_path):
    journal = tmp_path / "journal"
    journal.mkdir()
    f = tmp_path / "doc.txt"
    entry = _journal_entry(tmp_path, f, b"version 1\n", b"version 2\n")
    (journal / "entry.json").write_text(json.dumps(entry))
    f.unlink()
    [(target, copy, reason)] = safe_write.clean_journal(journal).kept
    assert reason == "it was removed since" and Path(copy).read_bytes() == b"version 2\n" and not f.exists()
    assert safe_write.clean_journal(journal) == safe_write.Cleaned()
