"""Errors of the model hub; each message is one line fit to show a user as is."""
from __future__ import annotations

from typing import Any

from lacuna.engine.errors import Cancelled, InputError, LacunaError

__all__ = [
    "Cancelled", "HubError", "RepoNotFound", "EntryNotFound", "AccessDenied", "DiskSpaceError",
    "IntegrityError", "Paused", "ConsentRequired", "RemoteCodeConsentRequired",
    "PickleConsentRequired", "NotInstalled", "OfflineError",
]


class HubError(LacunaError):
    """A download or a Hub request failed."""


class OfflineError(HubError):
    """The Hub could not be reached (no network, DNS, refused, timed out)."""


class RepoNotFound(InputError):
    """No such repo (or it is private and no token gives access)."""


class EntryNotFound(HubError):
    """The repo exists but a file or revision does not."""


class AccessDenied(HubError):
    """401/403: gated or private repo; the user's Hugging Face token is needed."""


class DiskSpaceError(HubError):
    """Not enough free disk space for the whole download plus a margin."""


class IntegrityError(HubError):
    """A downloaded file does not match the hash the Hub lists for it."""


class NotInstalled(InputError):
    """The model is not installed (for verify / rm / load)."""


class Paused(LacunaError):
    """The download stopped because its pause event was set; partial files are kept."""


class ConsentRequired(InputError):
    """The user must agree before this download goes on."""


class RemoteCodeConsentRequired(ConsentRequired):
    """The repo ships custom code; consent is given per (repo, commit)."""

    def __init__(self, message: str, repo: str, commit: str, files: list[dict[str, Any]]):
        super().__init__(message)
        self.repo = repo
        self.commit = commit
        self.files = files  # [{"path", "size", "sha256"}]


class PickleConsentRequired(ConsentRequired):
    """The repo has only pickled weights (.bin/.pt), which can run code when loaded."""

    def __init__(self, message: str, repo: str, commit: str, files: list[str]):
        super().__init__(message)
        self.repo = repo
        self.commit = commit
        self.files = files
