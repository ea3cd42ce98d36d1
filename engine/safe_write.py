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
full disk fails before a byte changes). A journal (``journal=``, a folder)
names the copy and records the file before the rewrite (its size and a hash of
every 4 KiB page) and after it (size and SHA-256). ``clean_journal`` finishes a
rewrite that a crash cut short at the next start, but only while every page of
the file is still the old page or the new one, which is all a rewrite cut short
can leave; a file changed since by another program is left as it is, and the
copy is kept and reported. A rewrite that fails otherwise keeps the copy and
names it in the error. Extended attributes and ACLs are not carried to a
renamed file (as in most editors).

A symbolic link is written through to its target, so the link stays a link;
but, as the kernel's fs.protected_symlinks and fs.protected_regular rules do,
not a link, nor a file, that another user put in a folder every user can write
to and that has the sticky bit (/tmp): the link could lead to a file of ours
(see ``resolve``), the file would hand them what we write. The links are
followed here, not by the kernel, so the rule holds whatever the sysctl says.

FIFOs, sockets and devices are refused, or with ``streams=True`` (the CLI's
--events, where ``/dev/stdout`` or a pipe is what the user asked for) a FIFO or
a character device is written to directly, never replaced; block devices and
sockets named by a path are refused always. A name of one of this process's descriptors
(``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``) is written through a
duplicate of that descriptor, never opened again: a reopened ``/dev/stdout``
would have an offset of its own in a file the shell redirected stdout to, and
cannot be opened at all when stdout is a socket.

