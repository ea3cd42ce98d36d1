"""What Lacuna installed and what the user consented to (JSON under the user data folder).

An install record is written only after every file of the model was downloaded
and verified, so a record means "fully installed and verified".
"""
from __future__ import annotations

from typing import Any

from . import store

INSTALLS = "installs.json"
CONSENT = "consent.json"


def _key(repo: str) -> str:
    return repo.lower()


def all_installs() -> dict[str, dict[str, Any]]:
    data = store.read(INSTALLS, {})
    models = data.get("models", {}) if isinstance(data, dict) else {}
    return {k: v for k, v in models.items() if isinstance(v, dict) and v.get("repo") and v.get("commit")}


def get_install(repo: str) -> dict[str, Any] | None:
    return all_installs().get(_key(repo))


def put_install(record: dict[str, Any]) -> None:
    def change(data: Any) -> Any:
        if not isinstance(data, dict):
            data = {}
        data.setdefault("version", 1)
        data.setdefault("models", {})[_key(record["repo"])] = record
        return data

    store.update(INSTALLS, {}, change)


def drop_install(repo: str) -> bool:
    found = []

    def change(data: Any) -> Any:
        if isinstance(data, dict) and _key(repo) in data.get("models", {}):
            del data["models"][_key(repo)]
            found.append(True)
        return data

    store.update(INSTALLS, {}, change)
    return bool(found)


def has_consent(repo: str, commit: str) -> bool:
    data = store.read(CONSENT, {})
    entry = data.get("remote_code", {}).get(_key(repo)) if isinstance(data, dict) else None
    return bool(entry) and commit in entry.get("commits", [])


def grant_consent(repo: str, commit: str, files: list[dict[str, Any]] | None = None) -> None:
    """Remember that the user accepted this repo's custom code at exactly this commit."""

    def change(data: Any) -> Any:
        if not isinstance(data, dict):
            data = {}
        entry = data.setdefault("remote_code", {}).setdefault(_key(repo), {"repo": repo, "commits": []})
        if commit not in entry["commits"]:
            entry["commits"].append(commit)
        if files is not None:
            entry.setdefault("files", {})[commit] = files
        return data

    store.update(CONSENT, {}, change)


def revoke_consent(repo: str) -> None:
    def change(data: Any) -> Any:
        if isinstance(data, dict):
            data.get("remote_code", {}).pop(_key(repo), None)
        return data

    store.update(CONSENT, {}, change)
