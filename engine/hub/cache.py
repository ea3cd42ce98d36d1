"""The Hugging Face cache layout, read and written without the network.

    <cache>/models--org--name/blobs/<etag>              file content
    <cache>/models--org--name/snapshots/<commit>/<path> symlink to ../../blobs/<etag>
    <cache>/models--org--name/refs/<branch>             the commit a branch points to

Our partial downloads sit beside the blobs as ``<etag>.lacuna.incomplete``.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from . import paths, records, validate

PARTIAL_SUFFIX = ".lacuna.incomplete"
COMMIT_RE = re.compile(r"[0-9a-f]{40}")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".msgpack", ".h5")


def _blob_name(repo: str, blob: str) -> str:
    # a blob is named by its etag: a git sha1 or an LFS sha256, nothing else
    if not (validate.is_commit(blob) or validate.is_sha256(blob)):
        from .errors import HubError

        raise HubError(f"refusing blob name {validate.show(blob)} of {repo}: not a git or sha256 id")
    return blob


def blob_path(repo: str, blob: str) -> Path:
    return paths.repo_dir(repo) / "blobs" / _blob_name(repo, blob)


def partial_path(repo: str, blob: str) -> Path:
    return paths.repo_dir(repo) / "blobs" / (_blob_name(repo, blob) + PARTIAL_SUFFIX)


def snapshot_dir(repo: str, commit: str) -> Path:
    return paths.repo_dir(repo) / "snapshots" / validate.commit_sha(commit, repo)


def read_ref(repo: str, ref: str) -> str | None:
    try:
        validate.revision(ref, repo)
        value = (paths.repo_dir(repo) / "refs" / ref).read_text().strip()
    except (OSError, ValueError):
        return None
    return value if COMMIT_RE.fullmatch(value) else None


def write_ref(repo: str, ref: str, commit: str) -> None:
    """refs/<ref> := commit; ``ref`` is checked as a revision name and must stay inside refs/."""
    validate.revision(ref, repo)
    validate.commit_sha(commit, repo)
    if COMMIT_RE.fullmatch(ref):
        return  # a commit is its own ref
    refs = paths.repo_dir(repo) / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    target = validate.inside(refs, ref, repo)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(commit)
    os.replace(tmp, target)


def link_into_snapshot(repo: str, commit: str, rel_path: str, blob: str) -> Path:
    """Make ``snapshots/<commit>/<rel_path>`` point at the blob (relative symlink, else a copy).

    ``rel_path`` must be a safe relative path whose resolved location (folders
    that already exist included) lies inside the snapshot folder: HubError otherwise.
    """
    folder = snapshot_dir(repo, commit)
    source = blob_path(repo, blob)
    folder.mkdir(parents=True, exist_ok=True)
    dest = validate.inside(folder, rel_path, repo)
    dest.parent.mkdir(parents=True, exist_ok=True)
    validate.inside(folder, rel_path, repo)  # again: a folder made just now is not a link elsewhere
    if dest.is_symlink() or dest.exists():
        try:
            if dest.resolve() == source.resolve() or _same_content_size(dest, source):
                return dest
        except OSError:
            pass
        dest.unlink()
    relative = os.path.relpath(source, dest.parent)
    try:
        os.symlink(relative, dest)
    except (OSError, NotImplementedError):
        shutil.copyfile(source, dest)
    return dest


def _same_content_size(a: Path, b: Path) -> bool:
    return not a.is_symlink() and a.stat().st_size == b.stat().st_size


TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model")


def snapshot_is_complete(folder: Path, weights: bool = True) -> bool:
    """A snapshot a loader can use: a config, weights, no dangling links, every shard present.

    ``weights=False`` judges a companion that lends only its tokenizer (GPT-2's for
    MDLM and SEDD): no dangling links and a tokenizer file are enough."""
    if weights and not (folder / "config.json").is_file():
        return False
    found = False
    for entry in folder.rglob("*"):
        if entry.is_symlink() and not entry.exists():
            return False
        if entry.is_file() and (entry.name.endswith(WEIGHT_SUFFIXES) if weights else entry.name in TOKENIZER_FILES):
            found = True
    if not found:
        return False
    # only the index the loader reads: `hf download --include` may leave a pytorch_model.bin
    # index whose pickles were (rightly) not fetched
    for index in folder.glob("*.safetensors.index.json"):
        try:
            import json

            weight_map = json.loads(index.read_text()).get("weight_map", {})
        except (OSError, ValueError):
            return False
        for shard in set(weight_map.values()):
            if not (folder / shard).is_file():
                return False
    return True


def cached_commits(repo: str) -> list[str]:
    """Commits with a snapshot folder in the cache, newest first (by folder time)."""
    snaps = paths.repo_dir(repo) / "snapshots"
    try:
        folders = [p for p in snaps.iterdir() if p.is_dir() and COMMIT_RE.fullmatch(p.name)]
    except OSError:
        return []
    folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.name for p in folders]


def newest_complete_snapshot(repo: str, weights: bool = True) -> Path | None:
    """The snapshot of refs/main if complete, else the newest complete one; offline
    (``weights``: as in snapshot_is_complete)."""
    candidates = cached_commits(repo)
    main = read_ref(repo, "main")
    if main in candidates:
        candidates.remove(main)
        candidates.insert(0, main)
    for commit in candidates:
        folder = snapshot_dir(repo, commit)
        if snapshot_is_complete(folder, weights):
            return folder
    return None


def installed_snapshot(repo: str) -> Path | None:
    """The snapshot of the commit recorded at install, if every recorded file is still there."""
    record = records.get_install(repo)
    if not record:
        return None
    folder = snapshot_dir(record["repo"], record["commit"])
    for item in record.get("files", []):
        if not isinstance(item, dict) or validate.path_problem(item.get("path")) is not None:
            return None
        if not (folder / item["path"]).is_file():
            return None
    return folder if folder.is_dir() else None


def blob_of_partial(partial: Path) -> str:
    """The blob a partial file is the start of: ours (``<etag>.lacuna.incomplete``) or
    huggingface_hub's (``<etag>.incomplete``)."""
    name = partial.name
    return name[: -len(PARTIAL_SUFFIX)] if name.endswith(PARTIAL_SUFFIX) else name.removesuffix(".incomplete")


