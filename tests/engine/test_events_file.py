"""lacuna-cli --events FILE never replaces what FILE is (issue 20): a FIFO or character
device is written through, a socket or block device is refused, a symlink stays a link,
and a regular file keeps its mode and hard links."""
from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from lacuna.engine.cli import _EventsFile, main
from lacuna.engine.errors import InputError

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
RECORDS = [{"step": 1, "text": "é"}, {"step": 2, "done": True}]


def _device(path: Path, kind: int, major: int, minor: int) -> Path:
    # a node of our own in tmp_path: a bug here must not cost the machine its /dev/full
    try:
        os.mknod(path, kind | 0o666, os.makedev(major, minor))
    except (OSError, AttributeError):
        pytest.skip("cannot make a device node here")
    return path


def _write(target, records=RECORDS) -> None:
    events = _EventsFile(str(target))
    try:
        events.open()
        for r in records:
            events.write(r)
        events.commit()
    finally:
        events.discard()


def _reader(fifo: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as f:  # blocks until the writer opens its end
            got.append(f.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got


@needs_fifo
def test_a_fifo_is_written_through_and_stays_a_fifo(tmp_path):
    fifo = tmp_path / "events.pipe"
    os.mkfifo(fifo)
    t, got = _reader(fifo)
    _write(fifo)
    t.join(10)
    assert [json.loads(line) for line in got[0].decode("utf-8").splitlines()] == RECORDS
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert list(tmp_path.iterdir()) == [fifo]


def test_a_character_device_is_written_through_and_stays_a_device(tmp_path):
    null = _device(tmp_path / "null", stat.S_IFCHR, 1, 3)
    _write(null)
    assert stat.S_ISCHR(os.lstat(null).st_mode) and list(tmp_path.iterdir()) == [null]


@pytest.mark.parametrize("kind", ["socket", "block device"])
def test_a_socket_or_a_block_device_is_refused_before_anything(tmp_path, kind):
    target = tmp_path / "target"
    if kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
        sock.close()
    else:
        _device(target, stat.S_IFBLK, 7, 0)
    with pytest.raises(InputError) as err:
        _EventsFile(str(target))
    message = str(err.value)
    assert message.startswith("--events: ") and ("a socket" in message or "a device" in message)
    assert "Error" not in message and message.count("\n") == 0
    assert not stat.S_ISREG(os.lstat(target).st_mode)


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "real.jsonl"
    real.write_text("old run\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(real.name)
    _write(link)
    assert link.is_symlink() and [json.loads(x) for x in real.read_text("utf-8").splitlines()] == RECORDS
    dangling = tmp_path / "dangling.jsonl"
    dangling.symlink_to("made.jsonl")  # a link to a file not there yet: created through it
    _write(dangling)
    assert dangling.is_symlink() and json.loads((tmp_path / "made.jsonl").read_text().splitlines()[0]) == RECORDS[0]


def test_a_regular_file_keeps_its_mode_and_hard_links_and_a_new_one_takes_the_umask(tmp_path):
    f = tmp_path / "events.jsonl"
    f.write_text("old run\n")
    f.chmod(0o640)
    os.link(f, tmp_path / "second.jsonl")
    inode = f.stat().st_ino
    _write(f)
    assert f.stat().st_ino == inode and stat.S_IMODE(f.stat().st_mode) == 0o640
    assert (tmp_path / "second.jsonl").read_text("utf-8") == f.read_text("utf-8") != "old run\n"
    old = os.umask(0o027)
    try:
        _write(tmp_path / "new.jsonl")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.jsonl").stat().st_mode) == 0o640


def test_a_255_byte_name_is_written_in_place(tmp_path):
    f = tmp_path / ("e" * 249 + ".jsonl")
    f.write_text("old run\n")
    _write(f)
    assert f.read_text("utf-8").count("\n") == len(RECORDS)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f.name]


def test_a_name_the_system_refuses_is_one_sentence(tmp_path):
    with pytest.raises(InputError) as err:
        _EventsFile(str(tmp_path / ("x" * 300)))
    message = str(err.value)
    assert "is not a usable file name" in message and "Error" not in message and "\n" not in message
    with pytest.raises(InputError, match="NUL"):
        _EventsFile(str(tmp_path / "a\0b"))


# ---- the whole command ---------------------------------------------------------------------------------
@needs_fifo
def test_infill_streams_its_steps_into_a_fifo(capsys, tiny_model_dir, tmp_path):
    fifo = tmp_path / "steps"
    os.mkfifo(fifo)
    t, got = _reader(fifo)
    code = main(["infill", "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2", "--json",
                 "--events", str(fifo), "a [[2]] b"])
    out, err = capsys.readouterr()
    t.join(10)
    assert code == 0, err
    steps = [json.loads(line) for line in got[0].decode("utf-8").splitlines()]
    assert len(steps) == json.loads(out)["nfe"] and steps[-1]["done"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_infill_into_a_full_device_says_so_and_leaves_the_device(capsys, tiny_model_dir, tmp_path):
    full = _device(tmp_path / "full", stat.S_IFCHR, 1, 7)  # what /dev/full is
    code = main(["infill", "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2",
                 "--events", str(full), "a [[2]] b"])
    _, err = capsys.readouterr()
    assert code == 1 and "--events: could not write" in err and "No space left" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert stat.S_ISCHR(os.lstat(full).st_mode) and list(tmp_path.iterdir()) == [full]


# ---- after review: descriptors, planted links, odd names ----------------------------------------
def test_events_to_dev_stdout_redirected_to_a_file_keeps_every_line(tiny_model_dir, capfd):
    """The reviewer's input: `--events /dev/stdout > out.txt` wrote the result over the steps
    (a reopened /dev/stdout has an offset of its own). capfd makes descriptor 1 a file, as `>` does."""
    code = main(["infill", "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2", "--json",
                 "--events", "/dev/stdout", "a [[2]] b"])
    out, err = capfd.readouterr()
    assert code == 0, err
    *steps, result = [json.loads(line) for line in out.splitlines()]
    assert [s["step"] for s in steps] == [1, 2] and steps[-1]["done"] and result["nfe"] == 2


def test_a_socket_named_by_its_descriptor_is_written_through():
    """Opening /proc/self/fd/N of a socket fails (ENXIO): stdout as a socket failed after the model load."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        _write(f"/proc/self/fd/{ours.fileno()}")
        ours.shutdown(socket.SHUT_WR)
        got = theirs.makefile("rb").read().decode("utf-8").splitlines()
    assert [json.loads(x) for x in got] == RECORDS


def test_a_descriptor_that_is_not_open_is_refused_before_the_model_loads():
    with pytest.raises(InputError) as err:
        _EventsFile("/dev/fd/999")
    assert str(err.value).startswith("--events: /dev/fd/999 names descriptor 999") and "\n" not in str(err.value)


def test_a_path_under_proc_self_cwd_is_an_ordinary_file(tmp_path, monkeypatch):
    """Not a stream: written whole, not appended to what was there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.jsonl").write_text("an older run\n")
    _write("/proc/self/cwd/p.jsonl")
    assert [json.loads(x) for x in (tmp_path / "p.jsonl").read_text("utf-8").splitlines()] == RECORDS


@needs_fifo
def test_a_fifo_without_a_reader_says_so_once(tmp_path, capsys):
    fifo = tmp_path / "steps"
    os.mkfifo(fifo)
    events = _EventsFile(str(fifo))
    got: list[bytes] = []

    def read_when_told() -> None:  # the reader comes only after the note
        with open(fifo, "rb") as f:
            got.append(f.read())

    real_waiting, readers = events._waiting, []

    def waiting() -> None:
        real_waiting()
        readers.append(threading.Thread(target=read_when_told, daemon=True))
        readers[0].start()

    events._file._on_wait = waiting
    try:
        events.open()
        for r in RECORDS:
            events.write(r)
        events.commit()
    finally:
        events.discard()
    err = capsys.readouterr().err
    assert err == f"lacuna-cli: waiting for a program to read the FIFO {fifo}\n"
    [reader] = readers
    reader.join(10)
    assert [json.loads(x) for x in got[0].decode().splitlines()] == RECORDS


def test_an_empty_name_and_a_name_with_a_newline_are_one_clear_line(tmp_path):
    with pytest.raises(InputError) as err:
        _EventsFile("")
    assert str(err.value) == ("--events: the file name is empty; name the file to write the steps to, "
                              "or /dev/stdout")
    with pytest.raises(InputError) as err:
        _EventsFile(str(tmp_path / "no\nsuch" / "e.jsonl"))
    assert "\n" not in str(err.value) and "no\\nsuch" in str(err.value)
    assert _EventsFile(str(tmp_path / "a\nb.jsonl")).path == f"{tmp_path}/a\\nb.jsonl"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="lchown needs root")
def test_infill_refuses_a_link_another_user_planted_before_the_model_loads(tmp_path, capsys):
    """The reviewer's input: nobody's /tmp/evil-events.jsonl -> root's config."""
    victim = tmp_path / "config"
    victim.write_text("root's config\n")
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    link = shared / "evil-events.jsonl"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    code = main(["infill", "--model", str(tmp_path / "no-model-needed"), "--device", "cpu", "--steps", "2",
                 "--events", str(link), "a [[2]] b"])
    err = capsys.readouterr().err
    assert code == 2 and "symbolic link that another user made" in err and err.count("\n") == 1
    assert victim.read_text() == "root's config\n"
