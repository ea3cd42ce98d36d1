"""The few Hub HTTP routes Lacuna needs, over the standard library (urllib).

HF_ENDPOINT and the token are read when a request is made. The token comes from
huggingface_hub's own store (HF_TOKEN or `huggingface-cli login`); Lacuna never
stores one. Mirrors are not trusted, so the token goes only to an endpoint the
user named for it: the official https://huggingface.co, or one listed in
LACUNA_HF_TOKEN_ENDPOINTS (comma- or space-separated URLs; only their scheme,
host and port count), and never over plain http to a host other than this
machine, listed or not. It is sent only to a URL whose scheme, host and port
equal the endpoint's, and never to a redirect target.

Every request can be cut from outside: its socket is handed to a guard the
moment it connects, and the guard shuts it when an overall deadline passes or
the caller's ``stop`` says so (pause, cancel, quit). A server that dribbles a
few bytes a second therefore cannot hold a metadata call, or a pause, open.
"""
from __future__ import annotations

import http.client
import ipaddress
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

from . import validate
from .errors import AccessDenied, EntryNotFound, HubError, OfflineError, RepoNotFound

USER_AGENT = "lacuna-editor/0.1 (+engine.hub)"
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
METADATA_TIMEOUT = 60.0          # seconds for one metadata call, all retries included
MAX_METADATA_BYTES = 64 << 20    # a revision or a page of the file list is far smaller


class TransientError(HubError):
    """A failure worth retrying: timeout, dropped connection, 5xx, 429."""


OFFICIAL_ENDPOINT = "https://huggingface.co"
TOKEN_ENDPOINTS_VAR = "LACUNA_HF_TOKEN_ENDPOINTS"


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", OFFICIAL_ENDPOINT).rstrip("/")


def token_endpoints() -> tuple[str, ...]:
    """The endpoints the token may go to: the official Hub and those in LACUNA_HF_TOKEN_ENDPOINTS."""
    listed = os.environ.get(TOKEN_ENDPOINTS_VAR, "").replace(",", " ").split()
    return (OFFICIAL_ENDPOINT, *listed)


def token() -> str | None:
    if os.environ.get("HF_HUB_DISABLE_IMPLICIT_TOKEN"):
        return os.environ.get("HF_TOKEN") or None
    try:
        from huggingface_hub import get_token
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return os.environ.get("HF_TOKEN") or None
    try:
        return get_token()
    except Exception:  # a broken token file must not break downloads of public repos
        return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_allowed(url: str) -> bool:
    """Whether the token may be sent with a request to ``url``: its origin is the
    endpoint's, the user named that endpoint for the token (token_endpoints), and
    it is https, or http to this machine (a plain-http token could be read on the way)."""
    origin = _origin(url)
    if origin is None or origin != _origin(endpoint()):
        return False
    if not any(origin == _origin(allowed) for allowed in token_endpoints()):
        return False
    return origin[0] == "https" or _loopback(origin[1])