def remove_if_idle(repo: str, blob: str, *files: Path) -> bool:
    """Delete ``files`` (a blob's partial, the blob itself) unless a download of that blob holds
    its lock: the per-blob lock both Lacuna and huggingface_hub take while they write it, in
    this process or another. Returns False, deleting nothing, when the blob is in use."""
    from filelock import FileLock, Timeout

    lock_file = paths.lock_path(repo, blob)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_file))
        lock.acquire(timeout=0)
    except (Timeout, OSError):
        return False
    try:
        for file in files:
            file.unlink(missing_ok=True)
        return True
    finally:
        lock.release()


def blobs_in_use(repo: str) -> list[str]:
    """Blobs of ``repo`` whose lock a running download holds now (this process or another)."""
    from filelock import FileLock, Timeout

    locks = paths.lock_path(repo, "x").parent
    busy = []
    try:
        names = [p.name[: -len(".lock")] for p in locks.iterdir() if p.name.endswith(".lock")]
    except OSError:
        return busy
    for blob in names:
        lock = FileLock(str(locks / f"{blob}.lock"))
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            busy.append(blob)
            continue
        lock.release()
    return busy


def blob_stamp(repo: str, blob: str) -> int | None:
    """The blob's modification time in ns (None when it is gone): recorded when it is verified."""
    try:
        return blob_path(repo, blob).stat().st_mtime_ns
    except OSError:
        return None


def changed_since_verified(record: dict) -> list[str]:
    """The paths of an install record whose blob is gone, has another size, or was written
    after it was verified (its recorded stamp differs). Cheap: no hashing. A record from
    before stamps were kept is judged on sizes alone."""
    changed = []
    for item in record.get("files", []):
        try:
            blob = blob_path(record["repo"], item["blob"])
            st = blob.stat()
            entry = snapshot_dir(record["repo"], record["commit"]) / item["path"]
        except (OSError, KeyError, TypeError, ValueError):
            changed.append(str(item.get("path")) if isinstance(item, dict) else "?")
            continue
        stamp = item.get("mtime_ns")
        if st.st_size != item.get("size") or (isinstance(stamp, int) and st.st_mtime_ns != stamp) \
                or not snapshot_entry_ok(entry, blob, item.get("size")):
            changed.append(item["path"])
    return changed


def snapshot_entry_ok(entry: Path, blob: Path, size: object) -> bool:
    """What the loader reads: a link to the blob, or (where links are impossible) a copy of its size."""
    try:
        if entry.is_symlink():
            return entry.resolve() == blob.resolve()
        return entry.is_file() and entry.stat().st_size == size
    except OSError:
        return False


def repo_size_on_disk(repo: str) -> int:
    """Bytes used by the repo's blobs (partials included)."""
    total = 0
    blobs = paths.repo_dir(repo) / "blobs"
    try:
        for entry in blobs.iterdir():
            if entry.is_file():
                total += entry.stat().st_size
    except OSError:
        pass
    return total


def partial_bytes(repo: str) -> int:
    total = 0
    blobs = paths.repo_dir(repo) / "blobs"
    try:
        for entry in blobs.glob("*" + PARTIAL_SUFFIX):
            total += entry.stat().st_size
    except OSError:
        pass
    return total


def clean_stale_partials(max_age_days: float = 7.0, repo: str | None = None) -> list[Path]:
    """Delete partial files nobody will resume.

    Ours (``*.lacuna.incomplete``) go when their blob is complete already or when
    untouched for ``max_age_days``; huggingface_hub's own ``*.incomplete`` files
    (which it never resumes across processes) go after a day without change. A
    partial whose blob lock a running download holds is never touched.
    Returns what was removed.
    """
    removed: list[Path] = []
    cache = paths.hf_cache_dir()
    if repo is not None:
        repos = [paths.repo_dir(repo)]
    else:
        try:
            repos = [p for p in cache.iterdir() if p.name.startswith("models--")]
        except OSError:
            return removed
    now = time.time()
    for folder in repos:
        blobs = folder / "blobs"
        try:
            entries = list(blobs.glob("*.incomplete"))
        except OSError:
            continue
        for entry in entries:
            try:
                age_days = (now - entry.stat().st_mtime) / 86400.0
            except OSError:
                continue
            if entry.name.endswith(PARTIAL_SUFFIX):
                blob = blobs / entry.name[: -len(PARTIAL_SUFFIX)]
                stale = blob.exists() or age_days > max_age_days
            else:
                stale = age_days > 1.0
            if stale and remove_if_idle(folder_repo(folder), blob_of_partial(entry), entry):
                removed.append(entry)
    return removed


def folder_repo(folder: Path) -> str:
    """``models--org--name`` -> ``org/name`` (the repo a cache folder holds)."""
    return folder.name[len("models--"):].replace("--", "/", 1)
