"""Writing a file so that a crash never leaves half of it, and so that the file
stays what it was: its mode, owner, hard links, and the symbolic link that
names it.

The usual way (write a temporary file in the same folder, fsync, rename it over
the target: POSIX rename is atomic; see rename(2)) replaces the target's inode.
That is right for most files, and it is what ``AtomicFile`` does, carrying the
old file's mode and (where the OS lets us: root, or a group we belong to) its
owner and group over to the new inode. A new file gets ``0o666 & ~umask``, as
any program's would, not the 0600 of ``mkstemp``.

Two kinds of file would be changed by a rename, and are written in place
instead, through their own inode (the "backupcopy" rule of Vim and Emacs):
a file with several hard links (a rename splits them), and a file whose owner
the new inode could not take. The new bytes are first written and synced to a
safety copy beside it (``.lacuna-<hex>.copy``); only then is the file
rewritten (the space it grows by reserved first, with posix_fallocate, so a
full disk fails before a byte changes). A crash during the rewrite leaves the
complete safety copy; a journal (``journal=``, a folder) names it, and
``clean_journal`` finishes the rewrite at the next start if the file is still
that inode. A rewrite that fails otherwise keeps the copy and names it in the
error. Extended attributes and ACLs are not carried to a renamed file (as in
most editors).

A symbolic link is written through to its target, so the link stays a link.
FIFOs, sockets and devices are refused, or with ``streams=True`` (the CLI's
--events, where ``/dev/stdout`` or a pipe is what the user asked for) a FIFO or
a character device is written to directly, never replaced; block devices and
sockets are refused always.

Temporary names are short (``.lacuna-`` + 16 hex digits + ``.tmp``) whatever the
target's name, so a file with a 255-byte name can be saved. Each temporary
file is held under an OS lock (flock) while it is written; one whose lock is
free belongs to a save that was killed and is removed by the next save or open
in that folder (``remove_stale_temps``), whoever left it, as long as it is
ours by name and owner.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat
import sys
import uuid
from pathlib import Path
from typing import BinaryIO

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there, which serves as the lock
    fcntl = None

PREFIX = ".lacuna-"
TMP, COPY = ".tmp", ".copy"
_HEX = 16


class WriteRefused(OSError):
    """The path names something that is not replaced by a file; the message is fit to show."""


def special_kind(mode: int) -> str | None:
    """What a non-regular, non-folder file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symbolic link that leads nowhere (a loop)"
    return "not a regular file"


