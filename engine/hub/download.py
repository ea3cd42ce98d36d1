"""Downloads into the shared Hugging Face cache that resume, survive kills, and are verified.

The transfer is ours (huggingface_hub checks only sizes and forgets partial
files when its process dies): each file goes to ``blobs/<etag>.lacuna.incomplete``,
resumed with an HTTP Range request after a dropped connection, a stall or a
restart of the process; its sha256 (LFS) or git blob sha1 (small files) is
checked against the Hub's tree listing before it becomes ``blobs/<etag>``. The
snapshot links, the ref and Lacuna's install record are written only when
every file is in place and verified: a model is installed and verified, or not
installed.

Progress is delivered as immutable :class:`PullProgress` values to a callback,
on the downloading thread. ``pause`` and ``cancel`` are threading.Events:
pause stops at the next chunk and keeps partial files (pull again to resume);
cancel stops and deletes this pull's partial files.
"""
from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import cache, catalog, hubapi, paths, records, validate
from .errors import (Cancelled, DiskSpaceError, HubError, IntegrityError, Paused,
                     PickleConsentRequired, RemoteCodeConsentRequired)
from .fmt import human_bytes, human_eta, human_rate
from .hubapi import RemoteFile, TransientError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CODE_SUFFIX = ".py"


@dataclass(frozen=True)
class PullOptions:
    """Knobs of a pull; the defaults suit a real network, tests shrink the times."""

    stall_timeout: float = 30.0      # seconds without a byte -> drop the connection and retry
    max_retries: int = 5             # failed attempts in a row that reach no new byte of a file
    max_attempts: int = 100          # requests per file in all, however they end
    progress_timeout: float = 600.0  # seconds a file may go without reaching a new byte, retries included
    metadata_timeout: float = 60.0   # the whole of one revision or file-list call, retries included
    backoff_base: float = 1.0        # first retry waits this, then doubles ...
    backoff_max: float = 60.0        # ... up to this
    chunk_size: int = 1 << 20
    progress_interval: float = 0.2   # at most one progress value per this many seconds (0: every chunk)
    margin_bytes: int = 256 << 20    # free space kept beyond the download ...
    margin_fraction: float = 0.02    # ... or this fraction of it, whichever is larger
    allow_pickle: bool = False       # fetch .bin/.pt weights when the repo has nothing else
    trust_remote_code: bool = False  # consent to a user-added repo's custom code (recorded per commit)


@dataclass(frozen=True)
class FileProgress:
    path: str
    size: int
    done: int
    state: str            # queued | cached | downloading | retrying | verifying | done | failed
    rate: float = 0.0     # bytes per second
    eta: float | None = None


@dataclass(frozen=True)
class PullProgress:
    repo: str
    revision: str
    commit: str | None
    phase: str            # resolving | downloading | retrying | verifying | installed | paused | cancelled | failed
    done: int
    total: int
    rate: float = 0.0
    eta: float | None = None
    files: tuple[FileProgress, ...] = ()
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0

    def describe(self) -> str:
        """``downloading 42% at 12 MB/s, ETA 3 min`` and the like."""
        if self.phase in ("downloading", "retrying"):
            text = f"downloading {int(self.fraction * 100)}%"
            if self.rate:
                text += f" at {human_rate(self.rate)}"
            if self.eta is not None:
                text += f", ETA {human_eta(self.eta)}"
            if self.phase == "retrying":
                text += " (retrying)"
            return text
        if self.phase == "paused":
            return f"paused at {int(self.fraction * 100)}%"
        return self.message or self.phase


