"""Small JSON files under the user data folder, written atomically and under a lock.

installs.json  one record per installed repo: commit, files, sha256, times
consent.json   remote-code consents per (repo, commit)
catalog.json   the user's own catalog entries (repo ids and local folders)
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from . import paths


def _file(name: str) -> Path:
    return paths.data_dir() / name


def read(name: str, default: Any) -> Any:
    """The parsed content of a user data file, or ``default`` if missing or unreadable."""
    try:
        with open(_file(name), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def _write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def _locked(name: str) -> Iterator[None]:
    from filelock import FileLock

    path = _file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=30):
        yield


def update(name: str, default: Any, change: Callable[[Any], Any]) -> Any:
    """Read, change and write back one file under a cross-process lock."""
    with _locked(name):
        data = read(name, default)
        new = change(data)
        if new is None:
            new = data
        _write(_file(name), new)
        return new