def resolve(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` lands in: symbolic links followed (also a
    dangling one: the write creates its target)."""
    return Path(os.path.realpath(os.fspath(path)))


def _is_stream(path: str | os.PathLike) -> bool:
    """A pipe, a terminal, a character device, or a name of an open descriptor (/dev/stdout)."""
    name = os.path.abspath(os.fspath(path))
    if name.startswith(("/dev/fd/", "/dev/std", "/proc/")):
        return True
    try:
        mode = os.stat(name).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _lstat(p: Path) -> os.stat_result | None:
    try:
        return os.lstat(p)
    except FileNotFoundError:
        return None


def _fsync_folder(folder: Path) -> None:
    # the rename itself is only durable once the folder is synced (POSIX; Windows has no folder fds)
    if sys.platform == "win32":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_ours(name: str, suffix: str) -> bool:
    core = name[len(PREFIX):-len(suffix)] if name.startswith(PREFIX) and name.endswith(suffix) else ""
    return len(core) == _HEX and all(c in "0123456789abcdef" for c in core)


def _new_temp(folder: Path, mode: int) -> tuple[int, Path]:
    """Create and lock a temporary file of ours in ``folder``."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = folder / f"{PREFIX}{secrets.token_hex(_HEX // 2)}{TMP}"
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:
            continue
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink:  # not removed as stale between the create and the lock
            return fd, tmp
        os.close(fd)


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed saves left in ``folder``: ours by
    name and owner, and not locked by a save under way. Returns those removed."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _is_ours(entry.name, TMP):
            continue
        path = Path(entry.path)
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
                continue
            if fcntl is None:
                os.unlink(path)  # fails while a save has it open
                removed.append(path)
                continue
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino == os.lstat(path).st_ino:
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass  # a save holds it, or it is already gone
        finally:
            os.close(fd)
    return removed


class _Journal:
    """An entry in ``folder`` naming a save's files while it runs, under an OS lock."""

    def __init__(self, folder: Path | None, data: dict) -> None:
        self.file = self.lock = None
        if folder is None:
            return
        from filelock import FileLock

        try:
            folder.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex
            self.lock = FileLock(str(folder / f"{name}.lock"))
            self.lock.acquire(timeout=0)
            self.file = folder / f"{name}.json"
            self.note(data)
        except Exception:  # noqa: BLE001 - the journal is housekeeping; the save goes on without it
            self.close()

    def note(self, data: dict) -> None:
        if self.file is None:
            return
        part = self.file.with_suffix(".part")
        with open(part, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, self.file)

    def close(self) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
        if self.lock is not None:
            try:
                self.lock.release()
                Path(self.lock.lock_file).unlink(missing_ok=True)
            except OSError:
                pass
        self.file = self.lock = None


def _rewrite_in_place(target: Path, source: BinaryIO, inode: int | None) -> os.stat_result:
    """Copy ``source`` over ``target``'s own bytes (same inode), sync it."""
    fd = os.open(target, os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "wb") as out:
        st = os.fstat(out.fileno())
        if not stat.S_ISREG(st.st_mode) or (inode is not None and st.st_ino != inode):
            raise FileNotFoundError(f"{target} was replaced while it was being saved")
        size = os.fstat(source.fileno()).st_size
        if size > st.st_size and hasattr(os, "posix_fallocate"):
            try:  # a full disk shows here, before a byte of the file has changed
                os.posix_fallocate(out.fileno(), 0, size)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise
        try:
            source.seek(0)
            shutil.copyfileobj(source, out, 1 << 20)
            out.truncate()
            out.flush()
            os.fsync(out.fileno())
            return os.fstat(out.fileno())
        except OSError as exc:
            raise _Torn(exc.errno, exc.strerror or str(exc)) from None


class _Torn(OSError):
    """An in-place rewrite failed after it had begun changing the file."""


def clean_journal(journal: str | os.PathLike) -> list[str]:
    """After a crash: remove the temporary files of saves that were killed, and
    finish an in-place rewrite that was killed half way from its safety copy.
    Entries locked by a running save are left alone. Returns the paths dealt with."""
    from filelock import FileLock, Timeout

    done: list[str] = []
    folder = Path(journal)
    if not folder.is_dir():
        return done
    # an entry killed while it was being replaced is still whole in its .part
    for stem in sorted({f.stem for f in folder.iterdir() if f.suffix in (".json", ".part")}):
        entry = folder / f"{stem}.json"
        lock = FileLock(str(entry.with_suffix(".lock")))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            continue  # a save is running in another window or process
        try:
            newest = entry if entry.exists() else entry.with_suffix(".part")
            data = json.loads(newest.read_text(encoding="utf-8"))
            tmp, copy, target = data.get("tmp", ""), data.get("copy", ""), data.get("target", "")
            if copy and _is_ours(Path(copy).name, COPY) and os.path.isfile(copy) and target:
                with open(copy, "rb") as src:
                    _rewrite_in_place(Path(target), src, data.get("inode"))
                os.unlink(copy)
                done.append(target)
            if tmp and _is_ours(Path(tmp).name, TMP) and os.path.lexists(tmp):
                os.unlink(tmp)
                done.append(tmp)
            entry.unlink(missing_ok=True)
            entry.with_suffix(".part").unlink(missing_ok=True)
        except (OSError, ValueError, AttributeError):
            pass  # kept for the next start: the copy may still be needed
        finally:
            lock.release()
            entry.with_suffix(".lock").unlink(missing_ok=True)
    return done


class AtomicFile:
    """One write of a whole file: ``open()`` gives a binary file object,
    ``commit()`` puts what was written in place and returns its stat,
    ``discard()`` leaves the target as it was (call it always; it is a no-op
    after a commit). Also a context manager that commits on success.

    Raises WriteRefused (at construction) for a folder, a socket, a block
    device, a symlink loop, and a FIFO or character device unless ``streams``;
    OSError for what the OS refuses."""

    def __init__(self, path: str | os.PathLike, *, streams: bool = False, journal: Path | None = None) -> None:
        self.stream = streams and _is_stream(path)
        # a stream is opened by the name given: /dev/fd/N of a pipe resolves to no path at all
        self.target = Path(path) if self.stream else resolve(path)
        self.old = None if self.stream else _lstat(self.target)
        if self.old is not None and not stat.S_ISREG(self.old.st_mode):
            raise WriteRefused(f"{Path(path)} is {special_kind(self.old.st_mode)}, not a regular file; "
                               "Lacuna writes regular files only. Choose another name.")
        self._journal_folder = journal
        self._journal: _Journal | None = None
        self._fh: BinaryIO | None = None
        self._tmp: Path | None = None

    def open(self) -> BinaryIO:
        if self.stream:
            # written as it comes (opening a FIFO waits for its reader); appended, so that
            # /dev/stdout redirected to a file does not write over what the process prints
            flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0)
            self._fh = os.fdopen(os.open(self.target, flags), "wb")
            return self._fh
        folder = self.target.parent
        remove_stale_temps(folder)
        fd, self._tmp = _new_temp(folder, 0o600 if self.old is not None else 0o666)
        self._journal = _Journal(self._journal_folder, {"tmp": str(self._tmp)})
        self._fh = os.fdopen(fd, "w+b")
        return self._fh

    def _keep_metadata(self) -> bool:
        """Give the new inode the old file's owner, group and mode; False when the
        owner or group could not be kept (the file is then rewritten in place)."""
        fd, old = self._fh.fileno(), self.old
        kept = True
        if hasattr(os, "fchown"):
            new = os.fstat(fd)
            if (new.st_uid, new.st_gid) != (old.st_uid, old.st_gid):
                try:
                    os.fchown(fd, old.st_uid, old.st_gid)
                except OSError:
                    try:  # not root: the group alone, when we belong to it
                        os.fchown(fd, -1, old.st_gid)
                    except OSError:
                        pass
                    new = os.fstat(fd)
                    kept = (new.st_uid, new.st_gid) == (old.st_uid, old.st_gid)
        os.chmod(fd if os.chmod in os.supports_fd else self._tmp, stat.S_IMODE(old.st_mode))  # after chown
        return kept

    def commit(self) -> os.stat_result:
        fh = self._fh
        fh.flush()
        if self.stream:
            st = os.fstat(fh.fileno())
            self._fh = None
            fh.close()
            return st
        os.fsync(fh.fileno())
        self.old = _lstat(self.target)  # again: --events commits long after it opened
        if self.old is not None and not stat.S_ISREG(self.old.st_mode):
            raise WriteRefused(f"{self.target} became {special_kind(self.old.st_mode)} while it was being "
                               "written; it was left as it is.")
        in_place = self.old is not None and (self.old.st_nlink > 1 or not self._keep_metadata())
        if not in_place:
            os.replace(self._tmp, self.target)
            self._tmp = None
            _fsync_folder(self.target.parent)
            st = os.fstat(fh.fileno())
        else:
            # the synced temp file becomes the safety copy: not removed as a stale temp, named in the journal
            copy = self._tmp.with_name(self._tmp.name[:-len(TMP)] + COPY)
            os.replace(self._tmp, copy)
            self._tmp = copy
            if self._journal is not None:
                self._journal.note({"copy": str(copy), "target": str(self.target), "inode": self.old.st_ino})
            try:
                st = _rewrite_in_place(self.target, fh, self.old.st_ino)
            except _Torn as exc:
                raise OSError(exc.errno, f"{exc.strerror}; the complete new contents are kept in {copy}") from None
            except OSError:
                os.unlink(copy)  # refused before a byte of the file changed: it is whole, the copy is not needed
                self._tmp = None
                raise
            os.unlink(copy)
            self._tmp = None
        self._fh = None
        fh.close()
        self.discard()
        return st

    def discard(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        if self._tmp is not None and self._tmp.name.endswith(TMP):
            try:
                os.unlink(self._tmp)
            except OSError:
                pass
        self._tmp = None  # a safety copy stays: the file it protects may be half rewritten
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> BinaryIO:
        return self.open()

    def __exit__(self, kind, exc, tb) -> None:
        try:
            if kind is None:
                self.commit()
        finally:
            self.discard()


def write_bytes(path: str | os.PathLike, data: bytes, *, journal: Path | None = None) -> os.stat_result:
    """Write ``data`` as the whole file at ``path`` (see AtomicFile); the stat of the file written."""
    f = AtomicFile(path, journal=journal)
    try:
        f.open().write(data)
        return f.commit()
    finally:
        f.discard()
