"""Autosave of unsaved work and recovery after a crash.

Each window writes its unsaved text to ``<state dir>/autosave/<pid>-<id>.json``
(atomically) every 30 s while it has unsaved changes, and deletes the file when
the work is saved or deliberately discarded. For its whole life the window
holds an OS file lock on ``<pid>-<id>.lock`` (filelock: fcntl/msvcrt); the OS
drops it when the process dies, however it dies. An autosave whose lock nobody
holds is an orphan, whatever process has its PID now: the next start offers it.
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

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

    def write(self, text: str, path: str | None, encoding: str = "utf-8", bom: bool = False, newline: str = "\n") -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": 1,
            "path": path,
            "text": text,
            "saved_at": time.time(),
            "encoding": encoding,
            "bom": bom,
            "newline": newline,
        }
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.file)

    def discard(self) -> None:
        try:
            self.file.unlink()
        except FileNotFoundError:
            pass

    def close(self) -> None:
        """The window closes: its autosave is gone, its lock released."""
        self.discard()
        if self._lock is not None:
            self._lock.release()
            self.file.with_suffix(".lock").unlink(missing_ok=True)
            self._lock = None


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
    except OSError:
        return False
    rec.file.with_suffix(".lock").unlink(missing_ok=True)
    return True


def clean_stale_temps(folder: Path | None = None) -> None:
    """Remove half-written autosaves (``.tmp``) of windows that are gone."""
    folder = Path(folder) if folder is not None else autosave_dir()
    if not folder.is_dir():
        return
    for tmp in folder.glob("*.tmp"):
        if _owner_gone(tmp.with_suffix(".json")):
            tmp.unlink(missing_ok=True)


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
            found.append(
                Recovered(f, d.get("path"), d["text"], float(d.get("saved_at", 0)),
                          d.get("encoding", "utf-8"), bool(d.get("bom", False)), d.get("newline", "\n"), mtime)
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    found.sort(key=lambda r: r.saved_at, reverse=True)
    return found
