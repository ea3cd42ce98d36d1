"""Autosave of unsaved work and recovery after a crash.

Each window writes its unsaved text to ``<state dir>/autosave/<pid>-<id>.json``
(atomically) every 30 s while it has unsaved changes, and deletes the file when
the work is saved or deliberately discarded. A file left behind by a process
that is no longer running is an orphan: the next start offers to restore it.
"""
from __future__ import annotations

import json
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

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


def find_orphans(folder: Path | None = None, alive=_pid_alive) -> list[Recovered]:
    """Autosave files whose process is gone, newest first."""
    folder = Path(folder) if folder is not None else autosave_dir()
    found: list[Recovered] = []
    if not folder.is_dir():
        return found
    for f in folder.glob("*.json"):
        try:
            pid = int(f.name.split("-", 1)[0])
        except ValueError:
            continue
        if alive(pid):
            continue
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
            found.append(
                Recovered(f, d.get("path"), d["text"], float(d.get("saved_at", 0)),
                          d.get("encoding", "utf-8"), bool(d.get("bom", False)), d.get("newline", "\n"))
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    found.sort(key=lambda r: r.saved_at, reverse=True)
    return found
