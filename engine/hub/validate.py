"""Checks on every value a Hub (or a user) supplies before it names a file in the cache.

A mirror set with HF_ENDPOINT may be broken or hostile: its commit shas, blob
ids and tree paths become folder and file names under the cache, so each is
checked here first. A bad value raises HubError (server values) or InputError
(user values) with one line naming the repo and the value; nothing is written.
The path rules follow what git itself accepts in a tree (no ``.``/``..``
components, no empty components) plus what would escape a folder on Windows
(backslashes, drive letters, NUL); the final check is on the resolved path.
"""
from __future__ import annotations

import re
from pathlib import Path

from lacuna.engine.errors import InputError

from .errors import HubError

_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"^[A-Za-z]:")
_PR_REF = re.compile(r"refs/pr/[1-9][0-9]{0,8}")
# git check-ref-format: no control characters, space, ~ ^ : ? * [ \ or "@{"
_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|@\{")
MAX_PATH = 4096


def show(value: object, limit: int = 80) -> str:
    """A value as it may appear in a one-line message: repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_commit(value: object) -> bool:
    return isinstance(value, str) and _HEX40.fullmatch(value) is not None


def is_sha256(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


def commit_sha(value: object, repo: str) -> str:
    """A commit sha from the Hub: 40 lowercase hex digits."""
    if not is_commit(value):
        raise HubError(f"the Hub sent an invalid commit id for {repo}: {show(value)}; refusing it")
    return value  # type: ignore[return-value]


def git_oid(value: object, repo: str, path: str) -> str:
    """A git blob id from the tree listing: 40 lowercase hex digits."""
    if not is_commit(value):
        raise HubError(f"the Hub listed {show(path)} of {repo} with an invalid git id {show(value)}; "
                       f"refusing it")
    return value  # type: ignore[return-value]


def lfs_oid(value: object, repo: str, path: str) -> str:
    """An LFS object id from the tree listing: a sha256, 64 lowercase hex digits."""
    if not is_sha256(value):
        raise HubError(f"the Hub listed {show(path)} of {repo} with an invalid sha256 {show(value)}; "
                       f"refusing it")
    return value  # type: ignore[return-value]


def size(value: object, repo: str, path: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 1 << 50:
        raise HubError(f"the Hub listed {show(path)} of {repo} with an invalid size {show(value)}; refusing it")
    return value


def path_problem(path: object) -> str | None:
    """Why ``path`` is not a safe relative POSIX path inside a repo, or None."""
    if not isinstance(path, str) or not path:
        return "not a path"
    if len(path) > MAX_PATH:
        return "too long"
    if "\x00" in path:
        return "has a NUL character"
    if "\\" in path:
        return "has a backslash"
    if path.startswith("/"):
        return "is absolute"
    if _DRIVE.match(path):
        return "starts with a drive letter"
    if ":" in path:  # a drive (C:), or an NTFS stream (name:stream) on Windows
        return "has a colon"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "has an empty, '.' or '..' component"
    return None


def tree_path(path: object, repo: str) -> str:
    """A file path from the tree listing: relative, POSIX, no ``..``, no backslash, drive or NUL."""
    problem = path_problem(path)
    if problem is not None:
        raise HubError(f"the Hub listed a file of {repo} whose path {problem}: {show(path)}; refusing it")
    return path  # type: ignore[return-value]


def inside(folder: Path, rel: str, repo: str) -> Path:
    """``folder / rel``, refused unless its parent, resolved (existing links followed), is in ``folder``.

    The last component itself is not followed: it is the entry the caller
    writes or replaces (a snapshot's link to its blob points outside on purpose).
    """
    problem = path_problem(rel)
    if problem is not None:
        raise HubError(f"refusing path {show(rel)} of {repo}: it {problem}")
    target = folder / rel
    root = folder.resolve()
    parent = target.parent.resolve()
    if parent != root and root not in parent.parents:
        raise HubError(f"refusing path {show(rel)} of {repo}: it leads outside {folder}")
    return target


def revision(value: str, repo: str) -> str:
    """A user's revision: a branch or tag name, ``refs/pr/N`` or a commit sha.

    Follows git's ref-name rules (no ``..``, no leading or trailing ``/``, no
    empty component or one starting with ``.``, no ``.lock`` ending, no control
    characters, space, ``~^:?*[\\`` or ``@{``). Raises InputError.
    """
    def bad(why: str) -> InputError:
        return InputError(f"revision {show(value)} of {repo} is not a branch, tag, refs/pr/N or commit: {why}")

    if not isinstance(value, str) or not value:
        raise bad("it is empty")
    if is_commit(value) or _PR_REF.fullmatch(value):
        return value
    if value.startswith("refs/pr/"):
        raise bad("a pull request ref is refs/pr/<number>")
    if len(value) > 255:
        raise bad("it is too long")
    if value.startswith("/") or value.endswith("/"):
        raise bad("it starts or ends with '/'")
    if ".." in value:
        raise bad("it contains '..'")
    if _REF_BAD.search(value):
        raise bad("it contains a character git does not allow in a ref")
    if _DRIVE.match(value):
        raise bad("it starts with a drive letter")
    for part in value.split("/"):
        if not part or part.startswith(".") or part.endswith(".lock"):
            raise bad("a part of it is empty, starts with '.' or ends with '.lock'")
    if value.endswith("."):
        raise bad("it ends with '.'")
    return value
