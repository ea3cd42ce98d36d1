"""The few Hub HTTP routes Lacuna needs, over the standard library (urllib).

HF_ENDPOINT and the token are read when a request is made. The token comes from
huggingface_hub's own store (HF_TOKEN or `huggingface-cli login`); Lacuna never
stores one. It is sent to the endpoint only, never to a redirect target.
"""
from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .errors import AccessDenied, EntryNotFound, HubError, OfflineError, RepoNotFound

USER_AGENT = "lacuna-editor/0.1 (+engine.hub)"
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class TransientError(HubError):
    """A failure worth retrying: timeout, dropped connection, 5xx, 429."""


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


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
        raise AccessDenied(_login_hint(repo, token() is not None))
    if status in TRANSIENT_STATUS:
        raise TransientError(f"the Hub answered HTTP {status} for {what}")
    raise HubError(f"the Hub answered HTTP {status} for {what} of {repo}")


def open_url(url: str, *, timeout: float, headers: dict[str, str] | None = None,
             method: str = "GET", repo: str, what: str) -> http.client.HTTPResponse:
    """Open a URL; HTTP errors raise ours, network errors raise TransientError."""
    request = urllib.request.Request(url, method=method)
    request.add_header("User-Agent", USER_AGENT)
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    tok = token()
    if tok and url.startswith(endpoint()):
        request.add_unredirected_header("Authorization", f"Bearer {tok}")
    try:
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - https/http only
    except urllib.error.HTTPError as err:
        try:
            raise_for(err, repo, what)
        finally:
            err.close()
        raise  # unreachable
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TransientError(f"could not reach {endpoint()}: {reason}") from err


def get_json(url: str, *, timeout: float, repo: str, what: str,
             attempts: int = 3, backoff: float = 0.5) -> tuple[Any, dict[str, str]]:
    """GET a JSON document from the Hub API; network trouble and 5xx/429 are retried a few times."""
    import time

    for attempt in range(attempts):
        try:
            with open_url(url, timeout=timeout, repo=repo, what=what) as resp:
                body = resp.read()
                headers = {k.lower(): v for k, v in resp.headers.items()}
            break
        except (TransientError, socket.timeout, OSError, http.client.HTTPException) as err:
            if attempt == attempts - 1:
                raise OfflineError(f"the Hub could not be reached for {repo}: {err}") from err
            time.sleep(backoff * (2 ** attempt))
    try:
        return json.loads(body), headers
    except ValueError as err:
        raise HubError(f"the Hub sent an unreadable answer for {what} of {repo}") from err


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


def resolve_revision(repo: str, revision: str, *, timeout: float = 30.0) -> str:
    what = f"revision {revision}"
    data, _ = get_json(api_url(repo, "revision", urllib.parse.quote(revision, safe="")),
                       timeout=timeout, repo=repo, what="repo" if revision == "main" else what)
    sha = data.get("sha") if isinstance(data, dict) else None
    if not isinstance(sha, str) or len(sha) != 40:
        raise HubError(f"the Hub gave no commit for {repo}@{revision}")
    return sha


def list_tree(repo: str, commit: str, *, timeout: float = 30.0) -> list[RemoteFile]:
    url = api_url(repo, "tree", commit) + "?recursive=true&expand=false"
    files: list[RemoteFile] = []
    pages = 0
    while url:
        data, headers = get_json(url, timeout=timeout, repo=repo, what="file list")
        if not isinstance(data, list):
            raise HubError(f"the Hub sent an unreadable file list for {repo}")
        for item in data:
            if not isinstance(item, dict) or item.get("type") != "file":
                continue
            lfs = item.get("lfs") or None
            files.append(RemoteFile(
                path=str(item["path"]), size=int(lfs["size"] if lfs else item.get("size", 0)),
                oid=str(item.get("oid", "")), sha256=str(lfs["oid"]) if lfs else None))
        url = _next_link(headers.get("link", ""))
        pages += 1
        if pages > 1000:
            raise HubError(f"the file list of {repo} does not end")
    return files


def _next_link(link: str) -> str | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            start, end = part.find("<"), part.find(">")
            if 0 <= start < end:
                target = part[start + 1:end]
                return target if "://" in target else endpoint() + target
    return None