class _Meter:
    """Bytes per second over the last few seconds."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: deque[tuple[float, int]] = deque()

    def add(self, total: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.popleft()

    def rate(self) -> float:
        if len(self.samples) < 2:
            return 0.0
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return (b1 - b0) / (t1 - t0) if t1 - t0 > 0.05 else 0.0

    def reset(self) -> None:
        self.samples.clear()


def _eta(remaining: int, rate: float) -> float | None:
    return remaining / rate if rate > 0 else None


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _matches(path: str, patterns: list[str] | tuple[str, ...]) -> bool:
    for pattern in patterns:
        if "/" not in pattern and "/" in path:
            continue
        if fnmatch.fnmatch(path, pattern):
            return True
    return False


def select_files(repo: str, commit: str, tree: list[RemoteFile], patterns: list[str] | tuple[str, ...],
                 *, allow_pickle: bool, with_code: bool, weights: bool = True) -> list[RemoteFile]:
    """The files to fetch: the patterns' (safetensors, config, tokenizer), pickles only if allowed.

    ``weights=False`` is a companion that lends its tokenizer (GPT-2's for MDLM and
    SEDD): it gets the patterns' non-weight files only, so no weights and no pickle
    are fetched and no pickle consent is asked; it needs at least one tokenizer file.
    Raises PickleConsentRequired when the model's own weights exist only as a pickle
    and ``allow_pickle`` is false, HubError when nothing usable is there."""
    chosen = [f for f in tree if _matches(f.path, patterns)]
    if not weights:
        chosen = [f for f in chosen if not f.path.endswith(cache.WEIGHT_SUFFIXES + PICKLE_SUFFIXES)
                  and not f.path.endswith(CODE_SUFFIX)]
        if not any(_is_tokenizer_file(f.path) for f in chosen):
            raise HubError(f"{repo} has no tokenizer files (tokenizer.json, or vocab and merges)")
        chosen.sort(key=lambda f: (f.size, f.path))
        return chosen
    if with_code:
        chosen += [f for f in tree if f.path.endswith(CODE_SUFFIX) and "/" not in f.path and f not in chosen]
    has_safetensors = any(f.path.endswith(".safetensors") for f in chosen)
    pickles = [f for f in tree if f.path.endswith(PICKLE_SUFFIXES) and "/" not in f.path
               and not f.path.startswith(("training_args", "optimizer", "scheduler", "rng_state"))]
    if not has_safetensors and pickles:
        if not allow_pickle:
            names = ", ".join(f.path for f in pickles[:4])
            raise PickleConsentRequired(
                f"{repo} has only pickled weights ({names}), which can run code when loaded; "
                f"agree to fetch them (CLI: --allow-pickle) or pick another model",
                repo, commit, [f.path for f in pickles])
        chosen += [f for f in pickles if f not in chosen]
        chosen += [f for f in tree if f.path.endswith(".bin.index.json") and f not in chosen]
    if not any(f.path == "config.json" for f in chosen) and not any(
            f.path.endswith((".safetensors",) + PICKLE_SUFFIXES) for f in chosen):
        raise HubError(f"{repo} has no model files Lacuna can use (no config.json and no weights)")
    # config first (it decides about remote code), then small files, weights last
    chosen.sort(key=lambda f: (f.path != "config.json", f.size, f.path))
    return chosen


def _is_tokenizer_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name in ("tokenizer.json", "vocab.json", "merges.txt", "vocab.txt") or name.endswith(".model")


class _Hashes:
    def __init__(self, size: int) -> None:
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(f"blob {size}\0".encode())  # noqa: S324 - git's object id, not security

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.git.update(data)


def hash_file(path: Path, size: int, upto: int | None = None) -> _Hashes:
    hashes = _Hashes(size)
    remaining = size if upto is None else upto
    with open(path, "rb") as fh:
        while remaining > 0:
            data = fh.read(min(1 << 20, remaining))
            if not data:
                break
            hashes.update(data)
            remaining -= len(data)
    return hashes


def check_hashes(rf: RemoteFile, hashes: _Hashes) -> tuple[bool, str]:
    """(ok, the sha256 found) for a file against its tree entry.

    LFS files are checked by sha256, the others by git blob sha1. A file with
    neither usable hash is never ok: unverifiable is not verified.
    """
    found = hashes.sha256.hexdigest()
    if rf.sha256:
        return validate.is_sha256(rf.sha256) and found == rf.sha256, found
    if validate.is_commit(rf.oid):
        return hashes.git.hexdigest() == rf.oid, found
    return False, found


def free_space_at(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


class _Pull:
    def __init__(self, repo: str, revision: str, options: PullOptions,
                 progress: Callable[[PullProgress], None] | None,
                 cancel: threading.Event | None, pause: threading.Event | None) -> None:
        self.repo = repo
        self.revision = revision
        self.opt = options
        self.callback = progress
        self.cancel = cancel or threading.Event()
        self.pause = pause or threading.Event()
        self.commit: str | None = None
        self.files: dict[str, FileProgress] = {}
        self.total = 0
        self.meter = _Meter()
        self.file_meter = _Meter()
        self.last_emit = 0.0
        self.phase = "resolving"
        self._hashes: _Hashes | None = None

    def stopping(self) -> bool:
        """Pause or cancel is set: every request of this pull is cut within ~50 ms (hubapi.Guard)."""
        return self.cancel.is_set() or self.pause.is_set()

    def _metadata(self, call: Callable[..., Any], *args: Any) -> Any:
        """One revision or file-list call under the overall metadata deadline and this pull's stop."""
        deadline = time.monotonic() + self.opt.metadata_timeout
        try:
            return call(self.repo, *args, timeout=min(30.0, self.opt.metadata_timeout),
                        deadline=deadline, stop=self.stopping)
        except hubapi.Stopped:
            self.check()
            raise

    # progress ---------------------------------------------------------------
    def done_bytes(self) -> int:
        return sum(f.done for f in self.files.values())

    def emit(self, phase: str | None = None, message: str = "", force: bool = True) -> None:
        if phase is not None:
            self.phase = phase
        now = time.monotonic()
        if not force and now - self.last_emit < self.opt.progress_interval:
            return
        self.last_emit = now
        if self.callback is None:
            return
        done = self.done_bytes()
        rate = self.meter.rate()
        value = PullProgress(
            repo=self.repo, revision=self.revision, commit=self.commit, phase=self.phase,
            done=done, total=self.total, rate=rate, eta=_eta(self.total - done, rate),
            files=tuple(self.files.values()), message=message)
        self.callback(value)

    def set_file(self, path: str, **changes: Any) -> None:
        self.files[path] = replace(self.files[path], **changes)

    # control ----------------------------------------------------------------
    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(f"download of {self.repo} cancelled")
        if self.pause.is_set():
            raise Paused(f"download of {self.repo} paused")

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.cancel.wait(min(left, 0.05))

    # the work ---------------------------------------------------------------
    def run(self, entry: dict[str, Any] | None) -> dict[str, Any]:
        patterns = (entry or {}).get("files") or list(catalog.DEFAULT_FILES)
        user_repo = entry is None or entry.get("source") != "catalog"
        self.emit("resolving", f"resolving {self.repo}@{self.revision}")
        self.commit = self._metadata(hubapi.resolve_revision, self.revision)
        done = records.get_install(self.repo)
        changed = cache.changed_since_verified(done) if done else []
        if changed:
            # an installed model whose files were cut, replaced or touched since they were
            # verified: the plan below re-hashes every cached blob and fetches what is wrong
            self.emit("resolving", f"{len(changed)} file(s) of {self.repo} changed since they were "
                                   f"verified ({', '.join(changed[:3])}): checking and repairing")
        elif (done and done.get("commit") == self.commit and done.get("verified")
                and cache.installed_snapshot(self.repo) is not None):
            # already installed, verified, unchanged at this commit: nothing to fetch (`verify` re-hashes)
            cache.write_ref(self.repo, self.revision, self.commit)
            self.total = int(done.get("size") or 0)
            self.files = {f["path"]: FileProgress(f["path"], f["size"], f["size"], "cached")
                          for f in done.get("files", [])}
            self.emit("installed", f"{self.repo} is already installed at {self.commit[:12]}")
            return done
        tree = self._metadata(hubapi.list_tree, self.commit)
        chosen = select_files(self.repo, self.commit, tree, patterns, allow_pickle=self.opt.allow_pickle,
                              with_code=user_repo, weights=not catalog.lends_tokenizer_only(entry))
        cache.clean_stale_partials(repo=self.repo)
        self.check_disk(chosen)
        self.files = {f.path: FileProgress(f.path, f.size, 0, "queued") for f in chosen}
        self.total = sum(f.size for f in chosen)
        code_files: list[dict[str, Any]] = []
        sha256s: dict[str, str] = {}
        for rf in list(chosen):
            self.check()
            if rf.path in sha256s or rf not in chosen:
                continue
            sha256s[rf.path] = self.fetch(rf)
            if rf.path == "config.json" and user_repo:
                code_files = self.remote_code_gate(chosen)
                sha256s.update({f["path"]: f["sha256"] for f in code_files})
                if not code_files:  # no custom code: drop the .py files from the plan
                    for f in [f for f in chosen if f.path.endswith(CODE_SUFFIX)]:
                        chosen.remove(f)
                        self.files.pop(f.path, None)
                    self.total = sum(f.size for f in chosen)
        self.emit("verifying", "linking the snapshot")
        for rf in chosen:
            if not cache.blob_path(self.repo, rf.blob).is_file():  # removed meanwhile by another program
                sha256s[rf.path] = self.fetch(rf)
            cache.link_into_snapshot(self.repo, self.commit, rf.path, rf.blob)
        cache.write_ref(self.repo, self.revision, self.commit)
        config = self._config(chosen)
        record = {
            "repo": self.repo, "revision": self.revision, "commit": self.commit,
            "installed_at": _now_iso(), "verified_at": _now_iso(), "verified": True,
            "family": (entry or {}).get("family") if entry and entry.get("family") not in (None, "unknown")
            else catalog.family_from_config(config),
            "size": self.total,
            "files": [{"path": f.path, "size": f.size, "blob": f.blob, "sha256": sha256s[f.path],
                       "lfs": f.sha256 is not None, "mtime_ns": cache.blob_stamp(self.repo, f.blob)}
                      for f in chosen],
            "remote_code": code_files,
            "pickle": any(f.path.endswith(PICKLE_SUFFIXES) for f in chosen),
        }
        records.put_install(record)
        self.emit("installed", f"{self.repo} installed and verified ({human_bytes(self.total)})")
        return record

    def _config(self, chosen: list[RemoteFile]) -> dict[str, Any]:
        for rf in chosen:
            if rf.path == "config.json":
                try:
                    return json.loads(cache.blob_path(self.repo, rf.blob).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    return {}
        return {}

    def remote_code_gate(self, chosen: list[RemoteFile]) -> list[dict[str, Any]]:
        """After config.json: if the repo needs custom code, fetch its .py files and ask consent."""
        config = self._config(chosen)
        if not config.get("auto_map"):
            return []
        code = [f for f in chosen if f.path.endswith(CODE_SUFFIX)]
        files = []
        for rf in code:
            files.append({"path": rf.path, "size": rf.size, "sha256": self.fetch(rf)})
        assert self.commit is not None
        if records.has_consent(self.repo, self.commit):
            return files
        if self.opt.trust_remote_code:
            records.grant_consent(self.repo, self.commit, files)
            return files
        names = ", ".join(f["path"] for f in files) or "none listed"
        raise RemoteCodeConsentRequired(
            f"{self.repo} needs custom code ({names}) at commit {self.commit[:12]}; review it and "
            f"agree to go on (CLI: --trust-remote-code). Lacuna itself never runs it",
            self.repo, self.commit, files)

    def check_disk(self, chosen: list[RemoteFile]) -> None:
        needed = 0
        for rf in chosen:
            if cache.blob_path(self.repo, rf.blob).exists():
                continue
            partial = cache.partial_path(self.repo, rf.blob)
            have = partial.stat().st_size if partial.exists() else 0
            needed += max(0, rf.size - min(have, rf.size))
        if needed == 0:
            return
        margin = max(self.opt.margin_bytes, int(needed * self.opt.margin_fraction))
        where = paths.hf_cache_dir()
        free = free_space_at(where)
        if free < needed + margin:
            raise DiskSpaceError(
                f"not enough disk space for {self.repo}: it needs {human_bytes(needed)} plus "
                f"{human_bytes(margin)} to spare, and {where} has {human_bytes(free)} free")

    def fetch(self, rf: RemoteFile) -> str:
        """Make sure blobs/<etag> holds this file, verified; return its sha256."""
        from filelock import FileLock, Timeout

        lock_file = paths.lock_path(self.repo, rf.blob)
        lock_file.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(lock_file))
        while True:
            self.check()
            try:
                lock.acquire(timeout=0.2)
                break
            except Timeout:
                continue
        try:
            return self._fetch_locked(rf)
        finally:
            lock.release()

    def _fetch_locked(self, rf: RemoteFile) -> str:
        blob = cache.blob_path(self.repo, rf.blob)
        blob.parent.mkdir(parents=True, exist_ok=True)
        message = ""
        if blob.exists():
            self.set_file(rf.path, state="verifying", done=0)
            ok, sha = check_hashes(rf, hash_file(blob, rf.size))
            if ok and blob.stat().st_size == rf.size:
                self.set_file(rf.path, state="cached", done=rf.size)
                self.emit("downloading", f"{rf.path}: already in the cache")
                return sha
            blob.unlink()
            message = f"{rf.path}: the cached copy was corrupt; deleted it, downloading again"
            self.emit("downloading", message)
        partial = cache.partial_path(self.repo, rf.blob)
        have = partial.stat().st_size if partial.exists() else 0
        if have > rf.size:
            partial.unlink()
            have = 0
        hashes = hash_file(partial, rf.size, upto=have) if have else _Hashes(rf.size)
        self.set_file(rf.path, state="downloading", done=have)
        self.file_meter.reset()
        # Retries are bounded overall: progress means reaching a byte never reached
        # before (a high-water mark), so a server that makes the file grow and shrink
        # in turn cannot keep the download alive; the attempts and the time without
        # new bytes are capped too.
        failures = 0
        attempts = 0
        best = have
        best_at = time.monotonic()
        while have < rf.size:
            self.check()
            attempts += 1
            try:
                have, hashes = self._transfer(rf, partial, have, hashes)
            except TransientError as err:
                self.check()  # a pause or cancel that cut the connection is not a failure
                hashes = self._hashes  # it hashed exactly the bytes now in the partial file
                have = partial.stat().st_size if partial.exists() else 0
                if have > best:
                    best, best_at, failures = have, time.monotonic(), 0
                else:
                    failures += 1
                why = None
                if failures > self.opt.max_retries:
                    why = f"failed after {self.opt.max_retries} retries without new data"
                elif attempts >= self.opt.max_attempts:
                    why = f"failed after {attempts} requests"
                elif time.monotonic() - best_at > self.opt.progress_timeout:
                    why = f"made no progress for {self.opt.progress_timeout:g} s"
                if why is not None:
                    self.set_file(rf.path, state="failed")
                    raise HubError(f"download of {rf.path} from {self.repo} {why}: {err}") from err
                delay = min(self.opt.backoff_max, self.opt.backoff_base * (2 ** max(0, failures - 1)))
                self.set_file(rf.path, state="retrying", done=have)
                self.emit("retrying", f"{rf.path}: {err}; retrying in {delay:.1f} s")
                self.wait(delay)
                self.set_file(rf.path, state="downloading")
                if have == 0:
                    hashes = _Hashes(rf.size)
        self.set_file(rf.path, state="verifying", done=rf.size)
        self.emit("verifying", f"verifying {rf.path}")
        ok, sha = check_hashes(rf, hashes)
        if not ok:
            partial.unlink(missing_ok=True)
            self.set_file(rf.path, state="failed", done=0)
            expected = rf.sha256 or rf.oid
            raise IntegrityError(
                f"{rf.path} of {self.repo} does not match the Hub's hash (expected {expected[:16]}…, "
                f"got {(sha if rf.sha256 else hashes.git.hexdigest())[:16]}…): deleted the bad file")
        os.replace(partial, blob)
        self.set_file(rf.path, state="done", done=rf.size)
        self.emit("downloading", message or f"{rf.path} done")
        return sha

    def _transfer(self, rf: RemoteFile, partial: Path, have: int, hashes: _Hashes) -> tuple[int, _Hashes]:
        """One HTTP request from ``have`` on; returns the new size. Raises TransientError to retry."""
        assert self.commit is not None
        self._hashes = hashes
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = hubapi.file_url(self.repo, self.commit, rf.path)
        # the socket timeout catches silence; the guard's deadline catches a server that
        # dribbles (headers included) without ever sending progress_timeout's worth of data
        with hubapi.Guard(time.monotonic() + self.opt.progress_timeout, self.stopping) as guard:
            resp = hubapi.open_url(url, timeout=self.opt.stall_timeout, headers=headers,
                                   repo=self.repo, what=rf.path, guard=guard)
            try:
                return self._receive(rf, partial, have, hashes, resp, guard)
            finally:
                resp.close()

    def _receive(self, rf: RemoteFile, partial: Path, have: int, hashes: _Hashes,
                 resp: Any, guard: hubapi.Guard) -> tuple[int, _Hashes]:
        start = body_start(resp.status, resp.headers.get("Content-Range"), rf.size)
        if start != have:
            # 200 without a range is the whole file again; anything else restarts cleanly
            have, hashes = 0, _Hashes(rf.size)
            self._hashes = hashes
            if start != 0:
                partial.unlink(missing_ok=True)
                raise TransientError(f"{rf.path}: the server answered the resume with an unusable range")
        mode = "r+b" if partial.exists() else "wb"
        with open(partial, mode) as fh:
            fh.seek(have)
            fh.truncate()
            while True:
                self.check()
                try:
                    chunk = resp.read1(self.opt.chunk_size)
                except (socket.timeout, TimeoutError) as err:
                    raise TransientError(f"no data for {self.opt.stall_timeout:g} s (stalled)") from err
                except (OSError, http.client.HTTPException) as err:
                    raise TransientError(f"connection lost: {err}") from err
                if not chunk:
                    break
                if have + len(chunk) > rf.size:
                    raise TransientError(f"{rf.path}: the server sent more than {rf.size} bytes")
                fh.write(chunk)
                hashes.update(chunk)
                have += len(chunk)
                guard.deadline = time.monotonic() + self.opt.progress_timeout
                self.set_file(rf.path, done=have)
                self.file_meter.add(have)
                self.meter.add(self.done_bytes())
                rate = self.file_meter.rate()
                self.set_file(rf.path, rate=rate, eta=_eta(rf.size - have, rate))
                if self.callback is not None and (
                        time.monotonic() - self.last_emit >= self.opt.progress_interval):
                    fh.flush()  # what a progress value reports is on disk
                    self.emit("downloading", force=True)
            fh.flush()
        if have < rf.size:
            raise TransientError(f"connection closed after {have} of {rf.size} bytes")
        return have, hashes


