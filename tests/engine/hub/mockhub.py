"""A small Hugging Face Hub on 127.0.0.1 for tests, with fault injection.

Routes (the ones huggingface_hub 2.x and Lacuna use):
    GET  /api/models/{repo}/revision/{rev}         -> {"id", "sha"}
    GET  /api/models/{repo}/tree/{sha}?recursive=1 -> [{"type","path","size","oid"[,"lfs"]}]
    HEAD/GET /{repo}/resolve/{rev}/{path}           -> bytes; LFS files redirect (302) to
    HEAD/GET /lfs-cdn/{sha256}                         a CDN-like route, as the real Hub does
Range requests get 206. Errors carry X-Error-Code (RepoNotFound, EntryNotFound,
RevisionNotFound, GatedRepo).

Faults, per file path (see Fault): drop the connection after N bytes, hold
(stall) after N bytes until an event is set, serve corrupted bytes of the right
size, or answer a status code. Each request is logged (method, path, Range).

Hostile modes (a compromised or broken mirror), per repo: ``revision_sha``
answers any "sha" (a non-hex or path-like commit), ``tree_patch`` rewrites the
tree listing (paths, oids, sizes), ``tree_link`` adds a Link header to it,
``dribble`` sends the revision or tree answer a byte at a time (status line and
headers included); per file, Fault.range_200 answers a resume with 200 and a
Content-Range, Fault.range_200_bare with 200 and only the slice (a lie), and
Fault.redirect sends the file elsewhere (another origin: a second MockHub,
whose ``raw`` route serves given bytes).

Listed-only files (``add_repo(listed={path: (size, sha256)})``): in the tree
with that size and LFS sha256, as a real repository lists its large files, but
never served. Any request for one (HEAD or GET, on the resolve or the CDN
route) is answered 404 and recorded in ``violations``; ``fetched(repo)`` is
every file whose bytes a GET was served.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324


@dataclass
class Fault:
    drop_after: int | None = None       # close the connection after this many body bytes
    hold_after: int | None = None       # stop sending after this many bytes until `release` is set
    release: threading.Event = field(default_factory=threading.Event)
    corrupt: bool = False               # flip one byte (same size)
    ignore_range: bool = False          # answer 200 with the whole file to a Range request
    status: int | None = None           # answer this status instead
    error_code: str | None = None
    range_200: bool = False             # answer a Range request with 200 + Content-Range + the slice
    range_200_bare: bool = False        # answer a Range request with 200 and the slice, no Content-Range
    redirect: str | None = None         # answer 302 to this absolute URL
    times: int = 1                      # how many requests it affects (-1: all)
    held: threading.Event = field(default_factory=threading.Event)  # set when a hold starts

    def use(self) -> bool:
        if self.times == 0:
            return False
        if self.times > 0:
            self.times -= 1
        return True


@dataclass
class Repo:
    name: str
    files: dict[str, bytes]
    lfs: set[str]
    commits: dict[str, dict[str, bytes]]
    branches: dict[str, str]
    gated: bool = False
    authorized_tokens: set[str] = field(default_factory=set)
    listed: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)  # commit -> path -> (size, sha256)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    authorization: str | None


class MockHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.faults: dict[str, Fault] = {}
        self.log: list[Request] = []
        self.served: list[tuple[str, Request]] = []  # (repo path, request) of each body served
        self.lock = threading.Lock()
        self._commit_counter = 0
        self.revision_sha: dict[str, Any] = {}      # repo -> the "sha" the revision route answers
        self.tree_patch: dict[str, Callable[[list[dict[str, Any]]], list[dict[str, Any]]]] = {}
        self.tree_link: dict[str, str] = {}         # repo -> Link header on its tree answer
        self.dribble: dict[str, float] = {}         # "revision" | "tree" -> seconds between bytes
        self.dribble_stop = threading.Event()
        self.dribbling = threading.Event()          # set when a dribbled answer has started
        self.raw: dict[str, bytes] = {}             # GET /raw/<key> -> bytes (a second origin's CDN)
        self.violations: list[tuple[str, str, str]] = []  # (repo, path, method) asked of a listed-only file
        self.bodies: list[tuple[str, str]] = []     # (repo, path) of each file body served to a GET
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self, "GET")

            def do_HEAD(self) -> None:  # noqa: N802
                hub._handle(self, "HEAD")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release_all()
        self.server.shutdown()
        self.server.server_close()

    # setup ------------------------------------------------------------------
    def reset(self) -> None:
        self.release_all()
        with self.lock:
            self.repos.clear()
            self.faults.clear()
            self.log.clear()
            self.served.clear()
            self.revision_sha.clear()
            self.tree_patch.clear()
            self.tree_link.clear()
            self.dribble.clear()
            self.raw.clear()
            self.violations.clear()
            self.bodies.clear()
            self.dribble_stop = threading.Event()
            self.dribbling = threading.Event()

    def release_all(self) -> None:
        for fault in list(self.faults.values()):
            fault.release.set()
        self.dribble_stop.set()

    def add_repo(self, name: str, files: dict[str, bytes], *, lfs_suffixes=(".safetensors", ".bin"),
                 gated: bool = False, branch: str = "main",
                 listed: dict[str, tuple[int, str]] | None = None) -> str:
        """Add a repo (or a new commit on ``branch``); returns the commit sha.

        listed: path -> (size, sha256) of LFS files the tree lists but the Hub never serves."""
        with self.lock:
            self._commit_counter += 1
            commit = hashlib.sha1(f"{name}-{self._commit_counter}".encode()).hexdigest()  # noqa: S324
            repo = self.repos.get(name)
            lfs = {p for p in files if p.endswith(tuple(lfs_suffixes))}
            if repo is None:
                repo = Repo(name, dict(files), lfs, {}, {}, gated)
                self.repos[name] = repo
            repo.files = dict(files)
            repo.lfs = lfs
            repo.commits[commit] = dict(files)
            repo.listed[commit] = dict(listed or {})
            repo.branches[branch] = commit
            repo.gated = gated
            return commit

    def fault(self, path: str, **kwargs: object) -> Fault:
        fault = Fault(**kwargs)  # type: ignore[arg-type]
        with self.lock:
            self.faults[path] = fault
        return fault

    def requests_for(self, path: str, method: str = "GET") -> list[Request]:
        """The requests that were served the bytes of a repo path (after any redirect)."""
        with self.lock:
            return [r for p, r in self.served if p == path and r.method == method]

    def clear_log(self) -> None:
        with self.lock:
            self.log.clear()
            self.served.clear()

    def fetched(self, repo: str) -> set[str]:
        """The paths of ``repo`` whose bytes a GET was served (after any redirect)."""
        with self.lock:
            return {path for name, path in self.bodies if name == repo}

    def file_requests(self) -> list[Request]:
        with self.lock:
            return [r for r in self.log if r.method == "GET" and
                    ("/resolve/" in r.path or r.path.startswith("/lfs-cdn/"))]

    # serving ----------------------------------------------------------------
    def _send_error(self, h: BaseHTTPRequestHandler, status: int, code: str | None, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        h.send_response(status)
        if code:
            h.send_header("X-Error-Code", code)
            h.send_header("X-Error-Message", message)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parsed = urllib.parse.urlsplit(h.path)
        path = parsed.path
        with self.lock:
            self.log.append(Request(method, path, h.headers.get("Range"), h.headers.get("Authorization")))
        try:
            m = re.match(r"^/api/models/([^/]+/[^/]+)/revision/(.+)$", path)
            if m:
                return self._revision(h, m.group(1), urllib.parse.unquote(m.group(2)))
            m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)/?$", path)
            if m:
                return self._tree(h, m.group(1), m.group(2))
            m = re.match(r"^/lfs-cdn/([^/]+/[^/]+)/([0-9a-f]{40})/(.+)$", path)
            if m:
                repo = self.repos.get(m.group(1))
                if repo and m.group(3) in repo.listed.get(m.group(2), {}):
                    return self._refuse_listed(h, m.group(1), m.group(3))
                data = repo.commits.get(m.group(2), {}).get(m.group(3)) if repo else None
                if data is None:
                    return self._send_error(h, 404, "EntryNotFound", "no such object")
                return self._serve_bytes(h, m.group(3), data, m.group(2), repo=m.group(1))
            m = re.match(r"^/raw/(.+)$", path)
            if m and m.group(1) in self.raw:
                return self._serve_bytes(h, m.group(1), self.raw[m.group(1)], "0" * 40)
            m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m:
                return self._resolve(h, m.group(1), m.group(2), urllib.parse.unquote(m.group(3)))
            self._send_error(h, 404, None, "no route")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _repo_or_404(self, h: BaseHTTPRequestHandler, name: str) -> Repo | None:
        repo = self.repos.get(name)
        if repo is None:
            self._send_error(h, 404, "RepoNotFound", f"Repository {name} not found")
        return repo

    def _commit_of(self, repo: Repo, rev: str) -> str | None:
        if rev in repo.commits:
            return rev
        return repo.branches.get(rev)

    def _resolve_or_404(self, h: BaseHTTPRequestHandler, name: str, rev: str) -> tuple[Repo, str] | None:
        repo = self._repo_or_404(h, name)
        if repo is None:
            return None
        commit = self._commit_of(repo, rev)
        if commit is None:
            self._send_error(h, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo, commit

    def _revision(self, h: BaseHTTPRequestHandler, name: str, rev: str) -> None:
        found = self._resolve_or_404(h, name, rev)
        if found is None:
            return
        repo, commit = found
        sha = self.revision_sha.get(name, commit)
        self._send_json(h, "revision", json.dumps({"id": name, "sha": sha}).encode())

    def _send_json(self, h: BaseHTTPRequestHandler, kind: str, body: bytes,
                   extra: dict[str, str] | None = None) -> None:
        head = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        head += list((extra or {}).items())
        delay = self.dribble.get(kind)
        if delay is None:
            h.send_response(200)
            for key, value in head:
                h.send_header(key, value)
            h.end_headers()
            h.wfile.write(body)
            return
        raw = b"HTTP/1.0 200 OK\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in head) + b"\r\n" + body
        stop = self.dribble_stop
        self.dribbling.set()
        for i in range(len(raw)):
            if stop.wait(delay):
                return
            h.wfile.write(raw[i:i + 1])
            h.wfile.flush()

    def _tree(self, h: BaseHTTPRequestHandler, name: str, rev: str) -> None:
        found = self._resolve_or_404(h, name, rev)
        if found is None:
            return
        repo, commit = found
        items = []
        for p, data in sorted(repo.commits[commit].items()):
            item: dict[str, object] = {"type": "file", "path": p, "size": len(data), "oid": git_oid(data)}
            if p in repo.lfs:
                sha = hashlib.sha256(data).hexdigest()
                pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n"
                item["oid"] = git_oid(pointer.encode())
                item["size"] = len(data)
                item["lfs"] = {"oid": sha, "size": len(data), "pointerSize": len(pointer)}
            items.append(item)
        for p, (size, sha) in sorted(repo.listed.get(commit, {}).items()):
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n"
            items.append({"type": "file", "path": p, "size": size, "oid": git_oid(pointer.encode()),
                          "lfs": {"oid": sha, "size": size, "pointerSize": len(pointer)}})
        patch = self.tree_patch.get(name)
        if patch is not None:
            items = patch(items)
        link = self.tree_link.get(name)
        self._send_json(h, "tree", json.dumps(items).encode(), {"Link": link} if link else None)

    def _resolve(self, h: BaseHTTPRequestHandler, name: str, rev: str, path: str) -> None:
        found = self._resolve_or_404(h, name, rev)
        if found is None:
            return
        repo, commit = found
        auth = h.headers.get("Authorization")
        if repo.gated:
            token = auth.split(" ", 1)[1] if auth else None
            if token is None:
                return self._send_error(h, 401, "GatedRepo", f"Access to model {name} is restricted.")
            if token not in repo.authorized_tokens:
                return self._send_error(h, 403, "GatedRepo", f"Access to model {name} is restricted.")
        fault = self.faults.get(path)
        if fault is not None and fault.status and fault.use():
            return self._send_error(h, fault.status, fault.error_code, "fault")
        if fault is not None and fault.redirect and fault.use():
            h.send_response(302)
            h.send_header("Location", fault.redirect)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if path in repo.listed.get(commit, {}):
            return self._refuse_listed(h, name, path)
        data = repo.commits[commit].get(path)
        if data is None:
            return self._send_error(h, 404, "EntryNotFound", f"{path} does not exist")
        if path in repo.lfs:
            h.send_response(302)
            h.send_header("Location", f"{self.url}/lfs-cdn/{name}/{commit}/{path}")  # absolute, as the real Hub sends its CDN
            h.send_header("X-Repo-Commit", commit)
            h.send_header("X-Linked-Etag", f'"{hashlib.sha256(data).hexdigest()}"')
            h.send_header("X-Linked-Size", str(len(data)))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        self._serve_bytes(h, path, data, commit, repo=name)

    def _refuse_listed(self, h: BaseHTTPRequestHandler, name: str, path: str) -> None:
        with self.lock:
            self.violations.append((name, path, h.command))
        self._send_error(h, 404, "EntryNotFound", f"{path} is listed only: a test asserts nobody asks for it")

    def _serve_bytes(self, h: BaseHTTPRequestHandler, path: str, data: bytes, commit: str,
                     repo: str | None = None) -> None:
        with self.lock:
            self.served.append((path, Request(h.command, h.path, h.headers.get("Range"),
                                              h.headers.get("Authorization"))))
            if repo is not None and h.command == "GET":
                self.bodies.append((repo, path))
        fault = self.faults.get(path)
        active = fault is not None and not fault.status and not fault.redirect and fault.use()
        if active and fault.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        rng = None if active and fault.ignore_range else h.headers.get("Range")
        if rng:
            m = re.match(r"bytes=(\d+)-(\d*)$", rng)
            if m:
                start = int(m.group(1))
        if start >= len(data) and len(data) > 0 and rng:
            h.send_response(416)
            h.send_header("Content-Range", f"bytes */{len(data)}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = data[start:]
        as_200 = bool(rng) and active and (fault.range_200 or fault.range_200_bare)
        h.send_response(206 if rng and not as_200 else 200)
        if rng and not (as_200 and fault.range_200_bare):
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Accept-Ranges", "bytes")
        h.send_header("X-Repo-Commit", commit)
        h.send_header("ETag", f'"{git_oid(data)}"')
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command == "HEAD":
            return
        if active and fault.drop_after is not None:
            h.wfile.write(body[: max(0, fault.drop_after - start)])
            h.wfile.flush()
            h.close_connection = True
            return
        if active and fault.hold_after is not None:
            cut = max(0, fault.hold_after - start)
            h.wfile.write(body[:cut])
            h.wfile.flush()
            fault.held.set()
            fault.release.wait(30)
            return
        h.wfile.write(body)