Temporary names are short (``.lacuna-`` + 16 hex digits + ``.tmp``) whatever the
target's name, so a file with a 255-byte name can be saved. Each temporary
file is held under an OS lock (flock) while it is written; one whose lock is
free belongs to a save that was killed and is removed by the next save or open
in that folder (``remove_stale_temps``), whoever left it, as long as it is
ours by name and owner. On a file system without flock the temporary file is
written unlocked (and a killed save's is then never taken for stale).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

try:
    import fcntl
except ImportError:  # Windows: an open file cannot be deleted there, which serves as the lock
    fcntl = None

PREFIX = ".lacuna-"
TMP, COPY = ".tmp", ".copy"
_HEX = 16
PAGE = 4096  # the unit a write cut short by a crash leaves whole (the page cache's)
_MAX_LINKS = 40  # as the kernel's ELOOP limit
_NO_LOCKS = {errno.ENOLCK, errno.EINVAL, getattr(errno, "EOPNOTSUPP", -1), getattr(errno, "ENOTSUP", -1)}
_FD_NAME = re.compile(r"/(?:dev/fd|proc/(?:self|thread-self|(\d+))/fd)/(\d+)")
_STD_NAMES = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


class WriteRefused(OSError):
    """The path names something that is not replaced by a file; the message is fit to show."""


def display(path: str | os.PathLike) -> str:
    """``path`` fit for a one-line message: control characters (a newline in a
    file name) are shown as escapes, everything else as it is."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in os.fspath(path))


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


# ---- names -------------------------------------------------------------------------------------
def _shared(folder: os.stat_result) -> bool:
    """A folder every user may write to, with the sticky bit (/tmp, /var/tmp)."""
    return bool(folder.st_mode & stat.S_ISVTX and folder.st_mode & stat.S_IWOTH)


def _planted(owner: int, folder: os.stat_result) -> bool:
    # the kernel's rule: neither ours (the follower's) nor the folder owner's
    return _shared(folder) and owner not in (os.geteuid(), folder.st_uid)


def resolve(path: str | os.PathLike) -> Path:
    """The file a write to ``path`` lands in: every symbolic link followed, a
    dangling one too (the write creates its target), as realpath(3) does. A
    loop ends the walk at the looping link (AtomicFile refuses it).

    Raises WriteRefused for a link that another user made in a shared sticky
    folder such as /tmp, unless that user owns the folder: the rule of the
    kernel's fs.protected_symlinks (see proc_sys_fs(5)), kept whatever the
    sysctl says, since a link followed here is never shown to the kernel."""
    name = os.fspath(path)
    if not hasattr(os, "geteuid"):  # Windows: no sticky folders
        return Path(os.path.realpath(name))
    pending = [c for c in reversed(os.path.join(os.getcwd(), name).split("/")) if c]
    done, links = "/", 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            done = os.path.dirname(done)
            continue
        here = os.path.join(done, part)
        try:
            st = os.lstat(here)
            target = os.readlink(here) if stat.S_ISLNK(st.st_mode) else None
        except OSError:  # missing, or not a folder: the rest is taken as written, as realpath does
            target = None
        if target is None:
            done = here
            continue
        links += 1
        if links > _MAX_LINKS:
            return Path(os.path.join(here, *reversed(pending)))
        try:
            folder = os.stat(done)
        except OSError:
            folder = None
        if folder is not None and _planted(st.st_uid, folder):
            what = f"{display(name)} is" if links == 1 and not pending else \
                f"{display(name)} leads through {display(here)},"
            raise WriteRefused(
                f"{what} a symbolic link that another user made in {display(done)}, a folder every user can "
                "write to; Lacuna does not follow such a link (it could lead to one of your files). Choose "
                "another name, or remove the link.")
        if target.startswith("/"):
            done = "/"
        pending.extend(c for c in reversed(target.split("/")) if c)
    return Path(done)


def _refuse_foreign(given: str, target: Path, st: os.stat_result) -> None:
    """A file (or FIFO) another user put in a shared sticky folder is not written to:
    the kernel's fs.protected_regular and fs.protected_fifos rules."""
    if not hasattr(os, "geteuid"):
        return
    try:
        folder = os.stat(target.parent)
    except OSError:
        return
    if _planted(st.st_uid, folder):
        raise WriteRefused(
            f"{display(given)} belongs to another user and lies in {display(target.parent)}, a folder every user "
            "can write to; Lacuna does not write to it (its owner could read or change what is written). "
            "Choose another name.")


def descriptor(path: str | os.PathLike) -> int | None:
    """The descriptor of this process that ``path`` names (``/dev/stdout``: 1,
    ``/dev/fd/3``, ``/proc/self/fd/3``: 3), or None for any other name."""
    name = os.path.normpath(os.path.abspath(os.fspath(path)))
    if name in _STD_NAMES:
        return _STD_NAMES[name]
    m = _FD_NAME.fullmatch(name)
    if m is None or (m.group(1) is not None and int(m.group(1)) != os.getpid()):
        return None
    return int(m.group(2))


def _lstat(p: Path) -> os.stat_result | None:
    try:
        return os.lstat(p)
    except FileNotFoundError:
        return None


def _umask() -> int:
    try:  # read without changing it (Linux 4.7+): os.umask can only be read by setting it
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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


def _unlink_quietly(path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ---- temporary files ---------------------------------------------------------------------------
def _is_ours(name: str, suffix: str) -> bool:
    core = name[len(PREFIX):-len(suffix)] if name.startswith(PREFIX) and name.endswith(suffix) else ""
    return len(core) == _HEX and all(c in "0123456789abcdef" for c in core)


def _new_temp(folder: Path, mode: int) -> tuple[int, Path]:
    """Create and lock a temporary file of ours in ``folder``. Raises OSError,
    naming the folder when it is the folder that refuses."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        tmp = folder / f"{PREFIX}{secrets.token_hex(_HEX // 2)}{TMP}"
        try:
            fd = os.open(tmp, flags, mode)
        except FileExistsError:
            continue
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise OSError(exc.errno, f"cannot create a file in the folder {display(folder)} "
                                         f"({exc.strerror}), as a safe save must; save it somewhere else, "
                                         "or make that folder writable") from None
            raise
        try:
            if fcntl is None:
                return fd, tmp
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in _NO_LOCKS:
                    raise
                return fd, tmp  # no flock on this file system: nobody can take the file for stale either
            if os.fstat(fd).st_nlink:  # not removed as stale between the create and the lock
                return fd, tmp
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
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
            pass  # a save holds it, or it is already gone, or the file system has no locks
        finally:
            os.close(fd)
    return removed


# ---- the journal -------------------------------------------------------------------------------
class _Journal:
    """An entry in ``folder`` naming a save's files while it runs, under an OS lock.
    Housekeeping only: an entry that cannot be written is dropped, and the save goes on."""

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
        except Exception:  # noqa: BLE001 - the journal is housekeeping; the save goes on without it
            self.close()
            return
        self.note(data)

    def note(self, data: dict) -> None:
        if self.file is None:
            return
        part = self.file.with_suffix(".part")
        try:
            with open(part, "w", encoding="utf-8") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, self.file)
        except OSError:  # a full state folder: no recovery for this save, which goes on
            self.close()

    def keep(self) -> None:
        """Leave the entry for the next start (a rewrite failed half way), releasing its lock."""
        self.file = None
        self.close()

    def close(self) -> None:
        if self.file is not None:
            _unlink_quietly(self.file)
            _unlink_quietly(self.file.with_suffix(".part"))
        if self.lock is not None:
            try:
                self.lock.release()
                Path(self.lock.lock_file).unlink(missing_ok=True)
            except OSError:
                pass
        self.file = self.lock = None


def _digest(page: bytes) -> str:
    return hashlib.blake2b(page, digest_size=8).hexdigest()


def _before(target: Path, old: os.stat_result, new_size: int) -> dict | None:
    """The file as it is before an in-place rewrite: its size, a digest of each
    PAGE, and, for a rewrite to a shorter size, digests of the two parts of the
    page where the new end falls (``cut``: before the end, which a truncate that
    reached the disk before the new page did leaves; ``tail``: after it, left
    until the truncate). None if it cannot be read."""
    try:
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    q, r = divmod(new_size, PAGE)
    pages, cut, tail = [], None, None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if (st.st_dev, st.st_ino) != (old.st_dev, old.st_ino):
            return None
        try:
            while page := f.read(PAGE):
                if r and len(pages) == q and len(page) > r:
                    cut, tail = _digest(page[:r]), _digest(page[r:])
                pages.append(_digest(page))
        except OSError:
            return None
    return {"size": st.st_size, "pages": "".join(pages), "cut": cut, "tail": tail}


def _sha256(f: BinaryIO) -> str:
    f.seek(0)
    h = hashlib.sha256()
    while chunk := f.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def _judge(target: str, copy: str, data: dict) -> str:
    """What became of an in-place rewrite cut short: "done" (the file holds the
    copy's bytes), "ours" (every page is still the old page or the new one: the
    rewrite can be finished), "changed" (someone else wrote it since) or "gone"."""
    before, after, inode = data.get("before"), data.get("after"), data.get("inode")
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(target, flags)
    except FileNotFoundError:
        return "gone"
    with os.fdopen(fd, "rb") as f, open(copy, "rb") as c:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or (inode is not None and st.st_ino != inode):
            return "changed"
        size_new = os.fstat(c.fileno()).st_size
        if st.st_size == size_new and all(a == b for a, b in zip(iter(lambda: f.read(1 << 20), b""),
                                                                  iter(lambda: c.read(1 << 20), b""))):
            return "done"
        if not isinstance(before, dict) or not isinstance(after, dict) or after.get("size") != size_new \
                or _sha256(c) != after.get("sha256"):
            return "changed"  # without what the file was, or with a damaged copy, nothing can be told
        old, pages = before.get("size"), before.get("pages") or ""
        cut, tail = before.get("cut"), before.get("tail")
        if not isinstance(old, int) or not min(old, size_new) <= st.st_size <= max(old, size_new):
            return "changed"
        q, r = divmod(size_new, PAGE)
        f.seek(0)
        c.seek(0)
        for i, page in enumerate(iter(lambda: f.read(PAGE), b"")):
            new, start = c.read(PAGE), i * PAGE
            if len(new) >= len(page) and page == new[:len(page)]:
                continue
            kept = max(0, min(old - start, PAGE))  # bytes of the old file in this page
            if kept and len(page) >= kept and page.count(0, kept) == len(page) - kept \
                    and _digest(page[:kept]) == pages[16 * i:16 * i + 16]:
                continue  # the old page (the space reserved past the old end reads as zeros)
            if not kept and page.count(0) == len(page):
                continue
            if i == q and r and tail and page[:r] == new[:r] and _digest(page[r:]) == tail:
                continue  # the new end, and the old bytes after it that the truncate had yet to cut
            if i == q and r and cut and len(page) == r and _digest(page) == cut:
                continue  # the truncate reached the disk, the new page did not
            return "changed"
    return "ours"


@dataclass
class Cleaned:
    """What ``clean_journal`` did: ``finished``, files whose in-place save a crash
    cut short and that were completed; ``kept``, (file, safety copy, reason) for
    each such save that was not completed (the file changed since, or could not
    be written): the copy holds the whole text that was being saved; ``removed``,
    temporary files of killed saves."""

    finished: list[str] = field(default_factory=list)
    kept: list[tuple[str, str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def clean_journal(journal: str | os.PathLike) -> Cleaned:
    """After a crash: remove the temporary files of saves that were killed, and
    finish an in-place rewrite that was cut short, while the file still holds
    only what the rewrite left (see _judge). Entries locked by a running save are
    left alone; an entry whose file changed since is dropped, its copy kept and
    reported; one that could not be finished is kept and reported again."""
    from filelock import FileLock, Timeout

    done = Cleaned()
    folder = Path(journal)
    try:
        stems = sorted({f.stem for f in folder.iterdir() if f.suffix in (".json", ".part")})
    except OSError:
        return done
    # an entry killed while it was being replaced is still whole in its .part
    for stem in stems:
        entry = folder / f"{stem}.json"
        lock = FileLock(str(entry.with_suffix(".lock")))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            continue  # a save is running in another window or process
        finished = True
        try:
            try:
                newest = entry if entry.exists() else entry.with_suffix(".part")
                data = json.loads(newest.read_text(encoding="utf-8"))
                if not isinstance(data, dict):
                    raise ValueError
            except (OSError, ValueError):
                data = {}  # half written (a full state folder): it names nothing to do
            tmp, copy, target = (str(data.get(k) or "") for k in ("tmp", "copy", "target"))
            if copy and target and _is_ours(Path(copy).name, COPY) and os.path.isfile(copy):
                try:
                    verdict = _judge(target, copy, data)
                    if verdict == "ours":
                        with open(copy, "rb") as src:
                            _rewrite_in_place(Path(target), src, data.get("inode"))
                        done.finished.append(target)
                    if verdict in ("changed", "gone"):
                        done.kept.append((target, copy, "it was changed by another program since"
                                          if verdict == "changed" else "it was removed since"))
                    else:
                        os.unlink(copy)
                except OSError as exc:
                    finished = False  # tried again at the next start
                    done.kept.append((target, copy, f"it could not be written ({exc.strerror or exc})"))
            if tmp and _is_ours(Path(tmp).name, TMP) and os.path.lexists(tmp):
                _unlink_quietly(tmp)
                done.removed.append(tmp)
            if finished:
                _unlink_quietly(entry)
                _unlink_quietly(entry.with_suffix(".part"))
        finally:
            lock.release()
            _unlink_quietly(entry.with_suffix(".lock"))
    return done


def _rewrite_in_place(target: Path, source: BinaryIO, inode: int | None) -> os.stat_result:
    """Copy ``source`` over ``target``'s own bytes (same inode), sync it."""
    fd = os.open(target, os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "wb") as out:
        st = os.fstat(out.fileno())
        if not stat.S_ISREG(st.st_mode) or (inode is not None and st.st_ino != inode):
            raise FileNotFoundError(errno.ENOENT, f"{display(target)} was replaced while it was being saved")
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


# ---- writing -----------------------------------------------------------------------------------
class AtomicFile:
    """One write of a whole file: ``open()`` gives a binary file object,
    ``commit()`` puts what was written in place and returns its stat,
    ``discard()`` leaves the target as it was (call it always; it is a no-op
    after a commit). Also a context manager that commits on success.

    ``streams``: a FIFO or character device is written to as it is (and a name
    of one of our descriptors through a duplicate of it); ``on_wait`` is called
    once when a FIFO has no reader yet and ``open`` is about to wait for one.

    Raises WriteRefused (at construction) for a folder, a socket, a block
    device, a symlink loop, a link or file another user put in a shared sticky
    folder, a FIFO or character device unless ``streams``, and a descriptor
    that is not open for writing; OSError for what the OS refuses."""

    def __init__(self, path: str | os.PathLike, *, streams: bool = False, journal: Path | None = None,
                 on_wait: Callable[[], None] | None = None) -> None:
        self.name = os.fspath(path)
        self.fd = descriptor(path) if streams else None
        self._on_wait = on_wait
        self._journal_folder = journal
        self._journal: _Journal | None = None
        self._fh: BinaryIO | None = None
        self._tmp: Path | None = None
        self._private = False  # the temporary file was made 0600 (for a file that existed)
        if self.fd is not None:
            self.stream, self.target, self.old = True, Path(path), None
            self._check_descriptor()
            return
        self.target = resolve(path)
        self.old = _lstat(self.target)
        kind = None if self.old is None else special_kind(self.old.st_mode)
        self.stream = streams and kind is not None and (stat.S_ISFIFO(self.old.st_mode)
                                                        or stat.S_ISCHR(self.old.st_mode))
        if kind is not None and not self.stream:
            raise WriteRefused(f"{display(path)} is {kind}, not a regular file; "
                               "Lacuna writes regular files only. Choose another name.")
        if self.old is not None and not stat.S_ISCHR(self.old.st_mode):
            _refuse_foreign(self.name, self.target, self.old)

    def _check_descriptor(self) -> None:
        try:
            os.fstat(self.fd)
            mode = fcntl.fcntl(self.fd, fcntl.F_GETFL) & os.O_ACCMODE if fcntl is not None else os.O_WRONLY
        except OSError:
            raise WriteRefused(f"{display(self.name)} names descriptor {self.fd}, which this process does not "
                               "have open; name a file instead.") from None
        if mode == os.O_RDONLY:
            raise WriteRefused(f"{display(self.name)} names descriptor {self.fd}, which is open for reading "
                               "only; name a file instead.")

    def open(self) -> BinaryIO:
        if self.fd is not None:
            for std in (sys.stdout, sys.stderr):  # what Python holds for it goes first, in order
                try:
                    std.flush()
                except (AttributeError, OSError, ValueError):
                    pass
            # a duplicate shares the descriptor's offset: nothing the process prints is written over
            self._fh = os.fdopen(os.dup(self.fd), "wb")
            return self._fh
        if self.stream:
            self._fh = os.fdopen(self._open_stream(), "wb")
            return self._fh
        folder = self.target.parent
        remove_stale_temps(folder)
        self._private = self.old is not None
        fd, self._tmp = _new_temp(folder, 0o600 if self._private else 0o666)
        self._journal = _Journal(self._journal_folder, {"tmp": str(self._tmp)})
        self._fh = os.fdopen(fd, "w+b")
        return self._fh

    def _open_stream(self) -> int:
        """The FIFO or device, written as it comes; a FIFO's open waits for its reader."""
        flags = os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
        if stat.S_ISFIFO(self.old.st_mode) and hasattr(os, "O_NONBLOCK"):
            try:
                fd = os.open(self.target, flags | os.O_NONBLOCK)
                os.set_blocking(fd, True)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                    raise
                if self._on_wait is not None:
                    self._on_wait()
                fd = os.open(self.target, flags)
        else:
            fd = os.open(self.target, flags)
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)):  # swapped for something else since the check
            os.close(fd)
            raise WriteRefused(f"{display(self.name)} became {special_kind(mode) or 'a regular file'} after it "
                               "was checked; it was left as it is.")
        return fd

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
            raise WriteRefused(f"{display(self.target)} became {special_kind(self.old.st_mode)} while it was "
                               "being written; it was left as it is.")
        if self.old is None and self._private:  # the file went while it was written: a new file's mode
            os.chmod(fh.fileno() if os.chmod in os.supports_fd else self._tmp, 0o666 & ~_umask())
        in_place = self.old is not None and (self.old.st_nlink > 1 or not self._keep_metadata())
        if not in_place:
            os.replace(self._tmp, self.target)
            self._tmp = None
            _fsync_folder(self.target.parent)
            st = os.fstat(fh.fileno())
        else:
            st = self._commit_in_place(fh)
        self._fh = None
        fh.close()
        self.discard()
        return st

    def _commit_in_place(self, fh: BinaryIO) -> os.stat_result:
        # the synced temp file becomes the safety copy: not removed as a stale temp, named in the journal
        copy = self._tmp.with_name(self._tmp.name[:-len(TMP)] + COPY)
        if self._journal is not None and self._journal.file is not None:
            size = os.fstat(fh.fileno()).st_size
            self._journal.note({"tmp": str(self._tmp), "copy": str(copy), "target": str(self.target),
                                "inode": self.old.st_ino, "before": _before(self.target, self.old, size),
                                "after": {"size": size, "sha256": _sha256(fh)}})
        os.replace(self._tmp, copy)
        self._tmp = copy
        try:
            st = _rewrite_in_place(self.target, fh, self.old.st_ino)
        except _Torn as exc:
            if self._journal is not None:
                self._journal.keep()  # the next start finishes it, if nobody changes the file before
            raise OSError(exc.errno, f"{exc.strerror}; the complete new contents are kept in "
                                     f"{display(copy)}") from None
        except OSError:
            os.unlink(copy)  # refused before a byte of the file changed: it is whole, the copy is not needed
            self._tmp = None
            raise
        os.unlink(copy)
        self._tmp = None
        return st

    def discard(self) -> None:
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                pass
            self._fh = None
        if self._tmp is not None and self._tmp.name.endswith(TMP):
            _unlink_quietly(self._tmp)
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