def body_start(status: int, content_range: str | None, size: int) -> int | None:
    """The offset of the file where a response body begins, or None if it cannot be used.

    A 206, or a 200 that carries a Content-Range (some proxies answer a Range
    request so), starts where its ``bytes START-END/TOTAL`` says, and only when
    TOTAL is the file's size (or ``*``); a 200 without one is the whole file.
    """
    if content_range is None:
        return None if status == 206 else 0
    m = _CONTENT_RANGE.fullmatch(content_range.strip())
    if m is None:
        return None
    start, end, total = int(m.group(1)), int(m.group(2)), m.group(3)
    if end < start or (total != "*" and int(total) != size) or start >= max(size, 1):
        return None
    return start


_CONTENT_RANGE = re.compile(r"bytes\s+(\d{1,20})-(\d{1,20})/(\d{1,20}|\*)")


def pull(name: str, revision: str | None = None, *, progress: Callable[[PullProgress], None] | None = None,
         cancel: threading.Event | None = None, pause: threading.Event | None = None,
         options: PullOptions | None = None) -> dict[str, Any]:
    """Download ``name`` (catalog id or Hub repo id) into the HF cache, verify it, record it.

    Returns the install record. Raises Paused (partials kept), Cancelled
    (partials deleted), or a HubError / InputError subclass with a one-line message.
    """
    from lacuna.engine.errors import InputError

    entry = catalog.catalog_entry(name)
    if entry is not None and entry.get("bundled"):
        raise InputError(f"{name} ships with Lacuna; there is nothing to download")
    if entry is not None and entry.get("path"):
        raise InputError(f"{name} is a local folder; there is nothing to download")
    repo = entry["repo"] if entry is not None else (name if catalog.is_repo_id(name) else None)
    if not repo or not catalog.is_repo_id(repo):
        raise InputError(f"{validate.show(name)} is not a catalog id or a Hub repo id (org/name)")
    revision = revision or (entry or {}).get("revision") or "main"
    validate.revision(revision, repo)
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        from .errors import OfflineError

        raise OfflineError(f"HF_HUB_OFFLINE is set, so {repo} cannot be downloaded; unset it to download")
    job = _Pull(repo, revision, options or PullOptions(), progress, cancel, pause)
    try:
        return job.run(entry)
    except Paused:
        job.emit("paused", f"paused at {int(100 * job.done_bytes() / job.total) if job.total else 0}%")
        raise
    except Cancelled:
        _delete_partials(repo)
        job.emit("cancelled", "cancelled")
        raise
    except Exception as err:
        job.emit("failed", str(err))
        raise


def discard_partials(name: str) -> int:
    """Delete the partial files of a paused download (what cancel does); returns bytes freed.
    A partial that a running pull (this process or another) is writing is kept."""
    repo = catalog.repo_for(name)
    if not repo:
        return 0
    return _delete_partials(repo)


def _delete_partials(repo: str) -> int:
    """Delete ``repo``'s partial files that no running download holds; returns the bytes freed."""
    blobs = paths.repo_dir(repo) / "blobs"
    freed = 0
    try:
        partials = list(blobs.glob("*" + cache.PARTIAL_SUFFIX))
    except OSError:
        return 0
    for partial in partials:
        try:
            size = partial.stat().st_size
        except OSError:
            continue
        if cache.remove_if_idle(repo, cache.blob_of_partial(partial), partial):
            freed += size
    return freed
