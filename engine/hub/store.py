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


_IGNORED: dict[str, str] = {}  # file -> why it was ignored, for the CLI and the app to show


def ignore(name: str, why: str) -> None:
    """Note that (part of) a user data file was ignored; :func:`ignored` reports it."""
    _IGNORED[str(_file(name))] = why


def forget_ignored() -> None:
    """Start a new report (the CLI does at each command)."""
    _IGNORED.clear()


def ignored() -> list[str]:
    """One line per user data file ignored so far in this process: ``FILE: why``."""
    return [f"{path}: {why}" for path, why in _IGNORED.items()]


def read(name: str, default: Any) -> Any:
    """The parsed content of a user data file, or ``default`` if missing or unreadable.

    An unreadable file is noted with :func:`ignore` (never raised): a broken
    record or catalog must not stop the bundled model or the other records.
    """
    try:
        with open(_file(name), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return default
    except (OSError, ValueError, RecursionError) as err:
        ignore(name, f"ignored, it cannot be read ({type(err).__name__})")
        return default
    if not isinstance(data, type(default)):
        ignore(name, f"ignored, it holds a JSON {type(data).__name__}, not a {type(default).__name__}")
        return default
    return data


def _keep_corrupt(path: Path) -> None:
    """Before an update replaces a file that could not be read, keep it beside as ``.corrupt``."""
    try:
        with open(path, encoding="utf-8") as fh:
            json.load(fh)
    except FileNotFoundError:
        return
    except (OSError, ValueError, RecursionError):
        try:
            os.replace(path, path.with_name(path.name + ".corrupt"))
        except OSError:
            pass


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
        _keep_corrupt(_file(name))
        new = change(data)
        if new is None:
            new = data
        _write(_file(name), new)
        return new
