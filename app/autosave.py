"""Autosave of unsaved work and recovery after a crash.

Each window writes its unsaved text to ``<state dir>/autosave/<pid>-<id>.json``
(atomically) every 30 s while it has unsaved changes, and deletes the file when
the work is saved or deliberately discarded. A large text is written on a thread
(``write_behind``), its JSON escaped a piece at a time so the GIL is never held from the GUI
thread for long; deleting the file waits for such a write first. For its whole life the window
holds an OS file lock on ``<pid>-<id>.lock`` (filelock: fcntl/msvcrt); the OS
drops it when the process dies, however it dies. An autosave whose lock nobody
holds is an orphan, whatever process has its PID now: the next start offers it.

An autosave carries what a save of the restored text needs (version 2): the
encoding, the BOM, the majority line ending and the ending of every line that
a save at that moment would not give the majority one (``endings``; see
fileio.settled_endings), and the stamp of the file as the window last read or
wrote it, so that Save after Restore sees a change another program made to the
file after the crash. An autosave of version 1 has no stamp: Save then treats
any file at its path as changed, and asks.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .fileio import UNKNOWN_STAMP, FileStamp
from .paths import autosave_dir

INTERVAL_MS = 30_000


@dataclass(frozen=True)
class Recovered:
    file: Path  # the autosave file
    path: str | None  # the document's own path, None for an untitled text
    text: str
    saved_at: float
    encoding: str = "utf-8"
    bom: bool = False
    newline: str = "\n"
    mtime_ns: int = 0  # of the autosave file when it was found: Discard removes only that version
    endings: tuple[tuple[int, str], ...] = ()  # (break index, ending) of breaks not ending in ``newline``
    stamp: FileStamp | None = None  # of ``path`` when the window last read or wrote it; None for untitled


_DUMP_PIECE = 1 << 20  # characters of the text encoded at a time


def _dump(f, head: dict, text: str, ascii_only: bool) -> None:
    """Write ``head`` with ``text`` as its last member "text", as one JSON object. The
    text is escaped a piece at a time (JSON escapes each code point alone, so the pieces
    join into the same string): one json.dumps of 50 MB held the GIL, and so the GUI
    thread, for 0.3 s, and the whole blob took as much memory again."""
    codec = "ascii" if ascii_only else "utf-8"
    f.write(json.dumps(head, ensure_ascii=ascii_only)[:-1].encode(codec) + b', "text": "')
    for k in range(0, len(text), _DUMP_PIECE):
        f.write(json.dumps(text[k:k + _DUMP_PIECE], ensure_ascii=ascii_only)[1:-1].encode(codec))
    f.write(b'"}')


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":  # no cheap portable check: treat fresh files as live
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class AutosaveStore:
    """The autosave file of one window."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = Path(folder) if folder is not None else autosave_dir()
        self.file = self.folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.json"
        self._lock: FileLock | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(str(self.file.with_suffix(".lock")))
            self._lock.acquire(timeout=0)
        except (OSError, Timeout):  # the PID check still guards this window's file
            self._lock = None
        self._writing: threading.Thread | None = None  # a write_behind under way
        self._error: OSError | ValueError | None = None  # what the last write_behind raised

    def write(self, text: str, path: str | None, encoding: str = "utf-8", bom: bool = False, newline: str = "\n",
              endings=(), stamp: FileStamp | None = None) -> None:
        """Write (atomically, synced) this window's unsaved text and what saving it needs.
        Raises OSError (a full or read-only state folder)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        head = {
            "version": 2,
            "path": path,
            "saved_at": time.time(),
            "encoding": encoding,
            "bom": bom,
            "newline": newline,
            "endings": [[k, e] for k, e in endings],
            "stamp": stamp.to_json() if stamp is not None else None,
        }
        tmp = self.file.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            try:
                _dump(f, head, text, ascii_only=False)
            except UnicodeEncodeError:  # a lone surrogate (pasted from a broken source): escaped, and kept
                f.seek(0)
                f.truncate()
                _dump(f, head, text, ascii_only=True)
            f.flush()
            os.fsync(f.fileno())  # a power cut must not leave an empty autosave in place of a good one
        os.replace(tmp, self.file)

    def write_behind(self, text: str, path: str | None, encoding: str = "utf-8", bom: bool = False,
                     newline: str = "\n", endings=(), stamp: FileStamp | None = None) -> None:
        """``write`` on a thread of its own (for a large text: its JSON, encoding and fsync
        took 0.4 s of the GUI thread at 50 MB). A write still under way is waited for
        first; ``busy`` says whether one is under way and ``wait`` what it raised."""
        self.wait()

        def job() -> None:
            try:
                self.write(text, path, encoding, bom, newline, endings, stamp)
            except (OSError, ValueError) as exc:
                self._error = exc

        self._writing = threading.Thread(target=job, name="lacuna-autosave", daemon=True)
        self._writing.start()

    @property
    def busy(self) -> bool:
        return self._writing is not None and self._writing.is_alive()

    def wait(self) -> OSError | ValueError | None:
        """Let a write_behind under way end; the error it raised, if any (given once)."""
        if self._writing is not None:
            self._writing.join()
            self._writing = None
        error, self._error = self._error, None
        return error

    def discard(self) -> bool:
        """Delete this window's autosave (its work was saved or given up). False when
        it is still there: the state folder refuses (read-only, or not a folder);
        the next start then offers it, as an orphan, with its date. A write under way
        ends first, so it cannot bring the file back."""
        self.wait()
        try:
            self.file.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True

    def close(self) -> None:
        """The window closes: its autosave is gone, its lock released. Never raises:
        a state folder that refuses must not stop the window from closing."""
        self.discard()
        if self._lock is not None:
            try:
                self._lock.release()
            except OSError:
                pass
            self._lock = None
            try:
                self.file.with_suffix(".lock").unlink(missing_ok=True)
            except OSError:
                pass


def _owner_gone(f: Path) -> bool:
    """Nobody holds the autosave's lock: the window that wrote it is gone. A file
    without a lock (an older Lacuna's) falls back on its PID."""
    lock_path = f.with_suffix(".lock")
    if not lock_path.exists():
        try:
            return not _pid_alive(int(f.name.split("-", 1)[0]))
        except ValueError:
            return True
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return False
    lock.release()
    return True


def remove(rec: Recovered) -> bool:
    """Delete a recovered autosave, only if it is still the version that was found
    (a file rewritten since, or a different file, is left alone)."""
    try:
        if rec.file.stat().st_mtime_ns != rec.mtime_ns:
            return False
        rec.file.unlink()
        rec.file.with_suffix(".lock").unlink(missing_ok=True)
    except OSError:
        return not rec.file.exists()
    return True


def clean_stale_temps(folder: Path | None = None) -> None:
    """Remove half-written autosaves (``.tmp``) of windows that are gone."""
    folder = Path(folder) if folder is not None else autosave_dir()
    if not folder.is_dir():
        return
    try:
        temps = list(folder.glob("*.tmp"))
    except OSError:
        return
    for tmp in temps:
        if _owner_gone(tmp.with_suffix(".json")):
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # a read-only state folder: left for a later start
                pass


def find_orphans(folder: Path | None = None, alive=None) -> list[Recovered]:
    """Autosave files whose window is gone (nobody holds their lock), newest
    first. ``alive(pid)``, when given, decides instead (tests use it)."""
    folder = Path(folder) if folder is not None else autosave_dir()
    found: list[Recovered] = []
    if not folder.is_dir():
        return found
    for f in folder.glob("*.json"):
        if alive is not None:
            try:
                if alive(int(f.name.split("-", 1)[0])):
                    continue
            except ValueError:
                continue
        elif not _owner_gone(f):
            continue
        try:
            mtime = f.stat().st_mtime_ns
            d = json.loads(f.read_text(encoding="utf-8"))
            found.append(_recovered(f, d, mtime))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    found.sort(key=lambda r: r.saved_at, reverse=True)
    return found


def _recovered(f: Path, d: dict, mtime: int) -> Recovered:
    path = d.get("path")
    stamp = FileStamp.from_json(d.get("stamp"))
    if path and stamp is None:
        stamp = UNKNOWN_STAMP  # what the file was is not known: a save must ask
    raw = d.get("endings")
    endings = tuple((x[0], x[1]) for x in (raw if isinstance(raw, list) else ())  # damage costs the endings only
                    if isinstance(x, list) and len(x) == 2 and isinstance(x[0], int) and isinstance(x[1], str))
    return Recovered(f, path, d["text"], float(d.get("saved_at", 0)), d.get("encoding", "utf-8"),
                     bool(d.get("bom", False)), d.get("newline", "\n"), mtime, endings, stamp)