def _withheld_hint(repo: str) -> str:
    where = endpoint()
    origin = _origin(where)
    listed = origin is not None and any(origin == _origin(a) for a in token_endpoints())
    why = "it is plain http to another machine" if listed else f"it is not listed in {TOKEN_ENDPOINTS_VAR}"
    return (f"{repo} is gated or private, and your Hugging Face token was not sent to {where} because {why}; "
            f"the token goes only to {OFFICIAL_ENDPOINT} and to the https endpoints (or http on this machine) "
            f"listed in {TOKEN_ENDPOINTS_VAR}")


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of a URL with the scheme's default port filled in; None if unparsable."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, parts.hostname.lower(), port


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` has exactly the scheme, host and port of ``base`` (not a string prefix)."""
    a, b = _origin(url), _origin(base)
    return a is not None and a == b


def quote_path(path: str) -> str:
    return urllib.parse.quote(path, safe="/")


def api_url(repo: str, *parts: str) -> str:
    return f"{endpoint()}/api/models/{repo}/" + "/".join(parts)


def file_url(repo: str, commit: str, path: str) -> str:
    return f"{endpoint()}/{repo}/resolve/{commit}/{quote_path(path)}"


def _login_hint(repo: str, has_token: bool) -> str:
    if has_token:
        return (f"your Hugging Face token has no access to {repo}: accept its terms on "
                f"https://huggingface.co/{repo} or use a token with access (huggingface-cli login)")
    return (f"{repo} is gated or private: accept its terms on https://huggingface.co/{repo}, then "
            f"log in with `huggingface-cli login` (or set HF_TOKEN)")


def raise_for(err: urllib.error.HTTPError, repo: str, what: str) -> None:
    """Map an HTTP error of the Hub to one of our errors with a clear message."""
    code = err.headers.get("X-Error-Code", "") if err.headers else ""
    status = err.code
    if code == "RepoNotFound" or (status == 404 and what == "repo"):
        if status in (401, 403):
            raise RepoNotFound(f"model {repo} was not found on the Hub (if it is private, log in "
                               f"with `huggingface-cli login`)")
        raise RepoNotFound(f"model {repo} was not found on the Hub")
    if code == "RevisionNotFound":
        raise EntryNotFound(f"revision {what} was not found in {repo}")
    if code == "EntryNotFound" or status == 404:
        raise EntryNotFound(f"{what} was not found in {repo} (HTTP 404)")
    if code == "GatedRepo" or status in (401, 403):
        has_token = token() is not None
        if has_token and not token_allowed(endpoint()):
            raise AccessDenied(_withheld_hint(repo))
        raise AccessDenied(_login_hint(repo, has_token))
    if status in TRANSIENT_STATUS:
        raise TransientError(f"the Hub answered HTTP {status} for {what}")
    raise HubError(f"the Hub answered HTTP {status} for {what} of {repo}")


class Guard:
    """Shuts a request's socket when ``deadline`` (monotonic seconds) passes or ``stop()`` is true.

    One watcher thread per guard polls every 50 ms; ``fired`` says why it cut
    ("deadline" or "stop"), so the caller can tell a cut from a network fault.
    Use as a context manager around one or more requests.
    """

    def __init__(self, deadline: float | None = None, stop: Callable[[], bool] | None = None) -> None:
        self.deadline = deadline
        self.stop = stop
        self.fired: str | None = None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Guard":
        self._thread = threading.Thread(target=self._watch, name="lacuna-hub-guard", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.fired and sock is not None:
                _shut(sock)

    def check(self) -> None:
        """Fire now if due (also called between reads, so a cut never waits for the watcher)."""
        if self.fired:
            return
        if self.stop is not None and self.stop():
            self._fire("stop")
        elif self.deadline is not None and time.monotonic() >= self.deadline:
            self._fire("deadline")

    def _fire(self, why: str) -> None:
        with self._lock:
            self.fired = self.fired or why
            if self._sock is not None:
                _shut(self._sock)

    def _watch(self) -> None:
        while not self._done.wait(0.05):
            self.check()
            if self.fired:
                return


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _hooked(base: type, on_socket: Callable[[socket.socket], None]) -> type:
    class Conn(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            on_socket(self.sock)

    return Conn


class _HookedHTTP(urllib.request.HTTPHandler):
    def __init__(self, on_socket: Callable[[socket.socket], None]) -> None:
        super().__init__()
        self._conn = _hooked(http.client.HTTPConnection, on_socket)

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self._conn, req)


class _HookedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, on_socket: Callable[[socket.socket], None]) -> None:
        super().__init__()
        self._conn = _hooked(http.client.HTTPSConnection, on_socket)

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(self._conn, req, context=self._context)


class _StripAuthRedirect(urllib.request.HTTPRedirectHandler):
    """Follow redirects, never carrying an Authorization header to the target."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        if _origin(urllib.parse.urljoin(req.full_url, newurl)) is None:  # http(s) only, never ftp: or file:
            raise urllib.error.HTTPError(req.full_url, code, f"redirect to a non-HTTP URL refused: {newurl[:80]}",
                                         headers, fp)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            for key in [k for k in new.headers if k.lower() == "authorization"]:
                del new.headers[key]
        return new


def open_url(url: str, *, timeout: float, headers: dict[str, str] | None = None,
             method: str = "GET", repo: str, what: str,
             guard: Guard | None = None) -> http.client.HTTPResponse:
    """Open a URL; HTTP errors raise ours, network errors raise TransientError.

    ``timeout`` bounds each socket operation; ``guard`` receives the socket as
    soon as it connects (for deadlines and cancel). The token is added only
    where token_allowed says so.
    """
    request = urllib.request.Request(url, method=method)
    request.add_header("User-Agent", USER_AGENT)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    tok = token()
    if tok and token_allowed(url):
        request.add_unredirected_header("Authorization", f"Bearer {tok}")
    hook = guard.attach if guard is not None else (lambda sock: None)
    opener = urllib.request.build_opener(_HookedHTTP(hook), _HookedHTTPS(hook), _StripAuthRedirect())
    if guard is not None:
        guard.check()
    try:
        return opener.open(request, timeout=timeout)  # noqa: S310 - http(s) only
    except urllib.error.HTTPError as err:
        try:
            raise_for(err, repo, what)
        finally:
            err.close()
        raise  # unreachable
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TransientError(f"could not reach {endpoint()}: {reason}") from err


class Stopped(HubError):
    """A metadata call was cut because its ``stop`` callback said so (the caller knows why)."""


def get_json(url: str, *, timeout: float, repo: str, what: str, attempts: int = 3, backoff: float = 0.5,
             deadline: float | None = None, stop: Callable[[], bool] | None = None) -> tuple[Any, dict[str, str]]:
    """GET a JSON document from the Hub API; network trouble and 5xx/429 are retried a few times.

    ``deadline`` (monotonic seconds; default now + METADATA_TIMEOUT) bounds the
    whole call, retries and a dribbling server included: past it, OfflineError.
    ``stop()`` true cuts the call within ~50 ms with :class:`Stopped`.
    """
    if deadline is None:
        deadline = time.monotonic() + METADATA_TIMEOUT
    label = "the revision" if what == "repo" else what
    with Guard(deadline, stop) as guard:
        for attempt in range(attempts):
            try:
                with open_url(url, timeout=min(timeout, max(0.05, deadline - time.monotonic())),
                              repo=repo, what=what, guard=guard) as resp:
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    body = _read_all(resp, guard, repo, what)
                guard.check()
                if guard.fired:
                    raise TransientError("cut")
                break
            except (TransientError, socket.timeout, OSError, http.client.HTTPException) as err:
                guard.check()
                if guard.fired == "stop":
                    raise Stopped(f"the request for {label} of {repo} was stopped") from err
                if guard.fired == "deadline":
                    raise OfflineError(f"the Hub took too long to send {label} of {repo}; "
                                       f"try again later") from err
                if attempt == attempts - 1:
                    raise OfflineError(f"the Hub could not be reached for {repo}: {err}") from err
                wait_until = time.monotonic() + backoff * (2 ** attempt)
                while time.monotonic() < wait_until and not guard.fired:
                    time.sleep(0.02)
                    guard.check()
    try:
        return json.loads(body), headers
    except (ValueError, RecursionError) as err:
        raise HubError(f"the Hub sent an unreadable answer for {label} of {repo}") from err


def _read_all(resp: Any, guard: Guard, repo: str, what: str) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        guard.check()
        if guard.fired:
            raise TransientError("cut")
        chunk = resp.read1(1 << 16)
        if not chunk:
            return b"".join(parts)
        total += len(chunk)
        if total > MAX_METADATA_BYTES:
            raise HubError(f"the Hub sent more than {MAX_METADATA_BYTES >> 20} MB for {what} of {repo}; "
                           f"refusing it")
        parts.append(chunk)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repo at a commit, as the tree listing gives it."""

    path: str
    size: int
    oid: str               # git blob sha1
    sha256: str | None     # LFS files only

    @property
    def blob(self) -> str:
        """The blob name in the HF cache (the file's ETag: sha256 for LFS, git oid otherwise)."""
        return self.sha256 or self.oid


def resolve_revision(repo: str, revision: str, *, timeout: float = 30.0, deadline: float | None = None,
                     stop: Callable[[], bool] | None = None) -> str:
    """The commit sha (40 hex, checked) that ``revision`` names; see get_json for deadline/stop."""
    validate.revision(revision, repo)
    what = f"revision {revision}"
    data, _ = get_json(api_url(repo, "revision", urllib.parse.quote(revision, safe="")),
                       timeout=timeout, repo=repo, what="repo" if revision == "main" else what,
                       deadline=deadline, stop=stop)
    sha = data.get("sha") if isinstance(data, dict) else None
    if sha is None:
        raise HubError(f"the Hub gave no commit for {repo}@{revision}")
    return validate.commit_sha(sha, repo)


def list_tree(repo: str, commit: str, *, timeout: float = 30.0, deadline: float | None = None,
              stop: Callable[[], bool] | None = None) -> list[RemoteFile]:
    """Every file of ``repo`` at ``commit``, each path, size and hash checked (see validate).

    A listing with one unsafe path or unusable hash is refused as a whole:
    such a server cannot be trusted with the rest either.
    """
    validate.commit_sha(commit, repo)
    url: str | None = api_url(repo, "tree", commit) + "?recursive=true&expand=false"
    files: list[RemoteFile] = []
    pages = 0
    while url:
        data, headers = get_json(url, timeout=timeout, repo=repo, what="file list", deadline=deadline, stop=stop)
        if not isinstance(data, list):
            raise HubError(f"the Hub sent an unreadable file list for {repo}")
        for item in data:
            if not isinstance(item, dict) or item.get("type") != "file":
                continue
            files.append(_remote_file(item, repo))
        url = _next_link(headers.get("link", ""))
        pages += 1
        if pages > 1000:
            raise HubError(f"the file list of {repo} does not end")
    return files


def _remote_file(item: dict[str, Any], repo: str) -> RemoteFile:
    path = validate.tree_path(item.get("path"), repo)
    oid = validate.git_oid(item.get("oid"), repo, path)
    lfs = item.get("lfs")
    if lfs is not None and not isinstance(lfs, dict):
        raise HubError(f"the Hub listed {validate.show(path)} of {repo} with unreadable LFS data; refusing it")
    if lfs:
        return RemoteFile(path, validate.size(lfs.get("size"), repo, path), oid,
                          validate.lfs_oid(lfs.get("oid"), repo, path))
    return RemoteFile(path, validate.size(item.get("size"), repo, path), oid, None)


def _next_link(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                target = part[start + 1:end]
                return target if "://" in target else endpoint() + target
    return None
