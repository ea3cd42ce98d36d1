"""What Lacuna installed and what the user consented to (JSON under the user data folder).

An install record is written only after every file of the model was downloaded
and verified, so a record means "fully installed and verified".
"""
from __future__ import annotations

from typing import Any

from . import store, validate

INSTALLS = "installs.json"
CONSENT = "consent.json"


def _key(repo: str) -> str:
    return repo.lower()


def _file_ok(item: Any) -> bool:
    return (isinstance(item, dict) and validate.path_problem(item.get("path")) is None
            and (validate.is_commit(item.get("blob")) or validate.is_sha256(item.get("blob")))
            and isinstance(item.get("size"), int) and not isinstance(item.get("size"), bool)
            and item["size"] >= 0 and isinstance(item.get("sha256"), str))


def valid_record(record: Any) -> bool:
    """A record every later step can trust to name paths: repo id, 40-hex commit, sane files."""
    from .catalog import is_repo_id

    return (isinstance(record, dict) and isinstance(record.get("repo"), str) and is_repo_id(record["repo"])
            and validate.is_commit(record.get("commit")) and isinstance(record.get("files"), list)
            and all(_file_ok(f) for f in record["files"]))


def all_installs() -> dict[str, dict[str, Any]]:
    """Valid install records by lower-cased repo; invalid ones are skipped and noted (store.ignored)."""
    data = store.read(INSTALLS, {})
    models = data.get("models", {})
    if not isinstance(models, dict):
        store.ignore(INSTALLS, "ignored, its \"models\" is not an object")
        return {}
    good = {k: v for k, v in models.items() if valid_record(v) and k == _key(v["repo"])}
    if len(good) != len(models):
        bad = sorted(str(k) for k in models if k not in good)
        store.ignore(INSTALLS, f"ignored {len(bad)} broken record(s): {', '.join(bad)[:120]}")
    return good


def get_install(repo: str) -> dict[str, Any] | None:
    return all_installs().get(_key(repo))


def put_install(record: dict[str, Any]) -> None:
    def change(data: Any) -> Any:
        if not isinstance(data.get("models"), dict):
            data["models"] = {}
        data.setdefault("version", 1)
        data["models"][_key(record["repo"])] = record
        return data

    store.update(INSTALLS, {}, change)


def drop_install(repo: str) -> bool:
    found = []

    def change(data: Any) -> Any:
        if isinstance(data.get("models"), dict) and _key(repo) in data["models"]:
            del data["models"][_key(repo)]
            found.append(True)
        return data

    store.update(INSTALLS, {}, change)
    return bool(found)


def has_consent(repo: str, commit: str) -> bool:
    data = store.read(CONSENT, {})
    codes = data.get("remote_code")
    entry = codes.get(_key(repo)) if isinstance(codes, dict) else None
    commits = entry.get("commits") if isinstance(entry, dict) else None
    return isinstance(commits, list) and commit in commits


def grant_consent(repo: str, commit: str, files: list[dict[str, Any]] | None = None) -> None:
    """Remember that the user accepted this repo's custom code at exactly this commit."""

    def change(data: Any) -> Any:
        if not isinstance(data.get("remote_code"), dict):
            data["remote_code"] = {}
        entry = data["remote_code"].get(_key(repo))
        if not isinstance(entry, dict) or not isinstance(entry.get("commits"), list):
            entry = data["remote_code"][_key(repo)] = {"repo": repo, "commits": []}
        if commit not in entry["commits"]:
            entry["commits"].append(commit)
        if files is not None:
            if not isinstance(entry.get("files"), dict):
                entry["files"] = {}
            entry["files"][commit] = files
        return data

    store.update(CONSENT, {}, change)


def revoke_consent(repo: str) -> None:
    def change(data: Any) -> Any:
        if isinstance(data.get("remote_code"), dict):
            data["remote_code"].pop(_key(repo), None)
        return data

    store.update(CONSENT, {}, change)
